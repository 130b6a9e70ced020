//! Parity with PyTorch/torchvision on the fixtures in `datasets/fixtures/backbones/` (values
//! computed by torch 2.15 / torchvision 0.29, see that folder's README), PIL-exact resizing,
//! and the errors for bad weights and images.

use candle_core::{DType, Device, Tensor};
use cft_features::image::{decode, resize_bilinear, to_chw, Normalize};
use cft_features::{
    extract, list_folder, Backbone, BadImage, ExtractOptions, FeatureError, JpegDecode, Placement, WeightSource,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../datasets"))
}

fn fixture(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(root().join("fixtures/backbones").join(name), &Device::Cpu).expect("fixture")
}

fn cpu() -> Placement {
    Placement { device: Device::Cpu, dtype: DType::F32 }
}

fn u8_input(t: &Tensor) -> Tensor {
    (t.to_dtype(DType::F32).unwrap() / 255.0).unwrap()
}

/// max |a − b| / max |b|.
fn rel_err(a: &Tensor, b: &Tensor) -> f32 {
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max) / scale
}

#[test]
fn the_weight_rule_matches_the_fixture() {
    let f = fixture("torchvision_rule_weights_2img.safetensors");
    let want = f["rule_check_conv1_weight_first16"].to_vec1::<f64>().unwrap();
    assert_eq!(cft_features::weights::rule_raw("conv1.weight", 16), want);
}

#[test]
fn torchvision_backbones_match_pytorch_features() {
    let f = fixture("torchvision_rule_weights_2img.safetensors");
    let x = u8_input(&f["input_64_u8"]);
    for (name, params) in [("resnet50", 23_508_032), ("densenet121", 6_953_856), ("resnet101", 42_500_160)] {
        let net = Backbone::load(name, &WeightSource::Rule, cpu()).unwrap();
        assert_eq!(net.parameters, params, "{name} parameter count (torchvision, classifier removed)");
        let got = net.features(&x).unwrap();
        // Inference records no backpropagation graph (it would keep every activation alive).
        assert!(!got.track_op(), "{name}: the forward pass tracks ops for backpropagation");
        let want = &f[&format!("{name}_features_64")];
        assert_eq!(got.dims(), want.dims());
        let e = rel_err(&got, want);
        eprintln!("{name}: relative error {e:.2e}");
        assert!(e <= 1e-4, "{name}: relative error {e}");
    }
}

#[test]
fn real_cifar_resnet20_matches_pytorch_features_logits_and_classes() {
    let f = fixture("resnet20_cifar10_real.safetensors");
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("fixtures/backbones/resnet20_cifar10_real.json")).unwrap(),
    )
    .unwrap();
    let w = WeightSource::from_file(&root().join("weights/resnet20_cifar10.safetensors")).unwrap();
    let net = Backbone::load("resnet20-cifar", &w, cpu()).unwrap();
    // Our normalisation of the u8 input equals the fixture's normalised input.
    let u8s = f["input_32_u8"].to_dtype(DType::U8).unwrap();
    let (n, _, h, wd) = u8s.dims4().unwrap();
    let flat = u8s.flatten_all().unwrap().to_vec1::<u8>().unwrap();
    let mut ours = Vec::new();
    for i in 0..n {
        // CHW u8 → HWC image → our ToTensor + ImageNet normalisation.
        let chw = &flat[i * 3 * h * wd..(i + 1) * 3 * h * wd];
        let mut hwc = vec![0u8; 3 * h * wd];
        for c in 0..3 {
            for p in 0..h * wd {
                hwc[p * 3 + c] = chw[c * h * wd + p];
            }
        }
        ours.extend(to_chw(&cft_features::image::Rgb8 { width: wd, height: h, data: hwc }, Normalize::Imagenet));
    }
    let ours = Tensor::from_vec(ours, (n, 3, h, wd), &Device::Cpu).unwrap();
    assert!(rel_err(&ours, &f["input_32_normalized"]) < 1e-6);
    let feats = net.features(&f["input_32_normalized"]).unwrap();
    assert!(rel_err(&feats, &f["features"]) <= 1e-4, "features: {}", rel_err(&feats, &f["features"]));
    let (lw, lb) = net.classifier().expect("linear layer");
    let logits = feats.matmul(&lw.t().unwrap()).unwrap().broadcast_add(lb).unwrap();
    assert!(rel_err(&logits, &f["logits"]) <= 1e-4, "logits: {}", rel_err(&logits, &f["logits"]));
    let classes: Vec<String> = serde_json::from_value(meta["classes"].clone()).unwrap();
    let top1: Vec<String> = serde_json::from_value(meta["top1"].clone()).unwrap();
    let ours: Vec<String> =
        logits.argmax(1).unwrap().to_vec1::<u32>().unwrap().iter().map(|&k| classes[k as usize].clone()).collect();
    assert_eq!(ours, top1);
}

