//! `cft run SPEC`: an experiment from its TOML spec (`experiments/*.toml`), checked before any
//! work. An ARFF spec runs on the bundled features; an image spec (COCO 2014, OpenImages V3,
//! CheXpert) reads the dataset under `--data-root`, extracts features with the spec's backbone
//! and `--weights` ([`crate::image_data`]) and runs the same protocol. `cft reproduce` is the
//! shortcut for the bundled `experiments/scene.toml`.

use crate::image_data::ImageInputs;
use crate::reproduce_cmd::{default_datasets_dir, run_and_print};
use anyhow::{bail, Result};
use cft_data::DatasetManifest;
use cft_experiment::partial_label::ProtocolData;
use cft_experiment::spec::{DataSource, ExperimentSpec};
use serde::Serialize;
use std::path::PathBuf;

/// Arguments of `cft run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// The experiment spec (TOML; see experiments/*.toml).
    pub spec: PathBuf,
    /// Image specs: the dataset's root folder (overrides the spec's `data.root`).
    #[arg(long)]
    pub data_root: Option<PathBuf>,
    /// Image specs: the checkpoint, a torchvision-named state dict in safetensors (overrides
    /// the spec's `backbone.weights`).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Image specs: cpu, cuda or cuda:N (overrides the spec's `backbone.device`).
    #[arg(long)]
    pub device: Option<String>,
    /// Reports folder (default: the spec's `output.dir`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Reuse finished units (and extraction parts) of the same configuration and data; others
    /// are refused.
    #[arg(long)]
    pub resume: bool,
    /// Folder of bundled datasets (default: `datasets/` here, else the source tree's).
    #[arg(long)]
    pub datasets_dir: Option<PathBuf>,
}

/// Runs `cft run`.
pub fn run(args: &RunArgs) -> Result<()> {
    let spec = ExperimentSpec::load(&args.spec)?;
    let at = |key: &str, e: anyhow::Error| anyhow::anyhow!("{}: {key}: {e}", args.spec.display());
    let out = args.out.clone().unwrap_or_else(|| spec.output.dir.clone());
    let data = match spec.data.source {
        DataSource::Arff => {
            let datasets_dir = args.datasets_dir.clone().unwrap_or_else(default_datasets_dir);
            let manifest = DatasetManifest::resolve(&spec.dataset_in(&args.spec), &datasets_dir)
                .map_err(|e| at("data.dataset", e.into()))?;
            let mut data = ProtocolData::from_manifest(&manifest)?;
            data.name = spec.name(Some(&manifest.name));
            data.notes = spec.output.notes.clone();
            data
        }
        _ => {
            let resolve = |p: &PathBuf| ExperimentSpec::resolve(&args.spec, p);
            let root = match (&args.data_root, &spec.data.root) {
                (Some(r), _) => r.clone(),
                (None, Some(r)) => resolve(r),
                (None, None) => {
                    bail!("{}: data.root: missing; give the dataset's folder with --data-root", args.spec.display())
                }
            };
            let b = spec.backbone.as_ref().expect("checked: image specs have a backbone");
            let weights = match (&args.weights, &b.weights) {
                (Some(w), _) => w.clone(),
                (None, Some(w)) => resolve(w),
                (None, None) => {
                    bail!("{}: backbone.weights: missing; give the checkpoint with --weights", args.spec.display())
                }
            };
            let inputs = ImageInputs {
                root,
                weights,
                device: args.device.clone().unwrap_or_else(|| b.device.clone()),
                out: out.clone(),
                name: spec.name(None),
                resume: args.resume,
                notes: spec.output.notes.clone(),
            };
            crate::image_data::load(&spec, &inputs)?
        }
    };
    let cfg = spec.protocol_config(&data.name);
    #[derive(Serialize)]
    struct RunConfig<'a> {
        spec_file: String,
        spec: &'a ExperimentSpec,
    }
    run_and_print(
        &cfg,
        &data,
        &out,
        args.resume,
        &RunConfig { spec_file: args.spec.display().to_string(), spec: &spec },
    )?;
    Ok(())
}
