//! Feature sets at full scale: read and written in blocks, never whole in memory twice.
//!
//! [`read_labelled_set`] reads the feature-set format of [`crate::tensors`] straight into the
//! feature matrix (the file's bytes are not held beside it: at OpenImages' scale, a million
//! images × 2048 features, that is 8 GB saved) and its labels straight into per-category lists
//! of known samples. Besides the dense `labels` tensor it reads **sparse labels**, for label
//! sets too large to store densely (a million images × 5,000 classes):
//!
//! * `labels_index` `[k, 2]` (I64 or I32): (row, category) of each known label;
//! * `labels_value` `[k]` (F32, F16, BF16 or F64): 1 positive, 0 negative, −1 uncertain;
//! * metadata `categories` (JSON list of names) gives the number of categories.
//!
//! In Python: `save_file({"features": x, "labels_index": idx, "labels_value": v},
//! path, metadata={"categories": json.dumps(names)})`. [`write_labelled_set`] writes the same
//! layout, its rows produced block by block.

use crate::error::{DataError, Result};
use cft_core::{KnownSamples, Label, Matrix, SparseLabels};
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Features with sparse labels, as the protocol reads them.
#[derive(Debug, Clone)]
pub struct LabelledSet {
    /// `n × d` features.
    pub features: Matrix,
    /// Known positives and negatives per category (uncertain labels are left unknown).
    pub labels: SparseLabels,
    /// Category names, if the file has them.
    pub categories: Option<Vec<String>>,
}

/// One tensor's entry in a safetensors header.
#[derive(Debug, Clone)]
struct Entry {
    dtype: String,
    shape: Vec<usize>,
    start: u64,
    end: u64,
}

/// A safetensors header read on its own (the data stays on disk).
struct Header {
    tensors: HashMap<String, Entry>,
    meta: HashMap<String, String>,
    /// Offset of the data section in the file.
    data_start: u64,
}

fn element_size(path: &Path, name: &str, dtype: &str) -> Result<usize> {
    Ok(match dtype {
        "F64" | "I64" => 8,
        "F32" | "I32" => 4,
        "F16" | "BF16" => 2,
        other => {
            return Err(DataError::invalid(
                path,
                format!("tensor `{name}` has dtype {other}; expected F32, F16, BF16 or F64 (I64 or I32 for indices)"),
            ))
        }
    })
}

fn read_header(path: &Path, file: &mut std::fs::File) -> Result<Header> {
    let bad = |m: String| DataError::invalid(path, m);
    let len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
    let mut n = [0u8; 8];
    file.read_exact(&mut n).map_err(|_| bad("not a valid safetensors file: shorter than its header".into()))?;
    let n = u64::from_le_bytes(n);
    if n > 100_000_000 || 8 + n > len {
        return Err(bad(format!("not a valid safetensors file: header of {n} bytes in a file of {len}")));
    }
    let mut text = vec![0u8; n as usize];
    file.read_exact(&mut text).map_err(|e| DataError::io(path, e))?;
    let json: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&text).map_err(|e| bad(format!("not a valid safetensors file: header: {e}")))?;
    let mut tensors = HashMap::new();
    let mut meta = HashMap::new();
    for (name, v) in json {
        if name == "__metadata__" {
            meta =
                serde_json::from_value(v).map_err(|e| bad(format!("not a valid safetensors file: metadata: {e}")))?;
            continue;
        }
        #[derive(serde::Deserialize)]
        struct Raw {
            dtype: String,
            shape: Vec<usize>,
            data_offsets: (u64, u64),
        }
        let raw: Raw = serde_json::from_value(v)
            .map_err(|e| bad(format!("not a valid safetensors file: tensor `{name}`: {e}")))?;
        let size = element_size(path, &name, &raw.dtype).unwrap_or(1) as u64;
        let elements = raw.shape.iter().try_fold(1u64, |a, &s| a.checked_mul(s as u64));
        let (start, end) = raw.data_offsets;
        if start > end || 8 + n + end > len || elements.and_then(|e| e.checked_mul(size)) != Some(end - start) {
            return Err(bad(format!(
                "not a valid safetensors file: tensor `{name}` ({} {:?}) does not fit its offsets {start}..{end}",
                raw.dtype, raw.shape
            )));
        }
        tensors.insert(name, Entry { dtype: raw.dtype, shape: raw.shape, start, end });
    }
    Ok(Header { tensors, meta, data_start: 8 + n })
}

