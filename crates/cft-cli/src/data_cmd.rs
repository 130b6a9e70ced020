//! `cft data`: look at a dataset through its adapter, convert COCO to the reference's label
//! CSV, and time the adapters on full-size synthetic files.

use crate::common::progress;
use anyhow::{bail, Context, Result};
use cft_core::{drop_labels, PartialLabels};
use cft_data::coco::{read_coco, ImageOrder};
use cft_data::LabelledImages;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// `cft data` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum DataCommand {
    /// Images, categories, known-label proportion, positives/negatives per category and the
    /// categories CFT would skip, as a table and a plot.
    Inspect(InspectArgs),
    /// COCO instances JSON → the reference's label CSV (optionally with simulated partial labels).
    CocoLabels(CocoLabelsArgs),
    /// Time the COCO and OpenImages adapters on synthetic files of full size (rows/s, peak memory).
    Bench(DataBenchArgs),
    /// Write synthetic feature sets shaped like partial COCO or OpenImages V3 (train, test and,
    /// for OpenImages, the base classifier), for rehearsing `cft run` at the paper's size.
    Synthesize(SynthesizeArgs),
}

/// Which dataset `cft data synthesize` imitates.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ShapeArg {
    /// Partial MS-COCO 2014: 82,081 + 40,137 images × 2048, 80 categories, full labels.
    Coco,
    /// OpenImages V3: 1,000,000 + 125,436 images × 2048, 5,000 classes, sparse verified labels.
    Openimages,
}

/// Arguments of `cft data synthesize`.
#[derive(Debug, Clone, clap::Args)]
pub struct SynthesizeArgs {
    /// The dataset to imitate.
    #[arg(long)]
    pub like: ShapeArg,
    /// Folder for train.safetensors, test.safetensors (and head.safetensors).
    #[arg(long)]
    pub out: PathBuf,
    /// Training images (default: the dataset's).
    #[arg(long)]
    pub train_rows: Option<usize>,
    /// Test images (default: the dataset's).
    #[arg(long)]
    pub test_rows: Option<usize>,
    /// COCO's category list (JSON `[{id, name, …}]`, e.g. `datasets/rehearsal/coco2014_categories_80.json`)
    /// for the names; without it, `class 0000` …
    #[arg(long)]
    pub categories: Option<PathBuf>,
    /// Seed of the synthetic data.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Arguments of `cft data inspect`.
#[derive(Debug, Clone, clap::Args)]
pub struct InspectArgs {
    /// A COCO instances JSON, an OpenImages V3 folder (with classes-trainable.txt and
    /// `<subset>/annotations-human.csv`), a CheXpert CSV, a reference label CSV (with --categories-from),
    /// or a bundled dataset name / manifest (its training split).
    pub dataset: String,
    /// OpenImages subset.
    #[arg(long, default_value = "validation")]
    pub subset: String,
    /// Simulate partial labels: keep each label with this probability (reference protocol, seed 526).
    #[arg(long)]
    pub known: Option<f64>,
    /// For a reference label CSV: the COCO instances file or category JSON list that names its categories.
    #[arg(long)]
    pub categories_from: Option<PathBuf>,
    /// Write `<stem>.png` / `.svg` (positives and negatives per category) and `<stem>.json`.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Rows of the per-category table (all when 0).
    #[arg(long, default_value_t = 0)]
    pub limit: usize,
}

/// Arguments of `cft data coco-labels`.
#[derive(Debug, Clone, clap::Args)]
pub struct CocoLabelsArgs {
    /// `annotations/instances_{train,val}2014.json`.
    #[arg(long)]
    pub instances: PathBuf,
    /// Known-label proportion (reference protocol: numpy PCG64 seed 526, per image positives then negatives).
    #[arg(long, default_value_t = 1.0)]
    pub known: f64,
    /// Seed of the label dropping.
    #[arg(long, default_value_t = 526)]
    pub seed: u64,
    /// Image order: the reference's pycocotools getImgIds() (file order) or ascending ids.
    #[arg(long, default_value_t = false)]
    pub ascending_ids: bool,
    /// The label CSV to write.
    #[arg(long)]
    pub out: PathBuf,
}

/// Arguments of `cft data bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct DataBenchArgs {
    /// Images of the synthetic COCO file (COCO 2014 train: 82,783).
    #[arg(long, default_value_t = 82_783)]
    pub coco_images: usize,
    /// Annotations of the synthetic COCO file (COCO 2014 train: 604,907).
    #[arg(long, default_value_t = 604_907)]
    pub coco_annotations: usize,
    /// Rows of the synthetic OpenImages annotations file.
    #[arg(long, default_value_t = 20_000_000)]
    pub openimages_rows: u64,
    /// Folder for the synthetic files (default: a temporary folder, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Write the figures as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Runs `cft data …`.
pub fn run(cmd: &DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Inspect(a) => inspect(a),
        DataCommand::CocoLabels(a) => coco_labels(a),
        DataCommand::Bench(a) => bench(a),
        DataCommand::Synthesize(a) => synthesize(a),
    }
}

