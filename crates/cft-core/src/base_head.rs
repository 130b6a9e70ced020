//! Training a base head on frozen features, for users who bring features but no trained model,
//! and the field's partial-label baselines CFT is compared with and applied to.
//!
//! **AN and Ignore** (the recipe CFT's tables start from; deterministic, no randomness):
//! * targets per mode: AN (assume negative) turns every unknown label into a negative, the
//!   usual way to train on partial labels and the base CFT repairs; Ignore uses known labels
//!   only;
//! * start (`prior`): zero weights, bias = logit of the category's positive rate among its
//!   targets;
//! * objective per category: BCE with logits averaged over its targets, plus L2
//!   `weight_decay · ‖w‖²/2` (coupled into Adam's gradient, as PyTorch's `weight_decay`);
//! * optimizer: full-batch Adam (lr 1e-2 by default) for a fixed number of epochs (300).
//!
//! All categories train together: their logits are one GEMM, their gradients another, over
//! blocks of rows (no images × categories matrix is ever held).
//!
//! **The field's losses** (AN-LS, WAN, EPR, ROLE, EM, EM-APL, LL-R, LL-Ct, LL-Cp; see
//! [`crate::partial_loss`]): the same full-batch Adam and weight decay on the official loss and
//! reduction (the mean over all `n·C` entries plus EPR's and ROLE's regularisers), one step per
//! epoch, starting from zeros (their references' start) unless `init = prior`. ROLE's label
//! estimates are a second set of parameters (one logit per training entry) trained by the same
//! Adam at `lr × estimator_lr_mult`; LL's schedule counts these epochs; APL pseudo-labels after
//! every epoch from `warmup_epoch` on. These hold `images × categories` values (logits, their
//! gradient, ROLE's estimates): COCO's 82k × 80 is 50–200 MB, OpenImages' millions × 5,000 is
//! not a head-level job for them.

use crate::adam::{Adam, AdamConfig};
use crate::error::Interrupted;
use crate::head::LinearHead;
use crate::labels::{Label, PartialLabels, SparseLabels};
use crate::linalg::Matrix;
use crate::loss::sigmoid;
use crate::partial_loss::{apl_counts, apl_round, partial_loss, Batch, LlScheme, PartialLoss};
use serde::{Deserialize, Serialize};

crate::choice! {
    /// How unknown labels are treated when training a base head: AN and Ignore (the paper's
    /// bases), or one of the field's partial-label losses.
    pub enum BaseMode {
        /// Assume negative: unknown → negative.
        An = "an",
        /// Ignore: unknown labels do not enter the loss.
        Ignore = "ignore",
        /// AN with label smoothing (Cole et al.).
        AnLs = "an-ls",
        /// Weak AN: assumed negatives weighted 1/(C−1) (Cole et al.).
        Wan = "wan",
        /// Expected positive regularisation (Cole et al.).
        Epr = "epr",
        /// Regularised online label estimation (Cole et al.).
        Role = "role",
        /// Entropy maximisation on unknown labels (Zhou et al.).
        Em = "em",
        /// EM with asymmetric pseudo-labelling (Zhou et al.).
        EmApl = "em-apl",
        /// Large loss rejection (Kim et al.).
        LlR = "ll-r",
        /// Large loss correction, temporary (Kim et al.).
        LlCt = "ll-ct",
        /// Large loss correction, permanent (Kim et al., as first published).
        LlCp = "ll-cp",
    }
}

