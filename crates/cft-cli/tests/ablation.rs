//! Ablation grids through `cft run`: a reduced grid on the bundled real `flags` data expands to
//! its cells, writes the tidy table, the summary and the plots; run in shards and merged by
//! `cft report` it is byte-identical; an interrupted grid resumes to the same table; bad grid
//! specs are one clear error that writes nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn cft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cft")).args(args).env("CFT_PROGRESS_INTERVAL", "0").output().unwrap()
}

fn ok(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "cft failed: {err}");
    String::from_utf8_lossy(&o.stdout).to_string() + &err
}

const GRID: &str = r#"description = "test grid"
seeds = [0, 1]
[data]
dataset = "flags"
[labels]
proportions = [0.5]
[cft]
bp_lr = [1e-4, 1e-2]
methods = ["bp-bce", "ga"]
max_epochs = 60
patience = 10
"#;

fn reports(dir: &Path) -> PathBuf {
    let out = dir.join("reports");
    std::fs::create_dir_all(out.join("reference")).unwrap();
    for f in ["paper_results.csv", "reference_timings.csv"] {
        std::fs::copy(repo().join("reports/reference").join(f), out.join("reference").join(f)).unwrap();
    }
    out.join("ablations")
}

fn run(spec: &Path, out: &Path, extra: &[&str]) -> String {
    let mut a = vec!["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap()];
    a.extend_from_slice(extra);
    ok(&cft(&a))
}

#[test]
fn a_grid_runs_merges_from_shards_and_resumes_to_the_same_tidy_table() {
    let d = tempfile::tempdir().unwrap();
    let spec = d.path().join("lr.toml");
    std::fs::write(&spec, GRID).unwrap();
    // One process.
    let one = reports(&d.path().join("one"));
    let log = run(&spec, &one, &[]);
    assert!(log.contains("a grid of 4 cells"), "{log}");
    let dir = one.join("lr");
    for f in [
        "tidy.csv",
        "tidy.parquet",
        "summary.md",
        "summary.csv",
        "summary.tex",
        "README.md",
        "metric_vs_cft_bp_lr.png",
        "delta_distribution.png",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let tidy = std::fs::read_to_string(dir.join("tidy.csv")).unwrap();
    let header = tidy.lines().next().unwrap();
    assert!(header.starts_with("dataset,cell,cft.bp_lr,seed,method,protocol,proportion,category,"), "{header}");
    // 4 cells × 2 protocols × (2 base heads + 2 CFT methods) × 7 flags categories.
    assert_eq!(tidy.lines().count(), 1 + 4 * 2 * 4 * 7);
    assert!(tidy.contains(",0.01,1,AN + CFT-GA,held-out,0.5,"), "the tidy table lacks a cell");
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(summary.contains("| 0.0001 | AN + CFT-BP-BCE | paper |"), "{summary}");
    // Shards, then `cft report` merges.
    let sharded = reports(&d.path().join("sharded"));
    let mut hint = String::new();
    for k in 0..3 {
        let log = run(&spec, &sharded, &["--shard", &format!("{k}/3")]);
        hint = printed_report_command(&log);
    }
    assert!(!sharded.join("lr/tidy.csv").exists(), "a shard merged before every cell was done");
    // The command the shards print, run exactly as printed.
    assert_eq!(hint, format!("cft report {}", sharded.parent().unwrap().display()));
    run_printed(&hint);
    assert_eq!(
        std::fs::read(sharded.join("lr/tidy.csv")).unwrap(),
        tidy.as_bytes(),
        "shards merged differ from one process"
    );
    assert_eq!(
        std::fs::read(sharded.join("lr/tidy.parquet")).unwrap(),
        std::fs::read(dir.join("tidy.parquet")).unwrap(),
        "the Parquet tables differ"
    );
    assert!(std::fs::read_to_string(sharded.parent().unwrap().join("README.md"))
        .unwrap()
        .contains("ablations/README.md"));
    // Interrupted: half the cells done, then the whole grid with --resume.
    let resumed = reports(&d.path().join("resumed"));
    run(&spec, &resumed, &["--shard", "0/2"]);
    let log = run(&spec, &resumed, &["--resume"]);
    assert!(log.contains("wrote"), "{log}");
    assert_eq!(std::fs::read(resumed.join("lr/tidy.csv")).unwrap(), tidy.as_bytes(), "resumed grid differs");
}

/// The `cft report …` command a shard prints.
fn printed_report_command(log: &str) -> String {
    let start = log.find("`cft report ").unwrap_or_else(|| panic!("no report hint in: {log}")) + 1;
    let end = start + log[start..].find('`').unwrap();
    log[start..end].to_string()
}

/// Runs a printed `cft …` command (arguments without spaces) with this build's binary.
fn run_printed(command: &str) -> String {
    let args: Vec<&str> = command.split(' ').skip(1).collect();
    ok(&cft(&args))
}

#[test]
fn shards_into_any_folder_print_a_report_command_that_merges_them() {
    let d = tempfile::tempdir().unwrap();
    let spec = d.path().join("lr.toml");
    std::fs::write(&spec, GRID).unwrap();
    let out = d.path().join("plain");
    let mut hint = String::new();
    for k in 0..2 {
        hint = printed_report_command(&run(&spec, &out, &["--shard", &format!("{k}/2")]));
    }
    assert!(!out.join("lr/tidy.csv").exists());
    run_printed(&hint);
    assert!(out.join("lr/tidy.csv").is_file() && out.join("lr/summary.md").is_file(), "{hint} did not merge");
}

#[test]
fn bad_grid_specs_are_one_error_naming_file_and_key_and_write_nothing() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    for (name, from, to, want) in [
        ("list.toml", "dataset = \"flags\"", "dataset = \"flags\"\nname = [\"a\", \"b\"]", "name"),
        ("range.toml", "bp_lr = [1e-4, 1e-2]", "bp_lr = [1e-4, -1e-2]", "cft.bp_lr = -0.01"),
        ("zero.toml", "patience = 10", "patience = 10\n[cft.ga]\npopulation = [0, 50]", "cft.ga.population = 0"),
        ("name.toml", "patience = 10", "patience = 10\nlearning_rate = [1e-3]", "learning_rate"),
    ] {
        let spec = d.path().join(name);
        std::fs::write(&spec, GRID.replacen(from, to, 1)).unwrap();
        let o = cft(&["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        assert!(!o.status.success(), "{name} was accepted");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains(name) && e.contains(want), "{name}: {e}");
    }
    assert!(!out.exists(), "a refused grid wrote {}", out.display());
}

#[test]
fn canned_ablation_specs_load_as_grids() {
    for f in std::fs::read_dir(repo().join("experiments/ablations")).unwrap() {
        let p = f.unwrap().path();
        let s = cft_experiment::spec::ExperimentSpec::load(&p).unwrap();
        assert!(s.is_grid(), "{}", p.display());
        let cells = cft_experiment::grid::expand(&s).unwrap();
        assert!(cells.len() >= 15, "{}: {} cells", p.display(), cells.len());
    }
}
