//! The COCO, OpenImages and reference-label-CSV adapters on the format fixtures in
//! `datasets/formats/`, on the real samples under `$CFT_REAL_DATA` (skipped without it), on every
//! malformed input we could think of, and a bounded fuzz run of each parser.

use cft_core::{drop_labels, Label};
use cft_data::coco::{parse_coco, read_coco, ImageOrder};
use cft_data::openimages::{read_annotations, read_annotations_from, read_class_descriptions, read_trainable};
use cft_data::records_csv::{read_records_csv, records_csv, write_records_csv};
use cft_data::LabelledImages;
use std::path::{Path, PathBuf};

fn formats() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../datasets/formats"))
}

/// The real samples' folder (`CFT_REAL_DATA`, a relative path taken from the workspace root);
/// the tests that read it are ignored by default (each attribute gives the reason; listed as
/// skipped) and fail without it
/// when run (`--include-ignored`, as CI does).
fn real_data() -> PathBuf {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    cft_data::real_data_folder(&workspace).expect("this test needs CFT_REAL_DATA (e.g. ../shared/data)")
}

fn rows(images: &LabelledImages) -> Vec<Vec<Label>> {
    let d = images.dense();
    (0..d.n_samples()).map(|i| d.row(i).to_vec()).collect()
}

use Label::{Negative as N, Positive as P, Unknown as U};

#[test]
fn coco_follows_pycocotools_order_and_labels() {
    let s = read_coco(&formats().join("instances_toy2014.json"), ImageOrder::File).unwrap();
    assert_eq!(s.images.ids, ["42", "7", "100"]);
    assert_eq!(s.images.paths[0], "toy2014/COCO_toy2014_000000000042.jpg");
    assert_eq!(s.images.categories, ["person", "bicycle", "stop sign"]);
    assert_eq!(s.category_ids, [1, 2, 13]);
    assert_eq!(rows(&s.images), [vec![P, N, N], vec![P, N, P], vec![N, N, N]]);
    assert_eq!((s.annotations, s.orphan_annotations), (5, 1));
    let asc = read_coco(&formats().join("instances_toy2014.json"), ImageOrder::AscendingId).unwrap();
    assert_eq!(asc.images.ids, ["7", "42", "100"]);
    assert_eq!(rows(&asc.images)[0], [P, N, P]);
}

#[test]
fn reference_label_csv_round_trips_partial_masks() {
    let s = read_coco(&formats().join("instances_toy2014.json"), ImageOrder::File).unwrap();
    let masked = drop_labels(&s.images.dense(), 0.5, 526);
    let partial =
        LabelledImages::from_dense(s.images.ids.clone(), s.images.paths.clone(), s.images.categories.clone(), &masked);
    let text = records_csv(&partial);
    assert!(
        text.starts_with("Id,Path,Positive,Negative,Uncertain\n42,toy2014/COCO_toy2014_000000000042.jpg,["),
        "{text}"
    );
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("labels.csv");
    write_records_csv(&p, &partial).unwrap();
    let back = read_records_csv(&p, &s.images.categories).unwrap();
    assert_eq!(back, partial);
    // The reference's own spelling: lists with "; " separators, uncertain entries.
    std::fs::write(&p, "Id,Path,Positive,Negative,Uncertain\n5,a/b.jpg,[0; 2],[1],[]\n6,\"c,d.jpg\",[],[],[1]\n")
        .unwrap();
    let r = read_records_csv(&p, &s.images.categories).unwrap();
    assert_eq!(r.paths, ["a/b.jpg", "c,d.jpg"]);
    assert_eq!(rows(&r), [vec![P, N, P], vec![U, Label::Uncertain, U]]);
}

#[test]
fn openimages_streams_human_labels_of_trainable_classes() {
    let dir = formats().join("openimages");
    let classes = read_trainable(&dir.join("classes-trainable.txt")).unwrap();
    assert_eq!(classes, ["/m/01", "/m/02", "/m/03"]);
    let names = read_class_descriptions(&dir.join("class-descriptions.csv")).unwrap();
    assert_eq!(names["/m/02"], "Ducks, geese and swans");
    assert_eq!(names["/m/03"], "The \"quoted\" one");
    assert_eq!(names["/m/01"], "Cat");
    let (img, stats) = read_annotations(&dir.join("annotations-human.csv"), "validation", &classes, &|_| {}).unwrap();
    assert_eq!(img.ids, ["000a", "000b", "000c"]);
    assert_eq!(img.paths[1], "validation/000b.jpg");
    assert_eq!(rows(&img), [vec![P, N, U], vec![U, U, P], vec![U, N, U]]);
    assert_eq!((stats.rows, stats.untrainable, stats.other_confidence, stats.conflicts), (9, 1, 1, 1));
}

