//! Published numbers, loaded with polars from `reports/reference/paper_results.csv`.
//!
//! The file holds one value per row (`dataset, setting, method, backbone, metric, value,
//! source`). This module selects and reshapes the rows each table needs: the partial-COCO
//! grid (known proportion × method), OpenImages V3 class groups, the CheXpert leaderboard.

use crate::dataset_report::ReportError;
use polars::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One published value.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedValue {
    /// Dataset as written in the file (`MS-COCO 2014`).
    pub dataset: String,
    /// Protocol / table description.
    pub setting: String,
    /// Method name.
    pub method: String,
    /// Backbone (or where to find it).
    pub backbone: String,
    /// Metric name (`mAP(%)`, `AUC Edema`, …).
    pub metric: String,
    /// The number.
    pub value: f64,
    /// Where it was published.
    pub source: String,
}

/// A published method's values by column key (`10%`…`90%`, `Avg`, `G1`…`All`, task names).
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedRow {
    /// Method.
    pub method: String,
    /// Backbone or table origin.
    pub backbone: String,
    /// Column → value (in the file's unit).
    pub values: BTreeMap<String, f64>,
    /// Sources of these values (deduplicated).
    pub sources: Vec<String>,
}

/// All published values.
#[derive(Debug, Clone)]
pub struct Published {
    /// The file read.
    pub path: PathBuf,
    /// Its rows.
    pub rows: Vec<PublishedValue>,
}

fn invalid(path: &Path, e: impl std::fmt::Display) -> ReportError {
    ReportError::Invalid { path: path.to_path_buf(), message: e.to_string() }
}

/// A column as strings (nulls as empty strings), whatever dtype polars inferred.
pub fn string_column(path: &Path, df: &DataFrame, name: &str) -> Result<Vec<String>, ReportError> {
    str_column(path, df, name)
}

/// Reads a CSV file into a polars DataFrame (header required).
pub fn read_csv(path: &Path) -> Result<DataFrame, ReportError> {
    CsvReadOptions::default()
        .with_has_header(true)
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .and_then(|r| r.finish())
        .map_err(|e| invalid(path, e))
}

fn str_column(path: &Path, df: &DataFrame, name: &str) -> Result<Vec<String>, ReportError> {
    let col = df.column(name).map_err(|_| invalid(path, format!("missing column `{name}`")))?;
    let s = col.cast(&DataType::String).map_err(|e| invalid(path, e))?;
    let ca = s.str().map_err(|e| invalid(path, e))?;
    Ok((0..ca.len()).map(|i| ca.get(i).unwrap_or("").to_string()).collect())
}

impl Published {
    /// Loads `paper_results.csv`; every row must have a numeric value (row numbers in errors
    /// count the header as row 1).
    pub fn load(path: &Path) -> Result<Self, ReportError> {
        let df = read_csv(path)?;
        let cols: Vec<Vec<String>> = ["dataset", "setting", "method", "backbone", "metric", "value", "source"]
            .iter()
            .map(|c| str_column(path, &df, c))
            .collect::<Result<_, _>>()?;
        let mut rows = Vec::with_capacity(df.height());
        for (i, raw) in cols[5].iter().enumerate() {
            // Some rows carry two rounded values ("91.8 / 93.3"); they are kept out of tables.
            let Ok(value) = raw.trim().parse::<f64>() else {
                if raw.contains('/') {
                    continue;
                }
                return Err(invalid(path, format!("row {}: field `value`: `{raw}` is not a number", i + 2)));
            };
            rows.push(PublishedValue {
                dataset: cols[0][i].clone(),
                setting: cols[1][i].clone(),
                method: cols[2][i].clone(),
                backbone: cols[3][i].clone(),
                metric: cols[4][i].clone(),
                value,
                source: cols[6][i].clone(),
            });
        }
        Ok(Self { path: path.to_path_buf(), rows })
    }

