//! The field's partial-label and single-positive losses, as their official code computes them
//! (Cole et al., CVPR 2021; Zhou et al., ECCV 2022; Kim et al., CVPR 2022), on a full batch of
//! `n × C` logits: the per-entry loss matrix, its mean over **all** `n·C` entries plus the
//! regulariser of EPR and ROLE, and the gradient with respect to the logits (and to ROLE's
//! estimator logits). `../shared/fixtures/partial_losses/SEMANTICS.md` states every formula;
//! this module follows it line by line and the tests reproduce the official values.
//!
//! The numerics are the official ones, not the textbook's:
//! * Cole's and Zhou's losses take the guarded logarithms `lp(p) = −ln(p + 1e−5)` and
//!   `ln_(p) = −ln(1 − p + 1e−5)` of `p = σ(z)` (they saturate at 11.51 and their gradient
//!   vanishes for confidently wrong logits); Kim's LL losses use the exact
//!   binary cross-entropy with logits.
//! * LL's clean rate is built by repeated floating-point subtraction ([`ll_clean_rate`]), so `k`
//!   can exceed the exact `⌈nC(t−1)δ⌉` (7 instead of 6 at epoch 4, δ = 0.05, 40 entries), as
//!   the official code has it; every unknown entry tied at the threshold is modified.
//! * Where the official code cannot express observed negatives (Cole's and Zhou's
//!   single-positive losses), the generalisation is SEMANTICS.md's: a plain (or, for AN-LS and
//!   ROLE, mirrored) negative term with weight 1.
//!
//! Decided here where the official code is undefined or silent:
//! * APL's selection sorts the candidates by `p` ascending with a **stable** sort (ties keep
//!   row order); numpy's default sort, which the official code calls, is not stable.
//! * LL's degenerate case — more entries to modify than unknown entries with a positive loss,
//!   where the official threshold drops to 0 and silently flips observed labels — is
//!   **clamped**: `k` becomes the number of unknown entries with a positive loss, and the step
//!   says so ([`LlStep::clamped_from`]); observed labels are never modified.

use crate::labels::Label;

/// The guard of Cole's and Zhou's logarithms.
pub const LOG_EPSILON: f64 = 1e-5;

/// The losses, with their parameters. The first four are reference points the fixtures pin
/// (BCE and IUN need the true labels); the others are the baselines a head can be trained with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PartialLoss {
    /// BCE on the full (true) labels, guarded logs (Cole's `loss_bce`).
    Bce,
    /// Ignore unknown: guarded BCE on the observed labels only (Cole's `loss_iu`).
    Iu,
    /// Observed positives and every true negative (Zhou's `loss_iun`; an oracle).
    Iun,
    /// Assume negative with guarded logs (Cole's `loss_an`).
    An,
    /// AN with label smoothing `ls_coef` on every target (Cole's `loss_an_ls`).
    AnLs {
        /// Smoothing coefficient (official 0.1).
        ls_coef: f64,
    },
    /// Weak AN: assumed negatives weighted `1/(C−1)` (Cole's `loss_wan`).
    Wan,
    /// Expected positive regularisation: positives only, plus `((1/n) Σ p − k)² / C²`.
    Epr {
        /// Expected positives per image `k`.
        expected_positives: f64,
    },
    /// Regularised online label estimation: a second set of logits (one per training entry)
    /// estimates the unknown labels (Cole's `loss_role`).
    Role {
        /// Expected positives per image `k`.
        expected_positives: f64,
    },
    /// Entropy maximisation on unknown labels, weight `alpha` (Zhou's `loss_EM`).
    Em {
        /// Weight of the (negated) entropy term.
        alpha: f64,
    },
    /// EM with asymmetric pseudo-labelling (Zhou's `loss_EM_APL`): pseudo-labelled entries get
    /// `beta · BCE(p, s)`, with the pseudo-labels of [`apl_round`].
    EmApl {
        /// Weight of the entropy term on unlabelled unknown entries.
        alpha: f64,
        /// Weight of the pseudo-labelled entries.
        beta: f64,
    },
    /// Large-loss modification (Kim et al.) at `epoch` (from 1) with `delta_rel` per epoch.
    Ll {
        /// Reject, correct temporarily or correct permanently.
        scheme: LlScheme,
        /// The clean rate's decrease per epoch, as a fraction (the official CLI value / 100).
        delta_rel: f64,
        /// The epoch, counted from 1 (epoch 1 modifies nothing).
        epoch: usize,
    },
}

