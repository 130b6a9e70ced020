//! The paper's three datasets end to end on miniature trees in their *real* formats, built
//! from the bundled photos: a COCO 2014 tree (instances JSON in the official schema + JPEGs),
//! an OpenImages V3 tree (`classes-trainable.txt`, `class-descriptions.csv`,
//! `{train,test}/annotations-human.csv`, images) and a CheXpert tree (`train.csv`, `valid.csv`,
//! images), each through `cft run`: extraction with the real CIFAR ResNet-20, labels, base
//! heads, CFT, evaluation and the report's "ours" row. Killed mid-run, `--resume` finishes with
//! byte-identical results. The numbers of such tiny trees are plumbing, not claims.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn cft(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cft"));
    // The user-level feature cache of these runs: one folder under cargo's test scratch space
    // (shared by the tests of this binary: entries are keyed by image contents).
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("paper-datasets-feature-cache");
    c.args(args).env("CFT_PROGRESS_INTERVAL", "0").env("CFT_CACHE_DIR", cache);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn ok(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "cft failed: {err}");
    String::from_utf8_lossy(&o.stdout).to_string() + &err
}

fn failed(o: &Output) -> String {
    assert!(!o.status.success(), "cft succeeded where it should fail");
    String::from_utf8_lossy(&o.stderr).to_string()
}

use common::photos;

/// Copies photo `i % 9` to `to` (creating folders).
fn photo(i: usize, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    let p = photos();
    std::fs::copy(&p[i % p.len()], to).unwrap();
}

/// A fixed label pattern with positives and negatives in every category of every split.
fn positive(image: usize, category: usize) -> bool {
    (image * 7 + category * 3) % 5 < 2
}

/// A COCO 2014 tree: `annotations/instances_{train,val}2014.json` + `train2014/`, `val2014/`.
fn coco_tree(root: &Path) {
    let cats = [(1, "person", "person"), (3, "car", "vehicle"), (18, "dog", "animal")];
    for (split, n, first_id) in [("train2014", 16usize, 100u64), ("val2014", 10, 900)] {
        let mut images = Vec::new();
        let mut anns = Vec::new();
        for i in 0..n {
            let id = first_id + i as u64;
            let file = format!("COCO_{split}_{id:012}.jpg");
            photo(i + first_id as usize, &root.join(split).join(&file));
            images.push(serde_json::json!({"id": id, "file_name": file, "width": 640, "height": 480, "license": 1}));
            for (k, (cid, _, _)) in cats.iter().enumerate() {
                if positive(i + first_id as usize, k) {
                    anns.push(serde_json::json!({
                        "id": anns.len() + 1, "image_id": id, "category_id": cid,
                        "bbox": [10.0, 10.0, 50.0, 40.0], "area": 2000.0, "iscrowd": 0, "segmentation": []
                    }));
                }
            }
        }
        let categories: Vec<_> = cats
            .iter()
            .map(|(id, name, sup)| serde_json::json!({"id": id, "name": name, "supercategory": sup}))
            .collect();
        let doc = serde_json::json!({
            "info": {"description": "miniature COCO 2014 tree (bundled photos)"}, "licenses": [],
            "images": images, "annotations": anns, "categories": categories
        });
        std::fs::create_dir_all(root.join("annotations")).unwrap();
        std::fs::write(root.join(format!("annotations/instances_{split}.json")), doc.to_string()).unwrap();
    }
}

