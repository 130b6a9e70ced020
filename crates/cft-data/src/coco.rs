//! MS-COCO 2014 (`annotations/instances_{train,val}2014.json`) as the CFT reference reads it
//! with pycocotools:
//!
//! * images in `getImgIds()` order — pycocotools returns `self.imgs.keys()`, i.e. **the order of
//!   the file's `images` array** (not ascending ids: the official train2014 file starts with id
//!   57870); [`ImageOrder::AscendingId`] is available for other conventions;
//! * categories in `getCatIds()` order (the file's order, ascending ids 1..90 with gaps in the
//!   official files) → indices 0..79;
//! * an image's positives are the categories of its annotations, every other category is
//!   negative (also for images without annotations); paths `{train,val}2014/<file_name>`.
//!
//! The file is parsed from a buffered reader into compact records (segmentations are skipped
//! without being stored), so memory stays near the size of the label table, not of the JSON.

use crate::error::{DataError, Result};
use crate::image_list::LabelledImages;
use cft_core::{KnownSamples, SparseLabels};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

/// Image order of the adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageOrder {
    /// pycocotools `getImgIds()`: the file's order (the reference).
    #[default]
    File,
    /// Ascending image id.
    AscendingId,
}

#[derive(Deserialize)]
struct RawImage {
    id: u64,
    file_name: String,
}

#[derive(Deserialize)]
struct RawAnnotation {
    #[serde(default)]
    id: Option<u64>,
    image_id: u64,
    category_id: u64,
}

#[derive(Deserialize)]
struct RawCategory {
    id: u64,
    name: String,
}

#[derive(Deserialize)]
struct RawInstances {
    images: Vec<RawImage>,
    #[serde(default)]
    annotations: Vec<RawAnnotation>,
    categories: Vec<RawCategory>,
    // Other keys (info, licenses) are skipped by serde without being stored.
}

/// What the COCO adapter read besides the labels.
#[derive(Debug, Clone, PartialEq)]
pub struct CocoSplit {
    /// Images, categories and full labels.
    pub images: LabelledImages,
    /// COCO category ids in index order.
    pub category_ids: Vec<u64>,
    /// Annotations read.
    pub annotations: usize,
    /// Annotations whose image is not in `images` (pycocotools ignores them too).
    pub orphan_annotations: usize,
}

/// The split name of an instances file (`instances_train2014.json` → `train2014`), used as the
/// image folder.
pub fn image_folder(path: &Path) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    let s = stem.strip_prefix("instances_").unwrap_or(&stem);
    s.split('_').next().unwrap_or(s).to_string()
}

/// Consumes a UTF-8 byte-order mark at the start of `reader`, if there is one.
fn skip_bom<R: std::io::BufRead>(reader: &mut R) -> std::io::Result<()> {
    if reader.fill_buf()?.starts_with(b"\xef\xbb\xbf") {
        reader.consume(3);
    }
    Ok(())
}

/// Reads an instances JSON file.
pub fn read_coco(path: &Path, order: ImageOrder) -> Result<CocoSplit> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    if file.metadata().map(|m| m.len() == 0).unwrap_or(false) {
        return Err(DataError::invalid(path, "empty file: expected a COCO instances JSON object"));
    }
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    skip_bom(&mut reader).map_err(|e| DataError::io(path, e))?;
    let raw: RawInstances = serde_json::from_reader(reader).map_err(|e| {
        let field = if e.is_eof() { "json (truncated)" } else { "json" };
        DataError::parse(path, e.line(), field, e.to_string())
    })?;
    from_raw(path, raw, order)
}

/// Parses instances JSON held in memory (the fuzz target's entry point).
pub fn parse_coco(path: &Path, bytes: &[u8], order: ImageOrder) -> Result<CocoSplit> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let raw: RawInstances =
        serde_json::from_slice(bytes).map_err(|e| DataError::parse(path, e.line(), "json", e.to_string()))?;
    from_raw(path, raw, order)
}