/// What LL does to the largest assumed-negative losses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlScheme {
    /// LL-R: their loss is rejected (0).
    Reject,
    /// LL-Ct: their target is flipped to positive for this step.
    CorrectTemporary,
    /// LL-Cp (as first published): flipped for this step, and those strictly above the
    /// threshold become observed positives after it.
    CorrectPermanent,
}

/// A batch: `n × C` logits and what is known of each entry.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    /// Rows.
    pub n: usize,
    /// Categories.
    pub c: usize,
    /// Logits `z`, row-major `n × C`.
    pub logits: &'a [f64],
    /// Observed labels, row-major (uncertain counts as unknown).
    pub observed: &'a [Label],
    /// The full labels ([`PartialLoss::Bce`] and [`PartialLoss::Iun`] only).
    pub truth: Option<&'a [bool]>,
    /// ROLE's estimator logits `w`, row-major ([`PartialLoss::Role`] only).
    pub estimates: Option<&'a [f64]>,
    /// APL's soft targets (`None`: not pseudo-labelled), row-major ([`PartialLoss::EmApl`]).
    pub pseudo: Option<&'a [Option<f64>]>,
}

/// The loss of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct LossValue {
    /// `Σ M / (n·C) + reg`.
    pub value: f64,
    /// The regulariser (EPR, ROLE).
    pub reg: Option<f64>,
    /// The per-entry matrix `M`, row-major.
    pub matrix: Vec<f64>,
    /// `d value / d z`, row-major.
    pub grad_logits: Vec<f64>,
    /// ROLE: `d value / d w` (the estimator's logits).
    pub grad_estimates: Option<Vec<f64>>,
    /// LL after epoch 1: what was modified.
    pub ll: Option<LlStep>,
}

