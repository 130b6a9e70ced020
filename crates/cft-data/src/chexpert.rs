//! CheXpert v1.0 (`train.csv`, `valid.csv`) and its competition scoring.
//!
//! Label cells: `1.0` positive, `0.0` negative, `-1.0` uncertain, blank unknown (the ground
//! truth of the test set writes `1` and `0`). Uncertain labels are resolved per task by an
//! [`UncertainPolicy`] (U-Ignore, U-Ones, U-Zeros). Images can be filtered by view; a study's
//! score is the maximum over its images.
//!
//! Competition scoring follows the official procedure: predictions are joined to the test
//! ground truth on `Study` (a trailing `/` ignored), AUC per task (scikit-learn's
//! `roc_auc_score`, reproduced to the last bit by [`cft_core::roc_auc_sklearn`]), mean over
//! the five competition tasks in their canonical order. Columns are matched by name.

use crate::csvio::{read_string_table, StringTable};
use crate::error::{DataError, Result};
use cft_core::{roc_auc_sklearn, Label, PartialLabels, UncertainPolicy};
use std::collections::HashMap;
use std::path::Path;

/// The 14 observations, in the order of CheXpert's CSV header.
pub const OBSERVATIONS: [&str; 14] = [
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
];

/// The five competition tasks, in the order the leaderboard averages them.
pub const COMPETITION_TASKS: [&str; 5] = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"];

/// Which views to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ViewFilter {
    /// Every image.
    #[default]
    All,
    /// Frontal images only (`Frontal/Lateral` = `Frontal`).
    Frontal,
    /// Lateral images only.
    Lateral,
}

/// How to read a CheXpert label file.
#[derive(Debug, Clone, PartialEq)]
pub struct ChexpertOptions {
    /// Tasks (label columns) to read, by name.
    pub tasks: Vec<String>,
    /// Uncertainty policy per task (or one for all).
    pub policies: Vec<UncertainPolicy>,
    /// View filter.
    pub view: ViewFilter,
}

impl Default for ChexpertOptions {
    /// The 5 competition tasks, uncertain labels ignored, all views.
    fn default() -> Self {
        Self {
            tasks: COMPETITION_TASKS.iter().map(|s| s.to_string()).collect(),
            policies: vec![UncertainPolicy::Ignore],
            view: ViewFilter::All,
        }
    }
}

impl ChexpertOptions {
    /// All 14 observations.
    pub fn all_observations() -> Self {
        Self { tasks: OBSERVATIONS.iter().map(|s| s.to_string()).collect(), ..Self::default() }
    }

    /// The common mixed policy: U-Ones for Atelectasis and Edema, U-Zeros for the others.
    pub fn with_u_ones_u_zeros(mut self) -> Self {
        self.policies = self
            .tasks
            .iter()
            .map(|t| if t == "Atelectasis" || t == "Edema" { UncertainPolicy::Ones } else { UncertainPolicy::Zeros })
            .collect();
        self
    }
}

cft_core::choice! {
    /// A spec's policy for CheXpert's uncertain labels (`labels.uncertain`).
    #[derive(Default)]
    pub enum Uncertain {
        /// U-Ignore: uncertain becomes unknown.
        #[default]
        Ignore = "ignore",
        /// U-Ones: uncertain becomes positive.
        Ones = "ones",
        /// U-Zeros: uncertain becomes negative.
        Zeros = "zeros",
        /// U-Ones for Atelectasis and Edema, U-Zeros for the others.
        UOnesUZeros = "u-ones-u-zeros",
    }
}

impl Uncertain {
    /// The reader's options for the 5 competition tasks under this policy.
    pub fn options(self) -> ChexpertOptions {
        let opts = ChexpertOptions::default();
        let one = |p: UncertainPolicy| ChexpertOptions { policies: vec![p], ..opts.clone() };
        match self {
            Uncertain::Ignore => opts.clone(),
            Uncertain::Ones => one(UncertainPolicy::Ones),
            Uncertain::Zeros => one(UncertainPolicy::Zeros),
            Uncertain::UOnesUZeros => opts.clone().with_u_ones_u_zeros(),
        }
    }

    /// What the tables say about it.
    pub fn describe(self) -> &'static str {
        match self {
            Uncertain::Ignore => "U-Ignore (uncertain → unknown)",
            Uncertain::Ones => "U-Ones (uncertain → positive)",
            Uncertain::Zeros => "U-Zeros (uncertain → negative)",
            Uncertain::UOnesUZeros => "U-Ones for Atelectasis and Edema, U-Zeros for the others",
        }
    }
}

