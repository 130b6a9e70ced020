//! The paper's partial-label protocol on features, as a library: a bundled Mulan/MEKA ARFF
//! dataset ([`ProtocolData::from_manifest`]) or features a front end extracted from an image
//! dataset (COCO, OpenImages, CheXpert), given as [`ProtocolData`].
//!
//! Training labels ([`LabelSource`]) are either dropped by the reference protocol at each
//! known-label proportion (numpy PCG64, seed 526, per image positives then negatives) or the
//! dataset's real partial labels (one unit). For each such unit and each selection protocol:
//! * base heads: linear AN and Ignore heads on the frozen features ([`cft_core::base_head`]),
//!   or the checkpoint's own classifier when the data brings one ([`GivenHead`]);
//! * CFT on the first base head with BP-ASL, BP-BCE and GA;
//! * the metric (AP or AUC) per category on the evaluation split, its mean, and optionally the
//!   means over frequency groups (OpenImages V3's G1–G5).
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
use crate::error::{bail, Context, Result};
use crate::manifest::{write_manifest, InputFile, RunClock};
use crate::stages::StageLog;
use cft_core::{
    drop_labels, finetune, mean_defined, sparse_scores, train_base_head_sparse, AdamConfig, BaseHeadConfig, BaseMode,
    CategoryOutcome, FineTuneConfig, GaConfig, GroupBy, LinearHead, Loss, Matrix, Method, Metric, Pcg64, SparseLabels,
    SplitRef,
};
use cft_data::{check_collisions, DatasetManifest, Named};
use cft_results::{ExperimentResults, GroupCell, MethodRow, Protocol, ResultCell};
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
    /// Where the training labels come from (absent in older units: dropped).
    #[serde(default, skip_serializing_if = "LabelSource::is_drop")]
    pub label_source: LabelSource,
    /// The selection, GA-fitness and evaluation metric (absent in older units: AP).
    #[serde(default, skip_serializing_if = "is_ap")]
    pub metric: Metric,
    /// Frequency groups reported beside the mean (OpenImages V3: 5 groups by positives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<GroupSpec>,
    /// The CFT methods, in row order (absent in older units: all three).
    #[serde(default = "all_methods", skip_serializing_if = "is_all_methods")]
    pub methods: Vec<String>,
    /// ASL's (γ−, γ+, clip) for CFT-BP-ASL (absent in older units: the reference's).
    #[serde(default = "reference_asl", skip_serializing_if = "is_reference_asl")]
    pub asl: (f32, f32, f32),
}

/// The CFT methods by name, in the tables' order.
pub const METHODS: [&str; 3] = ["bp-asl", "bp-bce", "ga"];

fn all_methods() -> Vec<String> {
    METHODS.iter().map(|m| m.to_string()).collect()
}
fn is_all_methods(m: &[String]) -> bool {
    m == all_methods().as_slice()
}
fn reference_asl() -> (f32, f32, f32) {
    (4.0, 0.0, 0.05)
}
fn is_reference_asl(a: &(f32, f32, f32)) -> bool {
    *a == reference_asl()
}

fn is_ap(m: &Metric) -> bool {
    *m == Metric::Ap
}

/// Where a run's training labels come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LabelSource {
    /// Full labels dropped by the reference protocol at each of the configured proportions.
    #[default]
    Drop,
    /// The dataset's own partial labels, as annotated (OpenImages, CheXpert): one unit.
    Real,
}

impl LabelSource {
    fn is_drop(&self) -> bool {
        *self == LabelSource::Drop
    }
}

