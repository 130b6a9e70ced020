//! Losses on one category's logits, with their gradient with respect to the logits.
//!
//! * BCE with logits, summed (`torch.nn.BCEWithLogitsLoss(reduction="sum")`);
//! * the asymmetric loss ASL (Ridnik et al. 2021) exactly as the reference's `AsymmetricLoss`:
//!   `p = σ(x)`, `p_neg = min(1 − p + clip, 1)`, loss `= −Σ [y log(max(p, eps)) + (1−y)
//!   log(max(p_neg, eps))] · w` with the focusing weight `w = (1 − p_t)^γ` computed without
//!   gradient (`disable_torch_grad_focal_loss=True`), summed.

use serde::{Deserialize, Serialize};

/// A per-category classification loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Loss {
    /// Binary cross-entropy on logits, sum reduction.
    Bce,
    /// Asymmetric loss, sum reduction.
    Asl {
        /// Focusing exponent for negatives (reference: 4).
        gamma_neg: f32,
        /// Focusing exponent for positives (reference: 0).
        gamma_pos: f32,
        /// Probability margin added to negatives (reference: 0.05).
        clip: f32,
        /// Floor inside the logarithms (reference: 1e-8).
        eps: f32,
    },
}

impl Loss {
    /// The reference's floor inside ASL's logarithms (not a setting of the spec).
    pub const ASL_REFERENCE_EPS: f32 = 1e-8;

    /// The reference's ASL: γ− = 4, γ+ = 0, clip 0.05, eps 1e-8.
    pub const ASL_REFERENCE: Loss =
        Loss::Asl { gamma_neg: 4.0, gamma_pos: 0.0, clip: 0.05, eps: Loss::ASL_REFERENCE_EPS };

    /// Returns the summed loss and writes `∂loss/∂logit` into `grad`.
    pub fn value_and_grad(&self, logits: &[f32], targets: &[bool], grad: &mut [f32]) -> f64 {
        assert_eq!(logits.len(), targets.len());
        assert_eq!(grad.len(), logits.len());
        let mut total = 0.0f64;
        match *self {
            Loss::Bce => {
                for ((&x, &y), g) in logits.iter().zip(targets).zip(grad.iter_mut()) {
                    let p = sigmoid(x);
                    let t = if y { 1.0 } else { 0.0 };
                    // log(1 + e^{-|x|}) + max(x, 0) − x·y, the stable form PyTorch uses.
                    let l = x.max(0.0) - x * t + (-x.abs()).exp().ln_1p();
                    total += f64::from(l);
                    *g = p - t;
                }
            }
            Loss::Asl { gamma_neg, gamma_pos, clip, eps } => {
                for ((&x, &y), g) in logits.iter().zip(targets).zip(grad.iter_mut()) {
                    let p = sigmoid(x);
                    if y {
                        let w = if gamma_pos > 0.0 { (1.0 - p).powf(gamma_pos) } else { 1.0 };
                        let l = -(p.max(eps)).ln() * w;
                        total += f64::from(l);
                        // d/dx −log p = −(1 − p) while p > eps (the clamp passes no gradient).
                        *g = if p > eps { -(1.0 - p) * w } else { 0.0 };
                    } else {
                        let shifted = 1.0 - p + clip;
                        let p_neg = if clip > 0.0 { shifted.min(1.0) } else { 1.0 - p };
                        let w = if gamma_neg > 0.0 { (1.0 - p_neg).powf(gamma_neg) } else { 1.0 };
                        let l = -(p_neg.max(eps)).ln() * w;
                        total += f64::from(l);
                        let clipped = clip > 0.0 && shifted > 1.0;
                        // d/dx −log(1 − p + clip) = p(1 − p) / (1 − p + clip).
                        *g = if clipped || p_neg <= eps { 0.0 } else { p * (1.0 - p) / p_neg * w };
                    }
                }
            }
        }
        total
    }
}

/// The logistic function.
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric_grad(loss: Loss, x: f32, y: bool) -> f64 {
        let h = 1e-3f32;
        let mut g = [0.0];
        let up = loss.value_and_grad(&[x + h], &[y], &mut g);
        let down = loss.value_and_grad(&[x - h], &[y], &mut g);
        (up - down) / (2.0 * f64::from(h))
    }

    #[test]
    fn bce_gradient_matches_finite_differences() {
        for &(x, y) in &[(-2.0f32, true), (0.3, false), (3.0, true)] {
            let mut g = [0.0];
            Loss::Bce.value_and_grad(&[x], &[y], &mut g);
            assert!((f64::from(g[0]) - numeric_grad(Loss::Bce, x, y)).abs() < 1e-3);
        }
    }

    #[test]
    fn asl_positive_gradient_and_clipped_negative() {
        let asl = Loss::ASL_REFERENCE;
        let mut g = [0.0];
        asl.value_and_grad(&[0.5], &[true], &mut g);
        assert!((f64::from(g[0]) - numeric_grad(asl, 0.5, true)).abs() < 1e-3);
        // p = σ(−4) ≈ 0.018 < clip: the negative is clipped, no loss and no gradient.
        let l = asl.value_and_grad(&[-4.0], &[false], &mut g);
        assert_eq!(l, 0.0);
        assert_eq!(g[0], 0.0);
        // Unclipped negative: the focusing weight carries no gradient, so the analytic gradient
        // is w · p(1 − p) / p_neg rather than the full derivative.
        let x = 1.0f32;
        let p = sigmoid(x);
        let p_neg = 1.0 - p + 0.05;
        asl.value_and_grad(&[x], &[false], &mut g);
        let w = (1.0 - p_neg).powi(4);
        assert!((g[0] - w * p * (1.0 - p) / p_neg).abs() < 1e-7);
    }
}
