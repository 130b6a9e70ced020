//! The safetensors exchange formats, readable and writable without this project's code:
//!
//! * **feature set**: tensor `features` `[n, d]` (f32, f16, bf16 or f64) and, optionally,
//!   tensor `labels` `[n, C]` f32 in the reference's encoding (1 positive, 0 negative,
//!   −1 uncertain, NaN unknown); header metadata `categories` (JSON list of names) and `paths`
//!   (JSON list of image paths, one per row) when present;
//! * **head**: tensors `weight` `[C, d]` and `bias` `[C]`, the key names of a PyTorch
//!   `nn.Linear` state dict, so `nn.Linear.load_state_dict(safetensors.torch.load_file(p))`
//!   works as is.

use crate::error::{DataError, Result};
use crate::fsutil::{read, write_atomic};
use cft_core::{Label, LinearHead, Matrix, PartialLabels};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::Path;

/// Storage precision of a written feature tensor (the core's [`Precision`](cft_core::Precision)).
pub use cft_core::Precision as FeaturePrecision;

/// Features with optional partial labels, category names and image paths.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSet {
    /// `n × d` features.
    pub features: Matrix,
    /// `n × C` partial labels, if the file has a `labels` tensor.
    pub labels: Option<PartialLabels>,
    /// Category names (`C` of them), if known.
    pub categories: Option<Vec<String>>,
    /// One image path per row, if known.
    pub paths: Option<Vec<String>>,
}

fn tensor_to_f32(path: &Path, name: &str, view: &TensorView<'_>) -> Result<Vec<f32>> {
    let data = view.data();
    Ok(match view.dtype() {
        Dtype::F32 => data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        Dtype::F64 => data.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32).collect(),
        Dtype::F16 => data.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        Dtype::BF16 => data.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        other => {
            return Err(DataError::invalid(
                path,
                format!("tensor `{name}` has dtype {other:?}; expected F32, F16, BF16 or F64"),
            ))
        }
    })
}

/// When `bytes` start like a `torch.save` file (a zip archive, or a bare pickle), the message
/// that says so and how to convert it; `None` otherwise.
pub fn pytorch_pickle_hint(path: &Path, bytes: &[u8]) -> Option<String> {
    let zip = bytes.starts_with(b"PK\x03\x04");
    let pickle = bytes.len() > 1 && bytes[0] == 0x80 && (2..=5).contains(&bytes[1]);
    (zip || pickle).then(|| {
        let p = path.display();
        format!(
            "a PyTorch `torch.save` file (pickle), not safetensors; convert it once with: python -c \"import torch; from safetensors.torch import save_file; sd = torch.load('{p}', map_location='cpu'); sd = sd.get('state_dict', sd); save_file({{k: v.contiguous() for k, v in sd.items()}}, '{p}.safetensors')\""
        )
    })
}

fn open<'a>(path: &Path, bytes: &'a [u8]) -> Result<(SafeTensors<'a>, HashMap<String, String>)> {
    if let Some(hint) = pytorch_pickle_hint(path, bytes) {
        return Err(DataError::invalid(path, hint));
    }
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| DataError::invalid(path, format!("not a valid safetensors file: {e}")))?;
    let (_, meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| DataError::invalid(path, format!("not a valid safetensors file: {e}")))?;
    Ok((st, meta.metadata().clone().unwrap_or_default()))
}

fn get<'a>(path: &Path, st: &SafeTensors<'a>, name: &str, rank: usize) -> Result<(TensorView<'a>, Vec<usize>)> {
    let view = st.tensor(name).map_err(|_| {
        let mut names = st.names();
        names.sort();
        DataError::invalid(path, format!("no tensor `{name}` (tensors present: {names:?})"))
    })?;
    let shape = view.shape().to_vec();
    if shape.len() != rank {
        return Err(DataError::invalid(path, format!("tensor `{name}` has shape {shape:?}; expected rank {rank}")));
    }
    Ok((view, shape))
}

