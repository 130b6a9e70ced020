//! The one way into fine-tuning: [`finetune`], with an engine, a checked configuration, the
//! head, the two splits and the [`Hooks`].
//!
//! The engines — per category ([`crate::PerCategory`]), batched on the CPU
//! ([`crate::Batched`]) and on a GPU (`cft-cuda`) — differ only in how they advance the
//! categories that can be fine-tuned. Everything around that is written once here: the checks
//! (the configuration is a [`CheckedFineTune`]; the shapes of head, features and labels and the
//! requested categories are checked against each other), leaving unrequested categories alone,
//! skipping those without a known positive and negative on both sides (counted from the sparse
//! labels, no rows copied), calling the hooks, and assembling the new head.

use crate::error::{CoreError, Interrupted};
use crate::finetune::CheckedFineTune;
use crate::finetune::{skip_reason_from_counts, skipped, CategoryOutcome, FineTuneRun, SkipReason, SplitRef};
use crate::head::LinearHead;
use std::ops::ControlFlow;

/// What a run tells its caller while it goes, and how the caller may stop it.
#[derive(Clone, Copy)]
pub struct Hooks<'a> {
    /// Called once per category as it finishes (progress, checkpoints); may be called from
    /// several threads.
    pub on_done: &'a (dyn Fn(&CategoryOutcome) + Sync),
    /// Called with `n` after each step in which `n` categories advanced one epoch (engines that
    /// step categories together) or after a category's epochs (the per-category engine);
    /// returning `ControlFlow::Break(())` stops the run there with [`Interrupted`] (a front
    /// end's Ctrl-C). Categories finished before were already passed to `on_done`.
    pub on_epochs: &'a (dyn Fn(usize) -> ControlFlow<()> + Sync),
}

impl Hooks<'_> {
    /// No progress reports; never stops.
    pub const NONE: Hooks<'static> = Hooks { on_done: &|_| {}, on_epochs: &|_| ControlFlow::Continue(()) };

    /// `on_epochs(n)`, as a result: [`Interrupted`] when the caller asked to stop.
    pub fn epochs(&self, n: usize) -> Result<(), Interrupted> {
        match (self.on_epochs)(n) {
            ControlFlow::Continue(()) => Ok(()),
            ControlFlow::Break(()) => Err(Interrupted),
        }
    }
}

/// An engine: fine-tunes the categories it is given.
pub trait Engine {
    /// What can go wrong; the core's own refusals ([`CoreError`]) convert into it.
    type Error: From<CoreError>;

    /// Fine-tunes the `runnable` categories of `head` (each requested, each with known
    /// positives and negatives in both splits), calling the hooks; returns their outcomes in
    /// any order.
    fn run_categories(
        &self,
        head: &LinearHead,
        train: SplitRef<'_>,
        valid: SplitRef<'_>,
        cfg: &CheckedFineTune,
        runnable: &[usize],
        hooks: &Hooks<'_>,
    ) -> Result<Vec<CategoryOutcome>, Self::Error>;
}

/// Fine-tunes every requested category of `head` on `train`'s known labels, keeping the epoch
/// that scores best on `valid`'s, with `engine`. Shapes that do not fit (the head's width and
/// the features', one label column per head row, one label row per feature row) and requested
/// categories the head does not have are refused before any work.
pub fn finetune<E: Engine>(
    engine: &E,
    cfg: &CheckedFineTune,
    head: &LinearHead,
    train: SplitRef<'_>,
    valid: SplitRef<'_>,
    hooks: &Hooks<'_>,
) -> Result<FineTuneRun, E::Error> {
    check_shapes(head, train, valid).map_err(E::Error::from)?;
    let c = head.categories();
    cfg.check_categories(c).map_err(|e| E::Error::from(CoreError::Param(e)))?;
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
                (hooks.on_done)(&o);
                *slot = Some(o);
            }
            None => runnable.push(cat),
        }
    }
    if !runnable.is_empty() {
        for o in engine.run_categories(head, train, valid, cfg, &runnable, hooks)? {
            let k = o.category;
            outcomes[k] = Some(o);
        }
    }
    let mut new_head = head.clone();
    let mut categories = Vec::with_capacity(c);
    for (k, o) in outcomes.into_iter().enumerate() {
        let o = o.ok_or_else(|| {
            CoreError::shape("engine outcomes", "one per runnable category", format!("none for category {k}"))
        })?;
        new_head.weight.row_mut(o.category).copy_from_slice(&o.weight);
        new_head.bias[o.category] = o.bias;
        categories.push(o);
    }
    Ok(FineTuneRun { head: new_head, categories })
}