fn synthesize(a: &SynthesizeArgs) -> Result<()> {
    use cft_experiment::rehearsal::{rows_to_write, write_shaped, Shape, Sizes};
    let shape = match a.like {
        ShapeArg::Coco => Shape::Coco,
        ShapeArg::Openimages => Shape::OpenImages,
    };
    if a.train_rows == Some(0) || a.test_rows == Some(0) {
        anyhow::bail!("--train-rows/--test-rows 0: each split needs at least one image");
    }
    let sizes = Sizes { train: a.train_rows, test: a.test_rows };
    let clock = std::time::Instant::now();
    let bar = crate::common::progress(rows_to_write(shape, sizes) as u64, "rows");
    let files = write_shaped(shape, &a.out, sizes, a.categories.as_deref(), a.seed, &|n| bar.inc(n as u64))?;
    bar.finish_and_clear();
    for f in &files {
        let bytes = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        eprintln!("wrote {} ({:.2} GiB)", f.display(), bytes as f64 / (1u64 << 30) as f64);
    }
    eprintln!("{} data in {:.1} s", shape.name(), clock.elapsed().as_secs_f64());
    Ok(())
}

fn with_known(images: LabelledImages, known: Option<f64>) -> LabelledImages {
    match known {
        Some(p) => {
            let dense = drop_labels(&images.dense(), p, 526);
            LabelledImages::from_dense(images.ids, images.paths, images.categories, &dense)
        }
        None => images,
    }
}

fn category_names_from(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    let v: serde_json::Value =
        serde_json::from_str(text.trim_start_matches('\u{feff}')).with_context(|| path.display().to_string())?;
    let list = v.get("categories").unwrap_or(&v);
    let Some(arr) = list.as_array() else { bail!("{}: no category list", path.display()) };
    arr.iter()
        .enumerate()
        .map(|(i, c)| {
            c["name"].as_str().map(str::to_string).with_context(|| format!("{}: categories[{i}].name", path.display()))
        })
        .collect()
}

/// Loads any supported dataset as a labelled image list.
pub fn load_dataset(args: &InspectArgs) -> Result<LabelledImages> {
    let p = PathBuf::from(&args.dataset);
    if p.is_dir() && p.join("classes-trainable.txt").exists() {
        let classes = cft_data::openimages::read_trainable(&p.join("classes-trainable.txt"))?;
        let descriptions = p.join("class-descriptions.csv");
        let names = if descriptions.is_file() {
            Some(cft_data::openimages::read_class_descriptions(&descriptions)?)
        } else {
            eprintln!("note: {} not found; classes are named by their MIDs", descriptions.display());
            None
        };
        let ann = p.join(&args.subset).join("annotations-human.csv");
        let ann = if ann.exists() { ann } else { p.join("annotations-human.csv") };
        let (mut img, stats) = cft_data::openimages::read_annotations(&ann, &args.subset, &classes, &|_| {})?;
        if let Some(names) = names {
            img.categories = classes.iter().map(|c| names.get(c).cloned().unwrap_or_else(|| c.clone())).collect();
        }
        eprintln!(
            "{}: {} rows, {} of untrainable classes, {} with other confidences, {} conflicting",
            ann.display(),
            stats.rows,
            stats.untrainable,
            stats.other_confidence,
            stats.conflicts
        );
        return Ok(with_known(img, args.known));
    }
    let ext = p.extension().map(|e| e.to_string_lossy().to_lowercase()).unwrap_or_default();
    if ext == "json" && p.is_file() && is_dataset_manifest(&p) {
        return manifest_dataset(&args.dataset, args.known);
    }
    if ext == "json" && p.is_file() {
        let s = read_coco(&p, ImageOrder::File)?;
        eprintln!("{}", coco_summary(&p, s.annotations, s.orphan_annotations));
        return Ok(with_known(s.images, args.known));
    }
    if ext == "csv" && p.is_file() {
        let head = crate::common::first_line(&p)?;
        if head.starts_with("Path,Sex,") {
            let opts = cft_data::chexpert::ChexpertOptions::all_observations();
            let split = cft_data::chexpert::read_chexpert(&p, &opts)?;
            let ids: Vec<String> = split.images.iter().map(|i| i.path.clone()).collect();
            return Ok(with_known(LabelledImages::from_dense(ids.clone(), ids, split.tasks, &split.raw), args.known));
        }
        if head.starts_with("Id,Path,Positive,Negative,Uncertain") {
            let Some(src) = &args.categories_from else {
                bail!(
                    "{}: a reference label CSV needs --categories-from (COCO instances or category list)",
                    p.display()
                )
            };
            return Ok(with_known(
                cft_data::records_csv::read_records_csv(&p, &category_names_from(src)?)?,
                args.known,
            ));
        }
        bail!(
            "{}: not a CheXpert CSV (Path,Sex,…) or a reference label CSV (Id,Path,Positive,Negative,Uncertain)",
            p.display()
        );
    }
    manifest_dataset(&args.dataset, args.known)
}

