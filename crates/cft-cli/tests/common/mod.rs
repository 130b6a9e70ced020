//! Helpers shared by the CLI test files.
#![allow(dead_code)] // each test file uses some of these helpers

use std::path::Path;

/// Writes f32 tensors (name, shape, values) as a safetensors file, with `categories` metadata
/// when given: malformed files on purpose, which this project's writers would refuse to make.
pub fn write_tensors(path: &Path, tensors: &[(&str, Vec<usize>, Vec<f32>)], categories: Option<&[&str]>) {
    let bytes: Vec<Vec<u8>> =
        tensors.iter().map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect()).collect();
    let views: Vec<(&str, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((n, s, _), b)| {
            (*n, safetensors::tensor::TensorView::new(safetensors::tensor::Dtype::F32, s.clone(), b).unwrap())
        })
        .collect();
    let meta = categories
        .map(|c| std::collections::HashMap::from([("categories".to_string(), serde_json::to_string(c).unwrap())]));
    std::fs::write(path, safetensors::tensor::serialize(views, meta).unwrap()).unwrap();
}

/// The bundled photos and real CIFAR ResNet-20 weights (paths as strings, kept alive here).
pub struct Resnet20 {
    images: String,
    weights: String,
}

impl Resnet20 {
    /// The bundled inputs of the extraction tests.
    pub fn bundled() -> Self {
        let datasets = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets");
        Self {
            images: datasets.join("images").display().to_string(),
            weights: datasets.join("weights/resnet20_cifar10.safetensors").display().to_string(),
        }
    }

    /// The real CIFAR ResNet-20 weights file.
    pub fn weights(&self) -> &str {
        &self.weights
    }

    /// `cft extract` of every bundled photo with the real ResNet-20 at `size` pixels, then `extra`.
    pub fn extract<'a>(&'a self, size: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec![
            "extract",
            "--backbone",
            "resnet20-cifar",
            "--weights",
            &self.weights,
            "--images",
            &self.images,
            "--image-size",
            size,
        ];
        v.extend_from_slice(extra);
        v
    }
}

/// The bundled photos (`datasets/images/*.jpg`), in file-name order.
pub fn photos() -> Vec<std::path::PathBuf> {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets/images");
    let mut v: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    v.sort();
    v
}
