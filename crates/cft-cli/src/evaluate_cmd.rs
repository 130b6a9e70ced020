//! `cft evaluate` and `cft train-head`: flags → the library's head jobs
//! (`cft_experiment::head_job`).

use crate::args::{choice, flag_error};
use anyhow::Result;
use cft_core::{BaseHeadConfig, BaseMode, GroupBy, HeadInit, LossParams, Metric, RoleInit, UncertainPolicy};
use cft_experiment::head_job::{evaluate as score, GroupRequest, TrainHeadJob};
use std::path::PathBuf;

/// Arguments of `cft evaluate`.
#[derive(Debug, Clone, clap::Args)]
pub struct EvaluateArgs {
    /// The head to score (an nn.Linear state dict, or a model state dict with a classifier).
    #[arg(long)]
    pub head: PathBuf,
    /// The classifier's key prefix in a model state dict (e.g. `fc`).
    #[arg(long)]
    pub head_key: Option<String>,
    /// A labelled feature set, dense or sparse labels (unknown labels are left out per category).
    #[arg(long)]
    pub data: PathBuf,
    /// Metric.
    #[arg(long, value_parser = choice::<Metric>(), default_value = "ap")]
    pub metric: Metric,
    /// Uncertain (−1) labels: ignore, ones or zeros.
    #[arg(long, value_parser = choice::<UncertainPolicy>(), default_value = "ignore")]
    pub uncertain: UncertainPolicy,
    /// Also write the scores as JSON: {"metric", "categories", "per_category", "mean", "groups"}.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also report the mean over frequency groups (OpenImages V3 reports G1–G5: `--groups 5`):
    /// categories sorted ascending by their count in the training labels of `--group-counts-from`.
    #[arg(long, requires = "group_counts_from")]
    pub groups: Option<usize>,
    /// The labelled feature set whose label counts order the groups: the training set.
    #[arg(long, requires = "groups")]
    pub group_counts_from: Option<PathBuf>,
    /// What a category's count is: its known positives (the class's frequency; default) or all
    /// its known labels.
    #[arg(long, value_parser = choice::<GroupBy>(), default_value = "positives")]
    pub group_by: GroupBy,
}

/// Runs `cft evaluate`.
pub fn evaluate(args: &EvaluateArgs) -> Result<()> {
    if let Some(j) = &args.json {
        let mut inputs = vec![cft_data::Named::new("--head", &args.head), cft_data::Named::new("--data", &args.data)];
        if let Some(g) = &args.group_counts_from {
            inputs.push(cft_data::Named::new("--group-counts-from", g));
        }
        cft_data::check_outputs(&inputs, &[cft_data::Named::new("--json", j)])?;
    }
    let groups = match (args.groups, &args.group_counts_from) {
        (Some(groups), Some(from)) => Some(GroupRequest { groups, counts_from: from.clone(), by: args.group_by }),
        _ => None,
    };
    let ev = score(&args.head, args.head_key.as_deref(), &args.data, args.metric, args.uncertain, groups.as_ref())?;
    print!("{}", ev.table());
    if let Some(p) = &args.json {
        cft_data::write_atomic(p, (serde_json::to_string_pretty(&ev)? + "\n").as_bytes())?;
    }
    Ok(())
}

/// Arguments of `cft train-head`.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainHeadArgs {
    /// Labelled training features (dense or sparse labels).
    #[arg(long)]
    pub train: PathBuf,
    /// The loss: an (assume negative), ignore (known labels only), or one of the field's
    /// partial-label losses: an-ls, wan, epr, role (Cole et al. 2021), em, em-apl (Zhou et al.
    /// 2022), ll-r, ll-ct, ll-cp (Kim et al. 2022).
    #[arg(long, value_parser = choice::<BaseMode>())]
    pub mode: BaseMode,
    /// Where to write the head.
    #[arg(long)]
    pub out: PathBuf,
    /// Full-batch Adam epochs.
    #[arg(long, default_value_t = 300)]
    pub epochs: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-2)]
    pub lr: f32,
    /// L2 penalty on the weights.
    #[arg(long, default_value_t = 1e-4)]
    pub weight_decay: f32,
    /// Where the head starts: zeros, or prior (zero weights, each bias at its category's
    /// positive rate). Default: prior for an and ignore, zeros for the field's losses.
    #[arg(long, value_parser = choice::<HeadInit>())]
    pub init: Option<HeadInit>,
    /// an-ls: the label smoothing coefficient.
    #[arg(long, default_value_t = LossParams::default().ls_coef)]
    pub ls_coef: f64,
    /// epr, role: expected positives per image.
    #[arg(long, default_value_t = LossParams::default().expected_positives)]
    pub expected_positives: f64,
    /// role: the label estimates' learning rate as a multiple of --lr.
    #[arg(long, default_value_t = LossParams::default().estimator_lr_mult)]
    pub estimator_lr_mult: f64,
    /// role: the estimates start fixed (0 on unknown entries) or random (the official
    /// U(−logit 0.6, logit 0.6), seeded by --role-seed).
    #[arg(long, value_parser = choice::<RoleInit>(), default_value = "fixed")]
    pub role_init: RoleInit,
    /// role with --role-init random: the seed.
    #[arg(long, default_value_t = 0)]
    pub role_seed: u64,
    /// em, em-apl: weight of the entropy term on unknown labels.
    #[arg(long, default_value_t = LossParams::default().alpha)]
    pub alpha: f64,
    /// em-apl: weight of the pseudo-labelled entries.
    #[arg(long, default_value_t = LossParams::default().beta)]
    pub beta: f64,
    /// em-apl: share of each category's unknown entries pseudo-labelled over the rounds.
    #[arg(long, default_value_t = LossParams::default().neg_proportion)]
    pub neg_proportion: f64,
    /// em-apl: the first epoch after which pseudo-labels are drawn (default: five rounds before the
    /// end, --epochs − 5, as the official 10-epoch schedule's warm-up at epoch 5).
    #[arg(long)]
    pub warmup_epoch: Option<usize>,
    /// ll-r, ll-ct, ll-cp: the clean rate's decrease per epoch, as a fraction (the papers' 0.1–0.5 %
    /// per epoch over 10 epochs is 0.001–0.005).
    #[arg(long, default_value_t = LossParams::default().delta_rel)]
    pub delta_rel: f64,
}

/// Runs `cft train-head`.
pub fn train_head(args: &TrainHeadArgs) -> Result<()> {
    let config = BaseHeadConfig {
        mode: args.mode,
        epochs: args.epochs,
        lr: args.lr,
        weight_decay: args.weight_decay,
        init: args.init,
        params: LossParams {
            ls_coef: args.ls_coef,
            expected_positives: args.expected_positives,
            estimator_lr_mult: args.estimator_lr_mult,
            role_init: args.role_init,
            role_seed: args.role_seed,
            alpha: args.alpha,
            beta: args.beta,
            neg_proportion: args.neg_proportion,
            warmup_epoch: args.warmup_epoch,
            delta_rel: args.delta_rel,
        },
    };
    // The recipe's ranges, refused under the flags before any file is touched.
    config.check().map_err(flag_error)?;
    let done = TrainHeadJob { train: args.train.clone(), config, out: args.out.clone() }.run()?;
    for note in &done.notes {
        eprintln!("note: {note}");
    }
    eprintln!(
        "wrote {} ({} mode, {} categories, d = {}) in {:.1} s",
        args.out.display(),
        args.mode.label(),
        done.shape.0,
        done.shape.1,
        done.seconds
    );
    Ok(())
}