/// An OpenImages V3 tree: class lists, `{train,test}/annotations-human.csv`, images.
fn openimages_tree(root: &Path) {
    let mids = ["/m/01g317", "/m/0199g", "/m/09j2d", "/m/0k4j"];
    std::fs::create_dir_all(root).unwrap();
    std::fs::write(root.join("classes-trainable.txt"), mids.join("\n") + "\n").unwrap();
    std::fs::write(
        root.join("class-descriptions.csv"),
        "/m/01g317,Person\n/m/0199g,Bicycle\n/m/09j2d,Clothing\n/m/0k4j,Car\n/m/0untrain,Untrainable\n",
    )
    .unwrap();
    for (split, n, first) in [("train", 20usize, 0usize), ("test", 10, 50)] {
        let mut csv = String::from("ImageID,Source,LabelName,Confidence\n");
        for i in 0..n {
            let id = format!("{:016x}", 0xa000 + first + i);
            photo(first + i, &root.join(split).join(format!("{id}.jpg")));
            for (k, mid) in mids.iter().enumerate() {
                // Real partial labels: about a third of the (image, class) pairs unverified.
                if (first + i + k) % 3 == 2 {
                    continue;
                }
                let conf = u8::from(positive(first + i, k));
                csv.push_str(&format!("{id},verification,{mid},{conf}\n"));
            }
            csv.push_str(&format!("{id},machine,/m/0untrain,0.8\n"));
        }
        std::fs::write(root.join(split).join("annotations-human.csv"), csv).unwrap();
    }
}

/// A CheXpert tree as distributed: `CheXpert-v1.0-small/{train,valid}.csv` whose `Path`
/// column starts with the folder's own name.
fn chexpert_tree(parent: &Path) -> PathBuf {
    let root = parent.join("CheXpert-v1.0-small");
    let header = "Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,Lung Opacity,Lung Lesion,Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,Fracture,Support Devices";
    // Column of each competition task among the 14 observations.
    let tasks = [("Cardiomegaly", 2), ("Edema", 5), ("Consolidation", 6), ("Atelectasis", 8), ("Pleural Effusion", 10)];
    for (split, n, first) in [("train", 20usize, 0usize), ("valid", 10, 60)] {
        let mut csv = format!("{header}\n");
        for i in 0..n {
            let rel = format!("CheXpert-v1.0-small/{split}/patient{:05}/study1/view1_frontal.jpg", first + i + 1);
            photo(first + i, &parent.join(&rel));
            let mut obs = vec![String::new(); 14];
            for (k, (_, col)) in tasks.iter().enumerate() {
                obs[*col] = if split == "train" && (first + i + k) % 4 == 3 {
                    if (i + k) % 2 == 0 {
                        "-1.0".into()
                    } else {
                        String::new()
                    }
                } else if positive(first + i, k) {
                    "1.0".into()
                } else {
                    "0.0".into()
                };
            }
            csv.push_str(&format!("{rel},Female,{},Frontal,AP,{}\n", 40 + i, obs.join(",")));
        }
        std::fs::write(root.join(format!("{split}.csv")), csv).unwrap();
    }
    root
}