/// Streams tensor `name`'s values as f64 (exact for every dtype read here) to `sink`, in
/// blocks of about 4 MB; `sink` gets each block and the flat index of its first value.
fn stream_values(
    path: &Path,
    file: &mut std::fs::File,
    header: &Header,
    name: &str,
    mut sink: impl FnMut(usize, &[f64]) -> Result<()>,
) -> Result<()> {
    let e = &header.tensors[name];
    let size = element_size(path, name, &e.dtype)?;
    file.seek(SeekFrom::Start(header.data_start + e.start)).map_err(|err| DataError::io(path, err))?;
    let total = ((e.end - e.start) as usize) / size;
    let per_block = (4 << 20) / size;
    let (mut bytes, mut values) = (vec![0u8; per_block * size], Vec::with_capacity(per_block));
    let mut done = 0;
    while done < total {
        let count = per_block.min(total - done);
        let buf = &mut bytes[..count * size];
        file.read_exact(buf).map_err(|err| DataError::io(path, err))?;
        values.clear();
        let le = |b: &[u8]| -> [u8; 8] {
            let mut a = [0u8; 8];
            a[..b.len()].copy_from_slice(b);
            a
        };
        values.extend(buf.chunks_exact(size).map(|b| match e.dtype.as_str() {
            "F64" => f64::from_le_bytes(le(b)),
            "F32" => f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            "F16" => f64::from(half::f16::from_le_bytes([b[0], b[1]]).to_f32()),
            "BF16" => f64::from(half::bf16::from_le_bytes([b[0], b[1]]).to_f32()),
            "I64" => i64::from_le_bytes(le(b)) as f64,
            _ => f64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        }));
        sink(done, &values)?;
        done += count;
    }
    Ok(())
}

/// The common case, f32 features on a little-endian machine: the file's bytes are the values,
/// read straight into an f32 block (no conversion pass) and appended to `data`.
fn read_f32_features(
    path: &Path,
    file: &mut std::fs::File,
    header: &Header,
    d: usize,
    data: &mut Vec<f32>,
) -> Result<()> {
    let e = &header.tensors["features"];
    let (start, end) = (header.data_start + e.start, header.data_start + e.end);
    if start.is_multiple_of(4) {
        if let Some(direct) = open_direct(path) {
            let mut checked = |at: usize, values: &[f32]| check_finite(path, d, at, values);
            match read_direct(direct, start, end, data, &mut checked) {
                Ok(()) => return Ok(()),
                Err(DirectError::Invalid(e)) => return Err(e),
                // Not supported here after all: the buffered reader below.
                Err(DirectError::Io) => data.clear(),
            }
        }
    }
    file.seek(SeekFrom::Start(start)).map_err(|err| DataError::io(path, err))?;
    let total = ((e.end - e.start) / 4) as usize;
    let mut block = vec![0f32; (8 << 20) / 4];
    let mut done = 0;
    while done < total {
        let count = block.len().min(total - done);
        let values = &mut block[..count];
        file.read_exact(bytemuck::cast_slice_mut(values)).map_err(|err| DataError::io(path, err))?;
        check_finite(path, d, done, values)?;
        data.extend_from_slice(values);
        done += count;
    }
    Ok(())
}

fn check_finite(path: &Path, d: usize, at: usize, values: &[f32]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(k) => {
            let i = at + k;
            Err(DataError::invalid(
                path,
                format!("tensor `features` {}", crate::arrays::non_finite_feature(i / d, i % d, values[k])),
            ))
        }
    }
}

