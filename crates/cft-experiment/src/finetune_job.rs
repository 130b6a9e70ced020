//! CFT on a researcher's own features, as a library job: `cft finetune` turns its flags into
//! a [`FinetuneJob`] and calls [`FinetuneJob::run`]; the Python package builds the same
//! [`FinetuneRequest`] from its keywords. The job owns the checked configuration, the engine,
//! the resume protocol (a checkpoint line per finished category in `<out>.progress.jsonl`,
//! fingerprinted with the configuration and the input files), and the outputs (the head, the
//! history CSV, the manifest), all written atomically.

use crate::checkpoint::{self, Fingerprint};
use crate::engine::EngineChoice;
use crate::error::{bail, Context, Result};
use crate::manifest::{write_manifest, RunClock};
use crate::partial_label::{append_history, HISTORY_HEADER};
use crate::progress::Progress;
use cft_core::{
    CategoryOutcome, CheckedFineTune, FineTuneConfig, FineTuneRun, GaEliteTies, Hooks, Method, MethodName, Metric,
    ParamError, SkipReason, SplitRef, UncertainPolicy,
};
use cft_data::{check_outputs, check_same_categories, read_head_for, read_labelled, Labelled, Named, OutputLock};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// What CFT is asked to do, by name: `cft finetune`'s flags and `cft.finetune`'s keywords.
#[derive(Debug, Clone, PartialEq)]
pub struct FinetuneRequest {
    /// The method.
    pub method: MethodName,
    /// Adam's learning rate (BP).
    pub lr: f32,
    /// At most this many epochs per category.
    pub max_epochs: usize,
    /// Stop a category after this many epochs without improvement.
    pub patience: usize,
    /// Seed of the GA's per-category streams.
    pub seed: u64,
    /// Validation (and GA fitness) metric.
    pub metric: Metric,
    /// The GA's elite among equally fit individuals.
    pub elite_ties: GaEliteTies,
    /// Only these categories (all when `None`).
    pub categories: Option<Vec<usize>>,
    /// Keep every category's per-epoch history.
    pub keep_history: bool,
}

impl FinetuneRequest {
    /// The paper's settings for `method`: 5000 epochs, patience 300, lr 1e-4, AP, seed 0.
    pub fn reference(method: MethodName) -> Self {
        Self {
            method,
            lr: 1e-4,
            max_epochs: 5000,
            patience: 300,
            seed: 0,
            metric: Metric::Ap,
            elite_ties: GaEliteTies::First,
            categories: None,
            keep_history: false,
        }
    }

    /// The core's configuration (unchecked; the requested categories as given, `None` for all).
    pub fn config(&self) -> FineTuneConfig {
        let mut method = self.method.reference(self.lr);
        if let Method::Ga(ga) = &mut method {
            ga.elite_ties = self.elite_ties;
        }
        FineTuneConfig {
            metric: self.metric,
            max_epochs: self.max_epochs,
            patience: self.patience,
            seed: self.seed,
            keep_history: self.keep_history,
            categories: self.categories.clone(),
            ..FineTuneConfig::reference(method)
        }
    }

    /// The core's configuration for data of `n_categories` (every category when none is
    /// named), checked by the core; a refusal names the core's parameter (`max_epochs`,
    /// `adam.lr`, `categories`, …), which a front end renames to its own option.
    pub fn checked(&self, n_categories: usize) -> Result<CheckedFineTune, ParamError> {
        let categories = Some(self.categories.clone().unwrap_or_else(|| (0..n_categories).collect()));
        let cfg = FineTuneConfig { categories, ..self.config() }.check()?;
        cfg.check_categories(n_categories)?;
        Ok(cfg)
    }
}

/// `cft finetune` as a job: files in, files out.
#[derive(Debug, Clone)]
pub struct FinetuneJob {
    /// Training feature set (its known labels train CFT).
    pub train: PathBuf,
    /// Validation feature set (its known labels select the epoch).
    pub valid: PathBuf,
    /// The head to repair (an `nn.Linear` or a model state dict).
    pub head: PathBuf,
    /// The classifier's key in a model state dict.
    pub head_key: Option<String>,
    /// Uncertain labels (−1): ignore, ones or zeros.
    pub uncertain: UncertainPolicy,
    /// What CFT does.
    pub request: FinetuneRequest,
    /// What runs it.
    pub engine: EngineChoice,
    /// The fine-tuned head; `<out>.manifest.json` and the checkpoint go beside it.
    pub out: PathBuf,
    /// The per-epoch history CSV, if asked for.
    pub history: Option<PathBuf>,
    /// Continue from `<out>.progress.jsonl`.
    pub resume: bool,
}