fn json_list(
    path: &Path,
    meta: &HashMap<String, String>,
    key: &str,
    len: usize,
    what: &str,
) -> Result<Option<Vec<String>>> {
    let Some(text) = meta.get(key) else { return Ok(None) };
    let list: Vec<String> = serde_json::from_str(text)
        .map_err(|e| DataError::invalid(path, format!("metadata `{key}` is not a JSON list of strings: {e}")))?;
    if list.len() != len {
        return Err(DataError::invalid(
            path,
            format!("metadata `{key}` lists {} entries but the file has {len} {what}", list.len()),
        ));
    }
    if key == "categories" {
        check_unique_categories(path, &list)?;
    }
    Ok(Some(list))
}

/// Names label the columns of every table and head: two columns of one name would mix.
pub(crate) fn check_unique_categories(path: &Path, list: &[String]) -> Result<()> {
    let mut seen = HashMap::with_capacity(list.len());
    for (i, name) in list.iter().enumerate() {
        if name.chars().any(char::is_control) {
            return Err(DataError::invalid(
                path,
                format!("metadata `categories` entry {i} ({name:?}) contains a control character; a category name is one line of text (it heads table columns)"),
            ));
        }
        if let Some(first) = seen.insert(name.as_str(), i) {
            return Err(DataError::invalid(
                path,
                format!("metadata `categories` names `{name}` twice (entries {first} and {i})"),
            ));
        }
    }
    Ok(())
}

/// Refuses a feature set that stores its labels both ways (a dense `labels` tensor and sparse
/// `labels_index` + `labels_value`): which one holds would be a guess, and they may disagree.
pub fn check_one_label_form(path: &Path, dense: bool, sparse: bool) -> Result<()> {
    if dense && sparse {
        return Err(DataError::invalid(
            path,
            "holds both a dense `labels` tensor and sparse `labels_index` + `labels_value`; keep one of them, so that the labels are not ambiguous",
        ));
    }
    Ok(())
}

/// Reads a feature set; rejects non-finite features and label values outside {1, 0, −1, NaN}.
pub fn read_feature_set(path: &Path) -> Result<FeatureSet> {
    let bytes = read(path)?;
    let (st, meta) = open(path, &bytes)?;
    let (fv, fshape) = get(path, &st, "features", 2)?;
    let (n, d) = (fshape[0], fshape[1]);
    if n == 0 || d == 0 {
        return Err(DataError::invalid(
            path,
            format!("tensor `features` has shape [{n}, {d}]: a feature set needs at least one row and one column"),
        ));
    }
    let features = Matrix::new(n, d, tensor_to_f32(path, "features", &fv)?).expect("shape checked");
    if let Some((row, col, v)) = features.first_non_finite() {
        return Err(DataError::invalid(
            path,
            format!("tensor `features` {}", crate::arrays::non_finite_feature(row, col, v)),
        ));
    }
    check_one_label_form(path, st.names().contains(&"labels"), st.names().contains(&"labels_index"))?;
    let labels = if st.names().contains(&"labels") {
        let (lv, lshape) = get(path, &st, "labels", 2)?;
        if lshape[0] != n {
            return Err(DataError::invalid(
                path,
                format!(
                    "tensor `labels` has {} rows but `features` has {n}: one label row per feature row is required",
                    lshape[0]
                ),
            ));
        }
        let c = lshape[1];
        if c == 0 {
            return Err(DataError::invalid(path, format!("tensor `labels` has shape [{n}, 0]: no category")));
        }
        let values = tensor_to_f32(path, "labels", &lv)?;
        let mut data = Vec::with_capacity(values.len());
        for (i, &v) in values.iter().enumerate() {
            data.push(Label::from_reference(v).ok_or_else(|| {
                DataError::invalid(
                    path,
                    format!("tensor `labels` {}", crate::arrays::bad_label(i / c.max(1), i % c.max(1), v)),
                )
            })?);
        }
        Some(PartialLabels::new(n, c, data).expect("shape checked"))
    } else {
        None
    };
    let n_cat = labels.as_ref().map(PartialLabels::n_categories);
    let categories = match n_cat {
        Some(c) => json_list(path, &meta, "categories", c, "label columns")?,
        None => meta.get("categories").map(|t| serde_json::from_str(t)).transpose().map_err(|e| {
            DataError::invalid(path, format!("metadata `categories` is not a JSON list of strings: {e}"))
        })?,
    };
    let paths = json_list(path, &meta, "paths", n, "feature rows")?;
    Ok(FeatureSet { features, labels, categories, paths })
}

