//! `cft finetune`: CFT on a feature set, with a per-category summary, history CSV, run
//! manifest, and a checkpoint file that lets an interrupted run resume where it stopped.

use crate::checkpoint::{self, Fingerprint};
use crate::common::{category_names, load_head_for, load_labelled, outcome_table, progress, sibling};
use crate::manifest::{write_manifest, RunClock};
use anyhow::{Context, Result};
use cft_core::{
    finetune, AdamConfig, CategoryOutcome, FineTuneConfig, GaConfig, Loss, Method, Metric, SplitRef, UncertainPolicy,
};
use cft_data::{check_outputs, Named, OutputLock};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

/// The optimizer choices on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum MethodArg {
    /// Adam on the asymmetric loss (γ−=4, γ+=0, clip 0.05), as the paper.
    BpAsl,
    /// Adam on binary cross-entropy.
    BpBce,
    /// The genetic algorithm maximising the metric on training known labels.
    Ga,
}

impl MethodArg {
    /// The core method with the given learning rate (ignored by the GA).
    pub fn method(self, lr: f32) -> Method {
        let adam = AdamConfig { lr, ..AdamConfig::default() };
        match self {
            MethodArg::BpAsl => Method::Bp { loss: Loss::ASL_REFERENCE, adam },
            MethodArg::BpBce => Method::Bp { loss: Loss::Bce, adam },
            MethodArg::Ga => Method::Ga(GaConfig::default()),
        }
    }
}

/// Arguments of `cft finetune`.
#[derive(Debug, Clone, clap::Args)]
pub struct FinetuneArgs {
    /// Test hook (hidden): stop as if killed once this many categories were checkpointed (exit status 3); the resume tests use it.
    #[arg(long, hide = true)]
    pub abort_after_categories: Option<usize>,
    /// Training feature set (safetensors with `features` and `labels`): CFT fits on its known labels.
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
    /// Optimizer.
    #[arg(long, value_enum)]
    pub method: MethodArg,
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
    #[arg(long, value_enum, default_value_t = MetricArg::Ap)]
    pub metric: MetricArg,
    /// Uncertain (−1) labels: ignore (treat as unknown), ones or zeros.
    #[arg(long, value_enum, default_value_t = PolicyArg::Ignore)]
    pub uncertain: PolicyArg,
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
    /// categories of a batch advance one epoch per step and share one validation pass. Both
    /// give identical results.
    #[arg(long, value_enum, default_value_t = EngineArg::Batched)]
    pub engine: EngineArg,
    /// Categories held in memory at once by the batched engine.
    #[arg(long, default_value_t = cft_core::DEFAULT_BATCH)]
    pub batch: usize,
    /// CUDA device of `--engine cuda` (cuda or cuda:N).
    #[arg(long, default_value = "cuda:0")]
    pub device: String,
    /// GEMM precision of `--engine cuda`: f32, tf32 or bf16.
    #[arg(long, default_value = "f32")]
    pub gemm_precision: String,
    /// `--method ga`: the elite among equally fit individuals. `first`: the first fittest (the
    /// head that is validated); `torch-cpu`: the CFT authors' code on the CPU (the first index
    /// of PyTorch's unstable descending sort; the head drifts across ties). CPU engines only.
    #[arg(long, value_enum, default_value_t = EliteTiesArg::First)]
    pub ga_elite_ties: EliteTiesArg,
}

/// The GA's elite on ties, on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum EliteTiesArg {
    /// The first fittest individual.
    First,
    /// PyTorch's CPU sort order (the reference).
    TorchCpu,
}

impl From<EliteTiesArg> for cft_core::GaEliteTies {
    fn from(a: EliteTiesArg) -> Self {
        match a {
            EliteTiesArg::First => Self::First,
            EliteTiesArg::TorchCpu => Self::TorchCpu,
        }
    }
}

/// Engine choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum EngineArg {
    /// One loop per category.
    PerCategory,
    /// All categories of a batch step together.
    Batched,
    /// All categories on a GPU at once (a build with `--features cuda`). BP agrees with the CPU
    /// to float tolerance; the GA draws from different (counter-based) random streams.
    Cuda,
}