#[test]
fn openimages_rows_in_any_order_give_the_same_labels() {
    let dir = formats().join("openimages");
    let classes = read_trainable(&dir.join("classes-trainable.txt")).unwrap();
    // The fixture's rows with image 000a's rows split around 000b's and the conflicting pair
    // of 000b (0, then 1) separated by other images: grouped, the labels and counts are as sorted.
    let text = "ImageID,Source,LabelName,Confidence\n\
        000a,verification,/m/01,1\n\
        000b,verification,/m/01,0\n\
        000c,verification,/m/02,0\n\
        000a,verification,/m/02,0\n\
        000b,verification,/m/03,1\n\
        000a,crowdsource-verification,/m/01,1\n\
        000b,machine,/m/02,0.7\n\
        000a,verification,/m/99,1\n\
        000b,crowdsource-verification,/m/01,1\n";
    let (img, stats) =
        read_annotations_from(Path::new("shuffled.csv"), text.as_bytes(), "validation", &classes, &|_| {}).unwrap();
    assert_eq!(img.ids, ["000a", "000b", "000c"]);
    assert_eq!(rows(&img), [vec![P, N, U], vec![U, U, P], vec![U, N, U]]);
    assert_eq!((stats.rows, stats.untrainable, stats.other_confidence, stats.conflicts), (9, 1, 1, 1));
}

#[test]
#[ignore = "needs CFT_REAL_DATA (the real COCO/OpenImages samples)"]
fn real_coco_samples() {
    let root = real_data();
    let cats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("coco2014/coco2014_categories_80.json")).unwrap())
            .unwrap();
    let cats = cats.as_array().unwrap();
    assert_eq!(cats.len(), 80);
    let train = read_coco(&root.join("coco2014/instances_train2014_first100_samples.json"), ImageOrder::File).unwrap();
    assert_eq!(train.images.len(), 100);
    assert_eq!(train.images.paths[0], "train2014/COCO_train2014_000000057870.jpg");
    // The categories of the instances file are the 80 of the category list, in id order.
    let ids: Vec<u64> = cats.iter().map(|c| c["id"].as_u64().unwrap()).collect();
    assert_eq!(train.category_ids, ids);
    assert_eq!(train.images.categories[79], "toothbrush");
    // The excerpt's first 100 annotations belong to other images: all labels negative.
    assert_eq!(train.orphan_annotations, 100);
    assert!(train.images.labels.per_category.iter().all(|k| k.positives.is_empty() && k.negatives.len() == 100));
    let val = read_coco(&root.join("coco2014/instances_val2014_first100_samples.json"), ImageOrder::File).unwrap();
    assert_eq!(val.images.paths[0], "val2014/COCO_val2014_000000391895.jpg");
    assert_eq!(val.orphan_annotations, 99);
    let positives: Vec<(usize, u32)> = val
        .images
        .labels
        .per_category
        .iter()
        .enumerate()
        .flat_map(|(k, s)| s.positives.iter().map(move |&i| (k, i)))
        .collect();
    // Image 48 of the file, category index 16 (COCO id 18, "dog"): what pycocotools gives.
    assert_eq!(positives, [(16, 48)]);
    assert_eq!((val.category_ids[16], val.images.categories[16].as_str()), (18, "dog"));
}

#[test]
#[ignore = "needs CFT_REAL_DATA (the real COCO/OpenImages samples)"]
fn real_openimages_samples() {
    let root = real_data();
    let dir = root.join("openimages_v3");
    let classes = read_trainable(&dir.join("classes-trainable.txt")).unwrap();
    assert_eq!(classes.len(), 5000);
    let names = read_class_descriptions(&dir.join("class-descriptions.csv")).unwrap();
    assert_eq!(names.len(), 19995);
    assert_eq!(names["/m/01c_0l"], "Ducks, geese and swans");
    assert_eq!(names["/m/0100nhbf"], "Sprenger's tulip");
    assert!(classes.iter().all(|c| names.contains_key(c)), "every trainable class has a name");
    let (img, stats) = read_annotations(&dir.join("annotations-human_sample.csv"), "train", &classes, &|_| {}).unwrap();
    assert_eq!(img.ids, ["000026e7ee790996"]);
    assert_eq!(stats.rows, 9);
    let pos: usize = img.labels.per_category.iter().map(|k| k.positives.len()).sum();
    let neg: usize = img.labels.per_category.iter().map(|k| k.negatives.len()).sum();
    assert_eq!((pos, neg), (4, 5));
    let k = classes.iter().position(|c| c == "/m/07j7r").unwrap();
    assert_eq!(img.labels.per_category[k].positives, [0]);
}

