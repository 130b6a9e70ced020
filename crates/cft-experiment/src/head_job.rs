//! The head-level jobs on a researcher's feature sets: score a head ([`evaluate`], `cft
//! evaluate`) and train a base head with AN, Ignore or one of the field's partial-label losses
//! ([`TrainHeadJob`], `cft train-head`). Files in, files out (atomically, with a manifest).

use crate::error::{bail, Result};
use crate::manifest::{write_manifest, InputFile, RunClock};
use cft_core::{
    mean_defined, sparse_scores, train_base_head_sparse, BaseHeadConfig, GroupBy, GroupMean, Metric, UncertainPolicy,
};
use cft_data::{check_same_categories, read_head_for, read_labelled, Named, OutputLock};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// A head's scores on a labelled feature set (what `cft evaluate --json` writes).
#[derive(Debug, Serialize)]
pub struct Evaluation {
    /// `ap` or `auc`.
    pub metric: Metric,
    /// Category names.
    pub categories: Vec<String>,
    /// Per-category score, `null` where undefined.
    pub per_category: Vec<Option<f64>>,
    /// Mean over defined categories.
    pub mean: Option<f64>,
    /// Frequency groups (rarest first), and what ordered them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<Groups>,
}

/// Frequency groups of an [`Evaluation`].
#[derive(Debug, Serialize)]
pub struct Groups {
    /// The count that ordered the categories.
    pub by: GroupBy,
    /// The file the counts come from.
    pub counts_from: String,
    /// The groups.
    pub groups: Vec<GroupMean>,
}

/// How to cut categories into frequency groups: `groups` of them, by the counts `by` of the
/// labelled set `counts_from` (the training set).
#[derive(Debug, Clone)]
pub struct GroupRequest {
    /// How many groups.
    pub groups: usize,
    /// The training set whose labels order the categories.
    pub counts_from: PathBuf,
    /// Positives or all known labels.
    pub by: GroupBy,
}

/// Scores the head at `head` (found under `head_key` in a model state dict) on `data`.
pub fn evaluate(
    head: &Path,
    head_key: Option<&str>,
    data: &Path,
    metric: Metric,
    uncertain: UncertainPolicy,
    groups: Option<&GroupRequest>,
) -> Result<Evaluation> {
    let set = read_labelled(data, uncertain)?;
    let c = set.labels.n_categories();
    let head_file = read_head_for(head, head_key, set.features.cols(), Some(c), data)?;
    check_same_categories(&[(data, set.categories.as_deref()), (head, head_file.categories.as_deref())])?;
    let per = sparse_scores(metric, &head_file.head, &set.features, &set.labels);
    let groups = match groups {
        None => None,
        Some(g) => {
            if g.groups == 0 || g.groups > c {
                bail!("--groups {}: expected 1 to {c} (the number of categories)", g.groups);
            }
            let train = read_labelled(&g.counts_from, uncertain)?;
            if train.labels.n_categories() != c {
                bail!(
                    "{}: {} label columns, but {} has {c}",
                    g.counts_from.display(),
                    train.labels.n_categories(),
                    data.display()
                );
            }
            check_same_categories(&[(data, set.categories.as_deref()), (&g.counts_from, train.categories.as_deref())])?;
            let counts = cft_core::group_counts(&train.labels, g.by);
            Some(Groups {
                by: g.by,
                counts_from: g.counts_from.display().to_string(),
                groups: cft_core::group_means(&per, &counts, g.groups),
            })
        }
    };
    Ok(Evaluation { metric, mean: mean_defined(&per), per_category: per, categories: set.names(), groups })
}

impl Evaluation {
    /// The table `cft evaluate` prints.
    pub fn table(&self) -> String {
        let m = self.metric.name().to_uppercase();
        let w = self.categories.iter().map(String::len).max().unwrap_or(4).max(8);
        let mut out = format!("{:>4}  {:<w$}  {:>8}\n", "cat", "name", m);
        for (k, (name, s)) in self.categories.iter().zip(&self.per_category).enumerate() {
            let v = s.map_or_else(|| "undefined (a class is missing)".to_string(), |x| format!("{x:.6}"));
            out.push_str(&format!("{k:>4}  {name:<w$}  {v:>8}\n"));
        }
        let (defined, c) = (self.per_category.iter().flatten().count(), self.per_category.len());
        out.push_str(&match self.mean {
            Some(v) => format!("mean {m} over {defined} of {c} categories: {v:.6}\n"),
            None => format!("mean {m}: undefined (no category has both classes)\n"),
        });
        for group in self.groups.iter().flat_map(|g| g.groups.iter().map(move |x| (g.by, x))) {
            let (by, group) = group;
            let v = group.mean.map_or_else(|| "undefined".to_string(), |x| format!("{x:.6}"));
            out.push_str(&format!(
                "{} ({} categories, {} per category {}–{}): mean {m} {v}\n",
                group.name,
                group.classes.len(),
                match by {
                    GroupBy::Positives => "known positives",
                    GroupBy::Known => "known labels",
                },
                group.count_range.0,
                group.count_range.1,
            ));
        }
        out
    }
}

