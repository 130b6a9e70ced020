//! The paper's tables with published numbers beside ours: partial COCO, OpenImages V3 and
//! CheXpert. A dataset we could not run gets a row of "not run" cells that says why.

use crate::reference::{Published, PublishedRow};
use crate::table::{pct, Table};
use cft_results::{ExperimentResults, MethodRow};

/// Our side of a table: results, or the reason there are none.
#[derive(Debug, Clone, Copy)]
pub enum Ours<'a> {
    /// Results of a run, with the link prefix from the table's page to the run folder.
    Run(&'a ExperimentResults, &'a str),
    /// Not run, and why.
    NotRun(&'a str),
}

fn published_cells(row: &PublishedRow, cols: &[String], scale: f64) -> Vec<String> {
    cols.iter().map(|c| row.values.get(c).map_or_else(|| "—".into(), |v| format!("{:.2}", v * scale))).collect()
}

/// Footnote number of each distinct source list, in order of first use.
fn cite(sources: &mut Vec<String>, row: &PublishedRow) -> String {
    let key = row.sources.join("; ");
    let n = sources.iter().position(|s| *s == key).unwrap_or_else(|| {
        sources.push(key);
        sources.len() - 1
    });
    format!("published [{}]", n + 1)
}

/// A table whose first rows are published values in `cols`, with our columns to follow.
fn published_table(
    caption: &str,
    cols: &[String],
    delta: &str,
    rows: &[PublishedRow],
    sources: &mut Vec<String>,
) -> Table {
    let mut header = vec!["Method".to_string(), "Origin".to_string(), "Protocol".to_string()];
    header.extend(cols.iter().cloned());
    header.push(delta.to_string());
    let mut t = Table { caption: caption.into(), header, rows: Vec::new(), links: Vec::new() };
    for r in rows {
        let mut row = vec![r.method.clone(), cite(sources, r), "—".into()];
        row.extend(published_cells(r, cols, 1.0));
        row.push("—".into());
        t.rows.push(row);
        t.links.push(Vec::new());
    }
    t
}

/// Partial MS-COCO 2014: published methods by known-label proportion and average, then ours
/// (each row naming its protocol, each cell linking to its run) with the difference of our
/// average from the paper's CFT average.
pub fn coco_table(published: &Published, ours: Ours<'_>, sources: &mut Vec<String>) -> Table {
    let cols: Vec<String> = (1..=9).map(|k| format!("{}%", 10 * k)).chain(["Avg".to_string()]).collect();
    let pub_rows = published.partial_coco();
    let paper_cft_avg =
        pub_rows.iter().find(|r| r.method.starts_with("CFT")).and_then(|r| r.values.get("Avg").copied());
    let caption = "Partial MS-COCO 2014: mAP (%) on val2014 by known-label proportion.";
    let mut t = published_table(caption, &cols, "Δ Avg vs paper CFT", &pub_rows, sources);
    push_ours(&mut t, ours, &cols, paper_cft_avg, |res, row, col| {
        let p: f64 = col.trim_end_matches('%').parse::<f64>().ok()? / 100.0;
        let k = res.proportions.iter().position(|q| (q - p).abs() < 1e-9)?;
        row.cells.get(k).map(|c| (c.mean, c.run.clone()))
    });
    t
}

/// Adds our rows (or one "not run" row) to a table whose value columns are `cols`.
/// `value_of(results, row, column)` gives a column's value and the run it links to; "Avg" is
/// the row's average.
fn push_ours<F>(t: &mut Table, ours: Ours<'_>, cols: &[String], paper_avg: Option<f64>, value_of: F)
where
    F: Fn(&ExperimentResults, &MethodRow, &str) -> Option<(Option<f64>, Option<String>)>,
{
    match ours {
        Ours::NotRun(why) => {
            let mut row = vec!["ours (CFT)".to_string(), format!("not run: {why}"), "—".into()];
            row.extend(cols.iter().map(|_| "not run".to_string()));
            row.push("—".into());
            t.rows.push(row);
            t.links.push(Vec::new());
        }
        Ours::Run(res, prefix) => {
            for r in &res.rows {
                let mut row = vec![r.method.clone(), "ours".into(), r.protocol.label().into()];
                let mut links = vec![None, None, None];
                for c in cols {
                    if c == "Avg" {
                        row.push(pct(r.average()));
                        links.push(None);
                        continue;
                    }
                    match value_of(res, r, c) {
                        Some((mean, run)) => {
                            row.push(pct(mean));
                            links.push(run.map(|p| format!("{prefix}{p}")));
                        }
                        None => {
                            row.push("not run".into());
                            links.push(None);
                        }
                    }
                }
                let delta = match (r.average(), paper_avg) {
                    (Some(a), Some(b)) => format!("{:+.2}", 100.0 * a - b),
                    _ => "—".into(),
                };
                row.push(delta);
                links.push(None);
                t.rows.push(row);
                t.links.push(links);
            }
        }
    }
}

/// OpenImages V3 with real partial labels: mAP (%) by class group (G1 rarest … G5) and overall.
pub fn openimages_table(published: &Published, ours: Ours<'_>, sources: &mut Vec<String>) -> Table {
    let cols: Vec<String> = ["G1", "G2", "G3", "G4", "G5", "All"].iter().map(|s| s.to_string()).collect();
    let pub_rows = published.openimages_groups();
    let paper = pub_rows.iter().find(|r| r.method.starts_with("CFT")).and_then(|r| r.values.get("All").copied());
    let caption = "OpenImages V3 (real partial labels): mAP (%) by class group and over all classes.";
    let mut t = published_table(caption, &cols, "Δ All vs paper CFT", &pub_rows, sources);
    // Ours: the group means (G1…G5) and the mean over all classes of the run's one cell.
    push_ours(&mut t, ours, &cols, paper, |_, row, col| {
        let cell = row.cells.first()?;
        let value = if col == "All" { cell.mean } else { cell.groups.iter().find(|g| g.name == col)?.mean };
        Some((value, cell.run.clone()))
    });
    t
}

/// The five CheXpert competition tasks.
pub const CHEXPERT_TASKS: [&str; 5] = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"];

/// CheXpert competition test set: per-task AUC and mAUC of leaderboard entries and the
/// paper's single-model and ensemble mAUC, then ours.
/// A competition predictions file scored here (`cft chexpert-score --json`): what the table's
/// "scored here" rows show beside the leaderboard's published values.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChexpertScored {
    /// The predictions file's name.
    pub predictions: String,
    /// The ground truth file's name.
    pub groundtruth: String,
    /// Studies scored.
    pub studies: usize,
    /// AUC per competition task, in [`CHEXPERT_TASKS`] order.
    pub tasks: Vec<(String, f64)>,
    /// Their mean (the leaderboard's number).
    pub mean: f64,
}

