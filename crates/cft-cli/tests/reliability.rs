//! Nothing lost, nothing mixed, no panic: every bad input, colliding path, foreign checkpoint
//! and second writer is refused with one clear error (exit 1, never a panic's 101), before any
//! work, leaving every input byte-identical and no output, lock or temporary file behind.

mod common;

use common::write_tensors;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn cft_env(args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cft"));
    cmd.args(args).current_dir(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("runs cft")
}

fn cft(args: &[&str], dir: &Path) -> Output {
    cft_env(args, dir, &[])
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "cft failed: {}\n{}", o.status, stderr(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

use common::refused;

/// A small labelled feature set: `n` rows, `d` features, `c` categories (names `c0`…), about
/// half the labels known, deterministic.
fn feature_set(path: &Path, n: usize, d: usize, c: usize, seed: u64) {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let features: Vec<f32> = (0..n * d).map(|_| (next() * 2.0 - 1.0) as f32).collect();
    let labels: Vec<f32> = (0..n * c)
        .map(|i| {
            let (r, k) = (i / c, i % c);
            let score = features[r * d + k % d] as f64 + 0.5 * (next() - 0.5);
            if next() < 0.4 {
                f32::NAN
            } else if score > 0.0 {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let names: Vec<String> = (0..c).map(|k| format!("c{k}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    write_tensors(path, &[("features", vec![n, d], features), ("labels", vec![n, c], labels)], Some(&names));
}

/// train / valid feature sets and an AN head in `dir` (d = 4, C = 3).
fn fixture(dir: &Path) {
    feature_set(&dir.join("train.safetensors"), 60, 4, 3, 1);
    feature_set(&dir.join("valid.safetensors"), 40, 4, 3, 2);
    ok(&cft(&["train-head", "--train", "train.safetensors", "--mode", "an", "--out", "head.safetensors"], dir));
    std::fs::remove_file(dir.join("head.safetensors.manifest.json")).unwrap();
}

/// `cft finetune` on the fixture writing `out`; `extra` options replace the defaults of the same
/// name (clap refuses an option given twice) or are appended.
fn finetune_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "finetune",
        "--train",
        "train.safetensors",
        "--valid",
        "valid.safetensors",
        "--head",
        "head.safetensors",
        "--method",
        "bp-asl",
        "--lr",
        "1e-2",
        "--epochs",
        "30",
        "--patience",
        "10",
        "--out",
        out,
    ];
    let mut i = 0;
    while i < extra.len() {
        if let Some((name, _)) = extra[i].split_once('=') {
            // `--lr=-1`: a value that starts with `-` must be attached; drop the default.
            if let Some(at) = v.iter().position(|a| *a == name) {
                v.drain(at..at + 2);
            }
            v.push(extra[i]);
            i += 1;
            continue;
        }
        let takes_value = i + 1 < extra.len() && !extra[i + 1].starts_with("--");
        match v.iter().position(|a| *a == extra[i]) {
            Some(at) if takes_value => v[at + 1] = extra[i + 1],
            _ if takes_value => v.extend_from_slice(&extra[i..i + 2]),
            _ => v.push(extra[i]),
        }
        i += if takes_value { 2 } else { 1 };
    }
    v
}

#[test]
fn outputs_equal_to_inputs_are_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fixture(d);
    std::fs::hard_link(d.join("train.safetensors"), d.join("train-link.safetensors")).unwrap();
    std::fs::create_dir(d.join("sub")).unwrap();
    let msg = "refusing to overwrite an input";
    refused(&finetune_args("train.safetensors", &[]), d, &["--out is the same file as --train", msg]);
    refused(&finetune_args("./sub/../train.safetensors", &[]), d, &["--out is the same file as --train"]);
    refused(&finetune_args("train-link.safetensors", &[]), d, &["--out is the same file as --train"]);
    refused(&finetune_args("head.safetensors", &[]), d, &["--out is the same file as --head", msg]);
    refused(&finetune_args("valid.safetensors", &[]), d, &["--out is the same file as --valid"]);
    refused(
        &finetune_args("o.safetensors", &["--history", "train.safetensors"]),
        d,
        &["--history is the same file as --train"],
    );
    refused(
        &finetune_args("o.safetensors", &["--history", "o.safetensors"]),
        d,
        &["--out and --history name the same file"],
    );
    refused(
        &["evaluate", "--head", "head.safetensors", "--data", "valid.safetensors", "--json", "valid.safetensors"],
        d,
        &["--json is the same file as --data"],
    );
    refused(
        &["train-head", "--train", "train.safetensors", "--mode", "an", "--out", "train.safetensors"],
        d,
        &["--out is the same file as --train"],
    );
    refused(
        &["merge-features", "--out", "valid.safetensors", "train.safetensors", "valid.safetensors"],
        d,
        &["--out is the same file as a shard"],
    );
    std::fs::copy(datasets().join("formats/instances_toy2014.json"), d.join("instances_toy2014.json")).unwrap();
    refused(
        &["data", "coco-labels", "--instances", "instances_toy2014.json", "--out", "instances_toy2014.json"],
        d,
        &["--out is the same file as --instances"],
    );
    // The head's file mode is untouched as well (a refused run never rewrites it).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let head = d.join("head.safetensors");
        std::fs::set_permissions(&head, std::fs::Permissions::from_mode(0o600)).unwrap();
        refused(&finetune_args("head.safetensors", &[]), d, &["--out is the same file as --head"]);
        assert_eq!(std::fs::metadata(&head).unwrap().permissions().mode() & 0o777, 0o600);
    }
}

#[test]
fn output_paths_are_checked_before_computing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fixture(d);
    std::fs::create_dir(d.join("existing")).unwrap();
    refused(&finetune_args("existing", &[]), d, &["--out is an existing folder"]);
    refused(&finetune_args("newdir/", &[]), d, &["--out must name a file"]);
    refused(&finetune_args("no/such/dir/x.safetensors", &[]), d, &["does not exist", "create it first"]);
    refused(&finetune_args("o.safetensors", &["--engine", "cuda"]), d, &["without CUDA support"]);
    // Only a missing last folder is created.
    ok(&cft(&finetune_args("made/o.safetensors", &[]), d));
    assert!(d.join("made/o.safetensors").is_file() && !d.join("made/o.safetensors.progress.jsonl").exists());
}

#[test]
fn panics_and_aborts_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fixture(d);
    // An empty feature set claiming an enormous label matrix (was: an 8 TB allocation, abort).
    write_tensors(
        &d.join("huge.safetensors"),
        &[("features", vec![0, 16], vec![]), ("labels", vec![0, 1_000_000_000_000], vec![])],
        None,
    );
    refused(
        &["train-head", "--train", "huge.safetensors", "--mode", "an", "--out", "h.safetensors"],
        d,
        &["huge.safetensors", "at least one row"],
    );
    write_tensors(
        &d.join("d0.safetensors"),
        &[("features", vec![3, 0], vec![]), ("labels", vec![3, 1], vec![1.0, 0.0, 1.0])],
        None,
    );
    refused(&["train-head", "--train", "d0.safetensors", "--mode", "an", "--out", "h.safetensors"], d, &["[3, 0]"]);
    write_tensors(
        &d.join("c0.safetensors"),
        &[("features", vec![2, 1], vec![1.0, 2.0]), ("labels", vec![2, 0], vec![])],
        None,
    );
    refused(
        &["train-head", "--train", "c0.safetensors", "--mode", "an", "--out", "h.safetensors"],
        d,
        &["no category"],
    );
    write_tensors(
        &d.join("unknown.safetensors"),
        &[("features", vec![2, 1], vec![1.0, 2.0]), ("labels", vec![2, 1], vec![f32::NAN, f32::NAN])],
        None,
    );
    refused(
        &["train-head", "--train", "unknown.safetensors", "--mode", "ignore", "--out", "h.safetensors"],
        d,
        &["no known label"],
    );
    // Absurd thread counts are refused at once (was: 120 s and counting for 100000).
    refused(
        &[
            "--threads",
            "100000",
            "train-head",
            "--train",
            "train.safetensors",
            "--mode",
            "an",
            "--out",
            "h.safetensors",
        ],
        d,
        &["--threads 100000"],
    );
    // A results.json whose row has no cells (was: a panic in the plots and a temporary PNG left).
    let runs = d.join("runs");
    std::fs::create_dir_all(runs.join("scene")).unwrap();
    std::fs::create_dir_all(runs.join("reference")).unwrap();
    let reference = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../reports/reference");
    for f in ["paper_results.csv", "reference_timings.csv"] {
        std::fs::copy(reference.join(f), runs.join("reference").join(f)).unwrap();
    }
    let committed = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../reports/scene/results.json");
    let mut res: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(committed).unwrap()).unwrap();
    res["rows"][0]["cells"] = serde_json::json!([]);
    std::fs::write(runs.join("scene/results.json"), serde_json::to_string(&res).unwrap()).unwrap();
    refused(&["report", "runs"], d, &["results.json", "rows[0]", "0 cells"]);
}

#[test]
fn parameters_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fixture(d);
    for lr in ["NaN", "inf", "0", "-1e-3", "1e30"] {
        let opt = format!("--lr={lr}");
        refused(&finetune_args("o.safetensors", &[&opt]), d, &["--lr", "expected a learning rate in (0, 1]"]);
        refused(
            &["train-head", "--train", "train.safetensors", "--mode", "an", &opt, "--out", "h.safetensors"],
            d,
            &["expected a learning rate"],
        );
    }
    std::fs::copy(datasets().join("formats/instances_toy2014.json"), d.join("instances_toy2014.json")).unwrap();
    for known in ["1.5", "-0.1", "NaN"] {
        let opt = format!("--known={known}");
        refused(
            &["data", "coco-labels", "--instances", "instances_toy2014.json", &opt, "--out", "l.csv"],
            d,
            &["--known", "[0, 1]"],
        );
        refused(&["data", "inspect", "instances_toy2014.json", &opt], d, &["--known"]);
    }
    // Category names that differ between the head and the data.
    feature_set(&d.join("renamed.safetensors"), 40, 4, 3, 2);
    let set = cft_data::read_feature_set(&d.join("renamed.safetensors")).unwrap();
    let renamed = cft_data::FeatureSet { categories: Some(vec!["c0".into(), "dog".into(), "c2".into()]), ..set };
    cft_data::write_feature_set(&d.join("renamed.safetensors"), &renamed, cft_data::FeaturePrecision::F32).unwrap();
    refused(
        &["evaluate", "--head", "head.safetensors", "--data", "renamed.safetensors"],
        d,
        &["head.safetensors: category 1 is `c1`", "renamed.safetensors names it `dog`"],
    );
    let mut a = finetune_args("o.safetensors", &[]);
    a[4] = "renamed.safetensors";
    refused(&a, d, &["category 1"]);
}