    fn grouped<F>(&self, mut key: F) -> Vec<PublishedRow>
    where
        F: FnMut(&PublishedValue) -> Option<String>,
    {
        let mut out: Vec<PublishedRow> = Vec::new();
        for v in &self.rows {
            let Some(col) = key(v) else { continue };
            let pos = out.iter().position(|r| r.method == v.method && r.backbone == v.backbone);
            let row = match pos {
                Some(p) => &mut out[p],
                None => {
                    out.push(PublishedRow {
                        method: v.method.clone(),
                        backbone: v.backbone.clone(),
                        values: BTreeMap::new(),
                        sources: Vec::new(),
                    });
                    out.last_mut().expect("just pushed")
                }
            };
            row.values.insert(col, v.value);
            if !row.sources.contains(&v.source) {
                row.sources.push(v.source.clone());
            }
        }
        out
    }

    /// Partial COCO: columns `10%`…`90%` and `Avg` (mAP in %), including the CFT headline.
    pub fn partial_coco(&self) -> Vec<PublishedRow> {
        self.grouped(|v| {
            if v.dataset != "MS-COCO 2014" {
                return None;
            }
            if let Some(rest) = v.setting.split("known-label proportion ").nth(1) {
                let tok = rest.split_whitespace().next()?;
                return Some(tok.to_string());
            }
            (v.metric == "avg mAP(%)"
                && (v.setting.contains("average over known-label proportions")
                    || v.setting.contains("previous best avg mAP")))
            .then(|| "Avg".to_string())
        })
    }

    /// OpenImages V3 with real partial labels: columns `G1`…`G5` and `All` (mAP in %).
    pub fn openimages_groups(&self) -> Vec<PublishedRow> {
        self.grouped(|v| {
            if v.dataset != "OpenImages V3" || v.metric != "mAP(%)" {
                return None;
            }
            let s = &v.setting;
            if let Some(g) = s.split("class group ").nth(1) {
                return Some(g.trim().to_string());
            }
            if let Some(g) = s.split("Group ").nth(1) {
                return Some(format!("G{}", g.trim()));
            }
            if s.ends_with("All classes") || s == "real partial labels" || s.contains("implied previous best") {
                return Some("All".to_string());
            }
            None
        })
    }

    /// CheXpert competition test set: per-task AUC (columns named by task) and `mAUC`, both as
    /// fractions, for leaderboard entries; and the paper's mAUC(%) rows.
    pub fn chexpert(&self) -> Vec<PublishedRow> {
        self.grouped(|v| {
            if v.dataset != "CheXpert" {
                return None;
            }
            if v.setting.starts_with("competition test set (500 studies), official leaderboard") {
                if let Some(task) = v.metric.strip_prefix("AUC ") {
                    return Some(task.to_string());
                }
                if v.metric == "mAUC" {
                    return Some("mAUC".to_string());
                }
            }
            (v.metric == "mAUC(%)").then(|| "mAUC(%)".to_string())
        })
    }
}

/// The published numbers and reference timings this binary was built with: the workspace's
/// `reports/reference/` files (the one data file of the paper's numbers, with sources),
/// embedded so `cft report` and `cft run` need no checkout to set them beside ours.
pub const EMBEDDED_REFERENCE: [(&str, &[u8]); 3] = [
    ("paper_results.csv", include_bytes!("../../../reports/reference/paper_results.csv")),
    ("reference_timings.csv", include_bytes!("../../../reports/reference/reference_timings.csv")),
    ("README.md", include_bytes!("../../../reports/reference/README.md")),
];

/// The folder of published numbers for a reports folder `out`: `out/reference/` when it has a
/// `paper_results.csv`, else the embedded copies written there (so the index's links to
/// `reference/…` resolve too). Returns the folder.
pub fn ensure_reference(out: &Path) -> Result<std::path::PathBuf, ReportError> {
    let dir = out.join("reference");
    if !dir.join("paper_results.csv").is_file() {
        for (name, bytes) in EMBEDDED_REFERENCE {
            cft_data::write_atomic(&dir.join(name), bytes)?;
        }
    }
    Ok(dir)
}
