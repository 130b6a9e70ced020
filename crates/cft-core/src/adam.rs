//! Adam with PyTorch's semantics (`torch.optim.Adam`, no weight decay, no AMSGrad): bias
//! corrections as Python floats, `denom = sqrt(v) / sqrt(1 − β₂ᵗ) + eps`, step
//! `p −= lr / (1 − β₁ᵗ) · m / denom`.

use serde::{Deserialize, Serialize};

/// Adam hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamConfig {
    /// Learning rate (reference CFT: 1e-4).
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Added after the square root.
    pub eps: f32,
    /// PyTorch Adam's (coupled) L2 term `g += wd · p` (0 in the reference).
    pub weight_decay: f32,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self { lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 }
    }
}

impl AdamConfig {
    /// The bias-corrected step of update `t` (1-based), as PyTorch computes it in Python floats:
    /// `(lr / (1 − β₁ᵗ), sqrt(1 − β₂ᵗ))`. Every engine (CPU, CUDA) takes it from here.
    pub fn corrections(&self, t: i32) -> (f32, f32) {
        let bc1 = 1.0 - f64::from(self.beta1).powi(t);
        let bc2 = 1.0 - f64::from(self.beta2).powi(t);
        ((f64::from(self.lr) / bc1) as f32, bc2.sqrt() as f32)
    }
}

/// Adam state for one parameter vector.
#[derive(Debug, Clone)]
pub struct Adam {
    cfg: AdamConfig,
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

impl Adam {
    /// Fresh state for `n` parameters.
    pub fn new(cfg: AdamConfig, n: usize) -> Self {
        Self { cfg, m: vec![0.0; n], v: vec![0.0; n], t: 0 }
    }

    /// One update of `params` given their gradient.
    pub fn step(&mut self, params: &mut [f32], grad: &[f32]) {
        assert_eq!(params.len(), self.m.len());
        assert_eq!(grad.len(), self.m.len());
        self.t += 1;
        let c = self.cfg;
        let (step_size, bc2_sqrt) = c.corrections(self.t);
        for i in 0..params.len() {
            let g = grad[i] + c.weight_decay * params[i];
            // `exp_avg.lerp_(grad, 1 − β₁)` as PyTorch writes it.
            self.m[i] += (1.0 - c.beta1) * (g - self.m[i]);
            self.v[i] = self.v[i] * c.beta2 + (1.0 - c.beta2) * g * g;
            let denom = self.v[i].sqrt() / bc2_sqrt + c.eps;
            params[i] -= step_size * self.m[i] / denom;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_moves_by_lr_in_sign_direction() {
        // With bias correction the first step is lr · g/|g| (up to eps).
        let mut p = [1.0f32, -1.0];
        let mut adam = Adam::new(AdamConfig { lr: 0.1, ..Default::default() }, 2);
        adam.step(&mut p, &[2.0, -0.5]);
        assert!((p[0] - 0.9).abs() < 1e-6);
        assert!((p[1] + 0.9).abs() < 1e-6);
    }
}