fn interrupted_checkpoint(d: &Path, out: &str, extra: &[&str]) {
    let mut a = finetune_args(out, extra);
    a.extend(["--abort-after-categories", "1"]);
    let o = cft_env(&a, d, &[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(d.join(format!("{out}.progress.jsonl")).is_file());
}

#[test]
fn foreign_checkpoints_are_refused_naming_what_differs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fixture(d);
    // GA with seed 5, then a bp-asl --resume on the same output (was: merged silently).
    interrupted_checkpoint(d, "o.safetensors", &["--method", "ga", "--seed", "5"]);
    std::fs::remove_file(d.join("o.safetensors.lock")).unwrap(); // the killed run's lock (stale anyway)
    let msg = refused(&finetune_args("o.safetensors", &["--resume"]), d, &["refusing to resume", "method"]);
    assert!(msg.contains("seed: checkpoint 5, this run 0"), "{msg}");
    // Same options, other data: another feature dimension (was: a panic in copy_from_slice).
    feature_set(&d.join("train.safetensors"), 60, 16, 3, 1);
    feature_set(&d.join("valid.safetensors"), 40, 16, 3, 2);
    let wide_head = d.join("head.safetensors");
    std::fs::remove_file(&wide_head).unwrap();
    ok(&cft(&["train-head", "--train", "train.safetensors", "--mode", "an", "--out", "head.safetensors"], d));
    std::fs::remove_file(d.join("head.safetensors.manifest.json")).unwrap();
    let msg = refused(
        &finetune_args("o.safetensors", &["--method", "ga", "--seed", "5", "--resume"]),
        d,
        &["refusing to resume", "--train: the checkpoint was made from"],
    );
    assert!(msg.contains("o.safetensors.progress.jsonl"), "{msg}");
    // More categories in the checkpoint than the data has (was: a slice-index panic in linalg).
    feature_set(&d.join("train.safetensors"), 60, 16, 2, 1);
    feature_set(&d.join("valid.safetensors"), 40, 16, 2, 2);
    std::fs::remove_file(d.join("head.safetensors")).unwrap();
    ok(&cft(&["train-head", "--train", "train.safetensors", "--mode", "an", "--out", "head.safetensors"], d));
    std::fs::remove_file(d.join("head.safetensors.manifest.json")).unwrap();
    refused(
        &finetune_args("o.safetensors", &["--method", "ga", "--seed", "5", "--resume"]),
        d,
        &["refusing to resume"],
    );
    // A checkpoint of an older version or another tool.
    std::fs::write(d.join("o.safetensors.progress.jsonl"), "{\"outcome\": 1}\n").unwrap();
    refused(&finetune_args("o.safetensors", &["--resume"]), d, &["not a cft finetune checkpoint"]);
}

#[test]
fn a_second_writer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fixture(d);
    // A live process (pid 1) holds the output.
    std::fs::write(d.join("o.safetensors.lock"), "1\n").unwrap();
    refused(&finetune_args("o.safetensors", &[]), d, &["another cft process (pid 1)", "o.safetensors.lock"]);
    // A real second process while the first one runs.
    let first = Command::new(env!("CARGO_BIN_EXE_cft"))
        .args(finetune_args("p.safetensors", &["--method", "ga", "--epochs", "100000", "--patience", "100000"]))
        .current_dir(d)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut first = KillOnDrop(first);
    let lock = d.join("p.safetensors.lock");
    for _ in 0..200 {
        if lock.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert!(lock.exists(), "the first run took no lock");
    let second = cft(&finetune_args("p.safetensors", &[]), d);
    assert_eq!(second.status.code(), Some(1));
    assert!(stderr(&second).contains("another cft process"), "{}", stderr(&second));
    first.0.kill().unwrap();
    first.0.wait().unwrap();
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

fn datasets() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets")
}

/// A one-split ARFF dataset manifest whose training file holds `value` in a feature.
fn arff_dataset(dir: &Path, value: &str) -> PathBuf {
    let rows: String = (0..8)
        .map(|i| {
            let f = if i == 3 { value.to_string() } else { format!("{}", i as f64 / 8.0) };
            format!("{f},{},{}\n", i % 2, (i / 2) % 2)
        })
        .collect();
    let arff =
        format!("@relation toy\n@attribute f1 numeric\n@attribute a {{0,1}}\n@attribute b {{0,1}}\n@data\n{rows}");
    std::fs::write(dir.join("toy.arff"), &arff).unwrap();
    std::fs::write(dir.join("toy.xml"), "<labels><label name=\"a\"></label><label name=\"b\"></label></labels>\n")
        .unwrap();
    let m = serde_json::json!({"name": "toy", "description": "t", "format": "mulan-arff", "labels_xml": "toy.xml",
        "splits": {"train": "toy.arff", "test": "toy.arff"}, "categories": ["a", "b"], "citation": "", "source": "", "license": ""});
    std::fs::write(dir.join("manifest.json"), serde_json::to_string(&m).unwrap()).unwrap();
    dir.join("manifest.json")
}

#[test]
fn non_finite_arff_features_are_refused_with_file_line_and_attribute() {
    for value in ["NaN", "inf", "-Infinity", "1e39", &format!("1{}", "0".repeat(400))] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("data")).unwrap();
        arff_dataset(&d.join("data"), value);
        let msg = refused(
            &["reproduce", "--dataset", "data/manifest.json", "--quick", "--out", "out"],
            d,
            &["toy.arff:9: f1:", "finite"],
        );
        assert!(!d.join("out").exists(), "{msg}");
    }
}

