//! Running an ablation grid ([`crate::grid`]) and merging its cells into the tidy table.
//!
//! `<out>/<name>/` holds `grid.json` (the spec and its cells, the same for every shard),
//! `cells/<id>/` (each cell's protocol run: its unit files, resumable), and once every cell is
//! there, `tidy.csv`, `tidy.parquet`, `ablation.json` and the ablation's report ([`cft_report::ablation`]).
//! The tidy table is built from the unit files alone, in cell order, so a grid run in shards
//! and merged is byte-identical to the same grid run in one process.

use crate::error::{bail, Context, Result};
use crate::grid::{expand, show, Cell};
use crate::partial_label::{run_protocol, unit_id, ProtocolData, ReproduceConfig, RunOptions, UnitResult};
use crate::spec::ExperimentSpec;
use cft_report::ablation::TidyFiles;
use cft_results::ablation::{AblationMeta, Tidy, TidyRow};
use cft_results::Protocol;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What `grid.json` records: enough to merge the cells without the spec file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridFile {
    /// The ablation's name (its folder).
    pub name: String,
    /// The spec file it was run from.
    pub spec_file: String,
    /// The spec (with its lists).
    pub spec: ExperimentSpec,
    /// The varied parameters' key paths.
    pub param_keys: Vec<String>,
    /// Every cell: id, seed, parameter values as shown.
    pub cells: Vec<GridCellEntry>,
}

/// One cell in `grid.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridCellEntry {
    /// `c003-s2`.
    pub id: String,
    /// The cell without its seed (`c003`).
    pub cell: String,
    /// The seed, when the grid has seeds.
    pub seed: Option<u64>,
    /// The parameters' values, as shown.
    pub params: Vec<String>,
    /// The cell's dataset name (the tidy table's `dataset`).
    pub dataset: String,
}

/// The ablation folder of a grid spec: `<out>/<spec file stem>`.
pub fn grid_dir(out: &Path, spec_path: &Path) -> PathBuf {
    out.join(spec_path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "grid".into()))
}

/// How a grid run goes.
#[derive(Clone, Copy, Default)]
pub struct GridOptions<'a> {
    /// Reuse finished cells (each cell's units are fingerprinted like any protocol run).
    pub resume: bool,
    /// Run only shard `i` of `n`.
    pub shard: Option<(usize, usize)>,
    /// The engine that fits the heads (default: the batched CPU engine).
    pub engine: Option<&'a dyn crate::engine::CftEngine>,
    /// Asked between epochs, units and cells: `true` stops the grid with [`cft_core::Interrupted`].
    pub stop: Option<&'a (dyn Fn() -> bool + Sync)>,
}

/// What a grid run did.
#[derive(Debug)]
pub struct GridRun {
    /// The ablation folder.
    pub dir: PathBuf,
    /// Cells run (or reused) by this process.
    pub ran: usize,
    /// Cells in the whole grid.
    pub total: usize,
    /// Whether the tidy table and the report were written (every cell present).
    pub merged: bool,
}