fn f32_bytes(values: &[f32], precision: FeaturePrecision) -> (Dtype, Vec<u8>) {
    match precision {
        FeaturePrecision::F32 => (Dtype::F32, values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        FeaturePrecision::F16 => {
            (Dtype::F16, values.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect())
        }
        FeaturePrecision::Bf16 => {
            (Dtype::BF16, values.iter().flat_map(|&v| half::bf16::from_f32(v).to_le_bytes()).collect())
        }
    }
}

fn serialize(
    path: &Path,
    tensors: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)>,
    meta: HashMap<String, String>,
) -> Result<()> {
    let views: Vec<(&str, TensorView<'_>)> = tensors
        .iter()
        .map(|(name, dtype, shape, data)| {
            (*name, TensorView::new(*dtype, shape.clone(), data).expect("consistent shape"))
        })
        .collect();
    let meta = (!meta.is_empty()).then_some(meta);
    let bytes = safetensors::tensor::serialize(views, meta)
        .map_err(|e| DataError::invalid(path, format!("cannot serialise: {e}")))?;
    write_atomic(path, &bytes)
}

/// Writes a feature set atomically.
pub fn write_feature_set(path: &Path, set: &FeatureSet, precision: FeaturePrecision) -> Result<()> {
    let f = &set.features;
    let (dtype, data) = f32_bytes(f.as_slice(), precision);
    let mut tensors = vec![("features", dtype, vec![f.rows(), f.cols()], data)];
    if let Some(l) = &set.labels {
        let values: Vec<f32> = l.as_slice().iter().map(|x| x.to_reference()).collect();
        let (dt, bytes) = f32_bytes(&values, FeaturePrecision::F32);
        tensors.push(("labels", dt, vec![l.n_samples(), l.n_categories()], bytes));
    }
    let mut meta = HashMap::new();
    if let Some(c) = &set.categories {
        meta.insert("categories".to_string(), serde_json::to_string(c).expect("strings"));
    }
    if let Some(p) = &set.paths {
        meta.insert("paths".to_string(), serde_json::to_string(p).expect("strings"));
    }
    serialize(path, tensors, meta)
}

/// Reads a head (`weight` `[C, d]`, `bias` `[C]`), rejecting non-finite values. Accepts
/// what [`read_head_file`] accepts without a key.
pub fn read_head(path: &Path) -> Result<LinearHead> {
    read_head_file(path, None).map(|h| h.head)
}

/// A head as found in a file: an `nn.Linear` state dict, or the classifier of a whole model's.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadFile {
    /// The head (bias 0 where the file has none).
    pub head: LinearHead,
    /// Category names from the file's `categories` metadata, if any.
    pub categories: Option<Vec<String>>,
    /// The key prefix the head was found under (`""`, `fc.`, `module.classifier.`, …).
    pub prefix: String,
    /// Whether the file has a bias (`nn.Linear(bias=False)` has none).
    pub has_bias: bool,
}

/// Classifier prefixes of common torchvision / timm models, tried in this order.
pub const CLASSIFIER_PREFIXES: [&str; 4] = ["fc.", "classifier.", "head.", "linear."];

