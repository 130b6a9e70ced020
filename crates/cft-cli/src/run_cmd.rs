//! `cft run SPEC`: an experiment from its TOML spec (`experiments/*.toml`), checked before any
//! work. An ARFF spec runs on the bundled features; an image spec (COCO 2014, OpenImages V3,
//! CheXpert) reads the dataset under `--data-root`, extracts features with the spec's backbone
//! and `--weights` ([`crate::image_data`]) and runs the same protocol. `cft reproduce` is the
//! shortcut for the bundled `experiments/scene.toml`.

use crate::image_data::ImageInputs;
use crate::reproduce_cmd::{default_datasets_dir, run_and_print};
use anyhow::{bail, Result};
use cft_data::DatasetManifest;
use cft_experiment::partial_label::{CftEngine, CpuEngine, ProtocolData};
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
    /// Image specs: prefix of the backbone's keys in the checkpoint (overrides the spec's
    /// `backbone.key_prefix`; `backbone.` for the CFT authors' `best.pth`, detected anyway).
    #[arg(long)]
    pub key_prefix: Option<String>,
    /// Image specs with `base.from = "checkpoint"`: the classifier's key without
    /// `.weight`/`.bias` (overrides the spec's `base.head_key`).
    #[arg(long)]
    pub head_key: Option<String>,
    /// Image specs: the feature cache, shared by every run and `--out` (default: the user's
    /// cache folder, `$CFT_CACHE_DIR`, else `$XDG_CACHE_HOME/cft/features`, else
    /// `~/.cache/cft/features`).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Image specs: unreadable images stop the run (`fail`), or are left out of both the
    /// features and the labels (`skip`; listed in `<out>/<name>/features/*.skipped.tsv`).
    #[arg(long, value_enum, default_value_t = crate::extract_cmd::BadImageArg::Fail)]
    pub on_bad_image: crate::extract_cmd::BadImageArg,
    /// What fits the CFT heads (overrides the spec's `cft.engine`): auto, per-category,
    /// batched or cuda. `auto` is the CUDA engine when the device is CUDA in a `cuda` build,
    /// else the batched CPU engine; the CPU engines give the same numbers bit for bit.
    #[arg(long)]
    pub engine: Option<String>,
    /// The CUDA engine's GEMM precision (overrides `cft.gemm_precision`): f32, tf32 or bf16.
    #[arg(long)]
    pub gemm_precision: Option<String>,
    /// Run only shard i of n (`i/n`, 0-based), e.g. one task of a cluster's job array each: a
    /// grid's cells k with k mod n = i, or a single spec's units (proportion × protocol, in
    /// table order) k with k mod n = i. `cft report` merges them when all are done, refusing
    /// shards of another spec version, configuration or data.
    #[arg(long)]
    pub shard: Option<String>,
    /// Single specs: record each stage's wall time, CPU time (user, system) and peak memory
    /// (load, base heads, each CFT method, evaluation, report) into `<out>/<name>/stages.md`.
    /// Units then run one after another, so the figures are each stage's own.
    #[arg(long)]
    pub stages: bool,
}

