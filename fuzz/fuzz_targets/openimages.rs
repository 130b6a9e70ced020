#![no_main]
//! OpenImages `annotations-human.csv` streaming parser.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let classes = vec!["/m/01".to_string(), "/m/02".to_string()];
    let _ = cft_data::openimages::read_annotations_from(std::path::Path::new("fuzz.csv"), data, "train", &classes, &|_| {});
});
