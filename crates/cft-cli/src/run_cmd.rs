//! `cft run SPEC`: an experiment from its TOML spec (`experiments/*.toml`), checked before any
//! work, run by the library's one entry point ([`run_spec`]). An ARFF spec runs on the bundled
//! features, a features spec on the researcher's own feature sets; an image spec (COCO 2014,
//! OpenImages V3, CheXpert) reads the dataset under `--data-root` and extracts features with
//! the spec's backbone and `--weights` through [`cft_images::ImageSource`].

use crate::args::choice;
use anyhow::{bail, Result};
use cft_cuda::GemmPrecision;
use cft_experiment::ablation::GridRun;
use cft_experiment::engine::{CftEngine, EngineChoice, EngineName};
use cft_experiment::run::{default_datasets_dir, run_spec, RunOutcome, RunRequest};
use cft_experiment::shard::Shard;
use cft_experiment::spec::ExperimentSpec;
use cft_experiment::stages::StageLog;
use cft_images::ImageSource;
use cft_pipeline::{BadImage, Device};
use std::path::PathBuf;

/// Arguments of `cft run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Test hook (hidden): stop as if killed once this many units were written; the resume tests use it.
    #[arg(long, hide = true)]
    pub abort_after_units: Option<usize>,
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
    pub device: Option<Device>,
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
    #[arg(long, value_parser = choice::<BadImage>(), default_value = "fail")]
    pub on_bad_image: BadImage,
    /// What fits the CFT heads (overrides the spec's `cft.engine`): auto, per-category,
    /// batched or cuda. `auto` is the CUDA engine when the device is CUDA in a `cuda` build,
    /// else the batched CPU engine; the CPU engines give the same numbers bit for bit.
    #[arg(long, value_parser = choice::<EngineName>())]
    pub engine: Option<EngineName>,
    /// The CUDA engine's GEMM precision (overrides `cft.gemm_precision`): f32, tf32 or bf16.
    #[arg(long, value_parser = choice::<GemmPrecision>())]
    pub gemm_precision: Option<GemmPrecision>,
    /// Run only shard i of n (`i/n`, 0-based), e.g. one task of a cluster's job array each: a
    /// grid's cells k with k mod n = i, or a single spec's units (proportion × protocol, in
    /// table order) k with k mod n = i. `cft report` merges them when all are done, refusing
    /// shards of another spec version, configuration or data.
    #[arg(long)]
    pub shard: Option<Shard>,
    /// Single specs: record each stage's wall time, CPU time (user, system) and peak memory
    /// (load, base heads, each CFT method, evaluation, report) into `<out>/<name>/stages.md`.
    /// Units then run one after another, so the figures are each stage's own.
    #[arg(long)]
    pub stages: bool,
}

/// The engine a spec asks for, after `--engine` / `--gemm-precision` / `--device`: built now,
/// so that a CUDA engine this build or machine lacks is refused before any work.
fn engine_for(args: &RunArgs, spec: &ExperimentSpec) -> Result<Box<dyn CftEngine>> {
    let name = args.engine.unwrap_or(spec.cft.engine);
    let device = args.device.or_else(|| spec.backbone.as_ref().map(|b| b.device)).unwrap_or_default();
    let precision = args.gemm_precision.unwrap_or(spec.cft.gemm_precision);
    Ok(EngineChoice::resolve(name, device, precision, cft_core::DEFAULT_BATCH)?.build()?)
}

/// Runs `cft run`: the library's [`run_spec`] with this command line's overrides, engine,
/// image source and progress bars; prints the table (or the grid's summary) and where it went.
pub fn run(args: &RunArgs) -> Result<()> {
    let spec = ExperimentSpec::load(&args.spec)?;
    if args.stages && spec.is_grid() {
        bail!(
            "--stages: stage timings are for a single run; {} is a grid (run one of its cells as a spec)",
            args.spec.display()
        );
    }
    let engine = engine_for(args, &spec)?;
    let shard = args.shard.map(Shard::pair);
    let images = ImageSource {
        data_root: args.data_root.clone(),
        weights: args.weights.clone(),
        device: args.device,
        key_prefix: args.key_prefix.clone(),
        head_key: args.head_key.clone(),
        cache: args.cache.clone(),
        resume: args.resume,
        on_bad_image: args.on_bad_image,
        shard,
    };
    let stages = args.stages.then(StageLog::new);
    let bars = crate::common::Bars::default();
    let req = RunRequest {
        spec_path: &args.spec,
        spec: None,
        out: args.out.clone(),
        datasets_dir: args.datasets_dir.clone().unwrap_or_else(default_datasets_dir),
        head_key: args.head_key.clone(),
        resume: args.resume,
        shard,
        stages: stages.as_ref(),
        engine: engine.as_ref(),
        progress: &bars,
        images: Some(&images),
        // Fault injection for the resume tests: stop as if killed after N fresh units.
        interrupt_after_units: args.abort_after_units,
    };
    let clock = std::time::Instant::now();
    if spec.is_grid() {
        let cells = cft_experiment::grid::expand(&spec)?;
        let mine = cells.iter().filter(|c| req.shard.is_none_or(|(i, n)| c.index % n == i)).count();
        eprintln!(
            "{}: a grid of {} cells{}",
            args.spec.display(),
            cells.len(),
            req.shard.map_or(String::new(), |(i, n)| format!("; shard {i}/{n} runs {mine} of them"))
        );
    }
    match run_spec(&req)? {
        RunOutcome::Single(done) => crate::common::print_run(&done, &req.out_for(&spec), clock, stages.is_some()),
        RunOutcome::Grid(done) => print_grid(&done, &req.out_for(&spec), clock),
    }
}

/// Prints a grid's summary when merged, or how to merge its shards.
fn print_grid(done: &GridRun, out: &std::path::Path, clock: std::time::Instant) -> Result<()> {
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
            cft_experiment::merge::report_dir_for_grids(out).display()
        );
    }
    Ok(())
}