/// One image row.
#[derive(Debug, Clone, PartialEq)]
pub struct ChexpertImage {
    /// `Path` as written (`CheXpert-v1.0/valid/patient…/study1/view1_frontal.jpg`).
    pub path: String,
    /// The study the image belongs to (path without the file name).
    pub study: String,
    /// Whether the view is frontal.
    pub frontal: bool,
}

/// A label file read into images and partial labels.
#[derive(Debug, Clone)]
pub struct ChexpertSplit {
    /// The kept images.
    pub images: Vec<ChexpertImage>,
    /// Task names (label columns).
    pub tasks: Vec<String>,
    /// Labels as annotated (uncertain kept).
    pub raw: PartialLabels,
    /// Labels after the uncertainty policies.
    pub labels: PartialLabels,
}

/// The study of an image path: everything before the last `/`.
pub fn study_of(path: &str) -> String {
    path.trim_end_matches('/').rsplit_once('/').map_or(path.to_string(), |(s, _)| s.to_string())
}

fn parse_label(path: &Path, row: usize, column: &str, cell: Option<&str>) -> Result<Label> {
    match cell.map(str::trim) {
        None | Some("") => Ok(Label::Unknown),
        Some(v) => match v.parse::<f64>() {
            Ok(1.0) => Ok(Label::Positive),
            Ok(0.0) => Ok(Label::Negative),
            Ok(-1.0) => Ok(Label::Uncertain),
            _ => Err(DataError::parse(path, row, column, format!("`{v}` is not 1.0, 0.0, -1.0 or blank"))),
        },
    }
}

/// Reads `train.csv` or `valid.csv`.
pub fn read_chexpert(path: &Path, opts: &ChexpertOptions) -> Result<ChexpertSplit> {
    let t = read_string_table(path)?;
    let path_col = t.column(path, "Path")?;
    let view_col = t.column(path, "Frontal/Lateral")?;
    let task_cols: Vec<usize> = opts.tasks.iter().map(|task| t.column(path, task)).collect::<Result<_>>()?;
    if opts.policies.len() != 1 && opts.policies.len() != opts.tasks.len() {
        return Err(DataError::invalid(
            path,
            format!("{} uncertainty policies for {} tasks", opts.policies.len(), opts.tasks.len()),
        ));
    }
    let mut images = Vec::new();
    let mut raw = Vec::new();
    let mut seen = HashMap::new();
    for r in 0..t.rows {
        let line = r + 2;
        let p = t.columns[path_col][r].clone().ok_or_else(|| DataError::parse(path, line, "Path", "empty path"))?;
        if let Some(first) = seen.insert(p.clone(), line) {
            return Err(DataError::parse(path, line, "Path", format!("duplicate image `{p}` (first on line {first})")));
        }
        let view = t.columns[view_col][r].as_deref().unwrap_or("");
        let frontal = match view {
            "Frontal" => true,
            "Lateral" => false,
            other => {
                return Err(DataError::parse(
                    path,
                    line,
                    "Frontal/Lateral",
                    format!("`{other}` is not Frontal or Lateral"),
                ))
            }
        };
        let keep = match opts.view {
            ViewFilter::All => true,
            ViewFilter::Frontal => frontal,
            ViewFilter::Lateral => !frontal,
        };
        let labels: Vec<Label> = task_cols
            .iter()
            .zip(&opts.tasks)
            .map(|(&c, task)| parse_label(path, line, task, t.columns[c][r].as_deref()))
            .collect::<Result<_>>()?;
        if keep {
            images.push(ChexpertImage { study: study_of(&p), path: p, frontal });
            raw.extend(labels);
        }
    }
    let raw = PartialLabels::new(images.len(), opts.tasks.len(), raw).expect("one label per task and image");
    let labels = raw.resolve_uncertain(&opts.policies);
    Ok(ChexpertSplit { images, tasks: opts.tasks.clone(), raw, labels })
}

/// How often each label value occurs in one column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LabelCounts {
    /// `1.0` cells.
    pub positive: usize,
    /// `0.0` cells.
    pub negative: usize,
    /// `-1.0` cells.
    pub uncertain: usize,
    /// Blank cells.
    pub blank: usize,
}

/// Counts 1 / 0 / −1 / blank for every observation of a label file, in [`OBSERVATIONS`] order.
pub fn count_labels(path: &Path) -> Result<Vec<(String, LabelCounts)>> {
    let split = read_chexpert(path, &ChexpertOptions::all_observations())?;
    Ok(split
        .tasks
        .iter()
        .enumerate()
        .map(|(c, name)| {
            let mut k = LabelCounts::default();
            for i in 0..split.raw.n_samples() {
                match split.raw.get(i, c) {
                    Label::Positive => k.positive += 1,
                    Label::Negative => k.negative += 1,
                    Label::Uncertain => k.uncertain += 1,
                    Label::Unknown => k.blank += 1,
                }
            }
            (name.clone(), k)
        })
        .collect())
}

