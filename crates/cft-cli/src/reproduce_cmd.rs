//! `cft reproduce`: the paper's partial-label experiment on a bundled (or user) dataset: clap
//! arguments → the spec they describe ([`spec_text`], as `experiments/scene.toml` writes it)
//! → one call of the library's entry point ([`run_spec`]) → progress and the printed table.
//! The protocol itself (units, selection protocols, held-out split, aggregation, the
//! resumable unit store) lives in `cft-experiment`.

use anyhow::Result;
use cft_experiment::partial_label::CpuEngine;
pub use cft_experiment::partial_label::{
    aggregate, default_datasets_dir, holdout_split, ReproduceConfig, UnitMethod, UnitResult,
};
use cft_experiment::run::{run_spec, RunOutcome, RunRequest};
use serde::{Deserialize, Serialize};
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
    #[arg(long, value_enum, default_value_t = PrecisionArg::F32)]
    pub feature_precision: PrecisionArg,
}

/// Feature storage precision on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
pub enum PrecisionArg {
    /// As read.
    F32,
    /// IEEE half.
    F16,
    /// bfloat16.
    Bf16,
}

impl From<PrecisionArg> for cft_core::Precision {
    fn from(p: PrecisionArg) -> Self {
        match p {
            PrecisionArg::F32 => cft_core::Precision::F32,
            PrecisionArg::F16 => cft_core::Precision::F16,
            PrecisionArg::Bf16 => cft_core::Precision::Bf16,
        }
    }
}

/// The spec `cft reproduce` runs: the paper's protocol on one dataset with the reference's
/// settings (or the reduced CI grid), as `experiments/scene.toml` writes them out.
pub fn spec_text(args: &ReproduceArgs) -> String {
    let proportions = if args.quick { "[0.1, 0.5, 0.9]" } else { "[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]" };
    let (epochs, patience) = if args.quick { (300, 50) } else { (5000, 300) };
    let precision = match args.feature_precision {
        PrecisionArg::F32 => "f32",
        PrecisionArg::F16 => "f16",
        PrecisionArg::Bf16 => "bf16",
    };
    let dataset = serde_json::to_string(&args.dataset).expect("a string");
    format!(
        "[data]\ndataset = {dataset}\nfeature_precision = \"{precision}\"\n\
         [labels]\nproportions = {proportions}\nmask_seed = 526\n\
         [base]\nepochs = 300\nlr = 1e-2\nweight_decay = 1e-4\n\
         [cft]\nmax_epochs = {epochs}\npatience = {patience}\nbp_lr = 1e-4\nga_seed = {seed}\n\
         [cft.ga]\npopulation = 50\ncrossover = 0.2\nmutation_prob = 0.5\nmutation_range = 0.001\nelitism = 1\n\
         [selection]\nholdout_fraction = 0.2\nsplit_seed = {seed}\n",
        seed = args.seed
    )
}

/// Runs `cft reproduce` through the library's one entry point ([`run_spec`]); returns the
/// dataset's report folder.
pub fn run(args: &ReproduceArgs) -> Result<PathBuf> {
    let bars = crate::common::Bars::default();
    let req = RunRequest {
        // Names the spec in errors and the manifest; a dataset path resolves against the
        // current folder.
        spec_path: std::path::Path::new("cft-reproduce.toml"),
        spec_text: Some(spec_text(args)),
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
            crate::run_cmd::print_run(&done, &args.out, clock, false)?;
            Ok(done.dir)
        }
        RunOutcome::Grid(_) => unreachable!("the reproduce spec has no grid"),
    }
}
