//! The GPU kernels' AP/AUC algorithm, on the CPU: sort the positives, binary-search every
//! negative among them. `kernels/cft.cu` runs this per row in a thread block; here it is the
//! executable specification, tested against the core's scikit-learn-exact metrics (ties
//! included), and the reference the GPU check compares the kernels with.
//!
//! * AP = (1/P) Σ_{positives k} pos_ge(q_k) / (pos_ge(q_k) + neg_ge(q_k)), with pos_ge / neg_ge
//!   the positives / negatives scoring at least q_k. Summed over a tie group this is
//!   scikit-learn's Σ (R_n − R_{n−1}) P_n with the group as one threshold.
//! * AUC = Σ_{negatives} (2·#{positives > s} + #{positives = s}) / (2 P N), exact in integers.
//!
//! Cost per row: O(P log P + n log P), which beats a full sort when positives are few, as in
//! multi-label data.

/// Label codes the kernels read: 1 positive, 0 negative, anything else ignored.
pub const POSITIVE: i8 = 1;
/// See [`POSITIVE`].
pub const NEGATIVE: i8 = 0;
/// Unknown label or padding.
pub const IGNORED: i8 = -1;

/// `rows` rows of `n` scores on `levels` distinct values (many ties) with labels: 10% ignored,
/// the rest positive with probability `rate`: the rows `cft gpu-check` and the `cuda` tests
/// give the rank kernel.
pub fn tie_heavy_rows(rng: &mut cft_core::Pcg64, n: usize, levels: u32, rate: f64, rows: usize) -> (Vec<f32>, Vec<i8>) {
    let mut scores = Vec::with_capacity(n * rows);
    let mut labels = Vec::with_capacity(n * rows);
    for _ in 0..n * rows {
        scores.push(((rng.random() * f64::from(levels)).floor() as f32) * 0.01 - 0.5);
        labels.push(if rng.random() < 0.1 {
            IGNORED
        } else if rng.random() < rate {
            POSITIVE
        } else {
            NEGATIVE
        });
    }
    (scores, labels)
}

/// The core's scikit-learn-exact metric of every row (`n` values each; ignored labels left
/// out; NaN where undefined): what the rank kernel must return.
pub fn exact_rows(metric: cft_core::Metric, scores: &[f32], labels: &[i8], n: usize) -> Vec<f64> {
    scores
        .chunks(n.max(1))
        .zip(labels.chunks(n.max(1)))
        .map(|(s, l)| {
            let known: Vec<usize> = (0..s.len()).filter(|&j| l[j] != IGNORED).collect();
            let ks: Vec<f32> = known.iter().map(|&j| s[j]).collect();
            let ky: Vec<bool> = known.iter().map(|&j| l[j] == POSITIVE).collect();
            metric.score(&ks, &ky).unwrap_or(f64::NAN)
        })
        .collect()
}

fn sorted_positives(scores: &[f32], labels: &[i8]) -> Vec<f32> {
    let mut pos: Vec<f32> = scores.iter().zip(labels).filter(|(_, &l)| l == POSITIVE).map(|(&s, _)| s).collect();
    pos.sort_by(f32::total_cmp);
    // −0.0 and 0.0 are one score: total_cmp orders them apart, but the searches below use `<`.
    pos
}

/// Average precision with scikit-learn's semantics; `None` without a positive.
pub fn average_precision(scores: &[f32], labels: &[i8]) -> Option<f64> {
    let pos = sorted_positives(scores, labels);
    let p = pos.len();
    if p == 0 {
        return None;
    }
    let mut hist = vec![0usize; p + 2];
    for (&s, _) in scores.iter().zip(labels).filter(|(_, &l)| l == NEGATIVE) {
        hist[pos.partition_point(|&q| q <= s)] += 1;
    }
    for m in (0..=p).rev() {
        hist[m] += hist[m + 1];
    }
    let mut acc = 0.0;
    for (k, &q) in pos.iter().enumerate() {
        let pos_ge = p - pos.partition_point(|&x| x < q);
        // Negatives ≥ q_k: their upper bound m exceeds k (a bound never falls inside a tie group).
        let neg_ge = hist[k + 1];
        acc += pos_ge as f64 / (pos_ge + neg_ge) as f64;
    }
    Some(acc / p as f64)
}