/// A test spec: the shipped spec's settings at miniature scale (ResNet-20 at 32 px, few epochs).
fn spec(dir: &Path, name: &str, source: &str, labels: &str, evaluation: &str) -> PathBuf {
    let text = format!(
        r#"description = "miniature {source} tree"
[data]
source = "{source}"
name = "{name}"
[backbone]
name = "resnet20-cifar"
image_size = 32
normalize = "none"
batch = 8
[labels]
{labels}
[evaluation]
{evaluation}
[cft]
max_epochs = 40
patience = 10
[output]
notes = ["Miniature tree built from the bundled photos: plumbing, not a claim."]
"#
    );
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

/// A reports folder with the published numbers, as `cft report` expects.
fn reports(dir: &Path) -> PathBuf {
    let out = dir.join("reports");
    std::fs::create_dir_all(out.join("reference")).unwrap();
    std::fs::copy(repo().join("reports/reference/paper_results.csv"), out.join("reference/paper_results.csv")).unwrap();
    std::fs::copy(repo().join("reports/reference/reference_timings.csv"), out.join("reference/reference_timings.csv"))
        .unwrap();
    out
}

/// Runs `spec` on `root` into a fresh reports folder, then again killed after one unit and
/// resumed; returns the first folder and checks the resumed `results.json` equals it byte for byte.
fn run_and_resume(dir: &Path, spec: &Path, root: &Path, name: &str) -> PathBuf {
    let w = common::Resnet20::bundled();
    let weights = w.weights();
    let out = reports(&dir.join("a"));
    let args = |out: &Path| -> Vec<String> {
        [
            "run",
            &spec.display().to_string(),
            "--data-root",
            &root.display().to_string(),
            "--weights",
            weights,
            "--out",
            &out.display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let a = args(&out);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let log = ok(&cft(&a, &[]));
    assert!(log.contains("wrote"), "{log}");
    let out_b = reports(&dir.join("b"));
    let b = args(&out_b);
    let mut b: Vec<&str> = b.iter().map(String::as_str).collect();
    // One thread: units run one after another, and the run stops after the first.
    let interrupted: Vec<&str> = b.iter().copied().chain(["--abort-after-units", "1"]).collect();
    let err = failed(&cft(&interrupted, &[("RAYON_NUM_THREADS", "1")]));
    assert!(err.contains("interrupted"), "{err}");
    assert!(!out_b.join(name).join("results.json").exists(), "an interrupted run wrote results");
    let units = std::fs::read_dir(out_b.join(name).join("runs"))
        .unwrap()
        .filter(|e| {
            e.as_ref().unwrap().path().to_string_lossy().ends_with("paper.json")
                || e.as_ref().unwrap().path().to_string_lossy().ends_with("held-out.json")
        })
        .count();
    assert_eq!(units, 1, "the interrupted run should keep exactly its one finished unit");
    b.push("--resume");
    let log = ok(&cft(&b, &[]));
    assert!(log.contains("feature cache hit"), "the resumed run extracted again: {log}");
    let first = std::fs::read(out.join(name).join("results.json")).unwrap();
    let resumed = std::fs::read(out_b.join(name).join("results.json")).unwrap();
    assert!(first == resumed, "{name}: resumed results differ from the uninterrupted run");
    out
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn results(out: &Path, name: &str) -> serde_json::Value {
    serde_json::from_str(&read(&out.join(name).join("results.json"))).unwrap()
}

#[test]
fn coco2014_tree_end_to_end_into_the_coco_table() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("coco2014");
    coco_tree(&root);
    let s = spec(d.path(), "coco2014-mini", "coco2014", "proportions = [0.3, 0.7]", "metric = \"ap\"");
    let out = run_and_resume(d.path(), &s, &root, "coco2014-mini");
    let r = results(&out, "coco2014-mini");
    assert_eq!(r["paper_table"], "coco2014");
    assert_eq!(r["categories"], serde_json::json!(["person", "car", "dog"]));
    assert_eq!(r["proportions"], serde_json::json!([0.3, 0.7]));
    // 2 base heads + 3 CFT rows under each of 2 protocols, every cell a finite mAP.
    let rows = r["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 10);
    for row in rows {
        for cell in row["cells"].as_array().unwrap() {
            let m = cell["mean"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&m), "{cell}");
        }
    }
    // The extracted features have one row per image and ResNet-20's 64 dimensions.
    let inspect = ok(&cft(
        &["data", "inspect", &out.join("coco2014-mini/features/train.safetensors").display().to_string()],
        &[],
    ));
    assert!(inspect.contains("16") && inspect.contains("64"), "{inspect}");
    // The COCO table's ours rows hold exactly the run's values, linked to their units.
    let table = read(&out.join("tables/coco.md"));
    let an = &rows[0];
    assert_eq!(an["method"], "AN");
    let v30 = format!("{:.2}", 100.0 * an["cells"][0]["mean"].as_f64().unwrap());
    let line = table.lines().find(|l| l.starts_with("| AN | ours | paper |")).expect("ours AN row");
    assert!(line.contains(&format!("[{v30}](../coco2014-mini/runs/p30-paper.json)")), "{line}");
    assert!(!table.contains("ours (CFT)"), "the COCO table still says ours were not run: {table}");
    let index = read(&out.join("README.md"));
    assert!(index.contains("plumbing, not a claim"), "the report does not say the numbers are plumbing");
    assert!(index.contains("linear AN and Ignore heads trained on frozen resnet20-cifar features"), "{index}");
    assert!(index.contains("| OpenImages V3 | not run"), "{index}");
}

/// A copy of the ResNet-20 weights with its first convolution scaled: other features.
fn perturbed_weights(from: &str, to: &Path) {
    let mut tensors = common::read_tensors(Path::new(from));
    let first_conv = tensors.iter().position(|(n, _, _)| n.contains("conv") && n.ends_with("weight")).unwrap();
    tensors[first_conv].2.iter_mut().for_each(|v| *v *= 1.25);
    common::write_owned(to, &tensors);
}

#[test]
fn coco2014_with_a_checkpoint_per_proportion() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("coco2014");
    coco_tree(&root);
    let w = common::Resnet20::bundled();
    std::fs::copy(w.weights(), d.path().join("ckpt_30.safetensors")).unwrap();
    perturbed_weights(w.weights(), &d.path().join("ckpt_70.safetensors"));
    let s = spec(d.path(), "coco-pp", "coco2014", "proportions = [0.3, 0.7]", "metric = \"ap\"");
    let run = |weights: &str, out: &Path| {
        let r = root.to_str().unwrap();
        ok(&cft(
            &["run", s.to_str().unwrap(), "--data-root", r, "--weights", weights, "--out", out.to_str().unwrap()],
            &[],
        ));
        results(out, "coco-pp")
    };
    let template = d.path().join("ckpt_{percent}.safetensors");
    let per = run(template.to_str().unwrap(), &d.path().join("per"));
    let one = run(w.weights(), &d.path().join("one"));
    let out = d.path().join("per/coco-pp/features");
    assert!(out.join("p30-train.safetensors").is_file() && out.join("p70-test.safetensors").is_file());
    // 30%: the same checkpoint as the single run, so the same numbers; 70%: another network.
    for (row_per, row_one) in per["rows"].as_array().unwrap().iter().zip(one["rows"].as_array().unwrap()) {
        assert_eq!(row_per["cells"][0]["per_category"], row_one["cells"][0]["per_category"], "{}", row_per["method"]);
    }
    let differ = per["rows"]
        .as_array()
        .unwrap()
        .iter()
        .zip(one["rows"].as_array().unwrap())
        .any(|(a, b)| a["cells"][1]["per_category"] != b["cells"][1]["per_category"]);
    assert!(differ, "the 70% units did not use the 70% checkpoint");
    // A template with real labels is refused before any work.
    let s2 = spec(d.path(), "coco-real", "coco2014", "source = \"real\"", "metric = \"ap\"");
    let e = failed(&cft(
        &[
            "run",
            s2.to_str().unwrap(),
            "--data-root",
            root.to_str().unwrap(),
            "--weights",
            template.to_str().unwrap(),
            "--out",
            d.path().join("x").to_str().unwrap(),
        ],
        &[],
    ));
    assert!(e.contains("{percent}") && e.contains("drop"), "{e}");
    assert!(!d.path().join("x").exists());
}

#[test]
fn openimages_tree_end_to_end_with_real_labels_and_groups() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("openimages_v3");
    openimages_tree(&root);
    let s = spec(d.path(), "openimages-mini", "openimages_v3", "source = \"real\"", "metric = \"ap\"\ngroups = 2");
    let out = run_and_resume(d.path(), &s, &root, "openimages-mini");
    let r = results(&out, "openimages-mini");
    assert_eq!(r["paper_table"], "openimages_v3");
    assert_eq!(r["categories"], serde_json::json!(["Person", "Bicycle", "Clothing", "Car"]));
    // Known fraction of the training labels: 2 of every 3 (image, class) pairs verified.
    let known = r["proportions"][0].as_f64().unwrap();
    let want = (0..20).flat_map(|i| (0..4).map(move |k| (i + k) % 3 != 2)).filter(|&b| b).count() as f64 / 80.0;
    assert!((known - want).abs() < 1e-6, "{known} vs {want}");
    let cell = &r["rows"][0]["cells"][0];
    // Group means equal the means of the per-class APs of the classes in each group, the
    // classes sorted by their positive training labels (ties by index).
    let per: Vec<Option<f64>> = cell["per_category"].as_array().unwrap().iter().map(|v| v.as_f64()).collect();
    let counts: Vec<usize> = (0..4).map(|k| (0..20).filter(|&i| (i + k) % 3 != 2 && positive(i, k)).count()).collect();
    let mut order: Vec<usize> = (0..4).collect();
    order.sort_by_key(|&k| (counts[k], k));
    for (g, classes) in order.chunks(2).enumerate() {
        let vals: Vec<f64> = classes.iter().filter_map(|&k| per[k]).collect();
        let mean = vals.iter().sum::<f64>() / vals.len() as f64;
        let got = cell["groups"][g]["mean"].as_f64().unwrap();
        assert!((got - mean).abs() < 1e-12, "G{}: {got} vs {mean}", g + 1);
    }
    let table = read(&out.join("tables/openimages.md"));
    let line = table.lines().find(|l| l.starts_with("| AN | ours | paper |")).expect("ours AN row");
    let g1 = format!("{:.2}", 100.0 * cell["groups"][0]["mean"].as_f64().unwrap());
    assert!(line.contains(&g1), "{line}");
    assert!(read(&out.join("README.md")).contains("unknown labels masked"));
}

#[test]
fn chexpert_tree_end_to_end_with_validation_auc() {
    let d = tempfile::tempdir().unwrap();
    let root = chexpert_tree(d.path());
    let s =
        spec(d.path(), "chexpert-mini", "chexpert", "source = \"real\"\nuncertain = \"ignore\"", "metric = \"auc\"");
    let out = run_and_resume(d.path(), &s, &root, "chexpert-mini");
    let r = results(&out, "chexpert-mini");
    assert_eq!(r["metric"], "mAUC");
    assert_eq!(
        r["categories"],
        serde_json::json!(["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"])
    );
    let table = read(&out.join("tables/chexpert.md"));
    let line = table.lines().find(|l| l.starts_with("| AN + CFT-GA [paper] |")).expect("ours CFT-GA row");
    assert!(line.contains("validation CSV, not the test set"), "{line}");
    let gaa = r["rows"].as_array().unwrap().iter().find(|x| x["method"] == "AN + CFT-GA").unwrap();
    let mean = format!("{:.4}", gaa["cells"][0]["mean"].as_f64().unwrap());
    assert!(line.trim_end().ends_with(&format!("| {mean} |")), "{line}");
    assert!(read(&out.join("README.md")).contains("uncertain policy U-Ignore"));
}

#[test]
fn bad_image_specs_get_one_clear_error_and_write_nothing() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("coco2014");
    coco_tree(&root);
    let w = common::Resnet20::bundled();
    let weights = w.weights().to_string();
    let out = d.path().join("out");
    let run = |spec: &Path, extra: &[&str]| -> String {
        let mut a = vec!["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap()];
        a.extend_from_slice(extra);
        failed(&cft(&a, &[]))
    };
    let good = spec(d.path(), "c", "coco2014", "proportions = [0.5]", "metric = \"ap\"");
    let text = read(&good);
    let bad = |name: &str, from: &str, to: &str| -> PathBuf {
        let p = d.path().join(name);
        assert!(text.contains(from), "{from}");
        std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
        p
    };
    let r = root.to_str().unwrap();
    // Unknown key: the file, the line and the key.
    let e =
        run(&bad("unknown.toml", "batch = 8", "batch = 8\nbatch_size = 8"), &["--data-root", r, "--weights", &weights]);
    assert!(e.contains("unknown.toml") && e.contains("batch_size") && e.contains("line"), "{e}");
    // Wrong type.
    let e =
        run(&bad("type.toml", "image_size = 32", "image_size = \"32\""), &["--data-root", r, "--weights", &weights]);
    assert!(e.contains("type.toml") && e.contains("image_size"), "{e}");
    // Missing root.
    let e = run(&good, &["--weights", &weights]);
    assert!(e.contains("data.root") && e.contains("--data-root"), "{e}");
    let e = run(&good, &["--data-root", d.path().join("nowhere").to_str().unwrap(), "--weights", &weights]);
    assert!(e.contains("nowhere") && e.contains("not a folder"), "{e}");
    // A checkpoint whose tensors do not fit the backbone: the tensor is named.
    let e = run(&bad("arch.toml", "resnet20-cifar", "resnet18"), &["--data-root", r, "--weights", &weights]);
    assert!(e.contains("backbone.weights") && e.contains("conv1.weight"), "{e}");
    // A label file of another dataset: an OpenImages annotations file where COCO's instances are.
    let wrong = d.path().join("wrong");
    std::fs::create_dir_all(wrong.join("annotations")).unwrap();
    std::fs::write(wrong.join("annotations/instances_train2014.json"), "ImageID,Source,LabelName,Confidence\n")
        .unwrap();
    std::fs::copy(root.join("annotations/instances_val2014.json"), wrong.join("annotations/instances_val2014.json"))
        .unwrap();
    let e = run(&good, &["--data-root", wrong.to_str().unwrap(), "--weights", &weights]);
    assert!(e.contains("instances_train2014.json") && e.contains("line 1"), "{e}");
    // A checkpoint's classifier for another label set as the base head.
    let e = run(
        &bad("given.toml", "[cft]", "[base]\nfrom = \"checkpoint\"\n[cft]"),
        &["--data-root", r, "--weights", &weights],
    );
    assert!(e.contains("10 outputs") && e.contains("3 categories"), "{e}");
    assert!(!out.exists(), "a refused run wrote {}", out.display());
}

#[test]
fn shipped_specs_load_and_name_their_sources() {
    for (file, source) in [
        ("scene.toml", "arff"),
        ("scene-quick.toml", "arff"),
        ("coco2014.toml", "coco2014"),
        ("openimages_v3.toml", "openimages_v3"),
        ("chexpert.toml", "chexpert"),
    ] {
        let s = cft_experiment::spec::ExperimentSpec::load(&repo().join("experiments").join(file)).unwrap();
        assert_eq!(s.data.source.name(), source, "{file}");
        if let Some(b) = &s.backbone {
            // The paper's specs follow the authors' pipeline where it is known exactly.
            assert_eq!(b.resize.name(), "pillow12", "{file}");
            assert_eq!(*s.cft.ga.elite_ties.get(), cft_core::GaEliteTies::TorchCpu, "{file}");
        }
    }
}

/// The real ResNet-20 saved under the CFT authors' key names (their `Model` wraps a torchvision
/// network as `backbone` and adds `classification_layer`, here with `outputs` rows of the real
/// classifier).
fn authors_checkpoint(to: &Path, outputs: usize) {
    let w = common::Resnet20::bundled();
    let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = common::read_tensors(Path::new(w.weights()))
        .into_iter()
        .map(|(name, shape, values)| match name.strip_prefix("linear.") {
            Some(part) => {
                let per_row: usize = shape[1..].iter().product();
                let mut s = shape.clone();
                s[0] = outputs;
                (format!("classification_layer.{part}"), s, values[..outputs * per_row.max(1)].to_vec())
            }
            None => (format!("backbone.{name}"), shape, values),
        })
        .collect();
    common::write_owned(to, &tensors);
}

#[test]
fn the_authors_checkpoint_names_are_found_and_every_printed_hint_works() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("coco2014");
    coco_tree(&root);
    let authors = d.path().join("best.safetensors");
    authors_checkpoint(&authors, 3);
    let s = spec(d.path(), "coco-authors", "coco2014", "proportions = [0.5]", "metric = \"ap\"");
    let text = read(&s).replace("[cft]", "[base]\nfrom = \"checkpoint\"\n[cft]");
    std::fs::write(&s, text).unwrap();
    let (r, a) = (root.display().to_string(), authors.display().to_string());
    // No reference folder in OUT: the published tables come from the binary.
    let out = d.path().join("out1");
    let log = ok(&cft(
        &["run", s.to_str().unwrap(), "--data-root", &r, "--weights", &a, "--out", out.to_str().unwrap()],
        &[],
    ));
    assert!(log.contains("backbone keys under `backbone.`, classifier `classification_layer`"), "{log}");
    assert!(!log.contains("cft report` later") && !log.contains("skipping the reports index"), "{log}");
    assert!(out.join("README.md").is_file() && out.join("reference/paper_results.csv").is_file());
    // The checkpoint's own classifier is the base head: the same features and head as the
    // torchvision-named file with the classifier under `linear.`.
    let features = cft_data::read_feature_set(&out.join("coco-authors/features/train.safetensors")).unwrap();
    let head = cft_data::read_head(&out.join("coco-authors/features/checkpoint-head.safetensors")).unwrap();
    let plain = common::Resnet20::bundled();
    let st_bytes = std::fs::read(plain.weights()).unwrap();
    let st = safetensors::SafeTensors::deserialize(&st_bytes).unwrap();
    let w = st.tensor("linear.weight").unwrap();
    let first: Vec<f32> =
        w.data()[..3 * 64 * 4].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    assert_eq!(head.weight.as_slice(), &first[..]);
    assert_eq!(features.features.rows(), 16);
    // The run's hint, as printed: `cft report OUT` (no --reference needed).
    let log = ok(&cft(&["report", out.to_str().unwrap()], &[]));
    assert!(log.contains("wrote"), "{log}");
    let table = read(&out.join("tables/coco.md"));
    assert!(table.contains("coco-authors") || table.contains("ours"), "{table}");
    // A wrong prefix: the error names the tensor it looked for and the prefixes the file has.
    let e = failed(&cft(
        &[
            "run",
            s.to_str().unwrap(),
            "--data-root",
            &r,
            "--weights",
            &a,
            "--out",
            d.path().join("out2").to_str().unwrap(),
            "--key-prefix",
            "model.",
        ],
        &[],
    ));
    assert!(
        e.contains("`model.conv1.weight`") && e.contains("`backbone.`") && e.contains("`classification_layer.`"),
        "{e}"
    );
    assert!(e.contains("key_prefix") && e.contains("--key-prefix"), "{e}");
}