/// The shapes [`finetune`] relies on, each refused with both sizes.
fn check_shapes(head: &LinearHead, train: SplitRef<'_>, valid: SplitRef<'_>) -> Result<(), CoreError> {
    let (c, d) = (head.categories(), head.dim());
    for (split, s) in [("training", train), ("validation", valid)] {
        if s.features.cols() != d {
            return Err(CoreError::shape(
                "features",
                format!("{d} columns (the head's width)"),
                format!("{} columns in the {split} split", s.features.cols()),
            ));
        }
        if s.labels.n_categories() != c {
            return Err(CoreError::shape(
                "labels",
                format!("{c} categories (the head's rows)"),
                format!("{} in the {split} split", s.labels.n_categories()),
            ));
        }
        if s.labels.n_samples != s.features.rows() {
            return Err(CoreError::shape(
                "labels",
                format!("{} rows (the {split} features')", s.features.rows()),
                format!("{} rows", s.labels.n_samples),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finetune::{should_stop, FineTuneConfig};
    use crate::labels::{KnownSamples, SparseLabels};
    use crate::linalg::Matrix;
    use std::sync::Mutex;

    /// Records what the outer loop hands it and moves each head's bias to the category index.
    struct Recording(Mutex<Vec<usize>>);

    impl Engine for Recording {
        type Error = CoreError;
        fn run_categories(
            &self,
            head: &LinearHead,
            _: SplitRef<'_>,
            _: SplitRef<'_>,
            _: &CheckedFineTune,
            runnable: &[usize],
            hooks: &Hooks<'_>,
        ) -> Result<Vec<CategoryOutcome>, CoreError> {
            self.0.lock().unwrap().extend_from_slice(runnable);
            Ok(runnable
                .iter()
                .rev()
                .map(|&k| {
                    let mut o = skipped(k, head.weight.row(k), k as f32, SkipReason::NotRequested, 0, 0);
                    o.skipped = None;
                    (hooks.on_done)(&o);
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
        let cfg = cfg.check().unwrap();
        let engine = Recording(Mutex::new(Vec::new()));
        let done = Mutex::new(Vec::new());
        let on_done = |o: &CategoryOutcome| done.lock().unwrap().push(o.category);
        let hooks = Hooks { on_done: &on_done, ..Hooks::NONE };
        let (tr, va) = (SplitRef { features: &x, labels: &train }, SplitRef { features: &x, labels: &valid });
        let run = finetune(&engine, &cfg, &head, tr, va, &hooks).unwrap();
        assert_eq!(*engine.0.lock().unwrap(), vec![0, 3]);
        let mut done = done.into_inner().unwrap();
        done.sort_unstable();
        assert_eq!(done, vec![0, 1, 2, 3], "on_done once per category");
        assert_eq!(run.categories[1].skipped, Some(SkipReason::NoTrainPositive));
        assert_eq!(run.categories[1].train_known, 1);
        assert_eq!(run.categories[2].skipped, Some(SkipReason::NotRequested));
        assert_eq!(run.head.bias, vec![0.0, 0.0, 0.0, 3.0], "outcomes placed by category, whatever their order");
        assert!(should_stop(10, 5, 5, 100) && !should_stop(9, 5, 5, 100) && should_stop(99, 98, 5, 100));
        // The core checks what it is given: a category the head lacks, and shapes that differ.
        let cfg = FineTuneConfig { categories: Some(vec![4]), ..cfg.into_inner() }.check().unwrap();
        let e = finetune(&engine, &cfg, &head, tr, va, &Hooks::NONE).unwrap_err();
        assert_eq!(e.to_string(), "categories = 4: not a category index (the data has 4 categories)");
        let wide = LinearHead::zeros(4, 3);
        let e = finetune(&engine, &cfg, &wide, tr, va, &Hooks::NONE).unwrap_err();
        assert_eq!(
            e.to_string(),
            "features: expected 3 columns (the head's width), given 2 columns in the training split"
        );
    }
}
