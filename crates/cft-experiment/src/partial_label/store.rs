//! The unit store of a run folder: finished units (`runs/<unit>.json`) that `--resume` may
//! reuse, the plan of a sharded run (`plan.json`), and the merge of every shard's units.

use super::config::{dataset_key, unit_id, ReproduceConfig};
use super::plan::{aggregate_plan, unit_ids, RunPlan};
use super::unit::UnitResult;
use crate::checkpoint::Fingerprint;
use crate::error::{bail, Context, Result};
use crate::manifest::{write_manifest, InputFile, RunClock};
use cft_results::ExperimentResults;
use serde::Serialize;
use std::path::Path;

/// A finished unit that `--resume` or a merge may reuse: the unit `id` (its proportion and
/// protocol), same configuration, same input files, same dataset and category names
/// (`dataset_key`); anything else (another run's unit, another unit's file under this name, an
/// older version's, a damaged file) is refused with the reason.
pub(crate) fn resumable_unit(
    path: &Path,
    id: &str,
    cfg: &ReproduceConfig,
    inputs: &[InputFile],
    dataset_key: &str,
) -> Result<UnitResult> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    let u: UnitResult = serde_json::from_str(&text).map_err(|e| {
        crate::error::refused!(
            "{}: line {}: not a readable unit ({e}): refusing to resume; remove it or run without --resume",
            path.display(),
            e.line()
        )
    })?;
    let fingerprint = |config: &ReproduceConfig, files: &[InputFile]| -> Result<Fingerprint> {
        Ok(Fingerprint {
            config: serde_json::to_value(config)?,
            inputs: files.iter().enumerate().map(|(k, f)| (format!("dataset file {k}"), f.clone())).collect(),
        })
    };
    fingerprint(&u.config, &u.inputs)?.check_resume(&fingerprint(cfg, inputs)?, path)?;
    let holds = unit_id(&u.config, u.proportion, u.protocol);
    if holds != id {
        bail!(
            "{}: holds unit {holds}, not {id}: a unit file was replaced or renamed; remove it and rerun that unit",
            path.display()
        );
    }
    if u.dataset_key != dataset_key {
        bail!(
            "{}: computed with other dataset or category names than the run's (plan.json edited, a unit of another run, or of an older version); restore plan.json, or remove the unit and rerun it",
            path.display()
        );
    }
    Ok(u)
}

/// Writes `plan.json` of a sharded run, or checks that the one there (another shard's) is this
/// run's: shards of another spec version, configuration or data are refused.
pub(crate) fn write_plan(dir: &Path, plan: &RunPlan) -> Result<()> {
    let path = dir.join("plan.json");
    if path.is_file() {
        let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
        let theirs: RunPlan = serde_json::from_str(&text).map_err(|e| {
            crate::error::refused!(
                "{}: line {}: not a readable run plan ({e}); remove the folder or use another --out",
                path.display(),
                e.line()
            )
        })?;
        if let Some(what) = plan.differs_from(&theirs) {
            bail!(
                "{}: written by a shard of another run ({what} differs): shards of one run need the same spec version, configuration and data; remove the folder or use another --out",
                path.display()
            );
        }
        return Ok(());
    }
    cft_data::write_atomic(&path, (serde_json::to_string_pretty(plan)? + "\n").as_bytes())?;
    Ok(())
}

/// Merges the units of a sharded run (`<dir>/plan.json`, `<dir>/runs/*.json`) into
/// `results.json`, the dataset report and a manifest, once every unit is there (`Ok(None)`
/// while some are missing). A unit of another configuration or data is refused.
pub fn merge_units(dir: &Path) -> Result<Option<ExperimentResults>> {
    let clock = RunClock::start();
    let path = dir.join("plan.json");
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    let plan: RunPlan = serde_json::from_str(&text)
        .map_err(|e| crate::error::refused!("{}: line {}: not a readable run plan ({e})", path.display(), e.line()))?;
    let expected = unit_ids(&plan.config, &plan.label_points);
    if plan.units != expected {
        let missing = expected.iter().find(|id| !plan.units.contains(id));
        let repeated = plan.units.iter().enumerate().find(|(k, id)| plan.units[..*k].contains(id)).map(|(_, id)| id);
        let foreign = plan.units.iter().find(|id| !expected.contains(id));
        let why = match (missing, repeated, foreign) {
            (Some(id), _, _) => format!("unit {id} is missing from its list"),
            (_, Some(id), _) => format!("unit {id} is listed twice"),
            (_, _, Some(id)) => format!("unit {id} is not one of this configuration's"),
            _ => "its units are out of order".to_string(),
        };
        bail!(
            "{}: units: {why}; the list must be the configuration's units ({}); restore the file a shard wrote, or rerun the shards",
            path.display(),
            expected.join(", ")
        );
    }
    let key = dataset_key(&plan.dataset, &plan.categories);
    let mut units = Vec::with_capacity(plan.units.len());
    for id in &plan.units {
        let unit = dir.join("runs").join(format!("{id}.json"));
        if !unit.is_file() {
            return Ok(None);
        }
        let u = resumable_unit(&unit, id, &plan.config, &plan.inputs, &key)?;
        if let Some(m) = u.methods.iter().find(|m| m.test_per_category.len() != plan.categories.len()) {
            bail!(
                "{}: {} has {} per-category values, the plan {} categories",
                unit.display(),
                m.method,
                m.test_per_category.len(),
                plan.categories.len()
            );
        }
        units.push(u);
    }
    let results = aggregate_plan(&plan, &units);
    let (results_path, manifest_path) = (dir.join("results.json"), dir.join("manifest.json"));
    let _lock = cft_data::OutputLock::acquire(&results_path)?;
    cft_data::write_atomic(&results_path, (serde_json::to_string_pretty(&results)? + "\n").as_bytes())?;
    let mut outputs = cft_report::write_dataset_report(dir, &results)?;
    outputs.extend([results_path, manifest_path.clone()]);
    #[derive(Serialize)]
    struct Merged<'a> {
        reproduce: &'a ReproduceConfig,
        merged_units: &'a [String],
    }
    let m = clock.manifest(
        "report (merge of shards)",
        Merged { reproduce: &plan.config, merged_units: &plan.units },
        plan.inputs.clone(),
        outputs,
    );
    write_manifest(&manifest_path, &m)?;
    Ok(Some(results))
}