fn from_raw(path: &Path, raw: RawInstances, order: ImageOrder) -> Result<CocoSplit> {
    let folder = image_folder(path);
    let mut cat_index = HashMap::with_capacity(raw.categories.len());
    let mut cat_names: HashMap<&str, usize> = HashMap::with_capacity(raw.categories.len());
    for (i, c) in raw.categories.iter().enumerate() {
        if cat_index.insert(c.id, i).is_some() {
            return Err(DataError::parse(
                path,
                0,
                format!("categories[{i}].id"),
                format!("duplicate category id {}", c.id),
            ));
        }
        // Names label the columns of every table and head: two columns of one name would mix.
        if let Some(first) = cat_names.insert(c.name.as_str(), i) {
            return Err(DataError::parse(
                path,
                0,
                format!("categories[{i}].name"),
                format!("duplicate category name `{}` (also categories[{first}])", c.name),
            ));
        }
    }
    if raw.categories.is_empty() {
        return Err(DataError::invalid(path, "no categories"));
    }
    let mut images = raw.images;
    if order == ImageOrder::AscendingId {
        images.sort_by_key(|im| im.id);
    }
    let mut img_index = HashMap::with_capacity(images.len());
    for (i, im) in images.iter().enumerate() {
        if img_index.insert(im.id, i as u32).is_some() {
            return Err(DataError::parse(path, 0, format!("images[{i}].id"), format!("duplicate image id {}", im.id)));
        }
    }
    let c = raw.categories.len();
    let n = images.len();
    // Positive flags, one bit-set row per image.
    let mut positive = vec![false; n * c];
    let mut orphans = 0;
    for (a, ann) in raw.annotations.iter().enumerate() {
        let Some(&k) = cat_index.get(&ann.category_id) else {
            return Err(DataError::parse(
                path,
                0,
                format!("annotations[{a}].category_id"),
                format!("unknown category id {} (annotation id {:?})", ann.category_id, ann.id),
            ));
        };
        match img_index.get(&ann.image_id) {
            Some(&i) => positive[i as usize * c + k] = true,
            None => orphans += 1,
        }
    }
    let mut per_category = vec![KnownSamples::default(); c];
    for i in 0..n {
        for (k, known) in per_category.iter_mut().enumerate() {
            if positive[i * c + k] {
                known.positives.push(i as u32);
            } else {
                known.negatives.push(i as u32);
            }
        }
    }
    Ok(CocoSplit {
        images: LabelledImages {
            ids: images.iter().map(|im| im.id.to_string()).collect(),
            paths: images.iter().map(|im| format!("{folder}/{}", im.file_name)).collect(),
            categories: raw.categories.iter().map(|c| c.name.clone()).collect(),
            labels: SparseLabels { n_samples: n, per_category },
        },
        category_ids: raw.categories.iter().map(|c| c.id).collect(),
        annotations: raw.annotations.len(),
        orphan_annotations: orphans,
    })
}

/// Writes a synthetic instances file of COCO 2014 train's size and shape (for benchmarks):
/// `images` images, `annotations` annotations with 20-point polygons, 80 categories with the
/// official id gaps. Deterministic.
pub fn write_synthetic(path: &Path, images: usize, annotations: usize) -> Result<()> {
    use std::io::Write;
    let file = std::fs::File::create(path).map_err(|e| DataError::io(path, e))?;
    let mut w = std::io::BufWriter::new(file);
    let ids: Vec<u64> = (1..=90).filter(|i| ![12, 26, 29, 30, 45, 66, 68, 69, 71, 83].contains(i)).collect();
    let io = |e| DataError::io(path, e);
    write!(w, "{{\"info\": {{\"description\": \"synthetic\"}}, \"images\": [").map_err(io)?;
    for i in 0..images {
        let id = (i as u64 * 7919) % 600_000 + 1;
        let sep = if i == 0 { "" } else { ", " };
        write!(w, "{sep}{{\"license\": 3, \"file_name\": \"COCO_train2014_{id:012}.jpg\", \"height\": 480, \"width\": 640, \"id\": {id}}}")
            .map_err(io)?;
    }
    write!(w, "], \"annotations\": [").map_err(io)?;
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for a in 0..annotations {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let img = ((state % images.max(1) as u64) * 7919) % 600_000 + 1;
        let cat = ids[(state >> 20) as usize % ids.len()];
        let sep = if a == 0 { "" } else { ", " };
        write!(w, "{sep}{{\"segmentation\": [[").map_err(io)?;
        for p in 0..20 {
            let v = ((state >> (p % 40)) % 64000) as f64 / 100.0;
            write!(w, "{}{v:.2}", if p == 0 { "" } else { ", " }).map_err(io)?;
        }
        write!(w, "]], \"area\": 1234.5, \"iscrowd\": 0, \"image_id\": {img}, \"bbox\": [1.0, 2.0, 30.5, 40.25], \"category_id\": {cat}, \"id\": {}}}", a + 1).map_err(io)?;
    }
    write!(w, "], \"categories\": [").map_err(io)?;
    for (k, id) in ids.iter().enumerate() {
        let sep = if k == 0 { "" } else { ", " };
        write!(w, "{sep}{{\"supercategory\": \"s\", \"id\": {id}, \"name\": \"category {id}\"}}").map_err(io)?;
    }
    write!(w, "]}}").map_err(io)?;
    w.flush().map_err(io)
}