/// The file opened for direct I/O (Linux `O_DIRECT`: the disk writes into our buffer, no
/// page-cache copy), where the system allows it. Reading gigabytes of features through the
/// page cache costs as much system time as the rest of a run (measured: 24 of 27 s at
/// OpenImages' scale with a cold cache).
#[cfg(target_os = "linux")]
fn open_direct(path: &Path) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(path).ok()
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_: &Path) -> Option<std::fs::File> {
    None
}

/// Calls `f` on the bytes of `path` in order, in blocks of a few MB, through direct I/O where
/// the system allows it (else the page cache): hashing gigabytes of features this way neither
/// fills the page cache nor, on a machine whose memory the features already hold, makes the
/// kernel evict it page by page. Returns the file's size.
pub fn for_each_block(path: &Path, mut f: impl FnMut(&[u8])) -> std::io::Result<u64> {
    const ALIGN: usize = 4096;
    const CHUNK: usize = 8 << 20;
    let mut raw = vec![0u8; CHUNK + ALIGN];
    let off = raw.as_ptr().align_offset(ALIGN);
    let buf = &mut raw[off..off + CHUNK];
    let (mut file, direct) = match open_direct(path) {
        Some(file) => (file, true),
        None => (std::fs::File::open(path)?, false),
    };
    let mut total = 0u64;
    loop {
        let n = match file.read(buf) {
            Ok(n) => n,
            // Direct I/O refused after opening (file system or alignment): start again buffered.
            Err(e) if direct && total == 0 && e.raw_os_error() == Some(22) => {
                file = std::fs::File::open(path)?;
                return for_each_buffered(file, buf, f);
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(total);
        }
        f(&buf[..n]);
        total += n as u64;
    }
}

fn for_each_buffered(mut file: std::fs::File, buf: &mut [u8], mut f: impl FnMut(&[u8])) -> std::io::Result<u64> {
    let mut total = 0u64;
    loop {
        let n = file.read(buf)?;
        if n == 0 {
            return Ok(total);
        }
        f(&buf[..n]);
        total += n as u64;
    }
}

enum DirectError {
    /// Bad data: the error to report.
    Invalid(DataError),
    /// Direct I/O failed (unsupported alignment or file system): read the usual way.
    Io,
}

/// Reads bytes `start..end` (`start` a multiple of 4) of `file` as f32 values into `data`
/// through direct I/O: whole 4 KiB-aligned blocks into an aligned buffer, the values copied out.
fn read_direct(
    mut file: std::fs::File,
    start: u64,
    end: u64,
    data: &mut Vec<f32>,
    check: &mut dyn FnMut(usize, &[f32]) -> Result<()>,
) -> std::result::Result<(), DirectError> {
    const ALIGN: usize = 4096;
    const CHUNK: usize = 8 << 20;
    let mut raw = vec![0u8; CHUNK + ALIGN];
    let off = raw.as_ptr().align_offset(ALIGN);
    let buf = &mut raw[off..off + CHUNK];
    let mut pos = start - start % ALIGN as u64;
    file.seek(SeekFrom::Start(pos)).map_err(|_| DirectError::Io)?;
    while pos < end {
        // Fill the whole chunk unless the file ends first (the last read may be short).
        let mut got = 0;
        while got < CHUNK {
            match file.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(k) => got += k,
                Err(_) => return Err(DirectError::Io),
            }
        }
        let lo = start.saturating_sub(pos) as usize;
        let hi = ((end - pos) as usize).min(got);
        if hi <= lo || !(hi - lo).is_multiple_of(4) {
            return Err(DirectError::Io);
        }
        let values: &[f32] = bytemuck::try_cast_slice(&buf[lo..hi]).map_err(|_| DirectError::Io)?;
        check(data.len(), values).map_err(DirectError::Invalid)?;
        data.extend_from_slice(values);
        pos += got as u64;
        if got < CHUNK && pos < end {
            return Err(DirectError::Io);
        }
    }
    Ok(())
}

