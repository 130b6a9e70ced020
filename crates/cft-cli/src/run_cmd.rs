//! `cft run SPEC`: an experiment from its TOML spec (`experiments/*.toml`), checked before any
//! work; `cft reproduce` is the shortcut for the bundled `experiments/scene.toml`.

use crate::reproduce_cmd::{default_datasets_dir, run_and_print};
use anyhow::Result;
use cft_data::DatasetManifest;
use cft_experiment::spec::ExperimentSpec;
use serde::Serialize;
use std::path::PathBuf;

/// Arguments of `cft run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// The experiment spec (TOML; see experiments/scene.toml).
    pub spec: PathBuf,
    /// Reports folder (default: the spec's `output.dir`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Reuse finished units of the same configuration and data (others are refused).
    #[arg(long)]
    pub resume: bool,
    /// Folder of bundled datasets (default: `datasets/` here, else the source tree's).
    #[arg(long)]
    pub datasets_dir: Option<PathBuf>,
}

/// Runs `cft run`.
pub fn run(args: &RunArgs) -> Result<()> {
    let spec = ExperimentSpec::load(&args.spec)?;
    let datasets_dir = args.datasets_dir.clone().unwrap_or_else(default_datasets_dir);
    let manifest = DatasetManifest::resolve(&spec.dataset_in(&args.spec), &datasets_dir)
        .map_err(|e| anyhow::anyhow!("{}: data.dataset: {e}", args.spec.display()))?;
    let cfg = spec.protocol_config(&manifest.name);
    let out = args.out.clone().unwrap_or_else(|| spec.output.dir.clone());
    #[derive(Serialize)]
    struct RunConfig<'a> {
        spec_file: String,
        spec: &'a ExperimentSpec,
    }
    run_and_print(
        &cfg,
        &manifest,
        &out,
        args.resume,
        &RunConfig { spec_file: args.spec.display().to_string(), spec: &spec },
    )?;
    Ok(())
}
