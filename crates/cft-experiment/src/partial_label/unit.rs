//! One unit of a protocol run: a (label setting, selection protocol) pair. Its training labels
//! (dropped, real, or single-positive), its base heads (the given classifier, or linear heads
//! trained with each of the run's losses), CFT with each method on each repaired base, and the
//! test scores of every row ([`UnitResult`], written to `runs/<unit>.json`).

use super::config::{CheckedConfigs, LabelSource, ReproduceConfig};
use super::data::{holdout_split, ProtocolData};
use crate::engine::CftEngine;
use crate::error::Result;
use crate::manifest::InputFile;
use crate::stages::StageLog;
use cft_core::{
    drop_labels, mean_defined, single_positive, sparse_scores, train_base_head_stoppable, CategoryOutcome, LinearHead,
    Matrix, SparseLabels, SplitRef,
};
use cft_results::Protocol;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// Header of the per-epoch history CSV written by `finetune --history` and the protocol.
pub const HISTORY_HEADER: &str = "method,category,name,epoch,loss,best_fitness,mean_fitness,valid_score\n";

/// Appends every category's per-epoch history to `csv` (columns as [`HISTORY_HEADER`]).
pub fn append_history(csv: &mut String, method: &str, names: &[String], outcomes: &[CategoryOutcome]) {
    let opt = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x}"));
    for o in outcomes {
        let name = names.get(o.category).map_or(String::new(), |n| n.replace(',', ";"));
        for e in &o.history {
            csv.push_str(&format!(
                "{method},{},{name},{},{},{},{},{}\n",
                o.category,
                e.epoch,
                opt(e.loss),
                opt(e.best_fitness),
                opt(e.mean_fitness),
                e.valid_score
            ));
        }
    }
}

/// One method's result in a unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitMethod {
    /// Row name.
    pub method: String,
    /// Whether it is a base head.
    pub is_base: bool,
    /// Test score per category.
    pub test_per_category: Vec<Option<f64>>,
    /// Test mean over defined categories.
    pub test_mean: Option<f64>,
    /// CFT outcomes per category (empty for base heads).
    pub outcomes: Vec<CategoryOutcome>,
    /// What the trainer reported (an LL step whose `k` was clamped, …); absent when nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// One (proportion, protocol) unit as written to `runs/<id>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitResult {
    /// The configuration it was run with.
    pub config: ReproduceConfig,
    /// Known-label proportion.
    pub proportion: f64,
    /// Protocol.
    pub protocol: Protocol,
    /// Images CFT and the base heads were trained on.
    pub fit_images: usize,
    /// Images whose known labels selected the CFT epoch (the test split under `paper`).
    pub selection_images: usize,
    /// Fraction of known labels on the fit images.
    pub fit_known_fraction: f64,
    /// Rows.
    pub methods: Vec<UnitMethod>,
    /// The dataset files the unit was computed from (size and hash), so that `--resume`
    /// never adopts a unit of other data. Absent in units of older versions.
    #[serde(default)]
    pub inputs: Vec<InputFile>,
    /// [`super::config::dataset_key`] of the dataset name and category names it was computed
    /// with, so that a merge never labels its numbers with another list. Empty in units of
    /// older versions.
    #[serde(default)]
    pub dataset_key: String,
}

fn test_scores(
    cfg: &ReproduceConfig,
    head: &LinearHead,
    x: &Matrix,
    y: &SparseLabels,
) -> (Vec<Option<f64>>, Option<f64>) {
    let per = sparse_scores(cfg.metric, head, x, y);
    let mean = mean_defined(&per);
    (per, mean)
}

/// What every unit of a run shares: the checked configurations, the progress callback, the
/// engine, the stage log.
#[derive(Clone, Copy)]
pub(crate) struct UnitContext<'a> {
    pub(crate) configs: &'a CheckedConfigs,
    pub(crate) on_step: &'a (dyn Fn() + Sync),
    pub(crate) engine: &'a dyn CftEngine,
    pub(crate) stages: Option<&'a StageLog>,
    /// Asked between epochs: `true` stops the unit with [`cft_core::Interrupted`].
    pub(crate) stop: &'a (dyn Fn() -> bool + Sync),
}