/// Reads a head from an `nn.Linear` state dict (`weight`, optional `bias`) or from a whole
/// model's state dict, finding its classifier under `key` (e.g. `fc` or `fc.`) or else under
/// one of [`CLASSIFIER_PREFIXES`]; a `module.` prefix (DataParallel / DDP) is accepted.
pub fn read_head_file(path: &Path, key: Option<&str>) -> Result<HeadFile> {
    let bytes = read(path)?;
    let (st, meta) = open(path, &bytes)?;
    let names: Vec<&str> = st.names();
    let module = if !names.is_empty() && names.iter().all(|n| n.starts_with("module.")) { "module." } else { "" };
    let has = |p: &str| names.contains(&format!("{module}{p}weight").as_str());
    let prefix = match key {
        Some(k) => {
            let k = k.trim_start_matches("module.");
            let k = if k.is_empty() || k.ends_with('.') { k.to_string() } else { format!("{k}.") };
            if !has(&k) {
                return Err(DataError::invalid(
                    path,
                    format!("--head-key {k}: no tensor `{module}{k}weight` in this file ({})", name_sample(&names)),
                ));
            }
            k
        }
        None if has("") => String::new(),
        None => {
            let found: Vec<&str> = CLASSIFIER_PREFIXES.iter().copied().filter(|p| has(p)).collect();
            match found.as_slice() {
                [one] => one.to_string(),
                [] => {
                    return Err(DataError::invalid(
                        path,
                        format!(
                            "no head found: expected an nn.Linear state dict (`weight` [C, d], `bias` [C]) or a model state dict with a classifier under {}; name another with --head-key PREFIX ({})",
                            CLASSIFIER_PREFIXES.map(|p| format!("`{p}weight`")).join(", "),
                            name_sample(&names)
                        ),
                    ))
                }
                many => {
                    return Err(DataError::invalid(
                        path,
                        format!("several classifiers ({}): choose one with --head-key PREFIX", many.join(", ")),
                    ))
                }
            }
        }
    };
    let full = format!("{module}{prefix}");
    let (wname, bname) = (format!("{full}weight"), format!("{full}bias"));
    let (wv, ws) = get(path, &st, &wname, 2)?;
    if ws[0] == 0 || ws[1] == 0 {
        return Err(DataError::invalid(path, format!("tensor `{wname}` has shape {ws:?}: an empty head")));
    }
    let has_bias = names.contains(&bname.as_str());
    let bias = if has_bias {
        let (bv, bs) = get(path, &st, &bname, 1)?;
        if bs[0] != ws[0] {
            return Err(DataError::invalid(
                path,
                format!("tensor `{bname}` has shape {bs:?} but `{wname}` has shape {ws:?}: expected bias [{}]", ws[0]),
            ));
        }
        tensor_to_f32(path, &bname, &bv)?
    } else {
        vec![0.0; ws[0]]
    };
    let weight = Matrix::new(ws[0], ws[1], tensor_to_f32(path, &wname, &wv)?).expect("shape checked");
    if let Some((r, c, v)) = weight.first_non_finite() {
        return Err(DataError::invalid(path, format!("tensor `{wname}` [{r}, {c}] is {v}")));
    }
    if let Some(i) = bias.iter().position(|v| !v.is_finite()) {
        return Err(DataError::invalid(path, format!("tensor `{bname}` [{i}] is {}", bias[i])));
    }
    let categories = json_list(path, &meta, "categories", ws[0], "head rows")?;
    Ok(HeadFile { head: LinearHead::new(weight, bias).expect("shape checked"), categories, prefix: full, has_bias })
}

/// The first tensor names of a file, for messages.
fn name_sample(names: &[&str]) -> String {
    let mut sorted = names.to_vec();
    sorted.sort_unstable();
    let shown: Vec<&str> = sorted.iter().copied().take(6).collect();
    if sorted.len() > shown.len() {
        format!("{} tensors: {}, …", sorted.len(), shown.join(", "))
    } else {
        format!("tensors: {}", shown.join(", "))
    }
}

/// Writes a head atomically as an `nn.Linear` state dict (f32).
pub fn write_head(path: &Path, head: &LinearHead, categories: Option<&[String]>) -> Result<()> {
    write_head_as(path, head, categories, true)
}

