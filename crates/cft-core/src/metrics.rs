//! Ranking metrics with scikit-learn semantics: average precision and ROC-AUC.
//!
//! * AP = `Σ (R_n − R_{n−1}) P_n` over distinct thresholds, tied scores entering together
//!   (`sklearn.metrics.average_precision_score`, torchmetrics `binary_average_precision`).
//! * ROC-AUC = Mann–Whitney U / (P·N), ties counting ½ (the trapezoidal ROC area).
//!
//! Both are undefined (`None`) when the labels lack a positive or a negative. Both ignore a
//! constant shift of the scores, so a head's bias does not change them.
//!
//! Scores are sorted once as packed integer keys (order-preserving bits of the score, label in
//! the low bits), which is several times faster than sorting index/score pairs and makes ties
//! adjacent. [`RankScorer`] reuses its buffers to score many score vectors (a GA population)
//! without allocating per call.

use crate::labels::PartialLabels;
use rayon::prelude::*;

crate::choice! {
    /// Which ranking metric to compute.
    #[derive(Default)]
    pub enum Metric {
        /// Average precision (COCO, OpenImages, Mulan).
        #[default]
        Ap = "ap",
        /// Area under the ROC curve (CheXpert).
        Auc = "auc",
    }
}

impl Metric {
    /// Scores one binary problem; `None` when a class is missing or the lengths differ.
    pub fn score<S: ScoreValue>(self, scores: &[S], labels: &[bool]) -> Option<f64> {
        let mut keys = Vec::with_capacity(scores.len());
        self.score_with_buffer(scores, labels, &mut keys)
    }

    /// As [`Metric::score`], reusing `buffer` for the sort keys.
    pub fn score_with_buffer<S: ScoreValue>(
        self,
        scores: &[S],
        labels: &[bool],
        buffer: &mut Vec<u128>,
    ) -> Option<f64> {
        if scores.len() != labels.len() {
            return None;
        }
        buffer.clear();
        buffer.extend(scores.iter().zip(labels).map(|(&s, &y)| (s.sort_key() << 1) | u128::from(y)));
        buffer.sort_unstable();
        rank_metric(self, buffer)
    }
}

/// A score type that maps to an order-preserving integer key.
pub trait ScoreValue: Copy + Send + Sync {
    /// Order-preserving key (−0.0 and 0.0 share a key; NaN sorts above +∞).
    fn sort_key(self) -> u128;
}

impl ScoreValue for f32 {
    fn sort_key(self) -> u128 {
        u128::from(ordered_bits_f64(f64::from(self)))
    }
}

impl ScoreValue for f64 {
    fn sort_key(self) -> u128 {
        u128::from(ordered_bits_f64(self))
    }
}

fn ordered_bits_f64(x: f64) -> u64 {
    let x = if x == 0.0 { 0.0 } else { x };
    let b = x.to_bits();
    if b >> 63 == 1 {
        !b
    } else {
        b | (1 << 63)
    }
}

fn ordered_bits_f32(x: f32) -> u32 {
    let x = if x == 0.0 { 0.0 } else { x };
    let b = x.to_bits();
    if b >> 31 == 1 {
        !b
    } else {
        b | (1 << 31)
    }
}

/// Computes the metric from keys sorted ascending, label in bit 0, ties = equal `key >> 1`.
fn rank_metric<K: Copy + Into<u128>>(metric: Metric, sorted: &[K]) -> Option<f64> {
    let n_pos = sorted.iter().filter(|&&k| k.into() & 1 == 1).count();
    let n_neg = sorted.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    Some(match metric {
        Metric::Ap => {
            let (mut tp, mut fp) = (0usize, 0usize);
            let (mut ap, mut prev_recall) = (0.0f64, 0.0f64);
            let mut i = sorted.len();
            while i > 0 {
                let key = sorted[i - 1].into() >> 1;
                let group_tp = tp;
                while i > 0 && sorted[i - 1].into() >> 1 == key {
                    if sorted[i - 1].into() & 1 == 1 {
                        tp += 1;
                    } else {
                        fp += 1;
                    }
                    i -= 1;
                }
                if tp > group_tp {
                    let recall = tp as f64 / n_pos as f64;
                    let precision = tp as f64 / (tp + fp) as f64;
                    ap += (recall - prev_recall) * precision;
                    prev_recall = recall;
                }
            }
            ap
        }
        Metric::Auc => {
            let (mut neg_below, mut u) = (0usize, 0.0f64);
            let mut i = 0;
            while i < sorted.len() {
                let key = sorted[i].into() >> 1;
                let (mut gp, mut gn) = (0usize, 0usize);
                while i < sorted.len() && sorted[i].into() >> 1 == key {
                    if sorted[i].into() & 1 == 1 {
                        gp += 1;
                    } else {
                        gn += 1;
                    }
                    i += 1;
                }
                u += gp as f64 * (neg_below as f64 + 0.5 * gn as f64);
                neg_below += gn;
            }
            u / (n_pos as f64 * n_neg as f64)
        }
    })
}