/// Whether a JSON file is a dataset manifest rather than a COCO instances file: a manifest is
/// small and has `splits`; only the first KiB is sniffed, so a 300 MB COCO file is not read twice.
fn is_dataset_manifest(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 1024];
    let n = std::fs::File::open(path).and_then(|mut f| f.read(&mut head)).unwrap_or(0);
    let text = String::from_utf8_lossy(&head[..n]);
    text.contains("\"splits\"") && !text.contains("\"images\"")
}

/// The training split of a bundled dataset name or a dataset manifest path.
fn manifest_dataset(dataset: &str, known: Option<f64>) -> Result<LabelledImages> {
    let datasets = crate::reproduce_cmd::default_datasets_dir();
    let manifest = cft_data::DatasetManifest::resolve(dataset, &datasets)?;
    let train = manifest.load_split("train")?;
    let ids: Vec<String> = (0..train.labels.n_samples()).map(|i| i.to_string()).collect();
    Ok(with_known(LabelledImages::from_dense(ids.clone(), ids, train.categories, &train.labels), known))
}

/// `cft data inspect FILE.safetensors`: one of this tool's feature sets: rows, dimension,
/// feature statistics, and the label counts per category with the known fraction.
fn inspect_feature_set(args: &InspectArgs) -> Result<()> {
    let path = PathBuf::from(&args.dataset);
    let set = cft_data::read_feature_set(&path)?;
    let f = &set.features;
    let v = f.as_slice();
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let var = v.iter().map(|&x| (f64::from(x) - mean).powi(2)).sum::<f64>() / n;
    let (lo, hi) = v.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    let zeros = v.iter().filter(|&&x| x == 0.0).count() as f64 / n;
    println!(
        "{}: feature set, {} rows × {} features; mean {mean:.4}, std {:.4}, min {lo:.4}, max {hi:.4}, {:.1}% zeros",
        path.display(),
        f.rows(),
        f.cols(),
        var.sqrt(),
        100.0 * zeros
    );
    let Some(labels) = &set.labels else {
        println!("no `labels` tensor (features only)");
        return Ok(());
    };
    let names = crate::common::category_names(&set, labels.n_categories());
    let img = LabelledImages::from_dense(
        (0..f.rows()).map(|i| i.to_string()).collect(),
        set.paths.clone().unwrap_or_else(|| (0..f.rows()).map(|i| i.to_string()).collect()),
        names,
        labels,
    );
    report_labels(args, with_known(img, args.known))
}

/// Per-category counts of an inspected dataset.
#[derive(Debug, Serialize)]
pub struct CategoryStats {
    /// Name.
    pub category: String,
    /// Known positives.
    pub positives: usize,
    /// Known negatives.
    pub negatives: usize,
    /// Uncertain labels.
    pub uncertain: usize,
    /// Why CFT would skip it (no known positive / negative), if it would.
    pub skip: Option<String>,
}

/// What `cft data inspect --plot` writes as JSON.
#[derive(Debug, Serialize)]
pub struct Inspection {
    /// The dataset argument.
    pub dataset: String,
    /// Images.
    pub images: usize,
    /// Categories.
    pub categories: usize,
    /// Known (positive or negative) labels over images × categories.
    pub known_proportion: f64,
    /// Categories CFT would skip.
    pub skipped_categories: usize,
    /// Per category.
    pub per_category: Vec<CategoryStats>,
}

