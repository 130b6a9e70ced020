#![no_main]
//! COCO instances JSON: any bytes give `Ok` or an error, never a panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cft_data::coco::parse_coco(std::path::Path::new("fuzz.json"), data, cft_data::coco::ImageOrder::File);
});
