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
//! All categories train together: their logits are one GEMM, their gradients another, over
//! blocks of rows (no images × categories matrix is ever held).

use crate::adam::{Adam, AdamConfig};
use crate::head::LinearHead;
use crate::labels::{PartialLabels, SparseLabels};
use crate::linalg::Matrix;
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

    /// Parses the lower-case spelling of front ends (`an`, `ignore`).
    pub fn parse(name: &str) -> Result<Self, crate::params::ParamError> {
        match name {
            "an" => Ok(BaseMode::An),
            "ignore" => Ok(BaseMode::Ignore),
            other => Err(crate::params::ParamError::unknown("mode", other, &["an", "ignore"])),
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
    assert_eq!(labels.n_samples(), features.rows(), "labels must have one row per feature row");
    train_base_head_sparse(features, None, &labels.to_sparse(), cfg)
}

/// [`train_base_head`] on sparse labels (numbered like `features`' rows), on the given rows of
/// `features` only (ascending; `None`: all). Nothing of size images × categories is held: the
/// rows stream through in blocks (OpenImages: a million images × 5,000 classes), and the
/// gradient sums carry on from block to block in row order, so the result is the same bits
/// whatever the block size.
pub fn train_base_head_sparse(
    features: &Matrix,
    rows: Option<&[usize]>,
    labels: &SparseLabels,
    cfg: &BaseHeadConfig,
) -> LinearHead {
    let c = labels.n_categories();
    assert_eq!(labels.n_samples, features.rows(), "labels must have one row per feature row");
    let all: Vec<usize>;
    let rows = match rows {
        Some(r) => r,
        None => {
            all = (0..features.rows()).collect();
            &all
        }
    };
    // At most 16 MB of logits, and of gathered rows, per block.
    let block = ((1usize << 22) / c.max(features.cols()).max(1)).clamp(64, 1 << 16);
    train_in_blocks(features, rows, labels, cfg, block)
}

fn train_in_blocks(
    features: &Matrix,
    rows: &[usize],
    labels: &SparseLabels,
    cfg: &BaseHeadConfig,
    block: usize,
) -> LinearHead {
    let (n, d, c) = (rows.len(), features.cols(), labels.n_categories());
    let block = block.min(n).max(1);
    let targets = Targets::new(labels, rows, features.rows(), cfg.mode);
    let mut head = LinearHead::zeros(c, d);
    for cat in 0..c {
        let rate = (targets.positives[cat] as f64 / targets.counts[cat].max(1) as f64).clamp(1e-4, 1.0 - 1e-4);
        head.bias[cat] = (rate / (1.0 - rate)).ln() as f32;
    }
    let mut params: Vec<f32> = head.weight.as_slice().iter().chain(&head.bias).copied().collect();
    let mut grads = vec![0.0f32; params.len()];
    let adam_cfg = AdamConfig { lr: cfg.lr, ..AdamConfig::default() };
    let mut adam = Adam::new(adam_cfg, params.len());
    let mut x = Vec::with_capacity(block * d);
    let mut logits = vec![0.0f32; c * block];
    let mut target = vec![f32::NAN; c * block];
    for _ in 0..cfg.epochs {
        grads.fill(0.0);
        let mut bias_grads = vec![0.0f64; c];
        for start in (0..n).step_by(block) {
            let len = block.min(n - start);
            x.clear();
            for &r in &rows[start..start + len] {
                x.extend_from_slice(features.row(r));
            }
            let (logits, target) = (&mut logits[..c * len], &mut target[..c * len]);
            crate::kernels::scores_nt(&x, len, d, &params[..c * d], c, &params[c * d..], logits);
            targets.fill(start..start + len, target);
            for cat in 0..c {
                let scale = 1.0 / targets.counts[cat].max(1) as f32;
                let row = &mut logits[cat * len..(cat + 1) * len];
                for (v, &t) in row.iter_mut().zip(&target[cat * len..(cat + 1) * len]) {
                    *v = if t.is_nan() { 0.0 } else { (sigmoid(*v) - t) * scale };
                    bias_grads[cat] += f64::from(*v);
                }
            }
            crate::kernels::weighted_row_sums_onto(logits, c, &x, len, d, &mut grads[..c * d]);
        }
        for (g, b) in grads[c * d..].iter_mut().zip(&bias_grads) {
            *g = *b as f32;
        }
        for (g, &p) in grads[..c * d].iter_mut().zip(&params[..c * d]) {
            *g += cfg.weight_decay * p;
        }
        adam.step(&mut params, &grads);
    }
    head.weight = Matrix::new(c, d, params[..c * d].to_vec()).expect("shape");
    head.bias = params[c * d..].to_vec();
    head
}

/// The base head's targets, kept sparse: per category its known positives and negatives as
/// positions among the trained rows, filled into one block of rows at a time.
struct Targets {
    /// Per category: (position, target) of its known rows, ascending.
    known: Vec<Vec<(u32, bool)>>,
    /// Unknown rows are negatives (AN) or out of the loss (Ignore).
    unknown: f32,
    /// Rows entering each category's loss.
    counts: Vec<usize>,
    /// Positives among them.
    positives: Vec<usize>,
}

impl Targets {
    fn new(labels: &SparseLabels, rows: &[usize], n_samples: usize, mode: BaseMode) -> Self {
        let mut position = vec![u32::MAX; n_samples];
        for (j, &r) in rows.iter().enumerate() {
            position[r] = j as u32;
        }
        let known: Vec<Vec<(u32, bool)>> = labels
            .per_category
            .iter()
            .map(|k| {
                let mut v: Vec<(u32, bool)> = k
                    .positives
                    .iter()
                    .map(|&s| (s, true))
                    .chain(k.negatives.iter().map(|&s| (s, false)))
                    .filter_map(|(s, y)| {
                        let p = position[s as usize];
                        (p != u32::MAX).then_some((p, y))
                    })
                    .collect();
                v.sort_unstable_by_key(|&(p, _)| p);
                v
            })
            .collect();
        let positives: Vec<usize> = known.iter().map(|v| v.iter().filter(|&&(_, y)| y).count()).collect();
        let counts = match mode {
            BaseMode::An => vec![rows.len(); known.len()],
            BaseMode::Ignore => known.iter().map(Vec::len).collect(),
        };
        let unknown = match mode {
            BaseMode::An => 0.0,
            BaseMode::Ignore => f32::NAN,
        };
        Self { known, unknown, counts, positives }
    }

    /// `out[cat × len + j]`: the target of row position `block.start + j`.
    fn fill(&self, block: std::ops::Range<usize>, out: &mut [f32]) {
        let len = block.len();
        out.fill(self.unknown);
        for (cat, known) in self.known.iter().enumerate() {
            let from = known.partition_point(|&(p, _)| (p as usize) < block.start);
            for &(p, y) in known[from..].iter().take_while(|&&(p, _)| (p as usize) < block.end) {
                out[cat * len + p as usize - block.start] = if y { 1.0 } else { 0.0 };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Label;
    use crate::metrics::Metric;

    #[test]
    fn blocks_and_row_subsets_give_the_bits_of_one_pass_over_the_gathered_rows() {
        let (n, d, c) = (300, 5, 3);
        let x: Vec<f32> = (0..n * d).map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 250.0).collect();
        let x = Matrix::new(n, d, x).unwrap();
        let labels: Vec<Label> = (0..n * c)
            .map(|i| match (i * 31 + i / 7) % 5 {
                0 => Label::Positive,
                1 | 2 => Label::Negative,
                3 => Label::Uncertain,
                _ => Label::Unknown,
            })
            .collect();
        let labels = PartialLabels::new(n, c, labels).unwrap();
        let rows: Vec<usize> = (0..n).filter(|i| i % 4 != 0).collect();
        for mode in [BaseMode::An, BaseMode::Ignore] {
            let cfg = BaseHeadConfig { epochs: 20, ..BaseHeadConfig::recipe(mode) };
            let sparse = labels.to_sparse();
            let one_pass = train_in_blocks(&x, &rows, &sparse, &cfg, n);
            for block in [1, 7, 64] {
                assert_eq!(train_in_blocks(&x, &rows, &sparse, &cfg, block), one_pass, "{mode:?}, block {block}");
            }
            let gathered = train_base_head(&x.gather_rows(&rows), &labels.select_rows(&rows), &cfg);
            assert_eq!(gathered, one_pass, "{mode:?}: the subset equals the gathered rows");
        }
    }

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