/// Runs the cells of `spec` (all, or one shard) into `<out>/<stem of spec_path>/cells/`; with
/// every cell present, merges them ([`merge`]). `load` gives a cell's data (called once per
/// distinct dataset); `on_cell` reports progress (cell, position, cells to run).
pub fn run_grid(
    spec: &ExperimentSpec,
    spec_path: &Path,
    out: &Path,
    opts: GridOptions<'_>,
    load: &dyn Fn(&ExperimentSpec) -> Result<ProtocolData>,
    on_step: &(dyn Fn() + Sync),
    on_cell: &dyn Fn(&Cell, usize, usize),
) -> Result<GridRun> {
    let cells = expand(spec)?;
    let total = cells.len();
    let dir = grid_dir(out, spec_path);
    cft_data::check_output_folder(cft_data::Named::new("--out", out))?;
    std::fs::create_dir_all(dir.join("cells")).with_context(|| dir.display().to_string())?;
    let param_keys: Vec<String> =
        cells.first().map(|c| c.params.iter().map(|(k, _)| k.clone()).collect()).unwrap_or_default();
    let mut data_cache: BTreeMap<String, ProtocolData> = BTreeMap::new();
    let mut entries = Vec::with_capacity(total);
    for c in &cells {
        let key = c.spec.data.dataset.as_ref().map(|d| d.get().clone()).unwrap_or_default();
        if !data_cache.contains_key(&key) {
            data_cache.insert(key.clone(), load(&c.spec)?);
        }
        entries.push(GridCellEntry {
            id: c.id.clone(),
            cell: c.id.split("-s").next().unwrap_or(&c.id).to_string(),
            seed: c.seed,
            params: c.params.iter().map(|(_, v)| show(v)).collect(),
            dataset: data_cache[&key].name.clone(),
        });
    }
    let grid = GridFile {
        name: dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        spec_file: spec_path.display().to_string(),
        spec: spec.clone(),
        param_keys,
        cells: entries,
    };
    let grid_path = dir.join("grid.json");
    if grid_path.is_file() {
        // A folder of another grid is not mixed into this one.
        let old: GridFile = serde_json::from_str(&std::fs::read_to_string(&grid_path)?)
            .map_err(|e| crate::error::refused!("{}: not a grid file ({e}); remove the folder", grid_path.display()))?;
        // Cells already run under another spec would be labelled with this one's values
        // (a spec edited between shards): refused, with or without --resume.
        if old.spec != grid.spec && (opts.resume || dir.join("cells").read_dir().is_ok_and(|mut d| d.next().is_some()))
        {
            bail!(
                "{}: the folder holds cells of another version of this grid (the spec changed since they ran); refusing to mix them (use another --out or remove the folder)",
                grid_path.display()
            );
        }
    }
    cft_data::write_atomic(&grid_path, (serde_json::to_string_pretty(&grid)? + "\n").as_bytes())?;
    let mine: Vec<&Cell> = match opts.shard {
        Some((i, n)) => cells.iter().filter(|c| c.index % n == i).collect(),
        None => cells.iter().collect(),
    };
    let todo = mine.len();
    for (k, c) in mine.iter().enumerate() {
        on_cell(c, k, todo);
        let key = c.spec.data.dataset.as_ref().map(|d| d.get().clone()).unwrap_or_default();
        let data = &data_cache[&key];
        let cfg = c.spec.protocol_config(&data.name);
        #[derive(Serialize)]
        struct CellConfig<'a> {
            grid: &'a str,
            cell: &'a str,
            params: String,
        }
        let run_config = CellConfig { grid: &grid.name, cell: &c.id, params: c.describe() };
        let run = RunOptions {
            resume: opts.resume,
            report: false,
            interrupt_after_units: None,
            folder: Some(&c.id),
            engine: opts.engine,
            stages: None,
            shard: None,
            stop: opts.stop,
        };
        run_protocol(&cfg, data, &dir.join("cells"), &run_config, on_step, run)
            .with_context(|| format!("cell {} ({})", c.id, c.describe()))?;
    }
    // A shard leaves the merge to `cft report` (shards of a job array finish in any order).
    let merged = match opts.shard {
        None => merge(&dir)?,
        Some(_) => None,
    };
    if let Some((tidy, meta)) = &merged {
        cft_report::ablation::write_ablation_report(&dir, meta, tidy)?;
    }
    Ok(GridRun { dir, ran: todo, total, merged: merged.is_some() })
}

/// Builds `tidy.csv`, `tidy.parquet` and `ablation.json` from the cells of `dir` when every
/// cell of `grid.json` has finished, and returns the table and its metadata (cells missing:
/// `None`); the pages and figures are `cft_report::ablation`'s, from the table.
pub fn merge(dir: &Path) -> Result<Option<(Tidy, AblationMeta)>> {
    let grid_path = dir.join("grid.json");
    let grid: GridFile =
        serde_json::from_str(&std::fs::read_to_string(&grid_path).with_context(|| grid_path.display().to_string())?)
            .map_err(|e| crate::error::refused!("{}: not a grid file ({e})", grid_path.display()))?;
    let mut rows = Vec::new();
    let mut metric = String::from("mAP");
    let cells = expand(&grid.spec)?;
    check_grid_file(&grid_path, &grid, &cells)?;
    for e in &grid.cells {
        let cell_dir = dir.join("cells").join(&e.id);
        let results = cell_dir.join("results.json");
        if !results.is_file() {
            return Ok(None);
        }
        let res = cft_report::read_results(&results)?;
        metric = res.metric.clone();
        let c = cells.iter().find(|c| c.id == e.id).with_context(|| format!("cell {} is not in the grid", e.id))?;
        let cfg = c.spec.protocol_config(&e.dataset);
        check_cell_config(&cell_dir, &cfg)?;
        for protocol in [Protocol::Paper, Protocol::HeldOut] {
            for &p in &res.proportions {
                let path = cell_dir.join("runs").join(format!("{}.json", unit_id(&cfg, p, protocol)));
                let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
                let u: UnitResult = serde_json::from_str(&text)
                    .map_err(|err| crate::error::refused!("{}: line {}: {err}", path.display(), err.line()))?;
                rows.extend(tidy_rows(e, &res.categories, &u));
            }
        }
    }
    let tidy = Tidy { param_keys: grid.param_keys.clone(), rows };
    tidy.write_csv(&dir.join("tidy.csv"))?;
    tidy.write_parquet(&dir.join("tidy.parquet"))?;
    let label_masks = match (&grid.spec.seeds, &grid.spec.labels.mask_seed, grid.spec.labels.source) {
        (_, _, crate::partial_label::LabelSource::Real) => String::new(),
        (Some(_), None, crate::partial_label::LabelSource::SinglePositive) => format!(
            "Single-positive labels: each training image's one observed positive drawn anew for each seed (numpy RandomState seed {} + seed), so the intervals include the draw.",
            crate::spec::REFERENCE_MASK_SEED
        ),
        (Some(_), None, _) => format!(
            "Label masks: drawn anew for each seed (mask seed {} + seed), so the intervals include the label sampling.",
            crate::spec::REFERENCE_MASK_SEED
        ),
        (Some(_), Some(m), _) => format!(
            "Label masks: fixed for every seed (labels.mask_seed = {}), so the intervals leave out the label sampling.",
            m.values().iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
        ),
        (None, _, _) => String::new(),
    };
    let meta = AblationMeta {
        name: grid.name.clone(),
        description: grid.spec.description.clone(),
        metric,
        spec: grid.spec_file.clone(),
        cells: grid.cells.len(),
        label_masks,
        label_source: match grid.spec.labels.source {
            crate::partial_label::LabelSource::Drop => None,
            other => Some(other.name().to_string()),
        },
    };
    cft_data::write_atomic(&dir.join("ablation.json"), (serde_json::to_string_pretty(&meta)? + "\n").as_bytes())?;
    Ok(Some((tidy, meta)))
}

