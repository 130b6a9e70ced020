//! `cft report`'s merges: every ablation grid and every unit-sharded single run found under a
//! runs folder whose cells or units are all present is merged into its tables, in place.

use crate::error::Result;
use std::path::{Path, PathBuf};

/// The reports folder whose `cft report` merges grids written to `out` by `cft run`: `out`'s
/// parent when `out` is an `ablations/` folder (the canned layout, whose index the parent's
/// report writes), else `out`.
pub fn report_dir_for_grids(out: &Path) -> PathBuf {
    match (out.file_name(), out.parent()) {
        (Some(n), Some(p)) if n == "ablations" => {
            if p.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                p.to_path_buf()
            }
        }
        _ => out.to_path_buf(),
    }
}

/// Sharded single runs (a `plan.json` beside a `runs/` folder) directly under `runs_dir`.
fn plan_dirs(runs_dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(runs_dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs.retain(|d| d.join("plan.json").is_file() && d.join("runs").is_dir());
    dirs
}

/// Grid folders (a `grid.json` beside a `cells/` folder) under `runs_dir/ablations/` and
/// directly under `runs_dir`, in name order.
fn grid_dirs(runs_dir: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for parent in [runs_dir.join("ablations"), runs_dir.to_path_buf()] {
        if let Ok(entries) = std::fs::read_dir(&parent) {
            let mut here: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            here.sort();
            dirs.extend(here.into_iter().filter(|d| d.join("grid.json").is_file() && d.join("cells").is_dir()));
        }
    }
    dirs
}

/// The grids and sharded runs under `runs_dir` that a report in place would merge (a report
/// written elsewhere leaves them, and should say so).
pub fn mergeable(runs_dir: &Path) -> Vec<PathBuf> {
    let mut all = grid_dirs(runs_dir);
    all.extend(plan_dirs(runs_dir));
    all
}

/// Merges, in place, every finished grid (its tidy table and, outside the canned
/// `ablations/` layout whose pages the index writes, its report) and every sharded single run
/// under `runs_dir`; returns a line per grid or run left as it was, or merged.
pub fn merge_finished(runs_dir: &Path) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    let canned = runs_dir.join("ablations");
    for d in grid_dirs(runs_dir) {
        match crate::ablation::merge(&d)? {
            None => {
                notes.push(format!("note: {}: not every cell has finished; its tables are not updated", d.display()))
            }
            Some((tidy, meta)) if !d.starts_with(&canned) => {
                cft_report::ablation::write_ablation_report(&d, &meta, &tidy)?;
            }
            Some(_) => {}
        }
    }
    for d in plan_dirs(runs_dir) {
        match crate::partial_label::merge_units(&d)? {
            None => {
                notes.push(format!("note: {}: not every unit has finished; its tables are not updated", d.display()))
            }
            Some(_) => notes.push(format!("merged the shards' units into {}", d.join("results.json").display())),
        }
    }
    Ok(notes)
}
