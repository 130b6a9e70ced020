//! Where a backbone's weights come from: a PyTorch state dict saved as safetensors
//! (`safetensors.torch.save_file(model.state_dict(), "w.safetensors")`), or the deterministic
//! rule of the torchvision parity fixtures (so the parity tests need no weight file).
//!
//! Every lookup names the state-dict key and checks the shape, so a wrong or truncated file
//! fails with the tensor's name and both shapes instead of a shape error deep in a layer.

use crate::error::{FeatureError, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A source of named weights, read on the CPU in f32.
pub enum WeightSource {
    /// Tensors of a safetensors file.
    File {
        /// The file, for error messages.
        path: PathBuf,
        /// Its tensors by name.
        tensors: HashMap<String, Tensor>,
    },
    /// The torchvision fixtures' rule (see `datasets/fixtures/backbones` and [`rule_values`]).
    Rule,
}

impl WeightSource {
    /// Reads a safetensors state dict.
    pub fn from_file(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(FeatureError::Io {
                path: path.to_path_buf(),
                error: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        let mut tensors = candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| FeatureError::Invalid(format!("{}: not a readable safetensors file: {e}", path.display())))?;
        // A model wrapped in DataParallel / DistributedDataParallel saves every key as `module.…`.
        if !tensors.is_empty() && tensors.keys().all(|k| k.starts_with("module.")) {
            tensors = tensors.into_iter().map(|(k, v)| (k["module.".len()..].to_string(), v)).collect();
        }
        Ok(Self::File { path: path.to_path_buf(), tensors })
    }

    /// The tensor `name` with shape `shape`, as f32 on the CPU.
    pub fn get(&self, name: &str, shape: &[usize], backbone: &str) -> Result<Tensor> {
        match self {
            WeightSource::File { path, tensors } => {
                let t = tensors.get(name).ok_or_else(|| FeatureError::MissingTensor {
                    file: path.clone(),
                    name: name.to_string(),
                    expected: shape.to_vec(),
                    backbone: backbone.to_string(),
                })?;
                if t.dims() != shape {
                    return Err(FeatureError::Shape {
                        file: path.clone(),
                        name: name.to_string(),
                        expected: shape.to_vec(),
                        found: t.dims().to_vec(),
                    });
                }
                Ok(t.to_dtype(DType::F32)?)
            }
            WeightSource::Rule => Ok(Tensor::from_vec(rule_values(name, shape), shape, &Device::Cpu)?),
        }
    }

    /// Whether the source holds `name` (optional tensors such as a classifier).
    pub fn contains(&self, name: &str) -> bool {
        match self {
            WeightSource::File { tensors, .. } => tensors.contains_key(name),
            WeightSource::Rule => true,
        }
    }
}

/// The raw values `u ∈ [−1, 1)` of the fixture rule for `key`: SplitMix64 of
/// `FNV-1a-64(key) + i·0x9E3779B97F4A7C15`, `i = 1..=n`.
pub fn rule_raw(key: &str, n: usize) -> Vec<f64> {
    let mut seed: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        seed ^= u64::from(b);
        seed = seed.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (1..=n as u64)
        .map(|i| {
            let mut z = seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0) * 2.0 - 1.0
        })
        .collect()
}

/// The fixture rule's value of every element of `key` with `shape`.
pub fn rule_values(key: &str, shape: &[usize]) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let raw = rule_raw(key, n);
    let map = |u: f64| -> f64 {
        if shape.len() >= 2 {
            let fan_in: usize = shape[1..].iter().product();
            u * (6.0 / fan_in as f64).sqrt()
        } else if key.ends_with("running_var") {
            1.0 + 0.05 * (u + 1.0)
        } else if key.ends_with("running_mean") {
            0.01 * u
        } else if key.ends_with("bn3.weight") {
            0.3 + 0.05 * u
        } else if key.ends_with("weight") {
            1.0 + 0.05 * u
        } else {
            0.01 * u
        }
    };
    raw.into_iter().map(|u| map(u) as f32).collect()
}
