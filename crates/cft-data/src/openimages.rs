//! OpenImages V3 (2017-11 release): `classes-trainable.txt` (the 5000 trainable class MIDs),
//! `class-descriptions.csv` (MID, name; no header, quoted names with commas, mixed CRLF/LF),
//! and `{train,validation,test}/annotations-human.csv` (`ImageID,Source,LabelName,Confidence`).
//!
//! Human-verified labels only: Confidence 1 → positive, 0 → negative, anything else unknown;
//! labels of classes outside the trainable list are dropped; images appear in file order
//! with paths `{subset}/{ImageID}.jpg`; rows may come in any order (the official files are
//! sorted by ImageID, but a user's filtered or concatenated file need not be).
//!
//! The annotations file of the train subset has tens of millions of rows, so it is **streamed**
//! line by line into the sparse label form: memory is the image-id table plus one `u32` per
//! known label, never the file. (Polars' eager CSV reader would materialise the whole table,
//! and its streaming engine needs the lazy stack that this workspace keeps out of its build;
//! polars reads the small class-description table.)

use crate::csvio::read_string_table_opts;
use crate::error::{DataError, Result};
use crate::image_list::LabelledImages;
use cft_core::{KnownSamples, SparseLabels};
use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

/// The header of `annotations-human.csv`.
pub const ANNOTATIONS_HEADER: &str = "ImageID,Source,LabelName,Confidence";

/// Reads `classes-trainable.txt`: one MID per line (CR/LF tolerated, blank lines ignored).
pub fn read_trainable(path: &Path) -> Result<Vec<String>> {
    let text = crate::fsutil::read_to_string(path)?;
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let mid = line.trim();
        if mid.is_empty() {
            continue;
        }
        if mid.contains([',', ' ', '"']) || !mid.starts_with('/') {
            return Err(DataError::parse(path, i + 1, "MID", format!("`{mid}` is not a class MID like /m/0abc")));
        }
        if !seen.insert(mid.to_string()) {
            return Err(DataError::parse(path, i + 1, "MID", format!("duplicate class `{mid}`")));
        }
        out.push(mid.to_string());
    }
    if out.is_empty() {
        return Err(DataError::invalid(path, "no classes"));
    }
    Ok(out)
}

/// Reads `class-descriptions.csv` (MID → display name) with polars.
pub fn read_class_descriptions(path: &Path) -> Result<HashMap<String, String>> {
    let t = read_string_table_opts(path, false)?;
    if t.columns.len() != 2 {
        return Err(DataError::parse(path, 1, "row", format!("{} columns, expected 2 (MID,name)", t.columns.len())));
    }
    let mut out = HashMap::with_capacity(t.rows);
    for r in 0..t.rows {
        let mid = t.columns[0][r].clone().ok_or_else(|| DataError::parse(path, r + 1, "MID", "empty"))?;
        let mid = mid.trim_start_matches('\u{feff}').to_string();
        if !mid.starts_with('/') {
            return Err(DataError::parse(path, r + 1, "MID", format!("`{mid}` is not a class MID like /m/0abc")));
        }
        if out.contains_key(&mid) {
            return Err(DataError::parse(path, r + 1, "MID", format!("duplicate class `{mid}`")));
        }
        let name = t.columns[1][r].clone().unwrap_or_default();
        out.insert(mid, name);
    }
    Ok(out)
}

