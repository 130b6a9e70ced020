//! `reports/README.md`: the index of everything `cft report` regenerates: our runs, the paper's
//! tables with published numbers beside ours (or why ours are missing), figures and speed.

use crate::dataset_report::{read_results, write_dataset_report, ReportError, FIGURE_SIZE};
use crate::plots::{render, LineChart, LogBars, Series, Stacked, MARKERS};
use crate::published_tables::{chexpert_table, coco_table, openimages_table, read_chexpert_scored, Ours};
use crate::reference::{read_csv, Published};
use crate::table::Table;
use cft_results::ExperimentResults;
use polars::prelude::*;
use std::path::{Path, PathBuf};

/// Why each paper dataset has no run of ours here (shown in "not run" cells).
pub const NOT_PROVIDED: &str =
    "dataset not provided here (bring the images and a checkpoint: README, \"Reproduce the paper's tables\")";

/// Our side of a paper table: the run that fills it (links prefixed), or why there is none.
fn ours<'a>(run: Option<&'a (String, ExperimentResults)>, prefix: &'a str) -> Ours<'a> {
    match run {
        Some((_, res)) => Ours::Run(res, prefix),
        None => Ours::NotRun(NOT_PROVIDED),
    }
}

/// Reads every `<dir>/<dataset>/results.json`, sorted by folder name.
pub fn find_runs(dir: &Path) -> Result<Vec<(String, ExperimentResults)>, ReportError> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(out) };
    let mut dirs: Vec<PathBuf> =
        entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.join("results.json").is_file()).collect();
    dirs.sort();
    for d in dirs {
        let name = d.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        out.push((name, read_results(&d.join("results.json"))?));
    }
    Ok(out)
}

fn write_table(dir: &Path, stem: &str, t: &Table, written: &mut Vec<PathBuf>) -> Result<(), ReportError> {
    for (ext, text) in [("md", t.to_markdown()), ("csv", t.to_csv()), ("tex", t.to_latex())] {
        let p = dir.join(format!("{stem}.{ext}"));
        cft_data::write_atomic(&p, text.as_bytes())?;
        written.push(p);
    }
    Ok(())
}

/// Validation-score histories at the first proportion, from `runs/<unit>-history.csv` (read
/// with polars): for the two categories CFT changed most, one panel each, every method.
fn history_figure(dir: &Path, res: &ExperimentResults) -> Result<Option<Stacked>, ReportError> {
    let Some(p) = res.proportions.first() else { return Ok(None) };
    // The first paper-protocol cell's unit file, and its history beside it.
    let Some(unit_rel) = res
        .rows
        .iter()
        .filter(|r| r.protocol == cft_results::Protocol::Paper)
        .find_map(|r| r.cells.first().and_then(|c| c.run.clone()))
    else {
        return Ok(None);
    };
    let unit = dir.join(&unit_rel);
    let path = dir.join(unit_rel.trim_end_matches(".json").to_string() + "-history.csv");
    if !path.is_file() {
        return Ok(None);
    }
    let df = read_csv(&path)?;
    // The epoch limit of the run, from its unit file (absent: no run is marked as stopped by it).
    let max_epochs = std::fs::read_to_string(&unit)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["config"]["max_epochs"].as_u64());
    let get = |name: &str| -> Result<Column, ReportError> {
        df.column(name).cloned().map_err(|e| ReportError::Invalid { path: path.clone(), message: e.to_string() })
    };
    let (method, category, epoch, score) = (get("method")?, get("category")?, get("epoch")?, get("valid_score")?);
    let inv = |e: PolarsError| ReportError::Invalid { path: path.clone(), message: e.to_string() };
    let method = method.str().map_err(inv)?.clone();
    let category = category.cast(&DataType::Int64).map_err(inv)?;
    let category = category.i64().map_err(inv)?.clone();
    let epoch = epoch.cast(&DataType::Float64).map_err(inv)?;
    let epoch = epoch.f64().map_err(inv)?.clone();
    let score = score.cast(&DataType::Float64).map_err(inv)?;
    let score = score.f64().map_err(inv)?.clone();
    // Categories ranked by the largest change of validation score over the run.
    let mut change: Vec<(usize, f64)> = (0..res.categories.len()).map(|k| (k, 0.0)).collect();
    let mut first: std::collections::HashMap<(String, i64), f64> = Default::default();
    for i in 0..df.height() {
        let (Some(m), Some(c), Some(v)) = (method.get(i), category.get(i), score.get(i)) else { continue };
        let f = *first.entry((m.to_string(), c)).or_insert(v);
        if let Some(e) = change.get_mut(c as usize) {
            e.1 = e.1.max((v - f).abs());
        }
    }
    change.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut methods: Vec<String> = Vec::new();
    for m in (0..method.len()).filter_map(|i| method.get(i)) {
        if !methods.iter().any(|x| x == m) {
            methods.push(m.to_string());
        }
    }
    let charts = change
        .iter()
        .take(2)
        .map(|&(k, _)| {
            let series = methods
                .iter()
                .enumerate()
                .map(|(mi, m)| {
                    let points: Vec<(f64, f64)> = (0..df.height())
                        .filter(|&i| method.get(i) == Some(m.as_str()) && category.get(i) == Some(k as i64))
                        .filter_map(|i| Some((epoch.get(i)?, 100.0 * score.get(i)?)))
                        .collect();
                    // The run reached the epoch limit: patience had not run out, it was still improving.
                    let open_end = max_epochs.is_some_and(|m| points.last().is_some_and(|p| p.0 + 1.0 >= m as f64));
                    Series {
                        marker: Some(MARKERS[(mi + 2) % MARKERS.len()]),
                        open_end,
                        ..Series::line(m.clone(), points, mi + 2)
                    }
                })
                .collect();
            LineChart {
                title: match &res.real_labels {
                    Some(_) => format!("{}: {}, real partial labels, paper protocol", res.dataset, res.categories[k]),
                    None => format!(
                        "{}: {} at {:.0}% known labels, paper protocol",
                        res.dataset,
                        res.categories[k],
                        100.0 * p
                    ),
                },
                x_desc: "epoch (GA: generation)".into(),
                // Under the paper protocol the selection set is the evaluation split.
                y_desc: format!(
                    "selection score: {} {} (%)",
                    res.evaluation().trim_end_matches(" split"),
                    res.metric.trim_start_matches('m')
                ),
                series,
                x_slots: Vec::new(),
            }
        })
        .collect();
    Ok(Some(Stacked(charts)))
}

