//! Ablation reports: the tidy table of a grid and everything computed from it.
//!
//! * [`Tidy`]: one row per cell × seed × method × protocol × known proportion × category, the
//!   varied parameters as columns, base and CFT scores, best epoch and epochs run, written as
//!   CSV and Parquet with polars (`tidy.csv` is the committed source of every number below).
//!   Timings are not in it, so a grid run in shards and merged gives the same bytes as one run.
//! * [`summarize`]: polars groups the rows into per-seed mean scores; over the seeds, the mean,
//!   standard deviation and a 95% t-interval; for each CFT row the paired per-category
//!   differences from its base head with a bootstrap interval (fixed seed) and win/tie/loss
//!   counts over categories.
//! * [`write_ablation_report`]: the summary as Markdown/CSV/LaTeX, the metric against each
//!   varied parameter with interval bands, the per-category Δ distribution, and a README that
//!   calls out where the held-out protocol removes a gain the paper protocol shows.

use crate::dataset_report::{ReportError, FIGURE_SIZE};
use crate::plots::{render, LineChart, Marker, Series, Stacked, MARKERS};
use crate::table::Table;
use polars::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn invalid(path: &Path, e: impl std::fmt::Display) -> ReportError {
    ReportError::Invalid { path: path.to_path_buf(), message: e.to_string() }
}

pub use cft_results::ablation::{AblationMeta, Tidy, TidyRow, TIDY_COLUMNS};

/// The tidy table's files: CSV and Parquet through polars (the schema is `cft-results`').
pub trait TidyFiles {
    /// The table as a polars frame (fixed columns with the parameters after `cell`).
    fn to_frame(&self) -> PolarsResult<DataFrame>;
    /// Writes `tidy.csv` (polars' CSV writer, every digit of every score) atomically.
    fn write_csv(&self, path: &Path) -> Result<(), ReportError>;
    /// Writes `tidy.parquet` (polars' Parquet writer, zstd; typed columns for tools that read
    /// Parquet: pandas, polars, DuckDB, Arrow) atomically.
    fn write_parquet(&self, path: &Path) -> Result<(), ReportError>;
}

impl TidyFiles for Tidy {
    fn to_frame(&self) -> PolarsResult<DataFrame> {
        let r = &self.rows;
        let s = |f: fn(&TidyRow) -> String| r.iter().map(f).collect::<Vec<String>>();
        let mut cols: Vec<Column> = vec![
            Column::new("dataset".into(), s(|x| x.dataset.clone())),
            Column::new("cell".into(), s(|x| x.cell.clone())),
        ];
        for (k, key) in self.param_keys.iter().enumerate() {
            cols.push(Column::new(key.as_str().into(), r.iter().map(|x| x.params[k].clone()).collect::<Vec<_>>()));
        }
        cols.extend([
            Column::new("seed".into(), r.iter().map(|x| x.seed).collect::<Vec<Option<u64>>>()),
            Column::new("method".into(), s(|x| x.method.clone())),
            Column::new("protocol".into(), s(|x| x.protocol.clone())),
            Column::new("proportion".into(), r.iter().map(|x| x.proportion).collect::<Vec<f64>>()),
            Column::new("category".into(), s(|x| x.category.clone())),
            Column::new("is_base".into(), r.iter().map(|x| x.is_base).collect::<Vec<bool>>()),
            Column::new("score".into(), r.iter().map(|x| x.score).collect::<Vec<_>>()),
            Column::new("base_score".into(), r.iter().map(|x| x.base_score).collect::<Vec<_>>()),
            Column::new("selection_original".into(), r.iter().map(|x| x.selection_original).collect::<Vec<_>>()),
            Column::new("selection_best".into(), r.iter().map(|x| x.selection_best).collect::<Vec<_>>()),
            Column::new("best_epoch".into(), r.iter().map(|x| x.best_epoch).collect::<Vec<_>>()),
            Column::new("epochs_run".into(), r.iter().map(|x| x.epochs_run).collect::<Vec<_>>()),
        ]);
        DataFrame::new_infer_height(cols)
    }

    fn write_csv(&self, path: &Path) -> Result<(), ReportError> {
        let mut df = self.to_frame().map_err(|e| invalid(path, e))?;
        let mut buf = Vec::new();
        CsvWriter::new(&mut buf).include_header(true).finish(&mut df).map_err(|e| invalid(path, e))?;
        cft_data::write_atomic(path, &buf)?;
        Ok(())
    }

    fn write_parquet(&self, path: &Path) -> Result<(), ReportError> {
        let mut df = self.to_frame().map_err(|e| invalid(path, e))?;
        let mut buf = Vec::new();
        ParquetWriter::new(&mut buf).finish(&mut df).map_err(|e| invalid(path, e))?;
        cft_data::write_atomic(path, &buf)?;
        Ok(())
    }
}

/// Reads a `tidy.csv` back (parameters are the columns between `cell` and `seed`).
pub fn read_tidy_csv(path: &Path) -> Result<Tidy, ReportError> {
    {
        // Every column as text: parameter values and scores come back exactly as written.
        let df = CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(0))
            .try_into_reader_with_file_path(Some(path.to_path_buf()))
            .and_then(|r| r.finish())
            .map_err(|e| invalid(path, e))?;
        let names: Vec<String> = df.get_column_names().iter().map(|n| n.to_string()).collect();
        let (Some(cell), Some(seed)) = (names.iter().position(|n| n == "cell"), names.iter().position(|n| n == "seed"))
        else {
            return Err(invalid(path, "not a tidy ablation table: no `cell` and `seed` columns"));
        };
        for c in TIDY_COLUMNS {
            if !names.iter().any(|n| n == c) {
                return Err(invalid(path, format!("not a tidy ablation table: no `{c}` column")));
            }
        }
        let param_keys: Vec<String> = names[cell + 1..seed].to_vec();
        let text = |n: &str| crate::reference::string_column(path, &df, n);
        let float = |n: &str| -> Result<Vec<Option<f64>>, ReportError> {
            text(n)?
                .iter()
                .enumerate()
                .map(|(i, v)| match v.as_str() {
                    "" => Ok(None),
                    // NaN or ±inf: an undefined value, kept out of every mean (a gap in plots).
                    v => v
                        .parse::<f64>()
                        .map(|x| x.is_finite().then_some(x))
                        .map_err(|_| invalid(path, format!("row {}: {n} = `{v}`", i + 2))),
                })
                .collect()
        };
        let int = |n: &str| -> Result<Vec<Option<i64>>, ReportError> {
            Ok(float(n)?.into_iter().map(|v| v.map(|x| x as i64)).collect())
        };
        let (dataset, cells, method, protocol, category, is_base) =
            (text("dataset")?, text("cell")?, text("method")?, text("protocol")?, text("category")?, text("is_base")?);
        let params: Vec<Vec<String>> = param_keys.iter().map(|k| text(k)).collect::<Result<_, _>>()?;
        let (seed, proportion) = (int("seed")?, float("proportion")?);
        let (score, base, so, sb) =
            (float("score")?, float("base_score")?, float("selection_original")?, float("selection_best")?);
        let (be, er) = (int("best_epoch")?, int("epochs_run")?);
        let rows = (0..df.height())
            .map(|i| {
                Ok(TidyRow {
                    dataset: dataset[i].clone(),
                    cell: cells[i].clone(),
                    seed: seed[i].map(|s| s as u64),
                    params: params.iter().map(|p| p[i].clone()).collect(),
                    method: method[i].clone(),
                    protocol: protocol[i].clone(),
                    proportion: proportion[i].ok_or_else(|| invalid(path, format!("row {}: no proportion", i + 2)))?,
                    category: category[i].clone(),
                    is_base: is_base[i] == "true",
                    score: score[i],
                    base_score: base[i],
                    selection_original: so[i],
                    selection_best: sb[i],
                    best_epoch: be[i],
                    epochs_run: er[i],
                })
            })
            .collect::<Result<_, ReportError>>()?;
        Ok(Tidy { param_keys, rows })
    }
}