/// `grid.json` must describe exactly the cells its spec expands to: the same ids, parameter
/// values and seeds, one value per varied key (a hand-edited file is refused, not trusted).
fn check_grid_file(path: &Path, grid: &GridFile, cells: &[Cell]) -> Result<()> {
    let keys: Vec<String> =
        cells.first().map(|c| c.params.iter().map(|(k, _)| k.clone()).collect()).unwrap_or_default();
    if grid.param_keys != keys {
        bail!("{}: param_keys {:?} are not the spec's varied keys {:?}", path.display(), grid.param_keys, keys);
    }
    if grid.cells.len() != cells.len() {
        bail!("{}: {} cells listed, the spec expands to {}", path.display(), grid.cells.len(), cells.len());
    }
    for (e, c) in grid.cells.iter().zip(cells) {
        let shown: Vec<String> = c.params.iter().map(|(_, v)| show(v)).collect();
        if e.id != c.id || e.seed != c.seed || e.params != shown {
            bail!(
                "{}: cell {} lists {:?} (seed {:?}), the spec's cell {} has {:?} (seed {:?}): the file was edited or belongs to another spec",
                path.display(),
                e.id,
                e.params,
                e.seed,
                c.id,
                shown,
                c.seed
            );
        }
    }
    Ok(())
}

/// A cell folder must have been run with the configuration its grid gives it (its manifest
/// records the one it ran with): otherwise its numbers would be labelled with another's values.
fn check_cell_config(cell_dir: &Path, cfg: &ReproduceConfig) -> Result<()> {
    let path = cell_dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    let manifest: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| crate::error::refused!("{}: line {}: {e}", path.display(), e.line()))?;
    let ran = &manifest["config"]["reproduce"];
    // Through text, as the manifest was written (f32 values keep their shortest spelling).
    let want: serde_json::Value = serde_json::from_str(&serde_json::to_string(cfg)?)?;
    if *ran != want {
        let differs: Vec<String> = want
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, v)| ran.get(k.as_str()) != Some(v))
            .map(|(k, v)| {
                format!("{k}: ran with {}, the grid says {v}", ran.get(k.as_str()).unwrap_or(&serde_json::Value::Null))
            })
            .collect();
        bail!(
            "{}: this cell ran with another configuration than its grid gives it ({}): refusing to merge it",
            path.display(),
            differs.join("; ")
        );
    }
    Ok(())
}

/// The tidy rows of one unit: every method × category. A CFT row (`<Base> + CFT-<method>`) is
/// paired with its own base head; a base row carries the first base head's score.
fn tidy_rows(e: &GridCellEntry, categories: &[String], u: &UnitResult) -> Vec<TidyRow> {
    let first_base = u.methods.iter().find(|m| m.is_base);
    let mut out = Vec::new();
    for m in &u.methods {
        let own = m.method.split(" + ").next().filter(|_| !m.is_base);
        let base = own.and_then(|b| u.methods.iter().find(|x| x.is_base && x.method == b)).or(first_base);
        for (k, name) in categories.iter().enumerate() {
            let o = m.outcomes.iter().find(|o| o.category == k);
            out.push(TidyRow {
                dataset: e.dataset.clone(),
                cell: e.cell.clone(),
                seed: e.seed,
                params: e.params.clone(),
                method: m.method.clone(),
                protocol: u.protocol.label().to_string(),
                proportion: u.proportion,
                category: name.clone(),
                is_base: m.is_base,
                score: m.test_per_category.get(k).copied().flatten(),
                base_score: base.and_then(|b| b.test_per_category.get(k).copied().flatten()),
                selection_original: o.and_then(|o| o.original_score),
                selection_best: o.and_then(|o| o.best_score),
                best_epoch: o.map(|o| o.best_epoch),
                epochs_run: o.map(|o| o.epochs_run as i64),
            });
        }
    }
    out
}
