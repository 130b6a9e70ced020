//! # cft-images: image datasets to feature sets
//!
//! * [`job::ExtractionJob`]: images → backbone features → a feature set, with the feature
//!   cache, resumable parts and a manifest (what `cft extract` runs);
//! * [`source::ImageSource`]: the paper's image datasets in their official layouts (COCO 2014,
//!   OpenImages V3, CheXpert) → their adapters' labelled image lists → one extraction job per
//!   split with the spec's backbone and checkpoint (per known-label proportion when the
//!   checkpoint is a `{percent}` template) → the protocol's data
//!   ([`cft_experiment::partial_label::ProtocolData`]), with the notes every table must carry.
//!
//! The experiment layer sees none of this: it asks a [`cft_experiment::run::FeatureSource`] for
//! a spec's data, and `cft run` hands it this crate's.

pub mod error;
pub mod job;
pub mod source;

pub use job::ExtractionJob;
pub use source::{ImageInputs, ImageSource};
