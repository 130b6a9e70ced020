//! One call that runs a spec: [`run_spec`]. `cft run` and `cft reproduce` (and any other front
//! end: a notebook, a Python binding) give it the spec, the overrides of the spec's paths, the
//! engine and a progress sink; it loads the data (a bundled ARFF dataset, a researcher's own
//! feature sets, or an image dataset through the [`FeatureSource`] the front end links), checks
//! the output folder against every input, and runs the single protocol or the grid.

use crate::ablation::{GridOptions, GridRun};
use crate::engine::CftEngine;
use crate::error::{bail, Result};
use crate::partial_label::{ProtocolData, Reproduction, RunOptions};
use crate::progress::Progress;
use crate::spec::{BaseFrom, DataSource, ExperimentSpec};
use crate::stages::StageLog;
use cft_data::DatasetManifest;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Finds the bundled datasets folder: `./datasets`, else the source tree's (every front end's
/// default for the ARFF specs' `data.dataset` names).
pub fn default_datasets_dir() -> PathBuf {
    let here = PathBuf::from("datasets");
    if here.is_dir() {
        here
    } else {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../datasets"))
    }
}

/// The data of image specs (COCO 2014, OpenImages V3, CheXpert): images → features through a
/// backbone. The experiment layer does not link one (no candle here); `cft-images` has it.
pub trait FeatureSource: Sync {
    /// The protocol's data for `spec` (a single run, or one cell of a grid); its features and
    /// image lists go under `<out>/<spec's name>/features/`.
    fn load(
        &self,
        spec: &ExperimentSpec,
        spec_path: &Path,
        out: &Path,
        progress: &dyn Progress,
    ) -> Result<ProtocolData>;
    /// The dataset's root folder for `spec`, when known (checked against the output folder).
    fn root(&self, spec: &ExperimentSpec, spec_path: &Path) -> Option<PathBuf>;
}

/// Everything besides the spec that decides how it runs.
pub struct RunRequest<'a> {
    /// The spec file (relative paths in it are resolved against its folder).
    pub spec_path: &'a Path,
    /// The spec, when it is not read from `spec_path` (`cft reproduce` builds one from its
    /// flags; `spec_path` then only names it and anchors its relative paths).
    pub spec: Option<ExperimentSpec>,
    /// Reports folder (default: the spec's `output.dir`).
    pub out: Option<PathBuf>,
    /// Folder of the bundled datasets (ARFF specs).
    pub datasets_dir: PathBuf,
    /// The classifier's key in a `[base] head` file (overrides the spec's `base.head_key`).
    pub head_key: Option<String>,
    /// Reuse finished units, cells and extraction parts of the same configuration and data.
    pub resume: bool,
    /// Run only shard `(i, n)`: a grid's cells, or a single spec's units.
    pub shard: Option<(usize, usize)>,
    /// Record each stage's time and memory (single specs).
    pub stages: Option<&'a StageLog>,
    /// What fits the CFT heads.
    pub engine: &'a dyn CftEngine,
    /// Where progress goes (steps: base heads and CFT methods of every unit).
    pub progress: &'a dyn Progress,
    /// The image datasets' source, when the front end links one.
    pub images: Option<&'a dyn FeatureSource>,
    /// Test hook: stop with an error, as if killed, once this many units were written.
    pub interrupt_after_units: Option<usize>,
}

/// What [`run_spec`] did.
#[derive(Debug)]
pub enum RunOutcome {
    /// A single protocol run (or one shard of its units).
    Single(Box<Reproduction>),
    /// A grid (or one shard of its cells).
    Grid(GridRun),
}

