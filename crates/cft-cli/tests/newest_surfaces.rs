//! The hostile cases of the surfaces added last (issue #32): feature-set folders as `cft run`
//! inputs, `cft data synthesize`, sharded runs' `plan.json`, sparse-label feature sets, the
//! feature cache and GEMM precisions. Each is one clear refusal (exit 1, a message naming the
//! file, key or option, the folder exactly as before) or a correct run.

mod common;

use common::{refused, write_tensors};
use std::path::{Path, PathBuf};
use std::process::Output;

fn cft(args: &[&str], dir: &Path) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_cft"))
        .args(args)
        .current_dir(dir)
        .env("CFT_PROGRESS_INTERVAL", "0")
        .output()
        .expect("runs cft")
}

fn ok(args: &[&str], dir: &Path) -> String {
    let o = cft(args, dir);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{args:?} failed: {}\n{err}", o.status);
    String::from_utf8_lossy(&o.stdout).into_owned() + &err
}

fn own_features() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets/own-features")
}

/// A copy of the bundled feature-set example in `dir/data` and a short spec reading it.
fn feature_spec(dir: &Path) {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    for f in ["train.safetensors", "test.safetensors", "head.safetensors", "README.md"] {
        std::fs::copy(own_features().join(f), dir.join("data").join(f)).unwrap();
    }
    std::fs::write(
        dir.join("spec.toml"),
        r#"[data]
source = "features"
name = "own"
train = "data/train.safetensors"
test = "data/test.safetensors"
[labels]
source = "real"
[base]
from = "head"
head = "data/head.safetensors"
[cft]
max_epochs = 5
patience = 2
[output]
dir = "reports"
"#,
    )
    .unwrap();
}

fn edit_spec(dir: &Path, name: &str, from: &str, to: &str) {
    let text = std::fs::read_to_string(dir.join("spec.toml")).unwrap();
    assert!(text.contains(from));
    std::fs::write(dir.join(name), text.replace(from, to)).unwrap();
}

/// Cause 1: a report never lands on a feature-set folder, through a link, above it, or through
/// a dataset name that leaves the reports folder.
#[test]
fn a_report_never_lands_on_the_folder_of_its_feature_sets() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    feature_spec(d);
    refused(&["run", "spec.toml", "--out", "data"], d, &["--out is the folder of data.train", "choose another --out"]);
    std::os::unix::fs::symlink(d.join("data"), d.join("link")).unwrap();
    refused(&["run", "spec.toml", "--out", "link"], d, &["link: --out is the folder of data.train"]);
    refused(&["run", "spec.toml", "--out", "."], d, &["--out contains data.train"]);
    let elsewhere = tempfile::tempdir().unwrap();
    let dangling = elsewhere.path().join("dangling");
    std::os::unix::fs::symlink(elsewhere.path().join("nowhere"), &dangling).unwrap();
    refused(
        &["run", "spec.toml", "--out", dangling.to_str().unwrap()],
        d,
        &["--out is a link to", "which does not exist"],
    );
    assert!(!elsewhere.path().join("nowhere").exists());
    edit_spec(d, "dots.toml", "name = \"own\"", "name = \"..\"");
    refused(&["run", "dots.toml"], d, &["data.name = \"..\" names no folder of its own"]);
    edit_spec(d, "slash.toml", "name = \"own\"", "name = \"a/../../b\"");
    refused(&["run", "slash.toml"], d, &["data.name = \"a/../../b\" contains a path separator"]);
    // Cause 13: the test split is the training split (the same file, or a link to it).
    edit_spec(d, "same.toml", "test = \"data/test", "test = \"data/train");
    refused(
        &["run", "same.toml", "--out", "r"],
        d,
        &["data.test (data/train.safetensors) is the same file as data.train"],
    );
    std::os::unix::fs::symlink(d.join("data/train.safetensors"), d.join("alias.safetensors")).unwrap();
    edit_spec(d, "alias.toml", "test = \"data/test.safetensors", "test = \"alias.safetensors");
    refused(&["run", "alias.toml", "--out", "r"], d, &["is the same file as data.train"]);
    // A folder where the run writes a file: refused before the work, not after it.
    std::fs::create_dir_all(d.join("st/own/stages.md")).unwrap();
    refused(&["run", "spec.toml", "--out", "st", "--stages"], d, &["st/own/stages.md: is a folder"]);
    // The same spec into a folder of its own runs.
    ok(&["run", "spec.toml", "--out", "reports"], d);
    assert!(d.join("reports/own/results.json").is_file());
}