/// Study-level scores: the maximum over each study's images (`scores` is images × tasks).
pub fn study_max(images: &[ChexpertImage], scores: &[f32], tasks: usize) -> (Vec<String>, Vec<f32>) {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let (mut studies, mut out): (Vec<String>, Vec<f32>) = (Vec::new(), Vec::new());
    for (i, img) in images.iter().enumerate() {
        let row = &scores[i * tasks..(i + 1) * tasks];
        match index.get(img.study.as_str()) {
            Some(&s) => {
                for (o, &v) in out[s * tasks..(s + 1) * tasks].iter_mut().zip(row) {
                    *o = o.max(v);
                }
            }
            None => {
                index.insert(&img.study, studies.len());
                studies.push(img.study.clone());
                out.extend_from_slice(row);
            }
        }
    }
    (studies, out)
}

/// The result of competition scoring.
#[derive(Debug, Clone, PartialEq)]
pub struct CompetitionScore {
    /// AUC per competition task, in [`COMPETITION_TASKS`] order.
    pub tasks: Vec<(String, f64)>,
    /// Their mean (the leaderboard's number).
    pub mean: f64,
    /// Studies scored.
    pub studies: usize,
}

fn key(study: &str) -> String {
    study.trim().trim_end_matches('/').to_string()
}

fn number(path: &Path, t: &StringTable, r: usize, c: usize) -> Result<f64> {
    let cell = t.columns[c][r].as_deref().unwrap_or("").trim();
    cell.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| DataError::parse(path, r + 2, &t.header[c], format!("`{cell}` is not a number")))
}

/// Each study's row in `t` (column `col` of the file at `path`): an empty or repeated study is
/// an error naming its line.
fn study_rows(path: &Path, t: &StringTable, col: usize) -> Result<HashMap<String, usize>> {
    let mut rows = HashMap::with_capacity(t.rows);
    for r in 0..t.rows {
        let s = t.columns[col][r]
            .as_deref()
            .map(key)
            .ok_or_else(|| DataError::parse(path, r + 2, "Study", "empty study"))?;
        if let Some(first) = rows.insert(s.clone(), r) {
            return Err(DataError::parse(
                path,
                r + 2,
                "Study",
                format!("duplicate study `{s}` (first on line {}): each study is scored once", first + 2),
            ));
        }
    }
    Ok(rows)
}

/// Scores a predictions CSV (`Study` + one column per task, any order) against the test ground
/// truth exactly as the official leaderboard does.
pub fn competition_score(predictions: &Path, groundtruth: &Path) -> Result<CompetitionScore> {
    let gt = read_string_table(groundtruth)?;
    let pr = read_string_table(predictions)?;
    let gs = gt.column(groundtruth, "Study")?;
    let ps = pr.column(predictions, "Study")?;
    let pred_row = study_rows(predictions, &pr, ps)?;
    // The ground truth's studies are checked the same way: a study listed twice would be scored twice.
    study_rows(groundtruth, &gt, gs)?;
    let mut tasks = Vec::new();
    for task in COMPETITION_TASKS {
        let (gc, pc) = (gt.column(groundtruth, task)?, pr.column(predictions, task)?);
        let (mut scores, mut labels) = (Vec::with_capacity(gt.rows), Vec::with_capacity(gt.rows));
        for r in 0..gt.rows {
            let s = gt.columns[gs][r].as_deref().map(key).unwrap_or_default();
            let &pr_r = pred_row.get(&s).ok_or_else(|| {
                DataError::invalid(predictions, format!("no prediction for study `{s}` (ground truth line {})", r + 2))
            })?;
            let y = number(groundtruth, &gt, r, gc)?;
            if y != 0.0 && y != 1.0 {
                return Err(DataError::parse(groundtruth, r + 2, task, format!("`{y}` is not 0 or 1")));
            }
            labels.push(y == 1.0);
            scores.push(number(predictions, &pr, pr_r, pc)?);
        }
        let auc = roc_auc_sklearn(&scores, &labels).ok_or_else(|| {
            DataError::invalid(groundtruth, format!("task {task} lacks a positive or a negative study"))
        })?;
        tasks.push((task.to_string(), auc));
    }
    // np.mean over five values: a plain left-to-right sum, then one division.
    let mean = tasks.iter().fold(0.0, |acc, (_, a)| acc + a) / tasks.len() as f64;
    Ok(CompetitionScore { tasks, mean, studies: gt.rows })
}