/// Splits one CSV line into at most `N` fields (double quotes honoured).
fn split_fields(line: &str) -> Vec<String> {
    if !line.contains('"') {
        return line.split(',').map(str::to_string).collect();
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(ch) = chars.next() {
        match (ch, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Statistics of a streamed annotations file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Data rows read.
    pub rows: u64,
    /// Rows whose class is not trainable (dropped).
    pub untrainable: u64,
    /// Rows with a confidence other than 0 or 1 (unknown).
    pub other_confidence: u64,
    /// (image, class) pairs given both 1 and 0: left unknown.
    pub conflicts: u64,
    /// Bytes read.
    pub bytes: u64,
}

/// Streams `annotations-human.csv` of `subset` into sparse labels over `classes` (trainable
/// MIDs in index order). `progress(bytes)` is called every 2^20 rows.
pub fn read_annotations(
    path: &Path,
    subset: &str,
    classes: &[String],
    progress: &dyn Fn(u64),
) -> Result<(LabelledImages, StreamStats)> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    read_annotations_from(path, std::io::BufReader::with_capacity(1 << 20, file), subset, classes, progress)
}

/// [`read_annotations`] from any reader (`path` names it in errors; the fuzz target's entry).
pub fn read_annotations_from<R: BufRead>(
    path: &Path,
    mut reader: R,
    subset: &str,
    classes: &[String],
    progress: &dyn Fn(u64),
) -> Result<(LabelledImages, StreamStats)> {
    let class_index: HashMap<&str, u32> = classes.iter().enumerate().map(|(i, c)| (c.as_str(), i as u32)).collect();
    let mut per_category = vec![KnownSamples::default(); classes.len()];
    let mut image_index: HashMap<String, u32> = HashMap::new();
    let mut ids: Vec<String> = Vec::new();
    let mut stats = StreamStats::default();
    let mut buf = Vec::with_capacity(256);
    let io = |e| DataError::io(path, e);
    let mut line_no = 0usize;
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        line_no += 1;
        stats.bytes += n as u64;
        let line = std::str::from_utf8(&buf)
            .map_err(|_| DataError::parse(path, line_no, "row", "not valid UTF-8"))?
            .trim_end_matches(['\n', '\r']);
        if line_no == 1 {
            let header = line.trim_start_matches('\u{feff}');
            if header != ANNOTATIONS_HEADER {
                return Err(DataError::parse(
                    path,
                    1,
                    "header",
                    format!("`{header}`, expected `{ANNOTATIONS_HEADER}`"),
                ));
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        stats.rows += 1;
        if stats.rows % (1 << 20) == 0 {
            progress(stats.bytes);
        }
        let f = split_fields(line);
        if f.len() != 4 {
            return Err(DataError::parse(
                path,
                line_no,
                "row",
                format!("{} fields, expected 4 ({ANNOTATIONS_HEADER})", f.len()),
            ));
        }
        if f[0].is_empty() {
            return Err(DataError::parse(path, line_no, "ImageID", "empty"));
        }
        let conf: f64 = f[3]
            .trim()
            .parse()
            .map_err(|_| DataError::parse(path, line_no, "Confidence", format!("`{}` is not a number", f[3])))?;
        let img = match image_index.get(f[0].as_str()) {
            Some(&i) => i,
            None => {
                let i = ids.len() as u32;
                image_index.insert(f[0].clone(), i);
                ids.push(f[0].clone());
                i
            }
        };
        let Some(&k) = class_index.get(f[2].as_str()) else {
            stats.untrainable += 1;
            continue;
        };
        let positive = if conf == 1.0 {
            true
        } else if conf == 0.0 {
            false
        } else {
            stats.other_confidence += 1;
            continue;
        };
        let known = &mut per_category[k as usize];
        if positive {
            known.positives.push(img);
        } else {
            known.negatives.push(img);
        }
    }
    if line_no == 0 {
        return Err(DataError::invalid(path, format!("empty file: expected the header `{ANNOTATIONS_HEADER}`")));
    }
    // Repeated rows (other sources) agree or conflict, wherever they are in the file: agreeing
    // repeats count once, and an (image, class) pair given both 1 and 0 becomes unknown.
    for k in &mut per_category {
        k.positives.sort_unstable();
        k.positives.dedup();
        k.negatives.sort_unstable();
        k.negatives.dedup();
        let both: Vec<u32> = intersect_sorted(&k.positives, &k.negatives);
        if !both.is_empty() {
            stats.conflicts += both.len() as u64;
            k.positives.retain(|i| both.binary_search(i).is_err());
            k.negatives.retain(|i| both.binary_search(i).is_err());
        }
    }
    let paths = ids.iter().map(|id| format!("{subset}/{id}.jpg")).collect();
    let n = ids.len();
    Ok((
        LabelledImages {
            ids,
            paths,
            categories: classes.to_vec(),
            labels: SparseLabels { n_samples: n, per_category },
        },
        stats,
    ))
}

/// The values present in both sorted, duplicate-free lists.
fn intersect_sorted(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// Writes a synthetic `annotations-human.csv` of `rows` rows over `classes` (realistic shape:
/// ~8.4 labels per image, ids sorted, sources mixed, about 1 in 4 labels negative). Deterministic.
pub fn write_synthetic_annotations(path: &Path, rows: u64, classes: &[String]) -> Result<()> {
    use std::io::Write;
    let file = std::fs::File::create(path).map_err(|e| DataError::io(path, e))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let io = |e| DataError::io(path, e);
    writeln!(w, "{ANNOTATIONS_HEADER}").map_err(io)?;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut image = 0u64;
    let mut r = 0;
    while r < rows {
        image += 1;
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let labels = 1 + state % 16;
        let base = (state >> 16) % classes.len() as u64;
        for j in 0..labels.min(rows - r) {
            let s = state.rotate_left(j as u32 * 7);
            // Distinct classes per image (7·j < 5000).
            let class = &classes[((base + 7 * j) % classes.len() as u64) as usize];
            let source = if s & 1 == 0 { "verification" } else { "crowdsource-verification" };
            let conf = if (s >> 8).is_multiple_of(4) { 0 } else { 1 };
            writeln!(w, "{image:016x},{source},{class},{conf}").map_err(io)?;
            r += 1;
        }
    }
    w.flush().map_err(io)
}
