//! # cft-data: datasets in, feature sets and heads out
//!
//! Adapters turn each dataset's own files into the project's types, and the safetensors
//! exchange formats carry features, labels and heads between stages (and to and from
//! PyTorch):
//! * [`arff`]: Mulan/MEKA ARFF feature datasets (the bundled `scene`, `flags`, `emotions`);
//! * [`chexpert`]: CheXpert v1.0 label files, uncertainty policies, views, studies, and the
//!   competition scoring;
//! * [`manifest`]: dataset manifests naming files, splits, categories and provenance;
//! * [`tensors`]: feature sets (`features`, `labels`) and heads (`weight`, `bias`);
//! * [`fsutil`]: atomic writes, so no stage ever leaves a partial file;
//! * [`outputs`]: outputs checked against inputs before any work, and one writer per output.
//!
//! Every error names the file, and parse errors the line and field ([`DataError`]).
//!
//! The main call: a feature set written and read back, as PyTorch users exchange them
//! (`features` `n × d`, `labels` with 1 / 0 / −1 uncertain / NaN unknown, `categories`):
//!
//! ```
//! use cft_core::{Label, Matrix, PartialLabels};
//! use cft_data::{read_feature_set, write_feature_set, FeaturePrecision, FeatureSet};
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("train.safetensors");
//! let set = FeatureSet {
//!     features: Matrix::new(2, 3, vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6]).unwrap(),
//!     labels: Some(PartialLabels::new(2, 1, vec![Label::Positive, Label::Unknown]).unwrap()),
//!     categories: Some(vec!["dog".into()]),
//!     paths: None,
//! };
//! write_feature_set(&path, &set, FeaturePrecision::F32).unwrap();
//! assert_eq!(read_feature_set(&path).unwrap(), set);
//! ```

pub mod arff;
pub mod arrays;
pub mod bench;
pub mod chexpert;
pub mod coco;
pub mod csvio;
pub mod error;
pub mod fsutil;
pub mod image_list;
pub mod inputs;
pub mod inspect;
pub mod manifest;
pub mod openimages;
pub mod outputs;
pub mod records_csv;
pub mod sniff;
pub mod streamed;
pub mod tensors;

pub use arff::{read_arff, read_mulan_labels, ArffDataset, LabelLayout};
pub use error::{DataError, Result};
pub use fsutil::write_atomic;
pub use image_list::LabelledImages;
pub use inputs::{check_same_categories, read_head_for, read_labelled, Labelled};
pub use manifest::{real_data_folder, DatasetFormat, DatasetManifest};
pub use outputs::{
    check_collisions, check_folder_apart, check_folder_name, check_folder_off_files, check_output_folder,
    check_outputs, Named, OutputLock,
};
pub use streamed::{read_labelled_set, write_labelled_set, LabelledSet};
pub use tensors::{
    pytorch_pickle_hint, read_feature_set, read_head, read_head_file, write_feature_set, write_head, write_head_as,
    FeaturePrecision, FeatureSet, HeadFile,
};