/// Frequency groups of categories: `groups` equal groups by the training count `by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// How many groups (OpenImages V3: 5).
    pub groups: usize,
    /// What a category's training count is.
    #[serde(default)]
    pub by: GroupBy,
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
            label_source: LabelSource::Drop,
            metric: Metric::Ap,
            groups: None,
            methods: all_methods(),
            asl: reference_asl(),
        }
    }

    fn base(&self, mode: BaseMode) -> BaseHeadConfig {
        BaseHeadConfig { mode, epochs: self.base_epochs, lr: self.base_lr, weight_decay: self.base_weight_decay }
    }

    /// Progress steps of one unit: each base head (two linear heads, or the given one counted
    /// as two) and each CFT method.
    pub fn steps_per_unit(&self) -> usize {
        2 + self.methods().len()
    }

    /// Progress steps of a whole run: every (proportion, protocol) unit.
    pub fn steps(&self) -> usize {
        self.label_points() * 2 * self.steps_per_unit()
    }

    /// Label settings run: one per proportion, or one for real labels.
    pub fn label_points(&self) -> usize {
        match self.label_source {
            LabelSource::Drop => self.proportions.len(),
            LabelSource::Real => 1,
        }
    }

    /// The CFT methods, each applied to the first base head.
    fn methods(&self) -> Vec<(&'static str, Method)> {
        let adam = AdamConfig { lr: self.bp_lr, ..AdamConfig::default() };
        let (gamma_neg, gamma_pos, clip) = self.asl;
        let asl = Loss::Asl { gamma_neg, gamma_pos, clip, eps: 1e-8 };
        self.methods
            .iter()
            .filter_map(|m| match m.as_str() {
                "bp-asl" => Some(("CFT-BP-ASL", Method::Bp { loss: asl, adam })),
                "bp-bce" => Some(("CFT-BP-BCE", Method::Bp { loss: Loss::Bce, adam })),
                "ga" => Some(("CFT-GA", Method::Ga(self.ga))),
                _ => None,
            })
            .collect()
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

/// The unit file stem of a (proportion, protocol) unit: `p10-paper`, or `real-held-out` for
/// the real partial labels.
pub fn unit_id(cfg: &ReproduceConfig, p: f64, protocol: Protocol) -> String {
    match cfg.label_source {
        LabelSource::Drop => format!("p{:02}-{}", (100.0 * p).round() as u32, protocol.label()),
        LabelSource::Real => format!("real-{}", protocol.label()),
    }
}

/// Features with partial labels (one row per image). The labels stay sparse (per category,
/// its known images) end to end: OpenImages' 5,000 classes over millions of images would be
/// tens of GB as a dense matrix.
#[derive(Debug, Clone)]
pub struct LabelledFeatures {
    /// `images × d`.
    pub features: Matrix,
    /// Known labels per category over the images.
    pub labels: SparseLabels,
}

/// A trained classifier that serves as the base head instead of linear heads on frozen
/// features (the checkpoint's own `fc`): CFT repairs it.
#[derive(Debug, Clone)]
pub struct GivenHead {
    /// Row name in the tables (`checkpoint fc`).
    pub label: String,
    /// The head (`categories × d`).
    pub head: LinearHead,
}

/// The features of one known-label proportion when a checkpoint was trained per proportion
/// (the paper's COCO models): unit `proportion` reads these instead of the shared features.
#[derive(Debug, Clone)]
pub struct ProportionFeatures {
    /// The proportion (as in the configuration).
    pub proportion: f64,
    /// Training features (rows as [`ProtocolData::train`]).
    pub train: Matrix,
    /// Evaluation features (rows as [`ProtocolData::test`]).
    pub test: Matrix,
    /// That checkpoint's classifier, when it is the base head.
    pub given_head: Option<GivenHead>,
}

/// Everything a protocol run reads: the training and evaluation splits, and what the report
/// should say about them.
#[derive(Debug, Clone)]
pub struct ProtocolData {
    /// Report folder name (`scene`, `coco2014`, …).
    pub name: String,
    /// Category names, in label order.
    pub categories: Vec<String>,
    /// The training split: full labels (dropped per proportion) or real partial labels.
    pub train: LabelledFeatures,
    /// The evaluation split (test, val2014, CheXpert's validation CSV).
    pub test: LabelledFeatures,
    /// Files whose size and hash a resumed unit must match (dataset files, feature sets).
    pub inputs: Vec<PathBuf>,
    /// The checkpoint's classifier, when it is the base head.
    pub given_head: Option<GivenHead>,
    /// Per-proportion features and heads (empty: every unit reads `train`, `test`, `given_head`).
    pub per_proportion: Vec<ProportionFeatures>,
    /// Which of the paper's tables the run fills (see [`ExperimentResults::paper_table`]).
    pub paper_table: Option<String>,
    /// The evaluation split's name when not `test split` (`val2014`, `validation CSV`).
    pub evaluation_split: Option<String>,
    /// Heading of the real-labels column (see [`ExperimentResults::real_labels`]).
    pub real_labels: Option<String>,
    /// What the tables must say beside the numbers (base model, labels, evaluation split).
    pub notes: Vec<String>,
    /// Where the data came from, recorded in the run manifest.
    pub description: serde_json::Value,
}

impl ProtocolData {
    /// A bundled (or user) ARFF dataset through its manifest: `train` and `test` splits.
    pub fn from_manifest(manifest: &DatasetManifest) -> Result<Self> {
        let train = manifest.load_split("train")?;
        let test = manifest.load_split("test")?;
        Ok(Self {
            name: manifest.name.clone(),
            categories: train.categories.clone(),
            train: LabelledFeatures { features: train.features, labels: train.labels.to_sparse() },
            test: LabelledFeatures { features: test.features, labels: test.labels.to_sparse() },
            inputs: manifest.splits.values().chain(manifest.labels_xml.iter()).map(|f| manifest.file(f)).collect(),
            given_head: None,
            per_proportion: Vec::new(),
            paper_table: None,
            evaluation_split: None,
            real_labels: None,
            notes: Vec::new(),
            description: serde_json::to_value(manifest).unwrap_or_default(),
        })
    }

    /// A researcher's own features: `train` and `test` feature sets in the format `cft finetune`
    /// reads (safetensors `features` `n × d`, `labels` `n × C` with 1 / 0 / −1 uncertain / NaN
    /// unknown, `categories` metadata). Uncertain labels count as unknown. With `head` (an
    /// `nn.Linear` or a model state dict, its classifier found as `cft finetune --head` finds
    /// it, or under `head_key`), that head is the base model instead of linear AN/Ignore heads.
    /// Every mismatch (no labels, other dimensions, other categories) is one error naming the file.
    pub fn from_feature_sets(
        name: &str,
        train: &Path,
        test: &Path,
        head: Option<(&Path, Option<&str>)>,
    ) -> Result<Self> {
        // Read block by block into features and sparse labels (dense `labels` or sparse
        // `labels_index` + `labels_value`): at OpenImages' scale nothing is held twice.
        let load = |p: &Path| -> Result<(cft_data::LabelledSet, SparseLabels)> {
            let mut set = cft_data::read_labelled_set(p)?;
            let labels = std::mem::replace(&mut set.labels, SparseLabels { n_samples: 0, per_category: Vec::new() });
            Ok((set, labels))
        };
        let (tr, tr_labels) = load(train)?;
        let (te, te_labels) = load(test)?;
        if tr.features.cols() != te.features.cols() {
            bail!(
                "{}: {} features per row, but {} has {}: both splits must come from one network",
                test.display(),
                te.features.cols(),
                train.display(),
                tr.features.cols()
            );
        }
        let c = tr_labels.n_categories();
        if te_labels.n_categories() != c {
            bail!("{}: {} label columns, {} has {c}", test.display(), te_labels.n_categories(), train.display());
        }
        if tr.categories.is_some() && te.categories.is_some() && tr.categories != te.categories {
            bail!("{} and {}: the category names differ", train.display(), test.display());
        }
        let categories = tr.categories.clone().unwrap_or_else(|| (0..c).map(|k| format!("category {k}")).collect());
        let mut inputs = vec![train.to_path_buf(), test.to_path_buf()];
        let given_head = match head {
            None => None,
            Some((path, key)) => {
                let file = cft_data::read_head_file(path, key)?;
                let (hc, hd) = (file.head.categories(), file.head.dim());
                if (hc, hd) != (c, tr.features.cols()) {
                    bail!(
                        "{}: the head is [{hc}, {hd}], the features need [{c}, {}] (one row per category, one column per feature)",
                        path.display(),
                        tr.features.cols()
                    );
                }
                if file.categories.as_ref().is_some_and(|hcats| *hcats != categories) {
                    bail!("{}: the head's categories differ from {}'s", path.display(), train.display());
                }
                inputs.push(path.to_path_buf());
                Some(GivenHead { label: "given head".into(), head: file.head })
            }
        };
        Ok(Self {
            name: name.to_string(),
            categories,
            train: LabelledFeatures { features: tr.features, labels: tr_labels },
            test: LabelledFeatures { features: te.features, labels: te_labels },
            description: serde_json::json!({
                "source": "features",
                "train": train.display().to_string(),
                "test": test.display().to_string(),
                "head": head.map(|(p, _)| p.display().to_string()),
            }),
            inputs,
            given_head,
            per_proportion: Vec::new(),
            paper_table: None,
            evaluation_split: None,
            real_labels: None,
            notes: Vec::new(),
        })
    }

    /// The data with every feature matrix rounded to `precision` storage; f32 borrows as is
    /// (no copy of the features).
    pub fn rounded(&self, precision: cft_core::Precision) -> Cow<'_, ProtocolData> {
        if precision == cft_core::Precision::F32 {
            return Cow::Borrowed(self);
        }
        let split = |s: &LabelledFeatures| LabelledFeatures {
            features: s.features.rounded(precision),
            labels: s.labels.clone(),
        };
        Cow::Owned(ProtocolData {
            name: self.name.clone(),
            categories: self.categories.clone(),
            train: split(&self.train),
            test: split(&self.test),
            inputs: self.inputs.clone(),
            given_head: self.given_head.clone(),
            per_proportion: self
                .per_proportion
                .iter()
                .map(|f| ProportionFeatures {
                    proportion: f.proportion,
                    train: f.train.rounded(precision),
                    test: f.test.rounded(precision),
                    given_head: f.given_head.clone(),
                })
                .collect(),
            paper_table: self.paper_table.clone(),
            evaluation_split: self.evaluation_split.clone(),
            real_labels: self.real_labels.clone(),
            notes: self.notes.clone(),
            description: self.description.clone(),
        })
    }

    /// Checks the shapes the protocol relies on, naming the split.
    pub fn check(&self) -> Result<()> {
        let c = self.categories.len();
        for (name, s) in [("training", &self.train), ("evaluation", &self.test)] {
            if s.features.rows() != s.labels.n_samples || s.labels.n_categories() != c {
                bail!(
                    "{}: the {name} split has {} feature rows and {} × {} labels for {c} categories",
                    self.name,
                    s.features.rows(),
                    s.labels.n_samples,
                    s.labels.n_categories()
                );
            }
            if s.features.rows() == 0 {
                bail!("{}: the {name} split has no images", self.name);
            }
        }
        if self.train.features.cols() != self.test.features.cols() {
            bail!(
                "{}: training features have {} dimensions, evaluation features {}",
                self.name,
                self.train.features.cols(),
                self.test.features.cols()
            );
        }
        for f in &self.per_proportion {
            if f.train.rows() != self.train.features.rows()
                || f.test.rows() != self.test.features.rows()
                || f.train.cols() != f.test.cols()
            {
                bail!(
                    "{}: the features of proportion {} are {} + {} rows × {}, the splits have {} + {} images",
                    self.name,
                    f.proportion,
                    f.train.rows(),
                    f.test.rows(),
                    f.train.cols(),
                    self.train.features.rows(),
                    self.test.features.rows()
                );
            }
        }
        let heads = self.given_head.iter().chain(self.per_proportion.iter().filter_map(|f| f.given_head.as_ref()));
        for g in heads {
            if g.head.categories() != c || g.head.dim() != self.train.features.cols() {
                bail!(
                    "{}: the given head `{}` is {} × {}, the data {c} categories × {} features",
                    self.name,
                    g.label,
                    g.head.categories(),
                    g.head.dim(),
                    self.train.features.cols()
                );
            }
        }
        Ok(())
    }
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

fn test_scores(
    cfg: &ReproduceConfig,
    head: &LinearHead,
    x: &Matrix,
    y: &SparseLabels,
) -> (Vec<Option<f64>>, Option<f64>) {
    let per = sparse_scores(cfg.metric, head, x, y);
    let mean = mean_defined(&per);
    (per, mean)
}

/// What every unit of a run shares: the progress callback, the engine, the stage log.
#[derive(Clone, Copy)]
struct UnitContext<'a> {
    on_step: &'a (dyn Fn() + Sync),
    engine: &'a dyn CftEngine,
    stages: Option<&'a StageLog>,
}

