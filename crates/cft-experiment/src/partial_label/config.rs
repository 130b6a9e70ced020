//! What determines a protocol run's numbers ([`ReproduceConfig`]), and the one mapping from it
//! to the core's configurations ([`ReproduceConfig::checked`]): the spec's check and the run
//! both go through it, so a value is refused (under the spec's key) exactly where it would act.

use cft_core::{
    BaseHeadConfig, BaseMode, CheckedBaseHead, CheckedFineTune, FineTuneConfig, GaConfig, GroupBy, HeadInit, Loss,
    LossParams, MethodName, Metric, ParamError,
};
use cft_results::Protocol;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Everything that determines the numbers of a reproduction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReproduceConfig {
    /// Dataset name.
    pub dataset: String,
    /// Known-label proportions.
    pub proportions: Vec<f64>,
    /// Seed of the label-dropping stream (the reference's 526); also the single-positive draw's.
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
    /// Base-head epochs (every base).
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
    pub methods: Vec<MethodName>,
    /// ASL's (γ−, γ+, clip) for CFT-BP-ASL (absent in older units: the reference's).
    #[serde(default = "reference_asl", skip_serializing_if = "is_reference_asl")]
    pub asl: (f32, f32, f32),
    /// The base heads trained on the frozen features, in row order (absent: AN and Ignore).
    #[serde(default = "default_bases", skip_serializing_if = "is_default_bases")]
    pub bases: Vec<BaseMode>,
    /// The base heads CFT repairs, in row order (absent: AN, the paper's).
    #[serde(default = "default_repair", skip_serializing_if = "is_default_repair")]
    pub repair: Vec<BaseMode>,
    /// Where the base heads start (absent: each mode's own start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_init: Option<HeadInit>,
    /// The field's losses' parameters, per base (absent: the defaults).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub base_params: BTreeMap<BaseMode, LossParams>,
}

fn all_methods() -> Vec<MethodName> {
    MethodName::ALL.to_vec()
}
fn is_all_methods(m: &[MethodName]) -> bool {
    m == MethodName::ALL
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
/// The paper's bases: AN and Ignore.
pub fn default_bases() -> Vec<BaseMode> {
    vec![BaseMode::An, BaseMode::Ignore]
}
fn is_default_bases(b: &[BaseMode]) -> bool {
    b == default_bases().as_slice()
}
/// The paper's repaired base: AN.
pub fn default_repair() -> Vec<BaseMode> {
    vec![BaseMode::An]
}
fn is_default_repair(b: &[BaseMode]) -> bool {
    b == default_repair().as_slice()
}

cft_core::choice! {
    /// Where a run's training labels come from.
    #[derive(Default)]
    pub enum LabelSource {
        /// Full labels dropped by the reference protocol at each of the configured proportions.
        #[default]
        Drop = "drop",
        /// The dataset's own partial labels, as annotated (OpenImages, CheXpert): one unit.
        Real = "real",
        /// Cole et al.'s single-positive protocol on full labels: each training image keeps one
        /// positive drawn uniformly among its positives ([`cft_core::single_positive`]); one unit.
        SinglePositive = "single-positive",
    }
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

/// The core's configurations of a run, each checked: what the protocol's units train with.
#[derive(Debug, Clone)]
pub struct CheckedConfigs {
    /// Each base head's recipe, in row order.
    pub bases: Vec<(BaseMode, CheckedBaseHead)>,
    /// Each CFT method's configuration, in row order.
    pub methods: Vec<(MethodName, CheckedFineTune)>,
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
            bases: default_bases(),
            repair: default_repair(),
            base_init: None,
            base_params: BTreeMap::new(),
        }
    }

    /// The recipe of the base head `mode` (unchecked; see [`ReproduceConfig::checked`]).
    pub fn base_config(&self, mode: BaseMode) -> BaseHeadConfig {
        BaseHeadConfig {
            mode,
            epochs: self.base_epochs,
            lr: self.base_lr,
            weight_decay: self.base_weight_decay,
            init: self.base_init,
            params: self.base_params.get(&mode).copied().unwrap_or_default(),
        }
    }

    /// The configuration of CFT method `method` (unchecked; see [`ReproduceConfig::checked`]).
    pub fn finetune_config(&self, method: MethodName) -> FineTuneConfig {
        let (gamma_neg, gamma_pos, clip) = self.asl;
        let asl = Loss::Asl { gamma_neg, gamma_pos, clip, eps: Loss::ASL_REFERENCE_EPS };
        FineTuneConfig {
            metric: self.metric,
            max_epochs: self.max_epochs,
            patience: self.patience,
            seed: self.ga_seed,
            ..FineTuneConfig::reference(method.method(self.bp_lr, asl, self.ga))
        }
    }

    /// Every core configuration this run uses, checked by the core; a refusal names the spec's
    /// key ([`spec_key`]). The spec's check and the run both call this.
    pub fn checked(&self) -> Result<CheckedConfigs, ParamError> {
        cft_core::params::check_holdout_fraction("selection.holdout_fraction", self.holdout_fraction)?;
        if let Some(m) = self.repair.iter().find(|m| !self.bases.contains(m)) {
            let bases: Vec<&str> = self.bases.iter().map(|b| b.name()).collect();
            return Err(ParamError::new(
                "cft.repair",
                format!("{:?}", m.name()),
                format!("not among the base heads (base.losses = {bases:?})"),
            ));
        }
        if self.label_source == LabelSource::SinglePositive && u32::try_from(self.mask_seed).is_err() {
            return Err(ParamError::new(
                "labels.mask_seed",
                self.mask_seed,
                "the single-positive draw (numpy's RandomState) takes a seed from 0 to 4294967295",
            ));
        }
        let bases = self
            .bases
            .iter()
            .map(|&m| self.base_config(m).check().map(|c| (m, c)).map_err(|e| spec_error("base.", e)))
            .collect::<Result<_, _>>()?;
        // Every method's settings are checked, run or not: a value in the spec is refused even
        // where it would not act this time.
        let mut all = MethodName::ALL
            .iter()
            .map(|&m| self.finetune_config(m).check().map(|c| (m, c)).map_err(|e| spec_error("cft.", e)))
            .collect::<Result<Vec<_>, _>>()?;
        let methods =
            self.methods.iter().filter_map(|m| all.iter().position(|(n, _)| n == m)).map(|i| all[i].clone()).collect();
        all.clear();
        Ok(CheckedConfigs { bases, methods })
    }

    /// Progress steps of one unit: each base head (a given head counted as all the bases) and
    /// each CFT method on each repaired base.
    pub fn steps_per_unit(&self) -> usize {
        self.bases.len() + self.repair.len() * self.methods.len()
    }

    /// Progress steps of a whole run: every (proportion, protocol) unit.
    pub fn steps(&self) -> usize {
        self.label_points() * 2 * self.steps_per_unit()
    }

    /// Label settings run: one per proportion, or one for real or single-positive labels.
    pub fn label_points(&self) -> usize {
        match self.label_source {
            LabelSource::Drop => self.proportions.len(),
            LabelSource::Real | LabelSource::SinglePositive => 1,
        }
    }
}

