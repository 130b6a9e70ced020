//! # cft-cli: the `cft` command line
//!
//! Flags → typed requests → one library call per command: every choice is parsed into the
//! owning crate's enum ([`args::choice`]), the work is the libraries' (`cft-experiment`'s
//! `run_spec`, `FinetuneJob`, head jobs and benchmarks; `cft-images`' `ExtractionJob`;
//! `cft-data`'s inspection; `cft-cuda`'s GPU check), and the commands only print and draw
//! progress ([`common`]). No command module uses another.

pub mod args;
pub mod bench_cmd;
pub mod chexpert_cmd;
pub mod common;
pub mod data_cmd;
pub mod evaluate_cmd;
pub mod extract_cmd;
pub mod finetune_cmd;
pub mod gpu_cmd;
pub mod report_cmd;
pub mod reproduce_cmd;
pub mod run_cmd;

pub use cft_experiment::{checkpoint, manifest};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// Category-wise Fine-Tuning (CFT): repair the linear head of a multi-label classifier by
/// re-fitting each category on its known labels only.
#[derive(Debug, Parser)]
#[command(name = "cft", version, about, long_about = None)]
pub struct Cli {
    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// CPU kernel level: scalar, avx2, avx512 or auto (default: `CFT_KERNEL`, else auto). Results are
    /// bit-identical at every level; only the speed differs.
    #[arg(long, global = true)]
    pub kernel: Option<String>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the paper's partial-label experiment end to end on a bundled dataset (default: scene)
    /// and write tables, plots and a run manifest under `reports/<dataset>/`.
    Reproduce(reproduce_cmd::ReproduceArgs),
    /// Run an experiment from its TOML spec (experiments/*.toml): data, labels, base heads, CFT,
    /// selection protocols, output folder.
    Run(run_cmd::RunArgs),
    /// Fine-tune a head category by category on the known labels of a feature set.
    Finetune(finetune_cmd::FinetuneArgs),
    /// Score a head on a labelled feature set (per-category AP or AUC and their mean).
    Evaluate(evaluate_cmd::EvaluateArgs),
    /// Train a base head on frozen features, assuming unknown labels negative (AN) or ignoring them.
    TrainHead(evaluate_cmd::TrainHeadArgs),
    /// Rebuild tables and plots from the results on disk (nothing is recomputed).
    Report(report_cmd::ReportArgs),
    /// Time one BP epoch and one GA generation per category at COCO scale (synthetic features).
    Bench(bench_cmd::BenchArgs),
    /// Score CheXpert competition predictions against the test ground truth (mean AUC of 5 tasks).
    ChexpertScore(chexpert_cmd::ChexpertScoreArgs),
    /// Dataset adapters: inspect a dataset, convert COCO labels, benchmark the adapters.
    #[command(subcommand)]
    Data(data_cmd::DataCommand),
    /// Extract backbone features of images into a feature set (candle; CPU or CUDA).
    Extract(extract_cmd::ExtractArgs),
    /// Concatenate feature-set shards written by `extract --shard`.
    MergeFeatures(extract_cmd::MergeArgs),
    /// Time a backbone's forward pass (images/s, input already on the device).
    BenchBackbone(extract_cmd::BenchBackboneArgs),
    /// Check the CUDA engine against the CPU (random table, AP/AUC kernels, BP and GA on scene).
    GpuCheck(gpu_cmd::GpuCheckArgs),
}

pub use cft_experiment::engine::max_threads;

/// An error as one line: each cause of the chain once. Causes whose text the message before
/// already holds (an error that prints its source as part of itself) are left out.
pub fn error_message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Parses the process's command line. A negative number is taken as a flag's value (`--lr -1`
/// reaches the range check that names the flag) rather than as an unknown flag.
pub fn parse() -> Cli {
    try_parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
}

/// Parses a command line (the program's name first) as the binary does.
pub fn try_parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    fn negatives(cmd: clap::Command) -> clap::Command {
        cmd.allow_negative_numbers(true).mut_subcommands(negatives)
    }
    let matches = negatives(Cli::command()).try_get_matches_from(args)?;
    Cli::from_arg_matches(&matches)
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(n) = cli.threads {
        let max = max_threads();
        if n == 0 || n > max {
            anyhow::bail!(
                "--threads {n}: expected 1 to {max} (this machine has {} cores)",
                std::thread::available_parallelism().map_or(1, usize::from)
            );
        }
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global()?;
    }
    let level = match (&cli.kernel, std::env::var("CFT_KERNEL")) {
        (Some(k), _) => Some(k.parse::<cft_core::kernels::Detected>().map_err(|e| anyhow::anyhow!("--kernel: {e}"))?),
        (None, Ok(k)) => {
            Some(k.parse::<cft_core::kernels::Detected>().map_err(|e| anyhow::anyhow!("CFT_KERNEL: {e}"))?)
        }
        (None, Err(_)) => None,
    };
    if let Some(level) = level {
        cft_core::kernels::set_kernel_level(level);
    }
    match cli.command {
        Command::Reproduce(a) => reproduce_cmd::run(&a).map(|_| ()),
        Command::Run(a) => run_cmd::run(&a),
        Command::Finetune(a) => finetune_cmd::run(&a),
        Command::Evaluate(a) => evaluate_cmd::evaluate(&a),
        Command::TrainHead(a) => evaluate_cmd::train_head(&a),
        Command::Report(a) => report_cmd::run(&a),
        Command::Bench(a) => bench_cmd::run(&a),
        Command::ChexpertScore(a) => chexpert_cmd::run(&a),
        Command::GpuCheck(a) => gpu_cmd::run(&a),
        Command::Extract(a) => extract_cmd::run(&a),
        Command::Data(c) => data_cmd::run(&c),
        Command::MergeFeatures(a) => extract_cmd::merge(&a),
        Command::BenchBackbone(a) => extract_cmd::bench_backbone(&a),
    }
}
