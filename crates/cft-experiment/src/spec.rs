//! Experiments as files: a TOML spec names the data, the label protocol, the base heads, the
//! CFT settings, the selection protocol and the output folder. Unknown keys and wrong types
//! are errors naming the file, the line and the key path; values are range-checked.
//!
//! A spec drives the partial-label protocol ([`crate::partial_label`]) on a bundled ARFF
//! dataset (`experiments/scene.toml` is exactly `cft reproduce`) or on an image dataset read
//! through its adapter and a backbone (`experiments/coco2014.toml`, `openimages_v3.toml`,
//! `chexpert.toml`); the image side (adapters, extraction) is the front end's, this module only
//! reads and checks the file.

use crate::engine::EngineName;
use crate::error::{bail, Result};
use crate::partial_label::{default_bases, default_repair, GroupSpec, LabelSource, ReproduceConfig};
use cft_core::{
    BaseMode, GaConfig, GaEliteTies, GroupBy, HeadInit, LossParams, MethodName, Metric, Precision, RoleInit,
};
use cft_cuda::GemmPrecision;
use cft_data::chexpert::Uncertain;
use cft_pipeline::{BackboneName, Device, Normalize, Resize};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A parameter an ablation may vary: one value, or a list of values that expands the spec to
/// a grid of cells (see the `grid` module). In a cell every parameter is [`Param::One`].
#[derive(Debug, Clone, PartialEq)]
pub enum Param<T> {
    /// One value.
    One(T),
    /// Values to try, one cell each (never empty).
    List(Vec<T>),
}

impl<T> Param<T> {
    /// The value of a cell. On an unexpanded grid this is the first value: expand first.
    pub fn get(&self) -> &T {
        match self {
            Param::One(v) => v,
            Param::List(v) => &v[0],
        }
    }

    /// Every value (one for [`Param::One`]).
    pub fn values(&self) -> &[T] {
        match self {
            Param::One(v) => std::slice::from_ref(v),
            Param::List(v) => v,
        }
    }

    /// Whether this parameter is varied.
    pub fn is_list(&self) -> bool {
        matches!(self, Param::List(_))
    }
}

impl<T: Default> Default for Param<T> {
    fn default() -> Self {
        Param::One(T::default())
    }
}

impl<T> From<T> for Param<T> {
    fn from(v: T) -> Self {
        Param::One(v)
    }
}

impl<T: Serialize> Serialize for Param<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Param::One(v) => v.serialize(s),
            Param::List(v) => v.serialize(s),
        }
    }
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Param<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error;
        let v = toml::Value::deserialize(d)?;
        match v {
            toml::Value::Array(items) => {
                if items.is_empty() {
                    return Err(D::Error::custom("an empty list: give one value or a list of values to try"));
                }
                let values = items
                    .into_iter()
                    .enumerate()
                    .map(|(i, x)| T::deserialize(x).map_err(|e| D::Error::custom(format!("list item {i}: {e}"))))
                    .collect::<std::result::Result<Vec<T>, D::Error>>()?;
                Ok(Param::List(values))
            }
            other => T::deserialize(other).map(Param::One).map_err(|e| D::Error::custom(e.to_string())),
        }
    }
}

/// The most GA individuals (the core's limit, [`cft_core::params::MAX_POPULATION`]).
pub use cft_core::params::MAX_POPULATION;
/// The largest input size (pixels per side) a spec may ask for.
pub const MAX_IMAGE_SIZE: usize = 2048;
/// The most pixels in one forward pass (batch × size²): the activations of a ResNet-101 grow
/// with it; 64 × 448² is the paper's setting.
pub const MAX_BATCH_PIXELS: usize = 64 * 448 * 448;