fn tensor<'h>(path: &Path, header: &'h Header, name: &str, rank: usize) -> Result<&'h Entry> {
    let e = header.tensors.get(name).ok_or_else(|| {
        let mut names: Vec<&String> = header.tensors.keys().collect();
        names.sort();
        DataError::invalid(path, format!("no tensor `{name}` (tensors present: {names:?})"))
    })?;
    if e.shape.len() != rank {
        return Err(DataError::invalid(path, format!("tensor `{name}` has shape {:?}; expected rank {rank}", e.shape)));
    }
    Ok(e)
}

fn categories(path: &Path, header: &Header, count: Option<usize>) -> Result<Option<Vec<String>>> {
    let Some(text) = header.meta.get("categories") else { return Ok(None) };
    let list: Vec<String> = serde_json::from_str(text)
        .map_err(|e| DataError::invalid(path, format!("metadata `categories` is not a JSON list of strings: {e}")))?;
    if let Some(c) = count.filter(|&c| c != list.len()) {
        return Err(DataError::invalid(
            path,
            format!("metadata `categories` lists {} entries but the file has {c} label columns", list.len()),
        ));
    }
    crate::tensors::check_unique_categories(path, &list)?;
    Ok(Some(list))
}

/// Whether a safetensors feature set stores its labels sparse (`labels_index` +
/// `labels_value`, what `cft run` reads and `cft data synthesize --like openimages` writes)
/// rather than as a dense `labels` tensor; only the header is read.
pub fn has_sparse_labels(path: &Path) -> Result<bool> {
    let mut file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let header = read_header(path, &mut file)?;
    Ok(!header.tensors.contains_key("labels") && header.tensors.contains_key("labels_index"))
}

/// Reads a feature set with dense (`labels`) or sparse (`labels_index` + `labels_value`)
/// labels into features and sparse labels, holding the features once. Rejects non-finite
/// features, label values outside {1, 0, −1, NaN}, indices out of range and a label given twice.
pub fn read_labelled_set(path: &Path) -> Result<LabelledSet> {
    if let Ok(mut f) = std::fs::File::open(path) {
        let mut head = [0u8; 8];
        if f.read(&mut head).unwrap_or(0) >= 2 {
            if let Some(hint) = crate::tensors::pytorch_pickle_hint(path, &head) {
                return Err(DataError::invalid(path, hint));
            }
        }
    }
    let mut file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let header = read_header(path, &mut file)?;
    let fe = tensor(path, &header, "features", 2)?;
    let (n, d) = (fe.shape[0], fe.shape[1]);
    if n == 0 || d == 0 {
        return Err(DataError::invalid(
            path,
            format!("tensor `features` has shape [{n}, {d}]: a feature set needs at least one row and one column"),
        ));
    }
    let mut data: Vec<f32> = Vec::with_capacity(n * d);
    if fe.dtype == "F32" && cfg!(target_endian = "little") {
        read_f32_features(path, &mut file, &header, d, &mut data)?;
    } else {
        stream_values(path, &mut file, &header, "features", |at, values| {
            let start = data.len();
            data.extend(values.iter().map(|&v| v as f32));
            check_finite(path, d, at, &data[start..])
        })?;
    }
    let features = Matrix::new(n, d, data).expect("shape checked");
    let (labels, categories) = read_labels(path, &mut file, &header, n)?;
    Ok(LabelledSet { features, labels, categories })
}

/// A label value of the reference's encoding, or an error naming where it was read.
fn label_at(path: &Path, v: f64, at: String) -> Result<Label> {
    Label::from_reference(v as f32)
        .ok_or_else(|| DataError::invalid(path, format!("{at} is {v}; expected 1, 0, -1 or NaN")))
}

