//! One interface for the CFT engines: the per-category engine ([`crate::finetune()`]), the
//! batched CPU engine ([`crate::finetune_batched`]) and the CUDA engine (`cft-cuda`) differ
//! only in how they advance the categories that can be fine-tuned. Everything around that —
//! leaving unrequested categories alone, skipping those without a known positive and negative
//! on both sides (counted from the sparse labels, no rows copied), calling `on_done`, and
//! assembling the new head — is [`finetune_with`], written once.

use crate::finetune::{
    skip_reason_from_counts, skipped, CategoryOutcome, FineTuneConfig, FineTuneRun, SkipReason, SplitRef,
};
use crate::head::LinearHead;

/// An engine: fine-tunes the categories it is given.
pub trait Engine {
    /// What can go wrong (the CPU engines cannot fail: [`std::convert::Infallible`]).
    type Error;

    /// Fine-tunes the `runnable` categories of `head` (each requested, each with known
    /// positives and negatives in both splits), calling `on_done` as each finishes; returns
    /// their outcomes in any order.
    fn run_categories(
        &self,
        head: &LinearHead,
        train: SplitRef<'_>,
        valid: SplitRef<'_>,
        cfg: &FineTuneConfig,
        runnable: &[usize],
        on_done: &(dyn Fn(&CategoryOutcome) + Sync),
    ) -> Result<Vec<CategoryOutcome>, Self::Error>;
}

/// The outer loop every engine shares (see the module docs).
pub fn finetune_with<E: Engine>(
    engine: &E,
    head: &LinearHead,
    train: SplitRef<'_>,
    valid: SplitRef<'_>,
    cfg: &FineTuneConfig,
    on_done: &(dyn Fn(&CategoryOutcome) + Sync),
) -> Result<FineTuneRun, E::Error> {
    let c = head.categories();
    let mut outcomes: Vec<Option<CategoryOutcome>> = vec![None; c];
    let mut runnable = Vec::new();
    for (cat, slot) in outcomes.iter_mut().enumerate() {
        let requested = cfg.categories.as_ref().is_none_or(|only| only.contains(&cat));
        let skip = if requested {
            let (t, v) = (&train.labels.per_category[cat], &valid.labels.per_category[cat]);
            let (tp, tn, vp, vn) = (t.positives.len(), t.negatives.len(), v.positives.len(), v.negatives.len());
            skip_reason_from_counts(tp, tn, vp, vn).map(|r| (r, tp + tn, vp + vn))
        } else {
            Some((SkipReason::NotRequested, 0, 0))
        };
        match skip {
            Some((reason, nt, nv)) => {
                let o = skipped(cat, head.weight.row(cat), head.bias[cat], reason, nt, nv);
                on_done(&o);
                *slot = Some(o);
            }
            None => runnable.push(cat),
        }
    }
    if !runnable.is_empty() {
        for o in engine.run_categories(head, train, valid, cfg, &runnable, on_done)? {
            let k = o.category;
            outcomes[k] = Some(o);
        }
    }
    let categories: Vec<CategoryOutcome> =
        outcomes.into_iter().map(|o| o.expect("the engine returns every runnable category")).collect();
    let mut new_head = head.clone();
    for o in &categories {
        new_head.weight.row_mut(o.category).copy_from_slice(&o.weight);
        new_head.bias[o.category] = o.bias;
    }
    Ok(FineTuneRun { head: new_head, categories })
}

pub use crate::finetune::should_stop;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::{KnownSamples, SparseLabels};
    use crate::linalg::Matrix;
    use std::sync::Mutex;

    /// Records what the outer loop hands it and moves each head's bias to the category index.
    struct Recording(Mutex<Vec<usize>>);

    impl Engine for Recording {
        type Error = String;
        fn run_categories(
            &self,
            head: &LinearHead,
            _: SplitRef<'_>,
            _: SplitRef<'_>,
            _: &FineTuneConfig,
            runnable: &[usize],
            on_done: &(dyn Fn(&CategoryOutcome) + Sync),
        ) -> Result<Vec<CategoryOutcome>, String> {
            self.0.lock().unwrap().extend_from_slice(runnable);
            Ok(runnable
                .iter()
                .rev()
                .map(|&k| {
                    let mut o = skipped(k, head.weight.row(k), k as f32, SkipReason::NotRequested, 0, 0);
                    o.skipped = None;
                    on_done(&o);
                    o
                })
                .collect())
        }
    }

    #[test]
    fn the_outer_loop_hands_the_engine_only_runnable_categories_and_assembles_the_head() {
        let both = |p: Vec<u32>, n: Vec<u32>| KnownSamples { positives: p, negatives: n, uncertain: vec![] };
        // Category 0 runnable, 1 without a training positive, 2 runnable but not requested, 3 runnable.
        let train = SparseLabels {
            n_samples: 4,
            per_category: vec![
                both(vec![0], vec![1]),
                both(vec![], vec![1]),
                both(vec![2], vec![3]),
                both(vec![0], vec![3]),
            ],
        };
        let valid = SparseLabels { n_samples: 4, per_category: (0..4).map(|_| both(vec![0], vec![1])).collect() };
        let x = Matrix::zeros(4, 2);
        let head = LinearHead::zeros(4, 2);
        let mut cfg = FineTuneConfig::reference(crate::finetune::Method::Ga(Default::default()));
        cfg.categories = Some(vec![0, 1, 3]);
        let engine = Recording(Mutex::new(Vec::new()));
        let done = Mutex::new(Vec::new());
        let run = finetune_with(
            &engine,
            &head,
            SplitRef { features: &x, labels: &train },
            SplitRef { features: &x, labels: &valid },
            &cfg,
            &|o| done.lock().unwrap().push(o.category),
        )
        .unwrap();
        assert_eq!(*engine.0.lock().unwrap(), vec![0, 3]);
        let mut done = done.into_inner().unwrap();
        done.sort_unstable();
        assert_eq!(done, vec![0, 1, 2, 3], "on_done once per category");
        assert_eq!(run.categories[1].skipped, Some(SkipReason::NoTrainPositive));
        assert_eq!(run.categories[1].train_known, 1);
        assert_eq!(run.categories[2].skipped, Some(SkipReason::NotRequested));
        assert_eq!(run.head.bias, vec![0.0, 0.0, 0.0, 3.0], "outcomes placed by category, whatever their order");
        assert!(should_stop(10, 5, 5, 100) && !should_stop(9, 5, 5, 100) && should_stop(99, 98, 5, 100));
    }
}