/// A whole spec file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSpec {
    /// What the experiment is (shown in the manifest).
    #[serde(default)]
    pub description: String,
    /// The data.
    pub data: DataSpec,
    /// The backbone that turns images into features (image sources only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    /// Repeat every cell with each seed (the GA's streams and the held-out split); an
    /// ablation's statistics are over these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seeds: Option<Vec<u64>>,
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
    /// Your own features: `data.train` and `data.test` feature sets (safetensors `features`,
    /// `labels` 1/0/−1/NaN, `categories`), as `cft finetune` reads them.
    Features,
}

impl DataSource {
    /// The report folder and paper-table name of an image source.
    pub fn name(self) -> &'static str {
        match self {
            DataSource::Arff => "arff",
            DataSource::Coco2014 => "coco2014",
            DataSource::OpenimagesV3 => "openimages_v3",
            DataSource::Chexpert => "chexpert",
            DataSource::Features => "features",
        }
    }
}

/// `[data]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// The kind of data (default: an ARFF dataset).
    #[serde(default)]
    pub source: DataSource,
    /// ARFF: a bundled dataset name (`scene`, `flags`, `emotions`) or a dataset manifest path
    /// (relative to the spec file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<Param<String>>,
    /// Image sources: the dataset's root folder (`--data-root` overrides; relative to the spec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<PathBuf>,
    /// Report folder name (default: `dataset`'s name, or the source's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `source = "features"`: the training feature set (relative to the spec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train: Option<PathBuf>,
    /// `source = "features"`: the evaluation feature set (relative to the spec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<PathBuf>,
    /// Round the features to this storage precision first (`f32` = as read).
    #[serde(default)]
    pub feature_precision: Param<Precision>,
}

/// `[backbone]`: the network that turns images into features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackboneSpec {
    /// resnet18/34/50/101/152, densenet121/169/201, resnet20-cifar.
    pub name: BackboneName,
    /// A torchvision-named state dict as safetensors (`--weights` overrides; relative to the
    /// spec); `{percent}` in the path makes it one checkpoint per known-label proportion
    /// (`coco_{percent}.safetensors` → `coco_10.safetensors`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<PathBuf>,
    /// Images are resized to S×S (PIL bilinear).
    #[serde(default = "image_size")]
    pub image_size: usize,
    /// Whose bilinear resize: `pillow13` (today's Pillow, the default) or `pillow12` (Pillow ≤
    /// 12, which the CFT authors pinned at 9.3): they order the two passes differently for
    /// images whose height shrinks much more than their width (portrait photos).
    #[serde(default, skip_serializing_if = "is_pillow13")]
    pub resize: Resize,
    /// `imagenet` (mean/std) or `none` ([0, 1]: the CFT authors' networks, trained on
    /// Resize + ToTensor only).
    #[serde(default = "normalize")]
    pub normalize: Normalize,
    /// Prefix of the backbone's keys in the checkpoint (`backbone.` for the authors'
    /// `best.pth`); detected when unambiguous (`--key-prefix` overrides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
    /// Images per forward pass.
    #[serde(default = "batch")]
    pub batch: usize,
    /// `f32`, `f16` or `bf16` (bf16 on CUDA only).
    #[serde(default)]
    pub precision: Precision,
    /// `cpu`, `cuda` or `cuda:N` (`--device` overrides).
    #[serde(default)]
    pub device: Device,
}

fn image_size() -> usize {
    224
}
fn normalize() -> Normalize {
    Normalize::Imagenet
}
fn is_pillow13(r: &Resize) -> bool {
    *r == Resize::Pillow13
}
fn batch() -> usize {
    32
}

/// `[labels]`: the training labels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSpec {
    /// `drop` (the reference protocol on full labels) or `real` (the dataset's partial labels).
    #[serde(default)]
    pub source: LabelSource,
    /// Known-label proportions, each in (0, 1] (`drop` only).
    #[serde(default)]
    pub proportions: Vec<f64>,
    /// Seed of the dropping stream (default: the reference's 526). In a grid with `seeds`, an
    /// unset mask seed follows the repetition (526 + seed: seed 0 keeps the reference masks),
    /// so the intervals include the label sampling; a set one pins the masks for every seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask_seed: Option<Param<u64>>,
    /// CheXpert's uncertain labels: `ignore` (unknown), `ones`, `zeros` or `u-ones-u-zeros`
    /// (U-Ones for Atelectasis and Edema, U-Zeros for the others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncertain: Option<Uncertain>,
}

