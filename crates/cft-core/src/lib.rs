//! # cft-core: Category-wise Fine-Tuning
//!
//! A multi-label classifier is a frozen backbone and a linear head (one logistic regression per
//! category). When the head was trained on wrong pseudo-labels, CFT re-fits each category's
//! `(w_c, b_c)` on the **known** labels only, by gradient descent ([`Method::Bp`]) or by a
//! genetic algorithm that maximises AP/AUC directly ([`Method::Ga`]), keeping the epoch that
//! scores best on validation.
//!
//! ```
//! use cft_core::{Metric, partial_scores, mean_defined, Label, PartialLabels};
//! let labels = PartialLabels::new(4, 1, vec![Label::Positive, Label::Negative, Label::Unknown, Label::Negative]).unwrap();
//! let scores = [0.9f32, 0.2, 0.5, 0.4];
//! let ap = partial_scores(Metric::Ap, &scores, &labels);
//! assert_eq!(mean_defined(&ap), Some(1.0));
//! ```
//!
//! Modules: [`labels`] (partial labels, the reference's label dropping), [`rng`] (numpy's
//! PCG64), [`metrics`], [`linalg`], [`head`], [`loss`], [`adam`], [`finetune`](mod@finetune) (the
//! per-category loop with BP and GA), [`base_head`] (train a head when none is given).

pub mod adam;
pub mod base_head;
pub mod batched;
pub mod engine;
pub mod finetune;
pub mod head;
pub mod kernels;
pub mod labels;
pub mod linalg;
pub mod loss;
pub mod metrics;
pub mod rng;
pub mod synthetic;
pub mod torch_sort;

pub use adam::{Adam, AdamConfig};
pub use base_head::{train_base_head, BaseHeadConfig, BaseMode};
pub use batched::{finetune_batched, finetune_batched_observed, Batched};
pub use engine::{finetune_with, should_stop, Engine};
pub use finetune::{
    elite_order, finetune, finetune_category, CategoryOutcome, CategorySamples, EpochRecord, FineTuneConfig,
    FineTuneRun, GaConfig, GaEliteTies, Method, SkipReason, SplitRef,
};
pub use head::LinearHead;
pub use labels::{drop_labels, KnownSamples, Label, PartialLabels, SparseLabels, UncertainPolicy};
pub use linalg::{Matrix, Precision};
pub use loss::Loss;
pub use metrics::{
    group_counts, group_means, mean_defined, numpy_pairwise_sum, partial_scores, roc_auc_sklearn, sparse_scores,
    GroupBy, GroupMean, Metric, RankScorer,
};
pub use rng::{Pcg64, SeedSequence};