/// [`write_head`], without the `bias` tensor when `with_bias` is false (for an
/// `nn.Linear(bias=False)` head, which `load_state_dict` would otherwise refuse).
pub fn write_head_as(path: &Path, head: &LinearHead, categories: Option<&[String]>, with_bias: bool) -> Result<()> {
    let (_, w) = f32_bytes(head.weight.as_slice(), FeaturePrecision::F32);
    let (_, b) = f32_bytes(&head.bias, FeaturePrecision::F32);
    let mut tensors = vec![("weight", Dtype::F32, vec![head.categories(), head.dim()], w)];
    if with_bias {
        tensors.push(("bias", Dtype::F32, vec![head.categories()], b));
    }
    let mut meta = HashMap::new();
    if let Some(c) = categories {
        meta.insert("categories".to_string(), serde_json::to_string(c).expect("strings"));
    }
    serialize(path, tensors, meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> FeatureSet {
        use Label::*;
        FeatureSet {
            features: Matrix::new(3, 2, vec![0.5, 1.0, -2.0, 0.25, 3.0, 4.0]).unwrap(),
            labels: Some(
                PartialLabels::new(3, 2, vec![Positive, Unknown, Uncertain, Negative, Negative, Positive]).unwrap(),
            ),
            categories: Some(vec!["a".into(), "b".into()]),
            paths: Some(vec!["x.jpg".into(), "y.jpg".into(), "z.jpg".into()]),
        }
    }

    #[test]
    fn feature_sets_round_trip_in_every_precision() {
        let dir = tempfile::tempdir().unwrap();
        for p in [FeaturePrecision::F32, FeaturePrecision::F16, FeaturePrecision::Bf16] {
            let path = dir.path().join("f.safetensors");
            write_feature_set(&path, &set(), p).unwrap();
            // These values are exact in all three precisions.
            assert_eq!(read_feature_set(&path).unwrap(), set());
        }
    }

    #[test]
    fn heads_round_trip_and_bad_shapes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.safetensors");
        let head =
            LinearHead::new(Matrix::new(2, 3, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap(), vec![0.5, -0.5]).unwrap();
        write_head(&path, &head, None).unwrap();
        assert_eq!(read_head(&path).unwrap(), head);
        let bad = dir.path().join("bad.safetensors");
        let w: Vec<u8> = [0f32; 6].iter().flat_map(|v| v.to_le_bytes()).collect();
        let b: Vec<u8> = [0f32; 3].iter().flat_map(|v| v.to_le_bytes()).collect();
        serialize(&bad, vec![("weight", Dtype::F32, vec![2, 3], w), ("bias", Dtype::F32, vec![3], b)], HashMap::new())
            .unwrap();
        let err = read_head(&bad).unwrap_err().to_string();
        assert!(err.contains("bad.safetensors") && err.contains("bias") && err.contains("[3]"), "{err}");
    }

    #[test]
    fn mismatched_rows_and_nan_features_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.safetensors");
        let f: Vec<u8> = [1f32, f32::NAN, 0.0, 0.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let l: Vec<u8> = [1f32, 0.0, 1.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        serialize(
            &path,
            vec![("features", Dtype::F32, vec![2, 2], f.clone()), ("labels", Dtype::F32, vec![3, 1], l)],
            HashMap::new(),
        )
        .unwrap();
        let err = read_feature_set(&path).unwrap_err().to_string();
        assert!(err.contains("NaN") && err.contains("row 0, column 1"), "{err}");
        let ok: Vec<u8> = [1f32, 2.0, 0.0, 0.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let l: Vec<u8> = [1f32, 0.0, 1.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        serialize(
            &path,
            vec![("features", Dtype::F32, vec![2, 2], ok), ("labels", Dtype::F32, vec![3, 1], l)],
            HashMap::new(),
        )
        .unwrap();
        let err = read_feature_set(&path).unwrap_err().to_string();
        assert!(err.contains("3 rows") && err.contains("has 2"), "{err}");
    }
}
