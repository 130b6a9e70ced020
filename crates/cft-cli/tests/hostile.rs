//! The hostile cases of the specs, grids, image trees and weights surfaces: each is one clear
//! refusal (exit 1, a message naming the file, key or value, nothing written) or a correct
//! result — never a panic, an abort for memory, a hang, or an input overwritten.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn cft_in(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cft"))
        .args(args)
        .current_dir(dir)
        .env("CFT_PROGRESS_INTERVAL", "0")
        .output()
        .expect("runs cft")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

use common::{refused, snapshot};

fn ok_in(args: &[&str], dir: &Path) -> String {
    let o = cft_in(args, dir);
    assert!(o.status.success(), "{args:?} failed:\n{}", stderr(&o));
    String::from_utf8_lossy(&o.stdout).into_owned() + &stderr(&o)
}

/// Copies a bundled dataset folder into `to/<name>`.
fn copy_dataset(name: &str, to: &Path) {
    let dst = to.join(name);
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(repo().join("datasets").join(name)).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dst.join(p.file_name().unwrap())).unwrap();
    }
}

const QUICK: &str = "[data]\ndataset = \"flags\"\n[labels]\nproportions = [0.5]\n[cft]\nmethods = [\"bp-bce\"]\nmax_epochs = 30\npatience = 5\n";

#[test]
fn outputs_never_go_into_or_around_an_input_dataset_folder() {
    let d = tempfile::tempdir().unwrap();
    let ds = d.path().join("ds");
    copy_dataset("flags", &ds);
    copy_dataset("emotions", &ds);
    // flags data reported under the name of another dataset, into the datasets folder.
    let spec = d.path().join("named.toml");
    std::fs::write(&spec, QUICK.replace("dataset = \"flags\"", "dataset = \"flags\"\nname = \"emotions\"")).unwrap();
    let s = spec.to_str().unwrap();
    refused(&["run", s, "--out", "ds", "--datasets-dir", "ds"], d.path(), &["--out", "contains", "ds/flags"]);
    refused(&["run", s, "--out", "ds/flags/reports", "--datasets-dir", "ds"], d.path(), &["lies inside", "ds/flags"]);
    refused(&["run", s, "--out", "ds/flags", "--datasets-dir", "ds"], d.path(), &["--out is the dataset folder"]);
    refused(
        &["reproduce", "--quick", "--dataset", "emotions", "--datasets-dir", "ds", "--out", "ds"],
        d.path(),
        &["contains"],
    );
    // Apart from the inputs it runs.
    ok_in(&["run", s, "--out", "reports", "--datasets-dir", "ds"], d.path());
    assert!(d.path().join("reports/emotions/results.json").is_file());
}

#[test]
fn resource_limits_are_checked_before_allocating_with_their_numbers() {
    let d = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        std::fs::write(d.path().join(name), text).unwrap();
        name.to_string()
    };
    let p = write("pop.toml", &format!("{QUICK}[cft.ga]\npopulation = 1000000000000\n"));
    refused(&["run", &p, "--out", "o"], d.path(), &["cft.ga.population = 1000000000000", "10000"]);
    let p = write("pop2.toml", &format!("{QUICK}[cft.ga]\npopulation = 20000000\n"));
    refused(&["run", &p, "--out", "o"], d.path(), &["cft.ga.population = 20000000"]);
    let image = "[data]\nsource = \"coco2014\"\nroot = \"nowhere\"\n[backbone]\nname = \"resnet50\"\nimage_size = 4096\n[labels]\nproportions = [0.5]\n";
    let p = write("big.toml", image);
    refused(&["run", &p, "--out", "o"], d.path(), &["backbone.image_size = 4096", "2048"]);
    let p = write("batch.toml", &image.replace("image_size = 4096", "image_size = 1024\nbatch = 64"));
    refused(&["run", &p, "--out", "o"], d.path(), &["backbone.batch = 64", "67108864 pixels", "lower the batch to 12"]);
    let images = repo().join("datasets/images");
    let w = common::Resnet20::bundled();
    let extract = |size: &'static str, batch: &'static str| {
        vec![
            "extract",
            "--backbone",
            "resnet20-cifar",
            "--weights",
            w.weights(),
            "--images",
            images.to_str().unwrap(),
            "--image-size",
            size,
            "--batch",
            batch,
            "--out",
            "f.safetensors",
        ]
    };
    refused(&extract("4096", "1"), d.path(), &["--image-size 4096", "2048"]);
    refused(&extract("2048", "32"), d.path(), &["--batch 32", "lower --batch to 3"]);
    // A grid of 10^12 cells is refused at once, with the count.
    let lists: String = ["bp_lr", "max_epochs", "patience", "ga_seed"]
        .iter()
        .enumerate()
        .map(|(k, key)| {
            let values: Vec<String> =
                (1..=1000).map(|v| if k == 0 { format!("{}e-6", v) } else { v.to_string() }).collect();
            format!("{key} = [{}]\n", values.join(", "))
        })
        .collect();
    let p = write("huge.toml", &format!("[data]\ndataset = \"flags\"\n[labels]\nproportions = [0.5]\n[cft]\n{lists}"));
    let t = Instant::now();
    refused(&["run", &p, "--out", "o"], d.path(), &["a grid of 1000000000000 cells", "at most 10000"]);
    assert!(t.elapsed() < Duration::from_secs(60), "the refusal took {:?}", t.elapsed());
}

