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

/// How a checkpoint's keys map to torchvision's names, for models that wrap a torchvision
/// backbone (the CFT authors' `Model` saves `backbone.conv1.weight`, …, and its classifier as
/// `classification_layer.weight`/`.bias`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct KeyNames {
    /// Prefix of every backbone tensor (`backbone.`; `""` for a plain torchvision state dict).
    /// `None`: detected from the file — `module.` (DataParallel) or the one prefix under which a
    /// torchvision stem (`conv1` with `layer1`, or `features.conv0`) is found.
    pub backbone_prefix: Option<String>,
    /// The classifier layer's key without `.weight`/`.bias` (`classification_layer`). `None`:
    /// torchvision's (`fc`, `classifier`, `linear`) under the backbone prefix, else the one
    /// linear layer outside the backbone prefix when there is exactly one.
    pub head_key: Option<String>,
}

/// A source of named weights, read on the CPU in f32.
pub enum WeightSource {
    /// Tensors of a memory-mapped safetensors file.
    File {
        /// The file, for error messages.
        path: PathBuf,
        /// Its tensors, mapped (each read copies it out).
        tensors: MmapedSafetensors,
        /// Prefix of the backbone's keys (`module.`, `backbone.`, or empty).
        prefix: String,
        /// The classifier's key when it is not torchvision's (`classification_layer`).
        head_key: Option<String>,
        /// A sentence for missing-tensor errors: the key prefixes the file has.
        seen: String,
    },
    /// The torchvision fixtures' rule (see `datasets/fixtures/backbones` and [`rule_values`]).
    Rule,
}

