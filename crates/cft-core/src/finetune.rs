//! Category-wise Fine-Tuning: re-fit each category's `(w_c, b_c)` on its known labels only.
//!
//! For every category independently (and in parallel):
//! 1. take the training and validation samples whose label is known (positive or negative);
//!    skip the category, keeping its weights, when either side lacks a positive or a negative;
//! 2. score the original head on validation: that is "epoch −1", the best so far;
//! 3. each epoch, take one optimizer step ([`Method::Bp`]: one full-batch Adam step on a loss;
//!    [`Method::Ga`]: one generation of the genetic algorithm), then score the head on
//!    validation; keep the weights of the first epoch with a strictly higher score;
//! 4. stop after `patience` epochs without improvement, or at `max_epochs`.
//!
//! The GA evolves `d + 1` genes per individual: the weights and the bias. Fitness (AP or AUC)
//! ignores the bias, so it only drifts by mutation; the head takes the best individual's
//! weights *and* bias (the reference writes back only the weights, a harmless slip since the
//! metric is shift-invariant).

use crate::adam::{Adam, AdamConfig};
use crate::head::LinearHead;
use crate::labels::SparseLabels;
use crate::linalg::{gemm_nt_rows, gemv_rows, gemv_t_rows, Matrix, RowSubset};
use crate::loss::Loss;
use crate::metrics::{Metric, RankScorer};
use crate::rng::Pcg64;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Genetic-algorithm settings (the reference's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GaConfig {
    /// Individuals per generation (50).
    pub population: usize,
    /// Probability that a gene comes from the first parent (0.2).
    pub crossover: f64,
    /// Probability that an offspring is mutated (0.5).
    pub mutation_prob: f64,
    /// Mutations are U(−range, range) added to every gene (0.001).
    pub mutation_range: f64,
    /// Best individuals copied unchanged into the next generation (1).
    pub elitism: usize,
    /// Which of several equally fit individuals becomes the elite ([`GaEliteTies::First`]).
    /// Omitted from serialized configs at its default, so earlier results keep their bytes.
    #[serde(default, skip_serializing_if = "GaEliteTies::is_first")]
    pub elite_ties: GaEliteTies,
}

impl Default for GaConfig {
    fn default() -> Self {
        Self {
            population: 50,
            crossover: 0.2,
            mutation_prob: 0.5,
            mutation_range: 0.001,
            elitism: 1,
            elite_ties: GaEliteTies::First,
        }
    }
}

crate::choice! {
    /// How the GA orders individuals of equal fitness when it picks its elite.
    ///
    /// The head validated each generation is always the *first* fittest individual (the
    /// reference's `torch.argmax`). The reference's elite, though, is the first index of an
    /// unstable descending `torch.sort`, which on ties is usually another individual (often a
    /// mutated copy): its head then drifts across plateaus of equal training score.
    #[derive(Default)]
    pub enum GaEliteTies {
        /// The first fittest individual (a stable order): the elite is the validated head.
        #[default]
        First = "first",
        /// The reference's choice on the CPU: the order of PyTorch's unstable CPU sort
        /// (libstdc++'s introsort, [`crate::torch_sort`]) over the fitness as float32.
        TorchCpu = "torch-cpu",
    }
}

impl GaEliteTies {
    /// Whether this is the default (serde's `skip_serializing_if`).
    pub fn is_first(&self) -> bool {
        *self == GaEliteTies::First
    }
}

/// How a category's head is re-fitted.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Method {
    /// Gradient descent: one full-batch Adam step per epoch on `loss`.
    Bp {
        /// The training loss (ASL or BCE, summed).
        loss: Loss,
        /// Adam settings.
        adam: AdamConfig,
    },
    /// The genetic algorithm maximising the metric on the training known labels.
    Ga(GaConfig),
}

