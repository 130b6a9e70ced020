//! `cft chexpert-score`: the CheXpert competition score of a predictions file.

use anyhow::Result;
use std::path::PathBuf;

/// Arguments of `cft chexpert-score`.
#[derive(Debug, Clone, clap::Args)]
pub struct ChexpertScoreArgs {
    /// Predictions CSV: `Study` and one column per competition task (any order).
    #[arg(long)]
    pub predictions: PathBuf,
    /// The test set's `groundtruth.csv`.
    #[arg(long)]
    pub groundtruth: PathBuf,
    /// Also write the scores as JSON (`cft report` shows files under
    /// `reports/chexpert/scored/` as "scored here" rows of the CheXpert table).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Runs `cft chexpert-score`: per-task AUC and the mean, printed with every digit.
pub fn run(args: &ChexpertScoreArgs) -> Result<()> {
    if let Some(j) = &args.json {
        cft_data::check_outputs(
            &[
                cft_data::Named::new("--predictions", &args.predictions),
                cft_data::Named::new("--groundtruth", &args.groundtruth),
            ],
            &[cft_data::Named::new("--json", j)],
        )?;
    }
    let s = cft_data::chexpert::competition_score(&args.predictions, &args.groundtruth)?;
    for (task, auc) in &s.tasks {
        println!("{task:<17} {auc}");
    }
    println!("mean AUC ({} studies, {} tasks): {}", s.studies, s.tasks.len(), s.mean);
    if let Some(j) = &args.json {
        // File names only: the record is the same on every machine.
        let name = |p: &PathBuf| p.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let scored = cft_report::published_tables::ChexpertScored {
            predictions: name(&args.predictions),
            groundtruth: name(&args.groundtruth),
            studies: s.studies,
            tasks: s.tasks.clone(),
            mean: s.mean,
        };
        cft_data::write_atomic(j, (serde_json::to_string_pretty(&scored)? + "\n").as_bytes())?;
    }
    Ok(())
}