/// An unreadable image stops `cft run` with a hint naming an option `cft run` has; rerun as
/// the hint says, the image is left out of features and labels alike.
#[test]
fn a_bad_image_hint_works_as_printed_on_cft_run() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("coco2014");
    coco_tree(&root);
    let bad = root.join("train2014/COCO_train2014_000000000103.jpg");
    let bytes = std::fs::read(&bad).unwrap();
    std::fs::write(&bad, &bytes[..bytes.len() / 3]).unwrap();
    let s = spec(d.path(), "coco-bad", "coco2014", "proportions = [0.5]", "metric = \"ap\"");
    let w = common::Resnet20::bundled();
    let out = d.path().join("out");
    let args = [
        "run",
        s.to_str().unwrap(),
        "--data-root",
        root.to_str().unwrap(),
        "--weights",
        w.weights(),
        "--out",
        out.to_str().unwrap(),
    ];
    let e = failed(&cft(&args, &[]));
    assert!(e.contains("COCO_train2014_000000000103.jpg") && e.contains("rerun with --on-bad-image skip"), "{e}");
    let mut again = args.to_vec();
    again.extend(["--on-bad-image", "skip"]);
    let log = ok(&cft(&again, &[]));
    assert!(log.contains("skipped") && log.contains("COCO_train2014_000000000103.jpg"), "{log}");
    let features = cft_data::read_feature_set(&out.join("coco-bad/features/train.safetensors")).unwrap();
    assert_eq!(features.features.rows(), 15, "one of 16 training images left out");
    assert!(!results(&out, "coco-bad")["rows"].as_array().unwrap().is_empty());
}