impl RunRequest<'_> {
    /// The reports folder of `spec`.
    pub fn out_for(&self, spec: &ExperimentSpec) -> PathBuf {
        self.out.clone().unwrap_or_else(|| spec.output.dir.clone())
    }

    /// The data of a (cell) spec: the ARFF dataset it names, the feature sets it lists, or the
    /// image dataset through [`RunRequest::images`].
    pub fn load_data(&self, spec: &ExperimentSpec, out: &Path, grid: bool) -> Result<ProtocolData> {
        let at = |key: &str, e: crate::error::ExperimentError| {
            crate::error::refused!("{}: {key}: {e}", self.spec_path.display())
        };
        match spec.data.source {
            DataSource::Features => {
                let resolve = |p: &Option<PathBuf>| p.as_ref().map(|p| ExperimentSpec::resolve(self.spec_path, p));
                let (Some(train), Some(test)) = (resolve(&spec.data.train), resolve(&spec.data.test)) else {
                    bail!("data.train, data.test: missing (checked)")
                };
                let head = resolve(&spec.base.head);
                let key = self.head_key.clone().or_else(|| spec.base.head_key.clone());
                let given = match (*spec.base.from.get(), &head) {
                    (BaseFrom::Head, Some(h)) => Some((h.as_path(), key.as_deref())),
                    _ => None,
                };
                let mut data = ProtocolData::from_feature_sets(&spec.name(None), &train, &test, given)
                    .map_err(|e| at("data", e))?;
                data.notes = spec.output.notes.clone();
                Ok(data)
            }
            DataSource::Arff => {
                let manifest = DatasetManifest::resolve(&spec.dataset_in(self.spec_path), &self.datasets_dir)
                    .map_err(|e| at("data.dataset", e.into()))?;
                let mut data = ProtocolData::from_manifest(&manifest)?;
                // A grid's cells are named by the grid; a single run by the spec.
                data.name = if grid { manifest.name.clone() } else { spec.name(Some(&manifest.name)) };
                data.notes = spec.output.notes.clone();
                Ok(data)
            }
            _ => match self.images {
                Some(images) => images.load(spec, self.spec_path, out, self.progress),
                None => bail!(
                    "{}: data.source = \"{}\" is an image dataset; this front end has no image source (use the `cft` binary)",
                    self.spec_path.display(),
                    spec.data.source.name()
                ),
            },
        }
    }

    /// The files `cells` read by name (`data.train`, `data.test`, `base.head`,
    /// `backbone.weights`), resolved against the spec's folder.
    fn input_files(&self, cells: &[crate::grid::Cell]) -> Vec<(&'static str, PathBuf)> {
        let mut files: Vec<(&'static str, PathBuf)> = Vec::new();
        for cell in cells.iter().map(|c| &c.spec) {
            let weights = cell.backbone.as_ref().and_then(|b| b.weights.clone());
            for (role, path) in [
                ("data.train", &cell.data.train),
                ("data.test", &cell.data.test),
                ("base.head", &cell.base.head),
                ("backbone.weights", &weights),
            ] {
                if let Some(p) = path {
                    let p = ExperimentSpec::resolve(self.spec_path, p);
                    if !files.iter().any(|(_, f)| f == &p) {
                        files.push((role, p));
                    }
                }
            }
        }
        files
    }

    /// The folders `spec` reads data from: every ARFF dataset's folder (a grid's `cells` may
    /// list several), or the image dataset's root.
    fn input_folders(&self, spec: &ExperimentSpec, cells: &[crate::grid::Cell]) -> Vec<(&'static str, PathBuf)> {
        if spec.data.source != DataSource::Arff {
            let root = self.images.and_then(|i| i.root(spec, self.spec_path));
            return root.map(|r| vec![("the data root", r)]).unwrap_or_default();
        }
        let mut folders = Vec::new();
        for cell in cells {
            if let Ok(m) = DatasetManifest::resolve(&cell.spec.dataset_in(self.spec_path), &self.datasets_dir) {
                if !folders.iter().any(|(_, f)| f == &m.root) {
                    folders.push(("the dataset folder", m.root));
                }
            }
        }
        folders
    }
}