/// What a finished job did.
#[derive(Debug, Clone)]
pub struct FinetuneOutcome {
    /// Every category's outcome (those not requested included), in category order.
    pub outcomes: Vec<CategoryOutcome>,
    /// The requested categories.
    pub requested: Vec<usize>,
    /// Category names.
    pub names: Vec<String>,
    /// Categories taken from the checkpoint of an earlier run.
    pub resumed: usize,
    /// What the user should know (a head without bias).
    pub notes: Vec<String>,
    /// Wall time.
    pub seconds: f64,
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
    uncertain: UncertainPolicy,
    /// The CPU engines give identical results; the CUDA engine's depend on its GEMM precision.
    engine: String,
    head_key: Option<&'a str>,
}

impl FinetuneJob {
    /// The checkpoint beside the output.
    pub fn checkpoint_path(&self) -> PathBuf {
        cft_data::fsutil::sibling(&self.out, ".progress.jsonl")
    }

    /// The manifest beside the output.
    pub fn manifest_path(&self) -> PathBuf {
        cft_data::fsutil::sibling(&self.out, ".manifest.json")
    }

    /// The training and validation sets and the head, checked against each other (shapes and
    /// category names).
    fn load_inputs(&self) -> Result<(Labelled, Labelled, cft_data::HeadFile)> {
        let train = read_labelled(&self.train, self.uncertain)?;
        let valid = read_labelled(&self.valid, self.uncertain)?;
        let (d, c) = (train.features.cols(), train.labels.n_categories());
        if valid.features.cols() != d || valid.labels.n_categories() != c {
            bail!(
                "{}: features [{}, {}] with {} label columns do not match the training set {} ([{}, {d}], {c} label columns)",
                self.valid.display(),
                valid.features.rows(),
                valid.features.cols(),
                valid.labels.n_categories(),
                self.train.display(),
                train.features.rows()
            );
        }
        let head = read_head_for(&self.head, self.head_key.as_deref(), d, Some(c), &self.train)?;
        check_same_categories(&[
            (&self.train, train.categories.as_deref()),
            (&self.valid, valid.categories.as_deref()),
            (&self.head, head.categories.as_deref()),
        ])?;
        Ok((train, valid, head))
    }

    /// The checkpoint's fingerprint: everything that decides a category's result, and the inputs.
    fn fingerprint(&self, cfg: &CheckedFineTune, inputs: &[Named<'_>; 3]) -> Result<Fingerprint> {
        let key_cfg = FineTuneConfig { keep_history: false, ..cfg.config().clone() };
        let engine = match self.engine {
            EngineChoice::Cuda { precision, .. } => format!("cuda {precision}"),
            _ => "cpu".to_string(),
        };
        let key =
            ResumeKey { finetune: &key_cfg, uncertain: self.uncertain, engine, head_key: self.head_key.as_deref() };
        Fingerprint::new(&key, &(*inputs).map(|n| (n.role, n.path)))
    }

    /// The categories a resumed run keeps from its checkpoint (each checked against this run),
    /// or a fresh checkpoint holding only the run's fingerprint.
    fn resume_state(
        &self,
        fingerprint: &Fingerprint,
        requested: &[usize],
        d: usize,
        progress: &dyn Progress,
    ) -> Result<Vec<Checkpoint>> {
        let path = self.checkpoint_path();
        let mut done: Vec<Checkpoint> = Vec::new();
        if self.resume && path.is_file() {
            for (line, cp) in checkpoint::read_progress::<Checkpoint>(&path, CHECKPOINT_KIND, fingerprint)? {
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
                    bail!("{}:{line}: {why}: refusing to resume", path.display());
                }
                done.push(cp);
            }
            progress.note(&format!("resuming: {} of {} categories already done", done.len(), requested.len()));
        } else {
            if self.resume {
                progress.note(&format!("{}: no checkpoint, starting from the beginning", path.display()));
            }
            let header = checkpoint::header_line(CHECKPOINT_KIND, fingerprint)? + "\n";
            std::fs::write(&path, header).with_context(|| path.display().to_string())?;
        }
        Ok(done)
    }