/// Loads the data of a (cell) spec: the ARFF dataset it names, or the image dataset through its
/// adapter and backbone.
fn load_data(args: &RunArgs, spec: &ExperimentSpec, out: &std::path::Path, grid: bool) -> Result<ProtocolData> {
    let at = |key: &str, e: anyhow::Error| anyhow::anyhow!("{}: {key}: {e}", args.spec.display());
    match spec.data.source {
        DataSource::Features => {
            let resolve = |p: &Option<PathBuf>| p.as_ref().map(|p| ExperimentSpec::resolve(&args.spec, p));
            let (train, test) = (resolve(&spec.data.train), resolve(&spec.data.test));
            let (Some(train), Some(test)) = (train, test) else { bail!("data.train, data.test: missing (checked)") };
            let head = resolve(&spec.base.head);
            let key = args.head_key.clone().or_else(|| spec.base.head_key.clone());
            let given = match (*spec.base.from.get(), &head) {
                (cft_experiment::spec::BaseFrom::Head, Some(h)) => Some((h.as_path(), key.as_deref())),
                _ => None,
            };
            let mut data =
                ProtocolData::from_feature_sets(&spec.name(None), &train, &test, given).map_err(|e| at("data", e))?;
            data.notes = spec.output.notes.clone();
            Ok(data)
        }
        DataSource::Arff => {
            let datasets_dir = args.datasets_dir.clone().unwrap_or_else(default_datasets_dir);
            let manifest = DatasetManifest::resolve(&spec.dataset_in(&args.spec), &datasets_dir)
                .map_err(|e| at("data.dataset", e.into()))?;
            let mut data = ProtocolData::from_manifest(&manifest)?;
            // A grid's cells are named by the grid; a single run by the spec.
            data.name = if grid { manifest.name.clone() } else { spec.name(Some(&manifest.name)) };
            data.notes = spec.output.notes.clone();
            Ok(data)
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
                out: out.to_path_buf(),
                name: spec.name(None),
                resume: args.resume,
                notes: spec.output.notes.clone(),
                keys: cft_features::KeyNames {
                    backbone_prefix: args.key_prefix.clone().or_else(|| b.key_prefix.clone()),
                    head_key: args.head_key.clone().or_else(|| spec.base.head_key.clone()),
                },
                on_bad_image: args.on_bad_image,
                cache: match &args.cache {
                    Some(c) => c.clone(),
                    None => crate::common::user_cache_dir(out),
                },
            };
            crate::image_data::load(spec, &inputs)
        }
    }
}

/// The folders this spec reads data from: every ARFF dataset's folder (a grid may list
/// several), or the image dataset's root.
fn input_folders(args: &RunArgs, spec: &ExperimentSpec) -> Result<Vec<(&'static str, PathBuf)>> {
    if spec.data.source != DataSource::Arff {
        let root = match (&args.data_root, &spec.data.root) {
            (Some(r), _) => r.clone(),
            (None, Some(r)) => ExperimentSpec::resolve(&args.spec, r),
            (None, None) => return Ok(Vec::new()),
        };
        return Ok(vec![("the data root", root)]);
    }
    let datasets_dir = args.datasets_dir.clone().unwrap_or_else(default_datasets_dir);
    let mut folders = Vec::new();
    for cell in cft_experiment::grid::expand(spec)? {
        if let Ok(m) = DatasetManifest::resolve(&cell.spec.dataset_in(&args.spec), &datasets_dir) {
            if !folders.iter().any(|(_, f)| f == &m.root) {
                folders.push(("the dataset folder", m.root));
            }
        }
    }
    Ok(folders)
}

/// The engine a (cell) spec asks for, after `--engine` / `--gemm-precision` / `--device`.
fn engine_for(args: &RunArgs, spec: &ExperimentSpec) -> Result<Box<dyn CftEngine>> {
    let name = args.engine.clone().unwrap_or_else(|| spec.cft.engine.clone());
    if !cft_experiment::spec::ENGINES.contains(&name.as_str()) {
        bail!("--engine {name}: expected one of {}", cft_experiment::spec::ENGINES.join(", "));
    }
    let device = args.device.clone().or_else(|| spec.backbone.as_ref().map(|b| b.device.clone())).unwrap_or_default();
    let precision = args.gemm_precision.clone().unwrap_or_else(|| spec.cft.gemm_precision.clone());
    Ok(match name.as_str() {
        "per-category" => Box::new(CpuEngine::PerCategory),
        "batched" => Box::new(CpuEngine::default()),
        "auto" if !(cfg!(feature = "cuda") && device.starts_with("cuda")) => Box::new(CpuEngine::default()),
        _ => crate::gpu_cmd::cuda_cft_engine(&device, &precision)?,
    })
}