/// Causes 2, 4, 14: `cft data synthesize` never overwrites, checks sizes before allocating,
/// and reads (and checks) its category list for both shapes.
#[test]
fn synthesize_never_overwrites_checks_sizes_first_and_reads_its_categories() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    feature_spec(d);
    let small = ["--train-rows", "40", "--test-rows", "20"];
    let args = |like: &'static str, out: &'static str, extra: &[&'static str]| {
        let mut v = vec!["data", "synthesize", "--like", like, "--out", out];
        v.extend_from_slice(&small);
        v.extend_from_slice(extra);
        v
    };
    refused(&args("coco", "data", &[]), d, &["data/train.safetensors exists", "never overwrites"]);
    let huge = ["data", "synthesize", "--like", "openimages", "--out", "big", "--train-rows", "100000000000"];
    refused(&huge, d, &["--train-rows/--test-rows: each split needs 1 to 4294967295 images"]);
    let large = ["data", "synthesize", "--like", "openimages", "--out", "big", "--train-rows", "4000000000"];
    refused(&large, d, &["--train-rows/--test-rows: these sizes need about", "GiB of memory"]);
    let mut names: Vec<String> = (0..5000).map(|k| format!("/m/{k:05}")).collect();
    std::fs::write(d.join("classes.txt"), names.join("\n") + "\n").unwrap();
    names[9] = names[2].clone();
    std::fs::write(d.join("twice.txt"), names.join("\n")).unwrap();
    refused(
        &args("openimages", "oi", &["--categories", "twice.txt"]),
        d,
        &["--categories twice.txt: line 10 names \"/m/00002\" again (first at line 3)"],
    );
    ok(&args("openimages", "oi", &["--categories", "classes.txt"]), d);
    let set = cft_data::read_labelled_set(&d.join("oi/train.safetensors")).unwrap();
    let written = set.categories.unwrap();
    assert_eq!((written[0].as_str(), written[4999].as_str()), ("/m/00000", "/m/04999"));
    let files: Vec<String> = std::fs::read_dir(d.join("oi"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 3, "train, test and head, nothing else: {files:?}");
}

/// Cause 12: sparse-label feature sets (what `synthesize` writes) are labelled sets for
/// `inspect`, `finetune`, `evaluate` and `train-head`.
#[test]
fn sparse_label_sets_are_read_by_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&["data", "synthesize", "--like", "coco", "--out", "s", "--train-rows", "300", "--test-rows", "150"], d);
    let table = ok(&["data", "inspect", "s/train.safetensors", "--limit", "2"], d);
    assert!(table.contains("300 images, 80 categories, 100.00% of labels known"), "{table}");
    let (train, test) = ("s/train.safetensors", "s/test.safetensors");
    ok(&["train-head", "--train", train, "--mode", "an", "--epochs", "2", "--out", "head.safetensors"], d);
    let log = ok(
        &[
            "finetune",
            "--train",
            train,
            "--valid",
            test,
            "--head",
            "head.safetensors",
            "--method",
            "bp-bce",
            "--epochs",
            "2",
            "--out",
            "ft.safetensors",
        ],
        d,
    );
    assert!(log.contains("of 80 categories improved"), "{log}");
    let scores = ok(&["evaluate", "--head", "ft.safetensors", "--data", test], d);
    assert!(scores.contains("mean AP over") && scores.contains("of 80 categories"), "{scores}");
}

/// Cause 13 and a category name over two lines: labels stored both ways, and a newline in a
/// category name, are refused naming the file.
#[test]
fn ambiguous_labels_and_category_names_over_two_lines_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    feature_spec(d);
    let features = (0..8).map(|v| v as f32 * 0.25).collect::<Vec<f32>>();
    let dense = vec![1.0, 0.0, 0.0, 1.0, f32::NAN, 1.0, 0.0, 0.0];
    write_tensors(
        &d.join("both.safetensors"),
        &[
            ("features", vec![4, 2], features.clone()),
            ("labels", vec![4, 2], dense.clone()),
            ("labels_index", vec![1, 2], vec![0.0, 0.0]),
            ("labels_value", vec![1], vec![0.0]),
        ],
        Some(&["a", "b"]),
    );
    let both = ["finetune", "--train", "both.safetensors", "--valid", "data/test.safetensors"];
    let both: Vec<&str> = both
        .iter()
        .copied()
        .chain(["--head", "data/head.safetensors", "--method", "bp-bce", "--out", "x.safetensors"])
        .collect();
    refused(&both, d, &["both.safetensors", "holds both a dense `labels` tensor and sparse `labels_index`"]);
    refused(&["data", "inspect", "both.safetensors"], d, &["holds both a dense `labels` tensor"]);
    write_tensors(
        &d.join("newline.safetensors"),
        &[("features", vec![4, 2], features), ("labels", vec![4, 2], dense)],
        Some(&["a\nb", "c"]),
    );
    refused(
        &["evaluate", "--head", "data/head.safetensors", "--data", "newline.safetensors"],
        d,
        &["newline.safetensors", "metadata `categories` entry 0 (\"a\\nb\") contains a control character"],
    );
}