/// Runs one unit; with `keep_history`, also returns the per-epoch history as CSV text
/// (columns as [`HISTORY_HEADER`]).
fn run_unit(
    cfg: &ReproduceConfig,
    data: &ProtocolData,
    p: f64,
    protocol: Protocol,
    keep_history: bool,
    ctx: &UnitContext<'_>,
) -> Result<(UnitResult, Option<String>)> {
    let UnitContext { on_step, engine, stages } = *ctx;
    let time = |name: &str, f: &mut dyn FnMut()| match stages {
        Some(log) => log.time(name, f),
        None => f(),
    };
    // A checkpoint per proportion: this unit's features and head.
    let own = data.per_proportion.iter().find(|f| (f.proportion - p).abs() < 1e-12);
    let train_x = own.map_or(&data.train.features, |f| &f.train);
    let given = own.map_or(data.given_head.as_ref(), |f| f.given_head.as_ref());
    let test_x = own.map_or(&data.test.features, |f| &f.test);
    let test_y = &data.test.labels;
    let train = &data.train;
    // Dropping needs the dense form (COCO: 82k × 80 bytes); real labels stay sparse.
    let labels = match cfg.label_source {
        LabelSource::Drop => Cow::Owned(drop_labels(&train.labels.to_dense(), p, cfg.mask_seed).to_sparse()),
        LabelSource::Real => Cow::Borrowed(&train.labels),
    };
    // Held out: the fit and the selection rows are both read from the training matrix in
    // place, each with the labels of its own rows (numbered as the matrix): no copy of the
    // features. The products are those on the gathered rows, bit for bit.
    let (fit_rows, fit_y, sel_x, sel_y, selection_images) = match protocol {
        Protocol::Paper => (None, labels, test_x, Cow::Borrowed(test_y), test_x.rows()),
        Protocol::HeldOut => {
            let (fit, sel) = holdout_split(train_x.rows(), cfg.holdout_fraction, cfg.split_seed);
            let (fit_y, sel_y) = (labels.keep_rows(&fit), labels.keep_rows(&sel));
            (Some(fit), Cow::Owned(fit_y), train_x, Cow::Owned(sel_y), sel.len())
        }
    };
    let fit_images = fit_rows.as_ref().map_or(train_x.rows(), Vec::len);
    let mut methods = Vec::new();
    // The base heads: the given classifier, or linear AN and Ignore heads; CFT starts from the first.
    let mut bases: Vec<(String, LinearHead)> = Vec::new();
    time("base heads", &mut || {
        bases = match given {
            Some(g) => vec![(g.label.clone(), g.head.clone())],
            None => [BaseMode::An, BaseMode::Ignore]
                .into_iter()
                .map(|mode| {
                    let head = train_base_head_sparse(train_x, fit_rows.as_deref(), &fit_y, &cfg.base(mode));
                    (mode.label().to_string(), head)
                })
                .collect(),
        }
    });
    let evaluate = |head: &LinearHead| {
        let mut scores = (Vec::new(), None);
        time("evaluation", &mut || scores = test_scores(cfg, head, test_x, test_y));
        scores
    };
    for (name, head) in &bases {
        let (per, mean) = evaluate(head);
        methods.push(UnitMethod {
            method: name.clone(),
            is_base: true,
            test_per_category: per,
            test_mean: mean,
            outcomes: Vec::new(),
        });
        on_step();
    }
    if bases.len() == 1 {
        on_step(); // a given head stands for both linear heads in the progress count
    }
    let (base_name, base_head) = &bases[0];
    let (st, sv) = (fit_y.as_ref(), sel_y.as_ref());
    let mut history = keep_history.then(|| String::from(HISTORY_HEADER));
    for (method_name, method) in cfg.methods() {
        let name = format!("{base_name} + {method_name}");
        let mut fc = FineTuneConfig::reference(method);
        fc.metric = cfg.metric;
        fc.max_epochs = cfg.max_epochs;
        fc.patience = cfg.patience;
        fc.seed = cfg.ga_seed;
        fc.keep_history = keep_history;
        let mut run = None;
        time(method_name, &mut || {
            run = Some(engine.finetune(
                base_head,
                SplitRef { features: train_x, labels: st },
                SplitRef { features: sel_x, labels: sv },
                &fc,
            ))
        });
        let run = run.expect("ran")?;
        let (per, mean) = evaluate(&run.head);
        if let Some(h) = history.as_mut() {
            append_history(h, &name, &data.categories, &run.categories);
        }
        // Timings make reruns differ; the unit file keeps only what determines the numbers.
        let outcomes =
            run.categories.into_iter().map(|o| CategoryOutcome { seconds: 0.0, history: Vec::new(), ..o }).collect();
        methods.push(UnitMethod { method: name, is_base: false, test_per_category: per, test_mean: mean, outcomes });
        on_step();
    }
    let unit = UnitResult {
        config: cfg.clone(),
        proportion: p,
        protocol,
        fit_images,
        selection_images,
        fit_known_fraction: if fit_images * data.categories.len() == 0 {
            0.0
        } else {
            fit_y.known_count() as f64 / (fit_images * data.categories.len()) as f64
        },
        methods,
        inputs: Vec::new(),
    };
    Ok((unit, history))
}

