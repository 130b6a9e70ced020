//! The batched engine: every category advances one epoch per step, together.
//!
//! The reference fine-tunes one category after another. Here the categories of a batch step in
//! parallel (each category's BP step or GA generation, with its own random stream), then all
//! heads that changed are validated in **one pass over the validation features**: categories
//! whose validation labels are all known share the validation matrix, and a blocked multi-head
//! product reads each feature row once for every head (instead of once per head), using the
//! same dot product as the per-category path so the scores, and therefore the selected epochs
//! and weights, are bit-identical to [`crate::PerCategory`]'s. Categories drop out as they stop.
//!
//! Memory is bounded by `batch`: at most that many categories hold their gathered training
//! samples at once (OpenImages: 5000 categories, a few thousand known samples each).

use crate::engine::Hooks;
use crate::error::{CoreError, Interrupted};
use crate::finetune::CheckedFineTune;
use crate::finetune::{
    skip_reason, skipped, CategoryOutcome, CategoryRun, CategorySamples, FineTuneConfig, SplitRef, StepOutput,
    Validator,
};
use crate::head::LinearHead;
use crate::linalg::{dot, Matrix};
use crate::metrics::RankScorer;
use rayon::prelude::*;

const ROWS_PER_BLOCK: usize = 64;

/// `out[h × n + i] = x.row(i) · heads[h][..d] + heads[h][d]` for every head, reading each row
/// of `x` once for all heads; each value is computed by [`dot`], exactly as [`crate::linalg::gemv`]
/// computes it.
pub fn multi_head_scores(x: &Matrix, heads: &[&[f32]], out: &mut [f32]) {
    let (n, d, h) = (x.rows(), x.cols(), heads.len());
    assert_eq!(out.len(), n * h);
    assert!(heads.iter().all(|w| w.len() == d + 1), "each head is d weights and a bias");
    let blocks: Vec<Vec<f32>> = (0..n.div_ceil(ROWS_PER_BLOCK))
        .into_par_iter()
        .map(|b| {
            let rows = b * ROWS_PER_BLOCK..((b + 1) * ROWS_PER_BLOCK).min(n);
            let mut local = Vec::with_capacity(rows.len() * h);
            for w in heads {
                for i in rows.clone() {
                    local.push(dot(x.row(i), &w[..d]) + w[d]);
                }
            }
            local
        })
        .collect();
    for (b, local) in blocks.iter().enumerate() {
        let start = b * ROWS_PER_BLOCK;
        let len = local.len() / h.max(1);
        for (k, chunk) in local.chunks(len.max(1)).enumerate() {
            out[k * n + start..k * n + start + len].copy_from_slice(chunk);
        }
    }
}

/// Categories the batched engine holds at once unless told otherwise: `cft finetune`'s, `cft
/// run`'s and the Python package's default (the batch size never changes the numbers).
pub const DEFAULT_BATCH: usize = 64;

/// Bytes of category `k`'s per-step buffers (f32 per known training row and individual).
fn step_bytes(cfg: &FineTuneConfig, train: SplitRef<'_>, k: usize) -> usize {
    let known = &train.labels.per_category[k];
    let per_row = match cfg.method {
        crate::finetune::Method::Ga(ga) => ga.population + 1,
        crate::finetune::Method::Bp { .. } => 2,
    };
    4 * per_row * (known.positives.len() + known.negatives.len())
}

/// Consecutive runs of `runnable` of at most `batch` categories and (past the first) at most
/// `working_set` bytes of step buffers.
fn batches(
    runnable: &[usize],
    batch: usize,
    working_set: Option<usize>,
    bytes: impl Fn(usize) -> usize,
) -> Vec<&[usize]> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < runnable.len() {
        let (mut end, mut used) = (start, 0usize);
        while end < runnable.len() && end - start < batch.max(1) {
            let b = bytes(runnable[end]);
            if end > start && working_set.is_some_and(|w| used + b > w) {
                break;
            }
            used += b;
            end += 1;
        }
        out.push(&runnable[start..end]);
        start = end;
    }
    out
}

/// The batched engine: `batch` categories at a time, advancing together one epoch per step
/// (reported to [`Hooks::on_epochs`], which may stop the run between two steps). Same result
/// as [`crate::PerCategory`] for the same configuration, whatever the batch size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batched {
    /// Categories held at once (at least one is always held).
    pub batch: usize,
    /// A memory bound: a batch also stops growing once its categories' per-step buffers (their
    /// known rows × the population, or × 2 for BP, in f32) would pass this many bytes (always at
    /// least one category). OpenImages' commonest class has a quarter of a million known rows,
    /// its rarest a few dozen: batches are sized by rows, not counted.
    pub working_set: Option<usize>,
}

