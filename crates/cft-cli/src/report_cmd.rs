//! `cft report`: rebuild every table and figure from the results on disk, without recomputing.

use anyhow::Result;
use std::path::PathBuf;

/// Arguments of `cft report`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// Folder holding one sub-folder per dataset, each with a `results.json`.
    #[arg(default_value = "reports")]
    pub runs_dir: PathBuf,
    /// Where to write the reports (default: in place).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs `cft report`.
pub fn run(args: &ReportArgs) -> Result<()> {
    let out = args.out.clone().unwrap_or_else(|| args.runs_dir.clone());
    let mut found = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&args.runs_dir)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.runs_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("results.json").is_file())
        .collect();
    entries.sort();
    for dir in entries {
        let res = cft_report::read_results(&dir.join("results.json"))?;
        let target = out.join(dir.file_name().expect("a folder name"));
        let files = cft_report::write_dataset_report(&target, &res)?;
        eprintln!("{}: {} files", target.display(), files.len());
        found.push(res.dataset);
    }
    if found.is_empty() {
        anyhow::bail!("{}: no <dataset>/results.json found; run `cft reproduce` first", args.runs_dir.display());
    }
    Ok(())
}