impl Method {
    /// Which of the three methods this is.
    pub fn kind(&self) -> MethodName {
        match self {
            Method::Bp { loss: Loss::Asl { .. }, .. } => MethodName::BpAsl,
            Method::Bp { loss: Loss::Bce, .. } => MethodName::BpBce,
            Method::Ga(_) => MethodName::Ga,
        }
    }

    /// The short name used in tables (`bp-asl`, `bp-bce`, `ga`).
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }
}

crate::choice! {
    /// The CFT methods by name, in the tables' order: what specs (`cft.methods`), flags
    /// (`--method`) and the Python package (`method=`) choose from.
    pub enum MethodName {
        /// Adam on the asymmetric loss.
        BpAsl = "bp-asl",
        /// Adam on binary cross-entropy.
        BpBce = "bp-bce",
        /// The genetic algorithm maximising the metric.
        Ga = "ga",
    }
}

impl MethodName {
    /// The row label in tables (`CFT-BP-ASL`, `CFT-BP-BCE`, `CFT-GA`).
    pub fn label(self) -> &'static str {
        match self {
            MethodName::BpAsl => "CFT-BP-ASL",
            MethodName::BpBce => "CFT-BP-BCE",
            MethodName::Ga => "CFT-GA",
        }
    }

    /// The method with these settings: Adam at `lr` on `asl` (BP-ASL) or BCE (BP-BCE); the GA
    /// with `ga` (which ignores `lr`).
    pub fn method(self, lr: f32, asl: Loss, ga: GaConfig) -> Method {
        let adam = AdamConfig { lr, ..AdamConfig::default() };
        match self {
            MethodName::BpAsl => Method::Bp { loss: asl, adam },
            MethodName::BpBce => Method::Bp { loss: Loss::Bce, adam },
            MethodName::Ga => Method::Ga(ga),
        }
    }

    /// The paper's method of this name (ASL γ−=4, γ+=0, clip 0.05; Adam at `lr`; the GA's
    /// defaults).
    pub fn reference(self, lr: f32) -> Method {
        self.method(lr, Loss::ASL_REFERENCE, GaConfig::default())
    }
}

/// Everything that controls a CFT run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FineTuneConfig {
    /// The optimizer.
    pub method: Method,
    /// The validation (and GA fitness) metric.
    pub metric: Metric,
    /// At most this many epochs (reference: 5000).
    pub max_epochs: usize,
    /// Stop after this many epochs without improvement (reference: 300).
    pub patience: usize,
    /// Seed of the GA's per-category random streams.
    pub seed: u64,
    /// Keep the per-epoch history of every category.
    pub keep_history: bool,
    /// Fine-tune only these categories (all when `None`); the rest keep their weights.
    pub categories: Option<Vec<usize>>,
}

impl FineTuneConfig {
    /// The reference's defaults for a method: 5000 epochs, patience 300, metric AP.
    pub fn reference(method: Method) -> Self {
        Self {
            method,
            metric: Metric::Ap,
            max_epochs: 5000,
            patience: 300,
            seed: 0,
            keep_history: false,
            categories: None,
        }
    }
}

/// A [`FineTuneConfig`] whose parameters passed [`FineTuneConfig::check`]: a reference to the
/// checked configuration can only be obtained by checking (linfa's `ParamGuard` in spirit), so
/// the engines never meet an unchecked population, learning rate or epoch limit. Reads as the
/// configuration (`Deref`); changing it means checking again.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(transparent)]
pub struct CheckedFineTune(FineTuneConfig);

impl CheckedFineTune {
    /// The configuration `FineTuneConfig::check` has checked (its only caller).
    pub(crate) fn checked(cfg: FineTuneConfig) -> Self {
        CheckedFineTune(cfg)
    }

    /// The configuration.
    pub fn config(&self) -> &FineTuneConfig {
        &self.0
    }

    /// The configuration, to change and check again.
    pub fn into_inner(self) -> FineTuneConfig {
        self.0
    }