/// `[evaluation]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationSpec {
    /// `ap` (COCO, OpenImages, Mulan) or `auc` (CheXpert); also the selection and GA metric.
    #[serde(default)]
    pub metric: Param<Metric>,
    /// Means over this many frequency groups (OpenImages V3: 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    /// `source = "features"`: your trained head (`base.head`, an `nn.Linear` or model state dict).
    Head,
}

/// The reference's label-dropping seed.
pub const REFERENCE_MASK_SEED: u64 = 526;

/// `[base]`: the recipe of the AN and Ignore base heads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseSpec {
    /// `linear` heads on frozen features, or the `checkpoint`'s classifier.
    #[serde(default)]
    pub from: Param<BaseFrom>,
    /// Full-batch Adam epochs (linear heads).
    #[serde(default = "base_epochs")]
    pub epochs: Param<usize>,
    /// Adam learning rate (linear heads).
    #[serde(default = "base_lr")]
    pub lr: Param<f32>,
    /// L2 penalty on the weights (linear heads).
    #[serde(default = "base_weight_decay")]
    pub weight_decay: Param<f32>,
    /// `from = "checkpoint"`: the classifier's key without `.weight`/`.bias` when it is not
    /// torchvision's (`classification_layer` for the authors' `best.pth`); detected when the
    /// checkpoint has exactly one linear layer outside the backbone (`--head-key` overrides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_key: Option<String>,
    /// `from = "head"`: the head file (relative to the spec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<PathBuf>,
    /// The linear base heads, in row order: `an`, `ignore` (the default, the paper's), and the
    /// field's losses `an-ls`, `wan`, `epr`, `role`, `em`, `em-apl`, `ll-r`, `ll-ct`, `ll-cp`.
    #[serde(default = "default_bases", skip_serializing_if = "is_default_bases")]
    pub losses: Vec<BaseMode>,
    /// Where the linear heads start: `zeros` or `prior` (default: `prior` for AN and Ignore,
    /// `zeros` for the field's losses, as their references).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<Param<HeadInit>>,
    /// `[base.an-ls]`: AN with label smoothing.
    #[serde(default, rename = "an-ls", skip_serializing_if = "Option::is_none")]
    pub an_ls: Option<AnLsSpec>,
    /// `[base.epr]`: expected positive regularisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epr: Option<EprSpec>,
    /// `[base.role]`: regularised online label estimation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<RoleSpec>,
    /// `[base.em]`: entropy maximisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub em: Option<EmSpec>,
    /// `[base.em-apl]`: EM with asymmetric pseudo-labelling.
    #[serde(default, rename = "em-apl", skip_serializing_if = "Option::is_none")]
    pub em_apl: Option<EmAplSpec>,
    /// `[base.ll-r]`: large loss rejection.
    #[serde(default, rename = "ll-r", skip_serializing_if = "Option::is_none")]
    pub ll_r: Option<LlSpec>,
    /// `[base.ll-ct]`: large loss correction, temporary.
    #[serde(default, rename = "ll-ct", skip_serializing_if = "Option::is_none")]
    pub ll_ct: Option<LlSpec>,
    /// `[base.ll-cp]`: large loss correction, permanent.
    #[serde(default, rename = "ll-cp", skip_serializing_if = "Option::is_none")]
    pub ll_cp: Option<LlSpec>,
}

fn is_default_bases(b: &[BaseMode]) -> bool {
    b == default_bases().as_slice()
}
fn is_default_repair(b: &[BaseMode]) -> bool {
    b == default_repair().as_slice()
}

