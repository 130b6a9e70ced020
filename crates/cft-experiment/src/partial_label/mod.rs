//! The paper's partial-label protocol on features, as a library: a bundled Mulan/MEKA ARFF
//! dataset ([`ProtocolData::from_manifest`]) or features a front end extracted from an image
//! dataset (COCO, OpenImages, CheXpert), given as [`ProtocolData`].
//!
//! Training labels ([`LabelSource`]) are dropped by the reference protocol at each known-label
//! proportion (numpy PCG64, seed 526, per image positives then negatives), the dataset's real
//! partial labels (one unit), or Cole et al.'s single positive per image (one unit). For each such unit and each selection protocol:
//! * base heads: linear heads on the frozen features, one per loss of `bases` (AN and Ignore by
//!   default, or any of the field's partial-label losses, [`cft_core::base_head`]), or the
//!   checkpoint's own classifier when the data brings one ([`GivenHead`]);
//! * CFT with each method (BP-ASL, BP-BCE, GA) on each base of `repair` (AN by default);
//! * the metric (AP or AUC) per category on the evaluation split, its mean, and optionally the
//!   means over frequency groups (OpenImages V3's G1–G5).
//!
//! Protocols ([`cft_results::Protocol`]): **paper** trains on the whole training split and selects CFT
//! epochs on the test split, as the reference does; **held-out** trains on 80% of the training
//! images and selects on the known labels of the fixed other 20%.
//!
//! Each (proportion, protocol) unit is written to `runs/<unit>.json` atomically with the
//! fingerprints of its dataset files; a resumed run reuses units of the same configuration and
//! data and refuses any other ([`crate::checkpoint`]). The aggregated `results.json` holds no
//! timing, so two runs give byte-identical results; timings go to `manifest.json`.
//!
//! The rooms: [`config`] (what determines the numbers, and the one mapping to the core's
//! checked configurations), [`data`] (what a run reads, the held-out split), [`mod@unit`] (one
//! unit's heads and scores), [`store`] (unit files, resume, shard plans and their merge),
//! [`plan`] (the tables' plan and the aggregation), [`protocol`] (a whole run:
//! [`run_protocol`]).

pub mod config;
pub mod data;
pub mod plan;
pub mod protocol;
pub mod store;
pub mod unit;

pub use config::{
    default_bases, default_repair, spec_key, unit_id, CheckedConfigs, GroupSpec, LabelSource, ReproduceConfig,
};
pub use data::{holdout_split, GivenHead, LabelledFeatures, ProportionFeatures, ProtocolData};
pub use plan::{aggregate, aggregate_plan, RunPlan};
pub use protocol::{run_protocol, Reproduction, RunOptions};
pub use store::merge_units;
pub use unit::{append_history, UnitMethod, UnitResult, HISTORY_HEADER};