/// Runs `cft run`.
pub fn run(args: &RunArgs) -> Result<()> {
    let spec = ExperimentSpec::load(&args.spec)?;
    let engine = engine_for(args, &spec)?;
    let out = args.out.clone().unwrap_or_else(|| spec.output.dir.clone());
    // Before any work: the reports folder is apart from every input folder.
    let folders = input_folders(args, &spec)?;
    let named: Vec<cft_data::Named<'_>> = folders.iter().map(|(r, p)| cft_data::Named::new(r, p)).collect();
    cft_data::check_folder_apart(cft_data::Named::new("--out", &out), &named)?;
    if spec.is_grid() {
        return run_grid_cmd(args, &spec, &out, engine.as_ref());
    }
    let shard = args.shard.as_deref().map(cft_experiment::grid::parse_shard).transpose()?;
    let log = args.stages.then(cft_experiment::stages::StageLog::new);
    let data = match &log {
        Some(log) => log.time("load", || load_data(args, &spec, &out, false))?,
        None => load_data(args, &spec, &out, false)?,
    };
    let cfg = spec.protocol_config(&data.name);
    #[derive(Serialize)]
    struct RunConfig<'a> {
        spec_file: String,
        spec: &'a ExperimentSpec,
    }
    let opts = cft_experiment::partial_label::RunOptions {
        resume: args.resume,
        engine: Some(engine.as_ref()),
        stages: log.as_ref(),
        shard,
        ..Default::default()
    };
    run_and_print(&cfg, &data, &out, &RunConfig { spec_file: args.spec.display().to_string(), spec: &spec }, opts)?;
    if let Some(log) = log {
        let feature_bytes = 4 * [&data.train.features, &data.test.features]
            .iter()
            .chain(data.per_proportion.iter().flat_map(|f| [&f.train, &f.test]).collect::<Vec<_>>().iter())
            .map(|m| (m.rows() * m.cols()) as u64)
            .sum::<u64>();
        let text = format!(
            "# Stages of `cft run {}` ({}; engine {})\n\n{}",
            args.spec.display(),
            data.name,
            engine.name(),
            log.table(feature_bytes)
        );
        let path = out.join(&data.name).join("stages.md");
        cft_data::write_atomic(&path, text.as_bytes())?;
        eprint!("{text}");
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// An ablation grid: every cell (or one shard's) with one progress bar, then the merged
/// summary when every cell is done.
fn run_grid_cmd(args: &RunArgs, spec: &ExperimentSpec, out: &std::path::Path, engine: &dyn CftEngine) -> Result<()> {
    let shard = args.shard.as_deref().map(cft_experiment::grid::parse_shard).transpose()?;
    let cells = cft_experiment::grid::expand(spec)?;
    let mine = cells.iter().filter(|c| shard.is_none_or(|(i, n)| c.index % n == i)).count();
    let steps: usize = cells
        .iter()
        .filter(|c| shard.is_none_or(|(i, n)| c.index % n == i))
        .map(|c| c.spec.protocol_config("").steps())
        .sum();
    eprintln!(
        "{}: a grid of {} cells{}",
        args.spec.display(),
        cells.len(),
        shard.map_or(String::new(), |(i, n)| format!("; shard {i}/{n} runs {mine} of them"))
    );
    let clock = std::time::Instant::now();
    let bar = crate::common::progress(steps as u64, "grid");
    let opts = cft_experiment::ablation::GridOptions { resume: args.resume, shard, engine: Some(engine) };
    let done = cft_experiment::ablation::run_grid(
        spec,
        &args.spec,
        out,
        opts,
        &|cell_spec| load_data(args, cell_spec, out, true),
        &|| bar.inc(1),
        &|cell, k, n| bar.set_message(format!("cell {}/{n}: {}", k + 1, cell.describe())),
    )?;
    bar.finish_and_clear();
    if done.merged {
        print!("{}", std::fs::read_to_string(done.dir.join("summary.md"))?);
        eprintln!("wrote {} ({} cells) in {:.1} s", done.dir.display(), done.total, clock.elapsed().as_secs_f64());
    } else {
        eprintln!(
            "ran {} of {} cells into {} in {:.1} s; when every shard is done, `cft report {}` merges them",
            done.ran,
            done.total,
            done.dir.display(),
            clock.elapsed().as_secs_f64(),
            crate::report_cmd::report_dir_for_grids(out).display()
        );
    }
    Ok(())
}