fn loss_defaults() -> LossParams {
    LossParams::default()
}

/// `[base.an-ls]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnLsSpec {
    /// The smoothing coefficient (0.1).
    #[serde(default = "ls_coef")]
    pub ls_coef: Param<f64>,
}
fn ls_coef() -> Param<f64> {
    Param::One(loss_defaults().ls_coef)
}

/// `[base.epr]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EprSpec {
    /// Expected positives per image (1.5).
    #[serde(default = "expected_positives")]
    pub expected_positives: Param<f64>,
}
fn expected_positives() -> Param<f64> {
    Param::One(loss_defaults().expected_positives)
}

/// `[base.role]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleSpec {
    /// Expected positives per image (1.5).
    #[serde(default = "expected_positives")]
    pub expected_positives: Param<f64>,
    /// The estimates' learning rate as a multiple of `base.lr` (10).
    #[serde(default = "estimator_lr_mult")]
    pub estimator_lr_mult: Param<f64>,
    /// `fixed` (deterministic) or `random` (the official draw, seeded by `seed`).
    #[serde(default)]
    pub init: RoleInit,
    /// The random start's seed (0).
    #[serde(default)]
    pub seed: u64,
}
fn estimator_lr_mult() -> Param<f64> {
    Param::One(loss_defaults().estimator_lr_mult)
}

/// `[base.em]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmSpec {
    /// Weight of the entropy term (0.1).
    #[serde(default = "alpha")]
    pub alpha: Param<f64>,
}
fn alpha() -> Param<f64> {
    Param::One(loss_defaults().alpha)
}

/// `[base.em-apl]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmAplSpec {
    /// Weight of the entropy term (0.1).
    #[serde(default = "alpha")]
    pub alpha: Param<f64>,
    /// Weight of the pseudo-labelled entries (0.2).
    #[serde(default = "beta")]
    pub beta: Param<f64>,
    /// Share of each category's unknown entries pseudo-labelled over the rounds (0.9).
    #[serde(default = "neg_proportion")]
    pub neg_proportion: Param<f64>,
    /// The first epoch after which pseudo-labels are drawn (default: `base.epochs` − 5, five rounds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_epoch: Option<Param<usize>>,
}
fn beta() -> Param<f64> {
    Param::One(loss_defaults().beta)
}
fn neg_proportion() -> Param<f64> {
    Param::One(loss_defaults().neg_proportion)
}

/// `[base.ll-r]`, `[base.ll-ct]`, `[base.ll-cp]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlSpec {
    /// The clean rate's decrease per epoch, a fraction (1e-4).
    #[serde(default = "delta_rel")]
    pub delta_rel: Param<f64>,
}
fn delta_rel() -> Param<f64> {
    Param::One(loss_defaults().delta_rel)
}

impl BaseSpec {
    /// The loss parameters a spec sets, per base loss (only the tables it has).
    pub fn loss_params(&self) -> BTreeMap<BaseMode, LossParams> {
        let d = LossParams::default();
        let mut out = BTreeMap::new();
        if let Some(t) = &self.an_ls {
            out.insert(BaseMode::AnLs, LossParams { ls_coef: *t.ls_coef.get(), ..d });
        }
        if let Some(t) = &self.epr {
            out.insert(BaseMode::Epr, LossParams { expected_positives: *t.expected_positives.get(), ..d });
        }
        if let Some(t) = &self.role {
            out.insert(
                BaseMode::Role,
                LossParams {
                    expected_positives: *t.expected_positives.get(),
                    estimator_lr_mult: *t.estimator_lr_mult.get(),
                    role_init: t.init,
                    role_seed: t.seed,
                    ..d
                },
            );
        }
        if let Some(t) = &self.em {
            out.insert(BaseMode::Em, LossParams { alpha: *t.alpha.get(), ..d });
        }
        if let Some(t) = &self.em_apl {
            out.insert(
                BaseMode::EmApl,
                LossParams {
                    alpha: *t.alpha.get(),
                    beta: *t.beta.get(),
                    neg_proportion: *t.neg_proportion.get(),
                    warmup_epoch: t.warmup_epoch.as_ref().map(|w| *w.get()),
                    ..d
                },
            );
        }
        for (mode, t) in [(BaseMode::LlR, &self.ll_r), (BaseMode::LlCt, &self.ll_ct), (BaseMode::LlCp, &self.ll_cp)] {
            if let Some(t) = t {
                out.insert(mode, LossParams { delta_rel: *t.delta_rel.get(), ..d });
            }
        }
        // Tables at their defaults change nothing (and keep the configuration's bytes).
        out.retain(|_, p| !p.is_default());
        out
    }
}