    /// The same configuration keeping (or not) every category's per-epoch history, which
    /// changes what is recorded, never what is computed (so no new check).
    pub fn with_history(self, keep_history: bool) -> Self {
        CheckedFineTune(FineTuneConfig { keep_history, ..self.0 })
    }

    /// Every requested category an index of data with `n_categories` (the core's own check at
    /// the start of [`crate::finetune()`]; a front end that knows the data may call it first,
    /// to refuse before reading more).
    pub fn check_categories(&self, n_categories: usize) -> Result<(), crate::error::ParamError> {
        match self.0.categories.iter().flatten().find(|&&k| k >= n_categories) {
            Some(&bad) => Err(crate::error::ParamError::new(
                "categories",
                bad,
                format!("not a category index (the data has {n_categories} categories)"),
            )),
            None => Ok(()),
        }
    }
}

impl std::ops::Deref for CheckedFineTune {
    type Target = FineTuneConfig;
    fn deref(&self) -> &FineTuneConfig {
        &self.0
    }
}

/// Why a category was not fine-tuned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// No known positive among the training samples.
    NoTrainPositive,
    /// No known negative among the training samples.
    NoTrainNegative,
    /// No known positive among the validation samples.
    NoValidPositive,
    /// No known negative among the validation samples.
    NoValidNegative,
    /// Not among the categories requested.
    NotRequested,
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SkipReason::NoTrainPositive => "no known positive in training",
            SkipReason::NoTrainNegative => "no known negative in training",
            SkipReason::NoValidPositive => "no known positive in validation",
            SkipReason::NoValidNegative => "no known negative in validation",
            SkipReason::NotRequested => "not requested",
        })
    }
}

/// One epoch of one category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch index from 0.
    pub epoch: usize,
    /// BP: the training loss before this epoch's step.
    pub loss: Option<f64>,
    /// GA: the best training fitness of the generation evaluated this epoch.
    pub best_fitness: Option<f64>,
    /// GA: the mean training fitness of that generation.
    pub mean_fitness: Option<f64>,
    /// Validation score of the head after this epoch.
    pub valid_score: f64,
}

/// The result for one category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryOutcome {
    /// Category index.
    pub category: usize,
    /// Why it was skipped, if it was.
    pub skipped: Option<SkipReason>,
    /// Known training samples used.
    pub train_known: usize,
    /// Known validation samples used.
    pub valid_known: usize,
    /// Validation score of the original head (epoch −1).
    pub original_score: Option<f64>,
    /// Best validation score (equals the original when no epoch improved).
    pub best_score: Option<f64>,
    /// Epoch whose weights were kept (−1: the original).
    pub best_epoch: i64,
    /// Epochs run.
    pub epochs_run: usize,
    /// Wall time for this category.
    pub seconds: f64,
    /// Per-epoch history (empty unless requested).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<EpochRecord>,
    /// The kept weights (`d` values) and bias.
    #[serde(skip)]
    pub weight: Vec<f32>,
    /// The kept bias.
    #[serde(skip)]
    pub bias: f32,
}

/// A fine-tuned head and what happened to each category.
#[derive(Debug, Clone)]
pub struct FineTuneRun {
    /// The fine-tuned head (skipped categories keep their original weights).
    pub head: LinearHead,
    /// One outcome per category, in category order.
    pub categories: Vec<CategoryOutcome>,
}

/// Features and sparse partial labels of one split.
#[derive(Debug, Clone, Copy)]
pub struct SplitRef<'a> {
    /// `n × d` features.
    pub features: &'a Matrix,
    /// Known samples per category (uncertain entries are ignored: resolve them first).
    pub labels: &'a SparseLabels,
}

/// One category's known samples of a split: their rows of the split's features (read in
/// place, never copied) and targets.
#[derive(Debug, Clone)]
pub struct CategorySamples<'a> {
    /// Features of the known samples.
    pub x: RowSubset<'a>,
    /// Targets, `true` = positive.
    pub y: Vec<bool>,
}

