//! The per-category engine: each category runs its own loop ([`finetune_category`]),
//! categories in parallel.

use crate::engine::{Engine, Hooks};
use crate::error::CoreError;
use crate::finetune::CheckedFineTune;
use crate::finetune::{finetune_category, CategoryOutcome, CategorySamples, SplitRef};
use crate::head::LinearHead;
use rayon::prelude::*;

/// The per-category engine: each category runs its own loop, categories in parallel. It
/// reports a category's epochs when the category finishes, and can only stop between
/// categories.
#[derive(Debug, Clone, Copy, Default)]
pub struct PerCategory;

impl Engine for PerCategory {
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
        runnable
            .par_iter()
            .map(|&cat| {
                let tr = CategorySamples::gather(train, cat);
                let va = CategorySamples::gather(valid, cat);
                let out = finetune_category(cat, head.weight.row(cat), head.bias[cat], &tr, &va, cfg);
                (hooks.on_done)(&out);
                hooks.epochs(out.epochs_run)?;
                Ok(out)
            })
            .collect()
    }
}
