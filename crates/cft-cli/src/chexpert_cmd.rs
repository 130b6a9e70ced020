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
}

/// Runs `cft chexpert-score`: per-task AUC and the mean, printed with every digit.
pub fn run(args: &ChexpertScoreArgs) -> Result<()> {
    let s = cft_data::chexpert::competition_score(&args.predictions, &args.groundtruth)?;
    for (task, auc) in &s.tasks {
        println!("{task:<17} {auc}");
    }
    println!("mean AUC ({} studies, {} tasks): {}", s.studies, s.tasks.len(), s.mean);
    Ok(())
}
