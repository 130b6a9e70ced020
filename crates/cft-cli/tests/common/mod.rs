//! Helpers shared by the CLI test files.

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
