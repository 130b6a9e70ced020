//! `cft data`: look at a dataset through its adapter, convert COCO to the reference's label
//! CSV, and time the adapters on full-size synthetic files.

use crate::args::choice;
use crate::common::progress;
use anyhow::Result;
use cft_core::{drop_labels, PartialLabels};
use cft_data::coco::{read_coco, ImageOrder};
use cft_data::inspect::{Inspection, Source};
use cft_data::LabelledImages;
use cft_experiment::rehearsal::Shape;
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

/// Arguments of `cft data synthesize`.
#[derive(Debug, Clone, clap::Args)]
pub struct SynthesizeArgs {
    /// The dataset to imitate: coco (partial MS-COCO 2014: 82,081 + 40,137 images × 2048, 80
    /// categories, full labels) or openimages (OpenImages V3: 1,000,000 + 125,436 images × 2048,
    /// 5,000 classes, sparse verified labels).
    #[arg(long, value_parser = choice::<Shape>())]
    pub like: Shape,
    /// Folder for train.safetensors, test.safetensors (and head.safetensors).
    #[arg(long)]
    pub out: PathBuf,
    /// Training images (default: the dataset's).
    #[arg(long)]
    pub train_rows: Option<usize>,
    /// Test images (default: the dataset's).
    #[arg(long)]
    pub test_rows: Option<usize>,
    /// Category names: a JSON list `[{id, name, …}]` (e.g. `datasets/rehearsal/coco2014_categories_80.json`)
    /// or a text file with one name per line (OpenImages' `classes-trainable.txt`), exactly as
    /// many as the dataset has, each once; without it, `class 0000` …
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
    use cft_experiment::rehearsal::{rows_to_write, write_shaped, Sizes};
    let sizes = Sizes { train: a.train_rows, test: a.test_rows };
    let clock = std::time::Instant::now();
    // The bar appears with the first rows: a refusal comes without one.
    let bar = std::sync::OnceLock::new();
    let total = rows_to_write(a.like, sizes) as u64;
    let files = write_shaped(a.like, &a.out, sizes, a.categories.as_deref(), a.seed, &|n| {
        bar.get_or_init(|| progress(total, "rows")).inc(n as u64)
    })?;
    if let Some(b) = bar.get() {
        b.finish_and_clear();
    }
    for f in &files {
        let bytes = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        eprintln!("wrote {} ({:.2} GiB)", f.display(), cft_data::bench::gib(bytes.into()));
    }
    eprintln!("{} data in {:.1} s", a.like.label(), clock.elapsed().as_secs_f64());
    Ok(())
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
    let datasets_dir = cft_experiment::run::default_datasets_dir();
    let source = Source {
        dataset: &args.dataset,
        subset: &args.subset,
        categories_from: args.categories_from.as_deref(),
        datasets_dir: &datasets_dir,
    };
    let loaded = cft_data::inspect::load(&source, args.known)?;
    if let Some(line) = &loaded.headline {
        println!("{line}");
    }
    let Some(images) = loaded.images else {
        println!("{}", loaded.note.unwrap_or_default());
        return Ok(());
    };
    if let Some(line) = loaded.note {
        eprintln!("{line}");
    }
    let report = Inspection::of(&args.dataset, &images);
    print!("{}", report.table(args.limit));
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
        let json = stem.with_extension("json");
        cft_data::write_atomic(&json, (serde_json::to_string_pretty(&report)? + "\n").as_bytes())?;
        let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        eprintln!("wrote {} and {}", files.join(", "), json.display());
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
    let sizes = cft_data::bench::Sizes {
        coco_images: args.coco_images,
        coco_annotations: args.coco_annotations,
        openimages_rows: args.openimages_rows,
    };
    let bar = std::sync::Mutex::new(None::<indicatif::ProgressBar>);
    let oi_bytes = |b: u64, size: u64| {
        let mut bar = bar.lock().unwrap_or_else(|e| e.into_inner());
        bar.get_or_insert_with(|| progress(size, "OpenImages annotations")).set_position(b);
    };
    let r = cft_data::bench::run(&dir, sizes, &|line| eprintln!("{line}"), &oi_bytes)?;
    if let Some(b) = bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
        b.finish_and_clear();
    }
    println!("{}", serde_json::to_string_pretty(&r)?);
    if let Some(p) = &args.json {
        cft_data::write_atomic(p, (serde_json::to_string_pretty(&r)? + "\n").as_bytes())?;
    }
    Ok(())
}