/// The spec's key of a core parameter under `section` (`base.` or `cft.`): `adam.lr` is
/// `cft.bp_lr`, `loss.clip` is `cft.asl.clip`, `ga.population` is `cft.ga.population`,
/// `em-apl.beta` is `base.em-apl.beta`.
pub fn spec_key(section: &str, param: &str) -> String {
    match (section, param) {
        ("cft.", "adam.lr") => "cft.bp_lr".into(),
        ("cft.", p) if p.starts_with("loss.") => format!("cft.asl.{}", &p["loss.".len()..]),
        (s, p) => format!("{s}{p}"),
    }
}

fn spec_error(section: &str, e: ParamError) -> ParamError {
    let key = spec_key(section, &e.param);
    e.named(&key)
}

/// The identity of a dataset's name and category names (FNV-1a 64 of their JSON, hex): units
/// carry it so that a merge refuses a plan whose names were changed after the units ran.
pub fn dataset_key(name: &str, categories: &[String]) -> String {
    let json = serde_json::to_string(&(name, categories)).unwrap_or_default();
    format!("{:016x}", crate::manifest::fnv1a64(crate::manifest::FNV_OFFSET, json.as_bytes()))
}

/// The unit file stem of a (proportion, protocol) unit: `p10-paper`, `real-held-out` for the
/// real partial labels, `single-positive-paper` for the single-positive protocol.
pub fn unit_id(cfg: &ReproduceConfig, p: f64, protocol: Protocol) -> String {
    match cfg.label_source {
        LabelSource::Drop => format!("p{:02}-{}", cft_core::percent(p), protocol.label()),
        LabelSource::Real => format!("real-{}", protocol.label()),
        LabelSource::SinglePositive => format!("single-positive-{}", protocol.label()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_one_mapping_refuses_under_the_spec_keys_and_builds_every_row() {
        let mut cfg = ReproduceConfig::new("toy", true, 0);
        assert_eq!(cfg.steps_per_unit(), 5, "AN, Ignore and three methods on AN");
        let checked = cfg.checked().unwrap();
        assert_eq!(checked.bases.len(), 2);
        assert_eq!(checked.methods.iter().map(|(m, _)| *m).collect::<Vec<_>>(), MethodName::ALL);
        cfg.bp_lr = 0.0;
        assert_eq!(cfg.checked().unwrap_err().to_string(), "cft.bp_lr = 0: expected a learning rate in (0, 1]");
        cfg.bp_lr = 1e-4;
        cfg.asl.2 = 1.0;
        assert_eq!(cfg.checked().unwrap_err().to_string(), "cft.asl.clip = 1: expected a margin in [0, 1)");
        cfg.asl.2 = 0.05;
        cfg.ga.population = 1;
        assert!(cfg.checked().unwrap_err().to_string().starts_with("cft.ga.population = 1"));
        cfg.ga.population = 50;
        cfg.bases.push(BaseMode::LlR);
        cfg.base_params.insert(BaseMode::LlR, LossParams { delta_rel: 2.0, ..LossParams::default() });
        assert_eq!(
            cfg.checked().unwrap_err().to_string(),
            "base.ll-r.delta_rel = 2: expected a fraction per epoch in (0, 1)"
        );
        cfg.base_params.clear();
        cfg.repair.push(BaseMode::LlR);
        assert_eq!(cfg.steps_per_unit(), 3 + 2 * 3);
        cfg.holdout_fraction = 1.0;
        assert_eq!(
            cfg.checked().unwrap_err().to_string(),
            "selection.holdout_fraction = 1: expected a fraction in (0, 1)"
        );
    }

    #[test]
    fn defaults_serialize_as_before_so_committed_units_keep_their_bytes() {
        let cfg = ReproduceConfig::new("scene", true, 0);
        let text = serde_json::to_string(&cfg).unwrap();
        for key in ["bases", "repair", "base_init", "base_params", "methods", "label_source"] {
            assert!(!text.contains(&format!("\"{key}\"")), "{key} in {text}");
        }
        let mut sp = cfg.clone();
        sp.label_source = LabelSource::SinglePositive;
        sp.methods = vec![MethodName::Ga];
        let text = serde_json::to_string(&sp).unwrap();
        assert!(text.contains("\"label_source\":\"single-positive\"") && text.contains("\"methods\":[\"ga\"]"));
        let back: ReproduceConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back, sp);
    }
}
