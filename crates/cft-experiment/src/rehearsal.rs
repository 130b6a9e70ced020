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

/// Category names: COCO's 80 (from `coco_names`, a JSON list of `{id, name}` objects as in
/// the annotation files), or `class 0000` … for OpenImages.
fn names(shape: Shape, coco_names: Option<&Path>) -> Result<Vec<String>> {
    match (shape, coco_names) {
        (Shape::Coco, Some(path)) => {
            #[derive(serde::Deserialize)]
            struct Category {
                name: String,
            }
            let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
            let list: Vec<Category> = serde_json::from_str(&text)
                .with_context(|| format!("{}: a JSON list of categories", path.display()))?;
            crate::error::ensure!(list.len() == 80, "{}: {} categories, COCO has 80", path.display(), list.len());
            Ok(list.into_iter().map(|c| c.name).collect())
        }
        _ => Ok((0..shape.categories()).map(|k| format!("class {k:04}")).collect()),
    }
}

/// Writes `train.safetensors` and `test.safetensors` (and, for OpenImages, `head.safetensors`,
/// the base classifier) into `dir`; returns their paths. `sizes` overrides the split sizes;
/// `on_rows(n)` reports progress in rows written.
pub fn write_shaped(
    shape: Shape,
    dir: &Path,
    sizes: Sizes,
    coco_names: Option<&Path>,
    seed: u64,
    on_rows: &(dyn Fn(usize) + Sync),
) -> Result<Vec<PathBuf>> {
    let categories = names(shape, coco_names)?;
    let c = categories.len();
    let mut written = Vec::new();
    for (k, (split, file)) in shape.splits(sizes).iter().zip(["train", "test"]).enumerate() {
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
        cft_data::write_labelled_set(&path, (split.rows, FEATURES), &labels, &categories, |first, block| {
            let n = block.len() / FEATURES;
            fill_features(first, block, &positives[first..first + n], split_seed);
            on_rows(n);
        })?;
        written.push(path);
    }
    if shape == Shape::OpenImages {
        let head = trained_head(c, seed);
        let path = dir.join("head.safetensors");
        cft_data::write_head(&path, &head, Some(&categories))?;
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
        let coco = write_shaped(Shape::Coco, dir.path(), small(5_000), None, 7, &|_| {}).unwrap();
        let set = cft_data::read_labelled_set(&coco[0]).unwrap();
        assert_eq!(set.labels.known_fraction(), 1.0);
        let positives: usize = set.labels.per_category.iter().map(|k| k.positives.len()).sum();
        let per_image = positives as f64 / 5_000.0;
        assert!((2.7..3.3).contains(&per_image), "{per_image} positives per image");
    }
}