impl Default for Batched {
    fn default() -> Self {
        Batched { batch: DEFAULT_BATCH, working_set: None }
    }
}

impl crate::engine::Engine for Batched {
    type Error = CoreError;

    fn run_categories(
        &self,
        head: &LinearHead,
        train: SplitRef<'_>,
        valid: SplitRef<'_>,
        cfg: &CheckedFineTune,
        runnable: &[usize],
        hooks: &Hooks<'_>,
    ) -> Result<Vec<CategoryOutcome>, CoreError> {
        let mut out = Vec::with_capacity(runnable.len());
        for chunk in batches(runnable, self.batch, self.working_set, |k| step_bytes(cfg, train, k)) {
            out.extend(run_chunk(head, train, valid, cfg, chunk, hooks)?);
        }
        Ok(out)
    }
}

fn run_chunk(
    head: &LinearHead,
    train: SplitRef<'_>,
    valid: SplitRef<'_>,
    cfg: &CheckedFineTune,
    cats: &[usize],
    hooks: &Hooks<'_>,
) -> Result<Vec<CategoryOutcome>, Interrupted> {
    let samples: Vec<(usize, CategorySamples<'_>, CategorySamples<'_>)> =
        cats.par_iter().map(|&k| (k, CategorySamples::gather(train, k), CategorySamples::gather(valid, k))).collect();
    let mut done = Vec::new();
    let mut live: Vec<(usize, &CategorySamples<'_>)> = Vec::new();
    for (k, tr, va) in &samples {
        match skip_reason(tr, va) {
            Some(r) => {
                let o = skipped(*k, head.weight.row(*k), head.bias[*k], r, tr.y.len(), va.y.len());
                (hooks.on_done)(&o);
                done.push(o);
            }
            None => live.push((*k, va)),
        }
    }
    // Original scores, through the same validation path the epochs use.
    let originals = validate(
        valid.features,
        &live
            .iter()
            .map(|(k, va)| (head.weight.row(*k).iter().copied().chain([head.bias[*k]]).collect::<Vec<f32>>(), *va))
            .collect::<Vec<_>>(),
        cfg,
    );
    let mut runs: Vec<CategoryRun<'_>> = samples
        .iter()
        .filter(|(k, _, _)| live.iter().any(|(l, _)| l == k))
        .zip(&originals)
        .map(|((k, tr, _), &orig)| CategoryRun::new(*k, head.weight.row(*k), head.bias[*k], orig, tr, cfg))
        .collect();
    let mut valids: Vec<&CategorySamples<'_>> = live.iter().map(|(_, va)| *va).collect();
    while !runs.is_empty() {
        let outs: Vec<StepOutput> = runs.par_iter_mut().map(CategoryRun::step).collect();
        hooks.epochs(runs.len())?;
        let need: Vec<usize> = (0..runs.len()).filter(|&i| outs[i].cached_valid.is_none()).collect();
        let to_score: Vec<(Vec<f32>, &CategorySamples<'_>)> =
            need.iter().map(|&i| (runs[i].params().to_vec(), valids[i])).collect();
        let scores = validate(valid.features, &to_score, cfg);
        let mut fresh = vec![f64::NAN; runs.len()];
        for (&i, s) in need.iter().zip(scores) {
            fresh[i] = s;
        }
        let stops: Vec<bool> = runs
            .iter_mut()
            .zip(&outs)
            .zip(&fresh)
            .map(|((r, out), &f)| r.finish_epoch(*out, out.cached_valid.unwrap_or(f)))
            .collect();
        let mut keep_runs = Vec::with_capacity(runs.len());
        let mut keep_valids = Vec::with_capacity(runs.len());
        for ((r, va), stop) in runs.into_iter().zip(valids).zip(stops) {
            if stop {
                let o = r.into_outcome(va.y.len());
                (hooks.on_done)(&o);
                done.push(o);
            } else {
                keep_runs.push(r);
                keep_valids.push(va);
            }
        }
        runs = keep_runs;
        valids = keep_valids;
    }
    Ok(done)
}

/// Whether a category's validation samples are the whole shared matrix (all labels known), in
/// row order.
fn is_shared(va: &CategorySamples<'_>) -> bool {
    va.x.is_all()
}

/// Validation scores of `heads` (params and samples each): categories whose validation samples
/// are the whole shared matrix go through one [`multi_head_scores`] pass; the others through
/// their own gathered samples.
fn validate(shared_x: &Matrix, heads: &[(Vec<f32>, &CategorySamples<'_>)], cfg: &FineTuneConfig) -> Vec<f64> {
    let mut out = vec![0.0; heads.len()];
    let shared: Vec<usize> = (0..heads.len()).filter(|&i| is_shared(heads[i].1)).collect();
    if !shared.is_empty() {
        let n = shared_x.rows();
        let ws: Vec<&[f32]> = shared.iter().map(|&i| heads[i].0.as_slice()).collect();
        let mut scores = vec![0.0f32; n * ws.len()];
        multi_head_scores(shared_x, &ws, &mut scores);
        let metric_scores: Vec<f64> = shared
            .par_iter()
            .enumerate()
            .map(|(j, &i)| {
                let mut r = [0.0];
                RankScorer::new().score_rows(cfg.metric, &scores[j * n..(j + 1) * n], &heads[i].1.y, &mut r);
                r[0]
            })
            .collect();
        for (&i, s) in shared.iter().zip(metric_scores) {
            out[i] = s;
        }
    }
    let own: Vec<(usize, f64)> = (0..heads.len())
        .into_par_iter()
        .filter(|&i| !is_shared(heads[i].1))
        .map(|i| {
            let (p, va) = &heads[i];
            let d = p.len() - 1;
            (i, Validator::new(va, cfg.metric).score(&p[..d], p[d]))
        })
        .collect();
    for (i, s) in own {
        out[i] = s;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_bounded_by_count_and_by_bytes() {
        let cats: Vec<usize> = (0..7).collect();
        let sizes = [10, 10, 50, 5, 5, 5, 100];
        let got = batches(&cats, 3, Some(30), |k| sizes[k]);
        assert_eq!(got, vec![&[0, 1][..], &[2], &[3, 4, 5], &[6]]);
        assert_eq!(batches(&cats, 3, None, |k| sizes[k]), vec![&[0, 1, 2][..], &[3, 4, 5], &[6]]);
    }
    use crate::adam::AdamConfig;
    use crate::engine::{finetune, Hooks};
    use crate::finetune::FineTuneRun;
    use crate::finetune::{GaConfig, Method};
    use crate::labels::{Label, PartialLabels};
    use crate::loss::Loss;
    use crate::metrics::Metric;
    use crate::per_category::PerCategory;
    use crate::rng::Pcg64;
    use std::ops::ControlFlow;

    fn batched(batch: usize) -> Batched {
        Batched { batch, working_set: None }
    }

    /// Integer-valued features (many tied scores), 5 categories: 0–2 learnable, 3 without
    /// training positives (skipped), 4 rare. `valid_known` < 1 makes validation partial.
    fn data(n: usize, seed: u64, known: f64, valid_known: f64) -> (Matrix, PartialLabels) {
        let mut rng = Pcg64::new(seed);
        let (d, c) = (6, 5);
        let mut x = Vec::with_capacity(n * d);
        let mut labels = PartialLabels::unknown(n, c);
        for i in 0..n {
            let ys: Vec<bool> = (0..c).map(|k| k != 3 && rng.random() < if k == 4 { 0.03 } else { 0.3 }).collect();
            for j in 0..d {
                let signal = if ys.get(j).copied().unwrap_or(false) { 2.0 } else { 0.0 };
                x.push((signal + (rng.random() * 3.0).floor()) as f32);
            }
            for (k, &y) in ys.iter().enumerate() {
                if rng.random() < known && rng.random() < valid_known {
                    labels.set(i, k, if y { Label::Positive } else { Label::Negative });
                }
            }
        }
        (Matrix::new(n, d, x).unwrap(), labels)
    }

    fn head() -> LinearHead {
        let mut h = LinearHead::zeros(5, 6);
        for k in 0..5 {
            h.weight.row_mut(k)[(k + 1) % 6] = 0.3;
            h.weight.row_mut(k)[k % 6] = -0.1;
        }
        h
    }

    fn same(a: &FineTuneRun, b: &FineTuneRun) {
        assert_eq!(a.head, b.head);
        for (x, y) in a.categories.iter().zip(&b.categories) {
            let strip = |o: &CategoryOutcome| CategoryOutcome { seconds: 0.0, ..o.clone() };
            assert_eq!(strip(x), strip(y), "category {}", x.category);
        }
    }

    #[test]
    fn batched_equals_per_category_with_skips_early_stops_and_ties() {
        let (xt, lt) = data(300, 1, 0.5, 1.0);
        let mut early_stops = 0;
        for valid_known in [1.0, 0.6] {
            let (xv, lv) = data(200, 2, 1.0, valid_known);
            let (st, sv) = (lt.to_sparse(), lv.to_sparse());
            let (train, valid) = (SplitRef { features: &xt, labels: &st }, SplitRef { features: &xv, labels: &sv });
            for method in [
                Method::Bp { loss: Loss::ASL_REFERENCE, adam: AdamConfig { lr: 1e-2, ..Default::default() } },
                Method::Bp { loss: Loss::Bce, adam: AdamConfig { lr: 1e-2, ..Default::default() } },
                Method::Ga(GaConfig { mutation_range: 0.05, ..Default::default() }),
            ] {
                for metric in [Metric::Ap, Metric::Auc] {
                    let mut cfg = FineTuneConfig::reference(method);
                    cfg.metric = metric;
                    cfg.max_epochs = 120;
                    cfg.patience = 15;
                    cfg.seed = 3;
                    cfg.keep_history = true;
                    let cfg = cfg.check().unwrap();
                    let a = finetune(&PerCategory, &cfg, &head(), train, valid, &Hooks::NONE).unwrap();
                    assert_eq!(a.categories[3].skipped, Some(crate::finetune::SkipReason::NoTrainPositive));
                    early_stops += a.categories.iter().filter(|o| o.skipped.is_none() && o.epochs_run < 120).count();
                    for batch in [1, 2, 5] {
                        same(&a, &finetune(&batched(batch), &cfg, &head(), train, valid, &Hooks::NONE).unwrap());
                    }
                }
            }
        }
        assert!(early_stops > 0, "early stops are exercised");
    }

    #[test]
    fn a_controller_that_breaks_interrupts_between_epochs_and_one_that_continues_changes_nothing() {
        let (xt, lt) = data(300, 1, 0.5, 1.0);
        let (xv, lv) = data(200, 2, 1.0, 1.0);
        let (st, sv) = (lt.to_sparse(), lv.to_sparse());
        let (train, valid) = (SplitRef { features: &xt, labels: &st }, SplitRef { features: &xv, labels: &sv });
        let mut cfg = FineTuneConfig::reference(Method::Ga(GaConfig::default()));
        cfg.max_epochs = 40;
        let cfg = cfg.check().unwrap();
        let plain = finetune(&batched(2), &cfg, &head(), train, valid, &Hooks::NONE).unwrap();
        let steps = std::sync::atomic::AtomicUsize::new(0);
        let count = |_| {
            steps.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            ControlFlow::Continue(())
        };
        let counting = Hooks { on_epochs: &count, ..Hooks::NONE };
        same(&plain, &finetune(&batched(2), &cfg, &head(), train, valid, &counting).unwrap());
        assert!(steps.load(std::sync::atomic::Ordering::SeqCst) >= 40);
        // Stopped at the fifth step: nothing is returned, and no category finished by epochs ran.
        let finished = std::sync::Mutex::new(Vec::new());
        let stop_at_5 = |_| {
            let n = steps.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if n % 1000 == 4 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        };
        steps.store(0, std::sync::atomic::Ordering::SeqCst);
        let on_done = |o: &CategoryOutcome| finished.lock().unwrap().push((o.category, o.skipped));
        let r = finetune(&batched(2), &cfg, &head(), train, valid, &Hooks { on_done: &on_done, on_epochs: &stop_at_5 });
        assert_eq!(r.unwrap_err(), CoreError::Interrupted(Interrupted));
        assert_eq!(steps.load(std::sync::atomic::Ordering::SeqCst), 5);
        assert!(
            finished.lock().unwrap().iter().all(|(_, skipped)| skipped.is_some()),
            "{:?}",
            finished.lock().unwrap()
        );
    }

    #[test]
    fn multi_head_scores_equal_single_head_products() {
        let (x, _) = data(150, 5, 1.0, 1.0);
        let heads: Vec<Vec<f32>> = (0..3).map(|h| (0..7).map(|j| (h * 7 + j) as f32 / 10.0 - 1.0).collect()).collect();
        let refs: Vec<&[f32]> = heads.iter().map(Vec::as_slice).collect();
        let mut out = vec![0.0; 3 * 150];
        multi_head_scores(&x, &refs, &mut out);
        for (h, w) in heads.iter().enumerate() {
            let mut single = vec![0.0; 150];
            crate::linalg::gemv(&x, &w[..6], w[6], &mut single);
            assert_eq!(&out[h * 150..(h + 1) * 150], single.as_slice());
        }
    }
}
