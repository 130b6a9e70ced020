//! `cft report`: rebuild every table and figure from the results on disk, without recomputing
//! (merging finished grids and sharded runs first: `cft_experiment::merge`).

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
    if out == args.runs_dir {
        // Grids and unit-sharded runs are merged in place only: a report written elsewhere
        // leaves the runs folder untouched.
        for line in cft_experiment::merge::merge_finished(&args.runs_dir)? {
            eprintln!("{line}");
        }
    } else {
        for d in cft_experiment::merge::mergeable(&args.runs_dir) {
            eprintln!(
                "note: {}: sharded cells or units are merged in place only; run `cft report {}` first, then report to {}",
                d.display(),
                args.runs_dir.display(),
                out.display()
            );
        }
        // Results and bench figures are read from RUNS_DIR; copy the bench file so links resolve.
        let bench = args.runs_dir.join("bench/bench.json");
        if bench.is_file() {
            cft_data::write_atomic(&out.join("bench/bench.json"), &std::fs::read(&bench)?)?;
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