#[test]
fn byte_order_marks_are_accepted_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bom = |name: &str, text: &[u8]| {
        let mut b = b"\xef\xbb\xbf".to_vec();
        b.extend_from_slice(text);
        std::fs::write(d.join(name), b).unwrap();
    };
    let coco = std::fs::read(datasets().join("formats/instances_toy2014.json")).unwrap();
    bom("instances_toy2014.json", &coco);
    let out = ok(&cft(&["data", "inspect", "instances_toy2014.json"], d));
    assert!(out.contains("3 images"), "{out}");
    ok(&cft(&["data", "coco-labels", "--instances", "instances_toy2014.json", "--out", "labels.csv"], d));
    let csv = std::fs::read(d.join("labels.csv")).unwrap();
    bom("labels-bom.csv", &csv);
    let out = ok(&cft(&["data", "inspect", "labels-bom.csv", "--categories-from", "instances_toy2014.json"], d));
    assert!(out.contains("3 images"), "{out}");
    bom(
        "valid.csv",
        b"Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,Lung Opacity,Lung Lesion,Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,Fracture,Support Devices\n\
p/s1/v1.jpg,Male,50,Frontal,AP,,,1.0,,,0.0,-1.0,,1.0,,0.0,,,\n\
p/s2/v1.jpg,Female,60,Lateral,,,,0.0,,,1.0,,,0.0,,1.0,,,\n",
    );
    let out = ok(&cft(&["data", "inspect", "valid.csv"], d));
    assert!(out.contains("2 images"), "{out}");
    let man = arff_dataset(d, "0.5");
    let arff = std::fs::read(d.join("toy.arff")).unwrap();
    bom("toy.arff", &arff);
    let out = ok(&cft(&["data", "inspect", man.to_str().unwrap()], d));
    assert!(out.contains("8 images, 2 categories"), "{out}");
}

