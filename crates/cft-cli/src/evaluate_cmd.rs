//! `cft evaluate` and `cft train-head`: score a head on labelled features; train a base head.

use crate::common::{category_names, load_head_for, load_labelled};
use crate::finetune_cmd::{MetricArg, PolicyArg};
use crate::manifest::{write_manifest, InputFile, RunClock};
use anyhow::Result;
use cft_core::{mean_defined, partial_scores, train_base_head, BaseHeadConfig, BaseMode, Metric};
use cft_data::{check_outputs, Named, OutputLock};
use serde::Serialize;
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
    /// A labelled feature set (unknown labels are left out per category).
    #[arg(long)]
    pub data: PathBuf,
    /// Metric.
    #[arg(long, value_enum, default_value_t = MetricArg::Ap)]
    pub metric: MetricArg,
    /// Uncertain (−1) labels: ignore, ones or zeros.
    #[arg(long, value_enum, default_value_t = PolicyArg::Ignore)]
    pub uncertain: PolicyArg,
    /// Also write the scores as JSON: {"metric", "categories", "per_category", "mean", "groups"}.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also report the mean over frequency groups (OpenImages V3 reports G1–G5: `--groups 5`):
    /// categories sorted ascending by their count in the training labels of `--group-counts-from`.
    #[arg(long, requires = "group_counts_from")]
    pub groups: Option<usize>,
    /// The labelled feature set (or label source) whose label counts order the groups: the
    /// training set.
    #[arg(long, requires = "groups")]
    pub group_counts_from: Option<PathBuf>,
    /// What a category's count is: its known positives (the class's frequency; default) or all
    /// its known labels.
    #[arg(long, value_enum, default_value_t = GroupBy::Positives)]
    pub group_by: GroupBy,
}

/// What orders the frequency groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// Known positive labels: how often the class occurs, the sense of "rare" in a long tail.
    Positives,
    /// All known labels (positives and negatives): how much evidence the class has.
    Known,
}

/// The JSON written by `cft evaluate --json`.
#[derive(Debug, Serialize)]
pub struct Evaluation {
    /// `ap` or `auc`.
    pub metric: &'static str,
    /// Category names.
    pub categories: Vec<String>,
    /// Per-category score, `null` where undefined.
    pub per_category: Vec<Option<f64>>,
    /// Mean over defined categories.
    pub mean: Option<f64>,
    /// Frequency groups (with `--groups`), rarest first, and what ordered them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<Groups>,
}

/// The frequency groups of `cft evaluate --groups`.
#[derive(Debug, Serialize)]
pub struct Groups {
    /// `positives` or `known`: the count that ordered the categories.
    pub by: GroupBy,
    /// The file the counts come from.
    pub counts_from: String,
    /// The groups.
    pub groups: Vec<cft_core::GroupMean>,
}