/// Reads every `*.json` under `dir` (sorted by name) as [`ChexpertScored`]; none when `dir`
/// does not exist.
pub fn read_chexpert_scored(dir: &std::path::Path) -> Result<Vec<ChexpertScored>, crate::ReportError> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(Vec::new()) };
    let mut paths: Vec<std::path::PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let text = cft_data::fsutil::read_to_string(p)?;
            serde_json::from_str(&text).map_err(|e| crate::ReportError::Invalid {
                path: p.clone(),
                message: format!("line {}: not a `cft chexpert-score --json` file: {e}", e.line()),
            })
        })
        .collect()
}

/// The CheXpert table: published rows, the rows of prediction files scored here (`scored`,
/// per-task AUC and mean computed by `cft chexpert-score` from the files), and ours.
pub fn chexpert_table(
    published: &Published,
    ours: Ours<'_>,
    scored: &[ChexpertScored],
    sources: &mut Vec<String>,
) -> Table {
    let mut header = vec!["Method".to_string(), "Origin".to_string()];
    header.extend(CHEXPERT_TASKS.iter().map(|s| s.to_string()));
    header.push("mAUC".to_string());
    let mut t = Table {
        caption: "CheXpert competition test set (500 studies): AUC per task and their mean (mAUC).".into(),
        header,
        rows: Vec::new(),
        links: Vec::new(),
    };
    for r in &published.chexpert() {
        let mut row = vec![r.method.clone(), cite(sources, r)];
        row.extend(CHEXPERT_TASKS.iter().map(|k| r.values.get(*k).map_or_else(|| "—".into(), |v| format!("{v:.4}"))));
        let mauc = r.values.get("mAUC").copied().or_else(|| r.values.get("mAUC(%)").map(|v| v / 100.0));
        row.push(mauc.map_or_else(|| "—".into(), |v| format!("{v:.4}")));
        t.rows.push(row);
        t.links.push(Vec::new());
    }
    for sc in scored {
        let mut row = vec![
            sc.predictions.trim_end_matches(".csv").to_string(),
            format!(
                "scored here: `cft chexpert-score` on {} against {} ({} studies)",
                sc.predictions, sc.groundtruth, sc.studies
            ),
        ];
        row.extend(
            CHEXPERT_TASKS
                .iter()
                .map(|k| sc.tasks.iter().find(|(t, _)| t == k).map_or_else(|| "—".into(), |(_, v)| format!("{v:.4}"))),
        );
        // The mean with every digit: it is compared with the leaderboard's to the bit.
        row.push(format!("{}", sc.mean));
        t.rows.push(row);
        t.links.push(Vec::new());
    }
    match ours {
        Ours::NotRun(why) => {
            let mut row = vec!["ours (CFT)".to_string(), format!("not run: {why}")];
            row.extend((0..6).map(|_| "not run".to_string()));
            t.rows.push(row);
            t.links.push(Vec::new());
        }
        // Ours are scored on the validation CSV (the test labels are not public): said in Origin.
        Ours::Run(res, prefix) => {
            for r in &res.rows {
                let Some(cell) = r.cells.first() else { continue };
                let mut row = vec![
                    format!("{} [{}]", r.method, r.protocol.label()),
                    format!("ours, on the validation CSV, not the test set ({})", res.dataset),
                ];
                let mut links = vec![None, None];
                for k in CHEXPERT_TASKS {
                    let v = res.categories.iter().position(|c| c == k).and_then(|i| cell.per_category[i]);
                    row.push(v.map_or_else(|| "—".into(), |v| format!("{v:.4}")));
                    links.push(cell.run.as_ref().map(|p| format!("{prefix}{p}")));
                }
                row.push(cell.mean.map_or_else(|| "—".into(), |v| format!("{v:.4}")));
                links.push(None);
                t.rows.push(row);
                t.links.push(links);
            }
        }
    }
    t
}