/// A finished unit that `--resume` may reuse: same configuration, same input files; anything
/// else (another run's unit, an older version's, a damaged file) is refused with the reason.
fn resumable_unit(path: &std::path::Path, cfg: &ReproduceConfig, inputs: &[InputFile]) -> Result<UnitResult> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    let u: UnitResult = serde_json::from_str(&text).map_err(|e| {
        crate::error::refused!(
            "{}: line {}: not a readable unit ({e}): refusing to resume; remove it or run without --resume",
            path.display(),
            e.line()
        )
    })?;
    let fingerprint = |config: &ReproduceConfig, files: &[InputFile]| -> Result<Fingerprint> {
        Ok(Fingerprint {
            config: serde_json::to_value(config)?,
            inputs: files.iter().enumerate().map(|(k, f)| (format!("dataset file {k}"), f.clone())).collect(),
        })
    };
    fingerprint(&u.config, &u.inputs)?.check_resume(&fingerprint(cfg, inputs)?, path)?;
    Ok(u)
}

/// The column values of a run: the proportions, or the training labels' known fraction (rounded
/// to 1e-6) for real labels.
fn label_points(cfg: &ReproduceConfig, data: &ProtocolData) -> Vec<f64> {
    match cfg.label_source {
        LabelSource::Drop => cfg.proportions.clone(),
        LabelSource::Real => vec![((data.train.labels.known_fraction() * 1e6).round() / 1e6).max(1e-6)],
    }
}

