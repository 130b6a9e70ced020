//! Host-side bookkeeping of the CUDA engine's batches, kept apart from the device code so that
//! it builds and is tested without a GPU: the padded label layouts a batch uploads, and each
//! category's progress through its epochs (best score and epoch, patience, history).

use crate::rank::{IGNORED, NEGATIVE, POSITIVE};
use cft_core::{should_stop, CategoryOutcome, EpochRecord, FineTuneConfig, SplitRef};

/// The labels of a batch of categories, laid out for the device.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchLabels {
    /// Each category's known training rows (ascending) and their labels.
    pub known: Vec<(Vec<usize>, Vec<bool>)>,
    /// Known training rows per category, padded to a multiple of 8 (aligned rows keep cuBLAS on
    /// its tensor-core kernels).
    pub nmax: usize,
    /// `k × nmax` training row indices; −1 pads (a zero row).
    pub idx: Vec<i32>,
    /// `k × nmax` training labels ([`POSITIVE`], [`NEGATIVE`], [`IGNORED`] for padding).
    pub ytr: Vec<i8>,
    /// The most training positives of any category (the rank kernel's shared-memory bound).
    pub train_pos: usize,
    /// `k × nv` validation labels, [`IGNORED`] where unknown.
    pub yva: Vec<i8>,
    /// Known validation rows per category.
    pub valid_known: Vec<usize>,
    /// The most validation positives of any category.
    pub valid_pos: usize,
}

impl BatchLabels {
    /// The layout of categories `cats` of `train` and `valid`.
    pub fn new(train: SplitRef<'_>, valid: SplitRef<'_>, cats: &[usize]) -> Self {
        let k = cats.len();
        let known: Vec<(Vec<usize>, Vec<bool>)> =
            cats.iter().map(|&cat| train.labels.per_category[cat].known_sorted()).collect();
        let nmax = known.iter().map(|(i, _)| i.len()).max().unwrap_or(0).next_multiple_of(8);
        let mut idx = vec![-1i32; k * nmax];
        let mut ytr = vec![IGNORED; k * nmax];
        let mut train_pos = 0;
        for (b, (rows, y)) in known.iter().enumerate() {
            for (j, (&r, &t)) in rows.iter().zip(y).enumerate() {
                idx[b * nmax + j] = r as i32;
                ytr[b * nmax + j] = if t { POSITIVE } else { NEGATIVE };
            }
            train_pos = train_pos.max(y.iter().filter(|&&t| t).count());
        }
        let nv = valid.features.rows();
        let mut yva = vec![IGNORED; k * nv];
        let mut valid_known = vec![0usize; k];
        let mut valid_pos = 0;
        for (b, &cat) in cats.iter().enumerate() {
            let (rows, y) = valid.labels.per_category[cat].known_sorted();
            valid_known[b] = rows.len();
            valid_pos = valid_pos.max(y.iter().filter(|&&t| t).count());
            for (&r, &t) in rows.iter().zip(&y) {
                yva[b * nv + r] = if t { POSITIVE } else { NEGATIVE };
            }
        }
        Self { known, nmax, idx, ytr, train_pos, yva, valid_known, valid_pos }
    }
}

/// Each category's progress through its epochs.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochTracker {
    /// 1 while the category still runs (uploaded as the kernels' mask), 0 once it stopped.
    pub active: Vec<u8>,
    /// Best validation score so far (the original head's to start with).
    pub best: Vec<f64>,
    /// Epoch of the best score (−1: the original head).
    pub best_epoch: Vec<i64>,
    /// Epochs run.
    pub epochs_run: Vec<usize>,
    /// Per-epoch records (kept when the configuration asks for them).
    pub history: Vec<Vec<EpochRecord>>,
}

impl EpochTracker {
    /// Every category active, its best the original head's validation score.
    pub fn new(original: &[f64]) -> Self {
        let k = original.len();
        Self {
            active: vec![1; k],
            best: original.to_vec(),
            best_epoch: vec![-1; k],
            epochs_run: vec![0; k],
            history: vec![Vec::new(); k],
        }
    }

