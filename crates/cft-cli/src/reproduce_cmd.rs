//! `cft reproduce`: the paper's partial-label experiment on a bundled (or user) dataset: clap
//! arguments → the typed spec they describe ([`spec`], what `experiments/scene.toml` says) →
//! one call of the library's entry point ([`run_spec`]) → progress and the printed table.

use crate::args::choice;
use anyhow::Result;
use cft_core::Precision;
use cft_experiment::engine::CpuEngine;
use cft_experiment::run::{default_datasets_dir, run_spec, RunOutcome, RunRequest};
use cft_experiment::spec::{CftSpec, DataSpec, ExperimentSpec, LabelSpec, Param, SelectionSpec};
use std::path::PathBuf;

/// Arguments of `cft reproduce`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReproduceArgs {
    /// Test hook (hidden): stop as if killed once this many units were written; the resume tests use it.
    #[arg(long, hide = true)]
    pub abort_after_units: Option<usize>,
    /// A bundled dataset name (scene, flags, emotions) or a path to a dataset manifest.
    #[arg(long, default_value = "scene")]
    pub dataset: String,
    /// Reports folder; results go to `<out>/<dataset>/`.
    #[arg(long, default_value = "reports")]
    pub out: PathBuf,
    /// Reduced grid for CI: 10%, 50%, 90% known labels, at most 300 epochs, patience 50.
    #[arg(long)]
    pub quick: bool,
    /// Seed of the GA streams and of the held-out split (label masks always use 526).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Reuse finished units in `<out>/<dataset>/runs/` whose configuration matches.
    #[arg(long)]
    pub resume: bool,
    /// Folder of bundled datasets (default: `datasets/` here, else the source tree's).
    #[arg(long)]
    pub datasets_dir: Option<PathBuf>,
    /// Round all features to this storage precision first (f32 = as read): shows what f16 or
    /// bf16 feature storage does to the selected epochs and scores.
    #[arg(long, value_parser = choice::<Precision>(), default_value = "f32")]
    pub feature_precision: Precision,
}

/// The spec `cft reproduce` runs: the paper's protocol on one dataset with the reference's
/// settings (or the reduced CI grid), as `experiments/scene.toml` writes them out.
pub fn spec(args: &ReproduceArgs) -> ExperimentSpec {
    let proportions = if args.quick { vec![0.1, 0.5, 0.9] } else { (1..=9).map(|k| f64::from(k) / 10.0).collect() };
    let (max_epochs, patience) = if args.quick { (300, 50) } else { (5000, 300) };
    ExperimentSpec {
        data: DataSpec {
            dataset: Some(Param::One(args.dataset.clone())),
            feature_precision: Param::One(args.feature_precision),
            ..DataSpec::default()
        },
        labels: LabelSpec {
            proportions,
            mask_seed: Some(Param::One(cft_experiment::spec::REFERENCE_MASK_SEED)),
            ..LabelSpec::default()
        },
        cft: CftSpec {
            max_epochs: Param::One(max_epochs),
            patience: Param::One(patience),
            ga_seed: Param::One(args.seed),
            ..CftSpec::default()
        },
        selection: SelectionSpec { split_seed: Param::One(args.seed), ..SelectionSpec::default() },
        ..ExperimentSpec::default()
    }
}

/// Runs `cft reproduce` through the library's one entry point ([`run_spec`]); returns the
/// dataset's report folder.
pub fn run(args: &ReproduceArgs) -> Result<PathBuf> {
    let bars = crate::common::Bars::default();
    let req = RunRequest {
        // Names the spec in errors and the manifest; a dataset path resolves against the
        // current folder.
        spec_path: std::path::Path::new("cft-reproduce.toml"),
        spec: Some(spec(args)),
        out: Some(args.out.clone()),
        datasets_dir: args.datasets_dir.clone().unwrap_or_else(default_datasets_dir),
        head_key: None,
        resume: args.resume,
        shard: None,
        stages: None,
        engine: &CpuEngine::default(),
        progress: &bars,
        images: None,
        interrupt_after_units: args.abort_after_units,
    };
    let clock = std::time::Instant::now();
    match run_spec(&req)? {
        RunOutcome::Single(done) => {
            crate::common::print_run(&done, &args.out, clock, false)?;
            Ok(done.dir)
        }
        RunOutcome::Grid(_) => anyhow::bail!("the reproduce spec is not a grid (no list, no seeds)"),
    }
}