/// Metric choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum MetricArg {
    /// Average precision.
    Ap,
    /// ROC-AUC.
    Auc,
}

impl From<MetricArg> for Metric {
    fn from(m: MetricArg) -> Self {
        match m {
            MetricArg::Ap => Metric::Ap,
            MetricArg::Auc => Metric::Auc,
        }
    }
}

/// Uncertain-label policy choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum PolicyArg {
    /// Uncertain → unknown.
    Ignore,
    /// Uncertain → positive.
    Ones,
    /// Uncertain → negative.
    Zeros,
}

impl From<PolicyArg> for UncertainPolicy {
    fn from(p: PolicyArg) -> Self {
        match p {
            PolicyArg::Ignore => UncertainPolicy::Ignore,
            PolicyArg::Ones => UncertainPolicy::Ones,
            PolicyArg::Zeros => UncertainPolicy::Zeros,
        }
    }
}

/// One finished category as stored in the checkpoint file.
#[derive(Debug, Serialize, Deserialize)]
struct Checkpoint {
    outcome: CategoryOutcome,
    weight: Vec<f32>,
    bias: f32,
}

/// The kind tag of `cft finetune` progress files.
const CHECKPOINT_KIND: &str = "cft finetune";

/// What a checkpoint must agree on to be resumed: everything that decides a category's result.
#[derive(Serialize)]
struct ResumeKey<'a> {
    finetune: &'a FineTuneConfig,
    uncertain: PolicyArg,
    /// The CPU engines give identical results; the CUDA engine's depend on its GEMM precision.
    engine: String,
    head_key: Option<&'a str>,
}

/// The core's check of the whole configuration for data of `n_categories`, its parameters
/// under this command's flags.
fn check_config(cfg: &FineTuneConfig, n_categories: usize) -> Result<()> {
    cfg.check_for(n_categories).map_err(|e| {
        let flag = match e.param.as_str() {
            "max_epochs" => "--epochs",
            "patience" => "--patience",
            "adam.lr" => "--lr",
            "categories" => "--categories",
            other => return anyhow::anyhow!("{}", e.clone().named(&format!("--{}", other.replace(['.', '_'], "-")))),
        };
        anyhow::anyhow!("{}", e.named(flag))
    })
}

/// The fine-tuning configuration of the flags and the categories to run, checked by the core.
fn finetune_config(args: &FinetuneArgs, c: usize) -> Result<(FineTuneConfig, Vec<usize>)> {
    let mut cfg = FineTuneConfig::reference(args.method.method(args.lr));
    if let Method::Ga(ga) = &mut cfg.method {
        ga.elite_ties = args.ga_elite_ties.into();
    }
    cfg.metric = args.metric.into();
    cfg.max_epochs = args.epochs;
    cfg.patience = args.patience;
    cfg.seed = args.seed;
    cfg.keep_history = args.history.is_some();
    let requested: Vec<usize> = args.categories.clone().unwrap_or_else(|| (0..c).collect());
    check_config(&FineTuneConfig { categories: Some(requested.clone()), ..cfg.clone() }, c)?;
    Ok((cfg, requested))
}

/// The categories a resumed run keeps from its checkpoint (each checked against this run), or
/// a fresh checkpoint holding only the run's fingerprint.
fn resume_state(
    args: &FinetuneArgs,
    progress_path: &std::path::Path,
    fingerprint: &Fingerprint,
    requested: &[usize],
    d: usize,
) -> Result<Vec<Checkpoint>> {
    let mut done: Vec<Checkpoint> = Vec::new();
    if args.resume && progress_path.is_file() {
        for (line, cp) in checkpoint::read_progress::<Checkpoint>(progress_path, CHECKPOINT_KIND, fingerprint)? {
            let k = cp.outcome.category;
            let bad = if !requested.contains(&k) {
                Some(format!("category {k} is not one of this run's categories"))
            } else if done.iter().any(|o| o.outcome.category == k) {
                Some(format!("category {k} is listed twice"))
            } else if cp.weight.len() != d || cp.weight.iter().any(|v| !v.is_finite()) || !cp.bias.is_finite() {
                Some(format!("category {k}: {} finite weights expected, found {}", d, cp.weight.len()))
            } else {
                None
            };
            if let Some(why) = bad {
                anyhow::bail!("{}:{line}: {why}: refusing to resume", progress_path.display());
            }
            done.push(cp);
        }
        eprintln!("resuming: {} of {} categories already done", done.len(), requested.len());
    } else {
        if args.resume {
            eprintln!("{}: no checkpoint, starting from the beginning", progress_path.display());
        }
        let header = checkpoint::header_line(CHECKPOINT_KIND, fingerprint)? + "\n";
        std::fs::write(progress_path, header).with_context(|| progress_path.display().to_string())?;
    }
    Ok(done)
}