#[test]
fn truncated_and_duplicated_rows_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(datasets().join("formats/instances_toy2014.json"), d.join("instances_toy2014.json")).unwrap();
    ok(&cft(&["data", "coco-labels", "--instances", "instances_toy2014.json", "--out", "labels.csv"], d));
    let csv = std::fs::read_to_string(d.join("labels.csv")).unwrap();
    // The last row cut after its path (was: read as an image with every label unknown).
    let cut = &csv[..csv.trim_end().rfind(',').unwrap() - 10];
    std::fs::write(d.join("cut.csv"), cut).unwrap();
    refused(
        &["data", "inspect", "cut.csv", "--categories-from", "instances_toy2014.json"],
        d,
        &["cut.csv:4: row", "truncated"],
    );
    // Duplicate category names in a COCO file.
    let text = std::fs::read_to_string(d.join("instances_toy2014.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut dup = v.clone();
    let first = dup["categories"][0]["name"].clone();
    dup["categories"][1]["name"] = first;
    std::fs::write(d.join("dup_cats.json"), serde_json::to_string(&dup).unwrap()).unwrap();
    refused(
        &["data", "inspect", "dup_cats.json"],
        d,
        &["dup_cats.json", "categories[1].name", "duplicate category name"],
    );
    // Duplicate studies in the CheXpert ground truth.
    let gt = "Study,Atelectasis,Cardiomegaly,Consolidation,Edema,Pleural Effusion\ns1,1,0,1,0,1\ns2,0,1,0,1,0\ns1,1,0,1,0,1\n";
    std::fs::write(d.join("gt.csv"), gt).unwrap();
    std::fs::write(d.join("pred.csv"), "Study,Atelectasis,Cardiomegaly,Consolidation,Edema,Pleural Effusion\ns1,0.9,0.1,0.8,0.2,0.7\ns2,0.1,0.9,0.2,0.8,0.3\n").unwrap();
    refused(
        &["chexpert-score", "--predictions", "pred.csv", "--groundtruth", "gt.csv"],
        d,
        &["gt.csv:4: Study", "duplicate study"],
    );
    // A malformed class-descriptions.csv (was: silently named by MIDs).
    let oi = d.join("oi");
    std::fs::create_dir(&oi).unwrap();
    for f in ["classes-trainable.txt", "annotations-human.csv"] {
        std::fs::copy(datasets().join("formats/openimages").join(f), oi.join(f)).unwrap();
    }
    std::fs::write(oi.join("class-descriptions.csv"), "/m/01,Cat\n/m/02,Dog,extra\n").unwrap();
    refused(&["data", "inspect", "oi"], d, &["class-descriptions.csv", "row"]);
}

#[test]
fn a_dataset_manifest_and_a_feature_set_can_be_inspected() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let scene = datasets().join("scene/manifest.json");
    let out = ok(&cft(&["data", "inspect", scene.to_str().unwrap()], d));
    assert!(out.contains("1211 images, 6 categories") && out.contains("| Beach |"), "{out}");
    feature_set(&d.join("f.safetensors"), 10, 2, 2, 3);
    let out = ok(&cft(&["data", "inspect", "f.safetensors"], d));
    assert!(out.contains("10 rows × 2 features") && out.contains("| c1 |"), "{out}");
}

