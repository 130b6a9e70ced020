//! The linear multi-label head: one logistic regression per category, `p_c = σ(w_c · z + b_c)`.
//!
//! Laid out like PyTorch's `nn.Linear(d, C)`: `weight` is `C × d` row-major, `bias` has `C`
//! entries, so a head round-trips through a PyTorch state dict unchanged.

use crate::linalg::{gemm_nt, Matrix};

/// A linear head with `C` categories over `d`-dimensional features.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearHead {
    /// `C × d` weights, row `c` is category `c`'s weight vector.
    pub weight: Matrix,
    /// `C` biases.
    pub bias: Vec<f32>,
}

impl LinearHead {
    /// Builds a head; `None` if `bias.len()` differs from the weight's row count.
    pub fn new(weight: Matrix, bias: Vec<f32>) -> Result<Self, crate::error::CoreError> {
        if weight.rows() != bias.len() {
            return Err(crate::error::CoreError::shape(
                "linear head",
                format!("{} biases (weight [{}, {}])", weight.rows(), weight.rows(), weight.cols()),
                format!("{} biases", bias.len()),
            ));
        }
        Ok(Self { weight, bias })
    }

    /// A zero head.
    pub fn zeros(categories: usize, dim: usize) -> Self {
        Self { weight: Matrix::zeros(categories, dim), bias: vec![0.0; categories] }
    }

    /// Number of categories `C`.
    pub fn categories(&self) -> usize {
        self.bias.len()
    }

    /// Feature dimension `d`.
    pub fn dim(&self) -> usize {
        self.weight.cols()
    }

    /// Logits of every sample for every category, `n × C` row-major (the usual layout of a
    /// model's output).
    pub fn logits(&self, features: &Matrix) -> Vec<f32> {
        let (n, c) = (features.rows(), self.categories());
        let mut by_category = vec![0.0f32; n * c];
        gemm_nt(features, &self.weight, &self.bias, &mut by_category);
        let mut out = vec![0.0f32; n * c];
        for cat in 0..c {
            for i in 0..n {
                out[i * c + cat] = by_category[cat * n + i];
            }
        }
        out
    }
}