fn err_of<T: std::fmt::Debug>(r: cft_data::Result<T>) -> String {
    r.expect_err("malformed input must be an error").to_string()
}

#[test]
fn malformed_coco_names_file_row_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(formats().join("instances_toy2014.json")).unwrap();
    let case = |name: &str, text: &str| -> String {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        err_of(read_coco(&p, ImageOrder::File))
    };
    let e = case("instances_trunc2014.json", &good[..good.len() / 2]);
    assert!(e.contains("instances_trunc2014.json:") && e.contains("json (truncated)"), "{e}");
    let e = case("empty.json", "");
    assert!(e.contains("empty.json") && e.contains("empty file"), "{e}");
    let e = case("x.json", &good.replace("\"category_id\": 13, \"id\": 1", "\"category_id\": 77, \"id\": 1"));
    assert!(e.contains("annotations[0].category_id") && e.contains("unknown category id 77"), "{e}");
    let e = case("x.json", &good.replace("\"id\": 100}", "\"id\": 42}"));
    assert!(e.contains("images[2].id") && e.contains("duplicate image id 42"), "{e}");
    let e = case("x.json", &good.replace("\"images\"", "\"imgs\""));
    assert!(e.contains("missing field `images`"), "{e}");
    let e = case("x.json", &good.replace("\"image_id\": 42", "\"image_id\": \"42\""));
    assert!(e.contains("x.json:") && e.contains("invalid type"), "{e}");
    assert!(case("x.json", "{\"images\": [], \"categories\": []}").contains("no categories"));
}

#[test]
fn malformed_openimages_and_label_csv_name_file_row_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let classes: Vec<String> = vec!["/m/01".into()];
    let ann = |text: &str| -> String {
        let p = dir.path().join("annotations-human.csv");
        std::fs::write(&p, text).unwrap();
        err_of(read_annotations(&p, "train", &classes, &|_| {}))
    };
    let e = ann("ImageID,LabelName,Confidence\n");
    assert!(e.contains("annotations-human.csv:1: header"), "{e}");
    let e = ann("ImageID,Source,LabelName,Confidence\na,v,/m/01,yes\n");
    assert!(e.contains(":2: Confidence: `yes` is not a number"), "{e}");
    let e = ann("ImageID,Source,LabelName,Confidence\na,v,/m/01,1\nb,v,/m/01\n");
    assert!(e.contains(":3: row: 3 fields"), "{e}");
    assert!(ann("").contains("empty file"));
    let p = dir.path().join("classes-trainable.txt");
    std::fs::write(&p, "/m/01\n/m/01\n").unwrap();
    assert!(err_of(read_trainable(&p)).contains("classes-trainable.txt:2: MID: duplicate class"));
    std::fs::write(&p, "Cat,/m/01\n").unwrap();
    assert!(err_of(read_trainable(&p)).contains(":1: MID"));
    let cats: Vec<String> = vec!["a".into(), "b".into()];
    let csv = |text: &str| -> String {
        let p = dir.path().join("labels.csv");
        std::fs::write(&p, text).unwrap();
        err_of(read_records_csv(&p, &cats))
    };
    assert!(csv("Id,Path,Positive,Negative\n1,a.jpg,[],[]\n").contains("Uncertain: missing column"));
    let e = csv("Id,Path,Positive,Negative,Uncertain\n1,a.jpg,[0],[1],[]\n2,b.jpg,[x],[],[]\n");
    assert!(e.contains("labels.csv:3: Positive: `[x]` is not a list"), "{e}");
    assert!(csv("Id,Path,Positive,Negative,Uncertain\n1,a.jpg,[5],[],[]\n")
        .contains(":2: Positive: category index 5 outside 0..2"));
    assert!(csv("Id,Path,Positive,Negative,Uncertain\n1,a.jpg,[0],[0],[]\n")
        .contains(":2: Negative: category 0 is listed twice"));
    assert!(csv("Id,Path,Positive,Negative,Uncertain\n1,a.jpg,[],[],[]\n1,b.jpg,[],[],[]\n")
        .contains(":3: Id: duplicate image id"));
    assert!(csv("").contains("empty file"));
}

