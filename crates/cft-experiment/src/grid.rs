//! Ablation grids: a spec in which any CFT, base-head, label or selection parameter is a list
//! (`bp_lr = [1e-5, 1e-4, 1e-3]`) expands to the cartesian product of those lists, and
//! `seeds = [0, 1, 2, 3, 4]` repeats every cell once per seed (the seed sets the GA's streams,
//! the held-out split and, unless the spec sets `labels.mask_seed`, the label masks: seed `s`
//! drops labels with mask seed 526 + s, so seed 0 keeps the reference masks).
//!
//! Each cell is a full spec with one value per parameter, run as its own unit folder, so a
//! resumed grid skips finished cells and `--shard i/n` runs a deterministic share of them
//! (cells `k` with `k mod n = i`, in expansion order) on a cluster's job array.

use crate::error::{bail, Context, Result};
use crate::spec::ExperimentSpec;
use serde::Deserialize;
use std::path::Path;

/// Lists that are values of their own, not grids: the proportions (one unit each), notes,
/// the methods run, the base heads and those CFT repairs, and the seeds.
const NATIVE_LISTS: [&str; 6] =
    ["labels.proportions", "output.notes", "cft.methods", "cft.repair", "base.losses", "seeds"];

/// The most cells one grid spec may have (the canned ablations have at most 135).
pub const MAX_CELLS: usize = 10_000;

/// A varied parameter: its key path in the spec and the values tried.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    /// `cft.bp_lr`, `cft.ga.population`, …
    pub key: String,
    /// The values, in the spec's order.
    pub values: Vec<toml::Value>,
}

/// One cell of a grid: a spec with one value per parameter.
#[derive(Debug, Clone)]
pub struct Cell {
    /// Position in expansion order (parameters first axis slowest, then seeds).
    pub index: usize,
    /// Folder name: `c003`, with `-s2` for seed 2.
    pub id: String,
    /// The varied parameters' values in this cell, in axis order.
    pub params: Vec<(String, toml::Value)>,
    /// The seed of this repetition, when the grid has `seeds`.
    pub seed: Option<u64>,
    /// The cell's spec.
    pub spec: ExperimentSpec,
}

impl Cell {
    /// `cft.bp_lr = 0.001, seed = 2`.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.params.iter().map(|(k, v)| format!("{k} = {}", show(v))).collect();
        if let Some(s) = self.seed {
            parts.push(format!("seed = {s}"));
        }
        parts.join(", ")
    }
}