/// The checkpoint's fingerprint: everything that decides a category's result, and the inputs.
fn run_fingerprint(
    args: &FinetuneArgs,
    cfg: &FineTuneConfig,
    requested: &[usize],
    inputs: &[Named<'_>; 3],
) -> Result<Fingerprint> {
    let key_cfg = FineTuneConfig { categories: Some(requested.to_vec()), keep_history: false, ..cfg.clone() };
    let engine_family = match args.engine {
        EngineArg::Cuda => format!("cuda {}", args.gemm_precision),
        _ => "cpu".to_string(),
    };
    let key = ResumeKey {
        finetune: &key_cfg,
        uncertain: args.uncertain,
        engine: engine_family,
        head_key: args.head_key.as_deref(),
    };
    Ok(Fingerprint::new(&key, &(*inputs).map(|n| (n.role, n.path)))?)
}

/// The training and validation sets and the head, checked against each other (shapes and
/// category names).
fn load_inputs(args: &FinetuneArgs) -> Result<(crate::common::Labelled, crate::common::Labelled, cft_data::HeadFile)> {
    let train = load_labelled(&args.train, args.uncertain.into())?;
    let valid = load_labelled(&args.valid, args.uncertain.into())?;
    let (d, c) = (train.set.features.cols(), train.labels.n_categories());
    if valid.set.features.cols() != d || valid.labels.n_categories() != c {
        anyhow::bail!(
            "{}: features [{}, {}] with {} label columns do not match the training set {} ([{}, {d}], {c} label columns)",
            args.valid.display(),
            valid.set.features.rows(),
            valid.set.features.cols(),
            valid.labels.n_categories(),
            args.train.display(),
            train.set.features.rows()
        );
    }
    let head_file = load_head_for(&args.head, args.head_key.as_deref(), d, Some(c), &args.train)?;
    crate::common::check_same_categories(&[
        (&args.train, train.set.categories.as_deref()),
        (&args.valid, valid.set.categories.as_deref()),
        (&args.head, head_file.categories.as_deref()),
    ])?;
    Ok((train, valid, head_file))
}

/// Runs `cft finetune`.
pub fn run(args: &FinetuneArgs) -> Result<()> {
    let clock = RunClock::start();
    // Everything that can be refused is refused before a file is touched.
    if args.engine == EngineArg::Cuda && !cfg!(feature = "cuda") {
        return Err(crate::gpu_cmd::not_built(Some("--engine batched (the CPU engine)")));
    }
    crate::args::check_lr("--lr", args.lr)?;
    if args.batch == 0 {
        anyhow::bail!("--batch 0: the batched engine needs at least one category per batch");
    }
    let progress_path = sibling(&args.out, ".progress.jsonl");
    let manifest_path = sibling(&args.out, ".manifest.json");
    let inputs =
        [Named::new("--train", &args.train), Named::new("--valid", &args.valid), Named::new("--head", &args.head)];
    let mut outputs = vec![
        Named::new("--out", &args.out),
        Named::new("the manifest (<out>.manifest.json)", &manifest_path),
        Named::new("the checkpoint (<out>.progress.jsonl)", &progress_path),
    ];
    if let Some(h) = &args.history {
        outputs.push(Named::new("--history", h));
    }
    check_outputs(&inputs, &outputs)?;
    let _lock = OutputLock::acquire(&args.out)?;
    let (train, valid, head_file) = load_inputs(args)?;
    let (d, c) = (train.set.features.cols(), train.labels.n_categories());
    let head = head_file.head;
    let names = category_names(&train.set, c);
    let (mut cfg, requested) = finetune_config(args, c)?;
    let fingerprint = run_fingerprint(args, &cfg, &requested, &inputs)?;
    // Resume: categories already in the checkpoint keep their stored result.
    let done = resume_state(args, &progress_path, &fingerprint, &requested, d)?;
    cfg.categories =
        Some(requested.iter().copied().filter(|k| !done.iter().any(|cp| cp.outcome.category == *k)).collect());
    let sparse_t = train.labels.to_sparse();
    let sparse_v = valid.labels.to_sparse();
    // Progress in category-epochs (the work), so that the rate and the estimate follow it; a
    // category that stops early (patience) or is skipped counts its remaining epochs as done.
    let per_category = args.epochs.max(1) as u64;
    let what = |finished: usize| format!("CFT {} ({finished}/{} categories)", cfg.method.name(), requested.len());
    let bar = progress(requested.len() as u64 * per_category, &what(done.len()));
    bar.inc(done.len() as u64 * per_category);
    let categories_done = std::sync::atomic::AtomicUsize::new(done.len());
    let epochs_reported = args.engine == EngineArg::Batched;
    let checkpoint = Mutex::new(
        std::fs::OpenOptions::new()
            .append(true)
            .open(&progress_path)
            .with_context(|| progress_path.display().to_string())?,
    );
    let abort_after = args.abort_after_categories;
    let finished = std::sync::atomic::AtomicUsize::new(0);
    let on_done = |o: &CategoryOutcome| {
        if o.skipped != Some(cft_core::SkipReason::NotRequested) {
            let entry = Checkpoint {
                outcome: CategoryOutcome { history: Vec::new(), ..o.clone() },
                weight: o.weight.clone(),
                bias: o.bias,
            };
            if let (Ok(line), Ok(mut f)) = (checkpoint::entry_line(&entry), checkpoint.lock()) {
                // Best effort: a failed checkpoint write only costs a redo on resume.
                let _ = writeln!(f, "{line}");
                let _ = f.flush();
                let n = finished.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                if abort_after == Some(n) {
                    eprintln!("--abort-after-categories {n}: stopping as if interrupted");
                    std::process::exit(3);
                }
            }
            let counted = if epochs_reported { o.epochs_run.min(args.epochs) as u64 } else { 0 };
            bar.inc(per_category - counted);
            let n = categories_done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            bar.set_message(what(n));
        }
    };
    let on_epochs = |n: usize| bar.inc(n as u64);
    let engine = |head: &cft_core::LinearHead,
                  t,
                  v,
                  cfg: &FineTuneConfig,
                  cb: &(dyn Fn(&CategoryOutcome) + Sync)|
     -> Result<cft_core::FineTuneRun> {
        Ok(match args.engine {
            EngineArg::PerCategory => finetune(head, t, v, cfg, cb),
            EngineArg::Batched => cft_core::finetune_batched_observed(head, t, v, cfg, args.batch, cb, &on_epochs),
            EngineArg::Cuda => cuda_finetune(args, head, t, v, cfg, cb)?,
        })
    };
    let mut run = engine(
        &head,
        SplitRef { features: &train.set.features, labels: &sparse_t },
        SplitRef { features: &valid.set.features, labels: &sparse_v },
        &cfg,
        &on_done,
    )?;
    bar.finish_and_clear();
    for cp in done {
        let k = cp.outcome.category;
        run.head.weight.row_mut(k).copy_from_slice(&cp.weight);
        run.head.bias[k] = cp.bias;
        run.categories[k] = cp.outcome;
    }
    write_outputs(
        args,
        &clock,
        Finished { cfg, requested, run: &run, head_has_bias: head_file.has_bias, head_prefix: &head_file.prefix },
        &names,
        &fingerprint,
        &manifest_path,
        &progress_path,
    )?;
    let improved = run.categories.iter().filter(|o| o.best_epoch >= 0).count();
    eprintln!("wrote {} ({improved} of {c} categories improved) in {:.1} s", args.out.display(), clock.seconds());
    Ok(())
}

/// What a finished run hands to [`write_outputs`].
struct Finished<'a> {
    cfg: FineTuneConfig,
    requested: Vec<usize>,
    run: &'a cft_core::FineTuneRun,
    head_has_bias: bool,
    head_prefix: &'a str,
}

