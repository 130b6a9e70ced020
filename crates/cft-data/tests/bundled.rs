//! The bundled datasets load through their manifests with the published sizes.

use cft_data::DatasetManifest;
use std::path::PathBuf;

fn datasets() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets")
}

#[test]
fn scene_has_the_official_split_and_six_labels() {
    let m = DatasetManifest::resolve("scene", &datasets()).unwrap();
    let train = m.load_split("train").unwrap();
    let test = m.load_split("test").unwrap();
    assert_eq!((train.features.rows(), train.features.cols()), (1211, 294));
    assert_eq!((test.features.rows(), test.features.cols()), (1196, 294));
    assert_eq!(train.categories, ["Beach", "Sunset", "FallFoliage", "Field", "Mountain", "Urban"]);
    // Fully labelled: every entry is known.
    assert_eq!(train.labels.known_fraction(), 1.0);
    // Beach has 227 positives in the training file (counted independently with a Python
    // one-liner over the raw ARFF: column `Beach`, value `1`).
    let beach = (0..1211).filter(|&i| train.labels.get(i, 0) == cft_core::Label::Positive).count();
    assert_eq!(beach, 227);
}

#[test]
fn flags_and_emotions_load_with_nominal_features() {
    let flags = DatasetManifest::resolve("flags", &datasets()).unwrap();
    let train = flags.load_split("train").unwrap();
    assert_eq!(train.labels.n_categories(), 7);
    assert_eq!(train.features.rows() + flags.load_split("test").unwrap().features.rows(), 194);
    let emo = DatasetManifest::resolve("emotions", &datasets()).unwrap();
    let e = emo.load_split("train").unwrap();
    assert_eq!((e.features.rows(), e.features.cols(), e.labels.n_categories()), (391, 72, 6));
}