/// Deterministic mutations of a seed input: byte flips, deletions, duplications, truncations.
fn mutants(seed: &[u8], count: usize) -> impl Iterator<Item = Vec<u8>> + '_ {
    let mut state = 0x853C_49E6_748F_EA9Bu64;
    (0..count).map(move |_| {
        let mut v = seed.to_vec();
        for _ in 0..1 + (state % 4) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if v.is_empty() {
                break;
            }
            let at = (state >> 8) as usize % v.len();
            match state % 5 {
                0 => v[at] = (state >> 32) as u8,
                1 => {
                    v.remove(at);
                }
                2 => {
                    let b = b"{}[],:\"0-9e.\n\r"[(state >> 40) as usize % 14];
                    v.insert(at, b);
                }
                3 => v.truncate(at),
                _ => {
                    let end = (at + 16).min(v.len());
                    let chunk = v[at..end].to_vec();
                    v.splice(at..at, chunk);
                }
            }
        }
        v
    })
}

/// A bounded fuzz run in the test suite (the cargo-fuzz targets in `fuzz/` run longer): every
/// mutant must give `Ok` or a clean error, never a panic.
#[test]
fn bounded_fuzz_of_every_parser() {
    let path = Path::new("fuzz-input");
    let coco = std::fs::read(formats().join("instances_toy2014.json")).unwrap();
    let ann = std::fs::read(formats().join("openimages/annotations-human.csv")).unwrap();
    let classes: Vec<String> = vec!["/m/01".into(), "/m/02".into(), "/m/03".into()];
    let dir = tempfile::tempdir().unwrap();
    let mut ok = [0usize; 3];
    for m in mutants(&coco, 3000) {
        let r = std::panic::catch_unwind(|| parse_coco(path, &m, ImageOrder::File).is_ok());
        ok[0] += usize::from(r.unwrap_or_else(|_| panic!("COCO parser panicked on {:?}", String::from_utf8_lossy(&m))));
    }
    for m in mutants(&ann, 3000) {
        let r = std::panic::catch_unwind(|| read_annotations_from(path, &m[..], "t", &classes, &|_| {}).is_ok());
        ok[1] += usize::from(
            r.unwrap_or_else(|_| panic!("OpenImages parser panicked on {:?}", String::from_utf8_lossy(&m))),
        );
    }
    let seed = b"Id,Path,Positive,Negative,Uncertain\n5,a/b.jpg,[0; 2],[1],[]\n6,\"c,d.jpg\",[],[],[1]\n";
    let p = dir.path().join("l.csv");
    let cats: Vec<String> = vec!["a".into(), "b".into(), "c".into()];
    for m in mutants(seed, 300) {
        std::fs::write(&p, &m).unwrap();
        let r = std::panic::catch_unwind(|| read_records_csv(&p, &cats).is_ok());
        ok[2] +=
            usize::from(r.unwrap_or_else(|_| panic!("label CSV parser panicked on {:?}", String::from_utf8_lossy(&m))));
    }
    // ARFF (MEKA layout) and a CheXpert CSV, both small real-format seeds.
    let arff = b"@relation 'toy: -C 2'\n@attribute a {0,1}\n@attribute b {0,1}\n@attribute f1 numeric\n@attribute f2 {x,y,z}\n@data\n1,0,0.5,x\n0,1,-2e3,z\n{0 1,2 1.5,3 y}\n";
    let mut arff_ok = 0;
    for m in mutants(arff, 3000) {
        let text = String::from_utf8_lossy(&m).to_string();
        let r =
            std::panic::catch_unwind(|| cft_data::arff::parse_arff(path, &text, &cft_data::LabelLayout::Meka).is_ok());
        arff_ok += usize::from(r.unwrap_or_else(|_| panic!("ARFF parser panicked on {text:?}")));
    }
    let chex = b"Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,Lung Opacity,Lung Lesion,Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,Fracture,Support Devices\nCheXpert-v1.0/valid/patient1/study1/view1_frontal.jpg,Male,73,Frontal,AP,0.0,1.0,,-1.0,0.0,1.0,0.0,,1.0,0.0,-1.0,0.0,,1.0\n";
    let cp = dir.path().join("chexpert.csv");
    let mut chex_ok = 0;
    for m in mutants(chex, 300) {
        std::fs::write(&cp, &m).unwrap();
        let opts = cft_data::chexpert::ChexpertOptions::default();
        let r = std::panic::catch_unwind(|| cft_data::chexpert::read_chexpert(&cp, &opts).is_ok());
        chex_ok +=
            usize::from(r.unwrap_or_else(|_| panic!("CheXpert parser panicked on {:?}", String::from_utf8_lossy(&m))));
    }
    eprintln!(
        "fuzz: mutants accepted: COCO {}/3000, OpenImages {}/3000, label CSV {}/300, ARFF {arff_ok}/3000, CheXpert {chex_ok}/300",
        ok[0], ok[1], ok[2]
    );
    assert!(
        ok.iter().chain([&arff_ok, &chex_ok]).all(|&k| k > 0),
        "the mutators should leave some inputs valid: {ok:?}"
    );
}
