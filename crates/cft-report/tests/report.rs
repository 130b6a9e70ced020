//! The report from known inputs: cells of ours, published, difference and protocol; "not run"
//! for a missing dataset; CSV that round-trips through polars; figures of the requested size.

use cft_report::plots::{render, LineChart, Series};
use cft_report::published_tables::{chexpert_table, coco_table, openimages_table};
use cft_report::reference::read_csv;
use cft_report::{write_index, Ours, Published};
use cft_results::{ExperimentResults, MethodRow, Protocol, ResultCell};
use polars::prelude::*;
use std::path::PathBuf;

fn reference_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../reports/reference")
}

fn results(name: &str) -> ExperimentResults {
    let proportions: Vec<f64> = (1..=9).map(|k| f64::from(k) / 10.0).collect();
    let row = |method: &str, protocol, base: f64, is_base| MethodRow {
        method: method.into(),
        protocol,
        is_base,
        cells: proportions
            .iter()
            .map(|&p| ResultCell {
                proportion: p,
                mean: Some(base + p / 10.0),
                per_category: vec![Some(base + p / 10.0), Some(base), None],
                skipped: vec![],
                run: Some(format!("runs/p{:02}-{}.json", (p * 100.0).round() as u32, protocol_label(protocol))),
                ..ResultCell::default()
            })
            .collect(),
    };
    ExperimentResults {
        dataset: name.into(),
        metric: "mAP".into(),
        categories: vec!["a".into(), "b".into(), "c".into()],
        proportions: proportions.clone(),
        rows: vec![
            row("AN", Protocol::Paper, 0.70, true),
            row("AN + CFT-GA", Protocol::Paper, 0.80, false),
            row("AN", Protocol::HeldOut, 0.69, true),
            row("AN + CFT-GA", Protocol::HeldOut, 0.78, false),
        ],
        ..ExperimentResults::default()
    }
}

fn protocol_label(p: Protocol) -> &'static str {
    p.label()
}

#[test]
fn coco_table_sets_ours_beside_published_with_protocol_links_and_difference() {
    let published = Published::load(&reference_dir().join("paper_results.csv")).unwrap();
    let res = results("coco2014");
    let mut sources = Vec::new();
    let t = coco_table(&published, Ours::Run(&res, "../coco2014/"), &mut sources);
    assert_eq!(t.header[3], "10%");
    assert_eq!(t.header[12], "Avg");
    let ssgrl = t.rows.iter().find(|r| r[0] == "SSGRL").unwrap();
    assert_eq!((ssgrl[3].as_str(), ssgrl[12].as_str()), ("62.50", "74.10"));
    assert!(ssgrl[1].starts_with("published ["));
    let cft = t.rows.iter().find(|r| r[0].starts_with("CFT")).unwrap();
    assert_eq!(cft[12], "83.69");
    let i = t.rows.iter().position(|r| r[0] == "AN + CFT-GA" && r[2] == "held-out").unwrap();
    let ours = &t.rows[i];
    assert_eq!(ours[1], "ours");
    assert_eq!(ours[3], "79.00");
    // Average of 0.78 + p/10 over p = 0.1..0.9 is 0.83 → 83.00, minus the paper's 83.69.
    assert_eq!(ours[12], "83.00");
    assert_eq!(ours[13], "-0.69");
    assert_eq!(t.links[i][3].as_deref(), Some("../coco2014/runs/p10-held-out.json"));
    assert!(t.to_markdown().contains("[79.00](../coco2014/runs/p10-held-out.json)"));
    assert!(!sources.is_empty() && sources.iter().any(|s| s.contains("arxiv.org/abs/2401.16991")));
}

