//! The ablation schema: the tidy table every grid merges into (one row per method ×
//! category × cell × seed × protocol × label point: [`TidyRow`], [`Tidy`]) and what an
//! ablation folder records about itself ([`AblationMeta`]). Written by `cft-experiment`, read
//! and drawn by `cft-report` (which holds the CSV and Parquet files' polars code).

/// The fixed columns of a tidy table, in order; the varied parameters follow `cell`.
pub const TIDY_COLUMNS: [&str; 14] = [
    "dataset",
    "cell",
    "seed",
    "method",
    "protocol",
    "proportion",
    "category",
    "is_base",
    "score",
    "base_score",
    "selection_original",
    "selection_best",
    "best_epoch",
    "epochs_run",
];

/// One row of a tidy ablation table.
#[derive(Debug, Clone, PartialEq)]
pub struct TidyRow {
    /// Dataset name.
    pub dataset: String,
    /// Cell id without the seed (`c003`).
    pub cell: String,
    /// The repetition's seed (none when the grid has no `seeds`).
    pub seed: Option<u64>,
    /// The varied parameters' values, in [`Tidy::param_keys`] order, as shown.
    pub params: Vec<String>,
    /// Row name (`AN`, `AN + CFT-GA`, …).
    pub method: String,
    /// `paper` or `held-out`.
    pub protocol: String,
    /// Known-label proportion (or the real labels' known fraction).
    pub proportion: f64,
    /// Category name.
    pub category: String,
    /// Whether the row is a base head.
    pub is_base: bool,
    /// The evaluation score (AP or AUC), undefined where the category has no positive or negative.
    pub score: Option<f64>,
    /// The base head's score on the same category, cell, seed, protocol and proportion: a CFT
    /// row's own base (the row named before ` + `), the first base head for a base row.
    pub base_score: Option<f64>,
    /// CFT: the base head's score on the selection split.
    pub selection_original: Option<f64>,
    /// CFT: the best epoch's score on the selection split.
    pub selection_best: Option<f64>,
    /// CFT: the selected epoch (−1: the base head was kept).
    pub best_epoch: Option<i64>,
    /// CFT: epochs run before patience or the limit stopped it.
    pub epochs_run: Option<i64>,
}

/// A grid's tidy table.
#[derive(Debug, Clone, PartialEq)]
pub struct Tidy {
    /// The varied parameters' key paths (`cft.bp_lr`), the columns after `cell`.
    pub param_keys: Vec<String>,
    /// The rows, sorted by cell, seed, protocol, method, proportion and category position.
    pub rows: Vec<TidyRow>,
}

/// What an ablation folder records about itself (`ablation.json`, beside `tidy.csv`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AblationMeta {
    /// Ablation name (the folder).
    pub name: String,
    /// What it varies and why.
    pub description: String,
    /// `mAP` or `mAUC`.
    pub metric: String,
    /// The spec file it came from.
    pub spec: String,
    /// Cells × seeds.
    pub cells: usize,
    /// How the label masks were drawn across seeds (a sentence for the table captions; empty
    /// in files from before it was recorded).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label_masks: String,
    /// The training labels when they are not dropped at given proportions: `real` or
    /// `single-positive` (absent for dropped labels, the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_source: Option<String>,
}
