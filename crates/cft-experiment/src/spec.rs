//! Experiments as files: a TOML spec names the data, the label protocol, the base heads, the
//! CFT settings, the selection protocol and the output folder. Unknown keys and wrong types
//! are errors naming the file, the line and the key path; values are range-checked.
//!
//! A spec drives the partial-label protocol ([`crate::partial_label`]) on a bundled ARFF
//! dataset (`experiments/scene.toml` is exactly `cft reproduce`) or on an image dataset read
//! through its adapter and a backbone (`experiments/coco2014.toml`, `openimages_v3.toml`,
//! `chexpert.toml`); the image side (adapters, extraction) is the front end's, this module only
//! reads and checks the file.

use crate::partial_label::{GroupSpec, LabelSource, ReproduceConfig};
use anyhow::{bail, Result};
use cft_core::{GaConfig, GroupBy, Metric, Precision};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A whole spec file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSpec {
    /// What the experiment is (shown in the manifest).
    #[serde(default)]
    pub description: String,
    /// The data.
    pub data: DataSpec,
    /// The backbone that turns images into features (image sources only).
    #[serde(default)]
    pub backbone: Option<BackboneSpec>,
    /// The training labels: dropped at proportions, or the dataset's real partial labels.
    pub labels: LabelSpec,
    /// The base heads (linear on frozen features, or the checkpoint's classifier).
    #[serde(default)]
    pub base: BaseSpec,
    /// The evaluation metric and frequency groups.
    #[serde(default)]
    pub evaluation: EvaluationSpec,
    /// CFT's settings.
    #[serde(default)]
    pub cft: CftSpec,
    /// The selection protocols' settings.
    #[serde(default)]
    pub selection: SelectionSpec,
    /// Where results go.
    #[serde(default)]
    pub output: OutputSpec,
}

/// Where the data comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataSource {
    /// A Mulan/MEKA ARFF feature dataset named by `dataset`.
    #[default]
    Arff,
    /// MS-COCO 2014: `annotations/instances_{train,val}2014.json`, `train2014/`, `val2014/`.
    Coco2014,
    /// OpenImages V3: `classes-trainable.txt`, `class-descriptions.csv`,
    /// `{train,test}/annotations-human.csv`, images as `{train,test}/<ImageID>.jpg`.
    OpenimagesV3,
    /// CheXpert: `train.csv`, `valid.csv` and the images their `Path` column names.
    Chexpert,
}

impl DataSource {
    /// The report folder and paper-table name of an image source.
    pub fn name(self) -> &'static str {
        match self {
            DataSource::Arff => "arff",
            DataSource::Coco2014 => "coco2014",
            DataSource::OpenimagesV3 => "openimages_v3",
            DataSource::Chexpert => "chexpert",
        }
    }
}

/// `[data]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// The kind of data (default: an ARFF dataset).
    #[serde(default)]
    pub source: DataSource,
    /// ARFF: a bundled dataset name (`scene`, `flags`, `emotions`) or a dataset manifest path
    /// (relative to the spec file).
    #[serde(default)]
    pub dataset: Option<String>,
    /// Image sources: the dataset's root folder (`--data-root` overrides; relative to the spec).
    #[serde(default)]
    pub root: Option<PathBuf>,
    /// Report folder name (default: `dataset`'s name, or the source's name).
    #[serde(default)]
    pub name: Option<String>,
    /// Round the features to this storage precision first (`f32` = as read).
    #[serde(default)]
    pub feature_precision: Precision,
}

/// `[backbone]`: the network that turns images into features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackboneSpec {
    /// resnet18/34/50/101/152, densenet121/169/201, resnet20-cifar.
    pub name: String,
    /// A torchvision-named state dict as safetensors (`--weights` overrides; relative to the
    /// spec); `{percent}` in the path makes it one checkpoint per known-label proportion
    /// (`coco_{percent}.safetensors` → `coco_10.safetensors`, …).
    #[serde(default)]
    pub weights: Option<PathBuf>,
    /// Images are resized to S×S (PIL bilinear).
    #[serde(default = "image_size")]
    pub image_size: usize,
    /// `imagenet` (mean/std) or `none` ([0, 1]).
    #[serde(default = "normalize")]
    pub normalize: String,
    /// Images per forward pass.
    #[serde(default = "batch")]
    pub batch: usize,
    /// `f32`, `f16` or `bf16` (bf16 on CUDA only).
    #[serde(default)]
    pub precision: Precision,
    /// `cpu`, `cuda` or `cuda:N` (`--device` overrides).
    #[serde(default = "device")]
    pub device: String,
}

fn image_size() -> usize {
    224
}
fn normalize() -> String {
    "imagenet".into()
}
fn batch() -> usize {
    32
}
fn device() -> String {
    "cpu".into()
}

