//! Synthetic COCO-like data for benchmarks and scale tests: non-negative features (like
//! post-ReLU pooled CNN features) with a weak linear signal per category, partial labels with
//! a chosen known proportion, and a head near the truth. Not for results: for timing only.

use crate::head::LinearHead;
use crate::labels::{Label, PartialLabels};
use crate::linalg::Matrix;
use crate::rng::Pcg64;

/// Features and labels of one synthetic split.
#[derive(Debug, Clone)]
pub struct SyntheticSplit {
    /// `n × d` features.
    pub features: Matrix,
    /// `n × C` labels.
    pub labels: PartialLabels,
}

/// Builds a split of `n` samples, `d` features and `c` categories, each label known with
/// probability `known`, positives at rate `prevalence`; deterministic in `seed`.
pub fn synthetic_split(n: usize, d: usize, c: usize, known: f64, prevalence: f64, seed: u64) -> SyntheticSplit {
    let mut rng = Pcg64::new(seed);
    let mut labels = PartialLabels::unknown(n, c);
    let mut data = vec![0.0f32; n * d];
    for i in 0..n {
        let row = &mut data[i * d..(i + 1) * d];
        for v in row.iter_mut() {
            let u = rng.random() as f32;
            *v = if u < 0.5 { 0.0 } else { 2.0 * (u - 0.5) };
        }
        for cat in 0..c {
            let y = rng.random() < prevalence;
            if y {
                // Signal: category `cat` lifts a few dedicated feature dimensions.
                for k in 0..4 {
                    row[(cat * 4 + k) % d] += 0.5;
                }
            }
            if rng.random() < known {
                labels.set(i, cat, if y { Label::Positive } else { Label::Negative });
            }
        }
    }
    SyntheticSplit { features: Matrix::new(n, d, data).expect("shape"), labels }
}

/// A head with small deterministic weights, a reasonable but imperfect starting point.
pub fn synthetic_head(c: usize, d: usize, seed: u64) -> LinearHead {
    let mut rng = Pcg64::new(seed);
    let mut head = LinearHead::zeros(c, d);
    for cat in 0..c {
        let row = head.weight.row_mut(cat);
        for v in row.iter_mut() {
            *v = rng.uniform(-0.01, 0.01) as f32;
        }
        for k in 0..4 {
            row[(cat * 4 + k) % d] += 0.1;
        }
        head.bias[cat] = -2.0;
    }
    head
}
