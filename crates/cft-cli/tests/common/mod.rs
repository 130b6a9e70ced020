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

/// Every file under `dir` with its bytes.
pub fn snapshot(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Runs `args` in `dir`, which must be refused: exit code 1, every `needles` in the message,
/// the folder exactly as before (inputs byte-identical, nothing new: no output, lock or
/// temporary file). Returns the message.
pub fn refused(args: &[&str], dir: &Path, needles: &[&str]) -> String {
    let before = snapshot(dir);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cft"))
        .args(args)
        .current_dir(dir)
        .env("CFT_PROGRESS_INTERVAL", "0")
        .output()
        .expect("runs cft");
    let msg = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?} must fail with exit 1 (101 is a panic):\n{msg}");
    for n in needles {
        assert!(msg.contains(n), "{args:?}: the message lacks `{n}`:\n{msg}");
    }
    let after = snapshot(dir);
    let added: Vec<_> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    assert!(added.is_empty(), "{args:?} left files behind: {added:?}\n{msg}");
    for (p, bytes) in &before {
        assert!(after.get(p) == Some(bytes), "{args:?} changed or removed {}", p.display());
    }
    msg
}

/// Every f32 tensor of a safetensors file: (name, shape, values), in name order.
pub fn read_tensors(path: &Path) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let t = st.tensor(&n).unwrap();
            let v = t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            let shape = t.shape().to_vec();
            (n, shape, v)
        })
        .collect()
}

/// [`write_tensors`] of owned (name, shape, values) triples, without metadata.
pub fn write_owned(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    let refs: Vec<(&str, Vec<usize>, Vec<f32>)> =
        tensors.iter().map(|(n, s, v)| (n.as_str(), s.clone(), v.clone())).collect();
    write_tensors(path, &refs, None);
}
