//! The paper's partial-label protocol on a feature dataset (Mulan/MEKA ARFF), as a library.
//!
//! For each known-label proportion (labels dropped by the reference protocol: numpy PCG64,
//! seed 526, per image positives then negatives) and each selection protocol:
//! * base heads trained in AN and Ignore mode ([`cft_core::base_head`]);
//! * CFT on the AN head with BP-ASL, BP-BCE and GA;
//! * test mAP and per-category AP on the official test split.
//!
//! Protocols ([`Protocol`]): **paper** trains on the whole training split and selects CFT
//! epochs on the test split, as the reference does; **held-out** trains on 80% of the training
//! images and selects on the known labels of the fixed other 20%.
//!
//! Each (proportion, protocol) unit is written to `runs/<unit>.json` atomically with the
//! fingerprints of its dataset files; a resumed run reuses units of the same configuration and
//! data and refuses any other ([`crate::checkpoint`]). The aggregated `results.json` holds no
//! timing, so two runs give byte-identical results; timings go to `manifest.json`.

use crate::checkpoint::Fingerprint;
use crate::manifest::{write_manifest, InputFile, RunClock};
use anyhow::{bail, Context, Result};
use cft_core::{
    drop_labels, finetune, mean_defined, partial_scores, train_base_head, AdamConfig, BaseHeadConfig, BaseMode,
    CategoryOutcome, FineTuneConfig, GaConfig, LinearHead, Loss, Method, Metric, Pcg64, SplitRef,
};
use cft_data::{check_collisions, ArffDataset, DatasetManifest, Named};
use cft_report::{ExperimentResults, MethodRow, Protocol, ResultCell};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// Header of the per-epoch history CSV written by `finetune --history` and the protocol.
pub const HISTORY_HEADER: &str = "method,category,name,epoch,loss,best_fitness,mean_fitness,valid_score\n";

/// Appends every category's per-epoch history to `csv` (columns as [`HISTORY_HEADER`]).
pub fn append_history(csv: &mut String, method: &str, names: &[String], outcomes: &[CategoryOutcome]) {
    let opt = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x}"));
    for o in outcomes {
        let name = names.get(o.category).map_or(String::new(), |n| n.replace(',', ";"));
        for e in &o.history {
            csv.push_str(&format!(
                "{method},{},{name},{},{},{},{},{}\n",
                o.category,
                e.epoch,
                opt(e.loss),
                opt(e.best_fitness),
                opt(e.mean_fitness),
                e.valid_score
            ));
        }
    }
}

/// Everything that determines the numbers of a reproduction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReproduceConfig {
    /// Dataset name.
    pub dataset: String,
    /// Known-label proportions.
    pub proportions: Vec<f64>,
    /// Seed of the label-dropping stream (the reference's 526).
    pub mask_seed: u64,
    /// Fraction of training images held out for selection in the held-out protocol.
    pub holdout_fraction: f64,
    /// Seed of the held-out split.
    pub split_seed: u64,
    /// Seed of the GA's per-category streams.
    pub ga_seed: u64,
    /// CFT epoch limit.
    pub max_epochs: usize,
    /// CFT patience.
    pub patience: usize,
    /// Adam learning rate of CFT-BP.
    pub bp_lr: f32,
    /// GA settings.
    pub ga: GaConfig,
    /// Base-head recipe (mode set per row).
    pub base_epochs: usize,
    /// Base-head learning rate.
    pub base_lr: f32,
    /// Base-head weight decay.
    pub base_weight_decay: f32,
    /// Feature storage precision.
    #[serde(default)]
    pub feature_precision: cft_core::Precision,
}

impl ReproduceConfig {
    /// The reference settings (5000 epochs, patience 300, lr 1e-4), or the reduced CI grid.
    pub fn new(dataset: &str, quick: bool, seed: u64) -> Self {
        let base = BaseHeadConfig::recipe(BaseMode::An);
        Self {
            dataset: dataset.to_string(),
            proportions: if quick { vec![0.1, 0.5, 0.9] } else { (1..=9).map(|k| f64::from(k) / 10.0).collect() },
            mask_seed: 526,
            holdout_fraction: 0.2,
            split_seed: seed,
            ga_seed: seed,
            max_epochs: if quick { 300 } else { 5000 },
            patience: if quick { 50 } else { 300 },
            bp_lr: 1e-4,
            ga: GaConfig::default(),
            base_epochs: base.epochs,
            base_lr: base.lr,
            base_weight_decay: base.weight_decay,
            feature_precision: cft_core::Precision::F32,
        }
    }

    fn base(&self, mode: BaseMode) -> BaseHeadConfig {
        BaseHeadConfig { mode, epochs: self.base_epochs, lr: self.base_lr, weight_decay: self.base_weight_decay }
    }

