//! The image pipeline against Pillow itself: `datasets/fixtures/images/` holds Pillow 13's
//! bilinear `resize((w, h))` of decoded RGB arrays (up- and down-scaling, odd sizes) and what
//! Pillow (libjpeg-turbo) decodes from each bundled JPEG (copied from the shared fixtures; see
//! `datasets/fixtures/README.md`).

use cft_features::image::{resize_bilinear, Rgb8};
use safetensors::SafeTensors;
use std::path::PathBuf;

fn images() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets/fixtures/images")
}

#[test]
fn bilinear_resize_equals_pillow_bit_for_bit() {
    let bytes = std::fs::read(images().join("pil_resize.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(images().join("pil_resize.json")).unwrap()).unwrap();
    let image = |name: &str| {
        let t = st.tensor(name).unwrap();
        let s = t.shape();
        Rgb8 { width: s[1], height: s[0], data: t.data().to_vec() }
    };
    let mut report = Vec::new();
    for case in cases["cases"].as_array().unwrap() {
        let src = image(case["source"].as_str().unwrap());
        let want = image(case["expected"].as_str().unwrap());
        let (w, h) = (case["width"].as_u64().unwrap() as usize, case["height"].as_u64().unwrap() as usize);
        let got = resize_bilinear(&src, w, h);
        assert_eq!((got.width, got.height), (w, h));
        let differ = got.data.iter().zip(&want.data).filter(|(a, b)| a != b).count();
        let worst = got.data.iter().zip(&want.data).map(|(a, b)| a.abs_diff(*b)).max().unwrap_or(0);
        report.push(format!(
            "{} {}x{} -> {w}x{h}: {differ} of {} bytes differ (max {worst})",
            case["source"],
            src.width,
            src.height,
            got.data.len()
        ));
    }
    let bad: Vec<&String> = report.iter().filter(|r| !r.contains(": 0 of")).collect();
    assert!(bad.is_empty(), "{bad:#?}");
}