fn base_recipe() -> cft_core::BaseHeadConfig {
    cft_core::BaseHeadConfig::recipe(cft_core::BaseMode::An)
}
fn base_epochs() -> Param<usize> {
    Param::One(base_recipe().epochs)
}
fn base_lr() -> Param<f32> {
    Param::One(base_recipe().lr)
}
fn base_weight_decay() -> Param<f32> {
    Param::One(base_recipe().weight_decay)
}

impl Default for BaseSpec {
    fn default() -> Self {
        Self {
            from: Param::One(BaseFrom::Linear),
            epochs: base_epochs(),
            lr: base_lr(),
            weight_decay: base_weight_decay(),
            head_key: None,
            head: None,
            losses: default_bases(),
            init: None,
            an_ls: None,
            epr: None,
            role: None,
            em: None,
            em_apl: None,
            ll_r: None,
            ll_ct: None,
            ll_cp: None,
        }
    }
}

/// `[cft]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CftSpec {
    /// Epoch (generation) limit per category.
    #[serde(default = "max_epochs")]
    pub max_epochs: Param<usize>,
    /// Stop a category after this many epochs without improvement.
    #[serde(default = "patience")]
    pub patience: Param<usize>,
    /// Adam learning rate of CFT-BP.
    #[serde(default = "bp_lr")]
    pub bp_lr: Param<f32>,
    /// Seed of the GA's per-category streams.
    #[serde(default = "zero_seed")]
    pub ga_seed: Param<u64>,
    /// The CFT methods run on each repaired base head, in this order (`bp-asl`, `bp-bce`, `ga`).
    #[serde(default = "all_methods")]
    pub methods: Vec<MethodName>,
    /// The base heads CFT repairs, in row order (each one of `base.losses`; default `["an"]`,
    /// the paper's).
    #[serde(default = "default_repair", skip_serializing_if = "is_default_repair")]
    pub repair: Vec<BaseMode>,
    /// The asymmetric loss of CFT-BP-ASL.
    #[serde(default)]
    pub asl: AslSpec,
    /// The genetic algorithm.
    #[serde(default)]
    pub ga: GaSpec,
    /// What fits the heads: `auto` (the CUDA engine when the device is CUDA in a CUDA build,
    /// else the batched CPU engine), `per-category`, `batched` or `cuda` (`--engine` overrides).
    /// The CPU engines give the same numbers bit for bit.
    #[serde(default, skip_serializing_if = "is_auto")]
    pub engine: EngineName,
    /// The CUDA engine's GEMM precision: `f32`, `tf32` or `bf16`.
    #[serde(default, skip_serializing_if = "is_f32")]
    pub gemm_precision: GemmPrecision,
}

fn is_auto(e: &EngineName) -> bool {
    *e == EngineName::Auto
}
fn is_f32(p: &GemmPrecision) -> bool {
    *p == GemmPrecision::F32
}