    /// Progress steps of one unit: each base head and each CFT method.
    pub fn steps_per_unit(&self) -> usize {
        2 + self.methods().len()
    }

    /// Progress steps of a whole run: every (proportion, protocol) unit.
    pub fn steps(&self) -> usize {
        self.proportions.len() * 2 * self.steps_per_unit()
    }

    fn methods(&self) -> Vec<(&'static str, Method)> {
        let adam = AdamConfig { lr: self.bp_lr, ..AdamConfig::default() };
        vec![
            ("AN + CFT-BP-ASL", Method::Bp { loss: Loss::ASL_REFERENCE, adam }),
            ("AN + CFT-BP-BCE", Method::Bp { loss: Loss::Bce, adam }),
            ("AN + CFT-GA", Method::Ga(self.ga)),
        ]
    }
}

/// One method's result in a unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitMethod {
    /// Row name.
    pub method: String,
    /// Whether it is a base head.
    pub is_base: bool,
    /// Test score per category.
    pub test_per_category: Vec<Option<f64>>,
    /// Test mean over defined categories.
    pub test_mean: Option<f64>,
    /// CFT outcomes per category (empty for base heads).
    pub outcomes: Vec<CategoryOutcome>,
}

/// One (proportion, protocol) unit as written to `runs/<id>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitResult {
    /// The configuration it was run with.
    pub config: ReproduceConfig,
    /// Known-label proportion.
    pub proportion: f64,
    /// Protocol.
    pub protocol: Protocol,
    /// Images CFT and the base heads were trained on.
    pub fit_images: usize,
    /// Images whose known labels selected the CFT epoch (the test split under `paper`).
    pub selection_images: usize,
    /// Fraction of known labels on the fit images.
    pub fit_known_fraction: f64,
    /// Rows.
    pub methods: Vec<UnitMethod>,
    /// The dataset files the unit was computed from (size and hash), so that `--resume`
    /// never adopts a unit of other data. Absent in units of older versions.
    #[serde(default)]
    pub inputs: Vec<InputFile>,
}

fn unit_id(p: f64, protocol: Protocol) -> String {
    format!("p{:02}-{}", (100.0 * p).round() as u32, protocol.label())
}

/// The fixed held-out split: a seeded permutation; the first `fraction` of it selects.
pub fn holdout_split(n: usize, fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut idx: Vec<usize> = (0..n).collect();
    let mut rng = Pcg64::new(seed);
    for i in (1..n).rev() {
        let j = ((rng.random() * (i + 1) as f64) as usize).min(i);
        idx.swap(i, j);
    }
    let k = ((n as f64) * fraction).round() as usize;
    let (mut sel, mut fit) = (idx[..k].to_vec(), idx[k..].to_vec());
    sel.sort_unstable();
    fit.sort_unstable();
    (fit, sel)
}

fn test_scores(head: &LinearHead, test: &ArffDataset) -> (Vec<Option<f64>>, Option<f64>) {
    let per = partial_scores(Metric::Ap, &head.logits(&test.features), &test.labels);
    let mean = mean_defined(&per);
    (per, mean)
}

/// Runs one unit; with `keep_history`, also returns the per-epoch history as CSV text
/// (`method,category,epoch,loss,best_fitness,mean_fitness,valid_score`).
fn run_unit(
    cfg: &ReproduceConfig,
    train: &ArffDataset,
    test: &ArffDataset,
    p: f64,
    protocol: Protocol,
    keep_history: bool,
    on_step: &(dyn Fn() + Sync),
) -> (UnitResult, Option<String>) {
    let masked = drop_labels(&train.labels, p, cfg.mask_seed);
    let (fit_x, fit_y, sel_x, sel_y) = match protocol {
        // The paper protocol uses the splits as they are: borrow, do not copy, the features.
        Protocol::Paper => (Cow::Borrowed(&train.features), masked, Cow::Borrowed(&test.features), test.labels.clone()),
        Protocol::HeldOut => {
            let (fit, sel) = holdout_split(train.features.rows(), cfg.holdout_fraction, cfg.split_seed);
            (
                Cow::Owned(train.features.gather_rows(&fit)),
                masked.select_rows(&fit),
                Cow::Owned(train.features.gather_rows(&sel)),
                masked.select_rows(&sel),
            )
        }
    };
    let mut methods = Vec::new();
    let mut an_head = None;
    for mode in [BaseMode::An, BaseMode::Ignore] {
        let head = train_base_head(&fit_x, &fit_y, &cfg.base(mode));
        let (per, mean) = test_scores(&head, test);
        methods.push(UnitMethod {
            method: mode.label().to_string(),
            is_base: true,
            test_per_category: per,
            test_mean: mean,
            outcomes: Vec::new(),
        });
        if mode == BaseMode::An {
            an_head = Some(head);
        }
        on_step();
    }
    let an_head = an_head.expect("AN head trained");
    let (st, sv) = (fit_y.to_sparse(), sel_y.to_sparse());
    let mut history = keep_history.then(|| String::from(HISTORY_HEADER));
    for (name, method) in cfg.methods() {
        let mut fc = FineTuneConfig::reference(method);
        fc.max_epochs = cfg.max_epochs;
        fc.patience = cfg.patience;
        fc.seed = cfg.ga_seed;
        fc.keep_history = keep_history;
        let run = finetune(
            &an_head,
            SplitRef { features: &fit_x, labels: &st },
            SplitRef { features: &sel_x, labels: &sv },
            &fc,
            &|_| {},
        );
        let (per, mean) = test_scores(&run.head, test);
        if let Some(h) = history.as_mut() {
            append_history(h, name, &train.categories, &run.categories);
        }
        // Timings make reruns differ; the unit file keeps only what determines the numbers.
        let outcomes =
            run.categories.into_iter().map(|o| CategoryOutcome { seconds: 0.0, history: Vec::new(), ..o }).collect();
        methods.push(UnitMethod {
            method: name.to_string(),
            is_base: false,
            test_per_category: per,
            test_mean: mean,
            outcomes,
        });
        on_step();
    }
    let unit = UnitResult {
        config: cfg.clone(),
        proportion: p,
        protocol,
        fit_images: fit_x.rows(),
        selection_images: sel_x.rows(),
        fit_known_fraction: fit_y.known_fraction(),
        methods,
        inputs: Vec::new(),
    };
    (unit, history)
}