/// One run found under the runs folder: its folder name and results.
type Run = (String, ExperimentResults);

/// Writes the index, the published tables (`tables/`), every dataset report and the figures.
pub fn write_index(runs_dir: &Path, out: &Path, reference_dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let mut written = Vec::new();
    let published = Published::load(&reference_dir.join("paper_results.csv"))?;
    let runs = find_runs(runs_dir)?;
    let mut md = String::from("# CFT reports\n\nGenerated by `cft report` from the files under this folder: every number of ours is computed by the code and read back from a run's `results.json`; published numbers come from [`reference/paper_results.csv`](reference/paper_results.csv) (loaded with polars; sources at the end). Nothing is recomputed by `cft report`.\n\n");
    // The paper's tables: the run that fills each, if any (the first by folder name).
    let run_for = |table: &str| runs.iter().find(|(_, r)| r.paper_table.as_deref() == Some(table));
    let (coco, oi, cx) = (run_for("coco2014"), run_for("openimages_v3"), run_for("chexpert"));
    md.push_str(&runs_overview(&runs, [coco.is_some(), oi.is_some(), cx.is_some()]));
    dataset_sections(runs_dir, out, &runs, &mut md, &mut written)?;
    let tables = out.join("tables");
    let sources = paper_table_sections(runs_dir, &tables, &published, [coco, oi, cx], &mut md, &mut written)?;
    // Ablations (grids of `experiments/ablations/`), each regenerated from its tidy table.
    let ablations = crate::ablation::write_ablations_index(&runs_dir.join("ablations"), &out.join("ablations"))?;
    if !ablations.is_empty() {
        md.push_str("## Ablations

Grids over CFT's, the base heads' and the protocol's parameters on the bundled datasets, 5 seeds each, with intervals: [ablations/README.md](ablations/README.md).

");
        written.extend(ablations);
    }
    written.extend(render(
        &tables.join("coco_vs_known"),
        (FIGURE_SIZE.0, FIGURE_SIZE.1),
        &coco_vs_known(&published, coco),
    )?);
    md.push_str("![published partial-COCO results against the known-label proportion](tables/coco_vs_known.png)\n\n");
    speed_section(out, reference_dir, &mut md, &mut written)?;
    md.push_str("## Sources of published numbers\n\n");
    for (i, s) in sources.iter().enumerate() {
        md.push_str(&format!("{}. {s}\n", i + 1));
    }
    let p = out.join("README.md");
    cft_data::write_atomic(&p, md.as_bytes())?;
    written.push(p);
    Ok(written)
}

/// "What was run here": one line per run, and one per paper table no run fills
/// (`present`: COCO, OpenImages, CheXpert).
fn runs_overview(runs: &[Run], present: [bool; 3]) -> String {
    let mut md = String::new();
    md.push_str("## What was run here\n\n| dataset | ours | report |\n|---|---|---|\n");
    for (name, res) in runs {
        let labels = match &res.real_labels {
            Some(l) => format!("{l} labels"),
            None => format!("{} proportions", res.proportions.len()),
        };
        md.push_str(&format!(
            "| {name} | {labels} × {} rows ([manifest]({name}/manifest.json)) | [{name}/README.md]({name}/README.md) |\n",
            res.rows.len()
        ));
    }
    let [coco, oi, cx] = present;
    for (label, present) in [("MS-COCO 2014 (partial)", coco), ("OpenImages V3", oi), ("CheXpert", cx)] {
        if !present {
            md.push_str(&format!("| {label} | not run: {NOT_PROVIDED} | — |\n"));
        }
    }
    md.push('\n');
    md
}

/// Each run's dataset report, and its section of the index (table, figures, histories).
fn dataset_sections(
    runs_dir: &Path,
    out: &Path,
    runs: &[Run],
    md: &mut String,
    written: &mut Vec<PathBuf>,
) -> Result<(), ReportError> {
    for (name, res) in runs {
        let dir = out.join(name);
        written.extend(write_dataset_report(&dir, res)?);
        let labels = if res.real_labels.is_some() {
            "the dataset's real partial labels"
        } else {
            "partial labels simulated by the reference protocol"
        };
        md.push_str(&format!("## {name}: {labels}\n\n"));
        md.push_str(&crate::table::partial_label_table(res, &format!("{name}/")).to_markdown());
        match &res.paper_table {
            None => md.push_str(&format!("\nThe paper reports no `{name}` numbers, so there is nothing published to set beside these; the partial-COCO table below has the paper's.\n\n")),
            Some(t) => md.push_str(&format!("\nThis run is the \"ours\" row of the `{t}` table below, beside the paper's numbers.\n\n")),
        }
        md.push_str(&format!("![{name} {} vs known labels]({name}/score_vs_known.png)\n\n", res.metric));
        if let Some(p) = res.proportions.first() {
            md.push_str(&format!("![{name} per-category delta]({name}/delta_at_{:02}.png)\n\n", cft_core::percent(*p)));
        }
        if let Some(fig) = history_figure(&runs_dir.join(name), res)? {
            let stem = dir.join("history");
            written.extend(render(&stem, (FIGURE_SIZE.0, 2 * FIGURE_SIZE.1 * 4 / 5), &fig)?);
            md.push_str(&format!(
                "![{name}: selection-score histories (paper protocol: scored on the {})]({name}/history.png)\n\n",
                res.evaluation()
            ));
        }
    }
    Ok(())
}

/// The paper's tables (COCO, OpenImages, CheXpert) with our rows where a run fills them,
/// written under `tables/` and into the index; returns the published numbers' sources.
fn paper_table_sections(
    runs_dir: &Path,
    tables: &Path,
    published: &Published,
    [coco, oi, cx]: [Option<&Run>; 3],
    md: &mut String,
    written: &mut Vec<PathBuf>,
) -> Result<Vec<String>, ReportError> {
    let mut sources = Vec::new();
    // Links from `tables/`: `../<run>/runs/…`; the index copy drops the `../`.
    let prefix = |run: Option<&Run>| run.map_or(String::new(), |(n, _)| format!("../{n}/"));
    let (p_coco, p_oi, p_cx) = (prefix(coco), prefix(oi), prefix(cx));
    let t_coco = coco_table(published, ours(coco, &p_coco), &mut sources);
    let t_oi = openimages_table(published, ours(oi, &p_oi), &mut sources);
    // Prediction files scored here (`cft chexpert-score --json <runs>/chexpert/scored/<name>.json`).
    let scored = read_chexpert_scored(&runs_dir.join("chexpert/scored"))?;
    let t_cx = chexpert_table(published, ours(cx, &p_cx), &scored, &mut sources);
    for (stem, title, t, run) in [
        ("coco", "Partial MS-COCO 2014", &t_coco, coco),
        ("openimages", "OpenImages V3", &t_oi, oi),
        ("chexpert", "CheXpert", &t_cx, cx),
    ] {
        write_table(tables, stem, t, written)?;
        let mut here = t.clone();
        for link in here.links.iter_mut().flatten().flatten() {
            *link = link.trim_start_matches("../").to_string();
        }
        md.push_str(&format!("## {title}\n\n{}\n", here.to_markdown()));
        if let Some((name, res)) = run {
            md.push_str(&format!(
                "Ours: the `{name}` run ([report]({name}/README.md), [manifest]({name}/manifest.json)), {} × {} protocols. {}\n\n",
                res.metric,
                res.rows.iter().map(|r| r.protocol).collect::<std::collections::BTreeSet<_>>().len(),
                res.notes.join(" ")
            ));
        }
        md.push_str(&format!("Also as [CSV](tables/{stem}.csv) and [LaTeX](tables/{stem}.tex).\n\n"));
    }
    Ok(sources)
}

/// Published peers (and ours, when run) against the known-label proportion on partial COCO.
fn coco_vs_known(published: &Published, coco: Option<&Run>) -> LineChart {
    let coco_rows = published.partial_coco();
    let mut series: Vec<Series> = coco_rows
        .iter()
        .filter(|r| r.values.keys().any(|k| k.ends_with('%')))
        .enumerate()
        .map(|(i, r)| {
            let points = (1..=9)
                .filter_map(|k| r.values.get(&format!("{}%", 10 * k)).map(|v| (f64::from(10 * k), *v)))
                .collect();
            // Colour i % 7 and marker i % 5: no two series share both.
            Series {
                dashed: true,
                marker: Some(MARKERS[i % MARKERS.len()]),
                ..Series::line(r.method.clone(), points, i)
            }
        })
        .collect();
    // The paper publishes CFT's average over the proportions only: a flat line at that value.
    for r in coco_rows.iter().filter(|r| r.method.starts_with("CFT")) {
        if let Some(avg) = r.values.get("Avg") {
            series.push(Series::line(
                format!("CFT (paper): {avg:.2}, average over 10–90%"),
                vec![(10.0, *avg), (90.0, *avg)],
                6,
            ));
        }
    }
    if let Some((_, res)) = coco {
        let first = series.len();
        for (i, r) in res.rows.iter().enumerate() {
            let points = r.cells.iter().filter_map(|c| c.mean.map(|m| (100.0 * c.proportion, 100.0 * m))).collect();
            let label = format!("ours: {} [{}]", r.method, r.protocol.label());
            series.push(Series {
                marker: Some(MARKERS[(first + i) % MARKERS.len()]),
                ..Series::line(label, points, first + i)
            });
        }
    }
    LineChart {
        title: format!(
            "Partial MS-COCO 2014: published peers{}",
            if coco.is_some() { " and ours" } else { " (ours not run)" }
        ),
        x_desc: "known labels (%)".into(),
        y_desc: "val2014 mAP (%)".into(),
        series,
        x_slots: Vec::new(),
    }
}

/// "Speed": our benchmark (`bench/bench.json`, if run) beside the reference implementation's
/// timings, as a table and a log-scale bar chart.
fn speed_section(
    out: &Path,
    reference_dir: &Path,
    md: &mut String,
    written: &mut Vec<PathBuf>,
) -> Result<(), ReportError> {
    md.push_str("## Speed: milliseconds per category-epoch at COCO scale\n\n");
    let bench_path = out.join("bench/bench.json");
    let timings = read_csv(&reference_dir.join("reference_timings.csv"))?;
    let mut bars: Vec<(String, f64, usize)> = Vec::new();
    let timings_path = reference_dir.join("reference_timings.csv");
    let col = |n: &str| crate::reference::string_column(&timings_path, &timings, n);
    let (dev, meth, ms) = (col("device")?, col("method")?, col("ms_per_category_epoch")?);
    md.push_str("| implementation | device | method | ms per category-epoch |\n|---|---|---|---:|\n");
    for i in 0..timings.height() {
        let v: f64 = ms[i].parse().unwrap_or(f64::NAN);
        md.push_str(&format!("| reference PyTorch | {} | {} | {v} |\n", dev[i], meth[i]));
        let short = if dev[i].contains("CPU") { "CPU" } else { "H100" };
        bars.push((format!("ref {} {short}", meth[i]), v, 6));
    }
    if let Ok(text) = std::fs::read_to_string(&bench_path) {
        let b: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| ReportError::Invalid { path: bench_path.clone(), message: e.to_string() })?;
        for (key, label) in [("ga_ms_per_category_epoch", "GA"), ("bp_ms_per_category_epoch", "BP-ASL")] {
            if let Some(v) = b[key].as_f64() {
                md.push_str(&format!(
                    "| ours (`cft bench`, [bench.json](bench/bench.json)) | {} threads, {} | {label} | {v:.1} |\n",
                    b["threads"],
                    b["build"].as_str().unwrap_or("?")
                ));
                bars.push((format!("ours {label} CPU"), v, 0));
            }
        }
        let fig = LogBars {
            title: "Milliseconds per category-epoch at COCO scale".into(),
            y_desc: "milliseconds per category-epoch (log scale)".into(),
            bars,
        };
        written.extend(render(&out.join("bench/ms_per_category_epoch"), FIGURE_SIZE, &fig)?);
        md.push_str("\n![milliseconds per category-epoch](bench/ms_per_category_epoch.png)\n\n");
    } else {
        md.push_str(&format!(
            "| ours | — | — | not run: no `{}` (run `cft bench --json reports/bench/bench.json`) |\n\n",
            bench_path.display()
        ));
    }
    Ok(())
}