impl BaseMode {
    /// Name for tables (`AN`, `Ignore`, `AN-LS`, …, `LL-Cp`).
    pub fn label(self) -> &'static str {
        match self {
            BaseMode::An => "AN",
            BaseMode::Ignore => "Ignore",
            BaseMode::AnLs => "AN-LS",
            BaseMode::Wan => "WAN",
            BaseMode::Epr => "EPR",
            BaseMode::Role => "ROLE",
            BaseMode::Em => "EM",
            BaseMode::EmApl => "EM-APL",
            BaseMode::LlR => "LL-R",
            BaseMode::LlCt => "LL-Ct",
            BaseMode::LlCp => "LL-Cp",
        }
    }

    /// The start when none is asked for: `prior` for AN and Ignore (the recipe), `zeros` for
    /// the field's losses (as their references).
    pub fn default_init(self) -> HeadInit {
        match self {
            BaseMode::An | BaseMode::Ignore => HeadInit::Prior,
            _ => HeadInit::Zeros,
        }
    }

    /// Whether this mode is one of the field's losses ([`crate::partial_loss`]) rather than
    /// the AN/Ignore recipe.
    pub fn is_field_loss(self) -> bool {
        !matches!(self, BaseMode::An | BaseMode::Ignore)
    }

    /// Bytes a head trained with this mode holds per image × category entry: the field's
    /// losses keep every entry's label, logit, loss gradient and the loss's own working values
    /// (LL's sorted losses, ROLE's estimates with their Adam state, APL's pseudo-labels) for the
    /// whole training set; AN and Ignore train in blocks (0). An upper estimate, for refusing a
    /// size that cannot fit before the work.
    pub fn bytes_per_entry(self) -> u64 {
        match self {
            BaseMode::An | BaseMode::Ignore => 0,
            BaseMode::Role => 72,
            BaseMode::EmApl => 56,
            _ => 40,
        }
    }

    /// The loss of epoch `epoch` (from 1) with `params`; `None` for AN and Ignore.
    fn loss(self, params: &LossParams, epoch: usize) -> Option<PartialLoss> {
        let ll = |scheme| Some(PartialLoss::Ll { scheme, delta_rel: params.delta_rel, epoch });
        match self {
            BaseMode::An | BaseMode::Ignore => None,
            BaseMode::AnLs => Some(PartialLoss::AnLs { ls_coef: params.ls_coef }),
            BaseMode::Wan => Some(PartialLoss::Wan),
            BaseMode::Epr => Some(PartialLoss::Epr { expected_positives: params.expected_positives }),
            BaseMode::Role => Some(PartialLoss::Role { expected_positives: params.expected_positives }),
            BaseMode::Em => Some(PartialLoss::Em { alpha: params.alpha }),
            BaseMode::EmApl => Some(PartialLoss::EmApl { alpha: params.alpha, beta: params.beta }),
            BaseMode::LlR => ll(LlScheme::Reject),
            BaseMode::LlCt => ll(LlScheme::CorrectTemporary),
            BaseMode::LlCp => ll(LlScheme::CorrectPermanent),
        }
    }
}

crate::choice! {
    /// Where a base head starts.
    pub enum HeadInit {
        /// Zero weights and biases (the field's references).
        Zeros = "zeros",
        /// Zero weights, each bias at the logit of its category's positive rate (the AN/Ignore
        /// recipe; for the field's losses, observed positives over all rows).
        Prior = "prior",
    }
}

crate::choice! {
    /// How ROLE's label estimates start on unknown entries.
    #[derive(Default)]
    pub enum RoleInit {
        /// Logit 0 (observed positives logit(0.995), negatives logit(0.005)): deterministic.
        #[default]
        Fixed = "fixed",
        /// The official draw, U(−logit(0.6), logit(0.6)), from a seeded stream (`role_seed`;
        /// not torch's generator).
        Random = "random",
    }
}

/// The field's losses' parameters (each mode reads its own; defaults in parentheses).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LossParams {
    /// AN-LS: the smoothing coefficient (0.1, Cole et al.).
    pub ls_coef: f64,
    /// EPR, ROLE: expected positives per image `k` (1.5, Cole et al.'s VOC value).
    pub expected_positives: f64,
    /// ROLE: the estimates' learning rate as a multiple of the head's (10, Cole et al.).
    pub estimator_lr_mult: f64,
    /// ROLE: how the estimates start (`fixed`).
    pub role_init: RoleInit,
    /// ROLE with `role_init = random`: the stream's seed (0).
    pub role_seed: u64,
    /// EM, EM-APL: weight of the entropy term (0.1, Zhou et al.'s COCO value).
    pub alpha: f64,
    /// EM-APL: weight of the pseudo-labelled entries (0.2, Zhou et al.'s NUS-WIDE value).
    pub beta: f64,
    /// EM-APL: share of each category's unknown entries pseudo-labelled over the rounds (0.9).
    pub neg_proportion: f64,
    /// EM-APL: the first epoch (from 1) after which pseudo-labels are drawn (default: five
    /// rounds before the end, the round count of the official schedule's COCO setting, warm-up
    /// at epoch 5 of 10; with one round per epoch over hundreds of full-batch epochs, half the
    /// epochs would give `⌊0.9 u_c / 150⌋ = 0` pseudo-labels per round on small data).
    pub warmup_epoch: Option<usize>,
    /// LL: the clean rate's decrease per epoch, a fraction (1e-4: 3% of the entries modified at
    /// epoch 300; the papers' 0.1–0.5 % per epoch are for 10 epochs).
    pub delta_rel: f64,
}