impl<'a> CategorySamples<'a> {
    /// Gathers category `c`'s known samples.
    pub fn gather(split: SplitRef<'a>, c: usize) -> Self {
        let (idx, y) = split.labels.per_category[c].known_sorted();
        Self { x: RowSubset::of(split.features, idx), y }
    }

    pub(crate) fn class_counts(&self) -> (usize, usize) {
        let pos = self.y.iter().filter(|&&t| t).count();
        (pos, self.y.len() - pos)
    }
}

/// The stopping rule of every engine: stop once `patience` epochs have passed without a better
/// validation score than the one of `best_epoch` (−1 before any), or at the epoch limit.
pub fn should_stop(epoch: usize, best_epoch: i64, patience: usize, max_epochs: usize) -> bool {
    epoch as i64 - best_epoch >= patience as i64 || epoch + 1 >= max_epochs
}

/// The outcome of a category that is not fine-tuned: it keeps `(w, b)`; `nt`/`nv` known samples.
pub fn skipped(cat: usize, w: &[f32], b: f32, reason: SkipReason, nt: usize, nv: usize) -> CategoryOutcome {
    CategoryOutcome {
        category: cat,
        skipped: Some(reason),
        train_known: nt,
        valid_known: nv,
        original_score: None,
        best_score: None,
        best_epoch: -1,
        epochs_run: 0,
        seconds: 0.0,
        history: Vec::new(),
        weight: w.to_vec(),
        bias: b,
    }
}

/// Scores one head on a category's validation samples.
pub(crate) struct Validator<'a> {
    samples: &'a CategorySamples<'a>,
    scores: Vec<f32>,
    scorer: RankScorer,
    metric: Metric,
}

impl<'a> Validator<'a> {
    pub(crate) fn new(samples: &'a CategorySamples<'a>, metric: Metric) -> Self {
        Self { samples, scores: vec![0.0; samples.y.len()], scorer: RankScorer::new(), metric }
    }

    pub(crate) fn score(&mut self, w: &[f32], b: f32) -> f64 {
        gemv_rows(&self.samples.x, w, b, &mut self.scores);
        let mut out = [0.0];
        self.scorer.score_rows(self.metric, &self.scores, &self.samples.y, &mut out);
        out[0]
    }
}

/// Tracks the best epoch and decides when to stop.
struct Selection {
    best_score: f64,
    best_epoch: i64,
    best_params: Vec<f32>,
    patience: usize,
}

impl Selection {
    /// Records an epoch's score; returns `true` when training should stop (patience or the
    /// epoch limit, [`should_stop`]).
    fn observe(&mut self, epoch: usize, score: f64, params: &[f32], max_epochs: usize) -> bool {
        if score > self.best_score {
            self.best_score = score;
            self.best_epoch = epoch as i64;
            self.best_params.copy_from_slice(params);
        }
        should_stop(epoch, self.best_epoch, self.patience, max_epochs)
    }
}

/// Why a category cannot be fine-tuned, from its gathered samples (`None`: it can).
pub fn skip_reason(train: &CategorySamples<'_>, valid: &CategorySamples<'_>) -> Option<SkipReason> {
    let (tp, tn) = train.class_counts();
    let (vp, vn) = valid.class_counts();
    skip_reason_from_counts(tp, tn, vp, vn)
}

/// The skip rule from known positive/negative counts of the training and validation splits
/// (engines that do not gather the samples on the host use this).
pub fn skip_reason_from_counts(tp: usize, tn: usize, vp: usize, vn: usize) -> Option<SkipReason> {
    if tp == 0 {
        Some(SkipReason::NoTrainPositive)
    } else if tn == 0 {
        Some(SkipReason::NoTrainNegative)
    } else if vp == 0 {
        Some(SkipReason::NoValidPositive)
    } else if vn == 0 {
        Some(SkipReason::NoValidNegative)
    } else {
        None
    }
}