/// Runs `cft evaluate`.
pub fn evaluate(args: &EvaluateArgs) -> Result<()> {
    if let Some(j) = &args.json {
        let mut inputs = vec![Named::new("--head", &args.head), Named::new("--data", &args.data)];
        if let Some(g) = &args.group_counts_from {
            inputs.push(Named::new("--group-counts-from", g));
        }
        check_outputs(&inputs, &[Named::new("--json", j)])?;
    }
    let data = load_labelled(&args.data, args.uncertain.into())?;
    let c = data.labels.n_categories();
    let head_file = load_head_for(&args.head, args.head_key.as_deref(), data.set.features.cols(), Some(c), &args.data)?;
    crate::common::check_same_categories(&[
        (&args.data, data.set.categories.as_deref()),
        (&args.head, head_file.categories.as_deref()),
    ])?;
    let head = head_file.head;
    let metric: Metric = args.metric.into();
    let per = partial_scores(metric, &head.logits(&data.set.features), &data.labels);
    let names = category_names(&data.set, c);
    let groups = match (args.groups, &args.group_counts_from) {
        (Some(g), Some(from)) => {
            if g == 0 || g > c {
                anyhow::bail!("--groups {g}: expected 1 to {c} (the number of categories)");
            }
            let train = load_labelled(from, args.uncertain.into())?;
            if train.labels.n_categories() != c {
                anyhow::bail!(
                    "{}: {} label columns, but {} has {c}",
                    from.display(),
                    train.labels.n_categories(),
                    args.data.display()
                );
            }
            crate::common::check_same_categories(&[
                (&args.data, data.set.categories.as_deref()),
                (from, train.set.categories.as_deref()),
            ])?;
            let by = match args.group_by {
                GroupBy::Positives => cft_core::GroupBy::Positives,
                GroupBy::Known => cft_core::GroupBy::Known,
            };
            let counts = cft_core::group_counts(&train.labels.to_sparse(), by);
            Some(Groups {
                by: args.group_by,
                counts_from: from.display().to_string(),
                groups: cft_core::group_means(&per, &counts, g),
            })
        }
        _ => None,
    };
    let ev =
        Evaluation { metric: metric.name(), mean: mean_defined(&per), per_category: per, categories: names, groups };
    let w = ev.categories.iter().map(String::len).max().unwrap_or(4).max(8);
    println!("{:>4}  {:<w$}  {:>8}", "cat", "name", metric.name().to_uppercase());
    for (k, (name, s)) in ev.categories.iter().zip(&ev.per_category).enumerate() {
        let v = s.map_or_else(|| "undefined (a class is missing)".to_string(), |x| format!("{x:.6}"));
        println!("{k:>4}  {name:<w$}  {v:>8}");
    }
    let defined = ev.per_category.iter().flatten().count();
    match ev.mean {
        Some(m) => println!("mean {} over {defined} of {c} categories: {m:.6}", metric.name().to_uppercase()),
        None => println!("mean {}: undefined (no category has both classes)", metric.name().to_uppercase()),
    }
    if let Some(g) = &ev.groups {
        for group in &g.groups {
            let v = group.mean.map_or_else(|| "undefined".to_string(), |x| format!("{x:.6}"));
            println!(
                "{} ({} categories, {} per category {}–{}): mean {} {v}",
                group.name,
                group.classes.len(),
                match g.by {
                    GroupBy::Positives => "known positives",
                    GroupBy::Known => "known labels",
                },
                group.count_range.0,
                group.count_range.1,
                metric.name().to_uppercase()
            );
        }
    }
    if let Some(p) = &args.json {
        cft_data::write_atomic(p, (serde_json::to_string_pretty(&ev)? + "\n").as_bytes())?;
    }
    Ok(())
}

/// Base-head mode on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum ModeArg {
    /// Assume negative: unknown labels are trained as negatives.
    An,
    /// Ignore: only known labels enter the loss.
    Ignore,
}

/// Arguments of `cft train-head`.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainHeadArgs {
    /// Labelled training features.
    #[arg(long)]
    pub train: PathBuf,
    /// How unknown labels are treated.
    #[arg(long, value_enum)]
    pub mode: ModeArg,
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
}

/// Runs `cft train-head`.
pub fn train_head(args: &TrainHeadArgs) -> Result<()> {
    let clock = RunClock::start();
    crate::args::check_lr("--lr", args.lr)?;
    if !(args.weight_decay.is_finite() && args.weight_decay >= 0.0) {
        anyhow::bail!("--weight-decay {}: expected a finite number ≥ 0", args.weight_decay);
    }
    let mpath = crate::common::sibling(&args.out, ".manifest.json");
    check_outputs(
        &[Named::new("--train", &args.train)],
        &[Named::new("--out", &args.out), Named::new("the manifest (<out>.manifest.json)", &mpath)],
    )?;
    let _lock = OutputLock::acquire(&args.out)?;
    let data = load_labelled(&args.train, cft_core::UncertainPolicy::Ignore)?;
    if data.labels.known_fraction() == 0.0 {
        anyhow::bail!("{}: no known label (every entry is unknown): nothing to train a head on", args.train.display());
    }
    let mode = match args.mode {
        ModeArg::An => BaseMode::An,
        ModeArg::Ignore => BaseMode::Ignore,
    };
    let cfg = BaseHeadConfig { mode, epochs: args.epochs, lr: args.lr, weight_decay: args.weight_decay };
    let head = train_base_head(&data.set.features, &data.labels, &cfg);
    if let Some((r, c, v)) = head.weight.first_non_finite() {
        anyhow::bail!(
            "training diverged: weight [{r}, {c}] became {v} (--lr {}); lower the learning rate. Nothing was written",
            args.lr
        );
    }
    if head.bias.iter().any(|b| !b.is_finite()) {
        anyhow::bail!("training diverged: a bias became non-finite (--lr {}); lower the learning rate", args.lr);
    }
    let names = category_names(&data.set, data.labels.n_categories());
    cft_data::write_head(&args.out, &head, Some(&names))?;
    let m = clock.manifest("train-head", cfg, vec![InputFile::of(&args.train)?], vec![args.out.clone(), mpath.clone()]);
    write_manifest(&mpath, &m)?;
    eprintln!(
        "wrote {} ({} mode, {} categories, d = {}) in {:.1} s",
        args.out.display(),
        mode.label(),
        head.categories(),
        head.dim(),
        clock.seconds()
    );
    Ok(())
}