#[test]
fn colliding_proportions_duplicate_seeds_and_methods_are_refused() {
    let d = tempfile::tempdir().unwrap();
    for (name, text, needle) in [
        ("half.toml", QUICK.replace("[0.5]", "[0.5, 0.5]"), "labels.proportions[1] = 0.5: names the same unit (50%)"),
        ("near.toml", QUICK.replace("[0.5]", "[0.101, 0.104]"), "labels.proportions[1] = 0.104"),
        ("tiny.toml", QUICK.replace("[0.5]", "[0.004, 0.003]"), "(0%)"),
        ("seeds.toml", format!("seeds = [1, 1]\n{QUICK}"), "seeds: 1 appears twice"),
        ("methods.toml", QUICK.replace("[\"bp-bce\"]", "[\"ga\", \"ga\"]"), "cft.methods[1] = \"ga\": appears twice"),
        ("values.toml", QUICK.replace("patience = 5", "patience = [5, 5]"), "cft.patience[1] = 5: appears twice"),
    ] {
        std::fs::write(d.path().join(name), text).unwrap();
        refused(&["run", name, "--out", "o"], d.path(), &[name, needle]);
    }
}

const GRID: &str = "description = \"hostile grid\"\n[data]\ndataset = \"flags\"\n[labels]\nproportions = [0.5]\n[cft]\nmethods = [\"bp-bce\"]\nbp_lr = [1e-4, 1e-2]\nmax_epochs = 30\npatience = 5\n";

#[test]
fn a_grid_without_seeds_shows_no_interval_and_edited_grids_are_refused() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("g.toml"), GRID).unwrap();
    ok_in(&["run", "g.toml", "--out", "out"], d.path());
    let summary = std::fs::read_to_string(d.path().join("out/g/summary.md")).unwrap();
    assert!(summary.contains("(n = 1)") && !summary.contains("± 0.00"), "{summary}");
    // grid.json edited by hand: its params no longer fit its keys.
    let grid_path = d.path().join("out/g/grid.json");
    let original = std::fs::read_to_string(&grid_path).unwrap();
    let mut grid: serde_json::Value = serde_json::from_str(&original).unwrap();
    grid["param_keys"] = serde_json::json!(["cft.bp_lr", "cft.patience"]);
    std::fs::write(&grid_path, serde_json::to_string_pretty(&grid).unwrap()).unwrap();
    refused(&["report", "out"], d.path(), &["grid.json", "param_keys"]);
    std::fs::write(&grid_path, &original).unwrap();
    // A cell folder's manifest says it ran with another learning rate than the grid gives it.
    let cell = d.path().join("out/g/cells/c001/manifest.json");
    let text = std::fs::read_to_string(&cell).unwrap();
    std::fs::write(&cell, text.replace("\"bp_lr\": 0.01", "\"bp_lr\": 0.5")).unwrap();
    refused(&["report", "out"], d.path(), &["c001/manifest.json", "bp_lr: ran with 0.5, the grid says 0.01"]);
    std::fs::write(&cell, text).unwrap();
    // The spec edited between shards: the second shard refuses to mix its cells in.
    std::fs::write(d.path().join("s.toml"), GRID).unwrap();
    ok_in(&["run", "s.toml", "--out", "sh", "--shard", "0/2"], d.path());
    std::fs::write(d.path().join("s.toml"), GRID.replace("1e-2", "1e-3")).unwrap();
    refused(&["run", "s.toml", "--out", "sh", "--shard", "1/2"], d.path(), &["another version of this grid"]);
}