impl Default for LossParams {
    fn default() -> Self {
        Self {
            ls_coef: 0.1,
            expected_positives: 1.5,
            estimator_lr_mult: 10.0,
            role_init: RoleInit::Fixed,
            role_seed: 0,
            alpha: 0.1,
            beta: 0.2,
            neg_proportion: 0.9,
            warmup_epoch: None,
            delta_rel: 1e-4,
        }
    }
}

impl LossParams {
    /// Whether every parameter has its default (serde's `skip_serializing_if`: earlier results
    /// keep their bytes).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// EM-APL's warm-up epoch for `epochs` epochs: as set, else five rounds before the end.
    pub fn warmup_for(&self, epochs: usize) -> usize {
        self.warmup_epoch.unwrap_or(epochs.saturating_sub(5).max(1))
    }
}

/// Settings of a base head.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BaseHeadConfig {
    /// AN, Ignore, or one of the field's losses.
    pub mode: BaseMode,
    /// Full-batch epochs.
    pub epochs: usize,
    /// Adam learning rate.
    pub lr: f32,
    /// L2 penalty on weights (not biases).
    pub weight_decay: f32,
    /// Where the head starts (`None`: [`BaseMode::default_init`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<HeadInit>,
    /// The field's losses' parameters.
    #[serde(default, skip_serializing_if = "LossParams::is_default")]
    pub params: LossParams,
}

impl BaseHeadConfig {
    /// The documented recipe: 300 epochs, lr 1e-2, weight decay 1e-4, the mode's start and the
    /// default loss parameters.
    pub fn recipe(mode: BaseMode) -> Self {
        Self { mode, epochs: 300, lr: 1e-2, weight_decay: 1e-4, init: None, params: LossParams::default() }
    }

    /// The start this configuration uses.
    pub fn start(&self) -> HeadInit {
        self.init.unwrap_or(self.mode.default_init())
    }
}

/// A [`BaseHeadConfig`] that passed [`BaseHeadConfig::check`]: the only form the trainers take.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(transparent)]
pub struct CheckedBaseHead(pub(crate) BaseHeadConfig);

impl std::ops::Deref for CheckedBaseHead {
    type Target = BaseHeadConfig;
    fn deref(&self) -> &BaseHeadConfig {
        &self.0
    }
}

impl CheckedBaseHead {
    /// The configuration.
    pub fn config(&self) -> &BaseHeadConfig {
        &self.0
    }
}

/// A trained base head and what the trainer has to say about it (LL steps whose `k` had to be
/// clamped, an APL round that ran out of unknown entries).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainedHead {
    /// The head.
    pub head: LinearHead,
    /// One line per event worth reporting (empty for AN and Ignore).
    pub notes: Vec<String>,
}

/// Trains a head on `features` (`n × d`) and partial `labels` (uncertain entries are treated as
/// unknown; resolve them first to use another policy).
pub fn train_base_head(features: &Matrix, labels: &PartialLabels, cfg: &CheckedBaseHead) -> TrainedHead {
    assert_eq!(labels.n_samples(), features.rows(), "labels must have one row per feature row");
    train_base_head_sparse(features, None, &labels.to_sparse(), cfg)
}

/// [`train_base_head`] on sparse labels (numbered like `features`' rows), on the given rows of
/// `features` only (ascending; `None`: all). AN and Ignore hold nothing of size images ×
/// categories: the rows stream through in blocks (OpenImages: a million images × 5,000
/// classes), and the gradient sums carry on from block to block in row order, so the result is
/// the same bits whatever the block size.
pub fn train_base_head_sparse(
    features: &Matrix,
    rows: Option<&[usize]>,
    labels: &SparseLabels,
    cfg: &CheckedBaseHead,
) -> TrainedHead {
    match train_base_head_stoppable(features, rows, labels, cfg, &|| false) {
        Ok(head) => head,
        Err(Interrupted) => unreachable!("a trainer that is never asked to stop is not interrupted"),
    }
}