/// Everything besides the units that the tables of a run need: what `--shard` writes to
/// `plan.json` so that `cft report` can merge the units of every shard without the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunPlan {
    /// The configuration every unit must have been run with.
    pub config: ReproduceConfig,
    /// Dataset (report folder) name.
    pub dataset: String,
    /// Category names.
    pub categories: Vec<String>,
    /// The table's columns: proportions, or the real labels' known fraction.
    pub label_points: Vec<f64>,
    /// Training counts per category for the frequency groups (when configured).
    pub group_counts: Option<Vec<usize>>,
    /// See [`ProtocolData::paper_table`].
    pub paper_table: Option<String>,
    /// See [`ProtocolData::evaluation_split`].
    pub evaluation_split: Option<String>,
    /// See [`ProtocolData::real_labels`].
    pub real_labels: Option<String>,
    /// See [`ProtocolData::notes`].
    pub notes: Vec<String>,
    /// The input files (size and hash) every unit must have been computed from.
    pub inputs: Vec<InputFile>,
    /// The units' file stems, in table order.
    pub units: Vec<String>,
}

impl RunPlan {
    /// The plan of running `cfg` on `data` (inputs fingerprinted by the caller).
    pub fn new(cfg: &ReproduceConfig, data: &ProtocolData, inputs: Vec<InputFile>) -> Self {
        let label_points = label_points(cfg, data);
        let units = label_points
            .iter()
            .flat_map(|&p| [Protocol::Paper, Protocol::HeldOut].map(|protocol| unit_id(cfg, p, protocol)))
            .collect();
        Self {
            config: cfg.clone(),
            dataset: data.name.clone(),
            categories: data.categories.clone(),
            label_points,
            group_counts: cfg.groups.map(|g| cft_core::group_counts(&data.train.labels, g.by)),
            paper_table: data.paper_table.clone(),
            evaluation_split: data.evaluation_split.clone(),
            real_labels: data.real_labels.clone(),
            notes: data.notes.clone(),
            inputs,
            units,
        }
    }

    /// Why `other` (another shard's plan) is not this run's, if it is not: the first field
    /// that differs (input files compared by content, not path).
    pub fn differs_from(&self, other: &RunPlan) -> Option<&'static str> {
        let same_inputs = self.inputs.len() == other.inputs.len()
            && self.inputs.iter().zip(&other.inputs).all(|(a, b)| a.same_content(b));
        if self.config != other.config {
            Some("the configuration")
        } else if !same_inputs {
            Some("the input files")
        } else if self.categories != other.categories || self.dataset != other.dataset {
            Some("the dataset")
        } else if (&self.label_points, &self.group_counts, &self.units)
            != (&other.label_points, &other.group_counts, &other.units)
        {
            Some("the labels")
        } else if (&self.paper_table, &self.evaluation_split, &self.real_labels, &self.notes)
            != (&other.paper_table, &other.evaluation_split, &other.real_labels, &other.notes)
        {
            Some("the report's notes")
        } else {
            None
        }
    }
}