fn inspect(args: &InspectArgs) -> Result<()> {
    if let Some(p) = args.known {
        crate::args::check_known("--known", p)?;
    }
    if let Some(stem) = &args.plot {
        let (png, svg, json) = (stem.with_extension("png"), stem.with_extension("svg"), stem.with_extension("json"));
        let dataset = PathBuf::from(&args.dataset);
        let mut inputs = vec![cft_data::Named::new("the dataset", &dataset)];
        if let Some(c) = &args.categories_from {
            inputs.push(cft_data::Named::new("--categories-from", c));
        }
        cft_data::check_outputs(
            &inputs,
            &[
                cft_data::Named::new("--plot (.png)", &png),
                cft_data::Named::new("--plot (.svg)", &svg),
                cft_data::Named::new("--plot (.json)", &json),
            ],
        )?;
    }
    if args.dataset.ends_with(".safetensors") {
        return inspect_feature_set(args);
    }
    report_labels(args, load_dataset(args)?)
}

/// Prints (and with `--plot`, draws) the per-category label counts of `img`.
fn report_labels(args: &InspectArgs, img: LabelledImages) -> Result<()> {
    let per: Vec<CategoryStats> = img
        .labels
        .per_category
        .iter()
        .zip(&img.categories)
        .map(|(k, name)| CategoryStats {
            category: name.clone(),
            positives: k.positives.len(),
            negatives: k.negatives.len(),
            uncertain: k.uncertain.len(),
            skip: if k.positives.is_empty() {
                Some("no known positive".into())
            } else if k.negatives.is_empty() {
                Some("no known negative".into())
            } else {
                None
            },
        })
        .collect();
    let known: usize = per.iter().map(|c| c.positives + c.negatives).sum();
    let cells = (img.len() * img.categories.len()).max(1);
    let report = Inspection {
        dataset: args.dataset.clone(),
        images: img.len(),
        categories: img.categories.len(),
        known_proportion: known as f64 / cells as f64,
        skipped_categories: per.iter().filter(|c| c.skip.is_some()).count(),
        per_category: per,
    };
    println!(
        "{}: {} images, {} categories, {:.2}% of labels known, {} categories CFT would skip",
        report.dataset,
        report.images,
        report.categories,
        100.0 * report.known_proportion,
        report.skipped_categories
    );
    println!("| category | positives | negatives | uncertain | CFT |");
    println!("|---|---:|---:|---:|---|");
    let shown = if args.limit == 0 { report.per_category.len() } else { args.limit.min(report.per_category.len()) };
    for c in &report.per_category[..shown] {
        println!(
            "| {} | {} | {} | {} | {} |",
            c.category,
            c.positives,
            c.negatives,
            c.uncertain,
            c.skip.as_deref().map(|s| format!("skip: {s}")).unwrap_or_else(|| "fine-tune".into())
        );
    }
    if shown < report.per_category.len() {
        println!("| … {} more | | | | |", report.per_category.len() - shown);
    }
    if let Some(stem) = &args.plot {
        let fig = cft_report::plots::CategoryCounts {
            title: format!(
                "{}: known labels per category",
                Path::new(&args.dataset).file_name().map(|s| s.to_string_lossy().to_string()).unwrap_or_default()
            ),
            counts: report
                .per_category
                .iter()
                .map(|c| (c.category.clone(), c.positives, c.negatives, c.skip.is_some()))
                .collect(),
        };
        let files = cft_report::plots::render(stem, (1100, 560), &fig)?;
        cft_data::write_atomic(
            &stem.with_extension("json"),
            (serde_json::to_string_pretty(&report)? + "\n").as_bytes(),
        )?;
        eprintln!(
            "wrote {} and {}",
            files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", "),
            stem.with_extension("json").display()
        );
    }
    Ok(())
}

fn coco_labels(args: &CocoLabelsArgs) -> Result<()> {
    crate::args::check_known("--known", args.known)?;
    cft_data::check_outputs(
        &[cft_data::Named::new("--instances", &args.instances)],
        &[cft_data::Named::new("--out", &args.out)],
    )?;
    let order = if args.ascending_ids { ImageOrder::AscendingId } else { ImageOrder::File };
    let s = read_coco(&args.instances, order)?;
    let dense: PartialLabels = drop_labels(&s.images.dense(), args.known, args.seed);
    let img = LabelledImages::from_dense(s.images.ids, s.images.paths, s.images.categories, &dense);
    cft_data::records_csv::write_records_csv(&args.out, &img)?;
    eprintln!(
        "wrote {} ({} images, {:.1}% of labels known)",
        args.out.display(),
        img.len(),
        100.0 * dense.known_fraction()
    );
    Ok(())
}