/// [`train_base_head_sparse`] that asks `stop()` before every epoch and ends with
/// [`Interrupted`] when it says so (a front end's Ctrl-C).
pub fn train_base_head_stoppable(
    features: &Matrix,
    rows: Option<&[usize]>,
    labels: &SparseLabels,
    cfg: &CheckedBaseHead,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<TrainedHead, Interrupted> {
    let c = labels.n_categories();
    assert_eq!(labels.n_samples, features.rows(), "labels must have one row per feature row");
    let all: Vec<usize>;
    let rows = match rows {
        Some(r) => r,
        None => {
            all = (0..features.rows()).collect();
            &all
        }
    };
    // At most 16 MB of logits, and of gathered rows, per block.
    let block = ((1usize << 22) / c.max(features.cols()).max(1)).clamp(64, 1 << 16);
    if cfg.mode.is_field_loss() {
        train_field_loss(features, rows, labels, cfg, block, stop)
    } else {
        Ok(TrainedHead { head: train_in_blocks(features, rows, labels, cfg, block, stop)?, notes: Vec::new() })
    }
}

/// The logit of a positive rate, clamped to [1e-4, 1 − 1e-4].
fn prior_logit(positives: usize, count: usize) -> f32 {
    let rate = (positives as f64 / count.max(1) as f64).clamp(1e-4, 1.0 - 1e-4);
    (rate / (1.0 - rate)).ln() as f32
}

fn train_in_blocks(
    features: &Matrix,
    rows: &[usize],
    labels: &SparseLabels,
    cfg: &BaseHeadConfig,
    block: usize,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<LinearHead, Interrupted> {
    let (n, d, c) = (rows.len(), features.cols(), labels.n_categories());
    let block = block.min(n).max(1);
    let targets = Targets::new(labels, rows, features.rows(), cfg.mode == BaseMode::Ignore);
    let mut head = LinearHead::zeros(c, d);
    if cfg.start() == HeadInit::Prior {
        for cat in 0..c {
            head.bias[cat] = prior_logit(targets.positives[cat], targets.counts[cat]);
        }
    }
    let mut params: Vec<f32> = head.weight.as_slice().iter().chain(&head.bias).copied().collect();
    let mut grads = vec![0.0f32; params.len()];
    let adam_cfg = AdamConfig { lr: cfg.lr, ..AdamConfig::default() };
    let mut adam = Adam::new(adam_cfg, params.len());
    let mut x = Vec::with_capacity(block * d);
    let mut logits = vec![0.0f32; c * block];
    let mut target = vec![f32::NAN; c * block];
    for _ in 0..cfg.epochs {
        if stop() {
            return Err(Interrupted);
        }
        grads.fill(0.0);
        let mut bias_grads = vec![0.0f64; c];
        for start in (0..n).step_by(block) {
            let len = block.min(n - start);
            gather(features, &rows[start..start + len], &mut x);
            let (logits, target) = (&mut logits[..c * len], &mut target[..c * len]);
            crate::kernels::scores_nt(&x, len, d, &params[..c * d], c, &params[c * d..], logits);
            targets.fill(start..start + len, target);
            for cat in 0..c {
                let scale = 1.0 / targets.counts[cat].max(1) as f32;
                let row = &mut logits[cat * len..(cat + 1) * len];
                for (v, &t) in row.iter_mut().zip(&target[cat * len..(cat + 1) * len]) {
                    *v = if t.is_nan() { 0.0 } else { (sigmoid(*v) - t) * scale };
                    bias_grads[cat] += f64::from(*v);
                }
            }
            crate::kernels::weighted_row_sums_onto(logits, c, &x, len, d, &mut grads[..c * d]);
        }
        for (g, b) in grads[c * d..].iter_mut().zip(&bias_grads) {
            *g = *b as f32;
        }
        for (g, &p) in grads[..c * d].iter_mut().zip(&params[..c * d]) {
            *g += cfg.weight_decay * p;
        }
        adam.step(&mut params, &grads);
    }
    head.weight = Matrix::new(c, d, params[..c * d].to_vec()).expect("shape");
    head.bias = params[c * d..].to_vec();
    Ok(head)
}

/// The field's losses, full batch: each epoch the logits of every trained row, the official
/// loss and its gradient ([`partial_loss`]), one Adam step (and ROLE's estimator step); LL-Cp
/// relabels after the step, APL pseudo-labels after the step from the warm-up epoch on.
fn train_field_loss(
    features: &Matrix,
    rows: &[usize],
    labels: &SparseLabels,
    cfg: &BaseHeadConfig,
    block: usize,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<TrainedHead, Interrupted> {
    let (n, d, c) = (rows.len(), features.cols(), labels.n_categories());
    let block = block.min(n).max(1);
    let mut observed = observed_rows(labels, rows, features.rows());
    let mut head = LinearHead::zeros(c, d);
    if cfg.start() == HeadInit::Prior {
        for cat in 0..c {
            let positives = (0..n).filter(|&i| observed[i * c + cat] == Label::Positive).count();
            head.bias[cat] = prior_logit(positives, n);
        }
    }
    let mut params: Vec<f32> = head.weight.as_slice().iter().chain(&head.bias).copied().collect();
    let mut adam = Adam::new(AdamConfig { lr: cfg.lr, ..AdamConfig::default() }, params.len());
    let role = cfg.mode == BaseMode::Role;
    let mut estimates = if role { role_start(&observed, &cfg.params) } else { Vec::new() };
    let estimator_lr = (f64::from(cfg.lr) * cfg.params.estimator_lr_mult) as f32;
    let mut estimator_adam = Adam::new(AdamConfig { lr: estimator_lr, ..AdamConfig::default() }, estimates.len());
    let apl = (cfg.mode == BaseMode::EmApl).then(|| {
        let warmup = cfg.params.warmup_for(cfg.epochs);
        (warmup, apl_counts(&observed, c, cfg.params.neg_proportion, cfg.epochs, warmup))
    });
    let mut pseudo: Vec<Option<f64>> = if apl.is_some() { vec![None; n * c] } else { Vec::new() };
    let mut notes = Vec::new();
    let mut x = Vec::with_capacity(block * d);
    for epoch in 1..=cfg.epochs {
        if stop() {
            return Err(Interrupted);
        }
        let Some(loss) = cfg.mode.loss(&cfg.params, epoch) else { break };
        let logits = all_logits(features, rows, &params, c, block, &mut x);
        let est64: Vec<f64> = estimates.iter().map(|&w| f64::from(w)).collect();
        let batch = Batch {
            n,
            c,
            logits: &logits,
            observed: &observed,
            truth: None,
            estimates: role.then_some(est64.as_slice()),
            pseudo: apl.is_some().then_some(pseudo.as_slice()),
        };
        let value = partial_loss(&loss, &batch);
        let mut grads = vec![0.0f32; params.len()];
        let mut bias_grads = vec![0.0f64; c];
        let mut g = vec![0.0f32; c * block];
        for start in (0..n).step_by(block) {
            let len = block.min(n - start);
            gather(features, &rows[start..start + len], &mut x);
            // Head-major for the kernel: g[cat × len + j].
            for j in 0..len {
                for cat in 0..c {
                    let v = value.grad_logits[(start + j) * c + cat];
                    g[cat * len + j] = v as f32;
                    bias_grads[cat] += v;
                }
            }
            crate::kernels::weighted_row_sums_onto(&g[..c * len], c, &x, len, d, &mut grads[..c * d]);
        }
        for (gb, b) in grads[c * d..].iter_mut().zip(&bias_grads) {
            *gb = *b as f32;
        }
        for (gw, &p) in grads[..c * d].iter_mut().zip(&params[..c * d]) {
            *gw += cfg.weight_decay * p;
        }
        adam.step(&mut params, &grads);
        if let (true, Some(ge)) = (role, &value.grad_estimates) {
            let ge: Vec<f32> = ge.iter().map(|&v| v as f32).collect();
            estimator_adam.step(&mut estimates, &ge);
        }
        if let Some(step) = &value.ll {
            if let Some(wanted) = step.clamped_from {
                notes.push(format!(
                    "{} epoch {epoch}: the schedule asked to modify {wanted} entries, only {} unknown entries have a positive loss; modified those (the official code would flip observed labels)",
                    cfg.mode.label(),
                    step.k
                ));
            }
            for &e in &step.permanent {
                observed[e] = Label::Positive;
            }
        }
        if let Some((warmup, counts)) = &apl {
            if epoch >= *warmup && epoch < cfg.epochs {
                let after = all_logits(features, rows, &params, c, block, &mut x);
                let new = apl_round(&after, &observed, c, counts, &mut pseudo);
                let wanted: usize = counts.iter().sum();
                if new.len() < wanted && notes.iter().all(|l: &String| !l.contains("ran out")) {
                    notes.push(format!(
                        "EM-APL epoch {epoch}: the round pseudo-labelled {} of {wanted} entries (some categories ran out of unknown entries)",
                        new.len()
                    ));
                }
            }
        }
    }
    let weight = Matrix::new(c, d, params[..c * d].to_vec()).expect("c × d parameters");
    Ok(TrainedHead { head: LinearHead { weight, bias: params[c * d..].to_vec() }, notes })
}

/// The observed labels of `rows` (in that order), row-major `rows × C`.
fn observed_rows(labels: &SparseLabels, rows: &[usize], n_samples: usize) -> Vec<Label> {
    let c = labels.n_categories();
    let position = positions(rows, n_samples);
    let mut out = vec![Label::Unknown; rows.len() * c];
    for (cat, k) in labels.per_category.iter().enumerate() {
        for (list, label) in [(&k.positives, Label::Positive), (&k.negatives, Label::Negative)] {
            for &s in list {
                let p = position[s as usize];
                if p != u32::MAX {
                    out[p as usize * c + cat] = label;
                }
            }
        }
    }
    out
}

/// ROLE's starting estimates (logits): observed positives logit(0.995), observed negatives
/// logit(0.005), unknown entries 0 or the official U(−logit(0.6), logit(0.6)) from a seeded stream.
fn role_start(observed: &[Label], params: &LossParams) -> Vec<f32> {
    let logit = |p: f64| (p / (1.0 - p)).ln();
    let mut rng = crate::rng::Pcg64::new(params.role_seed);
    let a = logit(0.6);
    observed
        .iter()
        .map(|&l| match (l, params.role_init) {
            (Label::Positive, _) => logit(0.995) as f32,
            (Label::Negative, _) => logit(0.005) as f32,
            (_, RoleInit::Fixed) => 0.0,
            (_, RoleInit::Random) => rng.uniform(-a, a) as f32,
        })
        .collect()
}

/// Each sample's position among `rows` (`u32::MAX` where it is not trained on).
fn positions(rows: &[usize], n_samples: usize) -> Vec<u32> {
    let mut position = vec![u32::MAX; n_samples];
    for (j, &r) in rows.iter().enumerate() {
        position[r] = j as u32;
    }
    position
}

/// Copies `rows` of `features` into `x`.
fn gather(features: &Matrix, rows: &[usize], x: &mut Vec<f32>) {
    x.clear();
    for &r in rows {
        x.extend_from_slice(features.row(r));
    }
}

/// The logits of every row of `rows` under `params` (`C × d` weights then `C` biases), as f64,
/// row-major `rows × C`.
fn all_logits(features: &Matrix, rows: &[usize], params: &[f32], c: usize, block: usize, x: &mut Vec<f32>) -> Vec<f64> {
    let (n, d) = (rows.len(), features.cols());
    let mut out = vec![0.0f64; n * c];
    let mut local = vec![0.0f32; c * block];
    for start in (0..n).step_by(block) {
        let len = block.min(n - start);
        gather(features, &rows[start..start + len], x);
        crate::kernels::scores_nt(x, len, d, &params[..c * d], c, &params[c * d..], &mut local[..c * len]);
        for cat in 0..c {
            for j in 0..len {
                out[(start + j) * c + cat] = f64::from(local[cat * len + j]);
            }
        }
    }
    out
}

/// The base head's targets, kept sparse: per category its known positives and negatives as
/// positions among the trained rows, filled into one block of rows at a time.
struct Targets {
    /// Per category: (position, target) of its known rows, ascending.
    known: Vec<Vec<(u32, bool)>>,
    /// Unknown rows are negatives (AN) or out of the loss (Ignore).
    unknown: f32,
    /// Rows entering each category's loss.
    counts: Vec<usize>,
    /// Positives among them.
    positives: Vec<usize>,
}

impl Targets {
    /// Unknown rows are negatives, or (`ignore_unknown`) out of the loss.
    fn new(labels: &SparseLabels, rows: &[usize], n_samples: usize, ignore_unknown: bool) -> Self {
        let position = positions(rows, n_samples);
        let known: Vec<Vec<(u32, bool)>> = labels
            .per_category
            .iter()
            .map(|k| {
                let mut v: Vec<(u32, bool)> = k
                    .positives
                    .iter()
                    .map(|&s| (s, true))
                    .chain(k.negatives.iter().map(|&s| (s, false)))
                    .filter_map(|(s, y)| {
                        let p = position[s as usize];
                        (p != u32::MAX).then_some((p, y))
                    })
                    .collect();
                v.sort_unstable_by_key(|&(p, _)| p);
                v
            })
            .collect();
        let positives: Vec<usize> = known.iter().map(|v| v.iter().filter(|&&(_, y)| y).count()).collect();
        let (counts, unknown) = if ignore_unknown {
            (known.iter().map(Vec::len).collect(), f32::NAN)
        } else {
            (vec![rows.len(); known.len()], 0.0)
        };
        Self { known, unknown, counts, positives }
    }

    /// `out[cat × len + j]`: the target of row position `block.start + j`.
    fn fill(&self, block: std::ops::Range<usize>, out: &mut [f32]) {
        let len = block.len();
        out.fill(self.unknown);
        for (cat, known) in self.known.iter().enumerate() {
            let from = known.partition_point(|&(p, _)| (p as usize) < block.start);
            for &(p, y) in known[from..].iter().take_while(|&&(p, _)| (p as usize) < block.end) {
                out[cat * len + p as usize - block.start] = if y { 1.0 } else { 0.0 };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Label;
    use crate::metrics::Metric;

    #[test]
    fn blocks_and_row_subsets_give_the_bits_of_one_pass_over_the_gathered_rows() {
        let (n, d, c) = (300, 5, 3);
        let x: Vec<f32> = (0..n * d).map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 250.0).collect();
        let x = Matrix::new(n, d, x).unwrap();
        let labels: Vec<Label> = (0..n * c)
            .map(|i| match (i * 31 + i / 7) % 5 {
                0 => Label::Positive,
                1 | 2 => Label::Negative,
                3 => Label::Uncertain,
                _ => Label::Unknown,
            })
            .collect();
        let labels = PartialLabels::new(n, c, labels).unwrap();
        let rows: Vec<usize> = (0..n).filter(|i| i % 4 != 0).collect();
        for mode in [BaseMode::An, BaseMode::Ignore] {
            let cfg = BaseHeadConfig { epochs: 20, ..BaseHeadConfig::recipe(mode) }.check().unwrap();
            let sparse = labels.to_sparse();
            let one_pass = train_in_blocks(&x, &rows, &sparse, &cfg, n, &|| false).unwrap();
            for block in [1, 7, 64] {
                let blocked = train_in_blocks(&x, &rows, &sparse, &cfg, block, &|| false).unwrap();
                assert_eq!(blocked, one_pass, "{mode:?}, block {block}");
            }
            let gathered = train_base_head(&x.gather_rows(&rows), &labels.select_rows(&rows), &cfg).head;
            assert_eq!(gathered, one_pass, "{mode:?}: the subset equals the gathered rows");
        }
    }

    #[test]
    fn learns_a_linearly_separable_category_in_both_modes() {
        let n = 100;
        let x: Vec<f32> = (0..n).flat_map(|i| [i as f32 / n as f32 - 0.5, 1.0]).collect();
        let x = Matrix::new(n, 2, x).unwrap();
        let labels: Vec<Label> = (0..n)
            .map(|i| {
                if i % 3 == 0 {
                    Label::Unknown
                } else if i >= 50 {
                    Label::Positive
                } else {
                    Label::Negative
                }
            })
            .collect();
        let labels = PartialLabels::new(n, 1, labels).unwrap();
        for mode in [BaseMode::An, BaseMode::Ignore] {
            let head = train_base_head(&x, &labels, &BaseHeadConfig::recipe(mode).check().unwrap()).head;
            assert!(head.weight.row(0)[0] > 0.5, "{mode:?}: {:?}", head.weight);
            let s = head.logits(&x);
            let y: Vec<bool> = (0..n).map(|i| i >= 50).collect();
            assert!(Metric::Auc.score(&s, &y).unwrap() > 0.99);
        }
    }
}