/// The training labels of a unit at label point `p`.
fn training_labels<'a>(cfg: &ReproduceConfig, labels: &'a SparseLabels, p: f64) -> Cow<'a, SparseLabels> {
    // Dropping and drawing need the dense form (COCO: 82k × 80 bytes); real labels stay sparse.
    match cfg.label_source {
        LabelSource::Drop => Cow::Owned(drop_labels(&labels.to_dense(), p, cfg.mask_seed).to_sparse()),
        LabelSource::Real => Cow::Borrowed(labels),
        LabelSource::SinglePositive => {
            // `checked()` refuses a seed above u32::MAX for this source.
            let seed = u32::try_from(cfg.mask_seed).unwrap_or(u32::MAX);
            Cow::Owned(single_positive(&labels.to_dense(), seed).to_sparse())
        }
    }
}

/// Runs one unit; with `keep_history`, also returns the per-epoch history as CSV text
/// (columns as [`HISTORY_HEADER`]).
pub(crate) fn run_unit(
    cfg: &ReproduceConfig,
    data: &ProtocolData,
    p: f64,
    protocol: Protocol,
    keep_history: bool,
    ctx: &UnitContext<'_>,
) -> Result<(UnitResult, Option<String>)> {
    let UnitContext { configs, on_step, engine, stages, stop } = *ctx;
    let time = |name: &str, f: &mut dyn FnMut()| match stages {
        Some(log) => log.time(name, f),
        None => f(),
    };
    // A checkpoint per proportion: this unit's features and head.
    let own = data.per_proportion.iter().find(|f| cft_core::same_proportion(f.proportion, p));
    let train_x = own.map_or(&data.train.features, |f| &f.train);
    let given = own.map_or(data.given_head.as_ref(), |f| f.given_head.as_ref());
    let test_x = own.map_or(&data.test.features, |f| &f.test);
    let test_y = &data.test.labels;
    let labels = training_labels(cfg, &data.train.labels, p);
    // Held out: the fit and the selection rows are both read from the training matrix in
    // place, each with the labels of its own rows (numbered as the matrix): no copy of the
    // features. The products are those on the gathered rows, bit for bit.
    let (fit_rows, fit_y, sel_x, sel_y, selection_images) = match protocol {
        Protocol::Paper => (None, labels, test_x, Cow::Borrowed(test_y), test_x.rows()),
        Protocol::HeldOut => {
            let (fit, sel) = holdout_split(train_x.rows(), cfg.holdout_fraction, cfg.split_seed);
            let (fit_y, sel_y) = (labels.keep_rows(&fit), labels.keep_rows(&sel));
            (Some(fit), Cow::Owned(fit_y), train_x, Cow::Owned(sel_y), sel.len())
        }
    };
    let fit_images = fit_rows.as_ref().map_or(train_x.rows(), Vec::len);
    let mut methods = Vec::new();
    // The base heads: the given classifier, or a linear head per loss; CFT repairs each of
    // `cfg.repair` (the given head when there is one).
    let mut bases: Vec<(cft_core::BaseMode, String, LinearHead, Vec<String>)> = Vec::new();
    let mut trained: Result<(), cft_core::Interrupted> = Ok(());
    time("base heads", &mut || {
        bases = match given {
            Some(g) => vec![(cft_core::BaseMode::An, g.label.clone(), g.head.clone(), Vec::new())],
            None => {
                let heads = configs
                    .bases
                    .iter()
                    .map(|(mode, recipe)| {
                        let t = train_base_head_stoppable(train_x, fit_rows.as_deref(), &fit_y, recipe, stop)?;
                        Ok((*mode, mode.label().to_string(), t.head, t.notes))
                    })
                    .collect::<Result<Vec<_>, cft_core::Interrupted>>();
                match heads {
                    Ok(h) => h,
                    Err(e) => {
                        trained = Err(e);
                        Vec::new()
                    }
                }
            }
        }
    });
    trained.map_err(cft_core::CoreError::from)?;
    let evaluate = |head: &LinearHead| {
        let mut scores = (Vec::new(), None);
        time("evaluation", &mut || scores = test_scores(cfg, head, test_x, test_y));
        scores
    };
    for (_, name, head, notes) in &bases {
        let (per, mean) = evaluate(head);
        methods.push(UnitMethod {
            method: name.clone(),
            is_base: true,
            test_per_category: per,
            test_mean: mean,
            outcomes: Vec::new(),
            notes: notes.clone(),
        });
        on_step();
    }
    // A given head stands for every linear base in the progress count.
    (bases.len()..cfg.bases.len()).for_each(|_| on_step());
    let repaired: Vec<&(cft_core::BaseMode, String, LinearHead, Vec<String>)> = match given {
        Some(_) => bases.iter().collect(),
        None => cfg.repair.iter().filter_map(|m| bases.iter().find(|b| b.0 == *m)).collect(),
    };
    let (st, sv) = (fit_y.as_ref(), sel_y.as_ref());
    let stopper =
        |_: usize| if stop() { std::ops::ControlFlow::Break(()) } else { std::ops::ControlFlow::Continue(()) };
    let mut history = keep_history.then(|| String::from(HISTORY_HEADER));
    for (_, base_name, base_head, _) in &repaired {
        for (method, fc) in &configs.methods {
            let name = format!("{base_name} + {}", method.label());
            let fc = fc.clone().with_history(keep_history);
            let mut run = None;
            time(method.label(), &mut || {
                run = Some(engine.finetune(
                    &fc,
                    base_head,
                    SplitRef { features: train_x, labels: st },
                    SplitRef { features: sel_x, labels: sv },
                    &cft_core::Hooks { on_done: &|_| {}, on_epochs: &stopper },
                ))
            });
            let run = run.ok_or_else(|| crate::error::refused!("{name}: the engine did not run"))??;
            let (per, mean) = evaluate(&run.head);
            if let Some(h) = history.as_mut() {
                append_history(h, &name, &data.categories, &run.categories);
            }
            // Timings make reruns differ; the unit file keeps only what determines the numbers.
            let outcomes = run
                .categories
                .into_iter()
                .map(|o| CategoryOutcome { seconds: 0.0, history: Vec::new(), ..o })
                .collect();
            methods.push(UnitMethod {
                method: name,
                is_base: false,
                test_per_category: per,
                test_mean: mean,
                outcomes,
                notes: Vec::new(),
            });
            on_step();
        }
    }
    // A given head is repaired once; the progress count has a run per repaired base.
    (repaired.len()..cfg.repair.len()).for_each(|_| configs.methods.iter().for_each(|_| on_step()));
    let known_entries = fit_images * data.categories.len();
    let unit = UnitResult {
        config: cfg.clone(),
        proportion: p,
        protocol,
        fit_images,
        selection_images,
        fit_known_fraction: if known_entries == 0 { 0.0 } else { fit_y.known_count() as f64 / known_entries as f64 },
        methods,
        inputs: Vec::new(),
        dataset_key: super::config::dataset_key(&data.name, &data.categories),
    };
    Ok((unit, history))
}

