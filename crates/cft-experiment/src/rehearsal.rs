//! Synthetic feature sets shaped like the paper's two large datasets, to rehearse `cft run` at
//! their size (README "The paper's size"). Not for results: for time and memory.
//!
//! * **partial COCO** ([`Shape::Coco`]): 82,081 training and 40,137 test images × 2048
//!   features (ResNet-101's pooled output), 80 categories (COCO's names), full labels for the
//!   reference's label dropping;
//! * **OpenImages V3** ([`Shape::OpenImages`]): 1,000,000 training and 125,436 test images ×
//!   2048, 5,000 classes, sparse human-verified labels at V3's density (its README's Table 1:
//!   20,868,755 verified labels, 9,741,876 positive, on 9,011,219 training images; 1,667,399,
//!   1,105,052 positive, on the 125,436 test images), and a trained classifier as the base
//!   model (the paper repairs its network's own head).
//!
//! Features are non-negative like post-ReLU pooled CNN features, with a weak linear signal per
//! category in a few dimensions. Category frequencies follow a Zipf profile (a few common
//! categories, a long tail). Every row is drawn from its own random stream, so a block of rows
//! is generated on its own (in parallel, and written without holding the whole matrix).

use crate::error::{Context, Result};
use cft_core::{KnownSamples, LinearHead, Matrix, Pcg64, SparseLabels};
use cft_data::bench::gib;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

cft_core::choice! {
    /// Which dataset the synthetic data is shaped like.
    pub enum Shape {
        /// Partial MS-COCO 2014.
        Coco = "coco",
        /// OpenImages V3.
        OpenImages = "openimages",
    }
}

/// One split's size and label density.
#[derive(Debug, Clone, Copy)]
struct SplitShape {
    rows: usize,
    /// Mean verified positives per image (OpenImages) — COCO: all labels known.
    positives: f64,
    /// Mean verified negatives per image (OpenImages only).
    negatives: f64,
}

/// Split sizes other than the dataset's (smaller rehearsals, tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct Sizes {
    /// Training images.
    pub train: Option<usize>,
    /// Test images.
    pub test: Option<usize>,
}

/// The feature dimension of ResNet-101's pooled output.
pub const FEATURES: usize = 2048;

impl Shape {
    /// Number of categories.
    pub fn categories(self) -> usize {
        match self {
            Shape::Coco => 80,
            Shape::OpenImages => 5000,
        }
    }

    fn splits(self, rows: Sizes) -> [SplitShape; 2] {
        let [train, test] = self.splits_full();
        [
            SplitShape { rows: rows.train.unwrap_or(train.rows), ..train },
            SplitShape { rows: rows.test.unwrap_or(test.rows), ..test },
        ]
    }

    fn splits_full(self) -> [SplitShape; 2] {
        match self {
            Shape::Coco => [
                SplitShape { rows: 82_081, positives: 0.0, negatives: 0.0 },
                SplitShape { rows: 40_137, positives: 0.0, negatives: 0.0 },
            ],
            Shape::OpenImages => [
                SplitShape {
                    rows: 1_000_000,
                    positives: 9_741_876.0 / 9_011_219.0,
                    negatives: 11_126_879.0 / 9_011_219.0,
                },
                SplitShape { rows: 125_436, positives: 1_105_052.0 / 125_436.0, negatives: 562_347.0 / 125_436.0 },
            ],
        }
    }

    /// The dataset's name in messages.
    pub fn label(self) -> &'static str {
        match self {
            Shape::Coco => "partial COCO 2014-shaped",
            Shape::OpenImages => "OpenImages V3-shaped",
        }
    }
}

/// Zipf weights `1/(k+1)^s` of `c` categories, as cumulative sums (for drawing) and rates.
fn zipf(c: usize, s: f64) -> Vec<f64> {
    (0..c).map(|k| 1.0 / ((k + 1) as f64).powf(s)).collect()
}