/// Prints the per-category table and writes the head, the history CSV and the manifest, then
/// removes the checkpoint.
fn write_outputs(
    args: &FinetuneArgs,
    clock: &RunClock,
    done: Finished<'_>,
    names: &[String],
    fingerprint: &Fingerprint,
    manifest_path: &std::path::Path,
    progress_path: &std::path::Path,
) -> Result<()> {
    let Finished { cfg, requested, run, head_has_bias, head_prefix } = done;
    let shown: Vec<CategoryOutcome> =
        run.categories.iter().filter(|o| requested.contains(&o.category)).cloned().collect();
    print!("{}", outcome_table(&shown, names, args.epochs));
    let mut written = vec![args.out.clone()];
    if !head_has_bias {
        eprintln!(
            "note: {} has no bias (nn.Linear(bias=False)); the fine-tuned head is written without one (AP and AUC do not depend on it)",
            args.head.display()
        );
    }
    cft_data::write_head_as(&args.out, &run.head, Some(names), head_has_bias)?;
    if let Some(h) = &args.history {
        let mut csv = String::from(crate::common::HISTORY_HEADER);
        crate::common::append_history(&mut csv, cfg.method.name(), names, &run.categories);
        cft_data::write_atomic(h, csv.as_bytes())?;
        written.push(h.clone());
    }
    #[derive(Serialize)]
    struct Config<'a> {
        finetune: &'a FineTuneConfig,
        uncertain: PolicyArg,
        engine: EngineArg,
        head_prefix: &'a str,
        categories: Vec<CategoryOutcome>,
    }
    written.push(manifest_path.to_path_buf());
    let cfg_for_manifest = FineTuneConfig { categories: Some(requested), ..cfg };
    let m = clock.manifest(
        "finetune",
        Config {
            finetune: &cfg_for_manifest,
            uncertain: args.uncertain,
            engine: args.engine,
            head_prefix,
            categories: run.categories.iter().map(|o| CategoryOutcome { history: Vec::new(), ..o.clone() }).collect(),
        },
        fingerprint.inputs.iter().map(|(_, f)| f.clone()).collect(),
        written,
    );
    write_manifest(manifest_path, &m)?;
    let _ = std::fs::remove_file(progress_path);
    Ok(())
}

