//! `cft report`: rebuild every table and figure from the results on disk, without recomputing.

use anyhow::Result;
use std::path::PathBuf;

/// Arguments of `cft report`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// Folder holding one sub-folder per dataset (each with a `results.json`), `reference/`
    /// (published numbers) and optionally `bench/bench.json`.
    #[arg(default_value = "reports")]
    pub runs_dir: PathBuf,
    /// Where to write the reports (default: in place).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Folder with `paper_results.csv` and `reference_timings.csv` (default: RUNS_DIR/reference
    /// when it has them, else the copies built into this binary, written to OUT/reference).
    #[arg(long)]
    pub reference: Option<PathBuf>,
}

/// Runs `cft report`.
pub fn run(args: &ReportArgs) -> Result<()> {
    let out = args.out.clone().unwrap_or_else(|| args.runs_dir.clone());
    if !args.runs_dir.is_dir() {
        anyhow::bail!("{}: no such folder; run `cft reproduce` first", args.runs_dir.display());
    }
    if out != args.runs_dir {
        // Results and bench figures are read from RUNS_DIR; copy the bench file so links resolve.
        let bench = args.runs_dir.join("bench/bench.json");
        if bench.is_file() {
            cft_data::write_atomic(&out.join("bench/bench.json"), &std::fs::read(&bench)?)?;
        }
    }
    // Ablation grids whose cells are here (run in shards, or resumed): merge them first, in
    // place (a report written elsewhere leaves the runs folder untouched). Grids sit under
    // RUNS_DIR/ablations/ (the canned layout) or directly under RUNS_DIR (`cft run --out RUNS_DIR`).
    let in_place = out == args.runs_dir;
    if in_place {
        let canned = args.runs_dir.join("ablations");
        for d in grid_dirs(&args.runs_dir) {
            match cft_experiment::ablation::merge(&d)? {
                None => eprintln!("note: {}: not every cell has finished; its tables are not updated", d.display()),
                // The index writes the pages of `ablations/`; a grid elsewhere gets them here.
                Some((tidy, meta)) if !d.starts_with(&canned) => {
                    cft_report::ablation::write_ablation_report(&d, &meta, &tidy)?;
                }
                Some(_) => {}
            }
        }
    }
    // Single runs sharded over units (`cft run --shard` on a spec without a grid): a
    // `plan.json` beside `runs/`.
    if in_place {
        for d in plan_dirs(&args.runs_dir) {
            match cft_experiment::partial_label::merge_units(&d)? {
                None => eprintln!("note: {}: not every unit has finished; its tables are not updated", d.display()),
                Some(_) => eprintln!("merged the shards' units into {}", d.join("results.json").display()),
            }
        }
    }
    // Checked merges first; the published numbers are written beside the index only then.
    let reference = match &args.reference {
        Some(r) => r.clone(),
        None if args.runs_dir.join("reference/paper_results.csv").is_file() => args.runs_dir.join("reference"),
        None => cft_report::ensure_reference(&out)?,
    };
    let files = cft_report::write_index(&args.runs_dir, &out, &reference)?;
    eprintln!("wrote {} files; index: {}", files.len(), out.join("README.md").display());
    Ok(())
}

/// Sharded single runs (a `plan.json` beside a `runs/` folder) directly under `runs_dir`.
fn plan_dirs(runs_dir: &std::path::Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(runs_dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs.retain(|d| d.join("plan.json").is_file() && d.join("runs").is_dir());
    dirs
}

/// Grid folders (a `grid.json` beside a `cells/` folder) under `runs_dir/ablations/` and
/// directly under `runs_dir`, in name order.
fn grid_dirs(runs_dir: &std::path::Path) -> Vec<PathBuf> {
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

/// The reports folder whose `cft report` merges grids written to `out` by `cft run`: `out`'s
/// parent when `out` is an `ablations/` folder (the canned layout, whose index the parent's
/// report writes), else `out`.
pub fn report_dir_for_grids(out: &std::path::Path) -> PathBuf {
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
