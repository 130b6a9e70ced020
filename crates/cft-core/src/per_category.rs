//! The per-category engine: each category runs its own loop ([`finetune_category`]),
//! categories in parallel. [`finetune`] is the core's main call.

use crate::engine::Engine;
use crate::finetune::{finetune_category, CategoryOutcome, CategorySamples, FineTuneConfig, FineTuneRun, SplitRef};
use crate::head::LinearHead;
use rayon::prelude::*;

/// Fine-tunes every category of `head` (in parallel) and returns the new head.
///
/// `on_done` is called once per category as it finishes (progress bars, checkpoints); it may be
/// called from several threads.
pub fn finetune(
    head: &LinearHead,
    train: SplitRef<'_>,
    valid: SplitRef<'_>,
    cfg: &FineTuneConfig,
    on_done: &(dyn Fn(&CategoryOutcome) + Sync),
) -> FineTuneRun {
    let Ok(run) = crate::engine::finetune_with(&PerCategory, head, train, valid, cfg, on_done);
    run
}

/// The per-category engine: each category runs its own loop, categories in parallel.
#[derive(Debug, Clone, Copy, Default)]
pub struct PerCategory;

impl Engine for PerCategory {
    type Error = std::convert::Infallible;

    fn run_categories(
        &self,
        head: &LinearHead,
        train: SplitRef<'_>,
        valid: SplitRef<'_>,
        cfg: &FineTuneConfig,
        runnable: &[usize],
        on_done: &(dyn Fn(&CategoryOutcome) + Sync),
    ) -> Result<Vec<CategoryOutcome>, Self::Error> {
        Ok(runnable
            .par_iter()
            .map(|&cat| {
                let tr = CategorySamples::gather(train, cat);
                let va = CategorySamples::gather(valid, cat);
                let out = finetune_category(cat, head.weight.row(cat), head.bias[cat], &tr, &va, cfg);
                on_done(&out);
                out
            })
            .collect())
    }
}