/// Annotation files cannot make `cft run` read outside the data root (`..`, absolute paths,
/// symbolic links), nor give two images' labels to one file.
#[test]
fn annotation_paths_stay_inside_the_data_root_and_files_are_listed_once() {
    let d = tempfile::tempdir().unwrap();
    let s = spec(d.path(), "coco-hostile", "coco2014", "proportions = [0.5]", "metric = \"ap\"");
    let w = common::Resnet20::bundled();
    let edit = |name: &str, change: &dyn Fn(&mut serde_json::Value, &Path)| -> PathBuf {
        let root = d.path().join(name);
        coco_tree(&root);
        let f = root.join("annotations/instances_train2014.json");
        let mut doc: serde_json::Value = serde_json::from_str(&read(&f)).unwrap();
        change(&mut doc, &root);
        std::fs::write(&f, doc.to_string()).unwrap();
        root
    };
    let outside = d.path().join("secret.jpg");
    photo(0, &outside);
    let cases: Vec<(PathBuf, &str)> = vec![
        (
            edit("dup", &|doc, _| {
                let first = doc["images"][0]["file_name"].clone();
                doc["images"][1]["file_name"] = first;
            }),
            "is listed twice (entries 1 and 2)",
        ),
        (edit("dots", &|doc, _| doc["images"][2]["file_name"] = "../../secret.jpg".into()), "leaves the data folder"),
        (
            edit("link", &|doc, root| {
                let name = doc["images"][3]["file_name"].as_str().unwrap().to_string();
                let p = root.join("train2014").join(&name);
                std::fs::remove_file(&p).unwrap();
                std::os::unix::fs::symlink(d.path().join("secret.jpg"), &p).unwrap();
            }),
            "symbolic link to a file outside",
        ),
    ];
    for (root, needle) in cases {
        let out = d.path().join(format!("out-{}", root.file_name().unwrap().to_string_lossy()));
        let e = failed(&cft(
            &[
                "run",
                s.to_str().unwrap(),
                "--data-root",
                root.to_str().unwrap(),
                "--weights",
                w.weights(),
                "--out",
                out.to_str().unwrap(),
            ],
            &[],
        ));
        assert!(e.contains("instances_train2014.json") && e.contains(needle), "{e}");
        assert!(!out.exists(), "a refused run wrote {}", out.display());
    }
}

