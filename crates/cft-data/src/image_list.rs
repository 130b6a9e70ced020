//! The adapters' common output: a labelled image list (image ids and paths, category names,
//! sparse partial labels). Sparse because OpenImages has millions of images × 5000 classes
//! with a handful of known labels each; [`LabelledImages::dense`] for small datasets.

use cft_core::{KnownSamples, Label, PartialLabels, SparseLabels};

/// Images with partial labels, in the dataset's canonical order.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledImages {
    /// Image identifiers (COCO image id, OpenImages ImageID, CheXpert path).
    pub ids: Vec<String>,
    /// Image paths relative to the dataset root (`train2014/COCO_…jpg`, `train/…jpg`).
    pub paths: Vec<String>,
    /// Category names (index order).
    pub categories: Vec<String>,
    /// Known labels per category.
    pub labels: SparseLabels,
}

impl LabelledImages {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Dense labels (`images × categories` bytes).
    pub fn dense(&self) -> PartialLabels {
        self.labels.to_dense()
    }

    /// Builds the sparse form from dense labels.
    pub fn from_dense(ids: Vec<String>, paths: Vec<String>, categories: Vec<String>, dense: &PartialLabels) -> Self {
        let mut per_category = vec![KnownSamples::default(); dense.n_categories()];
        for s in 0..dense.n_samples() {
            for (c, &l) in dense.row(s).iter().enumerate() {
                if l != Label::Unknown {
                    per_category[c].push(s as u32, l);
                }
            }
        }
        Self { ids, paths, categories, labels: SparseLabels { n_samples: dense.n_samples(), per_category } }
    }
}
