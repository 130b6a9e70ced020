//! `cft data inspect`: any supported label source ([`crate::sniff`]) as one labelled image
//! list, optionally with simulated partial labels, and its per-category counts
//! ([`Inspection`]: what CFT would skip), as a table and JSON.

use crate::coco::{read_coco, ImageOrder};
use crate::error::{DataError, Result};
use crate::sniff::Kind;
use crate::LabelledImages;
use cft_core::drop_labels;
use serde::Serialize;
use std::path::Path;

/// Where `cft data inspect` reads from.
#[derive(Debug, Clone)]
pub struct Source<'a> {
    /// The dataset argument (a path, or a bundled dataset's name).
    pub dataset: &'a str,
    /// OpenImages subset.
    pub subset: &'a str,
    /// For a reference label CSV: the COCO instances or category list naming its categories.
    pub categories_from: Option<&'a Path>,
    /// The bundled datasets' folder (names and manifests).
    pub datasets_dir: &'a Path,
}

/// What [`load`] found.
#[derive(Debug)]
pub struct Loaded {
    /// The labels as one image list (`None`: a feature set without labels).
    pub images: Option<LabelledImages>,
    /// A feature set's statistics (the report's first line).
    pub headline: Option<String>,
    /// A line about the file worth printing beside the report (rows read, annotations ignored).
    pub note: Option<String>,
}

/// The labels of `source` as one image list, with partial labels simulated at `known` (the
/// reference protocol, seed 526) when given.
pub fn load(source: &Source<'_>, known: Option<f64>) -> Result<Loaded> {
    let p = Path::new(source.dataset);
    let mut headline = None;
    let (images, line) = match crate::sniff::kind(source.dataset)? {
        Kind::OpenImages => {
            let classes = crate::openimages::read_trainable(&p.join("classes-trainable.txt"))?;
            let descriptions = p.join("class-descriptions.csv");
            let ann = p.join(source.subset).join("annotations-human.csv");
            let ann = if ann.exists() { ann } else { p.join("annotations-human.csv") };
            let (mut img, stats) = crate::openimages::read_annotations(&ann, source.subset, &classes, &|_| {})?;
            if descriptions.is_file() {
                let names = crate::openimages::read_class_descriptions(&descriptions)?;
                img.categories = classes.iter().map(|c| names.get(c).cloned().unwrap_or_else(|| c.clone())).collect();
            }
            let line = format!(
                "{}: {} rows, {} of untrainable classes, {} with other confidences, {} conflicting{}",
                ann.display(),
                stats.rows,
                stats.untrainable,
                stats.other_confidence,
                stats.conflicts,
                if descriptions.is_file() {
                    ""
                } else {
                    "; class-descriptions.csv not found, classes named by their MIDs"
                }
            );
            (img, Some(line))
        }
        Kind::Coco => {
            let s = read_coco(p, ImageOrder::File)?;
            let line = coco_summary(p, s.annotations, s.orphan_annotations);
            (s.images, Some(line))
        }
        Kind::Chexpert => {
            let split = crate::chexpert::read_chexpert(p, &crate::chexpert::ChexpertOptions::all_observations())?;
            let ids: Vec<String> = split.images.iter().map(|i| i.path.clone()).collect();
            (LabelledImages::from_dense(ids.clone(), ids, split.tasks, &split.raw), None)
        }
        Kind::Records => {
            let Some(src) = source.categories_from else {
                return Err(DataError::invalid(
                    p,
                    "a reference label CSV needs --categories-from (COCO instances or category list)",
                ));
            };
            (crate::records_csv::read_records_csv(p, &category_names_from(src)?)?, None)
        }
        Kind::FeatureSet => {
            // Dense or sparse labels (the latter what `cft run` reads and `cft data synthesize
            // --like openimages` writes); the features' statistics lead the report.
            let dense = crate::tensors::read_feature_set(p);
            if let Ok(set) = &dense {
                if set.labels.is_none() && !crate::streamed::has_sparse_labels(p)? {
                    let headline = Some(feature_summary(p, &set.features));
                    return Ok(Loaded {
                        images: None,
                        headline,
                        note: Some("no `labels` tensor (features only)".into()),
                    });
                }
            }
            let set = crate::inputs::read_labelled(p, cft_core::UncertainPolicy::Ignore)?;
            let ids: Vec<String> = (0..set.labels.n_samples).map(|i| i.to_string()).collect();
            headline = Some(feature_summary(p, &set.features));
            let names = set.names();
            let paths = set.paths.clone().unwrap_or_else(|| ids.clone());
            (LabelledImages { ids, paths, categories: names, labels: set.labels }, None)
        }
        Kind::Manifest | Kind::Name => {
            let manifest = crate::DatasetManifest::resolve(source.dataset, source.datasets_dir)?;
            let train = manifest.load_split("train")?;
            let ids: Vec<String> = (0..train.labels.n_samples()).map(|i| i.to_string()).collect();
            (LabelledImages::from_dense(ids.clone(), ids, train.categories, &train.labels), None)
        }
    };
    Ok(Loaded { images: Some(with_known(images, known)), headline, note: line })
}

fn with_known(images: LabelledImages, known: Option<f64>) -> LabelledImages {
    match known {
        Some(p) => {
            let dense = drop_labels(&images.dense(), p, 526);
            LabelledImages::from_dense(images.ids, images.paths, images.categories, &dense)
        }
        None => images,
    }
}