/// Scores many f32 score vectors against one label vector, in parallel, reusing its buffers.
///
/// `scores` holds `rows` vectors of `labels.len()` scores each, row-major. This is the GA's
/// fitness evaluation: one row per individual.
#[derive(Debug, Default)]
pub struct RankScorer {
    buffers: Vec<Vec<u64>>,
}

impl RankScorer {
    /// An empty scorer; buffers grow on first use and are then reused.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes each row's metric to `out` (NaN where undefined).
    pub fn score_rows(&mut self, metric: Metric, scores: &[f32], labels: &[bool], out: &mut [f64]) {
        let n = labels.len();
        let rows = out.len();
        assert_eq!(scores.len(), rows * n, "scores must hold rows × labels.len() values");
        if self.buffers.len() < rows {
            self.buffers.resize_with(rows, Vec::new);
        }
        let work = |(row, (buf, o)): (&[f32], (&mut Vec<u64>, &mut f64))| {
            buf.clear();
            buf.extend(row.iter().zip(labels).map(|(&s, &y)| (u64::from(ordered_bits_f32(s)) << 1) | u64::from(y)));
            buf.sort_unstable();
            *o = rank_metric(metric, buf).unwrap_or(f64::NAN);
        };
        if rows * n >= 1 << 14 {
            scores.par_chunks(n.max(1)).zip(self.buffers[..rows].par_iter_mut().zip(out.par_iter_mut())).for_each(work);
        } else {
            scores.chunks(n.max(1)).zip(self.buffers[..rows].iter_mut().zip(out.iter_mut())).for_each(work);
        }
    }
}

/// Per-category scores under partial labels: unknown (and uncertain) entries are dropped per
/// category; a category without a positive or a negative is `None` (undefined).
///
/// `scores` is `n × C` row-major, as the labels.
pub fn partial_scores<S: ScoreValue>(metric: Metric, scores: &[S], labels: &PartialLabels) -> Vec<Option<f64>> {
    let (n, c) = (labels.n_samples(), labels.n_categories());
    assert_eq!(scores.len(), n * c, "scores must be n × C like the labels");
    (0..c)
        .into_par_iter()
        .map(|cat| {
            let (mut s, mut y) = (Vec::new(), Vec::new());
            for i in 0..n {
                if let Some(t) = labels.get(i, cat).known() {
                    s.push(scores[i * c + cat]);
                    y.push(t);
                }
            }
            metric.score(&s, &y)
        })
        .collect()
}

/// Per-category scores of `head` over the known labels of `labels` only: each category's
/// logits are computed for its known samples alone, so memory is the known labels, never an
/// `images × categories` matrix (OpenImages' test split: 125k images × 5000 classes). The
/// logits equal [`crate::LinearHead::logits`]' bit for bit (the kernels sum each output in the same
/// order whatever the matrix shape), so the scores equal [`partial_scores`]'.
pub fn sparse_scores(
    metric: Metric,
    head: &crate::head::LinearHead,
    features: &crate::linalg::Matrix,
    labels: &crate::labels::SparseLabels,
) -> Vec<Option<f64>> {
    (0..labels.n_categories())
        .into_par_iter()
        .map(|c| {
            let (rows, y) = labels.per_category[c].known_sorted();
            if rows.is_empty() {
                return None;
            }
            // Read in place (OpenImages' common classes are known on most test images): the
            // same products as on the gathered rows, without the copy.
            let x = crate::linalg::RowSubset::of(features, rows);
            let w = crate::linalg::Matrix::new(1, head.dim(), head.weight.row(c).to_vec()).expect("one row");
            let mut scores = vec![0.0f32; x.rows()];
            crate::linalg::gemm_nt_rows(&x, &w, &[head.bias[c]], &mut scores);
            metric.score(&scores, &y)
        })
        .collect()
}

/// The mean over defined categories (`None` when none is defined).
pub fn mean_defined(per_category: &[Option<f64>]) -> Option<f64> {
    let defined: Vec<f64> = per_category.iter().flatten().copied().collect();
    (!defined.is_empty()).then(|| defined.iter().sum::<f64>() / defined.len() as f64)
}

crate::choice! {
    /// What a class's count is when classes are cut into frequency groups ([`group_means`]).
    #[derive(Default)]
    pub enum GroupBy {
        /// Known positive labels: how often the class occurs, the sense of "rare" in a long tail.
        #[default]
        Positives = "positives",
        /// All known labels (positives and negatives): how much evidence the class has.
        Known = "known",
    }
}