/// A parameter value as a table shows it: floats that are `f32` values in their shortest form
/// (`0.001`, not `0.0010000000474974513`), strings unquoted.
pub fn show(v: &toml::Value) -> String {
    match v {
        toml::Value::Float(x) => {
            let f = *x as f32;
            if f64::from(f) == *x {
                format!("{f}")
            } else {
                format!("{x}")
            }
        }
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn walk(prefix: &str, v: &toml::Value, out: &mut Vec<Axis>) {
    match v {
        toml::Value::Table(t) => {
            for (k, x) in t {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                walk(&key, x, out);
            }
        }
        toml::Value::Array(items) if !NATIVE_LISTS.contains(&prefix) => {
            out.push(Axis { key: prefix.to_string(), values: items.clone() });
        }
        _ => {}
    }
}

/// The varied parameters of a spec (none: a single run).
pub fn axes(spec: &ExperimentSpec) -> Result<Vec<Axis>> {
    let v = toml::Value::try_from(spec).context("the spec as TOML")?;
    let mut out = Vec::new();
    walk("", &v, &mut out);
    Ok(out)
}

fn set(v: &mut toml::Value, path: &str, x: toml::Value) {
    let mut cur = v;
    let mut keys = path.split('.').peekable();
    while let Some(k) = keys.next() {
        let table = cur.as_table_mut().expect("a table on the way to a spec key");
        if keys.peek().is_none() {
            table.insert(k.to_string(), x);
            return;
        }
        cur = table.entry(k.to_string()).or_insert_with(|| toml::Value::Table(Default::default()));
    }
}

/// Every cell of `spec`: the cartesian product of its lists (first axis slowest), each
/// repeated for every seed. A spec without lists or seeds is one cell.
pub fn expand(spec: &ExperimentSpec) -> Result<Vec<Cell>> {
    let axes = axes(spec)?;
    let seeds = spec.seeds.clone();
    if let Some(s) = &seeds {
        if s.is_empty() {
            bail!("seeds: an empty list; give at least one seed");
        }
        if let Some(a) = axes.iter().find(|a| a.key == "cft.ga_seed" || a.key == "selection.split_seed") {
            bail!("{}: varied together with `seeds`, which already sets it per repetition", a.key);
        }
    }
    if let Some(s) = &seeds {
        let mut seen = std::collections::BTreeSet::new();
        if let Some(dup) = s.iter().find(|x| !seen.insert(**x)) {
            bail!("seeds: {dup} appears twice; every seed is one repetition of every cell");
        }
    }
    for a in &axes {
        if let Some((i, v)) = a.values.iter().enumerate().find(|(i, v)| a.values[..*i].contains(v)) {
            bail!("{}[{i}] = {}: appears twice in the list; every value is one cell", a.key, show(v));
        }
    }
    // Counted before anything is built: a typo can ask for billions of cells.
    let reps = seeds.as_ref().map_or(1, Vec::len);
    let total = axes.iter().try_fold(reps, |n, a| n.checked_mul(a.values.len()));
    let sizes: Vec<String> = axes
        .iter()
        .map(|a| format!("{} {}", a.values.len(), a.key))
        .chain(seeds.as_ref().map(|s| format!("{} seeds", s.len())))
        .collect();
    match total {
        Some(n) if n <= MAX_CELLS => {}
        _ => bail!(
            "a grid of {} cells ({}): at most {MAX_CELLS} cells per spec; split it into several specs",
            total.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string()),
            sizes.join(" × ")
        ),
    }
    let base = toml::Value::try_from(spec).context("the spec as TOML")?;
    let combos: usize = axes.iter().map(|a| a.values.len()).product();
    let mut cells = Vec::new();
    for c in 0..combos {
        // Mixed-radix digits, first axis slowest.
        let mut rest = c;
        let mut choice = vec![0; axes.len()];
        for (k, a) in axes.iter().enumerate().rev() {
            choice[k] = rest % a.values.len();
            rest /= a.values.len();
        }
        let params: Vec<(String, toml::Value)> =
            axes.iter().zip(&choice).map(|(a, &i)| (a.key.clone(), a.values[i].clone())).collect();
        let reps: Vec<Option<u64>> = match &seeds {
            Some(s) => s.iter().map(|&x| Some(x)).collect(),
            None => vec![None],
        };
        for seed in reps {
            let mut v = base.clone();
            for (k, x) in &params {
                set(&mut v, k, x.clone());
            }
            if let Some(t) = v.as_table_mut() {
                t.remove("seeds");
            }
            if let Some(s) = seed {
                let value = toml::Value::Integer(i64::try_from(s).context("seeds: a seed above 2^63")?);
                set(&mut v, "cft.ga_seed", value.clone());
                set(&mut v, "selection.split_seed", value);
                // The label masks follow the seed unless the spec pins them.
                if spec.labels.mask_seed.is_none() {
                    let mask = crate::spec::REFERENCE_MASK_SEED
                        .checked_add(s)
                        .and_then(|m| i64::try_from(m).ok())
                        .context("seeds: a seed too large for the label masks (526 + seed)")?;
                    set(&mut v, "labels.mask_seed", toml::Value::Integer(mask));
                }
            }
            let spec = ExperimentSpec::deserialize(v).context("a grid cell")?;
            let index = cells.len();
            let id = match seed {
                Some(s) => format!("c{c:03}-s{s}"),
                None => format!("c{c:03}"),
            };
            cells.push(Cell { index, id, params: params.clone(), seed, spec });
        }
    }
    Ok(cells)
}

/// Parses `--shard i/n` (0-based).
pub fn parse_shard(s: &str) -> Result<(usize, usize)> {
    Ok(s.parse::<crate::shard::Shard>()?.pair())
}

/// The cells of shard `i` of `n`: every `n`-th cell from the `i`-th, so shards are balanced
/// and together hold every cell exactly once.
pub fn shard(cells: Vec<Cell>, (i, n): (usize, usize)) -> Vec<Cell> {
    cells.into_iter().filter(|c| c.index % n == i).collect()
}

/// Loading a spec checks every cell of its grid, so it lives here, beside the expansion (the
/// spec module knows nothing of grids).
impl ExperimentSpec {
    /// Reads and checks a spec file; every error names the file (and the line and key).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| crate::error::refused!("{}: {e}", path.display()))?;
        Self::parse(&text, path)
    }

    /// Parses and checks a spec's text; errors name `path` (where the text came from).
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let spec: ExperimentSpec = toml::from_str(text.trim_start_matches('\u{feff}'))
            .map_err(|e| crate::error::refused!("{}: {}", path.display(), e.to_string().trim_end()))?;
        spec.checked_at(path)
    }

    /// Checks a spec built in code (`cft reproduce` builds one from its flags) as a file's is
    /// checked: a grid cell by cell; errors name `path`.
    pub fn checked_at(self, path: &Path) -> Result<Self> {
        let spec = self;
        // A grid is checked cell by cell: every value of every list must be valid.
        let cells = expand(&spec).map_err(|e| crate::error::refused!("{}: {e}", path.display()))?;
        for cell in &cells {
            cell.spec.check().map_err(|e| match cell.params.is_empty() {
                true => crate::error::refused!("{}: {e}", path.display()),
                false => {
                    crate::error::refused!(
                        "{}: {e} (in cell {} of the grid: {})",
                        path.display(),
                        cell.id,
                        cell.describe()
                    )
                }
            })?;
        }
        Ok(spec)
    }

    /// Whether any parameter is a list or `seeds` is given: the spec is a grid of cells.
    pub fn is_grid(&self) -> bool {
        self.seeds.is_some() || !axes(self).unwrap_or_default().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<ExperimentSpec> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("grid.toml");
        std::fs::write(&p, text).unwrap();
        ExperimentSpec::load(&p)
    }

    const BASE: &str = "[data]\ndataset = \"scene\"\n[labels]\nproportions = [0.1, 0.5]\n";

    #[test]
    fn lists_expand_to_the_cartesian_product_times_the_seeds() {
        let s =
            load(&format!("seeds = [0, 7]\n{BASE}[cft]\nbp_lr = [1e-5, 1e-3]\n[cft.ga]\npopulation = [20, 50, 100]\n"))
                .unwrap();
        assert!(s.is_grid());
        let cells = expand(&s).unwrap();
        assert_eq!(cells.len(), 2 * 3 * 2);
        // First axis (alphabetical key order: cft.bp_lr, then cft.ga.population) slowest, seeds fastest.
        assert_eq!(cells[0].id, "c000-s0");
        assert_eq!(cells[1].id, "c000-s7");
        assert_eq!(cells[2].describe(), "cft.bp_lr = 0.00001, cft.ga.population = 50, seed = 0");
        assert_eq!(cells[11].describe(), "cft.bp_lr = 0.001, cft.ga.population = 100, seed = 7");
        let c = cells[11].spec.protocol_config("scene");
        assert_eq!((c.bp_lr, c.ga.population, c.ga_seed, c.split_seed, c.mask_seed), (1e-3, 100, 7, 7, 533));
        assert_eq!(c.proportions, vec![0.1, 0.5], "proportions are a value, not an axis");
        assert!(cells.iter().all(|c| !c.spec.is_grid()));
        // Shards partition the cells.
        let ids = |k| shard(cells.clone(), (k, 5)).into_iter().map(|c| c.index).collect::<Vec<_>>();
        let mut all: Vec<usize> = (0..5).flat_map(ids).collect();
        all.sort_unstable();
        assert_eq!(all, (0..12).collect::<Vec<_>>());
        assert_eq!(ids(1), vec![1, 6, 11]);
    }

    #[test]
    fn seeds_draw_new_label_masks_unless_the_spec_pins_them() {
        let free = expand(&load(&format!("seeds = [0, 3]\n{BASE}")).unwrap()).unwrap();
        let masks: Vec<u64> = free.iter().map(|c| c.spec.protocol_config("scene").mask_seed).collect();
        assert_eq!(masks, vec![526, 529], "seed 0 keeps the reference masks");
        let pinned = expand(&load(&format!("seeds = [0, 3]\n{BASE}mask_seed = 526\n")).unwrap()).unwrap();
        assert!(pinned.iter().all(|c| c.spec.protocol_config("scene").mask_seed == 526));
    }

    #[test]
    fn a_spec_without_lists_is_one_cell() {
        let s = load(BASE).unwrap();
        assert!(!s.is_grid());
        let cells = expand(&s).unwrap();
        assert_eq!((cells.len(), cells[0].id.as_str(), cells[0].params.len()), (1, "c000", 0));
    }

    #[test]
    fn grid_errors_name_the_file_and_the_key() {
        // A list where a single value is required.
        let e = load("[data]\ndataset = \"scene\"\nname = [\"a\", \"b\"]\n[labels]\nproportions = [0.1]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("grid.toml") && e.contains("name") && e.contains("line 3"), "{e}");
        // Out of range in one value of a list: the key and the cell.
        let e = load(&format!("{BASE}[cft]\nbp_lr = [1e-4, -1e-3]\n")).unwrap_err().to_string();
        assert!(e.contains("grid.toml: cft.bp_lr = -0.001") && e.contains("cell c001"), "{e}");
        let e = load(&format!("{BASE}[cft.ga]\npopulation = [50, 0]\n")).unwrap_err().to_string();
        assert!(e.contains("cft.ga.population = 0"), "{e}");
        // A parameter that does not exist.
        let e = load(&format!("{BASE}[cft]\nlearning_rates = [1e-4, 1e-3]\n")).unwrap_err().to_string();
        assert!(e.contains("grid.toml") && e.contains("learning_rates") && e.contains("line 6"), "{e}");
        // An empty list, and seeds varied twice.
        let e = load(&format!("{BASE}[cft]\nbp_lr = []\n")).unwrap_err().to_string();
        assert!(e.contains("bp_lr") && e.contains("empty list"), "{e}");
        let e = load(&format!("seeds = [0, 1]\n{BASE}[cft]\nga_seed = [1, 2]\n")).unwrap_err().to_string();
        assert!(e.contains("cft.ga_seed") && e.contains("seeds"), "{e}");
    }
}
