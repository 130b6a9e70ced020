//! `cft finetune`: flags → a [`FinetuneJob`] (checked configuration, engine, resume, outputs:
//! `cft_experiment::finetune_job`) → the per-category table.

use crate::args::{choice, flag_error};
use anyhow::Result;
use cft_core::{GaEliteTies, MethodName, Metric, UncertainPolicy};
use cft_cuda::GemmPrecision;
use cft_experiment::engine::{EngineChoice, EngineName};
use cft_experiment::finetune_job::{outcome_table, requested_outcomes, FinetuneJob, FinetuneRequest};
use cft_pipeline::Device;
use std::path::PathBuf;

/// Arguments of `cft finetune`.
#[derive(Debug, Clone, clap::Args)]
pub struct FinetuneArgs {
    /// Test hook (hidden): stop as if killed once this many categories were checkpointed (exit status 3); the resume tests use it.
    #[arg(long, hide = true)]
    pub abort_after_categories: Option<usize>,
    /// Training feature set (safetensors with `features` and `labels`, dense or sparse): CFT fits on its known labels.
    #[arg(long)]
    pub train: PathBuf,
    /// Validation feature set: the epoch with the best score on its known labels is kept.
    #[arg(long)]
    pub valid: PathBuf,
    /// The trained head to repair: an nn.Linear state dict (`weight [C, d]`, optional
    /// `bias [C]`) or a whole model's state dict whose classifier is found (`fc.`, `classifier.`,
    /// `head.`, `linear.`; `module.` prefixes accepted).
    #[arg(long)]
    pub head: PathBuf,
    /// The classifier's key prefix in a model state dict (e.g. `fc` for `fc.weight`).
    #[arg(long)]
    pub head_key: Option<String>,
    /// Optimizer: bp-asl (Adam on the asymmetric loss, as the paper), bp-bce, or ga (the genetic
    /// algorithm maximising the metric on training known labels).
    #[arg(long, value_parser = choice::<MethodName>())]
    pub method: MethodName,
    /// Where to write the fine-tuned head (a `.manifest.json` is written beside it).
    #[arg(long)]
    pub out: PathBuf,
    /// Adam learning rate for bp-asl / bp-bce.
    #[arg(long, default_value_t = 1e-4)]
    pub lr: f32,
    /// Maximum epochs (GA: generations) per category.
    #[arg(long, default_value_t = 5000)]
    pub epochs: usize,
    /// Stop a category after this many epochs without improvement.
    #[arg(long, default_value_t = 300)]
    pub patience: usize,
    /// Seed of the GA's per-category random streams.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Validation (and GA fitness) metric.
    #[arg(long, value_parser = choice::<Metric>(), default_value = "ap")]
    pub metric: Metric,
    /// Uncertain (−1) labels: ignore (treat as unknown), ones or zeros.
    #[arg(long, value_parser = choice::<UncertainPolicy>(), default_value = "ignore")]
    pub uncertain: UncertainPolicy,
    /// Write the per-epoch history of every category to this CSV file.
    #[arg(long)]
    pub history: Option<PathBuf>,
    /// Fine-tune only these categories (comma-separated indices); others keep their weights.
    #[arg(long, value_delimiter = ',')]
    pub categories: Option<Vec<usize>>,
    /// Continue an interrupted run from `<out>.progress.jsonl`.
    #[arg(long)]
    pub resume: bool,
    /// per-category: each category runs its own loop (categories in parallel); batched: all
    /// categories of a batch advance one epoch per step and share one validation pass (both
    /// give identical results); cuda: all categories on a GPU (a `cuda` build); auto: cuda on
    /// a CUDA `--device` of a `cuda` build, else batched.
    #[arg(long, value_parser = choice::<EngineName>(), default_value = "batched")]
    pub engine: EngineName,
    /// Categories held in memory at once by the batched and CUDA engines.
    #[arg(long, default_value_t = cft_core::DEFAULT_BATCH)]
    pub batch: usize,
    /// CUDA device of `--engine cuda` (cuda or cuda:N).
    #[arg(long, default_value = "cuda:0")]
    pub device: Device,
    /// GEMM precision of `--engine cuda`: f32, tf32 or bf16 (a CPU engine computes in f32 and
    /// refuses another).
    #[arg(long, value_parser = choice::<GemmPrecision>(), default_value = "f32")]
    pub gemm_precision: GemmPrecision,
    /// `--method ga`: the elite among equally fit individuals. `first`: the first fittest (the
    /// head that is validated); `torch-cpu`: the CFT authors' code on the CPU (the first index
    /// of PyTorch's unstable descending sort; the head drifts across ties). CPU engines only.
    #[arg(long, value_parser = choice::<GaEliteTies>(), default_value = "first")]
    pub ga_elite_ties: GaEliteTies,
}

impl FinetuneArgs {
    /// The job these flags describe.
    fn job(&self) -> Result<FinetuneJob> {
        crate::args::check_lr("--lr", self.lr)?;
        if self.batch == 0 {
            anyhow::bail!("--batch 0: the batched engine needs at least one category per batch");
        }
        let mut engine = EngineChoice::resolve(self.engine, self.device, self.gemm_precision, self.batch)?;
        if let EngineChoice::Cuda { max_batch, .. } = &mut engine {
            *max_batch = Some(self.batch);
        }
        let request = FinetuneRequest {
            method: self.method,
            lr: self.lr,
            max_epochs: self.epochs,
            patience: self.patience,
            seed: self.seed,
            metric: self.metric,
            elite_ties: self.ga_elite_ties,
            categories: self.categories.clone(),
            keep_history: self.history.is_some(),
        };
        // The ranges the core checks once the data's categories are known; those that do not
        // depend on the data are refused here already, before any file is read.
        request.config().check().map_err(flag_error)?;
        Ok(FinetuneJob {
            train: self.train.clone(),
            valid: self.valid.clone(),
            head: self.head.clone(),
            head_key: self.head_key.clone(),
            uncertain: self.uncertain,
            request,
            engine,
            out: self.out.clone(),
            history: self.history.clone(),
            resume: self.resume,
        })
    }
}

/// Runs `cft finetune`.
pub fn run(args: &FinetuneArgs) -> Result<()> {
    let job = args.job()?;
    // Fault injection for the resume tests: stop as if killed after N checkpointed categories.
    let abort_after = args.abort_after_categories;
    let hook = move |n: usize| {
        if abort_after == Some(n) {
            eprintln!("--abort-after-categories {n}: stopping as if interrupted");
            std::process::exit(3);
        }
    };
    let done = job.run(&crate::common::Bars::default(), Some(&hook)).map_err(|e| match e {
        cft_experiment::error::ExperimentError::Param(p) => flag_error(p),
        other => other.into(),
    })?;
    print!("{}", outcome_table(&requested_outcomes(&done), &done.names, args.epochs));
    for note in &done.notes {
        eprintln!("note: {note}");
    }
    let improved = done.outcomes.iter().filter(|o| o.best_epoch >= 0).count();
    eprintln!(
        "wrote {} ({improved} of {} categories improved) in {:.1} s",
        args.out.display(),
        done.outcomes.len(),
        done.seconds
    );
    Ok(())
}
