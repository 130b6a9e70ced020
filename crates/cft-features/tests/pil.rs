//! The image pipeline against Pillow itself: `datasets/fixtures/images/` holds Pillow 13's
//! bilinear `resize((w, h))` of decoded RGB arrays (up- and down-scaling, odd sizes) and what
//! Pillow (libjpeg-turbo) decodes from each bundled JPEG (copied from the shared fixtures; see
//! `datasets/fixtures/README.md`), and Pillow 12.3's and 13.0's resize of portrait crops, whose
//! pass order differs (python-pillow/Pillow#9549).

use cft_features::image::{resize_bilinear, resize_bilinear_as, Resize, Rgb8};
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

/// `(source, width, height, expected)` images of a resize fixture.
fn resize_cases(stem: &str, expected_key: &str) -> Vec<(String, Rgb8, usize, usize, Rgb8)> {
    let bytes = std::fs::read(images().join(format!("{stem}.safetensors"))).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(images().join(format!("{stem}.json"))).unwrap()).unwrap();
    let image = |name: &str| {
        let t = st.tensor(name).unwrap();
        let s = t.shape();
        Rgb8 { width: s[1], height: s[0], data: t.data().to_vec() }
    };
    cases["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|case| {
            let (w, h) = (case["width"].as_u64().unwrap() as usize, case["height"].as_u64().unwrap() as usize);
            let want = case[expected_key].as_str().unwrap();
            (want.to_string(), image(case["source"].as_str().unwrap()), w, h, image(want))
        })
        .collect()
}

#[test]
fn both_pillow_pass_orders_equal_their_pillow_on_portrait_images_bit_for_bit() {
    let mut vertical_first = 0;
    for (pillow, key) in [(Resize::Pillow13, "pillow13"), (Resize::Pillow12, "pillow12")] {
        let cases = resize_cases("pil_resize_portrait", key);
        assert_eq!(cases.len(), 25);
        for (name, src, w, h, want) in &cases {
            let got = resize_bilinear_as(src, *w, *h, pillow);
            let differ = got.data.iter().zip(&want.data).filter(|(a, b)| a != b).count();
            assert_eq!(differ, 0, "{name}: {} {}x{} -> {w}x{h}", pillow.name(), src.width, src.height);
            vertical_first += usize::from(pillow.vertical_first((src.width, src.height), (*w, *h)));
        }
    }
    // The fixture exercises both orders: Pillow 13 runs some cases vertically first.
    assert!(vertical_first >= 7, "{vertical_first} cases ran vertically first");
    // Where the orders differ, Pillow 12's and 13's outputs are not the same picture.
    let (p12, p13) = (resize_cases("pil_resize_portrait", "pillow12"), resize_cases("pil_resize_portrait", "pillow13"));
    let differing = p12.iter().zip(&p13).filter(|(a, b)| a.4 != b.4).count();
    assert_eq!(differing, 7);
}

#[test]
fn pillow12_order_equals_pillow13_where_pillow13_runs_horizontally_first() {
    let cases = resize_cases("pil_resize", "expected");
    let mut same_order = 0;
    for (name, src, w, h, want) in &cases {
        if !Resize::Pillow13.vertical_first((src.width, src.height), (*w, *h)) {
            assert_eq!(&resize_bilinear_as(src, *w, *h, Resize::Pillow12), want, "{name}");
            same_order += 1;
        }
    }
    assert!(same_order > 0);
}