/// The categories of row `row` of a split: (category, positive) pairs, from the row's own stream.
fn row_labels(
    shape: Shape,
    split: &SplitShape,
    weights: &[f64],
    cumulative: &[f64],
    rng: &mut Pcg64,
) -> Vec<(usize, bool)> {
    match shape {
        // COCO: every label known; category k positive with rate 0.5/(k+1)^0.9 (3.0 per image).
        Shape::Coco => weights.iter().enumerate().map(|(k, w)| (k, rng.random() < 0.5 * w)).collect(),
        // OpenImages: a few verified labels per image, classes drawn by frequency.
        Shape::OpenImages => {
            let total = *cumulative.last().expect("classes");
            let draw = |rng: &mut Pcg64| {
                let u = rng.random() * total;
                cumulative.partition_point(|&c| c < u).min(weights.len() - 1)
            };
            let count = |mean: f64, rng: &mut Pcg64| {
                // Binomial over 2·⌈mean⌉ tries: the mean, a modest spread.
                let tries = 2 * mean.ceil() as usize;
                (0..tries).filter(|_| rng.random() < mean / tries as f64).count()
            };
            let (np, nn) = (count(split.positives, rng), count(split.negatives, rng));
            let mut out: Vec<(usize, bool)> = Vec::with_capacity(np + nn);
            for (n, y) in [(np, true), (nn, false)] {
                for _ in 0..n {
                    let k = draw(rng);
                    if !out.iter().any(|&(c, _)| c == k) {
                        out.push((k, y));
                    }
                }
            }
            out
        }
    }
}

/// Fills `block` (whole rows from `first`) with the features of rows whose positive
/// categories are `positives[row - first]`.
fn fill_features(first: usize, block: &mut [f32], positives: &[Vec<usize>], seed: u64) {
    block.par_chunks_mut(FEATURES).enumerate().for_each(|(k, row)| {
        let mut rng = Pcg64::for_stream(seed ^ 0xF00D, (first + k) as u64);
        for v in row.iter_mut() {
            let u = rng.random() as f32;
            *v = if u < 0.5 { 0.0 } else { 2.0 * (u - 0.5) };
        }
        for &cat in &positives[k] {
            for j in 0..4 {
                row[(cat * 4 + j) % FEATURES] += 0.5;
            }
        }
    });
}

/// Labels of every row of a split, drawn row by row (stream per row).
fn split_labels(shape: Shape, split: &SplitShape, seed: u64) -> Vec<Vec<(usize, bool)>> {
    let weights = zipf(shape.categories(), if shape == Shape::Coco { 0.9 } else { 1.0 });
    let cumulative: Vec<f64> = weights
        .iter()
        .scan(0.0, |s, w| {
            *s += w;
            Some(*s)
        })
        .collect();
    (0..split.rows)
        .into_par_iter()
        .map(|row| {
            let mut rng = Pcg64::for_stream(seed, row as u64);
            row_labels(shape, split, &weights, &cumulative, &mut rng)
        })
        .collect()
}

/// Category names: from `file` when given — a JSON list of `{id, name, …}` objects (or a COCO
/// instances file's `categories`, read by [`cft_data::inspect::category_names_from`]) (`datasets/rehearsal/coco2014_categories_80.json`), or a text file with one
/// name per line (OpenImages' `classes-trainable.txt`) — else `class 0000` …. The list must
/// hold exactly the dataset's number of categories, each named once.
fn names(shape: Shape, file: Option<&Path>) -> Result<Vec<String>> {
    let Some(path) = file else {
        return Ok((0..shape.categories()).map(|k| format!("class {k:04}")).collect());
    };
    let text = std::fs::read_to_string(path).with_context(|| format!("--categories {}", path.display()))?;
    let (names, unit): (Vec<String>, &str) = if text.trim_start_matches('\u{feff}').trim_start().starts_with(['[', '{'])
    {
        (cft_data::inspect::category_names_from(path)?, "entry")
    } else {
        (text.lines().map(|l| l.trim_end_matches('\r').to_string()).collect(), "line")
    };
    crate::error::ensure!(
        names.len() == shape.categories(),
        "--categories {}: {} names, {} data has {} categories",
        path.display(),
        names.len(),
        shape.label(),
        shape.categories()
    );
    let mut seen = std::collections::HashMap::new();
    for (k, name) in names.iter().enumerate() {
        crate::error::ensure!(
            !name.trim().is_empty() && !name.chars().any(char::is_control),
            "--categories {}: {unit} {}: {name:?} is not a category name (empty or with control characters)",
            path.display(),
            k + 1
        );
        if let Some(first) = seen.insert(name.as_str(), k) {
            crate::error::bail!(
                "--categories {}: {unit} {} names {name:?} again (first at {unit} {}); category names must differ",
                path.display(),
                k + 1,
                first + 1
            );
        }
    }
    Ok(names)
}