/// `cft train-head` as a job.
#[derive(Debug, Clone)]
pub struct TrainHeadJob {
    /// Labelled training features (dense or sparse labels; uncertain entries unknown).
    pub train: PathBuf,
    /// The recipe (checked when the job runs).
    pub config: BaseHeadConfig,
    /// The head to write (`<out>.manifest.json` beside it).
    pub out: PathBuf,
}

/// What a trained head job reports.
#[derive(Debug, Clone)]
pub struct TrainedHeadFile {
    /// Categories and feature dimension of the head.
    pub shape: (usize, usize),
    /// What the trainer reported (LL steps whose `k` was clamped, …).
    pub notes: Vec<String>,
    /// Wall time.
    pub seconds: f64,
}

/// Refuses a field-loss head that cannot fit in memory: its loss holds `images × categories`
/// entries ([`cft_core::BaseMode::bytes_per_entry`]), so at OpenImages' size it would abort for
/// memory instead of training. `role` names the option or key that chose the mode.
pub fn check_head_fits(role: &str, mode: cft_core::BaseMode, images: usize, categories: usize) -> Result<()> {
    let need = mode.bytes_per_entry() as u128 * images as u128 * categories as u128;
    let Some(free) = cft_data::bench::available_memory() else { return Ok(()) };
    if need > free as u128 {
        bail!(
            "{role} = {}: this loss holds every image × category entry, {images} × {categories} needs about {:.1} GiB and {:.1} GiB is available; train AN or Ignore (trained in blocks) at this size, or use fewer images",
            mode.name(),
            cft_data::bench::gib(need),
            cft_data::bench::gib(free as u128)
        );
    }
    Ok(())
}

impl TrainHeadJob {
    /// Trains and writes the head: the recipe and the outputs are refused before the data is
    /// read; a head that diverged is refused before anything is written.
    pub fn run(&self) -> Result<TrainedHeadFile> {
        let clock = RunClock::start();
        let cfg = self.config.check()?;
        let manifest = cft_data::fsutil::sibling(&self.out, ".manifest.json");
        cft_data::check_outputs(
            &[Named::new("--train", &self.train)],
            &[Named::new("--out", &self.out), Named::new("the manifest (<out>.manifest.json)", &manifest)],
        )?;
        let _lock = OutputLock::acquire(&self.out)?;
        let data = read_labelled(&self.train, UncertainPolicy::Ignore)?;
        if data.labels.known_count() == 0 {
            bail!("{}: no known label (every entry is unknown): nothing to train a head on", self.train.display());
        }
        check_head_fits("--mode", cfg.mode, data.features.rows(), data.labels.n_categories())?;
        let trained = train_base_head_sparse(&data.features, None, &data.labels, &cfg);
        let head = &trained.head;
        if let Some((r, c, v)) = head.weight.first_non_finite() {
            bail!(
                "training diverged: weight [{r}, {c}] became {v} (--lr {}); lower the learning rate. Nothing was written",
                cfg.lr
            );
        }
        if head.bias.iter().any(|b| !b.is_finite()) {
            bail!("training diverged: a bias became non-finite (--lr {}); lower the learning rate", cfg.lr);
        }
        cft_data::write_head(&self.out, head, Some(&data.names()))?;
        let m = clock.manifest(
            "train-head",
            cfg.config(),
            vec![InputFile::of(&self.train)?],
            vec![self.out.clone(), manifest.clone()],
        );
        write_manifest(&manifest, &m)?;
        Ok(TrainedHeadFile { shape: (head.categories(), head.dim()), notes: trained.notes, seconds: clock.seconds() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cft_core::BaseMode;

    #[test]
    fn a_field_loss_at_openimages_size_is_refused_before_training() {
        // OpenImages V3's full training set: 9 million images × 5,000 classes (1.6 TiB).
        let e = check_head_fits("--mode", BaseMode::Epr, 9_000_000, 5_000).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "--mode = epr: this loss holds every image × category entry, 9000000 × 5000 needs about 1676.4 GiB"
            ),
            "{e}"
        );
        // AN and Ignore train in blocks; COCO's size fits a field loss.
        check_head_fits("--mode", BaseMode::An, 1_000_000, 5_000).unwrap();
        check_head_fits("--mode", BaseMode::Role, 82_081, 80).unwrap();
    }
}
