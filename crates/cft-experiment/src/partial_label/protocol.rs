//! A protocol run: every unit (in parallel, or one at a time on a GPU engine or while stages
//! are timed), `results.json`, the dataset report, the reports index and `manifest.json`.

use super::config::{dataset_key, unit_id, ReproduceConfig};
use super::data::ProtocolData;
use super::plan::{aggregate_plan, RunPlan};
use super::store::{resumable_unit, write_plan};
use super::unit::{run_unit, UnitContext, UnitResult};
use crate::engine::{CftEngine, CpuEngine};
use crate::error::{bail, Context, Result};
use crate::manifest::{write_manifest, InputFile, RunClock};
use crate::stages::StageLog;
use cft_data::{check_collisions, Named};
use cft_results::{ExperimentResults, Protocol};
use rayon::prelude::*;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What a finished protocol run wrote.
#[derive(Debug)]
pub struct Reproduction {
    /// The dataset's report folder (`<out>/<dataset>/`).
    pub dir: PathBuf,
    /// The aggregated results (what `results.json` holds); `None` for a shard, whose units
    /// `cft report` merges ([`super::merge_units`]).
    pub results: Option<ExperimentResults>,
    /// Units this call ran or reused.
    pub ran: usize,
    /// Units of the whole run.
    pub total: usize,
}

/// How a protocol run goes.
#[derive(Clone, Copy)]
pub struct RunOptions<'a> {
    /// Reuse finished units of the same configuration and inputs (others are refused).
    pub resume: bool,
    /// Write the dataset's report pages and figures (an ablation's cells do not need them).
    pub report: bool,
    /// Test hook: stop with an error, as if killed, once this many units have been written.
    pub interrupt_after_units: Option<usize>,
    /// The run's folder under `out` (default: the data's name); an ablation names it by cell.
    pub folder: Option<&'a str>,
    /// The engine that fits the CFT heads (default: the batched CPU engine).
    pub engine: Option<&'a dyn CftEngine>,
    /// Records each stage's time and memory (units then run one after another, so that the
    /// process's figures are the stage's own).
    pub stages: Option<&'a StageLog>,
    /// Run only shard `i` of `n` (`(i, n)`): units `k` with `k mod n = i`, e.g. one task of a
    /// cluster's job array each; `cft report` merges the units when every shard is done.
    pub shard: Option<(usize, usize)>,
    /// Asked between epochs and units: `true` stops the run with [`cft_core::Interrupted`].
    pub stop: Option<&'a (dyn Fn() -> bool + Sync)>,
}

impl Default for RunOptions<'_> {
    fn default() -> Self {
        Self {
            resume: false,
            report: true,
            interrupt_after_units: None,
            folder: None,
            engine: None,
            stages: None,
            shard: None,
            stop: None,
        }
    }
}