/// Each class's count in `labels` (typically the training labels) under `by`.
pub fn group_counts(labels: &crate::labels::SparseLabels, by: GroupBy) -> Vec<usize> {
    labels
        .per_category
        .iter()
        .map(|k| match by {
            GroupBy::Positives => k.positives.len(),
            GroupBy::Known => k.positives.len() + k.negatives.len(),
        })
        .collect()
}

/// One group of [`group_means`]: the classes it holds (indices) and their mean score.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GroupMean {
    /// `G1` (the rarest classes) … `Gg` (the most frequent).
    pub name: String,
    /// The classes of the group, rarest first.
    pub classes: Vec<usize>,
    /// The smallest and largest count in the group.
    pub count_range: (usize, usize),
    /// Mean over the group's defined scores; `None` if none is defined.
    pub mean: Option<f64>,
}

/// Frequency groups, as OpenImages V3 results are reported (G1–G5): classes sorted ascending
/// by `counts` (ties by class index), cut into `groups` consecutive groups of equal size (the
/// first `n % groups` one larger, as `numpy.array_split`), and the mean of each group's defined
/// scores. For the 5,000 trainable classes and 5 groups: 1,000 classes each.
pub fn group_means(scores: &[Option<f64>], counts: &[usize], groups: usize) -> Vec<GroupMean> {
    assert_eq!(scores.len(), counts.len(), "one count per class");
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by_key(|&k| (counts[k], k));
    let (n, g) = (order.len(), groups.max(1));
    let mut out = Vec::with_capacity(g);
    let mut start = 0;
    for i in 0..g {
        let len = n / g + usize::from(i < n % g);
        let classes: Vec<usize> = order[start..start + len].to_vec();
        start += len;
        let member: Vec<Option<f64>> = classes.iter().map(|&k| scores[k]).collect();
        let count_range = (classes.first().map_or(0, |&k| counts[k]), classes.last().map_or(0, |&k| counts[k]));
        out.push(GroupMean { name: format!("G{}", i + 1), classes, count_range, mean: mean_defined(&member) });
    }
    out
}

/// numpy's pairwise summation of f64 (`np.add.reduce` on a contiguous array): blocks of 8
/// partial sums up to 128 elements, halves above. Reproduces numpy's result bit for bit.
pub fn numpy_pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for &v in a {
            res += v;
        }
        res
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - (n % 8) {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res += a[i];
            i += 1;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        numpy_pairwise_sum(&a[..n2]) + numpy_pairwise_sum(&a[n2..])
    }
}

/// ROC-AUC computed the way `sklearn.metrics.roc_auc_score` computes it, step for step:
/// `roc_curve` (descending scores, one point per distinct threshold, collinear points dropped,
/// origin prepended, rates as `fps / fps[-1]`, `tps / tps[-1]`), then the trapezoid
/// `sum(diff(fpr) · (tpr[1:] + tpr[:-1]) / 2)` with numpy's pairwise summation. Equal to
/// [`Metric::Auc`] up to rounding; use this where a published number must be matched to the
/// last digit (the CheXpert leaderboard).
pub fn roc_auc_sklearn(scores: &[f64], labels: &[bool]) -> Option<f64> {
    if scores.len() != labels.len() {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tps, mut fps) = (Vec::new(), Vec::new());
    let mut tp = 0.0f64;
    for (k, &i) in order.iter().enumerate() {
        if labels[i] {
            tp += 1.0;
        }
        let last = k + 1 == order.len() || scores[order[k + 1]] != scores[i];
        if last {
            tps.push(tp);
            fps.push((k + 1) as f64 - tp);
        }
    }
    let (p, n) = (*tps.last()?, *fps.last()?);
    if p == 0.0 || n == 0.0 {
        return None;
    }
    // drop_intermediate: keep the ends and every point where the second difference is non-zero.
    let m = tps.len();
    let keep: Vec<usize> = (0..m)
        .filter(|&i| {
            i == 0
                || i == m - 1
                || (fps[i + 1] - 2.0 * fps[i] + fps[i - 1]) != 0.0
                || (tps[i + 1] - 2.0 * tps[i] + tps[i - 1]) != 0.0
        })
        .collect();
    let fpr: Vec<f64> = std::iter::once(0.0).chain(keep.iter().map(|&i| fps[i] / n)).collect();
    let tpr: Vec<f64> = std::iter::once(0.0).chain(keep.iter().map(|&i| tps[i] / p)).collect();
    let terms: Vec<f64> = (1..fpr.len()).map(|i| (fpr[i] - fpr[i - 1]) * (tpr[i] + tpr[i - 1]) / 2.0).collect();
    Some(numpy_pairwise_sum(&terms))
}