fn max_epochs() -> Param<usize> {
    Param::One(5000)
}
fn patience() -> Param<usize> {
    Param::One(300)
}
fn bp_lr() -> Param<f32> {
    Param::One(1e-4)
}
fn zero_seed() -> Param<u64> {
    Param::One(0)
}
fn all_methods() -> Vec<MethodName> {
    MethodName::ALL.to_vec()
}

impl Default for CftSpec {
    fn default() -> Self {
        Self {
            max_epochs: max_epochs(),
            patience: patience(),
            bp_lr: bp_lr(),
            ga_seed: zero_seed(),
            methods: all_methods(),
            repair: default_repair(),
            asl: AslSpec::default(),
            ga: GaSpec::default(),
            engine: EngineName::Auto,
            gemm_precision: GemmPrecision::F32,
        }
    }
}

/// `[cft.asl]`: the asymmetric loss (the reference's γ− = 4, γ+ = 0, clip 0.05).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AslSpec {
    /// Focusing exponent of the negatives.
    #[serde(default = "gamma_neg")]
    pub gamma_neg: Param<f32>,
    /// Focusing exponent of the positives.
    #[serde(default = "gamma_pos")]
    pub gamma_pos: Param<f32>,
    /// Probability margin shifted off the negatives.
    #[serde(default = "clip")]
    pub clip: Param<f32>,
}

fn gamma_neg() -> Param<f32> {
    Param::One(4.0)
}
fn gamma_pos() -> Param<f32> {
    Param::One(0.0)
}
fn clip() -> Param<f32> {
    Param::One(0.05)
}

impl Default for AslSpec {
    fn default() -> Self {
        Self { gamma_neg: gamma_neg(), gamma_pos: gamma_pos(), clip: clip() }
    }
}

/// `[cft.ga]` (each key defaults to the reference's value).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GaSpec {
    /// Individuals per generation.
    #[serde(default = "population")]
    pub population: Param<usize>,
    /// Probability that a gene comes from the first parent.
    #[serde(default = "crossover")]
    pub crossover: Param<f64>,
    /// Probability that an offspring is mutated.
    #[serde(default = "mutation_prob")]
    pub mutation_prob: Param<f64>,
    /// Mutations are U(−range, range).
    #[serde(default = "mutation_range")]
    pub mutation_range: Param<f64>,
    /// Best individuals kept unchanged.
    #[serde(default = "elitism")]
    pub elitism: Param<usize>,
    /// Which of several equally fit individuals becomes the elite: `first` (the validated
    /// head; default) or `torch-cpu` (the CFT authors' code on the CPU: PyTorch's unstable sort
    /// order, under which the elite drifts across plateaus of equal training score).
    #[serde(default, skip_serializing_if = "is_first_ties")]
    pub elite_ties: Param<GaEliteTies>,
}

fn is_first_ties(p: &Param<GaEliteTies>) -> bool {
    *p == Param::One(GaEliteTies::First)
}

fn population() -> Param<usize> {
    Param::One(GaConfig::default().population)
}
fn crossover() -> Param<f64> {
    Param::One(GaConfig::default().crossover)
}
fn mutation_prob() -> Param<f64> {
    Param::One(GaConfig::default().mutation_prob)
}
fn mutation_range() -> Param<f64> {
    Param::One(GaConfig::default().mutation_range)
}
fn elitism() -> Param<usize> {
    Param::One(GaConfig::default().elitism)
}

impl Default for GaSpec {
    fn default() -> Self {
        Self {
            population: population(),
            crossover: crossover(),
            mutation_prob: mutation_prob(),
            mutation_range: mutation_range(),
            elitism: elitism(),
            elite_ties: Param::One(GaEliteTies::First),
        }
    }
}

/// `[selection]`: the held-out protocol's split (the paper protocol always runs beside it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectionSpec {
    /// Fraction of training images held out for selection, in (0, 1).
    #[serde(default = "holdout_fraction")]
    pub holdout_fraction: Param<f64>,
    /// Seed of the held-out split.
    #[serde(default = "zero_seed")]
    pub split_seed: Param<u64>,
}