/// Runs the protocol of `cfg` on `data` into `<out>/<name>/`: units (in parallel),
/// `results.json`, the dataset report, the reports index when `<out>/reference/` has the
/// published numbers, and `manifest.json`. `on_step` is called after every base head and CFT
/// method of every unit (for progress); `run_config` is recorded in the manifest.
pub fn run_protocol<C: Serialize>(
    cfg: &ReproduceConfig,
    data: &ProtocolData,
    out: &Path,
    run_config: &C,
    on_step: &(dyn Fn() + Sync),
    opts: RunOptions<'_>,
) -> Result<Reproduction> {
    let resume = opts.resume;
    let clock = RunClock::start();
    let default_engine = CpuEngine::default();
    let engine: &dyn CftEngine = opts.engine.unwrap_or(&default_engine);
    // Everything that can be refused is refused before any work: the configurations (the
    // spec's check ran the same mapping), what the engine cannot run, the data's shapes.
    let configs = cfg.checked()?;
    for (_, fc) in &configs.methods {
        engine.supports(fc)?;
    }
    data.check()?;
    if data.given_head.is_none() {
        for (mode, _) in &configs.bases {
            crate::head_job::check_head_fits("base.losses", *mode, data.train.features.rows(), data.categories.len())?;
        }
    }
    let data = &*data.rounded(cfg.feature_precision);
    let folder = opts.folder.unwrap_or(&data.name);
    let dir = out.join(folder);
    let runs = dir.join("runs");
    let input_paths = &data.inputs;
    let (results_path, manifest_path) = (dir.join("results.json"), dir.join("manifest.json"));
    check_report_folder(out, folder, input_paths, &results_path, &manifest_path)?;
    if opts.stages.is_some() {
        refuse_folder(&dir.join("stages.md"))?;
    }
    std::fs::create_dir_all(&runs).with_context(|| runs.display().to_string())?;
    // Shards of one run share the folder: each holds its own lock; the merge is `cft report`'s.
    let _lock = match opts.shard {
        None => cft_data::OutputLock::acquire(&results_path)?,
        Some((i, n)) => cft_data::OutputLock::acquire(&dir.join(format!("shard-{i}-of-{n}")))?,
    };
    let fingerprint = || input_paths.iter().map(|p| InputFile::of(p)).collect::<Result<Vec<InputFile>>>();
    let inputs = match opts.stages {
        Some(log) => log.time("fingerprint inputs", fingerprint)?,
        None => fingerprint()?,
    };
    // What the tables need besides the units (label points and group counts included),
    // computed once: a shard writes it for `cft report`, a whole run aggregates with it.
    let plan = RunPlan::new(cfg, data, inputs.clone());
    let points = &plan.label_points;
    let mut units: Vec<(f64, Protocol)> =
        points.iter().flat_map(|&p| [(p, Protocol::Paper), (p, Protocol::HeldOut)]).collect();
    let total = units.len();
    if let Some((i, n)) = opts.shard {
        write_plan(&dir, &plan)?;
        units = units.into_iter().enumerate().filter(|(k, _)| k % n == i).map(|(_, u)| u).collect();
    }
    let steps_per_unit = cfg.steps_per_unit();
    let fresh = std::sync::atomic::AtomicUsize::new(0);
    // Collected as one Result: the first error (an interrupt, a refused unit) stops the rest.
    let one_unit = |&(p, protocol): &(f64, Protocol)| -> Result<UnitResult> {
        if opts.stop.is_some_and(|stop| stop()) {
            return Err(cft_core::CoreError::from(cft_core::Interrupted).into());
        }
        let id = unit_id(cfg, p, protocol);
        let path = runs.join(format!("{id}.json"));
        if resume && path.is_file() {
            let u = resumable_unit(&path, &id, cfg, &inputs, &dataset_key(&data.name, &data.categories))?;
            (0..steps_per_unit).for_each(|_| on_step());
            return Ok(u);
        }
        // Histories are kept for the first proportion: enough to plot, small to store.
        let keep_history = p == points[0];
        let ctx = UnitContext {
            configs: &configs,
            on_step,
            engine,
            stages: opts.stages,
            stop: opts.stop.unwrap_or(&|| false),
        };
        let (mut u, history) = run_unit(cfg, data, p, protocol, keep_history, &ctx)?;
        u.inputs = inputs.clone();
        if let Some(h) = history {
            cft_data::write_atomic(&runs.join(format!("{id}-history.csv")), h.as_bytes())?;
        }
        cft_data::write_atomic(&path, (serde_json::to_string_pretty(&u)? + "\n").as_bytes())?;
        let done = fresh.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if opts.interrupt_after_units.is_some_and(|n| done >= n) {
            bail!("stopped as if interrupted after {done} fresh units (test hook)");
        }
        Ok(u)
    };
    let units: Vec<UnitResult> = if engine.parallel_units() && opts.stages.is_none() {
        units.par_iter().map(one_unit).collect::<Result<_>>()?
    } else {
        units.iter().map(one_unit).collect::<Result<_>>()?
    };
    if opts.shard.is_some() {
        return Ok(Reproduction { dir, results: None, ran: units.len(), total });
    }
    let write_results = || -> Result<(ExperimentResults, Vec<PathBuf>)> {
        let results = aggregate_plan(&plan, &units);
        cft_data::write_atomic(&results_path, (serde_json::to_string_pretty(&results)? + "\n").as_bytes())?;
        let mut outputs = if opts.report { cft_report::write_dataset_report(&dir, &results)? } else { Vec::new() };
        outputs.push(results_path.clone());
        // The reports index with the published tables (the binary carries them when `out` has none).
        if opts.report {
            let reference = cft_report::ensure_reference(out)?;
            outputs.extend(cft_report::write_index(out, out, &reference)?);
        }
        Ok((results, outputs))
    };
    let (results, mut outputs) = match opts.stages {
        Some(log) => log.time("report", write_results)?,
        None => write_results()?,
    };
    outputs.push(manifest_path.clone());
    #[derive(Serialize)]
    struct Config<'a, C> {
        reproduce: &'a ReproduceConfig,
        /// The engine that fitted the CFT heads (it does not change the numbers on the CPU).
        engine: String,
        data: &'a serde_json::Value,
        #[serde(flatten)]
        run: &'a C,
    }
    let m = clock.manifest(
        "reproduce",
        Config { reproduce: cfg, engine: engine.name(), data: &data.description, run: run_config },
        inputs,
        outputs,
    );
    write_manifest(&manifest_path, &m)?;
    Ok(Reproduction { dir, ran: total, total, results: Some(results) })
}

/// Refuses a report folder that holds one of the inputs (outside its `features/`), that is a
/// file, or whose `results.json` / `manifest.json` would overwrite an input.
/// A file this run writes must not be an existing folder (the write would fail after the work).
fn refuse_folder(path: &Path) -> Result<()> {
    if path.is_dir() {
        bail!(
            "{}: is a folder, and this run writes a file there; move the folder away or use another --out",
            path.display()
        );
    }
    Ok(())
}

fn check_report_folder(
    out: &Path,
    folder: &str,
    input_paths: &[PathBuf],
    results_path: &Path,
    manifest_path: &Path,
) -> Result<()> {
    cft_data::check_folder_name("the dataset's name", folder).map_err(|e| crate::error::refused!("{e}"))?;
    let dir = out.join(folder);
    let named_inputs: Vec<Named<'_>> = input_paths.iter().map(|p| Named::new("an input file", p)).collect();
    for p in input_paths {
        let inside = std::fs::canonicalize(p)
            .ok()
            .zip(std::fs::canonicalize(out).ok())
            // `features/` holds what a front end extracted for this run; nothing here rewrites it.
            .is_some_and(|(f, o)| f.starts_with(o.join(folder)) && !f.starts_with(o.join(folder).join("features")));
        if inside {
            bail!(
                "--out {}: the input file {} lies inside the report folder this run rewrites",
                out.display(),
                p.display()
            );
        }
    }
    cft_data::check_output_folder(Named::new("--out", out))?;
    if dir.exists() && !dir.is_dir() {
        bail!("{}: exists and is not a folder", dir.display());
    }
    let outputs = [Named::new("results.json", results_path), Named::new("manifest.json", manifest_path)];
    for o in outputs {
        refuse_folder(o.path)?;
    }
    check_collisions(&named_inputs, &outputs)?;
    Ok(())
}