fn as_u8(t: &Tensor) -> Vec<u8> {
    t.to_dtype(DType::U8).unwrap().flatten_all().unwrap().to_vec1::<u8>().unwrap()
}

fn chw_u8(img: &cft_features::image::Rgb8) -> Vec<u8> {
    let plane = img.width * img.height;
    let mut out = vec![0u8; 3 * plane];
    for (p, px) in img.data.chunks_exact(3).enumerate() {
        for c in 0..3 {
            out[c * plane + p] = px[c];
        }
    }
    out
}

#[test]
fn network_inputs_from_jpeg_files_equal_torchvisions_bit_for_bit() {
    // PIL `Resize((S, S))` of the JPEG files as torchvision loads them: 448 px (the COCO
    // reference input) and a strong 64-px downscale, where antialiasing matters.
    let f = fixture("torchvision_rule_weights_2img.safetensors");
    let ours = chw_u8(&resize_bilinear(&decode(&root().join("images/1028564844_1716c46263_o.jpg")).unwrap(), 448, 448));
    assert!(ours == as_u8(&f["input_448_u8"]), "448 px input differs from torchvision's");
    let pil64 = as_u8(&f["input_64_u8"]);
    for (i, name) in ["1028564844_1716c46263_o.jpg", "000000000885.jpg"].iter().enumerate() {
        let ours = chw_u8(&resize_bilinear(&decode(&root().join("images").join(name)).unwrap(), 64, 64));
        assert!(ours == pil64[i * 3 * 64 * 64..(i + 1) * 3 * 64 * 64], "{name} at 64 px differs from torchvision's");
    }
}

#[test]
fn features_from_jpeg_files_match_torchvision_to_1e5() {
    // The whole path a user runs — JPEG files → decode → resize → ToTensor → normalise → the
    // real CIFAR ResNet-20 — against PyTorch's features of the same files.
    let f = fixture("resnet20_cifar10_real.safetensors");
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("fixtures/backbones/resnet20_cifar10_real.json")).unwrap(),
    )
    .unwrap();
    let names: Vec<String> = serde_json::from_value(meta["images"].clone()).unwrap();
    let images: Vec<cft_features::ImageRef> =
        names.iter().map(|n| cft_features::ImageRef { file: root().join("images").join(n), name: n.clone() }).collect();
    let w = WeightSource::from_file(&root().join("weights/resnet20_cifar10.safetensors")).unwrap();
    let net = Backbone::load("resnet20-cifar", &w, cpu()).unwrap();
    let opts = ExtractOptions {
        image_size: 32,
        normalize: Normalize::Imagenet,
        batch: 4,
        bad_image: BadImage::Fail,
        jpeg: JpegDecode::Exact,
        resize: Default::default(),
    };
    let out = extract(&net, &images, &opts, &|_| {}).unwrap();
    let got = Tensor::from_vec(out.features, (names.len(), 64), &Device::Cpu).unwrap();
    let e = rel_err(&got, &f["features"]);
    eprintln!("ResNet-20 features from JPEG files: relative error {e:.2e}");
    assert!(e <= 1e-5, "relative error {e}");
    // The inputs themselves are torchvision's, byte for byte.
    let pil = as_u8(&f["input_32_u8"]);
    for (i, n) in names.iter().enumerate() {
        let ours = chw_u8(&resize_bilinear(&decode(&root().join("images").join(n)).unwrap(), 32, 32));
        assert!(ours == pil[i * 3 * 32 * 32..(i + 1) * 3 * 32 * 32], "{n}: 32 px input differs");
    }
}