/// Aggregates units into the table-shaped results; `group_counts` (one training count per
/// category) turns on the frequency-group means of `cfg.groups`.
pub fn aggregate(
    cfg: &ReproduceConfig,
    data: &ProtocolData,
    units: &[UnitResult],
    group_counts: Option<&[usize]>,
) -> ExperimentResults {
    let mut plan = RunPlan::new(cfg, data, Vec::new());
    plan.group_counts = group_counts.map(<[usize]>::to_vec);
    aggregate_plan(&plan, units)
}

/// Aggregates units into the table-shaped results of `plan`.
pub fn aggregate_plan(plan: &RunPlan, units: &[UnitResult]) -> ExperimentResults {
    let cfg = &plan.config;
    let proportions = plan.label_points.clone();
    let group_counts = plan.group_counts.as_deref();
    let mut rows: Vec<MethodRow> = Vec::new();
    for protocol in [Protocol::Paper, Protocol::HeldOut] {
        let names: Vec<(String, bool)> = units
            .iter()
            .find(|u| u.protocol == protocol)
            .map(|u| u.methods.iter().map(|m| (m.method.clone(), m.is_base)).collect())
            .unwrap_or_default();
        for (name, is_base) in names {
            let cells = proportions
                .iter()
                .filter_map(|&p| {
                    let u = units.iter().find(|u| u.protocol == protocol && (u.proportion - p).abs() < 1e-12)?;
                    let m = u.methods.iter().find(|m| m.method == name)?;
                    let groups = match (cfg.groups, group_counts) {
                        (Some(g), Some(counts)) => cft_core::group_means(&m.test_per_category, counts, g.groups)
                            .into_iter()
                            .map(|g| GroupCell {
                                name: g.name,
                                categories: g.classes.len(),
                                count_range: g.count_range,
                                mean: g.mean,
                            })
                            .collect(),
                        _ => Vec::new(),
                    };
                    Some(ResultCell {
                        proportion: p,
                        mean: m.test_mean,
                        per_category: m.test_per_category.clone(),
                        skipped: m
                            .outcomes
                            .iter()
                            .filter_map(|o| o.skipped.map(|r| (o.category, r.to_string())))
                            .collect(),
                        run: Some(format!("runs/{}.json", unit_id(cfg, p, protocol))),
                        groups,
                    })
                })
                .collect();
            rows.push(MethodRow { method: name, protocol, is_base, cells });
        }
    }
    ExperimentResults {
        dataset: plan.dataset.clone(),
        metric: format!("m{}", cfg.metric.name().to_uppercase()),
        categories: plan.categories.clone(),
        proportions,
        rows,
        paper_table: plan.paper_table.clone(),
        evaluation_split: plan.evaluation_split.clone(),
        real_labels: plan.real_labels.clone(),
        notes: plan.notes.clone(),
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
    /// The aggregated results (what `results.json` holds); `None` for a shard, whose units
    /// `cft report` merges ([`merge_units`]).
    pub results: Option<ExperimentResults>,
    /// Units this call ran or reused.
    pub ran: usize,
    /// Units of the whole run.
    pub total: usize,
}

/// What fits a unit's CFT heads: `[cft] engine` (`cft run --engine`). The CPU engines give
/// identical results; a GPU engine lives in a front end that links it (the CLI's `cuda` build).
pub trait CftEngine: Sync {
    /// Its name in manifests (`batched`, `per-category`, `cuda f32`).
    fn name(&self) -> String;
    /// Fine-tunes `head` on `train`, selecting on `valid` (see [`cft_core::finetune()`]).
    fn finetune(
        &self,
        head: &cft_core::LinearHead,
        train: SplitRef<'_>,
        valid: SplitRef<'_>,
        cfg: &FineTuneConfig,
    ) -> Result<cft_core::FineTuneRun>;
    /// Whether units may call it from several threads at once (a GPU engine runs one at a time).
    fn parallel_units(&self) -> bool {
        true
    }
}

/// The CPU engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuEngine {
    /// One loop per category, categories in parallel.
    PerCategory,
    /// All categories of a batch advance one epoch per step and share one validation pass
    /// (faster; the same numbers bit for bit).
    Batched {
        /// Categories held at once.
        batch: usize,
    },
}

impl CpuEngine {
    /// The CPU engine a spec's `cft.engine` (or `--engine`) names: `batched`, `per-category`,
    /// or `auto` where no GPU engine is linked; `None` for `cuda` and unknown names.
    pub fn for_name(name: &str) -> Option<Self> {
        match name {
            "auto" | "batched" => Some(CpuEngine::default()),
            "per-category" => Some(CpuEngine::PerCategory),
            _ => None,
        }
    }
}

impl Default for CpuEngine {
    fn default() -> Self {
        CpuEngine::Batched { batch: cft_core::DEFAULT_BATCH }
    }
}

impl CftEngine for CpuEngine {
    fn name(&self) -> String {
        match self {
            CpuEngine::PerCategory => "per-category".into(),
            CpuEngine::Batched { .. } => "batched".into(),
        }
    }