    /// Records one epoch: the validation scores `valid` (one per category) and, for the
    /// history, the GA's fitness (`k × population`) or BP's loss (one per category). Returns
    /// whether a category stopped at this epoch (its patience or the epoch limit).
    pub fn record(
        &mut self,
        epoch: usize,
        valid: &[f64],
        fitness: Option<&[f64]>,
        loss: Option<&[f64]>,
        cfg: &FineTuneConfig,
    ) -> bool {
        let k = self.active.len();
        let mut changed = false;
        for b in 0..k {
            if self.active[b] == 0 {
                continue;
            }
            self.epochs_run[b] += 1;
            if cfg.keep_history {
                let pop = fitness.map(|f| f.len() / k).unwrap_or(0);
                let fb = fitness.map(|f| &f[b * pop..(b + 1) * pop]);
                self.history[b].push(EpochRecord {
                    epoch,
                    loss: loss.map(|l| l[b]),
                    best_fitness: fb.map(|f| f.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
                    mean_fitness: fb.map(|f| f.iter().sum::<f64>() / f.len() as f64),
                    valid_score: valid[b],
                });
            }
            if valid[b] > self.best[b] {
                self.best[b] = valid[b];
                self.best_epoch[b] = epoch as i64;
            }
            if should_stop(epoch, self.best_epoch[b], cfg.patience, cfg.max_epochs) {
                self.active[b] = 0;
                changed = true;
            }
        }
        changed
    }

    /// Whether every category has stopped.
    pub fn all_stopped(&self) -> bool {
        self.active.iter().all(|&a| a == 0)
    }

    /// The outcomes of categories `cats`: `best_params` holds each category's kept head as a
    /// row of `d1` values (the weights, then the bias at column `d`).
    pub fn into_outcomes(
        mut self,
        cats: &[usize],
        labels: &BatchLabels,
        original: &[f64],
        best_params: &[f32],
        (d, d1): (usize, usize),
        seconds: f64,
    ) -> Vec<CategoryOutcome> {
        cats.iter()
            .enumerate()
            .map(|(b, &cat)| CategoryOutcome {
                category: cat,
                skipped: None,
                train_known: labels.known[b].0.len(),
                valid_known: labels.valid_known[b],
                original_score: Some(original[b]),
                best_score: Some(self.best[b]),
                best_epoch: self.best_epoch[b],
                epochs_run: self.epochs_run[b],
                seconds,
                history: std::mem::take(&mut self.history[b]),
                weight: best_params[b * d1..b * d1 + d].to_vec(),
                bias: best_params[b * d1 + d],
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cft_core::{Label, Matrix, PartialLabels};

    #[test]
    fn labels_are_padded_to_eight_rows_and_unknowns_are_ignored() {
        let mut y = PartialLabels::unknown(10, 2);
        for (i, l) in [(0, Label::Positive), (3, Label::Negative), (9, Label::Positive)] {
            y.set(i, 1, l);
        }
        y.set(2, 0, Label::Negative);
        let x = Matrix::zeros(10, 3);
        let s = y.to_sparse();
        let split = SplitRef { features: &x, labels: &s };
        let l = BatchLabels::new(split, split, &[1, 0]);
        assert_eq!(l.nmax, 8);
        assert_eq!(&l.idx[..8], &[0, 3, 9, -1, -1, -1, -1, -1]);
        assert_eq!(&l.ytr[..4], &[POSITIVE, NEGATIVE, POSITIVE, IGNORED]);
        assert_eq!(&l.idx[8..10], &[2, -1]);
        assert_eq!((l.train_pos, l.valid_pos, l.valid_known.clone()), (2, 2, vec![3, 1]));
        assert_eq!(l.yva[9], POSITIVE);
        assert_eq!(l.yva[10 + 2], NEGATIVE);
        assert_eq!(l.yva[10], IGNORED);
    }

    #[test]
    fn the_tracker_keeps_the_best_epoch_and_stops_on_patience() {
        let mut cfg = FineTuneConfig::reference(cft_core::Method::Ga(Default::default()));
        cfg.max_epochs = 10;
        cfg.patience = 2;
        cfg.keep_history = true;
        let mut t = EpochTracker::new(&[0.5, 0.5]);
        assert!(!t.record(0, &[0.6, 0.4], Some(&[1.0, 3.0, 2.0, 2.0]), None, &cfg));
        // Category 1 never beats the original: two epochs without improvement stop it.
        assert!(t.record(1, &[0.55, 0.4], None, None, &cfg));
        assert_eq!((t.best_epoch.clone(), t.active.clone()), (vec![0, -1], vec![1, 0]));
        assert_eq!(t.history[0][0].mean_fitness, Some(2.0));
        assert_eq!(t.history[1][0].best_fitness, Some(2.0));
        // A stopped category records nothing more (its 0.9 is not taken).
        assert!(t.record(2, &[0.55, 0.9], None, None, &cfg));
        assert!(t.all_stopped());
        assert_eq!((t.epochs_run.clone(), t.best.clone()), (vec![3, 2], vec![0.6, 0.5]));
        let labels = BatchLabels {
            known: vec![(vec![1], vec![true]), (vec![], vec![])],
            nmax: 8,
            idx: vec![],
            ytr: vec![],
            train_pos: 1,
            yva: vec![],
            valid_known: vec![5, 6],
            valid_pos: 1,
        };
        let o = t.into_outcomes(&[4, 7], &labels, &[0.5, 0.5], &[1.0, 2.0, 9.0, 0.0, 3.0, 4.0, 8.0, 0.0], (2, 4), 0.1);
        assert_eq!((o[1].category, o[1].weight.clone(), o[1].bias, o[1].best_epoch), (7, vec![3.0, 4.0], 8.0, -1));
        assert_eq!((o[0].best_score, o[0].train_known, o[0].valid_known), (Some(0.6), 1, 5));
    }
}