/// The files [`write_shaped`] writes into its folder.
pub fn output_names(shape: Shape) -> &'static [&'static str] {
    match shape {
        Shape::Coco => &["train.safetensors", "test.safetensors"],
        Shape::OpenImages => &["train.safetensors", "test.safetensors", "head.safetensors"],
    }
}

/// Bytes of memory and disk a [`write_shaped`] run needs: the labels of a split are held
/// row by row while its file is written (features are generated block by block).
fn needs(shape: Shape, splits: &[SplitShape; 2]) -> (u128, u128) {
    let mut memory = 0u128;
    let mut disk = 0u128;
    for split in splits {
        let known = match shape {
            Shape::Coco => shape.categories() as f64,
            Shape::OpenImages => split.positives + split.negatives,
        };
        let rows = split.rows as u128;
        let labels = (rows as f64 * known).ceil() as u128;
        // Row lists (24 B + 16 B a label), positives per row (24 B + 8 B), the per-category
        // index (4 B) and the writer's sorted entries (16 B).
        memory = memory.max(rows * 48 + labels * 44);
        disk += rows * FEATURES as u128 * 4 + labels * 20;
    }
    (memory, disk)
}

/// Writes `train.safetensors` and `test.safetensors` (and, for OpenImages, `head.safetensors`,
/// the base classifier) into `dir`; returns their paths. `sizes` overrides the split sizes;
/// `on_rows(n)` reports progress in rows written. Refused before any work: files that exist
/// already, another writer of `dir`, sizes beyond the memory or disk there is. Files are
/// written into a private folder inside `dir` and moved into place together at the end, so an
/// error or a kill leaves no partial set.
pub fn write_shaped(
    shape: Shape,
    dir: &Path,
    sizes: Sizes,
    names_file: Option<&Path>,
    seed: u64,
    on_rows: &(dyn Fn(usize) + Sync),
) -> Result<Vec<PathBuf>> {
    let splits = shape.splits(sizes);
    crate::error::ensure!(
        splits.iter().all(|s| s.rows > 0 && s.rows <= u32::MAX as usize),
        "--train-rows/--test-rows: each split needs 1 to {} images (image indices are 32-bit)",
        u32::MAX
    );
    cft_data::check_output_folder(cft_data::Named::new("--out", dir))?;
    let categories = names(shape, names_file)?;
    let (memory, disk) = needs(shape, &splits);
    if let Some(free) = cft_data::bench::available_memory() {
        crate::error::ensure!(
            memory <= free as u128,
            "--train-rows/--test-rows: these sizes need about {:.1} GiB of memory for the labels, and {:.1} GiB is available; write fewer rows",
            gib(memory),
            gib(free as u128)
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("--out {}", dir.display()))?;
    if let Some(free) = cft_data::bench::free_disk(dir) {
        crate::error::ensure!(
            disk <= free as u128,
            "--out {}: these sizes need about {:.1} GiB of disk, and {:.1} GiB is free there; write fewer rows or choose another --out",
            dir.display(),
            gib(disk),
            gib(free as u128)
        );
    }
    let _lock = cft_data::OutputLock::acquire(&dir.join("synthesize"))?;
    let finals: Vec<PathBuf> = output_names(shape).iter().map(|n| dir.join(n)).collect();
    for f in &finals {
        crate::error::ensure!(
            !f.exists(),
            "--out {}: {} exists; `cft data synthesize` never overwrites a feature set, so choose an empty folder or remove it",
            dir.display(),
            f.display()
        );
    }
    let staging = dir.join(format!(".synthesize.tmp-{}", std::process::id()));
    std::fs::create_dir_all(&staging).with_context(|| staging.display().to_string())?;
    let written = write_files(shape, &staging, &splits, &categories, seed, on_rows);
    let moved = written.and_then(|files| {
        for (from, to) in files.iter().zip(&finals) {
            std::fs::rename(from, to).with_context(|| to.display().to_string())?;
        }
        Ok(finals)
    });
    let _ = std::fs::remove_dir_all(&staging);
    moved
}

fn write_files(
    shape: Shape,
    dir: &Path,
    splits: &[SplitShape; 2],
    categories: &[String],
    seed: u64,
    on_rows: &(dyn Fn(usize) + Sync),
) -> Result<Vec<PathBuf>> {
    let c = categories.len();
    let mut written = Vec::new();
    for (k, (split, file)) in splits.iter().zip(["train", "test"]).enumerate() {
        let split_seed = seed.wrapping_add(k as u64 * 1_000_003);
        let rows = split_labels(shape, split, split_seed);
        let mut per_category = vec![KnownSamples::default(); c];
        for (i, labels) in rows.iter().enumerate() {
            for &(cat, y) in labels {
                let list = if y { &mut per_category[cat].positives } else { &mut per_category[cat].negatives };
                list.push(i as u32);
            }
        }
        let labels = SparseLabels { n_samples: split.rows, per_category };
        let positives: Vec<Vec<usize>> =
            rows.iter().map(|r| r.iter().filter(|&&(_, y)| y).map(|&(c, _)| c).collect()).collect();
        drop(rows);
        let path = dir.join(format!("{file}.safetensors"));
        cft_data::write_labelled_set(&path, (split.rows, FEATURES), &labels, categories, |first, block| {
            let n = block.len() / FEATURES;
            fill_features(first, block, &positives[first..first + n], split_seed);
            on_rows(n);
        })?;
        written.push(path);
    }
    if shape == Shape::OpenImages {
        let head = trained_head(c, seed);
        let path = dir.join("head.safetensors");
        cft_data::write_head(&path, &head, Some(categories))?;
        written.push(path);
    }
    Ok(written)
}

/// Total rows [`write_shaped`] writes (for a progress bar).
pub fn rows_to_write(shape: Shape, sizes: Sizes) -> usize {
    shape.splits(sizes).iter().map(|s| s.rows).sum()
}

/// A classifier that found each class's signal, imperfectly (noisy weights, a class-rate bias):
/// the network's own head that CFT repairs.
fn trained_head(c: usize, seed: u64) -> LinearHead {
    let mut rng = Pcg64::new(seed ^ 0x4EAD);
    let mut weight = Matrix::zeros(c, FEATURES);
    let mut bias = vec![0.0f32; c];
    for (cat, b) in bias.iter_mut().enumerate() {
        let row = weight.row_mut(cat);
        for v in row.iter_mut() {
            *v = rng.uniform(-0.02, 0.02) as f32;
        }
        for j in 0..4 {
            row[(cat * 4 + j) % FEATURES] += 0.15;
        }
        *b = -3.0;
    }
    LinearHead::new(weight, bias).expect("shape")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(train: usize) -> Sizes {
        Sizes { train: Some(train), test: Some(500) }
    }

    #[test]
    fn shaped_sets_have_the_datasets_sizes_and_densities() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_shaped(Shape::OpenImages, dir.path(), small(20_000), None, 7, &|_| {}).unwrap();
        let train = cft_data::read_labelled_set(&files[0]).unwrap();
        assert_eq!((train.features.rows(), train.features.cols(), train.labels.n_categories()), (20_000, 2048, 5000));
        let per_image = train.labels.known_count() as f64 / 20_000.0;
        let v3 = 20_868_755.0 / 9_011_219.0;
        assert!((per_image - v3).abs() < 0.1 * v3, "{per_image} verified labels per image, V3 has {v3:.2}");
        // Deterministic: the same seed writes the same bytes.
        let again = tempfile::tempdir().unwrap();
        write_shaped(Shape::OpenImages, again.path(), small(20_000), None, 7, &|_| {}).unwrap();
        for name in ["train.safetensors", "head.safetensors"] {
            assert_eq!(std::fs::read(dir.path().join(name)).unwrap(), std::fs::read(again.path().join(name)).unwrap());
        }
        let coco_dir = tempfile::tempdir().unwrap();
        let coco = write_shaped(Shape::Coco, coco_dir.path(), small(5_000), None, 7, &|_| {}).unwrap();
        let set = cft_data::read_labelled_set(&coco[0]).unwrap();
        assert_eq!(set.labels.known_fraction(), 1.0);
        let positives: usize = set.labels.per_category.iter().map(|k| k.positives.len()).sum();
        let per_image = positives as f64 / 5_000.0;
        assert!((2.7..3.3).contains(&per_image), "{per_image} positives per image");
    }

    fn refusal(r: Result<Vec<PathBuf>>) -> String {
        r.expect_err("refused").to_string()
    }

    #[test]
    fn existing_sets_are_never_overwritten_and_a_second_writer_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let test = dir.path().join("test.safetensors");
        std::fs::write(&test, b"a user's feature set").unwrap();
        let e = refusal(write_shaped(Shape::Coco, dir.path(), small(50), None, 1, &|_| {}));
        assert!(e.contains("test.safetensors exists") && e.contains("never overwrites"), "{e}");
        assert_eq!(std::fs::read(&test).unwrap(), b"a user's feature set");
        assert!(!dir.path().join("train.safetensors").exists(), "nothing written beside it");
        std::fs::remove_file(&test).unwrap();
        // Another live process holds the folder: refused, nothing written.
        let lock = dir.path().join("synthesize.lock");
        std::fs::write(&lock, "1\n").unwrap();
        let e = refusal(write_shaped(Shape::Coco, dir.path(), small(50), None, 1, &|_| {}));
        assert!(e.contains("another cft process (pid 1)"), "{e}");
        std::fs::remove_file(&lock).unwrap();
        let files = write_shaped(Shape::Coco, dir.path(), small(50), None, 1, &|_| {}).unwrap();
        assert_eq!(files.len(), 2);
        let left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".safetensors"))
            .collect();
        assert!(left.is_empty(), "no lock or staging folder left: {left:?}");
    }

    #[test]
    fn sizes_beyond_memory_or_disk_are_refused_before_any_allocation() {
        let dir = tempfile::tempdir().unwrap();
        let sizes = Sizes { train: Some(100_000_000_000), test: Some(10) };
        let e = refusal(write_shaped(Shape::OpenImages, dir.path(), sizes, None, 0, &|_| {}));
        assert!(e.contains("--train-rows/--test-rows"), "{e}");
        let sizes = Sizes { train: Some(3_000_000_000), test: Some(10) };
        let e = refusal(write_shaped(Shape::OpenImages, dir.path(), sizes, None, 0, &|_| {}));
        assert!(e.contains("GiB"), "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing written");
    }

    #[test]
    fn category_lists_are_read_for_both_shapes_and_repeated_names_refused() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("classes.txt");
        let mut lines: Vec<String> = (0..5000).map(|k| format!("/m/{k:05}")).collect();
        std::fs::write(&list, lines.join("\n") + "\n").unwrap();
        assert_eq!(names(Shape::OpenImages, Some(&list)).unwrap()[4999], "/m/04999");
        lines[7] = lines[3].clone();
        std::fs::write(&list, lines.join("\n")).unwrap();
        let e = names(Shape::OpenImages, Some(&list)).unwrap_err().to_string();
        assert!(e.contains("line 8 names \"/m/00003\" again (first at line 4)"), "{e}");
        let e = names(Shape::Coco, Some(&list)).unwrap_err().to_string();
        assert!(e.contains("5000 names") && e.contains("80 categories"), "{e}");
        let coco = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/rehearsal/coco2014_categories_80.json");
        assert_eq!(names(Shape::Coco, Some(&coco)).unwrap()[0], "person");
    }
}
