#![no_main]
//! The reference's label CSV (read through polars from a file).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("cft-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let p = dir.join("labels.csv");
    if std::fs::write(&p, data).is_ok() {
        let cats = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let _ = cft_data::records_csv::read_records_csv(&p, &cats);
    }
});