/// The category names of a COCO category list: a JSON list of `{id, name, …}` objects, or an
/// instances file's `categories`, in file order.
pub fn category_names_from(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let v: serde_json::Value = serde_json::from_str(text.trim_start_matches('\u{feff}'))
        .map_err(|e| DataError::parse(path, e.line(), "JSON", e.to_string()))?;
    let list = v.get("categories").unwrap_or(&v);
    let Some(arr) = list.as_array() else { return Err(DataError::invalid(path, "no category list")) };
    arr.iter()
        .enumerate()
        .map(|(i, c)| {
            c["name"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| DataError::invalid(path, format!("categories[{i}].name: missing or not a string")))
        })
        .collect()
}

/// The sentence `cft data inspect` prints for a COCO instances file.
pub fn coco_summary(p: &Path, annotations: usize, orphans: usize) -> String {
    let orphans = match orphans {
        0 => "every one on an image listed in the file".to_string(),
        1 => "1 of them on an image the file does not list, ignored".to_string(),
        n => format!("{n} of them on images the file does not list, ignored"),
    };
    format!("{}: {annotations} annotations, {orphans}", p.display())
}

/// Per-category counts of an inspected dataset.
#[derive(Debug, Clone, Serialize)]
pub struct CategoryStats {
    /// Name.
    pub category: String,
    /// Known positives.
    pub positives: usize,
    /// Known negatives.
    pub negatives: usize,
    /// Uncertain labels.
    pub uncertain: usize,
    /// Why CFT would skip it (no known positive / negative), if it would.
    pub skip: Option<String>,
}

/// What `cft data inspect --plot` writes as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// The dataset argument.
    pub dataset: String,
    /// Images.
    pub images: usize,
    /// Categories.
    pub categories: usize,
    /// Known (positive or negative) labels over images × categories.
    pub known_proportion: f64,
    /// Categories CFT would skip.
    pub skipped_categories: usize,
    /// Per category.
    pub per_category: Vec<CategoryStats>,
}

impl Inspection {
    /// The counts of `images`, named `dataset`.
    pub fn of(dataset: &str, images: &LabelledImages) -> Self {
        let per: Vec<CategoryStats> = images
            .labels
            .per_category
            .iter()
            .zip(&images.categories)
            .map(|(k, name)| CategoryStats {
                category: name.clone(),
                positives: k.positives.len(),
                negatives: k.negatives.len(),
                uncertain: k.uncertain.len(),
                skip: if k.positives.is_empty() {
                    Some("no known positive".into())
                } else if k.negatives.is_empty() {
                    Some("no known negative".into())
                } else {
                    None
                },
            })
            .collect();
        let known: usize = per.iter().map(|c| c.positives + c.negatives).sum();
        let cells = (images.len() * images.categories.len()).max(1);
        Inspection {
            dataset: dataset.to_string(),
            images: images.len(),
            categories: images.categories.len(),
            known_proportion: known as f64 / cells as f64,
            skipped_categories: per.iter().filter(|c| c.skip.is_some()).count(),
            per_category: per,
        }
    }

    /// The summary line and the per-category table (its first `limit` rows; all when 0).
    pub fn table(&self, limit: usize) -> String {
        let mut out = format!(
            "{}: {} images, {} categories, {:.2}% of labels known, {} categories CFT would skip\n",
            self.dataset,
            self.images,
            self.categories,
            100.0 * self.known_proportion,
            self.skipped_categories
        );
        out.push_str("| category | positives | negatives | uncertain | CFT |\n|---|---:|---:|---:|---|\n");
        let shown = if limit == 0 { self.per_category.len() } else { limit.min(self.per_category.len()) };
        for c in &self.per_category[..shown] {
            let cft = c.skip.as_deref().map(|s| format!("skip: {s}")).unwrap_or_else(|| "fine-tune".into());
            out.push_str(&format!(
                "| {} | {} | {} | {} | {cft} |\n",
                c.category, c.positives, c.negatives, c.uncertain
            ));
        }
        if shown < self.per_category.len() {
            out.push_str(&format!("| … {} more | | | | |\n", self.per_category.len() - shown));
        }
        out
    }
}

/// Feature statistics of a feature set (`cft data inspect FILE.safetensors`): rows,
/// dimension, mean, standard deviation, extremes and the share of zeros.
pub fn feature_summary(path: &Path, f: &cft_core::Matrix) -> String {
    let v = f.as_slice();
    let n = v.len().max(1) as f64;
    let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let var = v.iter().map(|&x| (f64::from(x) - mean).powi(2)).sum::<f64>() / n;
    let (lo, hi) = v.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    let zeros = v.iter().filter(|&&x| x == 0.0).count() as f64 / n;
    format!(
        "{}: feature set, {} rows × {} features; mean {mean:.4}, std {:.4}, min {lo:.4}, max {hi:.4}, {:.1}% zeros",
        path.display(),
        f.rows(),
        f.cols(),
        var.sqrt(),
        100.0 * zeros
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coco_summary_reads_as_a_sentence() {
        let p = Path::new("instances_train2014.json");
        assert_eq!(
            coco_summary(p, 251, 0),
            "instances_train2014.json: 251 annotations, every one on an image listed in the file"
        );
        assert_eq!(
            coco_summary(p, 251, 3),
            "instances_train2014.json: 251 annotations, 3 of them on images the file does not list, ignored"
        );
    }
}