#[test]
fn undefined_scores_in_a_tidy_table_are_gaps_not_a_hang() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("g.toml"), GRID).unwrap();
    std::fs::create_dir_all(d.path().join("out")).unwrap();
    ok_in(&["run", "g.toml", "--out", "out/ablations"], d.path());
    // Without cells, `cft report` reads the tidy table as it is (the committed layout).
    std::fs::remove_dir_all(d.path().join("out/ablations/g/cells")).unwrap();
    let tidy = d.path().join("out/ablations/g/tidy.csv");
    let text = std::fs::read_to_string(&tidy).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let score = header.iter().position(|h| *h == "score").unwrap();
    let nan: String = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i > 0 && i % 3 == 0 {
                let mut f: Vec<&str> = l.split(',').collect();
                f[score] = "NaN";
                f.join(",") + "\n"
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&tidy, nan).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cft"))
        .args(["report", "out"])
        .current_dir(d.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > Duration::from_secs(120) {
            child.kill().unwrap();
            panic!("cft report on NaN scores still runs after 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
    // A parameter value edited in the table: not a cell of its grid, refused by name.
    let text = std::fs::read_to_string(&tidy).unwrap();
    let lr = text.lines().next().unwrap().split(',').position(|h| h == "cft.bp_lr").unwrap();
    let edited: String = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let mut f: Vec<&str> = l.split(',').collect();
            if i == 1 {
                f[lr] = "0.5";
            }
            f.join(",") + "\n"
        })
        .collect();
    std::fs::write(&tidy, edited).unwrap();
    refused(&["report", "out"], d.path(), &["tidy.csv", "values [\"0.5\"] is not a cell of"]);
}

#[test]
fn two_runs_into_one_output_at_once_never_both_write() {
    let d = tempfile::tempdir().unwrap();
    // Same report folder (`flags`), different settings: they must not interleave.
    let slow = QUICK
        .replace("[\"bp-bce\"]", "[\"ga\"]")
        .replace("max_epochs = 30", "max_epochs = 2000")
        .replace("patience = 5", "patience = 2000");
    std::fs::write(d.path().join("a.toml"), slow.replace("[0.5]", "[0.3, 0.5, 0.7]")).unwrap();
    std::fs::write(d.path().join("b.toml"), slow.replace("[0.5]", "[0.4, 0.6, 0.8]")).unwrap();
    let spawn = |spec: &str| {
        Command::new(env!("CARGO_BIN_EXE_cft"))
            .args(["run", spec, "--out", "o"])
            .current_dir(d.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("a.toml"), spawn("b.toml"));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let refusals = [&a, &b].iter().filter(|o| stderr(o).contains("another cft process")).count();
    let wins = [&a, &b].iter().filter(|o| o.status.success()).count();
    assert_eq!((wins, refusals), (1, 1), "a: {}\nb: {}", stderr(&a), stderr(&b));
    let lockfiles: Vec<_> =
        snapshot(d.path()).into_iter().filter(|(p, _)| p.to_string_lossy().contains(".lock")).collect();
    assert!(lockfiles.is_empty(), "{lockfiles:?}");
}

#[test]
fn checkpoints_with_non_finite_weights_or_negative_variances_are_refused_by_tensor() {
    let d = tempfile::tempdir().unwrap();
    let w = common::Resnet20::bundled();
    let tensors = common::read_tensors(Path::new(w.weights()));
    for (file, target, value, needle) in [
        ("nan.safetensors", "conv1.weight", f32::NAN, "tensor `conv1.weight` holds a non-finite value (NaN"),
        ("var.safetensors", "bn1.running_var", -0.5, "tensor `bn1.running_var` has a negative variance (-0.5"),
    ] {
        let mut edited = tensors.clone();
        edited.iter_mut().filter(|(n, _, _)| n == target).for_each(|(_, _, v)| v[3] = value);
        common::write_owned(&d.path().join(file), &edited);
        let images = repo().join("datasets/images");
        refused(
            &[
                "extract",
                "--backbone",
                "resnet20-cifar",
                "--weights",
                file,
                "--images",
                images.to_str().unwrap(),
                "--image-size",
                "32",
                "--out",
                "f.safetensors",
            ],
            d.path(),
            &[file, needle],
        );
    }
}