/// The labels of a feature set (dense `labels`, or sparse `labels_index` + `labels_value`) as
/// per-category lists of known rows, and the category names.
fn read_labels(
    path: &Path,
    file: &mut std::fs::File,
    header: &Header,
    n: usize,
) -> Result<(SparseLabels, Option<Vec<String>>)> {
    let (dense, sparse) = (header.tensors.contains_key("labels"), header.tensors.contains_key("labels_index"));
    crate::tensors::check_one_label_form(path, dense, sparse)?;
    if dense {
        read_dense_labels(path, file, header, n)
    } else if header.tensors.contains_key("labels_index") {
        read_sparse_labels(path, file, header, n)
    } else {
        let mut names: Vec<&String> = header.tensors.keys().collect();
        names.sort();
        Err(DataError::invalid(
            path,
            format!(
                "no `labels` tensor (nor sparse `labels_index` + `labels_value`; tensors present: {names:?}); a feature set for CFT needs labels (1, 0, -1, NaN unknown)"
            ),
        ))
    }
}

/// Dense labels: tensor `labels` `[n, C]`.
fn read_dense_labels(
    path: &Path,
    file: &mut std::fs::File,
    header: &Header,
    n: usize,
) -> Result<(SparseLabels, Option<Vec<String>>)> {
    let le = tensor(path, header, "labels", 2)?;
    let c = le.shape[1];
    if le.shape[0] != n {
        return Err(DataError::invalid(
            path,
            format!(
                "tensor `labels` has {} rows but `features` has {n}: one label row per feature row is required",
                le.shape[0]
            ),
        ));
    }
    if c == 0 {
        return Err(DataError::invalid(path, format!("tensor `labels` has shape [{n}, 0]: no category")));
    }
    let mut per_category = vec![KnownSamples::default(); c];
    stream_values(path, file, header, "labels", |at, values| {
        for (k, &v) in values.iter().enumerate() {
            let (row, col) = ((at + k) / c, (at + k) % c);
            match label_at(path, v, format!("tensor `labels` row {row}, column {col}"))? {
                Label::Positive => per_category[col].positives.push(row as u32),
                Label::Negative => per_category[col].negatives.push(row as u32),
                Label::Uncertain | Label::Unknown => {}
            }
        }
        Ok(())
    })?;
    Ok((SparseLabels { n_samples: n, per_category }, categories(path, header, Some(c))?))
}

/// Sparse labels: `labels_index` `[k, 2]` and `labels_value` `[k]`, `categories` metadata.
fn read_sparse_labels(
    path: &Path,
    file: &mut std::fs::File,
    header: &Header,
    n: usize,
) -> Result<(SparseLabels, Option<Vec<String>>)> {
    let ie = tensor(path, header, "labels_index", 2)?;
    let ve = tensor(path, header, "labels_value", 1)?;
    let k = ie.shape[0];
    if ie.shape[1] != 2 || ve.shape[0] != k || !matches!(ie.dtype.as_str(), "I64" | "I32") {
        return Err(DataError::invalid(
            path,
            format!(
                "tensors `labels_index` {} {:?} and `labels_value` {:?}: expected [k, 2] integers and [k] values",
                ie.dtype, ie.shape, ve.shape
            ),
        ));
    }
    let names = categories(path, header, None)?.ok_or_else(|| {
        DataError::invalid(path, "sparse labels need metadata `categories` (the number of label columns)")
    })?;
    let c = names.len();
    let mut index = Vec::with_capacity(2 * k);
    stream_values(path, file, header, "labels_index", |_, v| {
        index.extend_from_slice(v);
        Ok(())
    })?;
    let mut per_category = vec![KnownSamples::default(); c];
    stream_values(path, file, header, "labels_value", |at, values| {
        for (j, &v) in values.iter().enumerate() {
            let e = at + j;
            let (row, col) = (index[2 * e], index[2 * e + 1]);
            if !(0.0..n as f64).contains(&row) || !(0.0..c as f64).contains(&col) {
                return Err(DataError::invalid(
                    path,
                    format!("tensor `labels_index` entry {e} is ({row}, {col}); rows are 0..{n}, categories 0..{c}"),
                ));
            }
            match label_at(path, v, format!("tensor `labels_value` entry {e}"))? {
                Label::Positive => per_category[col as usize].positives.push(row as u32),
                Label::Negative => per_category[col as usize].negatives.push(row as u32),
                Label::Uncertain | Label::Unknown => {}
            }
        }
        Ok(())
    })?;
    for (cat, known) in per_category.iter_mut().enumerate() {
        known.positives.sort_unstable();
        known.negatives.sort_unstable();
        let twice = known.positives.windows(2).chain(known.negatives.windows(2)).find(|w| w[0] == w[1]);
        let both = || known.positives.iter().copied().find(|s| known.negatives.binary_search(s).is_ok());
        if let Some(row) = twice.map(|w| w[0]).or_else(both) {
            return Err(DataError::invalid(
                path,
                format!("tensor `labels_index` gives row {row}, category {cat} (`{}`) more than once", names[cat]),
            ));
        }
    }
    Ok((SparseLabels { n_samples: n, per_category }, Some(names)))
}