/// `[labels]`: the training labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSpec {
    /// `drop` (the reference protocol on full labels) or `real` (the dataset's partial labels).
    #[serde(default)]
    pub source: LabelSource,
    /// Known-label proportions, each in (0, 1] (`drop` only).
    #[serde(default)]
    pub proportions: Vec<f64>,
    /// Seed of the dropping stream (the reference's 526).
    #[serde(default = "mask_seed")]
    pub mask_seed: u64,
    /// CheXpert's uncertain labels: `ignore` (unknown), `ones`, `zeros` or `u-ones-u-zeros`
    /// (U-Ones for Atelectasis and Edema, U-Zeros for the others).
    #[serde(default)]
    pub uncertain: Option<String>,
}

/// `[evaluation]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationSpec {
    /// `ap` (COCO, OpenImages, Mulan) or `auc` (CheXpert); also the selection and GA metric.
    #[serde(default)]
    pub metric: Metric,
    /// Means over this many frequency groups (OpenImages V3: 5).
    #[serde(default)]
    pub groups: Option<usize>,
    /// What orders the groups: training `positives` or all `known` labels.
    #[serde(default)]
    pub group_by: GroupBy,
}

/// Where the base heads come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaseFrom {
    /// Linear AN and Ignore heads trained on the frozen features (labelled so in every table).
    #[default]
    Linear,
    /// The checkpoint's own classifier (`fc` / `classifier`): CFT repairs the trained model.
    Checkpoint,
}

fn mask_seed() -> u64 {
    526
}

/// `[base]`: the recipe of the AN and Ignore base heads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseSpec {
    /// `linear` heads on frozen features, or the `checkpoint`'s classifier.
    #[serde(default)]
    pub from: BaseFrom,
    /// Full-batch Adam epochs (linear heads).
    #[serde(default = "base_epochs")]
    pub epochs: usize,
    /// Adam learning rate (linear heads).
    #[serde(default = "base_lr")]
    pub lr: f32,
    /// L2 penalty on the weights (linear heads).
    #[serde(default = "base_weight_decay")]
    pub weight_decay: f32,
}

fn base_recipe() -> cft_core::BaseHeadConfig {
    cft_core::BaseHeadConfig::recipe(cft_core::BaseMode::An)
}
fn base_epochs() -> usize {
    base_recipe().epochs
}
fn base_lr() -> f32 {
    base_recipe().lr
}
fn base_weight_decay() -> f32 {
    base_recipe().weight_decay
}

impl Default for BaseSpec {
    fn default() -> Self {
        Self { from: BaseFrom::Linear, epochs: base_epochs(), lr: base_lr(), weight_decay: base_weight_decay() }
    }
}

/// `[cft]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CftSpec {
    /// Epoch (generation) limit per category.
    #[serde(default = "max_epochs")]
    pub max_epochs: usize,
    /// Stop a category after this many epochs without improvement.
    #[serde(default = "patience")]
    pub patience: usize,
    /// Adam learning rate of CFT-BP.
    #[serde(default = "bp_lr")]
    pub bp_lr: f32,
    /// Seed of the GA's per-category streams.
    #[serde(default)]
    pub ga_seed: u64,
    /// The genetic algorithm.
    #[serde(default)]
    pub ga: GaSpec,
}

fn max_epochs() -> usize {
    5000
}
fn patience() -> usize {
    300
}
fn bp_lr() -> f32 {
    1e-4
}

impl Default for CftSpec {
    fn default() -> Self {
        Self { max_epochs: max_epochs(), patience: patience(), bp_lr: bp_lr(), ga_seed: 0, ga: GaSpec::default() }
    }
}

/// `[cft.ga]` (the reference's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GaSpec {
    /// Individuals per generation.
    pub population: usize,
    /// Probability that a gene comes from the first parent.
    pub crossover: f64,
    /// Probability that an offspring is mutated.
    pub mutation_prob: f64,
    /// Mutations are U(−range, range).
    pub mutation_range: f64,
    /// Best individuals kept unchanged.
    pub elitism: usize,
}

impl Default for GaSpec {
    fn default() -> Self {
        let g = GaConfig::default();
        Self {
            population: g.population,
            crossover: g.crossover,
            mutation_prob: g.mutation_prob,
            mutation_range: g.mutation_range,
            elitism: g.elitism,
        }
    }
}

/// `[selection]`: the held-out protocol's split (the paper protocol always runs beside it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectionSpec {
    /// Fraction of training images held out for selection, in (0, 1).
    pub holdout_fraction: f64,
    /// Seed of the held-out split.
    pub split_seed: u64,
}