/// A bounded fuzz: random output/input collisions over every command with outputs, and random
/// damage to a real checkpoint. Never a panic, never a changed input; a resumed run either
/// refuses or yields exactly the uninterrupted head.
#[test]
fn random_collisions_and_corrupted_checkpoints_never_panic_or_eat_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fixture(d);
    std::fs::copy(datasets().join("formats/instances_toy2014.json"), d.join("instances_toy2014.json")).unwrap();
    let inputs = ["train.safetensors", "valid.safetensors", "head.safetensors", "instances_toy2014.json"];
    let mut s: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = |n: usize| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s % n as u64) as usize
    };
    // (command with OUT where the output goes, the inputs it reads)
    type Build = fn(&str) -> Vec<String>;
    let commands: Vec<(Build, &[&str])> = vec![
        (|o| finetune_args(o, &[]).iter().map(|x| x.to_string()).collect(), &inputs[..3]),
        (|o| finetune_args("o.safetensors", &["--history", o]).iter().map(|x| x.to_string()).collect(), &inputs[..3]),
        (
            |o| {
                ["evaluate", "--head", "head.safetensors", "--data", "valid.safetensors", "--json", o]
                    .map(String::from)
                    .to_vec()
            },
            &inputs[1..3],
        ),
        (
            |o| ["train-head", "--train", "train.safetensors", "--mode", "an", "--out", o].map(String::from).to_vec(),
            &inputs[..1],
        ),
        (
            |o| ["data", "coco-labels", "--instances", "instances_toy2014.json", "--out", o].map(String::from).to_vec(),
            &inputs[3..],
        ),
        (
            |o| ["merge-features", "--out", o, "train.safetensors", "valid.safetensors"].map(String::from).to_vec(),
            &inputs[..2],
        ),
    ];
    for _ in 0..14 {
        let (build, reads) = commands[next(commands.len())];
        let input = reads[next(reads.len())];
        let spelled = match next(3) {
            0 => input.to_string(),
            1 => format!("./{input}"),
            _ => format!("{}/{input}", d.display()),
        };
        let cmd = build(&spelled);
        let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        refused(&args, d, &["refusing to overwrite an input"]);
    }
    // Corrupted checkpoints.
    ok(&cft(&finetune_args("full.safetensors", &["--method", "ga"]), d));
    let full = std::fs::read(d.join("full.safetensors")).unwrap();
    interrupted_checkpoint(d, "part.safetensors", &["--method", "ga"]);
    let progress = d.join("part.safetensors.progress.jsonl");
    let pristine = std::fs::read(&progress).unwrap();
    let (mut resumed, mut refused_runs) = (0, 0);
    for round in 0..12 {
        let mut bytes = pristine.clone();
        match round % 3 {
            0 => bytes.truncate(next(bytes.len())),
            1 => {
                let i = next(bytes.len());
                bytes[i] = b"0123456789,{}\"x"[next(15)];
            }
            _ => {
                let i = next(bytes.len());
                bytes.insert(i, b'\n');
            }
        }
        std::fs::write(&progress, &bytes).unwrap();
        let _ = std::fs::remove_file(d.join("part.safetensors.lock"));
        let _ = std::fs::remove_file(d.join("part.safetensors"));
        let out = cft(&finetune_args("part.safetensors", &["--method", "ga", "--resume"]), d);
        let code = out.status.code();
        assert!(code == Some(0) || code == Some(1), "round {round}: exit {code:?}: {}", stderr(&out));
        if code == Some(0) {
            assert_eq!(std::fs::read(d.join("part.safetensors")).unwrap(), full, "round {round}: another head");
            resumed += 1;
        } else {
            assert!(!d.join("part.safetensors").exists());
            refused_runs += 1;
        }
        for p in ["train.safetensors", "valid.safetensors", "head.safetensors"] {
            assert!(d.join(p).is_file());
        }
    }
    // Both outcomes occurred: cut lines were redone, altered ones refused.
    assert!(resumed > 0 && refused_runs > 0, "resumed {resumed}, refused {refused_runs}");
}