/// Runs the spec at `req.spec_path`: checked before any work, the reports folder apart from
/// every input folder, then the grid's cells or the single protocol run (stages recorded when
/// asked). The spec's seeds reach the random streams through its protocol configuration only
/// ([`ExperimentSpec::protocol_config`]).
pub fn run_spec(req: &RunRequest<'_>) -> Result<RunOutcome> {
    let spec = match &req.spec {
        Some(spec) => spec.clone().checked_at(req.spec_path)?,
        None => ExperimentSpec::load(req.spec_path)?,
    };
    let out = req.out_for(&spec);
    // The cells (one for a spec without a grid), expanded once for every check below.
    let cells = crate::grid::expand(&spec)?;
    let folders = req.input_folders(&spec, &cells);
    let named: Vec<cft_data::Named<'_>> = folders.iter().map(|(r, p)| cft_data::Named::new(r, p)).collect();
    cft_data::check_folder_apart(cft_data::Named::new("--out", &out), &named)?;
    let files = req.input_files(&cells);
    let named: Vec<cft_data::Named<'_>> = files.iter().map(|(r, p)| cft_data::Named::new(r, p)).collect();
    cft_data::check_folder_off_files(cft_data::Named::new("--out", &out), &named)?;
    // What the engine cannot run (the CUDA engine's limits) is refused before any data is
    // loaded or any image extracted.
    for cell in &cells {
        for (_, fc) in &cell.spec.protocol_config("").checked()?.methods {
            req.engine.supports(fc)?;
        }
    }
    if spec.is_grid() {
        let mine = |c: &&crate::grid::Cell| req.shard.is_none_or(|(i, n)| c.index % n == i);
        let total: u64 = cells.iter().filter(mine).map(|c| c.spec.protocol_config("").steps() as u64).sum();
        let done = std::sync::atomic::AtomicU64::new(0);
        let label = std::sync::Mutex::new(String::from("grid"));
        let stop = || req.progress.stop_requested();
        let opts = GridOptions { resume: req.resume, shard: req.shard, engine: Some(req.engine), stop: Some(&stop) };
        let run = crate::ablation::run_grid(
            &spec,
            req.spec_path,
            &out,
            opts,
            &|cell_spec| req.load_data(cell_spec, &out, true),
            &|| {
                let d = done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                req.progress.update(d, total, &label.lock().unwrap_or_else(|e| e.into_inner()));
            },
            &|cell, k, n| {
                *label.lock().unwrap_or_else(|e| e.into_inner()) = format!("cell {}/{n}: {}", k + 1, cell.describe());
            },
        )?;
        req.progress.finish();
        return Ok(RunOutcome::Grid(run));
    }
    let data = match req.stages {
        Some(log) => log.time("load", || req.load_data(&spec, &out, false))?,
        None => req.load_data(&spec, &out, false)?,
    };
    let cfg = spec.protocol_config(&data.name);
    let bases = match &data.given_head {
        Some(g) if g.label == "checkpoint" => "the checkpoint's classifier".to_string(),
        Some(g) => format!("the {}", g.label),
        None => "2 base heads".to_string(),
    };
    req.progress.note(&format!(
        "{}: {} label settings × 2 protocols × ({bases} + {} CFT methods){}",
        data.name,
        cfg.label_points(),
        cfg.methods.len(),
        req.shard.map_or(String::new(), |(i, n)| format!("; shard {i}/{n}"))
    ));
    #[derive(Serialize)]
    struct RunConfig<'a> {
        spec_file: String,
        spec: &'a ExperimentSpec,
    }
    let run_config = RunConfig { spec_file: req.spec_path.display().to_string(), spec: &spec };
    let stop = || req.progress.stop_requested();
    let opts = RunOptions {
        resume: req.resume,
        interrupt_after_units: req.interrupt_after_units,
        engine: Some(req.engine),
        stages: req.stages,
        shard: req.shard,
        stop: Some(&stop),
        ..RunOptions::default()
    };
    let total = cfg.steps() as u64;
    let done = std::sync::atomic::AtomicU64::new(0);
    let label = format!("reproduce {}", data.name);
    let on_step = || {
        let d = done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        req.progress.update(d, total, &label);
    };
    let run = crate::partial_label::run_protocol(&cfg, &data, &out, &run_config, &on_step, opts)?;
    req.progress.finish();
    if let Some(log) = req.stages {
        let feature_bytes = 4 * [&data.train.features, &data.test.features]
            .into_iter()
            .chain(data.per_proportion.iter().flat_map(|f| [&f.train, &f.test]))
            .map(|m| (m.rows() * m.cols()) as u64)
            .sum::<u64>();
        let text = format!(
            "# Stages of `cft run {}` ({}; engine {})\n\n{}",
            req.spec_path.display(),
            data.name,
            req.engine.name(),
            log.table(feature_bytes)
        );
        cft_data::write_atomic(&run.dir.join("stages.md"), text.as_bytes())?;
    }
    Ok(RunOutcome::Single(Box::new(run)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cft_core::{CheckedFineTune, FineTuneRun, Hooks, LinearHead, SplitRef};

    /// An engine that cannot run the GA's torch-cpu tie rule (as the CUDA engine could not).
    struct NoTorchCpuTies;

    impl CftEngine for NoTorchCpuTies {
        fn name(&self) -> String {
            "no-torch-cpu-ties".into()
        }
        fn supports(&self, cfg: &CheckedFineTune) -> Result<()> {
            if matches!(&cfg.method, cft_core::Method::Ga(ga) if ga.elite_ties == cft_core::GaEliteTies::TorchCpu) {
                bail!("cft.ga.elite_ties = \"torch-cpu\": this engine cannot run it")
            }
            Ok(())
        }
        fn finetune(
            &self,
            _: &CheckedFineTune,
            _: &LinearHead,
            _: SplitRef<'_>,
            _: SplitRef<'_>,
            _: &Hooks<'_>,
        ) -> Result<FineTuneRun> {
            unreachable!("refused before any work")
        }
    }

    /// An image source that must never be asked for data.
    struct NoImages;

    impl FeatureSource for NoImages {
        fn load(&self, _: &ExperimentSpec, _: &Path, _: &Path, _: &dyn Progress) -> Result<ProtocolData> {
            panic!("the images were loaded before the engine's refusal")
        }
        fn root(&self, _: &ExperimentSpec, _: &Path) -> Option<PathBuf> {
            None
        }
    }

    #[test]
    fn what_the_engine_cannot_run_is_refused_before_any_image_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("coco.toml");
        let text =
            "[data]\nsource = \"coco2014\"\nroot = \"coco\"\n[backbone]\nname = \"resnet101\"\nimage_size = 448\n\
                    [labels]\nproportions = [0.5]\n[cft]\nmethods = [\"ga\"]\n[cft.ga]\nelite_ties = \"torch-cpu\"\n";
        std::fs::write(&spec, text).unwrap();
        let out = dir.path().join("out");
        let req = RunRequest {
            spec_path: &spec,
            spec: None,
            out: Some(out.clone()),
            datasets_dir: default_datasets_dir(),
            head_key: None,
            resume: false,
            shard: None,
            stages: None,
            engine: &NoTorchCpuTies,
            progress: &crate::progress::Silent,
            images: Some(&NoImages),
            interrupt_after_units: None,
        };
        let e = run_spec(&req).unwrap_err().to_string();
        assert!(e.contains("this engine cannot run it"), "{e}");
        assert!(!out.exists(), "nothing written");
    }
}
