//! `cft reproduce`: the paper's partial-label experiment on a bundled (or user) dataset: clap
//! arguments → a checked [`ReproduceConfig`] → one call of
//! [`cft_experiment::partial_label::run_protocol`] → progress and the printed table. The
//! protocol itself (units, selection protocols, held-out split, aggregation, the resumable
//! unit store) lives in `cft-experiment`.

use crate::common::progress;
use anyhow::Result;
use cft_data::DatasetManifest;
pub use cft_experiment::partial_label::{
    aggregate, default_datasets_dir, holdout_split, ReproduceConfig, UnitMethod, UnitResult,
};
use cft_experiment::partial_label::{ProtocolData, RunOptions};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Arguments of `cft reproduce`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReproduceArgs {
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

/// Runs `cft reproduce`; returns the dataset's report folder.
pub fn run(args: &ReproduceArgs) -> Result<PathBuf> {
    let datasets_dir = args.datasets_dir.clone().unwrap_or_else(default_datasets_dir);
    let manifest = DatasetManifest::resolve(&args.dataset, &datasets_dir)?;
    cft_data::check_folder_apart(
        cft_data::Named::new("--out", &args.out),
        &[cft_data::Named::new("the dataset folder", &manifest.root)],
    )?;
    let mut cfg = ReproduceConfig::new(&manifest.name, args.quick, args.seed);
    cfg.feature_precision = args.feature_precision.into();
    #[derive(Serialize)]
    struct RunConfig {
        quick: bool,
    }
    let data = cft_experiment::partial_label::ProtocolData::from_manifest(&manifest)?;
    let opts = RunOptions { resume: args.resume, ..RunOptions::default() };
    run_and_print(&cfg, &data, &args.out, &RunConfig { quick: args.quick }, opts)
}

/// Runs the protocol with a progress bar, prints the table and where it wrote (shared by
/// `cft reproduce` and `cft run`); `run_config` goes into the run manifest.
pub fn run_and_print<C: Serialize>(
    cfg: &ReproduceConfig,
    data: &ProtocolData,
    out: &std::path::Path,
    run_config: &C,
    opts: RunOptions<'_>,
) -> Result<PathBuf> {
    let clock = std::time::Instant::now();
    let bar = progress(cfg.steps() as u64, &format!("reproduce {}", data.name));
    let bases = match &data.given_head {
        Some(g) if g.label == "checkpoint" => "the checkpoint's classifier".to_string(),
        Some(g) => format!("the {}", g.label),
        None => "2 base heads".to_string(),
    };
    eprintln!(
        "{}: {} label settings × 2 protocols × ({bases} + {} CFT methods){}",
        data.name,
        cfg.label_points(),
        cfg.methods.len(),
        opts.shard.map_or(String::new(), |(i, n)| format!("; shard {i}/{n}"))
    );
    // Fault injection for the resume tests: stop as if killed after N fresh units.
    let opts = RunOptions {
        interrupt_after_units: std::env::var("CFT_ABORT_AFTER_UNITS").ok().and_then(|v| v.parse().ok()),
        ..opts
    };
    let done = cft_experiment::partial_label::run_protocol(cfg, data, out, run_config, &|| bar.inc(1), opts)?;
    bar.finish_and_clear();
    match &done.results {
        Some(results) => {
            let mut table = cft_report::partial_label_table(results, "");
            table.links.clear();
            print!("{}", table.to_markdown());
            eprintln!("wrote {} in {:.1} s", done.dir.display(), clock.elapsed().as_secs_f64());
        }
        None => eprintln!(
            "ran {} of {} units into {} in {:.1} s; when every shard is done, `cft report {}` merges them",
            done.ran,
            done.total,
            done.dir.display(),
            clock.elapsed().as_secs_f64(),
            out.display()
        ),
    }
    Ok(done.dir)
}