#[test]
fn reproduce_and_extract_refuse_to_resume_foreign_units_and_parts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The dataset in its own folder: outputs never go into (or around) an input's folder.
    std::fs::create_dir_all(d.join("data")).unwrap();
    arff_dataset(&d.join("data"), "0.5");
    ok(&cft(&["reproduce", "--dataset", "data/manifest.json", "--quick", "--out", "r"], d));
    let unit = d.join("r/toy/runs/p10-paper.json");
    assert!(unit.is_file());
    // Another GA seed: the units were computed with seed 0.
    refused(
        &["reproduce", "--dataset", "data/manifest.json", "--quick", "--out", "r", "--seed", "1", "--resume"],
        d,
        &["p", "refusing to resume", "ga_seed: checkpoint 0, this run 1"],
    );
    // Other data under the same name.
    let arff = std::fs::read_to_string(d.join("data/toy.arff")).unwrap();
    std::fs::write(d.join("data/toy.arff"), arff.replace("0.625", "0.6251")).unwrap();
    refused(
        &["reproduce", "--dataset", "data/manifest.json", "--quick", "--out", "r", "--resume"],
        d,
        &["refusing to resume", "the checkpoint was made from"],
    );
    // Same data and options: every unit is reused and the results are byte-identical.
    std::fs::write(d.join("data/toy.arff"), &arff).unwrap();
    let before = std::fs::read(d.join("r/toy/results.json")).unwrap();
    ok(&cft(&["reproduce", "--dataset", "data/manifest.json", "--quick", "--out", "r", "--resume"], d));
    assert_eq!(std::fs::read(d.join("r/toy/results.json")).unwrap(), before);

    // Extraction parts made at another image size.
    let r20 = common::Resnet20::bundled();
    let args = |size: &'static str| r20.extract(size, &["--chunk", "4", "--out", "f.safetensors"]);
    let mut a32 = args("32");
    a32.extend(["--abort-after-parts", "1"]);
    let o = cft_env(&a32, d, &[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    std::fs::remove_file(d.join("f.safetensors.lock")).unwrap();
    let mut a = args("40");
    a.push("--resume");
    refused(&a, d, &["fingerprint.json", "refusing to resume", "image_size: checkpoint 32, this run 40"]);
}

#[test]
fn pytorch_files_bf16_and_messages_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fixture(d);
    // A `torch.save` file (zip archive) where safetensors is expected.
    std::fs::write(d.join("model.pth"), b"PK\x03\x04\x14\x00\x00\x00rest-of-a-zip").unwrap();
    refused(
        &finetune_args("o.safetensors", &["--head", "model.pth"]),
        d,
        &["model.pth: a PyTorch `torch.save` file", "from safetensors.torch import save_file"],
    );
    let images = datasets().join("images");
    refused(
        &[
            "extract",
            "--backbone",
            "resnet20-cifar",
            "--weights",
            "model.pth",
            "--images",
            images.to_str().unwrap(),
            "--out",
            "f.safetensors",
        ],
        d,
        &["torch.save", "save_file"],
    );
    refused(
        &[
            "bench-backbone",
            "--backbone",
            "resnet20-cifar",
            "--image-size",
            "32",
            "--batch",
            "1",
            "--precision",
            "bf16",
        ],
        d,
        &["--precision bf16 runs on CUDA devices only"],
    );
    // One cause, once, with the path.
    let msg =
        refused(&finetune_args("o.safetensors", &["--train", "missing.safetensors"]), d, &["missing.safetensors"]);
    let line = msg.lines().find(|l| l.starts_with("error:")).unwrap();
    assert_eq!(line.matches("No such file or directory").count(), 1, "{line}");
    let msg = refused(&["data", "inspect", "nothing-here.json"], d, &["nothing-here.json"]);
    assert!(msg.matches("os error 2").count() <= 1, "{msg}");
    // The CUDA engine in a CPU build points at the CPU engine, not at the option already given.
    let msg =
        refused(&finetune_args("o.safetensors", &["--engine", "cuda", "--device", "cpu"]), d, &["--engine batched"]);
    assert!(!msg.contains("use --device cpu"), "{msg}");
}

#[test]
fn a_model_state_dict_head_is_fine_tuned_and_written_back_as_given() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fixture(d);
    let head = cft_data::read_head(&d.join("head.safetensors")).unwrap();
    // The head inside a DDP-wrapped model state dict, without a bias (nn.Linear(bias=False)).
    write_tensors(
        &d.join("model.safetensors"),
        &[
            ("module.conv1.weight", vec![2, 2], vec![0.1, 0.2, 0.3, 0.4]),
            ("module.fc.weight", vec![3, 4], head.weight.as_slice().to_vec()),
        ],
        None,
    );
    let out = ok(&cft(&finetune_args("o.safetensors", &["--head", "model.safetensors"]), d));
    assert!(out.contains("index") && !out.contains(" cat "), "{out}");
    let e = stderr(&cft(&finetune_args("p.safetensors", &["--head", "model.safetensors"]), d));
    assert!(e.contains("has no bias"), "{e}");
    let bytes = std::fs::read(d.join("o.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.names(), ["weight"]);
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("o.safetensors.manifest.json")).unwrap()).unwrap();
    assert_eq!(m["config"]["head_prefix"], "module.fc.");
    // `--head-key` picks a prefix explicitly; a wrong one names the file and the key.
    ok(&cft(&finetune_args("q.safetensors", &["--head", "model.safetensors", "--head-key", "fc"]), d));
    refused(
        &finetune_args("r.safetensors", &["--head", "model.safetensors", "--head-key", "classifier"]),
        d,
        &["model.safetensors", "no tensor `module.classifier.weight`"],
    );
}

#[test]
fn progress_is_logged_off_a_terminal_in_category_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fixture(d);
    let args = finetune_args("o.safetensors", &["--epochs", "200", "--patience", "200"]);
    let e = stderr(&cft_env(&args, d, &[("CFT_PROGRESS_INTERVAL", "0")]));
    let lines: Vec<&str> = e.lines().filter(|l| l.starts_with("CFT bp-asl (")).collect();
    // Plain lines (no bar drawing), advancing epoch by epoch before the first category is done.
    assert!(lines.len() > 10, "{e}");
    assert!(lines.iter().all(|l| !l.contains('\u{1b}') && l.contains("/600 (")), "{e}");
    assert!(lines.iter().any(|l| l.starts_with("CFT bp-asl (0/3 categories): 1") && !l.contains(": 0/")), "{e}");
    assert!(lines.last().unwrap().contains("600/600 (100%)"), "{e}");
}