/// ROC-AUC with ties counted ½; `None` without a positive or a negative.
pub fn roc_auc(scores: &[f32], labels: &[i8]) -> Option<f64> {
    let pos = sorted_positives(scores, labels);
    let p = pos.len();
    let mut n = 0u64;
    let mut acc = 0u64;
    for (&s, _) in scores.iter().zip(labels).filter(|(_, &l)| l == NEGATIVE) {
        let ub = pos.partition_point(|&q| q <= s);
        let lb = pos.partition_point(|&q| q < s);
        acc += 2 * (p - ub) as u64 + (ub - lb) as u64;
        n += 1;
    }
    (p > 0 && n > 0).then(|| acc as f64 / (2.0 * p as f64 * n as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_rows_have_ties_ignored_labels_and_the_cores_metric_per_row() {
        let mut rng = cft_core::Pcg64::new(7);
        let (scores, labels) = tie_heavy_rows(&mut rng, 1000, 5, 0.3, 4);
        assert_eq!((scores.len(), labels.len()), (4000, 4000));
        let ignored = labels.iter().filter(|&&l| l == IGNORED).count();
        assert!((300..500).contains(&ignored), "{ignored} ignored of 4000");
        let want = exact_rows(cft_core::Metric::Auc, &scores, &labels, 1000);
        let (s, l) = (&scores[1000..2000], &labels[1000..2000]);
        let known: Vec<usize> = (0..1000).filter(|&j| l[j] != IGNORED).collect();
        let ks: Vec<f32> = known.iter().map(|&j| s[j]).collect();
        let ky: Vec<bool> = known.iter().map(|&j| l[j] == POSITIVE).collect();
        assert_eq!(want.len(), 4);
        assert_eq!(want[1], cft_core::Metric::Auc.score(&ks, &ky).unwrap());
    }
    use cft_core::{Metric, Pcg64};

    fn case(n: usize, levels: u32, pos_rate: f64, unknown: f64, seed: u64) -> (Vec<f32>, Vec<i8>) {
        let mut rng = Pcg64::new(seed);
        let scores = (0..n).map(|_| ((rng.random() * f64::from(levels)).floor() as f32) / 7.0 - 1.0).collect();
        let labels = (0..n)
            .map(|_| {
                if rng.random() < unknown {
                    IGNORED
                } else if rng.random() < pos_rate {
                    POSITIVE
                } else {
                    NEGATIVE
                }
            })
            .collect();
        (scores, labels)
    }

    #[test]
    fn equals_the_scikit_learn_semantics_of_the_core_with_heavy_ties() {
        for (i, &(n, levels, rate, unknown)) in
            [(50, 3, 0.3, 0.0), (400, 10, 0.05, 0.2), (1000, 1000, 0.5, 0.1), (300, 1, 0.2, 0.0), (2000, 40, 0.9, 0.3)]
                .iter()
                .enumerate()
        {
            let (s, l) = case(n, levels, rate, unknown, 11 + i as u64);
            let known: Vec<usize> = (0..n).filter(|&j| l[j] != IGNORED).collect();
            let ks: Vec<f32> = known.iter().map(|&j| s[j]).collect();
            let ky: Vec<bool> = known.iter().map(|&j| l[j] == POSITIVE).collect();
            for (metric, ours) in [(Metric::Ap, average_precision(&s, &l)), (Metric::Auc, roc_auc(&s, &l))] {
                let core = metric.score(&ks, &ky);
                match (core, ours) {
                    (Some(a), Some(b)) => assert!((a - b).abs() < 1e-12, "case {i} {metric:?}: core {a} ours {b}"),
                    (a, b) => assert_eq!(a, b, "case {i} {metric:?}"),
                }
            }
        }
    }

    #[test]
    fn undefined_without_positives_or_negatives() {
        assert_eq!(average_precision(&[0.1, 0.2], &[NEGATIVE, IGNORED]), None);
        assert_eq!(roc_auc(&[0.1, 0.2], &[POSITIVE, POSITIVE]), None);
        assert_eq!(average_precision(&[0.1, 0.2], &[POSITIVE, POSITIVE]), Some(1.0));
        // Signed zeros are one score: a tie.
        assert_eq!(roc_auc(&[-0.0, 0.0], &[POSITIVE, NEGATIVE]), Some(0.5));
    }
}