/// The same confinement for an OpenImages image id and a CheXpert `Path` with `..` in them.
#[test]
fn openimages_ids_and_chexpert_paths_cannot_leave_the_data_root() {
    let d = tempfile::tempdir().unwrap();
    // Replaces the first row's image field of a label file, returning the root to run on.
    let climb = |root: &Path, csv: &str, to: &str| {
        let csv = root.join(csv);
        let text = read(&csv);
        let first = text.lines().nth(1).unwrap().split(',').next().unwrap().to_string();
        std::fs::write(&csv, text.replacen(&first, to, 1)).unwrap();
    };
    let oi = d.path().join("openimages_v3");
    openimages_tree(&oi);
    // An OpenImages id climbing out of `train/` (every row of that image).
    let text = read(&oi.join("train/annotations-human.csv"));
    let id = text.lines().nth(1).unwrap().split(',').next().unwrap().to_string();
    std::fs::write(oi.join("train/annotations-human.csv"), text.replace(&id, "../../secret")).unwrap();
    let cx = chexpert_tree(&d.path().join("cx"));
    climb(&cx, "train.csv", "CheXpert-v1.0-small/../../../secret.jpg");
    let w = common::Resnet20::bundled();
    for (name, source, labels, metric, root, file) in [
        ("oi-hostile", "openimages_v3", "source = \"real\"", "metric = \"ap\"", &oi, "annotations-human.csv"),
        ("cx-hostile", "chexpert", "source = \"real\"\nuncertain = \"ignore\"", "metric = \"auc\"", &cx, "train.csv"),
    ] {
        let s = spec(d.path(), name, source, labels, metric);
        let out = d.path().join(format!("out-{name}"));
        let (s, r, o) = (s.display().to_string(), root.display().to_string(), out.display().to_string());
        let e = failed(&cft(&["run", &s, "--data-root", &r, "--weights", w.weights(), "--out", &o], &[]));
        assert!(e.contains(file) && e.contains("leaves the data folder"), "{name}: {e}");
        assert!(!out.exists());
    }
}