#[cfg(test)]
mod tests {
    use super::super::data::toy;
    use super::super::plan::{aggregate, aggregate_plan, RunPlan};
    use super::*;
    use crate::engine::CpuEngine;
    use cft_core::{BaseMode, SkipReason};

    fn run_both(cfg: &ReproduceConfig, d: &ProtocolData) -> Vec<UnitResult> {
        let configs = cfg.checked().unwrap();
        let ctx = UnitContext {
            configs: &configs,
            on_step: &|| {},
            engine: &CpuEngine::default(),
            stages: None,
            stop: &|| false,
        };
        [Protocol::Paper, Protocol::HeldOut]
            .into_iter()
            .map(|protocol| run_unit(cfg, d, 0.5, protocol, false, &ctx).unwrap().0)
            .collect()
    }

    #[test]
    fn a_unit_fits_both_protocols_and_aggregation_builds_the_table_rows() {
        let d = toy::data(60);
        let mut cfg = ReproduceConfig::new("toy", true, 0);
        cfg.proportions = vec![0.5];
        cfg.max_epochs = 5;
        cfg.patience = 5;
        cfg.base_epochs = 5;
        let units = run_both(&cfg, &d);
        assert_eq!((units[0].fit_images, units[0].selection_images), (60, 30));
        assert_eq!((units[1].fit_images, units[1].selection_images), (48, 12));
        let names: Vec<&str> = units[0].methods.iter().map(|m| m.method.as_str()).collect();
        assert_eq!(names, ["AN", "Ignore", "AN + CFT-BP-ASL", "AN + CFT-BP-BCE", "AN + CFT-GA"]);
        // Category 1 has no positive: skipped by CFT, undefined in the test scores.
        let ga = &units[0].methods[4];
        assert_eq!(ga.outcomes[1].skipped, Some(SkipReason::NoTrainPositive));
        assert_eq!(ga.test_per_category[1], None);
        let results = aggregate(&cfg, &d, &units, None);
        assert_eq!(results.rows.len(), 10);
        assert_eq!(results.proportions, vec![0.5]);
        let row = &results.rows[4];
        assert_eq!((row.method.as_str(), row.protocol, row.is_base), ("AN + CFT-GA", Protocol::Paper, false));
        assert_eq!(row.cells[0].mean, ga.test_mean);
        assert_eq!(row.cells[0].skipped, vec![(1, SkipReason::NoTrainPositive.to_string())]);
        assert_eq!(row.cells[0].run.as_deref(), Some("runs/p50-paper.json"));
        assert_eq!(results.notes, vec!["a note".to_string()]);
        // The plan a shard writes aggregates to the same table.
        let plan = RunPlan::new(&cfg, &d, Vec::new());
        assert_eq!(plan.units, ["p50-paper", "p50-held-out"]);
        assert_eq!(aggregate_plan(&plan, &units), results);
        let other = RunPlan::new(&ReproduceConfig { max_epochs: 6, ..cfg.clone() }, &d, Vec::new());
        assert_eq!(plan.differs_from(&other), Some("the configuration"));
        assert_eq!(plan.differs_from(&plan.clone()), None);
    }

