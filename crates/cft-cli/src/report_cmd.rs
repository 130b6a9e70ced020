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
    /// Folder with `paper_results.csv` and `reference_timings.csv` (default: RUNS_DIR/reference).
    #[arg(long)]
    pub reference: Option<PathBuf>,
}

/// Runs `cft report`.
pub fn run(args: &ReportArgs) -> Result<()> {
    let out = args.out.clone().unwrap_or_else(|| args.runs_dir.clone());
    let reference = args.reference.clone().unwrap_or_else(|| args.runs_dir.join("reference"));
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
    // place (a report written elsewhere leaves the runs folder untouched).
    let in_place = out == args.runs_dir;
    if let (true, Ok(entries)) = (in_place, std::fs::read_dir(args.runs_dir.join("ablations"))) {
        let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        dirs.sort();
        for d in dirs.iter().filter(|d| d.join("grid.json").is_file() && d.join("cells").is_dir()) {
            if cft_experiment::ablation::merge(d)?.is_none() {
                eprintln!("note: {}: not every cell has finished; its tables are not updated", d.display());
            }
        }
    }
    let files = cft_report::write_index(&args.runs_dir, &out, &reference)?;
    eprintln!("wrote {} files; index: {}", files.len(), out.join("README.md").display());
    Ok(())
}