/// A finished unit that `--resume` may reuse: same configuration, same dataset files; anything
/// else (another run's unit, an older version's, a damaged file) is refused with the reason.
fn resumable_unit(path: &std::path::Path, cfg: &ReproduceConfig, inputs: &[InputFile]) -> Result<UnitResult> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    let u: UnitResult = serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{}: line {}: not a readable unit ({e}): refusing to resume; remove it or run without --resume",
            path.display(),
            e.line()
        )
    })?;
    let stored = Fingerprint {
        config: serde_json::to_value(&u.config)?,
        inputs: u.inputs.iter().enumerate().map(|(k, f)| (format!("dataset file {k}"), f.clone())).collect(),
    };
    let now = Fingerprint {
        config: serde_json::to_value(cfg)?,
        inputs: inputs.iter().enumerate().map(|(k, f)| (format!("dataset file {k}"), f.clone())).collect(),
    };
    stored.check_resume(&now, path)?;
    Ok(u)
}

/// Aggregates units into the table-shaped results.
pub fn aggregate(cfg: &ReproduceConfig, categories: &[String], units: &[UnitResult]) -> ExperimentResults {
    let mut rows: Vec<MethodRow> = Vec::new();
    for protocol in [Protocol::Paper, Protocol::HeldOut] {
        let names: Vec<(String, bool)> = units
            .iter()
            .find(|u| u.protocol == protocol)
            .map(|u| u.methods.iter().map(|m| (m.method.clone(), m.is_base)).collect())
            .unwrap_or_default();
        for (name, is_base) in names {
            let cells = cfg
                .proportions
                .iter()
                .filter_map(|&p| {
                    let u = units.iter().find(|u| u.protocol == protocol && (u.proportion - p).abs() < 1e-12)?;
                    let m = u.methods.iter().find(|m| m.method == name)?;
                    Some(ResultCell {
                        proportion: p,
                        mean: m.test_mean,
                        per_category: m.test_per_category.clone(),
                        skipped: m
                            .outcomes
                            .iter()
                            .filter_map(|o| o.skipped.map(|r| (o.category, r.to_string())))
                            .collect(),
                        run: Some(format!("runs/{}.json", unit_id(p, protocol))),
                    })
                })
                .collect();
            rows.push(MethodRow { method: name, protocol, is_base, cells });
        }
    }
    ExperimentResults {
        dataset: cfg.dataset.clone(),
        metric: "mAP".into(),
        categories: categories.to_vec(),
        proportions: cfg.proportions.clone(),
        rows,
    }
}

/// Finds the bundled datasets folder: `./datasets`, else the source tree's.
pub fn default_datasets_dir() -> PathBuf {
    let here = PathBuf::from("datasets");
    if here.is_dir() {
        here
    } else {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../datasets"))
    }
}

/// What a finished protocol run wrote.
#[derive(Debug)]
pub struct Reproduction {
    /// The dataset's report folder (`<out>/<dataset>/`).
    pub dir: PathBuf,
    /// The aggregated results (what `results.json` holds).
    pub results: ExperimentResults,
}