/// Writes a feature set with sparse labels (the layout [`read_labelled_set`] reads), the `n × d`
/// f32 features produced block by block by `rows(first_row, block)` (`block` holds whole rows),
/// so the features are never held whole. Atomic: a temporary file, then a rename.
pub fn write_labelled_set(
    path: &Path,
    (n, d): (usize, usize),
    labels: &SparseLabels,
    categories: &[String],
    mut rows: impl FnMut(usize, &mut [f32]),
) -> Result<()> {
    let mut entries: Vec<(usize, usize)> = labels
        .per_category
        .iter()
        .enumerate()
        .flat_map(|(c, k)| k.positives.iter().chain(&k.negatives).map(move |&s| (s as usize, c)))
        .collect();
    entries.sort_unstable();
    let value = |&(s, c): &(usize, usize)| -> f32 {
        if labels.per_category[c].positives.binary_search(&(s as u32)).is_ok() {
            1.0
        } else {
            0.0
        }
    };
    let k = entries.len();
    let (feature_bytes, index_bytes, value_bytes) = (n * d * 4, k * 2 * 8, k * 4);
    let mut header = serde_json::json!({
        "__metadata__": {"categories": serde_json::to_string(categories).expect("strings")},
        "features": {"dtype": "F32", "shape": [n, d], "data_offsets": [0, feature_bytes]},
        "labels_index": {"dtype": "I64", "shape": [k, 2], "data_offsets": [feature_bytes, feature_bytes + index_bytes]},
        "labels_value": {"dtype": "F32", "shape": [k], "data_offsets": [feature_bytes + index_bytes, feature_bytes + index_bytes + value_bytes]},
    })
    .to_string()
    .into_bytes();
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        let mut f = std::io::BufWriter::with_capacity(8 << 20, std::fs::File::create(&tmp)?);
        f.write_all(&(header.len() as u64).to_le_bytes())?;
        f.write_all(&header)?;
        let per_block = ((4usize << 20) / (4 * d.max(1))).max(1);
        let mut block = vec![0f32; per_block * d];
        for first in (0..n).step_by(per_block) {
            let len = per_block.min(n - first);
            rows(first, &mut block[..len * d]);
            for v in &block[..len * d] {
                f.write_all(&v.to_le_bytes())?;
            }
        }
        for &(s, c) in &entries {
            f.write_all(&(s as i64).to_le_bytes())?;
            f.write_all(&(c as i64).to_le_bytes())?;
        }
        for e in &entries {
            f.write_all(&value(e).to_le_bytes())?;
        }
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        DataError::io(path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensors::{read_feature_set, write_feature_set, FeatureSet};
    use cft_core::PartialLabels;

    fn labels(n: usize, c: usize) -> PartialLabels {
        let l = (0..n * c)
            .map(|i| match (i * 7 + i / 5) % 4 {
                0 => Label::Positive,
                1 => Label::Negative,
                2 => Label::Uncertain,
                _ => Label::Unknown,
            })
            .collect();
        PartialLabels::new(n, c, l).unwrap()
    }

    #[test]
    fn dense_and_sparse_layouts_read_as_the_in_memory_reader_does() {
        let dir = tempfile::tempdir().unwrap();
        let (n, d, c) = (1000, 7, 3);
        let x = Matrix::new(n, d, (0..n * d).map(|i| (i as f32 * 0.37).sin()).collect()).unwrap();
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let dense = FeatureSet {
            features: x.clone(),
            labels: Some(labels(n, c)),
            categories: Some(names.clone()),
            paths: None,
        };
        let p = dir.path().join("dense.safetensors");
        write_feature_set(&p, &dense, cft_core::Precision::F16).unwrap();
        let whole = read_feature_set(&p).unwrap();
        let want = whole.labels.unwrap().resolve_uncertain(&[cft_core::UncertainPolicy::Ignore]).to_sparse();
        let got = read_labelled_set(&p).unwrap();
        assert_eq!((&got.features, &got.labels, &got.categories), (&whole.features, &want, &Some(names.clone())));

        let q = dir.path().join("sparse.safetensors");
        write_labelled_set(&q, (n, d), &want, &names, |first, block| {
            for (k, row) in block.chunks_mut(d).enumerate() {
                row.copy_from_slice(x.row(first + k));
            }
        })
        .unwrap();
        let sparse = read_labelled_set(&q).unwrap();
        assert_eq!((&sparse.features, &sparse.labels), (&x, &want));
        // Python's safetensors reads it: the header parses with the crate's own reader too.
        let bytes = std::fs::read(&q).unwrap();
        assert!(safetensors::SafeTensors::deserialize(&bytes).is_ok());
    }

    #[test]
    fn a_non_finite_feature_is_refused_naming_its_row_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nan.safetensors");
        let labels = SparseLabels { n_samples: 3000, per_category: vec![KnownSamples::default()] };
        // 3000 × 1000 f32: more than one 8 MB block, the bad value in the second.
        write_labelled_set(&p, (3000, 1000), &labels, &["a".to_string()], |first, block| {
            for (k, v) in block.iter_mut().enumerate() {
                *v = if first * 1000 + k == 2500 * 1000 + 7 { f32::NAN } else { 0.5 };
            }
        })
        .unwrap();
        let e = read_labelled_set(&p).unwrap_err().to_string();
        assert!(e.contains("tensor `features` row 2500, column 7 is NaN: features must be finite"), "{e}");
    }

    #[test]
    fn bad_sparse_labels_are_refused_naming_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, index: Vec<i64>, values: Vec<f32>| {
            let p = dir.path().join(name);
            let k = values.len();
            let x: Vec<u8> = (0..4 * 2).flat_map(|i| (i as f32).to_le_bytes()).collect();
            let idx: Vec<u8> = index.iter().flat_map(|v| v.to_le_bytes()).collect();
            let val: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            let views = vec![
                ("features", safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![4, 2], &x).unwrap()),
                (
                    "labels_index",
                    safetensors::tensor::TensorView::new(safetensors::Dtype::I64, vec![k, 2], &idx).unwrap(),
                ),
                ("labels_value", safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![k], &val).unwrap()),
            ];
            let meta = HashMap::from([("categories".to_string(), "[\"a\", \"b\"]".to_string())]);
            std::fs::write(&p, safetensors::tensor::serialize(views, Some(meta)).unwrap()).unwrap();
            read_labelled_set(&p).unwrap_err().to_string()
        };
        let e = write("range.safetensors", vec![0, 1, 4, 0], vec![1.0, 0.0]);
        assert!(e.contains("`labels_index` entry 1 is (4, 0); rows are 0..4, categories 0..2"), "{e}");
        let e = write("value.safetensors", vec![0, 1, 3, 0], vec![1.0, 0.5]);
        assert!(e.contains("`labels_value` entry 1 is 0.5; expected 1, 0, -1 or NaN"), "{e}");
        let e = write("twice.safetensors", vec![2, 1, 2, 1], vec![1.0, 0.0]);
        assert!(e.contains("gives row 2, category 1 (`b`) more than once"), "{e}");
    }
}