    /// Runs the job. Everything that can be refused (the engine, the outputs, the inputs'
    /// shapes and names, the configuration) is refused before a file is written. Progress is
    /// in category-epochs; `after_checkpoint(n)` is called once the `n`-th category of this
    /// run is checkpointed (the resume tests stop the process there).
    pub fn run(
        &self,
        progress: &dyn Progress,
        after_checkpoint: Option<&(dyn Fn(usize) + Sync)>,
    ) -> Result<FinetuneOutcome> {
        let clock = RunClock::start();
        let engine = self.engine.build()?;
        let (progress_path, manifest_path) = (self.checkpoint_path(), self.manifest_path());
        let inputs =
            [Named::new("--train", &self.train), Named::new("--valid", &self.valid), Named::new("--head", &self.head)];
        let mut outputs = vec![
            Named::new("--out", &self.out),
            Named::new("the manifest (<out>.manifest.json)", &manifest_path),
            Named::new("the checkpoint (<out>.progress.jsonl)", &progress_path),
        ];
        if let Some(h) = &self.history {
            outputs.push(Named::new("--history", h));
        }
        check_outputs(&inputs, &outputs)?;
        let _lock = OutputLock::acquire(&self.out)?;
        let (train, valid, head_file) = self.load_inputs()?;
        let (d, c) = (train.features.cols(), train.labels.n_categories());
        let names = train.names();
        let cfg = self.request.checked(c)?;
        engine.supports(&cfg)?;
        let requested = cfg.categories.clone().unwrap_or_default();
        let fingerprint = self.fingerprint(&cfg, &inputs)?;
        // Resume: categories already in the checkpoint keep their stored result.
        let done = self.resume_state(&fingerprint, &requested, d, progress)?;
        let remaining: Vec<usize> =
            requested.iter().copied().filter(|k| !done.iter().any(|cp| cp.outcome.category == *k)).collect();
        let mut run = if remaining.is_empty() {
            // Every category came from the checkpoint: nothing left to run.
            let head = &head_file.head;
            let categories = (0..c)
                .map(|k| {
                    cft_core::finetune::skipped(k, head.weight.row(k), head.bias[k], SkipReason::NotRequested, 0, 0)
                })
                .collect();
            FineTuneRun { head: head.clone(), categories }
        } else {
            let run_cfg = FineTuneConfig { categories: Some(remaining), ..cfg.config().clone() }.check()?;
            let state = (done.len(), requested.len());
            self.fine_tune(&*engine, &run_cfg, &head_file.head, (&train, &valid), state, progress, after_checkpoint)?
        };
        progress.finish();
        let resumed = done.len();
        for cp in done {
            let k = cp.outcome.category;
            run.head.weight.row_mut(k).copy_from_slice(&cp.weight);
            run.head.bias[k] = cp.bias;
            run.categories[k] = cp.outcome;
        }
        let mut notes = Vec::new();
        if !head_file.has_bias {
            notes.push(format!(
                "{} has no bias (nn.Linear(bias=False)); the fine-tuned head is written without one (AP and AUC do not depend on it)",
                self.head.display()
            ));
        }
        self.write_outputs(&clock, &cfg, &run, &names, &head_file, &fingerprint, engine.name())?;
        Ok(FinetuneOutcome { outcomes: run.categories, requested, names, resumed, notes, seconds: clock.seconds() })
    }

    /// The engine's run with the checkpoint and progress hooks.
    #[allow(clippy::too_many_arguments)]
    fn fine_tune(
        &self,
        engine: &dyn crate::engine::CftEngine,
        cfg: &CheckedFineTune,
        head: &cft_core::LinearHead,
        (train, valid): (&Labelled, &Labelled),
        (already, requested): (usize, usize),
        progress: &dyn Progress,
        after_checkpoint: Option<&(dyn Fn(usize) + Sync)>,
    ) -> Result<FineTuneRun> {
        // Progress in category-epochs (the work), so that the rate and the estimate follow it; a
        // category that stops early (patience) or is skipped counts its remaining epochs as done.
        let per_category = cfg.max_epochs as u64;
        let total = requested as u64 * per_category;
        let position = AtomicU64::new(already as u64 * per_category);
        let finished = AtomicUsize::new(already);
        let label = |n: usize| format!("CFT {} ({n}/{requested} categories)", cfg.method.name());
        progress.update(position.load(Ordering::SeqCst), total, &label(already));
        let path = self.checkpoint_path();
        let file = std::fs::OpenOptions::new().append(true).open(&path).with_context(|| path.display().to_string())?;
        let checkpoint = Mutex::new(file);
        let checkpointed = AtomicUsize::new(0);
        let on_done = |o: &CategoryOutcome| {
            if o.skipped == Some(SkipReason::NotRequested) {
                return;
            }
            let entry = Checkpoint {
                outcome: CategoryOutcome { history: Vec::new(), ..o.clone() },
                weight: o.weight.clone(),
                bias: o.bias,
            };
            if let (Ok(line), Ok(mut f)) = (checkpoint::entry_line(&entry), checkpoint.lock()) {
                // Best effort: a failed checkpoint write only costs a redo on resume.
                let _ = writeln!(f, "{line}");
                let _ = f.flush();
                let n = checkpointed.fetch_add(1, Ordering::SeqCst) + 1;
                if let Some(hook) = after_checkpoint {
                    hook(n);
                }
            }
            // The epochs a category ran are counted as they run (`on_epochs`); its unused
            // budget when it finishes.
            let ran = (o.epochs_run as u64).min(per_category);
            let at = position.fetch_add(per_category - ran, Ordering::SeqCst) + per_category - ran;
            let n = finished.fetch_add(1, Ordering::SeqCst) + 1;
            progress.update(at, total, &label(n));
        };
        let on_epochs = |n: usize| {
            let at = position.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
            progress.update(at.min(total), total, &label(finished.load(Ordering::SeqCst)));
            ControlFlow::Continue(())
        };
        let (st, sv) = (&train.labels, &valid.labels);
        engine.finetune(
            cfg,
            head,
            SplitRef { features: &train.features, labels: st },
            SplitRef { features: &valid.features, labels: sv },
            &Hooks { on_done: &on_done, on_epochs: &on_epochs },
        )
    }