    #[test]
    fn every_base_gets_its_row_and_each_repaired_base_its_cft_rows() {
        let d = toy::data(60);
        let mut cfg = ReproduceConfig::new("toy", true, 0);
        (cfg.max_epochs, cfg.patience, cfg.base_epochs) = (4, 4, 6);
        cfg.methods = vec![cft_core::MethodName::BpBce, cfg.methods[2]];
        cfg.bases = vec![BaseMode::An, BaseMode::LlR, BaseMode::Role];
        cfg.repair = vec![BaseMode::Role, BaseMode::An];
        let units = run_both(&cfg, &d);
        let names: Vec<&str> = units[0].methods.iter().map(|m| m.method.as_str()).collect();
        assert_eq!(
            names,
            ["AN", "LL-R", "ROLE", "ROLE + CFT-BP-BCE", "ROLE + CFT-GA", "AN + CFT-BP-BCE", "AN + CFT-GA"]
        );
        assert!(units.iter().all(|u| u.methods.iter().all(|m| m.test_per_category.len() == 2)));
    }

    #[test]
    fn the_single_positive_source_keeps_one_positive_per_image() {
        let d = toy::data(60);
        let mut cfg = ReproduceConfig::new("toy", true, 0);
        cfg.label_source = LabelSource::SinglePositive;
        cfg.proportions.clear();
        let labels = training_labels(&cfg, &d.train.labels, 1.0);
        // Category 0 is positive on odd rows; category 1 never: the one positive is category 0's.
        assert_eq!(labels.per_category[0].positives, d.train.labels.per_category[0].positives);
        assert!(labels.per_category.iter().all(|k| k.negatives.is_empty()));
        assert_eq!(super::super::config::unit_id(&cfg, 1.0, Protocol::HeldOut), "single-positive-held-out");
    }
}