/// What one LL step modified.
#[derive(Debug, Clone, PartialEq)]
pub struct LlStep {
    /// The clean rate of the epoch.
    pub clean_rate: f64,
    /// Entries to modify (after clamping).
    pub k: usize,
    /// The `k` of the schedule when it had to be clamped (see the module docs).
    pub clamped_from: Option<usize>,
    /// The k-th largest assumed-negative loss.
    pub threshold: f64,
    /// Row-major indices of the modified entries (unknown, loss ≥ threshold).
    pub modified: Vec<usize>,
    /// LL-Cp: row-major indices that become observed positives after the step (loss > threshold).
    pub permanent: Vec<usize>,
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// PyTorch's `log_sigmoid`: `min(z, 0) − ln(1 + e^(−|z|))`.
fn log_sigmoid(z: f64) -> f64 {
    z.min(0.0) - (-z.abs()).exp().ln_1p()
}

/// `binary_cross_entropy_with_logits` of one entry as PyTorch computes it, `(1 − t)·z −
/// log_sigmoid(z)` (rounding included: at z = −30, t = 0 that is 9.237e−14, not ln(1 + e^−30)).
fn bce_with_logits(z: f64, positive: bool) -> f64 {
    let t = if positive { 1.0 } else { 0.0 };
    (1.0 - t) * z - log_sigmoid(z)
}

/// `−ln(p + ε)` and its derivative with respect to `p`.
fn lp(p: f64) -> (f64, f64) {
    (-(p + LOG_EPSILON).ln(), -1.0 / (p + LOG_EPSILON))
}

/// `−ln(1 − p + ε)` and its derivative with respect to `p`.
fn ln_(p: f64) -> (f64, f64) {
    (-(1.0 - p + LOG_EPSILON).ln(), 1.0 / (1.0 - p + LOG_EPSILON))
}

/// The guarded entropy `H(p) = p·lp(p) + (1−p)·ln_(p)` and `dH/dp`.
fn entropy(p: f64) -> (f64, f64) {
    let ((a, da), (b, db)) = (lp(p), ln_(p));
    (p * a + (1.0 - p) * b, a + p * da - b + (1.0 - p) * db)
}

/// The observation of an entry: uncertain counts as unknown.
fn known(l: Label) -> Option<bool> {
    match l {
        Label::Positive => Some(true),
        Label::Negative => Some(false),
        Label::Unknown | Label::Uncertain => None,
    }
}

/// LL's clean rate at `epoch` (from 1): 1, then `delta_rel` subtracted after every epoch, in
/// floating point, as the official code does.
pub fn ll_clean_rate(epoch: usize, delta_rel: f64) -> f64 {
    let mut r = 1.0f64;
    for _ in 1..epoch {
        r -= delta_rel;
    }
    r
}

/// The loss of `batch` under `loss` (see the module docs).
pub fn partial_loss(loss: &PartialLoss, batch: &Batch<'_>) -> LossValue {
    let (n, c) = (batch.n, batch.c);
    let entries = n * c;
    let scale = 1.0 / entries.max(1) as f64;
    let mut matrix = vec![0.0; entries];
    let mut grad = vec![0.0; entries];
    let mut reg = None;
    let mut grad_est = None;
    let mut ll = None;
    let p: Vec<f64> = batch.logits.iter().map(|&z| sigmoid(z)).collect();
    // `d/dz` of a term `f(p)` whose `df/dp` is `d`: `d · p(1−p)`.
    let dz = |i: usize, d: f64| d * p[i] * (1.0 - p[i]);
    match *loss {
        PartialLoss::Bce | PartialLoss::Iu | PartialLoss::Iun | PartialLoss::An | PartialLoss::Wan => {
            let truth = batch.truth.unwrap_or(&[]);
            for i in 0..entries {
                let obs = known(batch.observed[i]);
                let target = match (loss, obs) {
                    (PartialLoss::Bce, _) => truth.get(i).map(|&t| (t, 1.0)),
                    (_, Some(y)) => Some((y, 1.0)),
                    (PartialLoss::Iun, None) => truth.get(i).and_then(|&t| (!t).then_some((false, 1.0))),
                    (PartialLoss::An, None) => Some((false, 1.0)),
                    (PartialLoss::Wan, None) => Some((false, 1.0 / (c as f64 - 1.0))),
                    _ => None,
                };
                if let Some((y, w)) = target {
                    let (v, d) = if y { lp(p[i]) } else { ln_(p[i]) };
                    matrix[i] = w * v;
                    grad[i] = w * dz(i, d);
                }
            }
        }
        PartialLoss::AnLs { ls_coef: e } => {
            for i in 0..entries {
                let ((a, da), (b, db)) = (lp(p[i]), ln_(p[i]));
                // The positive is smoothed too; a known negative mirrors it (SEMANTICS.md).
                let (wp, wn) = if known(batch.observed[i]) == Some(true) { (1.0 - e, e) } else { (e, 1.0 - e) };
                matrix[i] = wp * a + wn * b;
                grad[i] = dz(i, wp * da + wn * db);
            }
        }
        PartialLoss::Epr { expected_positives: k } => {
            for i in 0..entries {
                if let Some(y) = known(batch.observed[i]) {
                    let (v, d) = if y { lp(p[i]) } else { ln_(p[i]) };
                    matrix[i] = v;
                    grad[i] = dz(i, d);
                }
            }
            let (r, dr) = expected_positive_penalty(&p, n, c, k);
            reg = Some(r);
            for (i, g) in grad.iter_mut().enumerate() {
                // `grad` holds d(M)/dz: the mean's scale, then the penalty's gradient.
                *g = *g * scale + dz(i, dr);
            }
            return finish(matrix, grad, scale, reg, None, None, true);
        }
        PartialLoss::Role { expected_positives: k } => {
            let w = batch.estimates.unwrap_or(&[]);
            let q: Vec<f64> = (0..entries).map(|i| w.get(i).map_or(0.5, |&w| sigmoid(w))).collect();
            let mut gw = vec![0.0; entries];
            for i in 0..entries {
                let (pi, qi) = (p[i], q[i]);
                let ((lpp, dlpp), (lnp, dlnp)) = (lp(pi), ln_(pi));
                let ((lpq, dlpq), (lnq, dlnq)) = (lp(qi), ln_(qi));
                // Each side learns from the other as a fixed target.
                let mut m = 0.5 * (qi * lpp + (1.0 - qi) * lnp) + 0.5 * (pi * lpq + (1.0 - pi) * lnq);
                let mut dp = 0.5 * (qi * dlpp + (1.0 - qi) * dlnp);
                let mut dq = 0.5 * (pi * dlpq + (1.0 - pi) * dlnq);
                match known(batch.observed[i]) {
                    Some(true) => {
                        m += 0.5 * (lpp + lpq);
                        dp += 0.5 * dlpp;
                        dq += 0.5 * dlpq;
                    }
                    Some(false) => {
                        m += 0.5 * (lnp + lnq);
                        dp += 0.5 * dlnp;
                        dq += 0.5 * dlnq;
                    }
                    None => {}
                }
                matrix[i] = m;
                grad[i] = dp * pi * (1.0 - pi);
                gw[i] = dq * qi * (1.0 - qi);
            }
            let (rp, drp) = expected_positive_penalty(&p, n, c, k);
            let (rq, drq) = expected_positive_penalty(&q, n, c, k);
            reg = Some(0.5 * (rp + rq));
            for i in 0..entries {
                grad[i] = grad[i] * scale + 0.5 * drp * p[i] * (1.0 - p[i]);
                gw[i] = gw[i] * scale + 0.5 * drq * q[i] * (1.0 - q[i]);
            }
            grad_est = Some(gw);
            return finish(matrix, grad, scale, reg, grad_est, None, true);
        }
        PartialLoss::Em { alpha } | PartialLoss::EmApl { alpha, .. } => {
            let beta = match *loss {
                PartialLoss::EmApl { beta, .. } => beta,
                _ => 0.0,
            };
            let pseudo = batch.pseudo.unwrap_or(&[]);
            for i in 0..entries {
                let ((a, da), (b, db)) = (lp(p[i]), ln_(p[i]));
                let (v, d) = match (known(batch.observed[i]), pseudo.get(i).copied().flatten()) {
                    (Some(true), _) => (a, da),
                    (Some(false), _) => (b, db),
                    (None, Some(s)) => (beta * (s * a + (1.0 - s) * b), beta * (s * da + (1.0 - s) * db)),
                    (None, None) => {
                        let (h, dh) = entropy(p[i]);
                        (-alpha * h, -alpha * dh)
                    }
                };
                matrix[i] = v;
                grad[i] = dz(i, d);
            }
        }
        PartialLoss::Ll { scheme, delta_rel, epoch } => {
            // Assume-negative BCE on logits: b1 on observed positives, b0 elsewhere.
            let b = |i: usize, positive: bool| -> (f64, f64) {
                let z = batch.logits[i];
                (bce_with_logits(z, positive), if positive { p[i] - 1.0 } else { p[i] })
            };
            let unknown: Vec<bool> = batch.observed.iter().map(|&l| known(l).is_none()).collect();
            for i in 0..entries {
                let (v, d) = b(i, known(batch.observed[i]) == Some(true));
                matrix[i] = v;
                grad[i] = d;
            }
            let clean_rate = ll_clean_rate(epoch, delta_rel);
            if clean_rate != 1.0 {
                let wanted = match scheme {
                    LlScheme::CorrectPermanent => (entries as f64 * delta_rel).ceil(),
                    _ => (entries as f64 * (1.0 - clean_rate)).ceil(),
                };
                let wanted = if wanted.is_finite() && wanted > 0.0 { wanted as usize } else { 0 };
                // The masked losses: unknown entries only; their values above 0 can be modified.
                let mut positive_losses: Vec<f64> =
                    (0..entries).filter(|&i| unknown[i] && matrix[i] > 0.0).map(|i| matrix[i]).collect();
                positive_losses.sort_by(|a, b| b.total_cmp(a));
                let k = wanted.min(positive_losses.len());
                let clamped_from = (k < wanted).then_some(wanted);
                let (threshold, modified, permanent) = if k == 0 {
                    (f64::INFINITY, Vec::new(), Vec::new())
                } else {
                    let tau = positive_losses[k - 1];
                    let modified: Vec<usize> = (0..entries).filter(|&i| unknown[i] && matrix[i] >= tau).collect();
                    let permanent = match scheme {
                        LlScheme::CorrectPermanent => modified.iter().copied().filter(|&i| matrix[i] > tau).collect(),
                        _ => Vec::new(),
                    };
                    (tau, modified, permanent)
                };
                for &i in &modified {
                    let (v, d) = match scheme {
                        LlScheme::Reject => (0.0, 0.0),
                        _ => b(i, true),
                    };
                    matrix[i] = v;
                    grad[i] = d;
                }
                ll = Some(LlStep { clean_rate, k, clamped_from, threshold, modified, permanent });
            }
        }
    }
    finish(matrix, grad, scale, reg, grad_est, ll, false)
}

/// `((1/n) Σ p − k)² / C²` and its derivative with respect to each `p`.
fn expected_positive_penalty(p: &[f64], n: usize, c: usize, k: f64) -> (f64, f64) {
    let mean = p.iter().sum::<f64>() / n.max(1) as f64;
    let c2 = (c * c) as f64;
    ((mean - k).powi(2) / c2, 2.0 * (mean - k) / c2 / n.max(1) as f64)
}

/// The reduction: `Σ M · scale + reg`, and the matrix gradient scaled (unless done).
fn finish(
    matrix: Vec<f64>,
    mut grad: Vec<f64>,
    scale: f64,
    reg: Option<f64>,
    grad_estimates: Option<Vec<f64>>,
    ll: Option<LlStep>,
    grad_scaled: bool,
) -> LossValue {
    let value = matrix.iter().sum::<f64>() * scale + reg.unwrap_or(0.0);
    if !grad_scaled {
        grad.iter_mut().for_each(|g| *g *= scale);
    }
    LossValue { value, reg, matrix, grad_logits: grad, grad_estimates, ll }
}

/// APL's pseudo-labels per category and round: `⌊(neg_proportion · u[c]) / (epochs − warmup)⌋`
/// with `u[c]` the unknown entries of category `c` in the initial labels (observed negatives
/// are not counted), computed in floating point in that order, as the official code does.
pub fn apl_counts(observed: &[Label], c: usize, neg_proportion: f64, epochs: usize, warmup: usize) -> Vec<usize> {
    let mut unknown = vec![0usize; c];
    for (i, &l) in observed.iter().enumerate() {
        if known(l).is_none() {
            unknown[i % c] += 1;
        }
    }
    let rounds = epochs.saturating_sub(warmup).max(1) as f64;
    unknown.iter().map(|&u| ((neg_proportion * u as f64) / rounds).trunc() as usize).collect()
}

/// One APL round after an epoch: for each category, its `counts[c]` still unknown and not yet
/// pseudo-labelled entries with the smallest `p = σ(z)` (stable: ties keep row order) get the
/// soft negative target `s = p`, fixed from then on. Returns the newly labelled `(row, c, s)`.
pub fn apl_round(
    logits: &[f64],
    observed: &[Label],
    c: usize,
    counts: &[usize],
    pseudo: &mut [Option<f64>],
) -> Vec<(usize, usize, f64)> {
    let n = logits.len() / c.max(1);
    let mut new = Vec::new();
    for (cat, &m) in counts.iter().enumerate().take(c) {
        let mut candidates: Vec<(f64, usize)> = (0..n)
            .map(|i| i * c + cat)
            .filter(|&e| known(observed[e]).is_none() && pseudo[e].is_none())
            .map(|e| (sigmoid(logits[e]), e / c))
            .collect();
        candidates.sort_by(|a, b| a.0.total_cmp(&b.0));
        for &(s, row) in candidates.iter().take(m) {
            pseudo[row * c + cat] = Some(s);
            new.push((row, cat, s));
        }
    }
    new.sort_unstable_by_key(|&(row, cat, _)| (row, cat));
    new
}
