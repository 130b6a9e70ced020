//! JPEG decoding against Pillow itself (torchvision's default loader,
//! `Image.open(p).convert("RGB")`): the sha256 of the decoded RGB bytes must agree for every
//! bundled photo (`datasets/fixtures/images/pil_decode.json`, Pillow 13 with libjpeg-turbo 3.2)
//! and for the variants users meet — 4:4:4/4:2:2/4:2:0 chroma, progressive, Huffman-optimised,
//! tiny, grayscale, Adobe CMYK (`jpeg_variants/`, written and decoded by Pillow).

use cft_features::image::{decode, decode_with, resize_bilinear, JpegDecode, Rgb8};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

fn datasets() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets")
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Checks each `images[]` entry of `fixture` whose file lies under `dir` (file names only when
/// `basename`), returning the names checked and the mismatches.
fn check(fixture: &Path, dir: &Path, basename: bool) -> (Vec<String>, Vec<String>) {
    let (mut checked, mut bad) = (Vec::new(), Vec::new());
    for im in json(fixture)["images"].as_array().unwrap() {
        let file = im["file"].as_str().unwrap();
        let path = if basename { dir.join(Path::new(file).file_name().unwrap()) } else { dir.join(file) };
        if !path.exists() {
            continue;
        }
        let img = decode(&path).unwrap();
        let size = (im["width"].as_u64().unwrap() as usize, im["height"].as_u64().unwrap() as usize);
        let got = sha256(&img.data);
        if (img.width, img.height) != size || got != im["sha256_rgb_hwc"].as_str().unwrap() {
            bad.push(format!(
                "{file}: {}x{} {got}, Pillow {}x{} {}",
                img.width, img.height, size.0, size.1, im["sha256_rgb_hwc"]
            ));
        }
        checked.push(file.to_string());
    }
    (checked, bad)
}

#[test]
fn bundled_photos_decode_to_pillows_bytes() {
    let images = datasets().join("images");
    let (checked, bad) = check(&datasets().join("fixtures/images/pil_decode.json"), &images, true);
    assert!(bad.is_empty(), "{bad:#?}");
    // Every bundled JPEG is in the fixture (the CheXpert X-ray is checked from CFT_REAL_DATA).
    let bundled = std::fs::read_dir(&images)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "jpg"))
        .count();
    assert_eq!(checked.len(), bundled, "{checked:?}");
    assert_eq!(bundled, 9);
}

#[test]
fn jpeg_variants_decode_to_pillows_bytes() {
    let dir = datasets().join("fixtures/images/jpeg_variants");
    let (checked, bad) = check(&dir.join("jpeg_variants.json"), &dir, false);
    assert!(bad.is_empty(), "{bad:#?}");
    assert_eq!(checked.len(), 8);
}

#[test]
#[ignore = "needs CFT_REAL_DATA (the CheXpert X-ray may not be redistributed)"]
fn the_chexpert_xray_decodes_to_pillows_bytes() {
    let root = real_data_root().join("images");
    assert!(root.is_dir(), "{}: no such folder", root.display());
    let (checked, bad) = check(&datasets().join("fixtures/images/pil_decode.json"), &root, false);
    assert!(bad.is_empty(), "{bad:#?}");
    assert!(checked.iter().any(|f| f == "cft-chexpert_demo_img.jpg"), "{checked:?}");
    assert_eq!(checked.len(), 10);
}

#[test]
fn reduced_decoding_covers_the_target_and_stays_close() {
    // A 640×427 photo for a 224 input: 4/8 gives 320×214 (too small), so 5/8 (400×267).
    let path = datasets().join("images/000000000885.jpg");
    let exact = resize_bilinear(&decode(&path).unwrap(), 224, 224);
    let small = decode_with(&path, JpegDecode::Reduced, Some((224, 224))).unwrap();
    assert_eq!((small.width, small.height), (400, 267));
    let reduced = resize_bilinear(&small, 224, 224);
    let mad = mean_abs_diff(&exact, &reduced);
    eprintln!("reduced vs exact decoding at 224 px: mean |Δ| = {mad:.3} grey levels");
    assert!(mad > 0.0 && mad < 3.0, "{mad}");
    // Exact mode ignores the target.
    assert_eq!(decode_with(&path, JpegDecode::Exact, Some((224, 224))).unwrap(), decode(&path).unwrap());
}

fn mean_abs_diff(a: &Rgb8, b: &Rgb8) -> f64 {
    a.data.iter().zip(&b.data).map(|(&x, &y)| f64::from(x.abs_diff(y))).sum::<f64>() / a.data.len() as f64
}

/// PNGs as Pillow's `convert("RGB")` decodes them (`png_variants/`, written and decoded by
/// Pillow 13 with `make_png_variants.py`): 16-bit colour keeps the high byte, 16-bit grayscale
/// (`I;16`) is clipped, alpha is dropped, palettes (with transparency too) expand.
#[test]
fn png_variants_decode_to_pillows_bytes() {
    let dir = datasets().join("fixtures/images/png_variants");
    let fx = json(&dir.join("png_variants.json"));
    let mut bad = Vec::new();
    let cases = fx["cases"].as_object().unwrap();
    for (name, case) in cases {
        let img = decode(&dir.join(case["file"].as_str().unwrap())).unwrap();
        let got = sha256(&img.data);
        if got != case["sha256"].as_str().unwrap() {
            bad.push(format!(
                "{name} (Pillow mode {}): first pixels {:?}, Pillow {}",
                case["pillow_mode"],
                &img.data[..12],
                case["first_pixels"]
            ));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
    assert_eq!(cases.len(), 10);
}

/// A header that declares more pixels than Pillow's decompression-bomb limit allows is
/// refused before any pixel is decoded (Pillow: `DecompressionBombError` above twice
/// `MAX_IMAGE_PIXELS`).
#[test]
fn decompression_bombs_are_refused_from_the_header() {
    // A PNG header declaring 20,000 × 20,000 pixels (and no real data).
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let ihdr = [&20_000u32.to_be_bytes()[..], &20_000u32.to_be_bytes()[..], &[8, 2, 0, 0, 0]].concat();
    for (kind, data) in [(&b"IHDR"[..], &ihdr[..]), (b"IDAT", &[0x78, 0x9c][..]), (b"IEND", &[][..])] {
        let chunk = [kind, data].concat();
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        png.extend_from_slice(&chunk);
        png.extend_from_slice(&crc32(&chunk).to_be_bytes());
    }
    let e = cft_features::image::decode_bytes(&png).unwrap_err();
    assert!(e.contains("400000000 pixels") && e.contains("178956970"), "{e}");
    // A JPEG whose SOF0 says 65,500 × 65,500: the bundled photo with its size fields rewritten.
    let mut jpeg = std::fs::read(datasets().join("images/1028564844_1716c46263_o.jpg")).unwrap();
    let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0] || w == [0xFF, 0xC2]).expect("a SOF marker");
    jpeg[sof + 5..sof + 7].copy_from_slice(&65_500u16.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&65_500u16.to_be_bytes());
    let e = cft_features::image::decode_bytes(&jpeg).unwrap_err();
    assert!(e.contains("4290250000 pixels"), "{e}");
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

/// `CFT_REAL_DATA`, a relative path taken from the workspace root.
fn real_data_root() -> PathBuf {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    cft_data::real_data_folder(&workspace).expect("this test needs CFT_REAL_DATA (e.g. ../shared/data)")
}