/// Two-sided 95% quantiles of Student's t for 1…30 degrees of freedom (then 1.96).
const T975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120,
    2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
];

/// Mean, sample standard deviation and the 95% t-interval of `values` (a single value has
/// neither: both are NaN, and tables say "n = 1" instead of an interval).
pub fn mean_interval(values: &[f64]) -> (f64, f64, (f64, f64)) {
    let n = values.len();
    if n == 0 {
        return (f64::NAN, f64::NAN, (f64::NAN, f64::NAN));
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return (mean, f64::NAN, (f64::NAN, f64::NAN));
    }
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1) as f64;
    let sd = var.sqrt();
    let t = T975.get(n - 2).copied().unwrap_or(1.96);
    let hw = t * sd / (n as f64).sqrt();
    (mean, sd, (mean - hw, mean + hw))
}

/// The 95% percentile-bootstrap interval of the mean of `values` (2,000 resamples, seed 2024).
pub fn bootstrap_interval(values: &[f64]) -> (f64, f64) {
    let n = values.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mut rng = cft_core::Pcg64::new(2024);
    let mut means: Vec<f64> = (0..2000)
        .map(|_| (0..n).map(|_| values[((rng.random() * n as f64) as usize).min(n - 1)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    (means[50], means[1949])
}

/// One row of an ablation summary: a method under a protocol in one parameter setting.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryRow {
    /// The varied parameters' values.
    pub params: Vec<String>,
    /// Row name.
    pub method: String,
    /// Protocol.
    pub protocol: String,
    /// Whether it is a base head.
    pub is_base: bool,
    /// Per proportion: (proportion, mean over seeds of the mean score, its 95% interval).
    pub per_proportion: Vec<(f64, f64, (f64, f64))>,
    /// Over the proportions' average: seeds, mean, standard deviation, 95% interval.
    pub average: (usize, f64, f64, (f64, f64)),
    /// CFT rows: the mean paired Δ over categories (score − base, averaged over seeds and
    /// proportions), its bootstrap interval, and win/tie/loss counts over categories.
    pub delta: Option<PairedDelta>,
    /// CFT rows: the paired Δ per seed (score − base over categories and proportions), its
    /// mean over seeds, the 95% t-interval over seeds and the number of seeds: the variation
    /// between repetitions, label sampling included when the masks follow the seed.
    pub seed_delta: Option<(f64, (f64, f64), usize)>,
}

type Key = (Vec<String>, String, String, bool);

/// The paired Δ over categories: its mean, 95% bootstrap interval and (wins, ties, losses).
pub type PairedDelta = (f64, (f64, f64), (usize, usize, usize));

/// The summary of a tidy table (see the module docs). Per-seed mean scores are computed by
/// polars (group by parameters, method, protocol, proportion and seed).
pub fn summarize(tidy: &Tidy) -> Result<Vec<SummaryRow>, ReportError> {
    let here = Path::new("tidy table");
    let df = tidy.to_frame().map_err(|e| invalid(here, e))?;
    let mut keys: Vec<String> = tidy.param_keys.clone();
    keys.extend(["method", "protocol", "is_base", "proportion", "seed"].map(String::from));
    // Per seed: the mean over defined categories (polars skips nulls).
    #[allow(deprecated)] // the eager group-by: the lazy engine is not part of this build
    let per_seed = df
        .group_by_stable(keys.iter().map(String::as_str))
        .and_then(|g| g.select(["score"]).mean())
        .map_err(|e| invalid(here, e))?;
    let col = |n: &str| crate::reference::string_column(here, &per_seed, n);
    let params: Vec<Vec<String>> = tidy.param_keys.iter().map(|k| col(k)).collect::<Result<_, _>>()?;
    let (method, protocol, is_base, prop, mean) =
        (col("method")?, col("protocol")?, col("is_base")?, col("proportion")?, col("score_mean")?);
    // (key) → proportion → per-seed means.
    let mut by_key: BTreeMap<Key, BTreeMap<u64, Vec<f64>>> = BTreeMap::new();
    let mut order: Vec<Key> = Vec::new();
    for i in 0..per_seed.height() {
        let key: Key = (
            params.iter().map(|p| p[i].clone()).collect(),
            method[i].clone(),
            protocol[i].clone(),
            is_base[i] == "true",
        );
        if !order.contains(&key) {
            order.push(key.clone());
        }
        let (Ok(p), Ok(m)) = (prop[i].parse::<f64>(), mean[i].parse::<f64>()) else { continue };
        by_key.entry(key).or_default().entry(p.to_bits()).or_default().push(m);
    }
    let mut out = Vec::new();
    let none = BTreeMap::new();
    for key in order {
        // A row whose every score is undefined (no category could be scored) has no means.
        let props = by_key.get(&key).unwrap_or(&none);
        let mut per_proportion: Vec<(f64, f64, (f64, f64))> = props
            .iter()
            .map(|(bits, v)| {
                let (m, _, ci) = mean_interval(v);
                (f64::from_bits(*bits), m, ci)
            })
            .collect();
        per_proportion.sort_by(|a, b| a.0.total_cmp(&b.0));
        // Per seed, the average over proportions (seeds are in the same order for every proportion).
        let n_seeds = props.values().map(Vec::len).min().unwrap_or(0);
        let avgs: Vec<f64> =
            (0..n_seeds).map(|s| props.values().map(|v| v[s]).sum::<f64>() / props.len() as f64).collect();
        let (m, sd, ci) = mean_interval(&avgs);
        let (params, method, protocol, is_base) = key;
        let delta = (!is_base).then(|| paired_delta(tidy, &params, &method, &protocol)).flatten();
        let seed_delta = (!is_base).then(|| paired_delta_over_seeds(tidy, &params, &method, &protocol)).flatten();
        out.push(SummaryRow {
            params,
            method,
            protocol,
            is_base,
            per_proportion,
            average: (n_seeds, m, sd, ci),
            delta,
            seed_delta,
        });
    }
    Ok(out)
}

/// Per category: the mean over seeds and proportions of score − base score; their mean, its
/// bootstrap interval and win/tie/loss counts (|Δ| ≤ 1e-9 is a tie).
fn paired_delta(tidy: &Tidy, params: &[String], method: &str, protocol: &str) -> Option<PairedDelta> {
    let mut per_cat: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for r in tidy.rows.iter().filter(|r| r.params == params && r.method == method && r.protocol == protocol) {
        if let (Some(s), Some(b)) = (r.score, r.base_score) {
            per_cat.entry(r.category.as_str()).or_default().push(s - b);
        }
    }
    if per_cat.is_empty() {
        return None;
    }
    Some(delta_over(per_cat.values()))
}

/// The paired Δ of per-category differences (each category's list averaged first): their
/// mean, its 95% bootstrap interval and win/tie/loss counts (|Δ| ≤ 1e-9 is a tie).
fn delta_over<'a>(per_category: impl Iterator<Item = &'a Vec<f64>>) -> PairedDelta {
    let d: Vec<f64> = per_category.map(|v| v.iter().sum::<f64>() / v.len() as f64).collect();
    let mean = d.iter().sum::<f64>() / d.len() as f64;
    let wins = d.iter().filter(|&&x| x > 1e-9).count();
    let losses = d.iter().filter(|&&x| x < -1e-9).count();
    (mean, bootstrap_interval(&d), (wins, d.len() - wins - losses, losses))
}

/// Per seed, the mean over categories and proportions of score − base; then their mean over
/// seeds with the 95% t-interval (NaN for a single seed) and the seed count.
fn paired_delta_over_seeds(
    tidy: &Tidy,
    params: &[String],
    method: &str,
    protocol: &str,
) -> Option<(f64, (f64, f64), usize)> {
    let mut per_seed: BTreeMap<Option<u64>, (f64, usize)> = BTreeMap::new();
    for r in tidy.rows.iter().filter(|r| r.params == params && r.method == method && r.protocol == protocol) {
        if let (Some(s), Some(b)) = (r.score, r.base_score) {
            let e = per_seed.entry(r.seed).or_insert((0.0, 0));
            e.0 += s - b;
            e.1 += 1;
        }
    }
    if per_seed.is_empty() {
        return None;
    }
    let deltas: Vec<f64> = per_seed.values().map(|(sum, n)| sum / *n as f64).collect();
    let (m, _, ci) = mean_interval(&deltas);
    Some((m, ci, deltas.len()))
}

fn pm(m: f64, ci: (f64, f64)) -> String {
    if !m.is_finite() {
        return "—".into();
    }
    if !(ci.0.is_finite() && ci.1.is_finite()) {
        // One value: no interval to show.
        return format!("{:.2} (n = 1)", 100.0 * m);
    }
    format!("{:.2} ± {:.2}", 100.0 * m, 100.0 * (ci.1 - ci.0) / 2.0)
}

/// The summary as a table: parameters, method, protocol, each proportion and the average as
/// mean ± 95% half-width (%), Δ vs the base head with its bootstrap interval, W/T/L.
pub fn summary_table(name: &str, metric: &str, tidy: &Tidy, rows: &[SummaryRow], label_masks: &str) -> Table {
    let props: Vec<f64> = rows.first().map(|r| r.per_proportion.iter().map(|p| p.0).collect()).unwrap_or_default();
    let mut header: Vec<String> = tidy.param_keys.clone();
    header.extend(["Method".to_string(), "Protocol".to_string()]);
    header.extend(props.iter().map(|p| format!("{:.0}%", 100.0 * p)));
    header.extend([
        "Avg".to_string(),
        "seeds".to_string(),
        "Δ vs base [95% CI]".to_string(),
        "W/T/L".to_string(),
        "Δ over seeds [95% t]".to_string(),
    ]);
    let body = rows
        .iter()
        .map(|r| {
            let mut row = r.params.clone();
            row.extend([r.method.clone(), r.protocol.clone()]);
            row.extend(r.per_proportion.iter().map(|&(_, m, ci)| pm(m, ci)));
            row.push(pm(r.average.1, r.average.3));
            row.push(r.average.0.to_string());
            match r.delta {
                Some((d, ci, (w, t, l))) => {
                    row.push(format!("{:+.2} [{:+.2}, {:+.2}]", 100.0 * d, 100.0 * ci.0, 100.0 * ci.1));
                    row.push(format!("{w}/{t}/{l}"));
                }
                None => row.extend(["—".to_string(), "—".to_string()]),
            }
            row.push(match r.seed_delta {
                Some((d, ci, _)) if ci.0.is_finite() && ci.1.is_finite() => {
                    format!("{:+.2} [{:+.2}, {:+.2}]", 100.0 * d, 100.0 * ci.0, 100.0 * ci.1)
                }
                Some((d, _, n)) if d.is_finite() => format!("{:+.2} (n = {n})", 100.0 * d),
                _ => "—".to_string(),
            });
            row
        })
        .collect::<Vec<_>>();
    let n = body.len();
    Table {
        caption: format!(
            "{name}: {metric} (%) on the test split, mean ± 95% t-interval half-width over seeds; Δ: CFT minus its base head per category (averaged over seeds and proportions), mean over categories with a 95% bootstrap interval; W/T/L: categories CFT improved / left unchanged / worsened; Δ over seeds: each seed's mean Δ (over categories and proportions), mean over seeds with a 95% t-interval over seeds.{}",
            if label_masks.is_empty() { String::new() } else { format!(" {label_masks}") }
        ),
        header,
        rows: body,
        links: vec![Vec::new(); n],
    }
}

/// The base head a row belongs to: `AN-LS + CFT-GA` → `AN-LS`; a base row is its own.
fn base_of(method: &str) -> &str {
    method.split(" + ").next().unwrap_or(method)
}

/// A row's base head, as a strip slot.
fn base_name(r: &TidyRow) -> String {
    base_of(&r.method).to_string()
}

/// A CFT row's method without its base (`CFT-GA`), as a strip series.
fn cft_method(r: &TidyRow) -> String {
    r.method.split_once(" + ").map_or_else(|| r.method.clone(), |(_, m)| m.to_string())
}

/// The x axis of strips by base head.
const BASE_AXIS: &str = "base head";

/// Whether CFT rows sit on more than one base head (`[cft] repair` with several bases): the
/// grids whose pages get [`per_base_tables`].
pub fn repairs_several_bases(tidy: &Tidy) -> bool {
    let mut bases: Vec<&str> = tidy.rows.iter().filter(|r| !r.is_base).map(|r| base_of(&r.method)).collect();
    bases.sort_unstable();
    bases.dedup();
    bases.len() > 1
}

/// A row's label setting: the rank of its proportion among its dataset's proportions (the
/// same percents across datasets when labels are dropped; each dataset's own known fraction
/// under real or single-positive labels).
fn setting_ranks(tidy: &Tidy) -> BTreeMap<(String, u64), usize> {
    let mut per_dataset: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for r in &tidy.rows {
        let v = per_dataset.entry(r.dataset.as_str()).or_default();
        if !v.iter().any(|&p| cft_core::same_proportion(p, r.proportion)) {
            v.push(r.proportion);
        }
    }
    let mut ranks = BTreeMap::new();
    for (ds, mut ps) in per_dataset {
        ps.sort_by(f64::total_cmp);
        for (k, p) in ps.into_iter().enumerate() {
            ranks.insert((ds.to_string(), p.to_bits()), k);
        }
    }
    ranks
}

/// One run of a base head: dataset, seed, the other varied parameters.
type RunKey<'a> = (&'a str, Option<u64>, &'a [String]);

/// The number of label settings and each row's setting (see [`setting_ranks`]).
fn settings_of(tidy: &Tidy) -> (usize, impl Fn(&TidyRow) -> usize) {
    let ranks = setting_ranks(tidy);
    let settings = ranks.values().copied().max().map_or(0, |m| m + 1);
    (settings, move |r: &TidyRow| ranks.get(&(r.dataset.clone(), r.proportion.to_bits())).copied().unwrap_or(0))
}

/// A label setting in words: `10% of the training labels known`, or each dataset's known
/// fraction where they differ (real or single-positive labels).
fn setting_label(rows: &[&TidyRow], label_source: Option<&str>) -> String {
    let mut fractions: Vec<(&str, f64)> = Vec::new();
    for r in rows {
        if !fractions.iter().any(|(d, _)| *d == r.dataset) {
            fractions.push((r.dataset.as_str(), r.proportion));
        }
    }
    let same = fractions.windows(2).all(|w| cft_core::same_proportion(w[0].1, w[1].1));
    let known = fractions.iter().map(|(d, p)| format!("{d} {:.1}%", 100.0 * p)).collect::<Vec<_>>().join(", ");
    match (label_source, fractions.first()) {
        (Some("single-positive"), _) => {
            format!("single-positive labels (one observed positive per training image; known fractions {known})")
        }
        (Some(source), _) => format!("{source} labels (known fractions {known})"),
        (None, Some((_, p))) if same => format!("{:.0}% of the training labels known", 100.0 * p),
        _ => format!("known fractions {known}"),
    }
}

/// Per label setting (known-label proportion), one table: each base head's score under both
/// protocols and each CFT method's paired Δ on it, pooled over the datasets (a category is a
/// dataset's category; its Δ is the mean over seeds and the other varied parameters), with a
/// 95% bootstrap interval over categories and W/T/L. The question the field's baselines raise:
/// does CFT still help over a better partial-label loss than "assume negative"?
pub fn per_base_tables(name: &str, metric: &str, tidy: &Tidy, label_source: Option<&str>) -> Vec<(Table, String)> {
    let (settings, rank) = settings_of(tidy);
    let mut bases: Vec<&str> = Vec::new();
    let mut methods: Vec<&str> = Vec::new();
    for r in &tidy.rows {
        let base = base_of(&r.method);
        if !bases.contains(&base) {
            bases.push(base);
        }
        if let Some((_, m)) = r.method.split_once(" + ") {
            if !methods.contains(&m) {
                methods.push(m);
            }
        }
    }
    let protocols = ["paper", "held-out"];
    (0..settings)
        .map(|k| {
            let rows_k: Vec<&TidyRow> = tidy.rows.iter().filter(|r| rank(r) == k).collect();
            let setting = setting_label(&rows_k, label_source);
            let mut header = vec!["Base".to_string()];
            header.extend(protocols.iter().map(|p| format!("{metric} ({p})")));
            for m in &methods {
                for p in protocols {
                    header.push(format!("{m} Δ ({p}) [95% CI]"));
                    header.push("W/T/L".to_string());
                }
            }
            // (method, protocol) → the bases whose Δ interval lies above zero, with their Δ.
            let mut improved: BTreeMap<(usize, usize), Vec<String>> = BTreeMap::new();
            let mut repaired = 0usize;
            let body: Vec<Vec<String>> = bases
                .iter()
                .filter(|b| rows_k.iter().any(|r| !r.is_base && base_of(&r.method) == **b))
                .map(|base| {
                    repaired += 1;
                    let mut row = vec![base.to_string()];
                    for p in protocols {
                        // Mean over (dataset, seed) of the mean over categories.
                        let mut per_run: BTreeMap<RunKey<'_>, (f64, usize)> = BTreeMap::new();
                        for r in rows_k.iter().filter(|r| r.is_base && r.method == *base && r.protocol == p) {
                            if let Some(s) = r.score {
                                let e = per_run.entry((r.dataset.as_str(), r.seed, r.params.as_slice())).or_default();
                                e.0 += s;
                                e.1 += 1;
                            }
                        }
                        let means: Vec<f64> = per_run.values().map(|(s, n)| s / *n as f64).collect();
                        let (m, _, ci) = mean_interval(&means);
                        row.push(pm(m, ci));
                    }
                    for (mi, m) in methods.iter().enumerate() {
                        let method = format!("{base} + {m}");
                        for (pi, p) in protocols.iter().enumerate() {
                            let mut per_cat: BTreeMap<(&str, &str), Vec<f64>> = BTreeMap::new();
                            for r in rows_k.iter().filter(|r| r.method == method && r.protocol == *p) {
                                if let (Some(s), Some(b)) = (r.score, r.base_score) {
                                    per_cat.entry((r.dataset.as_str(), r.category.as_str())).or_default().push(s - b);
                                }
                            }
                            if per_cat.is_empty() {
                                row.extend(["—".to_string(), "—".to_string()]);
                                continue;
                            }
                            let (mean, ci, (wins, ties, losses)) = delta_over(per_cat.values());
                            row.push(format!("{:+.2} [{:+.2}, {:+.2}]", 100.0 * mean, 100.0 * ci.0, 100.0 * ci.1));
                            row.push(format!("{wins}/{ties}/{losses}"));
                            if ci.0 > 0.0 {
                                improved.entry((mi, pi)).or_default().push(format!("{base} {:+.2}", 100.0 * mean));
                            }
                        }
                    }
                    row
                })
                .collect();
            let n = body.len();
            let reading = methods
                .iter()
                .enumerate()
                .map(|(mi, m)| {
                    let list = |pi: usize| {
                        improved.get(&(mi, pi)).map_or_else(|| "none".to_string(), |v| v.join(", "))
                    };
                    let count = |pi: usize| improved.get(&(mi, pi)).map_or(0, Vec::len);
                    format!(
                        "- {m}: its Δ interval lies above zero on {} of {repaired} bases under the paper protocol ({}), on {} under held-out selection ({}).",
                        count(0),
                        list(0),
                        count(1),
                        list(1)
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            let table = Table {
                caption: format!(
                    "{name}, {setting}: each base head's {metric} (%) on the test split (mean ± 95% t-interval over datasets × seeds of the mean over categories) and each CFT method's Δ on it (CFT minus that base, per category of every dataset averaged over seeds, mean over categories with a 95% bootstrap interval; W/T/L: categories improved / unchanged / worsened)."
                ),
                header,
                rows: body,
                links: vec![Vec::new(); n],
            };
            (table, format!("{setting}, which bases CFT improves (Δ in points):\n\n{reading}\n"))
        })
        .collect()
}

/// Where the held-out protocol removes a gain the paper protocol shows: the paper row's Δ
/// interval lies above zero, the held-out row's does not.
pub fn held_out_callouts(rows: &[SummaryRow]) -> Vec<String> {
    let mut out = Vec::new();
    for p in rows.iter().filter(|r| r.protocol == "paper" && !r.is_base) {
        let Some((dp, cip, _)) = p.delta else { continue };
        let h = rows.iter().find(|r| r.protocol == "held-out" && r.method == p.method && r.params == p.params);
        let Some((dh, cih, _)) = h.and_then(|h| h.delta) else { continue };
        if cip.0 > 0.0 && cih.0 <= 0.0 {
            let at = if p.params.is_empty() { String::new() } else { format!(" at {}", p.params.join(", ")) };
            out.push(format!(
                "{}{at}: the paper protocol shows a gain of {:+.2} points [{:+.2}, {:+.2}], the held-out protocol {:+.2} [{:+.2}, {:+.2}]: the gain does not survive selection on held-out data.",
                p.method,
                100.0 * dp,
                100.0 * cip.0,
                100.0 * cip.1,
                100.0 * dh,
                100.0 * cih.0,
                100.0 * cih.1
            ));
        }
    }
    out
}

/// The x-axis text of a varied parameter: says so when other parameters (besides the dataset)
/// vary too, since each point then averages over their values.
fn axis_text(param_keys: &[String], k: usize, what: &str) -> String {
    let others = param_keys.iter().enumerate().filter(|(i, p)| *i != k && p.as_str() != "data.dataset").count();
    let mut notes: Vec<&str> = Vec::new();
    if !what.is_empty() {
        notes.push(what);
    }
    if others > 0 {
        notes.push("other varied parameters averaged");
    }
    if notes.is_empty() {
        param_keys[k].clone()
    } else {
        format!("{} ({})", param_keys[k], notes.join("; "))
    }
}

/// Metric against one varied parameter, for the rows of one dataset: the first base head and
/// every CFT method (one colour and marker each; solid: paper protocol, dashed: held-out),
/// averaged over the proportions; bands: the CFT rows' 95% intervals over seeds. Other varied
/// parameters are averaged out.
fn metric_vs_param(title: &str, metric: &str, param_keys: &[String], rows: &[&SummaryRow], k: usize) -> LineChart {
    let mut values: Vec<String> = Vec::new();
    let mut methods: Vec<String> = Vec::new();
    let first_base = rows.iter().find(|r| r.is_base).map(|r| r.method.clone());
    for r in rows {
        if !values.contains(&r.params[k]) {
            values.push(r.params[k].clone());
        }
        let shown = !r.is_base || Some(&r.method) == first_base.as_ref();
        if shown && !methods.contains(&r.method) {
            methods.push(r.method.clone());
        }
    }
    let mut series = Vec::new();
    for (mi, method) in methods.iter().enumerate() {
        for protocol in ["paper", "held-out"] {
            let pts: Vec<(f64, f64, f64, f64)> = values
                .iter()
                .enumerate()
                .filter_map(|(x, v)| {
                    let sel: Vec<&&SummaryRow> = rows
                        .iter()
                        .filter(|r| &r.method == method && r.protocol == protocol && &r.params[k] == v)
                        .collect();
                    if sel.is_empty() {
                        return None;
                    }
                    let n = sel.len() as f64;
                    let m = sel.iter().map(|r| r.average.1).sum::<f64>() / n;
                    let lo = sel.iter().map(|r| r.average.3 .0).sum::<f64>() / n;
                    let hi = sel.iter().map(|r| r.average.3 .1).sum::<f64>() / n;
                    Some((x as f64, 100.0 * m, 100.0 * lo, 100.0 * hi))
                })
                .collect();
            if pts.is_empty() {
                continue;
            }
            let is_base = Some(method) == first_base.as_ref();
            series.push(Series {
                dashed: protocol == "held-out",
                marker: Some(MARKERS[mi % MARKERS.len()]),
                band: if is_base { Vec::new() } else { pts.iter().map(|p| (p.0, p.2, p.3)).collect() },
                ..Series::line(format!("{method} [{protocol}]"), pts.iter().map(|p| (p.0, p.1)).collect(), mi)
            });
        }
    }
    LineChart {
        title: title.to_string(),
        x_desc: axis_text(param_keys, k, "values as given, evenly spaced"),
        y_desc: format!("test {metric} (%), mean of proportions"),
        series,
        x_slots: values,
    }
}

/// Per-category Δ (CFT − base, mean over seeds and proportions) under `protocol`, one strip per
/// value of parameter `k` (or one per dataset), one colour per CFT method.
fn delta_strips(
    title: &str,
    metric: &str,
    tidy: &Tidy,
    rows: &[&TidyRow],
    k: Option<usize>,
    protocol: &str,
) -> LineChart {
    let key = |r: &TidyRow| k.map_or_else(|| r.dataset.clone(), |k| r.params[k].clone());
    let x_desc = k.map_or_else(|| "dataset".to_string(), |k| axis_text(&tidy.param_keys, k, ""));
    strip_chart(title, metric, x_desc, rows, protocol, &key, &|r: &TidyRow| r.method.clone())
}

/// Strips of per-category Δ: one slot per `slot(row)` on the x axis, one series per
/// `series(row)` side by side in each slot, a dot per (dataset, category) averaged over the
/// rest (seeds, proportions).
fn strip_chart(
    title: &str,
    metric: &str,
    x_desc: String,
    rows: &[&TidyRow],
    protocol: &str,
    slot: &dyn Fn(&TidyRow) -> String,
    series_of: &dyn Fn(&TidyRow) -> String,
) -> LineChart {
    let mut slots: Vec<String> = Vec::new();
    let mut methods: Vec<String> = Vec::new();
    for r in rows.iter().filter(|r| !r.is_base && r.protocol == protocol) {
        if !slots.contains(&slot(r)) {
            slots.push(slot(r));
        }
        if !methods.contains(&series_of(r)) {
            methods.push(series_of(r));
        }
    }
    let width = 0.6 / methods.len().max(1) as f64;
    let series = methods
        .iter()
        .enumerate()
        .map(|(mi, m)| {
            let mut per: BTreeMap<(usize, &str, &str), Vec<f64>> = BTreeMap::new();
            for r in rows.iter().filter(|r| !r.is_base && &series_of(r) == m && r.protocol == protocol) {
                let x = slots.iter().position(|s| *s == slot(r)).unwrap_or(0);
                if let (Some(s), Some(b)) = (r.score, r.base_score) {
                    per.entry((x, r.dataset.as_str(), r.category.as_str())).or_default().push(100.0 * (s - b));
                }
            }
            let points = per
                .iter()
                .map(|((x, _, _), v)| {
                    (*x as f64 - 0.3 + width * (mi as f64 + 0.5), v.iter().sum::<f64>() / v.len() as f64)
                })
                .collect();
            Series {
                points_only: true,
                marker: Some([Marker::Circle, Marker::Triangle, Marker::Square][mi % 3]),
                ..Series::line(m.clone(), points, mi + 1)
            }
        })
        .collect();
    LineChart {
        title: title.to_string(),
        x_desc,
        y_desc: format!("Δ{metric} vs base head (points), one dot per category"),
        series,
        x_slots: slots,
    }
}

/// Writes an ablation's report into `dir`: `summary.{md,csv,tex}`, `metric_vs_<param>.png/.svg`
/// for each varied parameter, `delta_distribution.png/.svg` and `README.md`; returns the files.
pub fn write_ablation_report(dir: &Path, meta: &AblationMeta, tidy: &Tidy) -> Result<Vec<PathBuf>, ReportError> {
    let (name, metric, description) = (meta.name.as_str(), meta.metric.as_str(), meta.description.as_str());
    let rows = summarize(tidy)?;
    let table = summary_table(name, metric, tidy, &rows, &meta.label_masks);
    let mut written = Vec::new();
    for (file, text) in
        [("summary.md", table.to_markdown()), ("summary.csv", table.to_csv()), ("summary.tex", table.to_latex())]
    {
        let p = dir.join(file);
        cft_data::write_atomic(&p, text.as_bytes())?;
        written.push(p);
    }
    let mut md = format!("# Ablation: {name}\n\n{description}\n\n");
    md.push_str("Generated by `cft report` from [`tidy.csv`](tidy.csv) (one row per cell × seed × method × protocol × proportion × category; every number below is computed from it).\n\n");
    md.push_str(&table.to_markdown());
    md.push_str("\nAlso as [CSV](summary.csv) and [LaTeX](summary.tex).\n\n");
    if repairs_several_bases(tidy) {
        md.push_str("## CFT on each base head\n\n");
        md.push_str("Pooled over the datasets, one table per label setting (the summary above keeps the datasets apart and averages the proportions).\n\n");
        for (t, reading) in per_base_tables(name, metric, tidy, meta.label_source.as_deref()) {
            md.push_str(&t.to_markdown());
            md.push('\n');
            md.push_str(&reading);
            md.push('\n');
        }
        let cft_rows: Vec<&TidyRow> = tidy.rows.iter().filter(|r| !r.is_base).collect();
        let skipped = cft_rows.iter().filter(|r| r.epochs_run == Some(0)).count();
        if skipped > 0 {
            md.push_str(&format!(
                "CFT was skipped on {skipped} of {} category runs ({:.1}%): nothing to fit, a category without both known positives and known negatives in its training labels (or its selection labels); a skipped category keeps its base head's weights, Δ = 0.\n\n",
                cft_rows.len(),
                100.0 * skipped as f64 / cft_rows.len() as f64
            ));
        }
    }
    let callouts = held_out_callouts(&rows);
    md.push_str("## Paper vs held-out selection\n\n");
    if callouts.is_empty() {
        md.push_str(
            "No CFT row whose paper-protocol gain (Δ interval above zero) disappears under the held-out protocol.\n\n",
        );
    } else {
        for c in &callouts {
            md.push_str(&format!("- {c}\n"));
        }
        md.push('\n');
    }
    // Figures: one panel per dataset when the grid varies the dataset.
    let dk = tidy.param_keys.iter().position(|k| k == "data.dataset");
    let mut datasets: Vec<String> = Vec::new();
    for r in &tidy.rows {
        if !datasets.contains(&r.dataset) {
            datasets.push(r.dataset.clone());
        }
    }
    let panel_size = |n: usize| (FIGURE_SIZE.0, FIGURE_SIZE.1 * 4 / 5 * n as u32 + FIGURE_SIZE.1 / 5);
    for k in (0..tidy.param_keys.len()).filter(|&k| Some(k) != dk) {
        let key = &tidy.param_keys[k];
        let panels: Vec<LineChart> = datasets
            .iter()
            .map(|ds| {
                let sel: Vec<&SummaryRow> = rows.iter().filter(|r| dk.is_none_or(|dk| &r.params[dk] == ds)).collect();
                metric_vs_param(&format!("{name} on {ds}: {metric} against {key}"), metric, &tidy.param_keys, &sel, k)
            })
            .collect();
        let stem = format!("metric_vs_{}", key.replace('.', "_"));
        let n = panels.len();
        written.extend(render(&dir.join(&stem), panel_size(n), &Stacked(panels))?);
        md.push_str(&format!("![{metric} against {key}]({stem}.png)\n\n"));
    }
    // Δ strips under both protocols: the held-out panels show what survives honest selection.
    // With CFT on several bases, one slot per base and one colour per CFT method in a panel
    // per dataset (a colour per `<Base> + CFT-<method>` row would repeat past 21 rows).
    let several = repairs_several_bases(tidy);
    let first = (0..tidy.param_keys.len()).find(|&k| Some(k) != dk);
    let mut strips: Vec<LineChart> = Vec::new();
    let groups: Vec<Option<&String>> = match first {
        Some(_) => datasets.iter().map(Some).collect(),
        None if several => datasets.iter().map(Some).collect(),
        None => vec![None],
    };
    for ds in groups {
        for protocol in ["paper", "held-out"] {
            let sel: Vec<&TidyRow> = tidy.rows.iter().filter(|r| ds.is_none_or(|d| &r.dataset == d)).collect();
            let title = match ds {
                Some(d) => format!("{name} on {d}: per-category Δ{metric}, {protocol} protocol"),
                None => format!("{name}: per-category Δ{metric}, {protocol} protocol"),
            };
            strips.push(if several {
                strip_chart(&title, metric, BASE_AXIS.to_string(), &sel, protocol, &base_name, &cft_method)
            } else {
                delta_strips(&title, metric, tidy, &sel, first, protocol)
            });
        }
    }
    let n = strips.len();
    let size = if several { (FIGURE_SIZE.0 * 4 / 3, panel_size(n).1) } else { panel_size(n) };
    written.extend(render(&dir.join("delta_distribution"), size, &Stacked(strips))?);
    md.push_str(&format!("![per-category Δ{metric}, paper and held-out protocols](delta_distribution.png)\n"));
    if several {
        // One slot per base head, one colour per CFT method: readable with any number of bases.
        let (settings, rank) = settings_of(tidy);
        let mut panels = Vec::new();
        for k in 0..settings {
            let sel: Vec<&TidyRow> = tidy.rows.iter().filter(|r| rank(r) == k).collect();
            let setting = match (meta.label_source.as_deref(), sel.first()) {
                (Some(source), _) => format!("{source} labels"),
                (None, Some(r)) => format!("{:.0}% known", 100.0 * r.proportion),
                (None, None) => String::new(),
            };
            for protocol in ["paper", "held-out"] {
                let title = format!("{name}, {setting}: Δ{metric} by base head, {protocol} protocol");
                let x_desc = "base head (datasets pooled: one dot per dataset's category)".to_string();
                panels.push(strip_chart(&title, metric, x_desc, &sel, protocol, &base_name, &cft_method));
            }
        }
        let n = panels.len();
        let size = (FIGURE_SIZE.0 * 4 / 3, panel_size(n).1);
        written.extend(render(&dir.join("delta_by_base"), size, &Stacked(panels))?);
        md.push_str(&format!(
            "\n![per-category Δ{metric} of each CFT method on each base head, per label setting and protocol](delta_by_base.png)\n"
        ));
    }
    let p = dir.join("README.md");
    cft_data::write_atomic(&p, md.as_bytes())?;
    written.push(p);
    Ok(written)
}

/// Rebuilds every ablation under `root` (folders with `tidy.csv` and `ablation.json`) into the
/// same folder names under `out`, and the index `out/README.md`; returns the files written
/// (none when there is no ablation).
pub fn write_ablations_index(root: &Path, out: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let Ok(entries) = std::fs::read_dir(root) else { return Ok(Vec::new()) };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("tidy.csv").is_file() && p.join("ablation.json").is_file())
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        return Ok(Vec::new());
    }
    let mut written = Vec::new();
    let mut md = String::from("# Ablations\n\nEach folder is one grid spec from `experiments/ablations/`, run on the bundled real datasets; its page has the summary table (mean ± 95% interval over seeds, paired Δ with bootstrap intervals, win/tie/loss), the metric against each varied parameter and the per-category Δ distribution. Regenerated by `cft report` from each folder's `tidy.csv`.\n\n| ablation | what it varies | cells × seeds | page |\n|---|---|---:|---|\n");
    for d in &dirs {
        let meta_path = d.join("ablation.json");
        let meta: AblationMeta =
            serde_json::from_str(&cft_data::fsutil::read_to_string(&meta_path)?).map_err(|e| invalid(&meta_path, e))?;
        let tidy = read_tidy_csv(&d.join("tidy.csv"))?;
        check_tidy_against_grid(d, &tidy)?;
        let folder = d.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let target = out.join(&folder);
        std::fs::create_dir_all(&target).map_err(|e| cft_data::DataError::io(&target, e))?;
        written.extend(write_ablation_report(&target, &meta, &tidy)?);
        md.push_str(&format!(
            "| {} | {} | {} | [{folder}/README.md]({folder}/README.md) |\n",
            meta.name,
            if tidy.param_keys.is_empty() { "seeds only".to_string() } else { tidy.param_keys.join(", ") },
            meta.cells
        ));
    }
    let p = out.join("README.md");
    cft_data::write_atomic(&p, md.as_bytes())?;
    written.push(p);
    Ok(written)
}

/// A tidy table must hold exactly the cells its `grid.json` lists (same cell, seed and
/// parameter values, the same varied keys), so a hand-edited or foreign table is refused rather
/// than summarised under the grid's name. Without a `grid.json` there is nothing to check.
fn check_tidy_against_grid(dir: &Path, tidy: &Tidy) -> Result<(), ReportError> {
    let grid_path = dir.join("grid.json");
    if !grid_path.is_file() {
        return Ok(());
    }
    let grid: serde_json::Value =
        serde_json::from_str(&cft_data::fsutil::read_to_string(&grid_path)?).map_err(|e| invalid(&grid_path, e))?;
    let keys: Vec<String> = grid["param_keys"]
        .as_array()
        .map(|a| a.iter().filter_map(|k| k.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let tidy_path = dir.join("tidy.csv");
    if keys != tidy.param_keys {
        return Err(invalid(
            &tidy_path,
            format!("varies {:?}, but {} says {:?}", tidy.param_keys, grid_path.display(), keys),
        ));
    }
    let listed: std::collections::BTreeSet<(String, Option<u64>, Vec<String>)> = grid["cells"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let params = c["params"].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_string));
            (c["cell"].as_str().unwrap_or_default().to_string(), c["seed"].as_u64(), params.collect())
        })
        .collect();
    let found: std::collections::BTreeSet<(String, Option<u64>, Vec<String>)> =
        tidy.rows.iter().map(|r| (r.cell.clone(), r.seed, r.params.clone())).collect();
    if let Some((cell, seed, params)) = found.difference(&listed).next() {
        return Err(invalid(
            &tidy_path,
            format!(
                "cell {cell} (seed {seed:?}) with values {params:?} is not a cell of {}: the table was edited or belongs to another grid",
                grid_path.display()
            ),
        ));
    }
    if let Some((cell, seed, _)) = listed.difference(&found).next() {
        return Err(invalid(&tidy_path, format!("cell {cell} (seed {seed:?}) of {} has no rows", grid_path.display())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cell: &str, seed: u64, p: &str, method: &str, cat: &str, score: f64, base: f64) -> TidyRow {
        TidyRow {
            dataset: "d".into(),
            cell: cell.into(),
            seed: Some(seed),
            params: vec![p.into()],
            method: method.into(),
            protocol: "paper".into(),
            proportion: 0.5,
            category: cat.into(),
            is_base: method == "AN",
            score: Some(score),
            base_score: Some(base),
            selection_original: None,
            selection_best: None,
            best_epoch: None,
            epochs_run: None,
        }
    }

    #[test]
    fn undefined_scores_and_single_values_never_panic_nor_show_an_interval() {
        // Every score undefined (e.g. no positive in any validation task): no means, no panic.
        let mut rows =
            vec![row("c000", 0, "1e-4", "AN", "x", 0.5, 0.5), row("c000", 0, "1e-4", "AN + CFT-GA", "x", 0.6, 0.5)];
        for r in &mut rows {
            r.score = None;
            r.base_score = None;
        }
        let tidy = Tidy { param_keys: vec!["cft.bp_lr".into()], rows };
        let sum = summarize(&tidy).unwrap();
        let t = summary_table("d", "mAP", &tidy, &sum, "");
        assert!(t.rows.iter().all(|r| r[3] == "—"), "{:?}", t.rows);
        // One seed: the value with "n = 1", never "± 0.00".
        let tidy =
            Tidy { param_keys: vec!["cft.bp_lr".into()], rows: vec![row("c000", 0, "1e-4", "AN", "x", 0.5, 0.5)] };
        let sum = summarize(&tidy).unwrap();
        let t = summary_table("d", "mAP", &tidy, &sum, "");
        assert_eq!(t.rows[0][3], "50.00 (n = 1)");
    }

    #[test]
    fn summary_statistics_equal_independent_computations() {
        // Two categories, three seeds: per-seed means 0.5, 0.6, 0.7 for the base head.
        let base = [(0.4, 0.6), (0.5, 0.7), (0.6, 0.8)];
        let mut rows = Vec::new();
        for (s, (a, b)) in base.iter().enumerate() {
            rows.push(row("c000", s as u64, "1e-4", "AN", "x", *a, *a));
            rows.push(row("c000", s as u64, "1e-4", "AN", "y", *b, *b));
            rows.push(row("c000", s as u64, "1e-4", "AN + CFT-GA", "x", a + 0.1, *a));
            rows.push(row("c000", s as u64, "1e-4", "AN + CFT-GA", "y", *b, *b));
        }
        let tidy = Tidy { param_keys: vec!["cft.bp_lr".into()], rows };
        let sum = summarize(&tidy).unwrap();
        let an = sum.iter().find(|r| r.method == "AN").unwrap();
        // Mean 0.6, sd 0.1, t(0.975, 2) = 4.303: half-width 4.303 · 0.1 / √3.
        let hw = 4.303 * 0.1 / 3f64.sqrt();
        assert_eq!(an.average.0, 3);
        assert!((an.average.1 - 0.6).abs() < 1e-12 && (an.average.2 - 0.1).abs() < 1e-12);
        assert!((an.average.3 .0 - (0.6 - hw)).abs() < 1e-12 && (an.average.3 .1 - (0.6 + hw)).abs() < 1e-12);
        let ga = sum.iter().find(|r| r.method == "AN + CFT-GA").unwrap();
        let (d, ci, wtl) = ga.delta.unwrap();
        // Δ: x gains 0.1 at every seed, y nothing: mean 0.05; one win, one tie.
        assert!((d - 0.05).abs() < 1e-12, "{d}");
        assert_eq!(wtl, (1, 1, 0));
        assert!(ci.0 >= -1e-12 && ci.1 <= 0.1 + 1e-12 && ci.0 <= d && d <= ci.1, "{ci:?}");
        // Over seeds: every seed's Δ is (0.1 + 0) / 2 = 0.05, so the t-interval has zero width.
        let (sd, sci, n) = ga.seed_delta.unwrap();
        assert_eq!(n, 3);
        assert!((sd - 0.05).abs() < 1e-12 && (sci.1 - sci.0).abs() < 1e-12, "{sd} {sci:?}");
        // The table shows them in percent.
        let t = summary_table("d", "mAP", &tidy, &sum, "");
        let line = t.rows.iter().find(|r| r[1] == "AN").unwrap();
        assert_eq!(line[3], format!("{:.2} ± {:.2}", 60.0, 100.0 * hw));
        // A CSV round trip keeps every row.
        let dir = tempfile::tempdir().unwrap();
        tidy.write_csv(&dir.path().join("tidy.csv")).unwrap();
        assert_eq!(read_tidy_csv(&dir.path().join("tidy.csv")).unwrap(), tidy);
        // The Parquet file holds the same frame.
        tidy.write_parquet(&dir.path().join("tidy.parquet")).unwrap();
        let back = ParquetReader::new(std::fs::File::open(dir.path().join("tidy.parquet")).unwrap()).finish().unwrap();
        assert_eq!(back, tidy.to_frame().unwrap());
    }

    #[test]
    fn held_out_callout_when_the_paper_gain_does_not_survive() {
        let mk = |protocol: &str, ci: (f64, f64)| SummaryRow {
            params: vec![],
            method: "AN + CFT-BP-BCE".into(),
            protocol: protocol.into(),
            is_base: false,
            per_proportion: vec![],
            average: (5, 0.6, 0.01, (0.59, 0.61)),
            delta: Some(((ci.0 + ci.1) / 2.0, ci, (3, 0, 3))),
            seed_delta: None,
        };
        let c = held_out_callouts(&[mk("paper", (0.01, 0.03)), mk("held-out", (-0.01, 0.01))]);
        assert_eq!(c.len(), 1);
        assert!(c[0].contains("does not survive"), "{}", c[0]);
        assert!(held_out_callouts(&[mk("paper", (0.01, 0.03)), mk("held-out", (0.005, 0.02))]).is_empty());
    }
}
