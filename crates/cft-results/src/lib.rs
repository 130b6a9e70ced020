//! # cft-results: the results schema
//!
//! Its own crate so that the writer (`cft-experiment`) owns it without depending on the
//! reader (`cft-report`), which depends on it only to read `results.json` back.
//!
//! What an experiment writes to disk and the report reads back: one `results.json` per
//! dataset, holding every (method, protocol, known-label proportion) cell with its
//! per-category scores and a link to the run that produced it.

pub mod ablation;

use serde::{Deserialize, Serialize};

/// How a CFT epoch (and base model) was selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// As the reference does: base trained on the whole training split, CFT epochs selected on
    /// the evaluation (test) split. Optimistic by construction.
    Paper,
    /// Honest: base and CFT trained on 80% of the training images, CFT epochs selected on the
    /// known labels of the other 20%; the test split is only used to report.
    HeldOut,
}

impl Protocol {
    /// Display name.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Paper => "paper",
            Protocol::HeldOut => "held-out",
        }
    }
}

/// One table cell: a method under a protocol at one known-label proportion.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResultCell {
    /// Known-label proportion in (0, 1].
    pub proportion: f64,
    /// Mean over defined categories (`None` if no category is defined).
    pub mean: Option<f64>,
    /// Per-category score on the evaluation split (`None` where undefined).
    pub per_category: Vec<Option<f64>>,
    /// Categories CFT skipped, with the reason.
    #[serde(default)]
    pub skipped: Vec<(usize, String)>,
    /// Path of the run manifest that produced this cell, relative to the results file.
    #[serde(default)]
    pub run: Option<String>,
    /// Means over frequency groups of categories (OpenImages V3's G1–G5), rarest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupCell>,
}

/// The mean score of one frequency group of categories in a cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupCell {
    /// `G1` (rarest) … `G5`.
    pub name: String,
    /// Categories in the group.
    pub categories: usize,
    /// Smallest and largest training count in the group.
    pub count_range: (usize, usize),
    /// Mean over the group's defined scores.
    pub mean: Option<f64>,
}

/// One row: a method under one protocol, across proportions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodRow {
    /// Method name as shown (`AN`, `Ignore`, `AN + CFT-GA`, …).
    pub method: String,
    /// Selection protocol.
    pub protocol: Protocol,
    /// Whether this row is a base model (no CFT).
    pub is_base: bool,
    /// One cell per proportion, in the experiment's order.
    pub cells: Vec<ResultCell>,
}

/// Every result of one dataset's partial-label experiment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExperimentResults {
    /// Dataset name (`scene`).
    pub dataset: String,
    /// The reported metric (`mAP`).
    pub metric: String,
    /// Category names.
    pub categories: Vec<String>,
    /// The known-label proportions, in column order.
    pub proportions: Vec<f64>,
    /// The rows.
    pub rows: Vec<MethodRow>,
    /// Which of the paper's tables this run is the "ours" row of (`coco2014`, `openimages_v3`,
    /// `chexpert`); none for datasets the paper does not report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paper_table: Option<String>,
    /// The training labels: `None` = dropped by the reference protocol at each proportion;
    /// otherwise a description of the dataset's real partial labels (the one column's heading).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real_labels: Option<String>,
    /// The split scores are computed on, when not the test split (`val2014`, `validation CSV`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation_split: Option<String>,
    /// What the tables must say beside the numbers: base model, label protocol, evaluation
    /// split, and whether the numbers are claims or plumbing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl ExperimentResults {
    /// Checks the shape the tables and plots rely on: one cell per proportion in every row,
    /// cells in the proportions' order, one score per category, finite numbers. The message
    /// names the row and cell.
    pub fn validate(&self) -> Result<(), String> {
        if self.categories.is_empty() {
            return Err("`categories` is empty".into());
        }
        if let Some(p) = self.proportions.iter().find(|p| !(p.is_finite() && **p > 0.0 && **p <= 1.0)) {
            return Err(format!("`proportions` holds {p}: expected values in (0, 1]"));
        }
        let c = self.categories.len();
        for (i, r) in self.rows.iter().enumerate() {
            let at = format!("rows[{i}] (`{}`, {})", r.method, r.protocol.label());
            if r.cells.len() != self.proportions.len() {
                return Err(format!(
                    "{at}: {} cells, but there are {} proportions (one cell per proportion is required)",
                    r.cells.len(),
                    self.proportions.len()
                ));
            }
            for (j, (cell, p)) in r.cells.iter().zip(&self.proportions).enumerate() {
                if (cell.proportion - p).abs() > 1e-9 {
                    return Err(format!("{at}.cells[{j}]: proportion {} where {p} is expected", cell.proportion));
                }
                if cell.per_category.len() != c {
                    return Err(format!(
                        "{at}.cells[{j}]: {} per-category scores for {c} categories",
                        cell.per_category.len()
                    ));
                }
                if cell.mean.into_iter().chain(cell.per_category.iter().flatten().copied()).any(|v| !v.is_finite()) {
                    return Err(format!("{at}.cells[{j}]: a score is not finite"));
                }
                if let Some((k, _)) = cell.skipped.iter().find(|(k, _)| *k >= c) {
                    return Err(format!("{at}.cells[{j}]: skipped category {k} of {c}"));
                }
            }
        }
        Ok(())
    }

    /// The split the scores are computed on (`test split` unless the run says otherwise).
    pub fn evaluation(&self) -> &str {
        self.evaluation_split.as_deref().unwrap_or("test split")
    }

    /// The row of `method` under `protocol`.
    pub fn row(&self, method: &str, protocol: Protocol) -> Option<&MethodRow> {
        self.rows.iter().find(|r| r.method == method && r.protocol == protocol)
    }
}

impl MethodRow {
    /// Mean of the defined cell means (the table's "Avg" column).
    pub fn average(&self) -> Option<f64> {
        let v: Vec<f64> = self.cells.iter().filter_map(|c| c.mean).collect();
        (!v.is_empty() && v.len() == self.cells.len()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }
}