/// The optimizer's state between epochs.
enum Optimizer {
    Bp {
        loss: Loss,
        adam: Adam,
        logits: Vec<f32>,
        grad: Vec<f32>,
        grad_params: Vec<f32>,
    },
    Ga {
        state: Box<GaState>,
        scores: Vec<f32>,
        scorer: RankScorer,
        elite_valid: Option<f64>,
        /// Whether the next generation's index 0 is this generation's validated head.
        elite_is_head: bool,
    },
}

/// What one optimizer step produced, before validation.
#[derive(Debug, Clone, Copy)]
pub struct StepOutput {
    /// The head's validation score when it is known without scoring (the GA's head is the
    /// unchanged elite); `None`: the head must be validated.
    pub cached_valid: Option<f64>,
    loss: Option<f64>,
    best_fitness: Option<f64>,
    mean_fitness: Option<f64>,
}

/// One category's fine-tuning, advanced one epoch at a time: [`CategoryRun::step`] updates the
/// head, the caller scores it on validation, [`CategoryRun::finish_epoch`] records the score
/// and says whether to stop. The per-category loop and the batched engine
/// ([`crate::batched`]) both drive this, so they compute the same thing.
pub struct CategoryRun<'a> {
    cat: usize,
    train: &'a CategorySamples<'a>,
    cfg: &'a CheckedFineTune,
    params: Vec<f32>,
    optimizer: Optimizer,
    sel: Selection,
    original: f64,
    history: Vec<EpochRecord>,
    epoch: usize,
    start: Instant,
}

impl<'a> CategoryRun<'a> {
    /// Starts from the original head `(w0, b0)` whose validation score is `original`.
    pub fn new(
        cat: usize,
        w0: &[f32],
        b0: f32,
        original: f64,
        train: &'a CategorySamples<'a>,
        cfg: &'a CheckedFineTune,
    ) -> Self {
        let d = w0.len();
        let params: Vec<f32> = w0.iter().copied().chain([b0]).collect();
        let n = train.y.len();
        let optimizer = match cfg.method {
            Method::Bp { loss, adam } => Optimizer::Bp {
                loss,
                adam: Adam::new(adam, d + 1),
                logits: vec![0.0; n],
                grad: vec![0.0; n],
                grad_params: vec![0.0; d + 1],
            },
            Method::Ga(ga) => {
                // The configuration is checked (`CheckedFineTune`): population ≥ 2, elitism below it.
                Optimizer::Ga {
                    state: Box::new(GaState::new(&params, ga, Pcg64::for_stream(cfg.seed, cat as u64))),
                    scores: vec![0.0; ga.population * n],
                    scorer: RankScorer::new(),
                    elite_valid: Some(original),
                    elite_is_head: false,
                }
            }
        };
        let sel =
            Selection { best_score: original, best_epoch: -1, best_params: params.clone(), patience: cfg.patience };
        Self { cat, train, cfg, params, optimizer, sel, original, history: Vec::new(), epoch: 0, start: Instant::now() }
    }

    /// The category index.
    pub fn category(&self) -> usize {
        self.cat
    }

    /// The current head: `d` weights then the bias.
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// Whether the epoch limit is reached.
    pub fn exhausted(&self) -> bool {
        self.epoch >= self.cfg.max_epochs
    }