#[test]
fn missing_datasets_get_not_run_cells_that_say_why() {
    let published = Published::load(&reference_dir().join("paper_results.csv")).unwrap();
    let mut sources = Vec::new();
    for t in [
        coco_table(&published, Ours::NotRun("dataset not provided"), &mut sources),
        openimages_table(&published, Ours::NotRun("dataset not provided"), &mut sources),
        chexpert_table(&published, Ours::NotRun("dataset not provided"), &[], &mut sources),
    ] {
        let ours = t.rows.last().unwrap();
        assert_eq!(ours[0], "ours (CFT)");
        assert_eq!(ours[1], "not run: dataset not provided");
        assert!(ours.iter().filter(|c| *c == "not run").count() >= 5);
    }
    // A predictions file scored here becomes a row of its own, its mean with every digit.
    let scored = cft_report::published_tables::ChexpertScored {
        predictions: "drnet_predictions.csv".into(),
        groundtruth: "groundtruth.csv".into(),
        studies: 500,
        tasks: ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]
            .iter()
            .zip([0.1, 0.2, 0.3, 0.4, 0.5])
            .map(|(t, v)| (t.to_string(), v))
            .collect(),
        mean: 0.3,
    };
    let t = chexpert_table(&published, Ours::NotRun("x"), std::slice::from_ref(&scored), &mut sources);
    let deep = t.rows.iter().find(|r| r[0] == "DeepAUC-v1 ensemble (rank 1)").unwrap();
    assert_eq!(&deep[2..], ["0.8865", "0.9372", "0.9321", "0.9300", "0.9665", "0.9305"]);
    let here = t.rows.iter().find(|r| r[0] == "drnet_predictions").unwrap();
    assert!(here[1].starts_with("scored here: `cft chexpert-score` on drnet_predictions.csv"), "{here:?}");
    assert_eq!(&here[2..], ["0.1000", "0.2000", "0.3000", "0.4000", "0.5000", "0.3"]);
    let oi = openimages_table(&published, Ours::NotRun("x"), &mut sources);
    let imcl = oi.rows.iter().find(|r| r[0] == "IMCL (Huynh & Elhamifar 2020)").unwrap();
    assert_eq!(&imcl[3..9], ["71.00", "72.60", "77.60", "81.80", "87.30", "78.10"]);
}

#[test]
fn table_csv_round_trips_through_polars() {
    let published = Published::load(&reference_dir().join("paper_results.csv")).unwrap();
    let t = coco_table(&published, Ours::NotRun("dataset not provided"), &mut Vec::new());
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.csv");
    std::fs::write(&p, t.to_csv()).unwrap();
    let df = read_csv(&p).unwrap();
    assert_eq!(df.height(), t.rows.len());
    assert_eq!(df.get_column_names().iter().map(|s| s.to_string()).collect::<Vec<_>>(), t.header);
    for (j, name) in t.header.iter().enumerate() {
        let col = df.column(name).unwrap().cast(&DataType::String).unwrap();
        let col = col.str().unwrap();
        for (i, row) in t.rows.iter().enumerate() {
            let got = col.get(i).unwrap_or("");
            let same = got == row[j] || matches!((got.parse::<f64>(), row[j].parse::<f64>()), (Ok(a), Ok(b)) if a == b);
            assert!(same, "row {i}, column {name}: {got:?} vs {:?}", row[j]);
        }
    }
}

#[test]
fn figures_are_valid_png_and_svg_of_the_requested_size() {
    let dir = tempfile::tempdir().unwrap();
    let chart = LineChart {
        title: "t".into(),
        x_desc: "x (%)".into(),
        y_desc: "y (%)".into(),
        series: vec![Series {
            dashed: true,
            marker: Some(cft_report::plots::Marker::Diamond),
            open_end: true,
            ..Series::line("AN + CFT-GA", vec![(10.0, 50.0), (90.0, 70.0)], 1)
        }],
        x_slots: Vec::new(),
    };
    let files = render(&dir.path().join("fig"), (640, 400), &chart).unwrap();
    let png = std::fs::read(&files[0]).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(&png[12..16], b"IHDR");
    let (w, h) =
        (u32::from_be_bytes(png[16..20].try_into().unwrap()), u32::from_be_bytes(png[20..24].try_into().unwrap()));
    assert_eq!((w, h), (640, 400));
    let svg = std::fs::read_to_string(&files[1]).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("width=\"640\"") && svg.contains("height=\"400\""),
        "{}",
        &svg[..200]
    );
    assert!(svg.trim_end().ends_with("</svg>"));
}

#[test]
fn the_index_lists_runs_tables_and_what_was_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let res = results("toy");
    let run_dir = dir.path().join("toy");
    std::fs::create_dir_all(&run_dir).unwrap();
    std::fs::write(run_dir.join("results.json"), serde_json::to_string(&res).unwrap()).unwrap();
    let files = write_index(dir.path(), dir.path(), &reference_dir()).unwrap();
    let readme = std::fs::read_to_string(dir.path().join("README.md")).unwrap();
    assert!(readme.contains("## toy:") && readme.contains("[79.00](toy/runs/p10-held-out.json)"));
    assert!(readme.contains("| OpenImages V3 | not run: dataset not provided"));
    assert!(readme.contains("![published partial-COCO results"));
    for f in [
        "tables/coco.csv",
        "tables/chexpert.tex",
        "tables/openimages.md",
        "tables/coco_vs_known.png",
        "toy/table.md",
        "toy/score_vs_known.svg",
    ] {
        assert!(files.contains(&dir.path().join(f)), "{f}");
    }
}