#[cfg(test)]
mod sparse_score_tests {
    use super::*;

    #[test]
    fn sparse_scores_equal_dense_partial_scores() {
        let (n, d, c) = (40, 5, 3);
        let x =
            crate::linalg::Matrix::new(n, d, (0..n * d).map(|i| ((i * 37 % 17) as f32 - 8.0) / 7.0).collect()).unwrap();
        let w =
            crate::linalg::Matrix::new(c, d, (0..c * d).map(|i| ((i * 11 % 7) as f32 - 3.0) / 5.0).collect()).unwrap();
        let head = crate::head::LinearHead::new(w, vec![0.1, -0.2, 0.3]).unwrap();
        let labels: Vec<crate::labels::Label> = (0..n * c)
            .map(|i| match (i * 7 + i / c) % 3 {
                0 => crate::labels::Label::Positive,
                1 => crate::labels::Label::Negative,
                _ => crate::labels::Label::Unknown,
            })
            .collect();
        let dense = PartialLabels::new(n, c, labels).unwrap();
        let want = partial_scores(Metric::Ap, &head.logits(&x), &dense);
        assert!(want.iter().all(Option::is_some));
        assert_eq!(sparse_scores(Metric::Ap, &head, &x, &dense.to_sparse()), want);
        assert_eq!(
            sparse_scores(Metric::Auc, &head, &x, &dense.to_sparse()),
            partial_scores(Metric::Auc, &head.logits(&x), &dense)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_example_matches_sklearn() {
        let s = [0.1f64, 0.4, 0.35, 0.8];
        let y = [false, false, true, true];
        assert!((Metric::Ap.score(&s, &y).unwrap() - 0.8333333333333333).abs() < 1e-15);
        assert!((Metric::Auc.score(&s, &y).unwrap() - 0.75).abs() < 1e-15);
    }

    #[test]
    fn pairwise_sum_matches_plain_sums_of_exact_values_and_sklearn_auc_agrees() {
        let v: Vec<f64> = (0..1000).map(f64::from).collect();
        assert_eq!(numpy_pairwise_sum(&v), 499_500.0);
        let s = [0.1f64, 0.4, 0.35, 0.8, 0.35, 0.9];
        let y = [false, false, true, true, false, true];
        let a = roc_auc_sklearn(&s, &y).unwrap();
        assert!((a - Metric::Auc.score(&s, &y).unwrap()).abs() < 1e-15);
    }

    #[test]
    fn one_class_is_undefined() {
        assert_eq!(Metric::Ap.score(&[0.1f32, 0.2], &[true, true]), None);
        assert_eq!(Metric::Auc.score(&[0.1f32, 0.2], &[false, false]), None);
    }

    #[test]
    fn negative_zero_ties_with_zero() {
        let y = [true, false];
        assert_eq!(Metric::Auc.score(&[0.0f32, -0.0], &y), Some(0.5));
    }

    #[test]
    fn batched_rows_equal_single_calls() {
        let labels = [true, false, false, true, false];
        let scores = [0.1f32, 0.5, 0.5, 0.2, -1.0, 3.0, 2.0, 1.0, 0.0, 0.0];
        let mut out = [0.0; 2];
        let mut scorer = RankScorer::new();
        for metric in [Metric::Ap, Metric::Auc] {
            scorer.score_rows(metric, &scores, &labels, &mut out);
            for r in 0..2 {
                let single = metric.score(&scores[r * 5..(r + 1) * 5], &labels).unwrap();
                assert_eq!(out[r], single);
            }
        }
    }

    #[test]
    fn frequency_groups_split_like_numpy_and_average_defined_scores() {
        // Counts sort the classes 3, 0, 4, 1, 2, 5, 6 (ties by index); 7 classes in 3 groups: 3, 2, 2.
        let counts = [5, 9, 9, 1, 7, 12, 40];
        let scores = [Some(0.5), Some(0.9), None, Some(0.1), Some(0.7), Some(0.6), Some(1.0)];
        let g = group_means(&scores, &counts, 3);
        assert_eq!(g[0].classes, [3, 0, 4]);
        assert_eq!(g[1].classes, [1, 2]);
        assert_eq!(g[2].classes, [5, 6]);
        assert_eq!((g[0].count_range, g[1].count_range, g[2].count_range), ((1, 7), (9, 9), (12, 40)));
        assert_eq!(g[0].mean, Some((0.1 + 0.5 + 0.7) / 3.0));
        assert_eq!(g[1].mean, Some(0.9)); // class 2 is undefined and left out
        assert_eq!(g[2].mean, Some(0.8));
        assert_eq!(g.iter().map(|x| x.name.as_str()).collect::<Vec<_>>(), ["G1", "G2", "G3"]);
    }
}