fn holdout_fraction() -> Param<f64> {
    Param::One(0.2)
}

impl Default for SelectionSpec {
    fn default() -> Self {
        Self { holdout_fraction: holdout_fraction(), split_seed: zero_seed() }
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
    /// Range checks, each naming its key.
    pub fn check(&self) -> Result<()> {
        let features = self.data.source == DataSource::Features;
        if features {
            if self.data.train.is_none() || self.data.test.is_none() {
                bail!("data.train, data.test: `source = \"features\"` needs both feature sets (safetensors with `features` and `labels`)");
            }
            if self.data.dataset.is_some() || self.data.root.is_some() || self.backbone.is_some() {
                bail!("data: `source = \"features\"` reads data.train and data.test; remove data.dataset, data.root and [backbone]");
            }
        } else if self.data.train.is_some() || self.data.test.is_some() {
            bail!("data.train, data.test: only for `source = \"features\"`");
        }
        let head_base = self.base.from.values().contains(&BaseFrom::Head);
        if head_base && (!features || self.base.head.is_none()) {
            bail!("base.from = \"head\": needs `source = \"features\"` and base.head (the head file)");
        }
        if self.base.head.is_some() && !head_base {
            bail!("base.head: only for `from = \"head\"`");
        }
        if features {
            return self.check_shared();
        }
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
            if !(8..=MAX_IMAGE_SIZE).contains(&b.image_size) {
                bail!("backbone.image_size = {}: expected 8 to {MAX_IMAGE_SIZE} pixels", b.image_size);
            }
            if b.batch == 0 {
                bail!("backbone.batch = 0: expected at least 1");
            }
            let pixels = b.batch.saturating_mul(b.image_size * b.image_size);
            if pixels > MAX_BATCH_PIXELS {
                bail!(
                    "backbone.batch = {} at image_size = {}: {pixels} pixels per forward pass, at most {MAX_BATCH_PIXELS} (64 images at 448 px, the paper's setting); lower the batch to {}",
                    b.batch,
                    b.image_size,
                    (MAX_BATCH_PIXELS / (b.image_size * b.image_size)).max(1)
                );
            }
        }
        if self.base.head_key.is_some()
            && !self.base.from.values().iter().any(|f| matches!(f, BaseFrom::Checkpoint | BaseFrom::Head))
        {
            bail!(
                "base.head_key: only for `from = \"checkpoint\"` or `\"head\"` (a given classifier is the base head)"
            );
        }
        if *self.base.from.get() == BaseFrom::Checkpoint && !image {
            bail!("base.from = \"checkpoint\": an ARFF dataset has no checkpoint; use \"linear\"");
        }
        self.check_shared()
    }