/// Runs the protocol of `cfg` on the dataset of `manifest` into `<out>/<dataset>/`: units (in
/// parallel), `results.json`, the dataset report, the reports index when `<out>/reference/`
/// has the published numbers, and `manifest.json`. `on_step` is called after every base head
/// and CFT method of every unit (for progress); `run_config` is recorded in the manifest.
pub fn run_protocol<C: Serialize>(
    cfg: &ReproduceConfig,
    manifest: &DatasetManifest,
    out: &Path,
    resume: bool,
    run_config: &C,
    on_step: &(dyn Fn() + Sync),
) -> Result<Reproduction> {
    let clock = RunClock::start();
    let mut train = manifest.load_split("train")?;
    let mut test = manifest.load_split("test")?;
    train.features = train.features.rounded(cfg.feature_precision);
    test.features = test.features.rounded(cfg.feature_precision);
    let dir = out.join(&manifest.name);
    let runs = dir.join("runs");
    let input_paths: Vec<PathBuf> =
        manifest.splits.values().chain(manifest.labels_xml.iter()).map(|f| manifest.file(f)).collect();
    let (results_path, manifest_path) = (dir.join("results.json"), dir.join("manifest.json"));
    let named_inputs: Vec<Named<'_>> = input_paths.iter().map(|p| Named::new("a dataset file", p)).collect();
    for p in &input_paths {
        let inside = std::fs::canonicalize(p)
            .ok()
            .zip(std::fs::canonicalize(out).ok())
            .is_some_and(|(f, o)| f.starts_with(o.join(&manifest.name)));
        if inside {
            bail!(
                "--out {}: the dataset file {} lies inside the report folder this run rewrites",
                out.display(),
                p.display()
            );
        }
    }
    cft_data::check_output_folder(Named::new("--out", out))?;
    if dir.exists() && !dir.is_dir() {
        bail!("{}: exists and is not a folder", dir.display());
    }
    check_collisions(
        &named_inputs,
        &[Named::new("results.json", &results_path), Named::new("manifest.json", &manifest_path)],
    )?;
    std::fs::create_dir_all(&runs).with_context(|| runs.display().to_string())?;
    let _lock = cft_data::OutputLock::acquire(&results_path)?;
    let inputs: Vec<InputFile> = input_paths.iter().map(|p| InputFile::of(p)).collect::<Result<_>>()?;
    let units: Vec<(f64, Protocol)> =
        cfg.proportions.iter().flat_map(|&p| [(p, Protocol::Paper), (p, Protocol::HeldOut)]).collect();
    let steps_per_unit = cfg.steps_per_unit();
    let results: Vec<Result<UnitResult>> = units
        .par_iter()
        .map(|&(p, protocol)| {
            let path = runs.join(format!("{}.json", unit_id(p, protocol)));
            if resume && path.is_file() {
                let u = resumable_unit(&path, cfg, &inputs)?;
                (0..steps_per_unit).for_each(|_| on_step());
                return Ok(u);
            }
            // Histories are kept for the first proportion: enough to plot, small to store.
            let keep_history = p == cfg.proportions[0];
            let (mut u, history) = run_unit(cfg, &train, &test, p, protocol, keep_history, on_step);
            u.inputs = inputs.clone();
            if let Some(h) = history {
                cft_data::write_atomic(&runs.join(format!("{}-history.csv", unit_id(p, protocol))), h.as_bytes())?;
            }
            cft_data::write_atomic(&path, (serde_json::to_string_pretty(&u)? + "\n").as_bytes())?;
            Ok(u)
        })
        .collect();
    let units: Vec<UnitResult> = results.into_iter().collect::<Result<_>>()?;
    let results = aggregate(cfg, &train.categories, &units);
    cft_data::write_atomic(&results_path, (serde_json::to_string_pretty(&results)? + "\n").as_bytes())?;
    let mut outputs = cft_report::write_dataset_report(&dir, &results)?;
    outputs.push(results_path);
    // The reports index (with the published tables) when the reference numbers are at hand.
    let reference = out.join("reference");
    if reference.join("paper_results.csv").is_file() {
        outputs.extend(cft_report::write_index(out, out, &reference)?);
    } else {
        eprintln!("note: {} not found; skipping the reports index (run `cft report` later)", reference.display());
    }
    outputs.push(manifest_path.clone());
    #[derive(Serialize)]
    struct Config<'a, C> {
        reproduce: &'a ReproduceConfig,
        dataset_manifest: &'a DatasetManifest,
        #[serde(flatten)]
        run: &'a C,
    }
    let m = clock.manifest(
        "reproduce",
        Config { reproduce: cfg, dataset_manifest: manifest, run: run_config },
        inputs,
        outputs,
    );
    write_manifest(&manifest_path, &m)?;
    Ok(Reproduction { dir, results })
}