    /// Writes the head, the history CSV and the manifest, then removes the checkpoint.
    #[allow(clippy::too_many_arguments)]
    fn write_outputs(
        &self,
        clock: &RunClock,
        cfg: &CheckedFineTune,
        run: &FineTuneRun,
        names: &[String],
        head_file: &cft_data::HeadFile,
        fingerprint: &Fingerprint,
        engine: String,
    ) -> Result<()> {
        let manifest_path = self.manifest_path();
        let mut written = vec![self.out.clone()];
        cft_data::write_head_as(&self.out, &run.head, Some(names), head_file.has_bias)?;
        if let Some(h) = &self.history {
            let mut csv = String::from(HISTORY_HEADER);
            append_history(&mut csv, cfg.method.name(), names, &run.categories);
            cft_data::write_atomic(h, csv.as_bytes())?;
            written.push(h.clone());
        }
        #[derive(Serialize)]
        struct Config<'a> {
            finetune: &'a FineTuneConfig,
            uncertain: UncertainPolicy,
            engine: String,
            head_prefix: &'a str,
            categories: Vec<CategoryOutcome>,
        }
        written.push(manifest_path.clone());
        let m = clock.manifest(
            "finetune",
            Config {
                finetune: cfg.config(),
                uncertain: self.uncertain,
                engine,
                head_prefix: &head_file.prefix,
                categories: run
                    .categories
                    .iter()
                    .map(|o| CategoryOutcome { history: Vec::new(), ..o.clone() })
                    .collect(),
            },
            fingerprint.inputs.iter().map(|(_, f)| f.clone()).collect(),
            written,
        );
        write_manifest(&manifest_path, &m)?;
        let _ = std::fs::remove_file(self.checkpoint_path());
        Ok(())
    }
}

/// The per-category summary `cft finetune` prints. Status: `fine-tuned`, `unchanged` (no epoch
/// beat the original, which is kept), `fine-tuned, at the epoch limit` (the run ended at
/// `max_epochs` while the best epoch was recent: more epochs might still help), or the skip reason.
pub fn outcome_table(outcomes: &[CategoryOutcome], names: &[String], max_epochs: usize) -> String {
    let score = |v: Option<f64>| v.map_or_else(|| "—".into(), |x| format!("{x:.4}"));
    let w = names.iter().map(String::len).max().unwrap_or(8).clamp(8, 28);
    let mut s = format!(
        "{:>5}  {:<w$}  {:>7}  {:>7}  {:>8}  {:>8}  {:>8}  {:>6}  {:>6}  {:>7}  status\n",
        "index", "category", "train", "valid", "original", "best", "delta", "best@", "epochs", "seconds"
    );
    for o in outcomes {
        let name: String = names.get(o.category).map_or("?", String::as_str).chars().take(w).collect();
        let delta = match (o.original_score, o.best_score) {
            (Some(a), Some(b)) => format!("{:+.4}", b - a),
            _ => "—".into(),
        };
        let status = match o.skipped {
            Some(r) => format!("skipped: {r}"),
            None if o.best_epoch < 0 => "unchanged (no epoch beat the original)".to_string(),
            // Stopped by the epoch limit, not by patience: the score was still improving.
            None if o.epochs_run >= max_epochs => "fine-tuned, at the epoch limit (still improving)".to_string(),
            None => "fine-tuned".to_string(),
        };
        s.push_str(&format!(
            "{:>5}  {:<w$}  {:>7}  {:>7}  {:>8}  {:>8}  {:>8}  {:>6}  {:>6}  {:>7.2}  {status}\n",
            o.category,
            name,
            o.train_known,
            o.valid_known,
            score(o.original_score),
            score(o.best_score),
            delta,
            o.best_epoch,
            o.epochs_run,
            o.seconds
        ));
    }
    s
}

/// The rows [`outcome_table`] shows for a finished job: the requested categories.
pub fn requested_outcomes(outcome: &FinetuneOutcome) -> Vec<CategoryOutcome> {
    outcome.outcomes.iter().filter(|o| outcome.requested.contains(&o.category)).cloned().collect()
}