/// A memory line of `/proc/self/status` in MiB (`VmHWM`: peak resident, `VmRSS`: current).
fn proc_status_mib(key: &str) -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Figures of `cft data bench`.
#[derive(Debug, Serialize)]
pub struct DataBench {
    /// COCO file size.
    pub coco_bytes: u64,
    /// Images, annotations.
    pub coco_images: usize,
    /// Annotations.
    pub coco_annotations: usize,
    /// Parse seconds.
    pub coco_seconds: f64,
    /// Peak resident memory after the COCO parse (MiB; includes the process baseline).
    pub coco_peak_rss_mib: Option<f64>,
    /// OpenImages file size.
    pub openimages_bytes: u64,
    /// Rows.
    pub openimages_rows: u64,
    /// Images found.
    pub openimages_images: usize,
    /// Stream seconds.
    pub openimages_seconds: f64,
    /// Rows per second.
    pub openimages_rows_per_second: f64,
    /// Peak resident memory after both parses (MiB).
    pub openimages_peak_rss_mib: Option<f64>,
    /// Resident memory before parsing (MiB).
    pub baseline_rss_mib: Option<f64>,
}

fn bench(args: &DataBenchArgs) -> Result<()> {
    if let Some(p) = &args.json {
        cft_data::outputs::check_output_path(cft_data::Named::new("--json", p))?;
    }
    let tmp;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let coco = dir.join("instances_synth2014.json");
    let oi = dir.join("annotations-human.csv");
    let classes: Vec<String> = (0..5000).map(|i| format!("/m/{i:05x}")).collect();
    if !coco.exists() {
        eprintln!("writing {} …", coco.display());
        cft_data::coco::write_synthetic(&coco, args.coco_images, args.coco_annotations)?;
    }
    if !oi.exists() {
        eprintln!("writing {} …", oi.display());
        cft_data::openimages::write_synthetic_annotations(&oi, args.openimages_rows, &classes)?;
    }
    let baseline = proc_status_mib("VmRSS:");
    let t = std::time::Instant::now();
    let s = read_coco(&coco, ImageOrder::File)?;
    let coco_s = t.elapsed().as_secs_f64();
    let coco_peak = proc_status_mib("VmHWM:");
    let coco_bytes = std::fs::metadata(&coco)?.len();
    eprintln!(
        "COCO: {} images, {} annotations, {:.0} MB in {coco_s:.2} s",
        s.images.len(),
        s.annotations,
        coco_bytes as f64 / 1e6
    );
    drop(s);
    let bytes = std::fs::metadata(&oi)?.len();
    let bar = progress(bytes, "OpenImages annotations");
    let t = std::time::Instant::now();
    let (img, stats) = cft_data::openimages::read_annotations(&oi, "train", &classes, &|b| bar.set_position(b))?;
    let oi_s = t.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let r = DataBench {
        coco_bytes,
        coco_images: args.coco_images,
        coco_annotations: args.coco_annotations,
        coco_seconds: coco_s,
        coco_peak_rss_mib: coco_peak,
        openimages_bytes: bytes,
        openimages_rows: stats.rows,
        openimages_images: img.len(),
        openimages_seconds: oi_s,
        openimages_rows_per_second: stats.rows as f64 / oi_s,
        openimages_peak_rss_mib: proc_status_mib("VmHWM:"),
        baseline_rss_mib: baseline,
    };
    println!("{}", serde_json::to_string_pretty(&r)?);
    if let Some(p) = &args.json {
        cft_data::write_atomic(p, (serde_json::to_string_pretty(&r)? + "\n").as_bytes())?;
    }
    Ok(())
}

/// The sentence `cft data inspect` prints for a COCO instances file.
fn coco_summary(p: &Path, annotations: usize, orphans: usize) -> String {
    let orphans = match orphans {
        0 => "every one on an image listed in the file".to_string(),
        1 => "1 of them on an image the file does not list, ignored".to_string(),
        n => format!("{n} of them on images the file does not list, ignored"),
    };
    format!("{}: {annotations} annotations, {orphans}", p.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coco_summary_reads_as_a_sentence() {
        let p = Path::new("instances_train2014.json");
        assert_eq!(
            coco_summary(p, 251, 0),
            "instances_train2014.json: 251 annotations, every one on an image listed in the file"
        );
        assert_eq!(
            coco_summary(p, 251, 3),
            "instances_train2014.json: 251 annotations, 3 of them on images the file does not list, ignored"
        );
    }
}