#[cfg(feature = "cuda")]
fn cuda_finetune(
    args: &FinetuneArgs,
    head: &cft_core::LinearHead,
    t: SplitRef<'_>,
    v: SplitRef<'_>,
    cfg: &FineTuneConfig,
    cb: &(dyn Fn(&CategoryOutcome) + Sync),
) -> Result<cft_core::FineTuneRun> {
    let ordinal = crate::args::parse_device(&args.device)?.unwrap_or(0);
    let precision: cft_cuda::GemmPrecision = args.gemm_precision.parse().map_err(anyhow::Error::msg)?;
    let gpu = crate::gpu_cmd::open_gpu(ordinal)?;
    let opts = cft_cuda::CudaOptions { precision, max_batch: Some(args.batch) };
    Ok(gpu.finetune(head, t, v, cfg, &opts, cb)?)
}

#[cfg(not(feature = "cuda"))]
fn cuda_finetune(
    _args: &FinetuneArgs,
    _head: &cft_core::LinearHead,
    _t: SplitRef<'_>,
    _v: SplitRef<'_>,
    _cfg: &FineTuneConfig,
    _cb: &(dyn Fn(&CategoryOutcome) + Sync),
) -> Result<cft_core::FineTuneRun> {
    Err(crate::gpu_cmd::not_built(Some("--engine batched (the CPU engine)")))
}