    /// One optimizer step (BP: one Adam step; GA: evaluate, take the best, breed).
    pub fn step(&mut self) -> StepOutput {
        let d = self.params.len() - 1;
        let (x, y) = (&self.train.x, &self.train.y);
        match &mut self.optimizer {
            Optimizer::Bp { loss, adam, logits, grad, grad_params } => {
                gemv_rows(x, &self.params[..d], self.params[d], logits);
                let l = loss.value_and_grad(logits, y, grad);
                gemv_t_rows(x, grad, &mut grad_params[..d]);
                grad_params[d] = grad.iter().map(|&g| f64::from(g)).sum::<f64>() as f32;
                adam.step(&mut self.params, grad_params);
                StepOutput { cached_valid: None, loss: Some(l), best_fitness: None, mean_fitness: None }
            }
            Optimizer::Ga { state, scores, scorer, elite_valid, elite_is_head } => {
                gemm_nt_rows(x, &state.weights, &state.biases, scores);
                scorer.score_rows(self.cfg.metric, scores, y, &mut state.fitness);
                let best = state.best_index();
                let (bf, mf) = (state.fitness[best], state.mean_fitness());
                self.params[..d].copy_from_slice(state.weights.row(best));
                self.params[d] = state.biases[best];
                // The head is unchanged when the best individual is the elite at index 0: its
                // validation score is then reused (bit-identical weights, identical score).
                let cached = if best == 0 { *elite_valid } else { None };
                *elite_is_head = state.breed() == Some(best);
                StepOutput { cached_valid: cached, loss: None, best_fitness: Some(bf), mean_fitness: Some(mf) }
            }
        }
    }

    /// Records the epoch's validation score; returns `true` when the category should stop.
    pub fn finish_epoch(&mut self, out: StepOutput, score: f64) -> bool {
        if let Optimizer::Ga { elite_valid, elite_is_head, .. } = &mut self.optimizer {
            // The next generation's index 0 keeps this generation's validated head when the
            // elite is that individual (always with `GaEliteTies::First` and elitism ≥ 1).
            *elite_valid = elite_is_head.then_some(score);
        }
        let epoch = self.epoch;
        self.epoch += 1;
        if self.cfg.keep_history {
            self.history.push(EpochRecord {
                epoch,
                loss: out.loss,
                best_fitness: out.best_fitness,
                mean_fitness: out.mean_fitness,
                valid_score: score,
            });
        }
        self.sel.observe(epoch, score, &self.params, self.cfg.max_epochs)
    }

    /// The outcome: the best epoch's head, scores and history.
    pub fn into_outcome(self, valid_known: usize) -> CategoryOutcome {
        let d = self.params.len() - 1;
        CategoryOutcome {
            category: self.cat,
            skipped: None,
            train_known: self.train.y.len(),
            valid_known,
            original_score: Some(self.original),
            best_score: Some(self.sel.best_score),
            best_epoch: self.sel.best_epoch,
            epochs_run: self.epoch,
            seconds: self.start.elapsed().as_secs_f64(),
            history: self.history,
            weight: self.sel.best_params[..d].to_vec(),
            bias: self.sel.best_params[d],
        }
    }
}

/// Fine-tunes one category given its gathered known samples.
pub fn finetune_category(
    cat: usize,
    w0: &[f32],
    b0: f32,
    train: &CategorySamples<'_>,
    valid: &CategorySamples<'_>,
    cfg: &CheckedFineTune,
) -> CategoryOutcome {
    if let Some(r) = skip_reason(train, valid) {
        return skipped(cat, w0, b0, r, train.y.len(), valid.y.len());
    }
    let d = w0.len();
    let mut validator = Validator::new(valid, cfg.metric);
    let original = validator.score(w0, b0);
    let mut run = CategoryRun::new(cat, w0, b0, original, train, cfg);
    while !run.exhausted() {
        let out = run.step();
        let score = out.cached_valid.unwrap_or_else(|| {
            let p = run.params();
            validator.score(&p[..d], p[d])
        });
        if run.finish_epoch(out, score) {
            break;
        }
    }
    run.into_outcome(valid.y.len())
}

/// A GA population: weights `P × d`, biases `P`, and the fitness of the last evaluation.
struct GaState {
    cfg: GaConfig,
    weights: Matrix,
    biases: Vec<f32>,
    fitness: Vec<f64>,
    next_weights: Matrix,
    next_biases: Vec<f32>,
    rng: Pcg64,
}

