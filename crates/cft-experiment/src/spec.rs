//! Experiments as files: a TOML spec names the data, the label protocol, the base heads, the
//! CFT settings, the selection protocol and the output folder. Unknown keys and wrong types
//! are errors naming the file, the line and the key path; values are range-checked.
//!
//! Today a spec drives the partial-label protocol on a feature dataset
//! ([`crate::partial_label`]); `experiments/scene.toml` is exactly `cft reproduce`.

use crate::partial_label::ReproduceConfig;
use anyhow::{bail, Result};
use cft_core::{GaConfig, Precision};
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
    /// The simulated partial labels.
    pub labels: LabelSpec,
    /// The base heads (linear, on frozen features).
    #[serde(default)]
    pub base: BaseSpec,
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

/// `[data]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// A bundled dataset name (`scene`, `flags`, `emotions`) or a dataset manifest path
    /// (relative to the spec file).
    pub dataset: String,
    /// Round the features to this storage precision first (`f32` = as read).
    #[serde(default)]
    pub feature_precision: Precision,
}

/// `[labels]`: the reference's label dropping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSpec {
    /// Known-label proportions, each in (0, 1].
    pub proportions: Vec<f64>,
    /// Seed of the dropping stream (the reference's 526).
    #[serde(default = "mask_seed")]
    pub mask_seed: u64,
}

fn mask_seed() -> u64 {
    526
}

/// `[base]`: the recipe of the AN and Ignore base heads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseSpec {
    /// Full-batch Adam epochs.
    pub epochs: usize,
    /// Adam learning rate.
    pub lr: f32,
    /// L2 penalty on the weights.
    pub weight_decay: f32,
}

impl Default for BaseSpec {
    fn default() -> Self {
        let r = cft_core::BaseHeadConfig::recipe(cft_core::BaseMode::An);
        Self { epochs: r.epochs, lr: r.lr, weight_decay: r.weight_decay }
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
    pub dir: PathBuf,
}

impl Default for OutputSpec {
    fn default() -> Self {
        Self { dir: PathBuf::from("reports") }
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
        if self.labels.proportions.is_empty() {
            bail!("labels.proportions: at least one proportion is needed");
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
        }
    }

    /// The dataset argument resolved against the spec's folder when it is a path.
    pub fn dataset_in(&self, spec_path: &Path) -> String {
        let d = &self.data.dataset;
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