/// Cause 9: `cft report` checks `plan.json` against its units: the unit list is the
/// configuration's, each unit file holds its own unit, and the category names are the ones the
/// units were computed with. Cause 15: a report elsewhere says what it left unmerged.
#[test]
fn a_report_refuses_an_edited_plan_or_a_swapped_unit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    feature_spec(d);
    ok(&["run", "spec.toml", "--out", "sh", "--shard", "0/1"], d);
    let plan_path = d.join("sh/own/plan.json");
    let plan: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&plan_path).unwrap()).unwrap();
    assert_eq!(plan["units"], serde_json::json!(["real-paper", "real-held-out"]));
    let edited = |edit: &dyn Fn(&mut serde_json::Value), needles: &[&str]| {
        let mut p = plan.clone();
        edit(&mut p);
        std::fs::write(&plan_path, serde_json::to_string_pretty(&p).unwrap()).unwrap();
        refused(&["report", "sh"], d, needles);
    };
    edited(&|p| p["units"] = serde_json::json!(["real-paper"]), &["plan.json: units: unit real-held-out is missing"]);
    edited(
        &|p| p["units"] = serde_json::json!(["real-paper", "real-held-out", "real-paper"]),
        &["plan.json: units: unit real-paper is listed twice"],
    );
    edited(&|p| p["categories"][0] = serde_json::json!("renamed"), &["computed with other dataset or category names"]);
    edited(&|p| p["dataset"] = serde_json::json!("other"), &["computed with other dataset or category names"]);
    std::fs::write(&plan_path, serde_json::to_string_pretty(&plan).unwrap()).unwrap();
    let held_out = d.join("sh/own/runs/real-held-out.json");
    let saved = std::fs::read(&held_out).unwrap();
    std::fs::copy(d.join("sh/own/runs/real-paper.json"), &held_out).unwrap();
    refused(&["report", "sh"], d, &["real-held-out.json: holds unit real-paper, not real-held-out"]);
    std::fs::write(&held_out, saved).unwrap();
    let elsewhere = ok(&["report", "sh", "--out", "other"], d);
    assert!(elsewhere.contains("note: sh/own: sharded cells or units are merged in place only"), "{elsewhere}");
    assert!(!d.join("sh/own/results.json").exists(), "a report elsewhere merged in place");
    let merged = ok(&["report", "sh"], d);
    assert!(merged.contains("merged the shards' units"), "{merged}");
}

/// Cause 11: a GEMM precision is the CUDA engine's; a CPU engine refuses anything but f32, and
/// fp8 is no choice at all. Unclear messages: `--lr -1` reaches the range check, a feature cache
/// that is a file is named as such.
#[test]
fn precisions_negative_numbers_and_a_cache_file_get_their_own_messages() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    feature_spec(d);
    refused(
        &["run", "spec.toml", "--out", "r", "--gemm-precision", "bf16"],
        d,
        &["gemm_precision = \"bf16\": only the CUDA engine has a GEMM precision"],
    );
    let fp8 = cft(&["run", "spec.toml", "--out", "r", "--gemm-precision", "fp8"], d);
    let e = String::from_utf8_lossy(&fp8.stderr);
    assert!(fp8.status.code() == Some(2) && e.contains("[possible values: f32, tf32, bf16]"), "{e}");
    let finetune = [
        "finetune",
        "--train",
        "data/train.safetensors",
        "--valid",
        "data/test.safetensors",
        "--head",
        "data/head.safetensors",
        "--method",
        "bp-bce",
        "--out",
        "x.safetensors",
    ];
    let with = |extra: &[&'static str]| finetune.iter().copied().chain(extra.iter().copied()).collect::<Vec<&str>>();
    refused(&with(&["--lr", "-1"]), d, &["--lr -1: expected a learning rate in (0, 1]"]);
    let e = String::from_utf8_lossy(&cft(&with(&["--gemm-precision", "tf32"]), d).stderr).into_owned();
    assert!(e.contains("only the CUDA engine has a GEMM precision"), "{e}");
    std::fs::write(d.join("cache-file"), b"not a folder").unwrap();
    let r20 = common::Resnet20::bundled();
    refused(
        &r20.extract("32", &["--cache", "cache-file", "--out", "f.safetensors"]),
        d,
        &["the feature cache cache-file is a file, not a folder (set by --cache or $CFT_CACHE_DIR)"],
    );
}
