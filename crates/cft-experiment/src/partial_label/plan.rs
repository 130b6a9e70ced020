//! What the tables of a run need besides its units ([`RunPlan`], which a sharded run writes
//! to `plan.json`), and the aggregation of units into the table-shaped results.

use super::config::{unit_id, LabelSource, ReproduceConfig};
use super::data::ProtocolData;
use super::unit::UnitResult;
use crate::manifest::InputFile;
use cft_results::{ExperimentResults, GroupCell, MethodRow, Protocol, ResultCell};
use serde::{Deserialize, Serialize};

/// The column values of a run: the proportions, or the training labels' known fraction (rounded
/// to 1e-6) for real labels.
fn label_points(cfg: &ReproduceConfig, data: &ProtocolData) -> Vec<f64> {
    match cfg.label_source {
        LabelSource::Drop => cfg.proportions.clone(),
        LabelSource::Real => vec![((data.train.labels.known_fraction() * 1e6).round() / 1e6).max(1e-6)],
        LabelSource::SinglePositive => {
            // The single-positive labels' known fraction: one entry per image with a positive.
            let labels = cft_core::single_positive(
                &data.train.labels.to_dense(),
                u32::try_from(cfg.mask_seed).unwrap_or(u32::MAX),
            );
            vec![((labels.known_fraction() * 1e6).round() / 1e6).max(1e-6)]
        }
    }
}

/// The unit ids of `label_points` under `cfg`, in table order.
pub fn unit_ids(cfg: &ReproduceConfig, label_points: &[f64]) -> Vec<String> {
    label_points
        .iter()
        .flat_map(|&p| [Protocol::Paper, Protocol::HeldOut].map(|protocol| unit_id(cfg, p, protocol)))
        .collect()
}

/// Everything besides the units that the tables of a run need: what `--shard` writes to
/// `plan.json` so that `cft report` can merge the units of every shard without the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunPlan {
    /// The configuration every unit must have been run with.
    pub config: ReproduceConfig,
    /// Dataset (report folder) name.
    pub dataset: String,
    /// Category names.
    pub categories: Vec<String>,
    /// The table's columns: proportions, or the real labels' known fraction.
    pub label_points: Vec<f64>,
    /// Training counts per category for the frequency groups (when configured).
    pub group_counts: Option<Vec<usize>>,
    /// See [`ProtocolData::paper_table`].
    pub paper_table: Option<String>,
    /// See [`ProtocolData::evaluation_split`].
    pub evaluation_split: Option<String>,
    /// See [`ProtocolData::real_labels`].
    pub real_labels: Option<String>,
    /// See [`ProtocolData::notes`].
    pub notes: Vec<String>,
    /// The input files (size and hash) every unit must have been computed from.
    pub inputs: Vec<InputFile>,
    /// The units' file stems, in table order.
    pub units: Vec<String>,
}

impl RunPlan {
    /// The plan of running `cfg` on `data` (inputs fingerprinted by the caller).
    pub fn new(cfg: &ReproduceConfig, data: &ProtocolData, inputs: Vec<InputFile>) -> Self {
        let label_points = label_points(cfg, data);
        let units = unit_ids(cfg, &label_points);
        Self {
            config: cfg.clone(),
            dataset: data.name.clone(),
            categories: data.categories.clone(),
            label_points,
            group_counts: cfg.groups.map(|g| cft_core::group_counts(&data.train.labels, g.by)),
            paper_table: data.paper_table.clone(),
            evaluation_split: data.evaluation_split.clone(),
            real_labels: data.real_labels.clone(),
            notes: data.notes.clone(),
            inputs,
            units,
        }
    }

    /// Why `other` (another shard's plan) is not this run's, if it is not: the first field
    /// that differs (input files compared by content, not path).
    pub fn differs_from(&self, other: &RunPlan) -> Option<&'static str> {
        let same_inputs = self.inputs.len() == other.inputs.len()
            && self.inputs.iter().zip(&other.inputs).all(|(a, b)| a.same_content(b));
        if self.config != other.config {
            Some("the configuration")
        } else if !same_inputs {
            Some("the input files")
        } else if self.categories != other.categories || self.dataset != other.dataset {
            Some("the dataset")
        } else if (&self.label_points, &self.group_counts, &self.units)
            != (&other.label_points, &other.group_counts, &other.units)
        {
            Some("the labels")
        } else if (&self.paper_table, &self.evaluation_split, &self.real_labels, &self.notes)
            != (&other.paper_table, &other.evaluation_split, &other.real_labels, &other.notes)
        {
            Some("the report's notes")
        } else {
            None
        }
    }
}

/// Aggregates units into the table-shaped results; `group_counts` (one training count per
/// category) turns on the frequency-group means of `cfg.groups`.
pub fn aggregate(
    cfg: &ReproduceConfig,
    data: &ProtocolData,
    units: &[UnitResult],
    group_counts: Option<&[usize]>,
) -> ExperimentResults {
    let mut plan = RunPlan::new(cfg, data, Vec::new());
    plan.group_counts = group_counts.map(<[usize]>::to_vec);
    aggregate_plan(&plan, units)
}

/// Aggregates units into the table-shaped results of `plan`.
pub fn aggregate_plan(plan: &RunPlan, units: &[UnitResult]) -> ExperimentResults {
    let cfg = &plan.config;
    let proportions = plan.label_points.clone();
    let group_counts = plan.group_counts.as_deref();
    let mut rows: Vec<MethodRow> = Vec::new();
    for protocol in [Protocol::Paper, Protocol::HeldOut] {
        let names: Vec<(String, bool)> = units
            .iter()
            .find(|u| u.protocol == protocol)
            .map(|u| u.methods.iter().map(|m| (m.method.clone(), m.is_base)).collect())
            .unwrap_or_default();
        for (name, is_base) in names {
            let cells = proportions
                .iter()
                .filter_map(|&p| {
                    let u =
                        units.iter().find(|u| u.protocol == protocol && cft_core::same_proportion(u.proportion, p))?;
                    let m = u.methods.iter().find(|m| m.method == name)?;
                    let groups = match (cfg.groups, group_counts) {
                        (Some(g), Some(counts)) => cft_core::group_means(&m.test_per_category, counts, g.groups)
                            .into_iter()
                            .map(|g| GroupCell {
                                name: g.name,
                                categories: g.classes.len(),
                                count_range: g.count_range,
                                mean: g.mean,
                            })
                            .collect(),
                        _ => Vec::new(),
                    };
                    Some(ResultCell {
                        proportion: p,
                        mean: m.test_mean,
                        per_category: m.test_per_category.clone(),
                        skipped: m
                            .outcomes
                            .iter()
                            .filter_map(|o| o.skipped.map(|r| (o.category, r.to_string())))
                            .collect(),
                        run: Some(format!("runs/{}.json", unit_id(cfg, p, protocol))),
                        groups,
                    })
                })
                .collect();
            rows.push(MethodRow { method: name, protocol, is_base, cells });
        }
    }
    ExperimentResults {
        dataset: plan.dataset.clone(),
        metric: format!("m{}", cfg.metric.name().to_uppercase()),
        categories: plan.categories.clone(),
        proportions,
        rows,
        paper_table: plan.paper_table.clone(),
        evaluation_split: plan.evaluation_split.clone(),
        real_labels: plan.real_labels.clone(),
        notes: plan.notes.clone(),
    }
}