#[test]
fn backbones_with_module_prefixes_bad_images_and_unchanged_categories_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The real ResNet-20 weights saved from a DataParallel model: every key under `module.`.
    let weights = datasets().join("weights/resnet20_cifar10.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let names: Vec<String> = st.names().iter().map(|n| format!("module.{n}")).collect();
    let views: Vec<(&str, safetensors::tensor::TensorView<'_>)> =
        st.names().iter().zip(&names).map(|(n, m)| (m.as_str(), st.tensor(n).unwrap())).collect();
    std::fs::write(d.join("ddp.safetensors"), safetensors::tensor::serialize(views, None).unwrap()).unwrap();
    let images = d.join("images");
    std::fs::create_dir(&images).unwrap();
    let photo = std::fs::read_dir(datasets().join("images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "jpg"))
        .unwrap();
    std::fs::copy(&photo, images.join("a.jpg")).unwrap();
    let args = |out: &'static str, policy: &'static str| {
        vec![
            "extract",
            "--backbone",
            "resnet20-cifar",
            "--weights",
            "ddp.safetensors",
            "--images",
            "images",
            "--image-size",
            "32",
            "--on-bad-image",
            policy,
            "--out",
            out,
        ]
    };
    ok(&cft(&args("f.safetensors", "fail"), d));
    assert_eq!(cft_data::read_feature_set(&d.join("f.safetensors")).unwrap().features.cols(), 64);
    // A truncated JPEG: the error says that skipping exists.
    let jpeg = std::fs::read(&photo).unwrap();
    std::fs::write(images.join("b.jpg"), &jpeg[..jpeg.len() / 3]).unwrap();
    refused(&args("g.safetensors", "fail"), d, &["b.jpg", "--on-bad-image skip"]);
    // A learning rate too small to change any ranking: every category is reported unchanged.
    fixture(d);
    let out = ok(&cft(&finetune_args("o.safetensors", &["--lr", "1e-9", "--epochs", "3"]), d));
    assert_eq!(out.matches("unchanged (no epoch beat the original)").count(), 3, "{out}");
}

#[test]
fn the_bundled_specs_give_the_pinned_numbers_and_bad_specs_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let experiments = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../experiments");
    let quick = experiments.join("scene-quick.toml");
    ok(&cft(&["run", quick.to_str().unwrap(), "--out", "q", "--datasets-dir", datasets().to_str().unwrap()], d));
    let pinned = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/pinned/scene_quick_results.json");
    assert_eq!(std::fs::read(d.join("q/scene/results.json")).unwrap(), std::fs::read(pinned).unwrap());
    // The full spec is `cft reproduce`: the same configuration as the committed reports/scene.
    let full = cft_experiment::spec::ExperimentSpec::load(&experiments.join("scene.toml")).unwrap();
    assert_eq!(full.protocol_config("scene"), cft_experiment::partial_label::ReproduceConfig::new("scene", false, 0));
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../reports/scene/runs/p10-paper.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let committed: cft_experiment::partial_label::ReproduceConfig =
        serde_json::from_value(committed["config"].clone()).unwrap();
    assert_eq!(committed, full.protocol_config("scene"));
    // Bad specs: one error naming the file and the key; nothing written.
    let text = std::fs::read_to_string(&quick).unwrap();
    for (name, bad, needle) in [
        ("unknown.toml", text.replace("[selection]", "[selection]\nholdout = 0.3"), "unknown field `holdout`"),
        ("type.toml", text.replace("population = 50", "population = \"50\""), "population"),
        // A list where one value is required (`patience = [50, 100]` is a grid: see tests/ablation.rs).
        ("list.toml", text.replace("dataset = \"scene\"", "dataset = \"scene\"\nname = [\"a\", \"b\"]"), "name"),
        ("range.toml", text.replace("bp_lr = 1e-4", "bp_lr = -1e-4"), "cft.bp_lr = -0.0001"),
        ("zero.toml", text.replace("population = 50", "population = 0"), "cft.ga.population = 0"),
        ("root.toml", text.replace("dataset = \"scene\"", "dataset = \"no/such/manifest.json\""), "data.dataset"),
    ] {
        std::fs::write(d.join(name), bad).unwrap();
        refused(&["run", name, "--out", "bad"], d, &[name, needle]);
    }
}

#[test]
fn the_feature_cache_reuses_extractions_of_the_same_key_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let r20 = common::Resnet20::bundled();
    let args = |size: &'static str, out: &'static str| r20.extract(size, &["--cache", "cache", "--out", out]);
    let first = cft(&args("32", "a.safetensors"), d);
    assert!(first.status.success() && !stderr(&first).contains("cache hit"), "{}", stderr(&first));
    let second = cft(&args("32", "b.safetensors"), d);
    assert!(second.status.success() && stderr(&second).contains("feature cache hit"), "{}", stderr(&second));
    let (a, b) = (
        cft_data::read_feature_set(&d.join("a.safetensors")).unwrap(),
        cft_data::read_feature_set(&d.join("b.safetensors")).unwrap(),
    );
    assert_eq!(a, b);
    assert_eq!(a.features.rows(), 9);
    // Another image size is another key: extracted, and cached beside the first.
    let third = cft(&args("40", "c.safetensors"), d);
    assert!(third.status.success() && !stderr(&third).contains("cache hit"), "{}", stderr(&third));
    assert_ne!(cft_data::read_feature_set(&d.join("c.safetensors")).unwrap().features, a.features);
    let entries = std::fs::read_dir(d.join("cache")).unwrap().count();
    assert_eq!(entries, 4, "two entries of two files each");
    // A damaged entry, or one that holds other images' features (a row fewer, other names) is
    // never reused: the run says so, extracts again and repairs the entry.
    let entry_of = |size_out: &str| {
        let log = stderr(&cft(&args("32", "probe.safetensors"), d));
        assert!(log.contains("feature cache hit"), "{size_out}: {log}");
        let path = log.split("feature cache hit: ").nth(1).unwrap().split(' ').next().unwrap().to_string();
        d.join(path)
    };
    let features = entry_of("32");
    let meta = features.with_extension("json");
    let damage: [(&str, &dyn Fn()); 3] = [
        ("is not a cache entry's record", &|| std::fs::write(&meta, "{\"fingerprint\": 1}").unwrap()),
        ("8 images where this list has 9", &|| {
            let mut set = cft_data::read_feature_set(&features).unwrap();
            let rows: Vec<usize> = (0..8).collect();
            set.features = set.features.gather_rows(&rows);
            set.paths = set.paths.map(|p| p[..8].to_vec());
            cft_data::write_feature_set(&features, &set, cft_core::Precision::F32).unwrap();
        }),
        ("first difference at row 0", &|| {
            let mut set = cft_data::read_feature_set(&features).unwrap();
            set.paths = set.paths.map(|p| p.iter().map(|n| format!("other/{n}")).collect());
            cft_data::write_feature_set(&features, &set, cft_core::Precision::F32).unwrap();
        }),
    ];
    for (why, damage) in damage {
        damage();
        let o = cft(&args("32", "d.safetensors"), d);
        let log = stderr(&o);
        assert!(o.status.success() && log.contains(why) && log.contains("extracting again"), "{why}: {log}");
        assert_eq!(cft_data::read_feature_set(&d.join("d.safetensors")).unwrap(), a, "{why}: extracted again");
        assert!(stderr(&cft(&args("32", "e.safetensors"), d)).contains("feature cache hit"), "{why}: repaired");
    }
}

#[test]
fn evaluate_reports_frequency_groups_ordered_by_training_counts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Six categories; the training positives per category are 4, 1, 3, 6, 2, 5 (unknown elsewhere).
    let pos = [4usize, 1, 3, 6, 2, 5];
    let n = 8;
    let labels: Vec<f32> = (0..n * 6)
        .map(|i| {
            if i / 6 < pos[i % 6] {
                1.0
            } else if i / 6 == 7 {
                0.0
            } else {
                f32::NAN
            }
        })
        .collect();
    let names = ["a", "b", "c", "d", "e", "f"];
    write_tensors(
        &d.join("train.safetensors"),
        &[("features", vec![n, 1], vec![1.0; n]), ("labels", vec![n, 6], labels)],
        Some(&names),
    );
    feature_set_named(&d.join("test.safetensors"), &names);
    let head = (0..6).map(|k| 0.1 * k as f32 - 0.2).collect::<Vec<f32>>();
    write_tensors(
        &d.join("head.safetensors"),
        &[("weight", vec![6, 2], head.iter().flat_map(|w| [*w, -*w]).collect()), ("bias", vec![6], vec![0.0; 6])],
        Some(&names),
    );
    let out = ok(&cft(
        &[
            "evaluate",
            "--head",
            "head.safetensors",
            "--data",
            "test.safetensors",
            "--groups",
            "3",
            "--group-counts-from",
            "train.safetensors",
            "--json",
            "ev.json",
        ],
        d,
    ));
    let ev: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(d.join("ev.json")).unwrap()).unwrap();
    let per: Vec<f64> = ev["per_category"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    // Ascending by positives: b(1) e(2) | c(3) a(4) | f(5) d(6).
    let want = [[1usize, 4], [2, 0], [5, 3]];
    for (g, classes) in want.iter().enumerate() {
        let got = &ev["groups"]["groups"][g];
        let cls: Vec<usize> = got["classes"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        assert_eq!(&cls, classes, "{out}");
        let mean = (per[classes[0]] + per[classes[1]]) / 2.0;
        assert!((got["mean"].as_f64().unwrap() - mean).abs() < 1e-15, "{out}");
    }
    assert_eq!(ev["groups"]["by"], "positives");
    assert!(out.contains("G1 (2 categories, known positives per category 1–2)"), "{out}");
    refused(
        &[
            "evaluate",
            "--head",
            "head.safetensors",
            "--data",
            "test.safetensors",
            "--groups",
            "9",
            "--group-counts-from",
            "train.safetensors",
        ],
        d,
        &["--groups 9: expected 1 to 6"],
    );
}

/// A two-feature labelled set over the given category names (every label known).
fn feature_set_named(path: &Path, names: &[&str]) {
    let n = 12;
    let c = names.len();
    let features: Vec<f32> = (0..n * 2).map(|i| ((i * 7) % 11) as f32 / 11.0 - 0.4).collect();
    let labels: Vec<f32> = (0..n * c).map(|i| if (i * 5 + i / c).is_multiple_of(3) { 1.0 } else { 0.0 }).collect();
    write_tensors(path, &[("features", vec![n, 2], features), ("labels", vec![n, c], labels)], Some(names));
}
