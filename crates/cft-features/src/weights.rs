//! Where a backbone's weights come from: a PyTorch state dict saved as safetensors
//! (`safetensors.torch.save_file(model.state_dict(), "w.safetensors")`), or the deterministic
//! rule of the torchvision parity fixtures (so the parity tests need no weight file).
//!
//! The backbones read them through a candle-nn `VarBuilder` over a checking backend: every
//! lookup names the state-dict key and checks the shape, so a wrong or truncated file fails with
//! the file, the tensor's name and both shapes instead of a shape error deep in a layer.

use crate::error::{FeatureError, Result};
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Shape, Tensor};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A source of named weights, read on the CPU in f32.
pub enum WeightSource {
    /// Tensors of a memory-mapped safetensors file.
    File {
        /// The file, for error messages.
        path: PathBuf,
        /// Its tensors, mapped (each read copies it out).
        tensors: MmapedSafetensors,
        /// `module.` when every key has it (a `DataParallel` model's state dict), else empty.
        prefix: &'static str,
    },
    /// The torchvision fixtures' rule (see `datasets/fixtures/backbones` and [`rule_values`]).
    Rule,
}

impl WeightSource {
    /// Maps a safetensors state dict.
    pub fn from_file(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(FeatureError::Io {
                path: path.to_path_buf(),
                error: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        // SAFETY: the map is only read while a backbone is built (every tensor is copied out
        // of it); like every reader of a weights file we assume nobody truncates it meanwhile.
        #[allow(unsafe_code)]
        let tensors = unsafe { MmapedSafetensors::new(path) }
            .map_err(|e| FeatureError::Invalid(format!("{}: not a readable safetensors file: {e}", path.display())))?;
        let names = tensors.tensors();
        // A model wrapped in DataParallel / DistributedDataParallel saves every key as `module.…`.
        let prefix =
            if !names.is_empty() && names.iter().all(|(k, _)| k.starts_with("module.")) { "module." } else { "" };
        Ok(Self::File { path: path.to_path_buf(), tensors, prefix })
    }

    /// The shape of tensor `name` when the source stores it (a rule source stores none).
    pub fn dims(&self, name: &str) -> Option<Vec<usize>> {
        match self {
            WeightSource::File { tensors, prefix, .. } => {
                tensors.get(&format!("{prefix}{name}")).ok().map(|v| v.shape().to_vec())
            }
            WeightSource::Rule => None,
        }
    }

    /// The tensor `name` with shape `shape`, as f32 on the CPU; errors name the file, the
    /// tensor and both shapes.
    pub fn get(&self, name: &str, shape: &[usize], backbone: &str) -> Result<Tensor> {
        match self {
            WeightSource::File { path, tensors, prefix } => {
                let found = self.dims(name).ok_or_else(|| FeatureError::MissingTensor {
                    file: path.clone(),
                    name: name.to_string(),
                    expected: shape.to_vec(),
                    backbone: backbone.to_string(),
                })?;
                if found != shape {
                    return Err(FeatureError::Shape {
                        file: path.clone(),
                        name: name.to_string(),
                        expected: shape.to_vec(),
                        found,
                    });
                }
                Ok(tensors.load(&format!("{prefix}{name}"), &Device::Cpu)?.to_dtype(DType::F32)?)
            }
            WeightSource::Rule => Ok(Tensor::from_vec(rule_values(name, shape), shape, &Device::Cpu)?),
        }
    }

    /// Whether the source holds `name` (optional tensors such as a classifier).
    pub fn contains(&self, name: &str) -> bool {
        match self {
            WeightSource::File { .. } => self.dims(name).is_some(),
            WeightSource::Rule => true,
        }
    }
}

/// A candle-nn backend over a [`WeightSource`]: every lookup is checked by [`WeightSource::get`]
/// (so a wrong file fails naming the file, the tensor and both shapes) and the parameters read
/// are counted (running statistics are buffers, not parameters, as torchvision counts).
pub(crate) struct Checked<'a> {
    pub(crate) src: &'a WeightSource,
    pub(crate) backbone: String,
    /// Elements of the parameters read so far.
    pub(crate) params: Arc<AtomicUsize>,
    /// The first weight error: candle-nn passes errors on as candle errors, this keeps ours.
    pub(crate) error: Arc<Mutex<Option<FeatureError>>>,
}

impl Checked<'_> {
    fn fetch(&self, name: &str, shape: &[usize], dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        match self.src.get(name, shape, &self.backbone) {
            Ok(t) => {
                if !name.ends_with("running_mean") && !name.ends_with("running_var") {
                    self.params.fetch_add(t.elem_count(), Ordering::Relaxed);
                }
                t.to_dtype(dtype)?.to_device(dev)
            }
            Err(e) => {
                let message = e.to_string();
                let mut first = self.error.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                first.get_or_insert(e);
                Err(candle_core::Error::Msg(message))
            }
        }
    }
}

impl candle_nn::var_builder::SimpleBackend for Checked<'_> {
    fn get(&self, s: Shape, name: &str, _: candle_nn::Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.fetch(name, s.dims(), dtype, dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let shape =
            self.src.dims(name).ok_or_else(|| candle_core::Error::CannotFindTensor { path: name.to_string() })?;
        self.fetch(name, &shape, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.src.contains(name)
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