impl GaState {
    fn new(params: &[f32], cfg: GaConfig, rng: Pcg64) -> Self {
        let d = params.len() - 1;
        let p = cfg.population;
        let mut weights = Matrix::zeros(p, d);
        for i in 0..p {
            weights.row_mut(i).copy_from_slice(&params[..d]);
        }
        Self {
            cfg,
            next_weights: weights.clone(),
            weights,
            biases: vec![params[d]; p],
            next_biases: vec![params[d]; p],
            fitness: vec![0.0; p],
            rng,
        }
    }

    /// The first individual with the highest fitness.
    fn best_index(&self) -> usize {
        let mut best = 0;
        for (i, &f) in self.fitness.iter().enumerate() {
            if f > self.fitness[best] {
                best = i;
            }
        }
        best
    }

    fn mean_fitness(&self) -> f64 {
        self.fitness.iter().sum::<f64>() / self.fitness.len() as f64
    }

    /// Roulette selection, uniform crossover, mutation, elitism. Returns the individual copied
    /// to index 0 of the next generation (`None` without elitism).
    fn breed(&mut self) -> Option<usize> {
        let p = self.fitness.len();
        let d = self.weights.cols();
        let mut cumulative = Vec::with_capacity(p);
        let mut total = 0.0;
        for &f in &self.fitness {
            total += f.max(0.0);
            cumulative.push(total);
        }
        let rng = &mut self.rng;
        let draw = |rng: &mut Pcg64| -> usize {
            if total > 0.0 {
                let u = rng.random() * total;
                cumulative.partition_point(|&c| c <= u).min(p - 1)
            } else {
                ((rng.random() * p as f64) as usize).min(p - 1)
            }
        };
        let parents1: Vec<usize> = (0..p).map(|_| draw(rng)).collect();
        let parents2: Vec<usize> = (0..p).map(|_| draw(rng)).collect();
        let range = self.cfg.mutation_range;
        for i in 0..p {
            let (a, b) = (parents1[i], parents2[i]);
            let child = self.next_weights.row_mut(i);
            let (wa, wb) = (self.weights.row(a), self.weights.row(b));
            for j in 0..d {
                child[j] = if rng.random() < self.cfg.crossover { wa[j] } else { wb[j] };
            }
            let mut bias = if rng.random() < self.cfg.crossover { self.biases[a] } else { self.biases[b] };
            if rng.random() < self.cfg.mutation_prob {
                for g in child.iter_mut() {
                    *g += rng.uniform(-range, range) as f32;
                }
                bias += rng.uniform(-range, range) as f32;
            }
            self.next_biases[i] = bias;
        }
        // Elitism: the best individuals replace the first offspring.
        let order = elite_order(&self.fitness, self.cfg.elite_ties);
        for (slot, &src) in order.iter().take(self.cfg.elitism.min(p)).enumerate() {
            self.next_weights.row_mut(slot).copy_from_slice(self.weights.row(src));
            self.next_biases[slot] = self.biases[src];
        }
        std::mem::swap(&mut self.weights, &mut self.next_weights);
        std::mem::swap(&mut self.biases, &mut self.next_biases);
        (self.cfg.elitism >= 1).then(|| order[0])
    }
}

