//! Parameter checks, in one place: every configuration of the core (Adam, the losses, the GA,
//! fine-tuning, the base-head recipe, the held-out fraction) has a `check()` returning a
//! [`ParamError`] that names the parameter, its value and the allowed range. Specs, the
//! command line and bindings delegate to these (renaming the parameter to their own key with
//! [`ParamError::named`]), so a value is refused the same way from every front end, and a
//! library caller gets the same checks.

use crate::adam::AdamConfig;
use crate::base_head::BaseHeadConfig;
use crate::finetune::{FineTuneConfig, GaConfig, Method};
use crate::loss::Loss;

/// The most GA individuals: each holds a score per training sample (the reference uses 50).
pub const MAX_POPULATION: usize = 10_000;

/// A parameter outside its range: `{param} = {value}: {expected}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamError {
    /// The parameter's name (the core's, or the front end's key or flag after [`ParamError::named`]).
    pub param: String,
    /// The refused value, as written.
    pub value: String,
    /// What is allowed.
    pub expected: String,
}

impl std::fmt::Display for ParamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A flag reads as on the command line (`--lr 0`), a key as in a spec (`cft.bp_lr = 0`).
        let sep = if self.param.starts_with("--") { " " } else { " = " };
        write!(f, "{}{sep}{}: {}", self.param, self.value, self.expected)
    }
}

impl std::error::Error for ParamError {}

impl ParamError {
    fn new(param: &str, value: impl std::fmt::Display, expected: impl Into<String>) -> Self {
        Self { param: param.to_string(), value: value.to_string(), expected: expected.into() }
    }

    /// A name that is not one of `choices` (`method = "sgd": expected one of "bp-asl", …`).
    pub fn unknown(param: &str, value: &str, choices: &[&str]) -> Self {
        let quoted: Vec<String> = choices.iter().map(|c| format!("{c:?}")).collect();
        Self::new(param, format!("{value:?}"), format!("expected one of {}", quoted.join(", ")))
    }

    /// The same error under the front end's name for the parameter: a spec key (`cft.bp_lr`;
    /// shown as `cft.bp_lr = 0: …`) or a flag (`--lr`; shown as `--lr 0: …`).
    pub fn named(self, name: &str) -> Self {
        Self { param: name.to_string(), ..self }
    }

    /// The same error with `prefix` before the parameter's name (`ga.` → `cft.ga.population`).
    pub fn under(self, prefix: &str) -> Self {
        Self { param: format!("{prefix}{}", self.param), ..self }
    }
}

/// A learning rate: finite, in (0, 1].
pub fn check_lr(param: &str, lr: f32) -> Result<(), ParamError> {
    if lr.is_finite() && lr > 0.0 && lr <= 1.0 {
        Ok(())
    } else {
        Err(ParamError::new(param, lr, "expected a learning rate in (0, 1]"))
    }
}

/// The proportion of labels kept known ([`crate::drop_labels`]): in [0, 1].
pub fn check_known_proportion(param: &str, p: f64) -> Result<(), ParamError> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(ParamError::new(param, p, "expected a proportion of known labels in [0, 1]"))
    }
}

/// The share of training images held out for selection: in (0, 1).
pub fn check_holdout_fraction(param: &str, f: f64) -> Result<(), ParamError> {
    if f > 0.0 && f < 1.0 {
        Ok(())
    } else {
        Err(ParamError::new(param, f, "expected a fraction in (0, 1)"))
    }
}

fn at_least_one(param: &str, v: usize, what: &str) -> Result<(), ParamError> {
    if v >= 1 {
        Ok(())
    } else {
        Err(ParamError::new(param, v, what))
    }
}

impl AdamConfig {
    /// `lr` in (0, 1], `beta1` and `beta2` in [0, 1), `eps` finite and > 0, `weight_decay`
    /// finite and ≥ 0.
    pub fn check(&self) -> Result<(), ParamError> {
        check_lr("lr", self.lr)?;
        for (param, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(ParamError::new(param, b, "expected a decay in [0, 1)"));
            }
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(ParamError::new("eps", self.eps, "expected a finite number > 0"));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(ParamError::new("weight_decay", self.weight_decay, "expected a finite number ≥ 0"));
        }
        Ok(())
    }
}

impl Loss {
    /// ASL: `gamma_neg` and `gamma_pos` in [0, 10], `clip` in [0, 1), `eps` finite and > 0.
    pub fn check(&self) -> Result<(), ParamError> {
        let Loss::Asl { gamma_neg, gamma_pos, clip, eps } = *self else { return Ok(()) };
        for (param, v) in [("gamma_neg", gamma_neg), ("gamma_pos", gamma_pos)] {
            if !(v.is_finite() && (0.0..=10.0).contains(&v)) {
                return Err(ParamError::new(param, v, "expected a focusing exponent in [0, 10]"));
            }
        }
        if !(0.0..1.0).contains(&clip) {
            return Err(ParamError::new("clip", clip, "expected a margin in [0, 1)"));
        }
        if !(eps.is_finite() && eps > 0.0) {
            return Err(ParamError::new("eps", eps, "expected a finite number > 0"));
        }
        Ok(())
    }
}