    fn finetune(
        &self,
        head: &cft_core::LinearHead,
        train: SplitRef<'_>,
        valid: SplitRef<'_>,
        cfg: &FineTuneConfig,
    ) -> Result<cft_core::FineTuneRun> {
        Ok(match *self {
            CpuEngine::PerCategory => finetune(head, train, valid, cfg, &|_| {}),
            CpuEngine::Batched { batch } => {
                cft_core::finetune_batched_within(head, train, valid, cfg, batch, WORKING_SET_BYTES, &|_| {})
            }
        })
    }
}

/// The batched CPU engine's working set per batch: a GA category holds its population's
/// scores on its known rows (50 × 74k × 4 bytes = 15 MB at partial COCO's 90%), so 64 such
/// categories at once would hold more than the features themselves
/// ([`cft_core::finetune_batched_within`]).
pub const WORKING_SET_BYTES: usize = 64 << 20;

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
    data.check()?;
    let data = &*data.rounded(cfg.feature_precision);
    let folder = opts.folder.unwrap_or(&data.name);
    let dir = out.join(folder);
    let runs = dir.join("runs");
    let input_paths = &data.inputs;
    let (results_path, manifest_path) = (dir.join("results.json"), dir.join("manifest.json"));
    check_report_folder(out, folder, input_paths, &results_path, &manifest_path)?;
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
    let default_engine = CpuEngine::default();
    let engine: &dyn CftEngine = opts.engine.unwrap_or(&default_engine);
    // Collected as one Result: the first error (an interrupt, a refused unit) stops the rest.
    let one_unit = |&(p, protocol): &(f64, Protocol)| -> Result<UnitResult> {
        let id = unit_id(cfg, p, protocol);
        let path = runs.join(format!("{id}.json"));
        if resume && path.is_file() {
            let u = resumable_unit(&path, cfg, &inputs)?;
            (0..steps_per_unit).for_each(|_| on_step());
            return Ok(u);
        }
        // Histories are kept for the first proportion: enough to plot, small to store.
        let keep_history = p == points[0];
        let ctx = UnitContext { on_step, engine, stages: opts.stages };
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
fn check_report_folder(
    out: &Path,
    folder: &str,
    input_paths: &[PathBuf],
    results_path: &Path,
    manifest_path: &Path,
) -> Result<()> {
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
    check_collisions(
        &named_inputs,
        &[Named::new("results.json", results_path), Named::new("manifest.json", manifest_path)],
    )?;
    Ok(())
}

/// Writes `plan.json` of a sharded run, or checks that the one there (another shard's) is this
/// run's: shards of another spec version, configuration or data are refused.
fn write_plan(dir: &Path, plan: &RunPlan) -> Result<()> {
    let path = dir.join("plan.json");
    if path.is_file() {
        let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
        let theirs: RunPlan = serde_json::from_str(&text).map_err(|e| {
            crate::error::refused!(
                "{}: line {}: not a readable run plan ({e}); remove the folder or use another --out",
                path.display(),
                e.line()
            )
        })?;
        if let Some(what) = plan.differs_from(&theirs) {
            bail!(
                "{}: written by a shard of another run ({what} differs): shards of one run need the same spec version, configuration and data; remove the folder or use another --out",
                path.display()
            );
        }
        return Ok(());
    }
    cft_data::write_atomic(&path, (serde_json::to_string_pretty(plan)? + "\n").as_bytes())?;
    Ok(())
}

/// Merges the units of a sharded run (`<dir>/plan.json`, `<dir>/runs/*.json`) into
/// `results.json`, the dataset report and a manifest, once every unit is there (`Ok(None)`
/// while some are missing). A unit of another configuration or data is refused.
pub fn merge_units(dir: &Path) -> Result<Option<ExperimentResults>> {
    let clock = RunClock::start();
    let path = dir.join("plan.json");
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    let plan: RunPlan = serde_json::from_str(&text)
        .map_err(|e| crate::error::refused!("{}: line {}: not a readable run plan ({e})", path.display(), e.line()))?;
    let mut units = Vec::with_capacity(plan.units.len());
    for id in &plan.units {
        let unit = dir.join("runs").join(format!("{id}.json"));
        if !unit.is_file() {
            return Ok(None);
        }
        units.push(resumable_unit(&unit, &plan.config, &plan.inputs)?);
    }
    let results = aggregate_plan(&plan, &units);
    let (results_path, manifest_path) = (dir.join("results.json"), dir.join("manifest.json"));
    let _lock = cft_data::OutputLock::acquire(&results_path)?;
    cft_data::write_atomic(&results_path, (serde_json::to_string_pretty(&results)? + "\n").as_bytes())?;
    let mut outputs = cft_report::write_dataset_report(dir, &results)?;
    outputs.extend([results_path, manifest_path.clone()]);
    #[derive(Serialize)]
    struct Merged<'a> {
        reproduce: &'a ReproduceConfig,
        merged_units: &'a [String],
    }
    let m = clock.manifest(
        "report (merge of shards)",
        Merged { reproduce: &plan.config, merged_units: &plan.units },
        plan.inputs.clone(),
        outputs,
    );
    write_manifest(&manifest_path, &m)?;
    Ok(Some(results))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cft_core::{KnownSamples, SkipReason};

    /// Two categories over `n` images: category 0 known on every image (positive on odd
    /// ones), category 1 known on every third image (all negative).
    fn data(n: usize) -> ProtocolData {
        let labels = |n: usize| SparseLabels {
            n_samples: n,
            per_category: vec![
                KnownSamples {
                    positives: (0..n as u32).filter(|i| i % 2 == 1).collect(),
                    negatives: (0..n as u32).filter(|i| i % 2 == 0).collect(),
                    uncertain: Vec::new(),
                },
                KnownSamples {
                    positives: Vec::new(),
                    negatives: (0..n as u32).step_by(3).collect(),
                    uncertain: Vec::new(),
                },
            ],
        };
        let features = |n: usize| Matrix::new(n, 2, (0..2 * n).map(|i| (i % 7) as f32 - 3.0).collect()).unwrap();
        ProtocolData {
            name: "toy".into(),
            categories: vec!["a".into(), "b".into()],
            train: LabelledFeatures { features: features(n), labels: labels(n) },
            test: LabelledFeatures { features: features(n / 2), labels: labels(n / 2) },
            inputs: Vec::new(),
            given_head: None,
            per_proportion: Vec::new(),
            paper_table: None,
            evaluation_split: None,
            real_labels: None,
            notes: vec!["a note".into()],
            description: serde_json::Value::Null,
        }
    }

    #[test]
    fn the_held_out_split_is_a_fixed_seeded_partition_of_the_requested_size() {
        let (fit, sel) = holdout_split(1000, 0.2, 0);
        assert_eq!((fit.len(), sel.len()), (800, 200));
        let mut all: Vec<usize> = fit.iter().chain(&sel).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>(), "every image once, in one part");
        assert!(fit.windows(2).all(|w| w[0] < w[1]) && sel.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(holdout_split(1000, 0.2, 0), (fit.clone(), sel.clone()), "same seed, same split");
        assert_ne!(holdout_split(1000, 0.2, 1).1, sel, "another seed, another split");
    }

    #[test]
    fn selection_on_kept_rows_equals_selection_on_the_gathered_rows() {
        // The held-out unit keeps the labels of each part's rows on the whole matrix; the
        // engines then see exactly the gathered rows' samples, in the same order.
        let d = data(60);
        let (fit, sel) = holdout_split(60, 0.2, 3);
        let kept = d.train.labels.keep_rows(&sel);
        let gathered = d.train.labels.select_rows(&sel);
        for c in 0..2 {
            let (rows, y) = kept.per_category[c].known_sorted();
            let (grows, gy) = gathered.per_category[c].known_sorted();
            assert_eq!(y, gy);
            assert_eq!(rows.iter().map(|r| sel.binary_search(r).unwrap()).collect::<Vec<_>>(), grows);
        }
        assert_eq!(d.train.labels.keep_rows(&fit).known_count() + kept.known_count(), d.train.labels.known_count());
    }

    #[test]
    fn a_unit_fits_both_protocols_and_aggregation_builds_the_table_rows() {
        let d = data(60);
        let mut cfg = ReproduceConfig::new("toy", true, 0);
        cfg.proportions = vec![0.5];
        cfg.max_epochs = 5;
        cfg.patience = 5;
        cfg.base_epochs = 5;
        let ctx = UnitContext { on_step: &|| {}, engine: &CpuEngine::default(), stages: None };
        let units: Vec<UnitResult> = [Protocol::Paper, Protocol::HeldOut]
            .into_iter()
            .map(|protocol| run_unit(&cfg, &d, 0.5, protocol, false, &ctx).unwrap().0)
            .collect();
        assert_eq!((units[0].fit_images, units[0].selection_images), (60, 30));
        assert_eq!((units[1].fit_images, units[1].selection_images), (48, 12));
        let names: Vec<&str> = units[0].methods.iter().map(|m| m.method.as_str()).collect();
        assert_eq!(names, ["AN", "Ignore", "AN + CFT-BP-ASL", "AN + CFT-BP-BCE", "AN + CFT-GA"]);
        // Category 1 has no positive: skipped by CFT, undefined in the test scores.
        let ga = &units[0].methods[4];
        assert_eq!(ga.outcomes[1].skipped, Some(SkipReason::NoTrainPositive));
        assert_eq!(ga.test_per_category[1], None);
        let results = aggregate(&cfg, &d, &units, None);
        assert_eq!(results.rows.len(), 10);
        assert_eq!(results.proportions, vec![0.5]);
        let row = &results.rows[4];
        assert_eq!((row.method.as_str(), row.protocol, row.is_base), ("AN + CFT-GA", Protocol::Paper, false));
        assert_eq!(row.cells[0].mean, ga.test_mean);
        assert_eq!(row.cells[0].skipped, vec![(1, SkipReason::NoTrainPositive.to_string())]);
        assert_eq!(row.cells[0].run.as_deref(), Some("runs/p50-paper.json"));
        assert_eq!(results.notes, vec!["a note".to_string()]);
        // The plan a shard writes aggregates to the same table.
        let plan = RunPlan::new(&cfg, &d, Vec::new());
        assert_eq!(plan.units, ["p50-paper", "p50-held-out"]);
        assert_eq!(aggregate_plan(&plan, &units), results);
        let other = RunPlan::new(&ReproduceConfig { max_epochs: 6, ..cfg.clone() }, &d, Vec::new());
        assert_eq!(plan.differs_from(&other), Some("the configuration"));
        assert_eq!(plan.differs_from(&plan.clone()), None);
    }
}