/// The individuals from fittest down, ties ordered as `ties` says: stably (index order), or as
/// PyTorch's CPU sort orders the fitness cast to float32 (the reference keeps its fitness in a
/// float32 tensor).
pub fn elite_order(fitness: &[f64], ties: GaEliteTies) -> Vec<usize> {
    match ties {
        GaEliteTies::First => {
            let mut order: Vec<usize> = (0..fitness.len()).collect();
            order.sort_by(|&x, &y| fitness[y].total_cmp(&fitness[x]));
            order
        }
        GaEliteTies::TorchCpu => {
            let f32s: Vec<f32> = fitness.iter().map(|&f| f as f32).collect();
            crate::torch_sort::descending_order(&f32s)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{finetune, Hooks};
    use crate::labels::{Label, PartialLabels};
    use crate::per_category::PerCategory;

    /// A separable-ish toy problem: feature 0 carries the label, feature 1 is noise.
    fn toy(n: usize, seed: u64) -> (Matrix, PartialLabels) {
        let mut rng = Pcg64::new(seed);
        let mut x = Vec::new();
        let mut labels = Vec::new();
        for _ in 0..n {
            let y = rng.random() < 0.3;
            x.push(if y { 1.0 } else { 0.0 } + rng.uniform(-0.8, 0.8) as f32);
            x.push(rng.uniform(-1.0, 1.0) as f32);
            labels.push(if rng.random() < 0.5 {
                Label::Unknown
            } else if y {
                Label::Positive
            } else {
                Label::Negative
            });
            labels.push(Label::Negative);
        }
        (Matrix::new(n, 2, x).unwrap(), PartialLabels::new(n, 2, labels).unwrap())
    }

    fn run(method: Method, threads: usize) -> FineTuneRun {
        let (xt, lt) = toy(200, 1);
        let (xv, lv) = toy(150, 2);
        let (st, sv) = (lt.to_sparse(), lv.to_sparse());
        // A poor start: the informative weight is negative.
        let head = LinearHead::new(Matrix::new(2, 2, vec![-0.5, 0.3, 0.1, 0.1]).unwrap(), vec![0.0, 0.0]).unwrap();
        let mut cfg = FineTuneConfig::reference(method);
        cfg.max_epochs = 300;
        cfg.patience = 50;
        cfg.seed = 7;
        cfg.keep_history = true;
        let cfg = cfg.check().unwrap();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let (train, valid) = (SplitRef { features: &xt, labels: &st }, SplitRef { features: &xv, labels: &sv });
        pool.install(|| finetune(&PerCategory, &cfg, &head, train, valid, &Hooks::NONE).unwrap())
    }

    #[test]
    fn bp_improves_and_never_returns_a_worse_head() {
        let method = Method::Bp { loss: Loss::ASL_REFERENCE, adam: AdamConfig { lr: 1e-2, ..Default::default() } };
        let r = run(method, 2);
        let c0 = &r.categories[0];
        assert!(c0.best_score.unwrap() > c0.original_score.unwrap());
        assert!(c0.best_epoch >= 0);
        assert_eq!(r.categories[1].skipped, Some(SkipReason::NoTrainPositive));
        assert_eq!(r.head.weight.row(1), &[0.1, 0.1]);
        // Stopped by patience: the last epoch is exactly `patience` after the best.
        if c0.epochs_run < 300 {
            assert_eq!(c0.epochs_run as i64 - 1 - c0.best_epoch, 50);
        }
    }

    #[test]
    fn an_empty_population_never_reaches_an_engine() {
        // The engines take only a `CheckedFineTune`, and checking refuses populations under 2.
        for population in [0, 1] {
            let ga = GaConfig { population, elitism: 0, ..GaConfig::default() };
            let e = FineTuneConfig::reference(Method::Ga(ga)).check().unwrap_err();
            assert_eq!(e.param, "ga.population");
        }
    }

    #[test]
    fn ga_is_identical_whatever_the_thread_count() {
        let a = run(Method::Ga(GaConfig::default()), 1);
        let b = run(Method::Ga(GaConfig::default()), 2);
        assert_eq!(a.head, b.head);
        assert_eq!(a.categories[0].history, b.categories[0].history);
        let c0 = &a.categories[0];
        assert!(c0.best_score.unwrap() >= c0.original_score.unwrap());
        // The GA's best training fitness never decreases (elitism).
        let h = &c0.history;
        assert!(h.windows(2).all(|w| w[1].best_fitness >= w[0].best_fitness));
    }
}