    /// The checks every data source shares (labels, evaluation, heads, CFT, selection).
    fn check_shared(&self) -> Result<()> {
        if let Some(name) = &self.data.name {
            cft_data::check_folder_name("data.name", name).map_err(|e| crate::error::refused!("{e}"))?;
        }
        match self.labels.source {
            LabelSource::Drop if self.labels.proportions.is_empty() => {
                bail!("labels.proportions: at least one proportion is needed (or labels.source = \"real\")")
            }
            LabelSource::Real if !self.labels.proportions.is_empty() => {
                bail!("labels.proportions: real partial labels are used as they are; remove the proportions")
            }
            LabelSource::SinglePositive if !self.labels.proportions.is_empty() => {
                bail!("labels.proportions: the single-positive protocol keeps one positive per image; remove the proportions")
            }
            _ => {}
        }
        if self.labels.uncertain.is_some() && self.data.source != DataSource::Chexpert {
            bail!("labels.uncertain: only CheXpert has uncertain labels");
        }
        if self.evaluation.groups == Some(0) {
            bail!("evaluation.groups = 0: expected at least 1 group");
        }
        let mut percents = std::collections::BTreeMap::new();
        for (i, p) in self.labels.proportions.iter().enumerate() {
            if !(*p > 0.0 && *p <= 1.0) {
                bail!("labels.proportions[{i}] = {p}: expected a proportion in (0, 1]");
            }
            // Units (and checkpoints' {percent}) are named by whole percents.
            let pct = cft_core::percent(*p);
            if let Some(j) = percents.insert(pct, i) {
                bail!(
                    "labels.proportions[{i}] = {p}: names the same unit ({pct}%) as labels.proportions[{j}] = {}; units are named by whole percents, so give proportions at least 0.01 apart",
                    self.labels.proportions[j]
                );
            }
        }
        if self.cft.methods.is_empty() {
            bail!(
                "cft.methods: at least one method is needed ({})",
                MethodName::ALL.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
            );
        }
        for (i, m) in self.cft.methods.iter().enumerate() {
            if self.cft.methods[..i].contains(m) {
                bail!("cft.methods[{i}] = {:?}: appears twice; each method runs once", m.name());
            }
        }
        if self.base.losses.is_empty() {
            bail!("base.losses: at least one base head is needed");
        }
        for (key, list) in [("base.losses", &self.base.losses), ("cft.repair", &self.cft.repair)] {
            for (i, m) in list.iter().enumerate() {
                if list[..i].contains(m) {
                    bail!("{key}[{i}] = {:?}: appears twice; each base runs once", m.name());
                }
            }
        }
        // The numeric ranges are the core's (`cft_core::params`), under this spec's keys, through
        // the one mapping the run uses (`ReproduceConfig::checked`).
        self.protocol_config("").checked()?;
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

    /// The protocol configuration of a cell spec (an unexpanded grid gives its first cell's)
    /// for a dataset named `dataset`.
    pub fn protocol_config(&self, dataset: &str) -> ReproduceConfig {
        let g = &self.cft.ga;
        let asl = &self.cft.asl;
        ReproduceConfig {
            dataset: dataset.to_string(),
            proportions: self.labels.proportions.clone(),
            mask_seed: self.labels.mask_seed.as_ref().map_or(REFERENCE_MASK_SEED, |m| *m.get()),
            holdout_fraction: *self.selection.holdout_fraction.get(),
            split_seed: *self.selection.split_seed.get(),
            ga_seed: *self.cft.ga_seed.get(),
            max_epochs: *self.cft.max_epochs.get(),
            patience: *self.cft.patience.get(),
            bp_lr: *self.cft.bp_lr.get(),
            ga: GaConfig {
                population: *g.population.get(),
                crossover: *g.crossover.get(),
                mutation_prob: *g.mutation_prob.get(),
                mutation_range: *g.mutation_range.get(),
                elitism: *g.elitism.get(),
                elite_ties: *g.elite_ties.get(),
            },
            base_epochs: *self.base.epochs.get(),
            base_lr: *self.base.lr.get(),
            base_weight_decay: *self.base.weight_decay.get(),
            feature_precision: *self.data.feature_precision.get(),
            label_source: self.labels.source,
            metric: *self.evaluation.metric.get(),
            groups: self.evaluation.groups.map(|groups| GroupSpec { groups, by: self.evaluation.group_by }),
            methods: self.cft.methods.clone(),
            asl: (*asl.gamma_neg.get(), *asl.gamma_pos.get(), *asl.clip.get()),
            bases: self.base.losses.clone(),
            repair: self.cft.repair.clone(),
            base_init: self.base.init.as_ref().map(|i| *i.get()),
            base_params: self.base.loss_params(),
        }
    }

    /// The dataset argument resolved against the spec's folder when it is a path.
    pub fn dataset_in(&self, spec_path: &Path) -> String {
        let d = self.data.dataset.as_ref().map(|d| d.get().clone()).unwrap_or_default();
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