impl GaConfig {
    /// `population` 2 to [`MAX_POPULATION`], `elitism` below it, `crossover` and
    /// `mutation_prob` in [0, 1], `mutation_range` finite and ≥ 0.
    pub fn check(&self) -> Result<(), ParamError> {
        if !(2..=MAX_POPULATION).contains(&self.population) {
            return Err(ParamError::new(
                "population",
                self.population,
                format!(
                    "expected 2 to {MAX_POPULATION} individuals (the reference uses 50; each holds a score per training sample)"
                ),
            ));
        }
        if self.elitism >= self.population {
            return Err(ParamError::new(
                "elitism",
                self.elitism,
                format!("must be below the population ({})", self.population),
            ));
        }
        for (param, v) in [("crossover", self.crossover), ("mutation_prob", self.mutation_prob)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(ParamError::new(param, v, "expected a probability in [0, 1]"));
            }
        }
        if !(self.mutation_range.is_finite() && self.mutation_range >= 0.0) {
            return Err(ParamError::new("mutation_range", self.mutation_range, "expected a finite number ≥ 0"));
        }
        Ok(())
    }
}

impl FineTuneConfig {
    /// The method's parameters (Adam and the loss under `adam.` / `loss.`, the GA under `ga.`),
    /// `max_epochs` and `patience` at least 1, requested categories listed once each.
    pub fn check(&self) -> Result<(), ParamError> {
        match self.method {
            Method::Bp { loss, adam } => {
                adam.check().map_err(|e| e.under("adam."))?;
                loss.check().map_err(|e| e.under("loss."))?;
            }
            Method::Ga(ga) => ga.check().map_err(|e| e.under("ga."))?,
        }
        at_least_one("max_epochs", self.max_epochs, "expected at least 1")?;
        at_least_one("patience", self.patience, "expected at least 1")?;
        if let Some(cats) = &self.categories {
            let mut seen = std::collections::HashSet::with_capacity(cats.len());
            if let Some(&twice) = cats.iter().find(|&&c| !seen.insert(c)) {
                return Err(ParamError::new("categories", twice, "listed twice; each category runs once"));
            }
        }
        Ok(())
    }

    /// [`FineTuneConfig::check`], and every requested category an index of the data's
    /// `n_categories` (the engine passes over an index it does not have, so a front end that
    /// knows the data checks here).
    pub fn check_for(&self, n_categories: usize) -> Result<(), ParamError> {
        self.check()?;
        match self.categories.iter().flatten().find(|&&k| k >= n_categories) {
            Some(&bad) => Err(ParamError::new(
                "categories",
                bad,
                format!("not a category index (the data has {n_categories} categories)"),
            )),
            None => Ok(()),
        }
    }
}

impl BaseHeadConfig {
    /// `epochs` at least 1, `lr` in (0, 1], `weight_decay` finite and ≥ 0.
    pub fn check(&self) -> Result<(), ParamError> {
        at_least_one("epochs", self.epochs, "a base head needs at least one epoch")?;
        check_lr("lr", self.lr)?;
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(ParamError::new("weight_decay", self.weight_decay, "expected a finite number ≥ 0"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_parameter_its_value_and_the_range_under_every_front_ends_name() {
        let ga = GaConfig { population: 1, ..GaConfig::default() };
        let e = ga.check().unwrap_err();
        assert_eq!(
            e.to_string(),
            "population = 1: expected 2 to 10000 individuals (the reference uses 50; each holds a score per training sample)"
        );
        assert!(e.clone().under("cft.ga.").to_string().starts_with("cft.ga.population = 1: expected 2 to 10000"));
        let fc = FineTuneConfig::reference(Method::Bp {
            loss: Loss::Bce,
            adam: AdamConfig { lr: 0.0, ..AdamConfig::default() },
        });
        let e = fc.check().unwrap_err();
        assert_eq!(e.to_string(), "adam.lr = 0: expected a learning rate in (0, 1]");
        assert_eq!(e.named("--lr").to_string(), "--lr 0: expected a learning rate in (0, 1]");
        let asl = Loss::Asl { gamma_neg: 4.0, gamma_pos: 0.0, clip: 1.0, eps: 1e-8 };
        assert_eq!(asl.check().unwrap_err().to_string(), "clip = 1: expected a margin in [0, 1)");
        let ga = GaConfig { elitism: 50, ..GaConfig::default() };
        assert_eq!(ga.check().unwrap_err().to_string(), "elitism = 50: must be below the population (50)");
        let fc = FineTuneConfig { patience: 0, ..FineTuneConfig::reference(Method::Ga(GaConfig::default())) };
        assert_eq!(fc.check().unwrap_err().to_string(), "patience = 0: expected at least 1");
        let fc = FineTuneConfig { categories: Some(vec![3, 1, 3]), ..fc };
        let fc = FineTuneConfig { patience: 300, ..fc };
        assert_eq!(fc.check().unwrap_err().to_string(), "categories = 3: listed twice; each category runs once");
        let fc = FineTuneConfig { categories: Some(vec![0, 6]), ..fc };
        fc.check().unwrap();
        fc.check_for(7).unwrap();
        assert_eq!(
            fc.check_for(6).unwrap_err().named("--categories").to_string(),
            "--categories 6: not a category index (the data has 6 categories)"
        );
        let base = BaseHeadConfig { weight_decay: f32::NAN, ..BaseHeadConfig::recipe(crate::BaseMode::An) };
        assert_eq!(base.check().unwrap_err().to_string(), "weight_decay = NaN: expected a finite number ≥ 0");
        assert_eq!(
            check_holdout_fraction("selection.holdout_fraction", 1.0).unwrap_err().to_string(),
            "selection.holdout_fraction = 1: expected a fraction in (0, 1)"
        );
        // The defaults and the reference settings pass.
        for m in
            [Method::Ga(GaConfig::default()), Method::Bp { loss: Loss::ASL_REFERENCE, adam: AdamConfig::default() }]
        {
            FineTuneConfig::reference(m).check().unwrap();
        }
        BaseHeadConfig::recipe(crate::BaseMode::Ignore).check().unwrap();
    }
}