fn write_modified(dir: &Path, edit: impl Fn(&mut HashMap<String, Tensor>)) -> PathBuf {
    let mut t =
        candle_core::safetensors::load(root().join("weights/resnet20_cifar10.safetensors"), &Device::Cpu).unwrap();
    edit(&mut t);
    let p = dir.join("w.safetensors");
    candle_core::safetensors::save(&t, &p).unwrap();
    p
}

#[test]
fn bad_weights_name_the_tensor_and_both_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_modified(dir.path(), |t| {
        t.remove("layer2.1.conv1.weight");
    });
    let e = Backbone::load("resnet20-cifar", &WeightSource::from_file(&p).unwrap(), cpu()).err().unwrap();
    assert!(matches!(e, FeatureError::MissingTensor { .. }));
    assert!(e.to_string().contains("`layer2.1.conv1.weight` is missing (expected shape [32, 32, 3, 3])"), "{e}");
    let p = write_modified(dir.path(), |t| {
        t.insert("bn1.weight".into(), Tensor::zeros(17, DType::F32, &Device::Cpu).unwrap());
    });
    let e = Backbone::load("resnet20-cifar", &WeightSource::from_file(&p).unwrap(), cpu()).err().unwrap();
    assert!(e.to_string().contains("`bn1.weight` has shape [17], the backbone needs [16]"), "{e}");
    assert!(e.to_string().starts_with(&p.display().to_string()), "the file is named first: {e}");
    // A ResNet-50 asked of CIFAR weights: the first missing key is named.
    let w = WeightSource::from_file(&root().join("weights/resnet20_cifar10.safetensors")).unwrap();
    let e = Backbone::load("resnet50", &w, cpu()).err().unwrap();
    assert!(e.to_string().contains("conv1.weight"), "{e}");
    assert!(Backbone::load("vgg16", &w, cpu()).err().unwrap().to_string().contains("unknown backbone"));
}

#[test]
fn bad_images_are_skipped_with_a_reason_or_fatal_and_empty_folders_fail() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(root().join("images/1028564844_1716c46263_o.jpg")).unwrap();
    std::fs::write(dir.path().join("a.jpg"), &good).unwrap();
    std::fs::write(dir.path().join("b.jpg"), &good[..good.len() / 2]).unwrap();
    std::fs::write(dir.path().join("c.png"), b"not a png").unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"ignored").unwrap();
    let images = list_folder(dir.path()).unwrap();
    assert_eq!(images.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["a.jpg", "b.jpg", "c.png"]);
    let w = WeightSource::from_file(&root().join("weights/resnet20_cifar10.safetensors")).unwrap();
    let net = Backbone::load("resnet20-cifar", &w, cpu()).unwrap();
    let mut opts = ExtractOptions {
        image_size: 32,
        normalize: Normalize::Imagenet,
        batch: 2,
        bad_image: BadImage::Skip,
        jpeg: JpegDecode::Exact,
        resize: Default::default(),
    };
    let out = extract(&net, &images, &opts, &|_| {}).unwrap();
    assert_eq!(out.names, ["a.jpg"]);
    assert_eq!(out.features.len(), 64);
    assert_eq!(out.skipped.len(), 2);
    assert!(out.skipped[0].1.contains("b.jpg") && out.skipped[0].1.contains("truncated JPEG"), "{:?}", out.skipped);
    assert!(out.skipped[1].1.contains("c.png"), "{:?}", out.skipped);
    opts.bad_image = BadImage::Fail;
    let e = extract(&net, &images, &opts, &|_| {}).err().unwrap();
    assert!(e.to_string().contains("b.jpg") && e.to_string().contains("truncated"), "{e}");
    let empty = tempfile::tempdir().unwrap();
    assert!(list_folder(empty.path()).err().unwrap().to_string().contains("no .jpg/.jpeg/.png images"));
}
