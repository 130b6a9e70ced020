//! Dataset manifests: one JSON file per dataset naming its files, splits, categories and
//! provenance, so that a run can record exactly what it read.
//!
//! ```json
//! { "name": "scene", "format": "mulan-arff", "labels_xml": "scene.xml",
//!   "splits": { "train": "scene-train.arff", "test": "scene-test.arff" },
//!   "categories": ["Beach", "Sunset", "FallFoliage", "Field", "Mountain", "Urban"],
//!   "citation": "…", "source": "…", "license": "…" }
//! ```
//! Paths are relative to the manifest's folder.

use crate::arff::{read_arff, read_mulan_labels, ArffDataset, LabelLayout};
use crate::error::{DataError, Result};
use crate::fsutil::read_to_string;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// File formats a manifest can point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetFormat {
    /// Mulan ARFF + `.xml` label names.
    MulanArff,
    /// MEKA ARFF (`-C n` in the relation).
    MekaArff,
}

/// A dataset manifest (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetManifest {
    /// Short name (`scene`).
    pub name: String,
    /// One-line description.
    #[serde(default)]
    pub description: String,
    /// File format.
    pub format: DatasetFormat,
    /// Mulan label file, relative to the manifest.
    #[serde(default)]
    pub labels_xml: Option<String>,
    /// Split name → file, relative to the manifest (`train`, `test`, …).
    pub splits: BTreeMap<String, String>,
    /// The category names, in label order.
    pub categories: Vec<String>,
    /// How to cite the data.
    #[serde(default)]
    pub citation: String,
    /// Where the files came from.
    #[serde(default)]
    pub source: String,
    /// Licence or terms of use.
    #[serde(default)]
    pub license: String,
    /// The folder holding the manifest (filled in on load).
    #[serde(skip)]
    pub root: PathBuf,
}

impl DatasetManifest {
    /// Reads a manifest file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = read_to_string(path)?;
        let mut m: DatasetManifest =
            serde_json::from_str(&text).map_err(|e| DataError::parse(path, e.line(), "manifest", e.to_string()))?;
        m.root = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(m)
    }

    /// Resolves `name_or_path`: an existing file is read as a manifest; otherwise a bundled
    /// dataset name is looked up as `<datasets_dir>/<name>/manifest.json`.
    pub fn resolve(name_or_path: &str, datasets_dir: &Path) -> Result<Self> {
        let p = Path::new(name_or_path);
        if p.is_file() {
            return Self::load(p);
        }
        let bundled = datasets_dir.join(name_or_path).join("manifest.json");
        if bundled.is_file() {
            return Self::load(&bundled);
        }
        Err(DataError::invalid(p, format!("neither a manifest file nor a dataset in {}", datasets_dir.display())))
    }

    /// The path of a file named in the manifest.
    pub fn file(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// Loads one split, checking its label names against the manifest's categories.
    pub fn load_split(&self, split: &str) -> Result<ArffDataset> {
        let file = self.splits.get(split).ok_or_else(|| {
            DataError::invalid(
                &self.root.join("manifest.json"),
                format!("no split `{split}` (splits: {:?})", self.splits.keys().collect::<Vec<_>>()),
            )
        })?;
        let path = self.file(file);
        let layout = match self.format {
            DatasetFormat::MulanArff => {
                let xml = self.labels_xml.as_deref().ok_or_else(|| {
                    DataError::invalid(&self.root.join("manifest.json"), "format mulan-arff needs `labels_xml`")
                })?;
                LabelLayout::Mulan(read_mulan_labels(&self.file(xml))?)
            }
            DatasetFormat::MekaArff => LabelLayout::Meka,
        };
        let data = read_arff(&path, &layout)?;
        if data.categories != self.categories {
            return Err(DataError::invalid(
                &path,
                format!(
                    "label names {:?} differ from the manifest's categories {:?}",
                    data.categories, self.categories
                ),
            ));
        }
        Ok(data)
    }
}

/// The folder of the real, non-redistributable data (CheXpert files, COCO/OpenImages samples)
/// named by `CFT_REAL_DATA`; a relative path is taken from `workspace_root`, so the README's
/// `CFT_REAL_DATA=../shared/data cargo test …` works whichever folder cargo runs a test in.
/// `None` when the variable is unset.
pub fn real_data_folder(workspace_root: &Path) -> Option<PathBuf> {
    let p = PathBuf::from(std::env::var_os("CFT_REAL_DATA")?);
    Some(if p.is_relative() { workspace_root.join(p) } else { p })
}
