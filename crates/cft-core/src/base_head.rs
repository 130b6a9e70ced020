//! Training a base head on frozen features, for users who bring features but no trained model.
//!
//! The recipe (deterministic, no randomness):
//! * targets per mode: **AN** (assume negative) turns every unknown label into a negative, the
//!   usual way to train on partial labels and the base CFT repairs; **Ignore** uses known
//!   labels only;
//! * start: zero weights, bias = logit of the category's positive rate among its targets;
//! * objective per category: BCE with logits averaged over its targets, plus L2
//!   `weight_decay · ‖w‖²/2` (coupled into Adam's gradient, as PyTorch's `weight_decay`);
//! * optimizer: full-batch Adam (lr 1e-2 by default) for a fixed number of epochs (300).
//!
//! All categories train together: their logits are one GEMM, their gradients another.

use crate::adam::{Adam, AdamConfig};
use crate::head::LinearHead;
use crate::labels::{Label, PartialLabels};
use crate::linalg::{gemm_nn, gemm_nt, Matrix};
use crate::loss::sigmoid;
use serde::{Deserialize, Serialize};

/// How unknown labels are treated when training a base head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BaseMode {
    /// Assume negative: unknown → negative.
    An,
    /// Ignore: unknown labels do not enter the loss.
    Ignore,
}

impl BaseMode {
    /// Short name for tables (`AN`, `Ignore`).
    pub fn label(self) -> &'static str {
        match self {
            BaseMode::An => "AN",
            BaseMode::Ignore => "Ignore",
        }
    }
}

/// Settings of the base-head recipe.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BaseHeadConfig {
    /// AN or Ignore.
    pub mode: BaseMode,
    /// Full-batch epochs.
    pub epochs: usize,
    /// Adam learning rate.
    pub lr: f32,
    /// L2 penalty on weights (not biases).
    pub weight_decay: f32,
}

impl BaseHeadConfig {
    /// The documented recipe: 300 epochs, lr 1e-2, weight decay 1e-4.
    pub fn recipe(mode: BaseMode) -> Self {
        Self { mode, epochs: 300, lr: 1e-2, weight_decay: 1e-4 }
    }
}

/// Trains a head on `features` (`n × d`) and partial `labels` (uncertain entries are treated as
/// unknown; resolve them first to use another policy).
pub fn train_base_head(features: &Matrix, labels: &PartialLabels, cfg: &BaseHeadConfig) -> LinearHead {
    let (n, d, c) = (features.rows(), features.cols(), labels.n_categories());
    assert_eq!(labels.n_samples(), n, "labels must have one row per feature row");
    // targets[cat × n + i]: 1, 0, or NaN where the sample does not enter the loss.
    let mut targets = vec![f32::NAN; c * n];
    let mut counts = vec![0usize; c];
    let mut positives = vec![0usize; c];
    for i in 0..n {
        for cat in 0..c {
            let t = match (labels.get(i, cat), cfg.mode) {
                (Label::Positive, _) => Some(1.0),
                (Label::Negative, _) | (Label::Unknown | Label::Uncertain, BaseMode::An) => Some(0.0),
                _ => None,
            };
            if let Some(t) = t {
                targets[cat * n + i] = t;
                counts[cat] += 1;
                if t == 1.0 {
                    positives[cat] += 1;
                }
            }
        }
    }
    let mut head = LinearHead::zeros(c, d);
    for cat in 0..c {
        let rate = (positives[cat] as f64 / counts[cat].max(1) as f64).clamp(1e-4, 1.0 - 1e-4);
        head.bias[cat] = (rate / (1.0 - rate)).ln() as f32;
    }
    let mut params: Vec<f32> = head.weight.as_slice().iter().chain(&head.bias).copied().collect();
    let mut grads = vec![0.0f32; params.len()];
    let adam_cfg = AdamConfig { lr: cfg.lr, ..AdamConfig::default() };
    let mut adam = Adam::new(adam_cfg, params.len());
    let mut logits = vec![0.0f32; c * n];
    for _ in 0..cfg.epochs {
        let w = Matrix::new(c, d, params[..c * d].to_vec()).expect("shape");
        gemm_nt(features, &w, &params[c * d..], &mut logits);
        for cat in 0..c {
            let scale = 1.0 / counts[cat].max(1) as f32;
            let row = &mut logits[cat * n..(cat + 1) * n];
            let mut bias_grad = 0.0f64;
            for (x, &t) in row.iter_mut().zip(&targets[cat * n..(cat + 1) * n]) {
                *x = if t.is_nan() { 0.0 } else { (sigmoid(*x) - t) * scale };
                bias_grad += f64::from(*x);
            }
            grads[c * d + cat] = bias_grad as f32;
        }
        gemm_nn(&logits, c, features, &mut grads[..c * d]);
        for (g, &p) in grads[..c * d].iter_mut().zip(&params[..c * d]) {
            *g += cfg.weight_decay * p;
        }
        adam.step(&mut params, &grads);
    }
    head.weight = Matrix::new(c, d, params[..c * d].to_vec()).expect("shape");
    head.bias = params[c * d..].to_vec();
    head
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metric;

    #[test]
    fn learns_a_linearly_separable_category_in_both_modes() {
        let n = 100;
        let x: Vec<f32> = (0..n).flat_map(|i| [i as f32 / n as f32 - 0.5, 1.0]).collect();
        let x = Matrix::new(n, 2, x).unwrap();
        let labels: Vec<Label> = (0..n)
            .map(|i| {
                if i % 3 == 0 {
                    Label::Unknown
                } else if i >= 50 {
                    Label::Positive
                } else {
                    Label::Negative
                }
            })
            .collect();
        let labels = PartialLabels::new(n, 1, labels).unwrap();
        for mode in [BaseMode::An, BaseMode::Ignore] {
            let head = train_base_head(&x, &labels, &BaseHeadConfig::recipe(mode));
            assert!(head.weight.row(0)[0] > 0.5, "{mode:?}: {:?}", head.weight);
            let s = head.logits(&x);
            let y: Vec<bool> = (0..n).map(|i| i >= 50).collect();
            assert!(Metric::Auc.score(&s, &y).unwrap() > 0.99);
        }
    }
}
