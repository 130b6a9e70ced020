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
//! The main call: re-fit every category of a head on the known labels (here one category, a
//! feature that separates it, and a head that starts at zero):
//!
//! ```
//! use cft_core::{finetune, AdamConfig, FineTuneConfig, Label, LinearHead, Loss, Matrix, Method, PartialLabels, SplitRef};
//! let x = Matrix::new(6, 1, vec![2.0, 1.5, 1.0, -1.0, -1.5, -2.0]).unwrap();
//! let y = [Label::Positive, Label::Positive, Label::Unknown, Label::Negative, Label::Unknown, Label::Negative];
//! let labels = PartialLabels::new(6, 1, y.to_vec()).unwrap().to_sparse();
//! let split = SplitRef { features: &x, labels: &labels };
//! let adam = AdamConfig { lr: 1e-2, ..AdamConfig::default() };
//! let mut cfg = FineTuneConfig::reference(Method::Bp { loss: Loss::Bce, adam });
//! cfg.max_epochs = 50;
//! let run = finetune(&LinearHead::zeros(1, 1), split, split, &cfg, &|_| {});
//! // The zero head scores every sample alike (AP 0.5); one step already ranks them right.
//! assert_eq!(run.categories[0].best_score, Some(1.0));
//! assert!(run.head.weight.row(0)[0] > 0.0);
//! ```
//!
//! Modules: [`labels`] (partial labels, the reference's label dropping), [`rng`] (numpy's
//! PCG64), [`metrics`], [`linalg`], [`head`], [`loss`], [`adam`], [`finetune`](mod@finetune) (the
//! per-category loop with BP and GA), [`base_head`] (train a head when none is given).

pub mod adam;
pub mod base_head;
pub mod batched;
pub mod engine;
pub mod error;
pub mod finetune;
pub mod head;
pub mod kernels;
pub mod labels;
pub mod linalg;
pub mod loss;
pub mod metrics;
pub mod params;
pub mod per_category;
pub mod rng;
pub mod synthetic;
pub mod torch_sort;

pub use adam::{Adam, AdamConfig};
pub use base_head::{train_base_head, train_base_head_sparse, BaseHeadConfig, BaseMode};
pub use batched::{
    finetune_batched, finetune_batched_controlled, finetune_batched_observed, finetune_batched_within, Batched,
    Interrupted, DEFAULT_BATCH,
};
pub use engine::{finetune_with, should_stop, Engine};
pub use error::CoreError;
pub use finetune::{
    elite_order, finetune_category, CategoryOutcome, CategorySamples, EpochRecord, FineTuneConfig, FineTuneRun,
    GaConfig, GaEliteTies, Method, SkipReason, SplitRef,
};
pub use head::LinearHead;
pub use labels::{drop_labels, KnownSamples, Label, PartialLabels, SparseLabels, UncertainPolicy};
pub use linalg::{Matrix, Precision, RowSubset};
pub use loss::Loss;
pub use metrics::{
    group_counts, group_means, mean_defined, numpy_pairwise_sum, partial_scores, roc_auc_sklearn, sparse_scores,
    GroupBy, GroupMean, Metric, RankScorer,
};
pub use params::{ParamError, MAX_POPULATION};
pub use per_category::{finetune, PerCategory};
pub use rng::{Pcg64, SeedSequence};