impl Default for SelectionSpec {
    fn default() -> Self {
        Self { holdout_fraction: 0.2, split_seed: 0 }
    }
}

/// `[output]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Reports folder (results go to `<dir>/<dataset>/`), relative to the working directory.
    #[serde(default = "reports_dir")]
    pub dir: PathBuf,
    /// Sentences every table of this run shows beside its numbers (e.g. "plumbing, not a claim").
    #[serde(default)]
    pub notes: Vec<String>,
}

fn reports_dir() -> PathBuf {
    PathBuf::from("reports")
}

impl Default for OutputSpec {
    fn default() -> Self {
        Self { dir: reports_dir(), notes: Vec::new() }
    }
}

impl ExperimentSpec {
    /// Reads and checks a spec file; every error names the file (and the line and key).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let spec: ExperimentSpec = toml::from_str(text.trim_start_matches('\u{feff}'))
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim_end()))?;
        spec.check().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(spec)
    }

    /// Range checks, each naming its key.
    pub fn check(&self) -> Result<()> {
        let image = self.data.source != DataSource::Arff;
        match (&self.data.dataset, image) {
            (None, false) => bail!("data.dataset: missing (a bundled dataset name or a dataset manifest path)"),
            (Some(_), true) => {
                bail!("data.dataset: only for `source = \"arff\"`; an image dataset is found under `data.root`")
            }
            _ => {}
        }
        if image && self.backbone.is_none() {
            bail!(
                "backbone: missing; source `{}` needs a [backbone] (name, weights, image_size)",
                self.data.source.name()
            );
        }
        if !image && self.backbone.is_some() {
            bail!("backbone: an ARFF dataset is already features; remove [backbone]");
        }
        if let Some(b) = &self.backbone {
            if !(8..=4096).contains(&b.image_size) {
                bail!("backbone.image_size = {}: expected 8 to 4096 pixels", b.image_size);
            }
            if b.batch == 0 {
                bail!("backbone.batch = 0: expected at least 1");
            }
            if !["imagenet", "none"].contains(&b.normalize.as_str()) {
                bail!("backbone.normalize = {:?}: expected \"imagenet\" or \"none\"", b.normalize);
            }
        }
        if self.base.from == BaseFrom::Checkpoint && !image {
            bail!("base.from = \"checkpoint\": an ARFF dataset has no checkpoint; use \"linear\"");
        }
        match self.labels.source {
            LabelSource::Drop if self.labels.proportions.is_empty() => {
                bail!("labels.proportions: at least one proportion is needed (or labels.source = \"real\")")
            }
            LabelSource::Real if !self.labels.proportions.is_empty() => {
                bail!("labels.proportions: real partial labels are used as they are; remove the proportions")
            }
            _ => {}
        }
        if let Some(u) = &self.labels.uncertain {
            if self.data.source != DataSource::Chexpert {
                bail!("labels.uncertain: only CheXpert has uncertain labels");
            }
            if !["ignore", "ones", "zeros", "u-ones-u-zeros"].contains(&u.as_str()) {
                bail!("labels.uncertain = {u:?}: expected \"ignore\", \"ones\", \"zeros\" or \"u-ones-u-zeros\"");
            }
        }
        if self.evaluation.groups == Some(0) {
            bail!("evaluation.groups = 0: expected at least 1 group");
        }
        for (i, p) in self.labels.proportions.iter().enumerate() {
            if !(*p > 0.0 && *p <= 1.0) {
                bail!("labels.proportions[{i}] = {p}: expected a proportion in (0, 1]");
            }
        }
        for (key, lr) in [("base.lr", self.base.lr), ("cft.bp_lr", self.cft.bp_lr)] {
            if !(lr.is_finite() && lr > 0.0 && lr <= 1.0) {
                bail!("{key} = {lr}: expected a learning rate in (0, 1]");
            }
        }
        if !(self.base.weight_decay.is_finite() && self.base.weight_decay >= 0.0) {
            bail!("base.weight_decay = {}: expected a finite number ≥ 0", self.base.weight_decay);
        }
        if self.base.epochs == 0 {
            bail!("base.epochs = 0: a base head needs at least one epoch");
        }
        if self.cft.patience == 0 {
            bail!("cft.patience = 0: expected at least 1");
        }
        let ga = &self.cft.ga;
        if ga.population < 2 {
            bail!("cft.ga.population = {}: a population needs at least 2 individuals", ga.population);
        }
        if ga.elitism >= ga.population {
            bail!("cft.ga.elitism = {}: must be below the population ({})", ga.elitism, ga.population);
        }
        for (key, v) in [("cft.ga.crossover", ga.crossover), ("cft.ga.mutation_prob", ga.mutation_prob)] {
            if !(0.0..=1.0).contains(&v) {
                bail!("{key} = {v}: expected a probability in [0, 1]");
            }
        }
        if !(ga.mutation_range.is_finite() && ga.mutation_range >= 0.0) {
            bail!("cft.ga.mutation_range = {}: expected a finite number ≥ 0", ga.mutation_range);
        }
        let f = self.selection.holdout_fraction;
        if !(f > 0.0 && f < 1.0) {
            bail!("selection.holdout_fraction = {f}: expected a fraction in (0, 1)");
        }
        Ok(())
    }

    /// The report folder name: `data.name`, else the ARFF dataset's or the source's name.
    pub fn name(&self, arff_name: Option<&str>) -> String {
        self.data
            .name
            .clone()
            .or_else(|| arff_name.map(str::to_string))
            .unwrap_or_else(|| self.data.source.name().into())
    }

    /// A path of the spec (`data.root`, `backbone.weights`) resolved against the spec's folder.
    pub fn resolve(spec_path: &Path, p: &Path) -> PathBuf {
        match spec_path.parent() {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p.to_path_buf(),
        }
    }

    /// The protocol configuration for a dataset named `dataset`.
    pub fn protocol_config(&self, dataset: &str) -> ReproduceConfig {
        let g = self.cft.ga;
        ReproduceConfig {
            dataset: dataset.to_string(),
            proportions: self.labels.proportions.clone(),
            mask_seed: self.labels.mask_seed,
            holdout_fraction: self.selection.holdout_fraction,
            split_seed: self.selection.split_seed,
            ga_seed: self.cft.ga_seed,
            max_epochs: self.cft.max_epochs,
            patience: self.cft.patience,
            bp_lr: self.cft.bp_lr,
            ga: GaConfig {
                population: g.population,
                crossover: g.crossover,
                mutation_prob: g.mutation_prob,
                mutation_range: g.mutation_range,
                elitism: g.elitism,
            },
            base_epochs: self.base.epochs,
            base_lr: self.base.lr,
            base_weight_decay: self.base.weight_decay,
            feature_precision: self.data.feature_precision,
            label_source: self.labels.source,
            metric: self.evaluation.metric,
            groups: self.evaluation.groups.map(|groups| GroupSpec { groups, by: self.evaluation.group_by }),
        }
    }

    /// The dataset argument resolved against the spec's folder when it is a path.
    pub fn dataset_in(&self, spec_path: &Path) -> String {
        let d = self.data.dataset.clone().unwrap_or_default();
        let d = &d;
        let is_path = d.contains('/') || d.ends_with(".json");
        match (is_path, spec_path.parent()) {
            (true, Some(dir)) if Path::new(d).is_relative() => dir.join(d).display().to_string(),
            _ => d.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> Result<ExperimentSpec> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.toml");
        std::fs::write(&p, text).unwrap();
        ExperimentSpec::load(&p)
    }

    const MINIMAL: &str = "[data]\ndataset = \"scene\"\n[labels]\nproportions = [0.1, 0.5]\n";

    #[test]
    fn defaults_are_the_reference_settings() {
        let s = spec(MINIMAL).unwrap();
        let c = s.protocol_config("scene");
        let want = ReproduceConfig { proportions: vec![0.1, 0.5], ..ReproduceConfig::new("scene", false, 0) };
        assert_eq!(c, want);
    }

    #[test]
    fn unknown_keys_wrong_types_and_bad_values_name_the_file_and_key() {
        let err = spec(&format!("{MINIMAL}[cft]\nlearning_rate = 1e-3\n")).unwrap_err().to_string();
        assert!(err.contains("x.toml") && err.contains("learning_rate") && err.contains("line 6"), "{err}");
        let err = spec(&format!("{MINIMAL}[cft.ga]\npopulation = \"fifty\"\n")).unwrap_err().to_string();
        assert!(err.contains("x.toml") && err.contains("population"), "{err}");
        let err = spec("[data]\ndataset = \"scene\"\n[labels]\nproportions = 0.1\n").unwrap_err().to_string();
        assert!(err.contains("proportions") && err.contains("sequence"), "{err}");
        let err = spec(&format!("{MINIMAL}[cft]\nbp_lr = -1e-3\n")).unwrap_err().to_string();
        assert!(err.contains("x.toml: cft.bp_lr = -0.001"), "{err}");
        let err = spec(&format!("{MINIMAL}[cft.ga]\npopulation = 0\ncrossover = 0.2\nmutation_prob = 0.5\nmutation_range = 0.001\nelitism = 1\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cft.ga.population = 0"), "{err}");
        let err = spec("[data]\ndataset = \"scene\"\n[labels]\nproportions = [1.5]\n").unwrap_err().to_string();
        assert!(err.contains("labels.proportions[0] = 1.5"), "{err}");
    }
}