impl WeightSource {
    /// Maps a safetensors state dict, detecting its key prefixes ([`KeyNames`]).
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::from_file_with(path, &KeyNames::default())
    }

    /// Maps a safetensors state dict whose keys follow `names` (unset parts are detected).
    pub fn from_file_with(path: &Path, names: &KeyNames) -> Result<Self> {
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
        let keys: std::collections::BTreeMap<String, Vec<usize>> =
            tensors.tensors().into_iter().map(|(k, v)| (k, v.shape().to_vec())).collect();
        let candidates = stem_prefixes(&keys);
        let prefix = match &names.backbone_prefix {
            Some(p) => p.clone(),
            // A model wrapped in DataParallel / DistributedDataParallel saves every key as `module.…`.
            None if !keys.is_empty() && keys.keys().all(|k| k.starts_with("module.")) && candidates.len() != 1 => {
                "module.".to_string()
            }
            None if candidates.len() == 1 => candidates[0].clone(),
            None => String::new(),
        };
        let head_key = match &names.head_key {
            Some(h) => Some(h.clone()),
            None => detect_head(&keys, &prefix),
        };
        let tops: std::collections::BTreeSet<String> = keys
            .keys()
            .map(|k| match k.split_once('.') {
                Some((top, _)) => format!("{top}."),
                None => k.clone(),
            })
            .collect();
        let shown: Vec<String> = tops.iter().take(8).map(|t| format!("`{t}`")).collect();
        let mut seen = format!(
            "The file's keys start with {}{}; backbone key prefix in force: `{prefix}`",
            shown.join(", "),
            if tops.len() > 8 { format!(" and {} more", tops.len() - 8) } else { String::new() }
        );
        if candidates.len() > 1 {
            let c: Vec<String> = candidates.iter().map(|c| format!("`{c}`")).collect();
            seen += &format!(" (ambiguous: a backbone stem is found under {}; choose one)", c.join(", "));
        }
        seen += " — set the prefix with `[backbone] key_prefix` / `--key-prefix` and the classifier with `[base] head_key` / `--head-key`.";
        Ok(Self::File { path: path.to_path_buf(), tensors, prefix, head_key, seen })
    }

    /// The key prefix of the backbone's tensors and the classifier's key in force (a rule
    /// source: none).
    pub fn key_names(&self) -> KeyNames {
        match self {
            WeightSource::File { prefix, head_key, .. } => {
                KeyNames { backbone_prefix: Some(prefix.clone()), head_key: head_key.clone() }
            }
            WeightSource::Rule => KeyNames::default(),
        }
    }

    /// The file's key for torchvision name `name`.
    fn key(&self, name: &str) -> String {
        let WeightSource::File { prefix, head_key, .. } = self else { return name.to_string() };
        if let Some(head) = head_key {
            for layer in CLASSIFIER_LAYERS {
                if let Some(rest) = name.strip_prefix(layer).and_then(|r| r.strip_prefix('.')) {
                    return format!("{head}.{rest}");
                }
            }
        }
        format!("{prefix}{name}")
    }

    /// The shape of tensor `name` when the source stores it (a rule source stores none).
    pub fn dims(&self, name: &str) -> Option<Vec<usize>> {
        match self {
            WeightSource::File { tensors, .. } => tensors.get(&self.key(name)).ok().map(|v| v.shape().to_vec()),
            WeightSource::Rule => None,
        }
    }

    /// The first dimension of tensor `name` when stored (a classifier's class count).
    pub fn rows(&self, name: &str) -> Option<usize> {
        self.dims(name).and_then(|d| d.first().copied())
    }

    /// The tensor `name` with shape `shape`, as f32 on the CPU; errors name the file, the
    /// tensor and both shapes.
    pub fn get(&self, name: &str, shape: &[usize], backbone: &str) -> Result<Tensor> {
        match self {
            WeightSource::File { path, tensors, seen, .. } => {
                let found = self.dims(name).ok_or_else(|| FeatureError::MissingTensor {
                    file: path.clone(),
                    name: self.key(name),
                    expected: shape.to_vec(),
                    backbone: backbone.to_string(),
                    seen: seen.clone(),
                })?;
                if found != shape {
                    return Err(FeatureError::Shape {
                        file: path.clone(),
                        name: self.key(name),
                        expected: shape.to_vec(),
                        found,
                    });
                }
                let key = self.key(name);
                let t = tensors.load(&key, &Device::Cpu)?.to_dtype(DType::F32)?;
                check_values(path, &key, &t)?;
                Ok(t)
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

/// Refuses a weight PyTorch would turn into NaN features or that batch norm cannot use: a
/// non-finite value anywhere, or a negative running variance (its square root is NaN, and
/// folded into a convolution it would silently give every image the same features).
fn check_values(path: &Path, key: &str, t: &Tensor) -> Result<()> {
    let values = t.flatten_all()?.to_vec1::<f32>()?;
    if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(FeatureError::Invalid(format!(
            "{}: tensor `{key}` holds a non-finite value ({v} at flat index {i}): a damaged or diverged checkpoint",
            path.display()
        )));
    }
    if key.ends_with("running_var") {
        if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| **v < 0.0) {
            return Err(FeatureError::Invalid(format!(
                "{}: tensor `{key}` has a negative variance ({v} at index {i}): not a batch-norm running variance",
                path.display()
            )));
        }
    }
    Ok(())
}

/// torchvision's classifier layers: ResNet `fc`, DenseNet `classifier`, CIFAR ResNet `linear`.
const CLASSIFIER_LAYERS: [&str; 3] = ["fc", "classifier", "linear"];

/// Prefixes under which a torchvision stem is found: `conv1.weight` with `layer1.0.conv1.weight`
/// (ResNets), or `features.conv0.weight` (DenseNets).
fn stem_prefixes(keys: &std::collections::BTreeMap<String, Vec<usize>>) -> Vec<String> {
    let mut found = std::collections::BTreeSet::new();
    for k in keys.keys() {
        if let Some(p) = k.strip_suffix("features.conv0.weight") {
            found.insert(p.to_string());
        }
        if let Some(p) = k.strip_suffix("conv1.weight") {
            if keys.contains_key(&format!("{p}layer1.0.conv1.weight")) {
                found.insert(p.to_string());
            }
        }
    }
    found.into_iter().filter(|p| p.is_empty() || p.ends_with('.')).collect()
}

/// The classifier of a wrapped model: when no torchvision classifier sits under `prefix`, the
/// one layer outside it with a 2-d `.weight` and a matching 1-d `.bias` (none when several).
fn detect_head(keys: &std::collections::BTreeMap<String, Vec<usize>>, prefix: &str) -> Option<String> {
    if prefix.is_empty() || CLASSIFIER_LAYERS.iter().any(|l| keys.contains_key(&format!("{prefix}{l}.weight"))) {
        return None;
    }
    let linear: Vec<&str> = keys
        .iter()
        .filter(|(k, _)| !k.starts_with(prefix))
        .filter_map(|(k, shape)| {
            let stem = k.strip_suffix(".weight")?;
            let bias = keys.get(&format!("{stem}.bias"))?;
            (shape.len() == 2 && bias.len() == 1 && bias[0] == shape[0]).then_some(stem)
        })
        .collect();
    match linear.as_slice() {
        [one] => Some(one.to_string()),
        _ => None,
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
