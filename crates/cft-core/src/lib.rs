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
//! use cft_core::{finetune, AdamConfig, Batched, FineTuneConfig, Hooks, Label, LinearHead, Loss, Matrix, Method, PartialLabels, SplitRef};
//! let x = Matrix::new(6, 1, vec![2.0, 1.5, 1.0, -1.0, -1.5, -2.0]).unwrap();
//! let y = [Label::Positive, Label::Positive, Label::Unknown, Label::Negative, Label::Unknown, Label::Negative];
//! let labels = PartialLabels::new(6, 1, y.to_vec()).unwrap().to_sparse();
//! let split = SplitRef { features: &x, labels: &labels };
//! let adam = AdamConfig { lr: 1e-2, ..AdamConfig::default() };
//! let mut cfg = FineTuneConfig::reference(Method::Bp { loss: Loss::Bce, adam });
//! cfg.max_epochs = 50;
//! let cfg = cfg.check().unwrap(); // the engines take only a checked configuration
//! let run = finetune(&Batched::default(), &cfg, &LinearHead::zeros(1, 1), split, split, &Hooks::NONE).unwrap();
//! // The zero head scores every sample alike (AP 0.5); one step already ranks them right.
//! assert_eq!(run.categories[0].best_score, Some(1.0));
//! assert!(run.head.weight.row(0)[0] > 0.0);
//! ```
//!
//! Entry points: [`finetune()`] (one call, any [`Engine`]: [`PerCategory`], [`Batched`], or
//! `cft-cuda`'s GPU engine) with a [`CheckedFineTune`] from [`FineTuneConfig::check`];
//! [`train_base_head`] for a head when none is given; [`partial_scores`] / [`sparse_scores`]
//! for AP and AUC; [`drop_labels`] for the reference's masks.
//!
//! Modules: [`error`] (the ground floor: every error type), [`params`] (every range check),
//! [`labels`] (partial labels, the reference's label dropping), [`rng`] (numpy's PCG64),
//! [`metrics`], [`linalg`] and [`kernels`], [`head`], [`loss`], [`adam`],
//! [`finetune`](mod@finetune) (one category's loop with BP and GA), [`engine`] (the outer loop
//! and the engine interface), [`per_category`], [`batched`], [`base_head`].

pub mod adam;
pub mod base_head;
pub mod batched;
pub mod choice;
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
pub mod partial_loss;
pub mod per_category;
pub mod rng;
pub mod synthetic;
pub mod torch_sort;

pub use adam::{Adam, AdamConfig};
pub use base_head::{
    train_base_head, train_base_head_sparse, train_base_head_stoppable, BaseHeadConfig, BaseMode, CheckedBaseHead,
    HeadInit, LossParams, RoleInit, TrainedHead,
};
pub use batched::{Batched, DEFAULT_BATCH};
pub use choice::{Choice, UnknownChoice};
pub use engine::{finetune, Engine, Hooks};
pub use error::{CoreError, Interrupted, ParamError};
pub use finetune::should_stop;
pub use finetune::{
    elite_order, finetune_category, CategoryOutcome, CategorySamples, CheckedFineTune, EpochRecord, FineTuneConfig,
    FineTuneRun, GaConfig, GaEliteTies, Method, MethodName, SkipReason, SplitRef,
};
pub use head::LinearHead;
pub use labels::{
    drop_labels, percent, same_proportion, single_positive, KnownSamples, Label, PartialLabels, SparseLabels,
    UncertainPolicy,
};
pub use linalg::{Matrix, Precision, RowSubset};
pub use loss::Loss;
pub use metrics::{
    group_counts, group_means, mean_defined, numpy_pairwise_sum, partial_scores, roc_auc_sklearn, sparse_scores,
    GroupBy, GroupMean, Metric, RankScorer,
};
pub use params::MAX_POPULATION;
pub use per_category::PerCategory;
pub use rng::{Mt19937, Pcg64, SeedSequence};
