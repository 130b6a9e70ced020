//! Parameter checks, in one place: every configuration of the core (Adam, the losses, the GA,
//! fine-tuning, the base-head recipe, the held-out fraction) has a `check()` returning a
//! [`ParamError`] that names the parameter, its value and the allowed range. Specs, the
//! command line and bindings delegate to these (renaming the parameter to their own key with
//! [`ParamError::named`]), so a value is refused the same way from every front end, and a
//! library caller gets the same checks.

use crate::adam::AdamConfig;
use crate::base_head::{BaseHeadConfig, BaseMode, CheckedBaseHead};
use crate::finetune::{CheckedFineTune, FineTuneConfig, GaConfig, Method};
use crate::loss::Loss;

pub use crate::error::ParamError;

/// The most GA individuals: each holds a score per training sample (the reference uses 50).
pub const MAX_POPULATION: usize = 10_000;

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
    /// Checks the method's parameters (Adam and the loss under `adam.` / `loss.`, the GA under
    /// `ga.`), `max_epochs` and `patience` at least 1, requested categories listed once each;
    /// the checked configuration is the only form [`crate::finetune()`] takes.
    pub fn check(self) -> Result<CheckedFineTune, ParamError> {
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
            if cats.is_empty() {
                return Err(ParamError::new(
                    "categories",
                    "[]",
                    "expected at least one category (leave it out for all)",
                ));
            }
            let mut seen = std::collections::HashSet::with_capacity(cats.len());
            if let Some(&twice) = cats.iter().find(|&&c| !seen.insert(c)) {
                return Err(ParamError::new("categories", twice, "listed twice; each category runs once"));
            }
        }
        Ok(CheckedFineTune::checked(self))
    }
}

impl BaseHeadConfig {
    /// `epochs` at least 1, `lr` in (0, 1], `weight_decay` finite and ≥ 0, and the parameters
    /// its mode reads (each under `<mode>.`, e.g. `em-apl.beta`); the checked configuration is
    /// the only form the trainers take.
    pub fn check(self) -> Result<CheckedBaseHead, ParamError> {
        at_least_one("epochs", self.epochs, "a base head needs at least one epoch")?;
        check_lr("lr", self.lr)?;
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(ParamError::new("weight_decay", self.weight_decay, "expected a finite number ≥ 0"));
        }
        self.check_loss_params().map_err(|e| e.under(&format!("{}.", self.mode.name())))?;
        Ok(CheckedBaseHead(self))
    }

    fn check_loss_params(&self) -> Result<(), ParamError> {
        let p = &self.params;
        let positive = |param: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(ParamError::new(param, v, "expected a finite number > 0"))
            }
        };
        let probability = |param: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(ParamError::new(param, v, "expected a value in [0, 1]"))
            }
        };
        let non_negative = |param: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(ParamError::new(param, v, "expected a finite number ≥ 0"))
            }
        };
        match self.mode {
            BaseMode::An | BaseMode::Ignore | BaseMode::Wan => Ok(()),
            BaseMode::AnLs => {
                if (0.0..1.0).contains(&p.ls_coef) {
                    Ok(())
                } else {
                    Err(ParamError::new("ls_coef", p.ls_coef, "expected a smoothing coefficient in [0, 1)"))
                }
            }
            BaseMode::Epr => positive("expected_positives", p.expected_positives),
            BaseMode::Role => {
                positive("expected_positives", p.expected_positives)?;
                positive("estimator_lr_mult", p.estimator_lr_mult)?;
                let lr = f64::from(self.lr) * p.estimator_lr_mult;
                if lr > 10.0 {
                    return Err(ParamError::new(
                        "estimator_lr_mult",
                        p.estimator_lr_mult,
                        format!("the estimates' learning rate lr × estimator_lr_mult = {lr} is above 10"),
                    ));
                }
                Ok(())
            }
            BaseMode::Em => non_negative("alpha", p.alpha),
            BaseMode::EmApl => {
                non_negative("alpha", p.alpha)?;
                non_negative("beta", p.beta)?;
                probability("neg_proportion", p.neg_proportion)?;
                let w = p.warmup_for(self.epochs);
                if w == 0 || w >= self.epochs {
                    return Err(ParamError::new(
                        "warmup_epoch",
                        w,
                        format!(
                            "expected an epoch from 1 to {} (below the {} epochs)",
                            self.epochs.saturating_sub(1),
                            self.epochs
                        ),
                    ));
                }
                Ok(())
            }
            BaseMode::LlR | BaseMode::LlCt | BaseMode::LlCp => {
                if p.delta_rel > 0.0 && p.delta_rel < 1.0 {
                    Ok(())
                } else {
                    Err(ParamError::new("delta_rel", p.delta_rel, "expected a fraction per epoch in (0, 1)"))
                }
            }
        }
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
        assert_eq!(fc.clone().check().unwrap_err().to_string(), "patience = 0: expected at least 1");
        let fc = FineTuneConfig { categories: Some(vec![3, 1, 3]), ..fc };
        let fc = FineTuneConfig { patience: 300, ..fc };
        assert_eq!(
            fc.clone().check().unwrap_err().to_string(),
            "categories = 3: listed twice; each category runs once"
        );
        let fc = FineTuneConfig { categories: Some(vec![0, 6]), ..fc };
        let checked = fc.check().unwrap();
        checked.check_categories(7).unwrap();
        assert_eq!(
            checked.check_categories(6).unwrap_err().named("--categories").to_string(),
            "--categories 6: not a category index (the data has 6 categories)"
        );
        let base = BaseHeadConfig { weight_decay: f32::NAN, ..BaseHeadConfig::recipe(crate::BaseMode::An) };
        assert_eq!(base.check().unwrap_err().to_string(), "weight_decay = NaN: expected a finite number ≥ 0");
        let mut apl = BaseHeadConfig::recipe(crate::BaseMode::EmApl);
        apl.params.beta = -1.0;
        assert_eq!(apl.check().unwrap_err().to_string(), "em-apl.beta = -1: expected a finite number ≥ 0");
        let mut ll = BaseHeadConfig::recipe(crate::BaseMode::LlR);
        ll.params.delta_rel = 1.5;
        assert_eq!(
            ll.check().unwrap_err().to_string(),
            "ll-r.delta_rel = 1.5: expected a fraction per epoch in (0, 1)"
        );
        ll.params.warmup_epoch = Some(0); // another mode's parameter is not checked
        ll.params.delta_rel = 0.01;
        ll.check().unwrap();
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
