//! `cft bench`: milliseconds per category-epoch of CFT-BP and CFT-GA at COCO scale on
//! synthetic features (8,200 known training samples, 40,137 validation samples, d = 2048).

use crate::manifest::Versions;
use anyhow::Result;
use cft_core::synthetic::{synthetic_head, synthetic_split};
use cft_core::{finetune_category, AdamConfig, CategorySamples, FineTuneConfig, GaConfig, Loss, Method, SplitRef};
use serde::Serialize;
use std::path::PathBuf;

/// Arguments of `cft bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Known training samples of the category.
    #[arg(long, default_value_t = 8200)]
    pub train_samples: usize,
    /// Validation samples.
    #[arg(long, default_value_t = 40137)]
    pub valid_samples: usize,
    /// Feature dimension.
    #[arg(long, default_value_t = 2048)]
    pub dim: usize,
    /// Epochs (generations) timed per method.
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    /// Write the figures as JSON too.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Time whole CFT runs of all categories at COCO scale instead: 80 categories, 82,081
    /// training images with 10% known labels, 40,137 fully labelled validation images.
    #[arg(long)]
    pub all_categories: bool,
    /// Generations (epochs) of the whole run with --all-categories.
    #[arg(long, default_value_t = 30)]
    pub generations: usize,
    /// Categories with --all-categories.
    #[arg(long, default_value_t = 80)]
    pub categories: usize,
    /// Training images with --all-categories.
    #[arg(long, default_value_t = 82081)]
    pub train_images: usize,
    /// Device: cpu, or cuda / cuda:N (a build with `--features cuda`) for --all-categories.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// GEMM precision on CUDA: f32, tf32 (tensor cores, f32 accumulation) or bf16.
    #[arg(long, default_value = "tf32")]
    pub precision: String,
    /// Also time the per-category engine with --all-categories, for the side-by-side ratio.
    #[arg(long)]
    pub compare_engines: bool,
    /// Time the CFT and evaluation stages at OpenImages V3 scale instead (sparse labels end to
    /// end): `--train-images` images (default here 1,000,000) × d features, 5,000 classes with
    /// `--known-per-class` known training labels each, the 125,436 test images with 333 known
    /// labels per class; prints seconds and peak memory per stage.
    #[arg(long)]
    pub openimages_scale: bool,
    /// Known training labels per class with --openimages-scale.
    #[arg(long, default_value_t = 3000)]
    pub known_per_class: usize,
}

/// What `cft bench --openimages-scale --json` writes.
#[derive(Debug, Serialize)]
pub struct OpenImagesScale {
    /// Training images (feature rows) and test images.
    pub train_images: usize,
    /// Test images.
    pub test_images: usize,
    /// Feature dimension.
    pub dim: usize,
    /// Classes.
    pub classes: usize,
    /// Known training labels per class, known test labels per class.
    pub known_per_class: (usize, usize),
    /// Generations of CFT-GA timed on every class.
    pub generations: usize,
    /// Seconds and peak resident MiB after building the synthetic data.
    pub build: (f64, f64),
    /// Seconds and peak resident MiB of the CFT-GA stage (every class, `generations`).
    pub cft_ga: (f64, f64),
    /// Milliseconds per class-generation.
    pub ga_ms_per_class_generation: f64,
    /// Seconds and peak resident MiB of the evaluation (AP of every class on its known test labels).
    pub evaluation: (f64, f64),
    /// Threads.
    pub threads: usize,
    /// Build.
    pub build_kind: String,
}

/// Peak resident memory so far, in MiB (`VmHWM`).
fn peak_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM"))?.to_string();
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Sparse labels: `per_class` known images per class (a quarter positive), drawn without
/// building any dense matrix.
fn sparse_labels(n: usize, classes: usize, per_class: usize, seed: u64) -> cft_core::SparseLabels {
    let mut rng = cft_core::Pcg64::new(seed);
    let per_category = (0..classes)
        .map(|_| {
            let mut rows: Vec<u32> = (0..per_class).map(|_| (rng.random() * n as f64) as u32).collect();
            rows.sort_unstable();
            rows.dedup();
            let mut k = cft_core::KnownSamples::default();
            for r in rows {
                if rng.random() < 0.25 {
                    k.positives.push(r);
                } else {
                    k.negatives.push(r);
                }
            }
            k
        })
        .collect();
    cft_core::SparseLabels { n_samples: n, per_category }
}

/// Features with a little signal for the positives of the first classes (values in [0, 1)).
fn features(n: usize, d: usize, seed: u64) -> cft_core::Matrix {
    use rayon::prelude::*;
    let mut data = vec![0.0f32; n * d];
    data.par_chunks_mut(d * 4096).enumerate().for_each(|(b, chunk)| {
        let mut rng = cft_core::Pcg64::new(seed ^ (b as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        for v in chunk.iter_mut() {
            let u = rng.random() as f32;
            *v = if u < 0.5 { 0.0 } else { 2.0 * (u - 0.5) };
        }
    });
    cft_core::Matrix::new(n, d, data).expect("shape")
}

fn run_openimages_scale(args: &BenchArgs) -> Result<()> {
    let (n, nt, d, c) = (args.train_images, 125_436usize, args.dim, args.categories);
    let clock = std::time::Instant::now();
    eprintln!("building synthetic OpenImages-scale data: {n} + {nt} images × {d}, {c} classes …");
    let train = features(n, d, 1);
    let test = features(nt, d, 2);
    let (ytr, yte) = (sparse_labels(n, c, args.known_per_class, 3), sparse_labels(nt, c, 333, 4));
    let head = cft_core::synthetic::synthetic_head(c, d, 5);
    let build = (clock.elapsed().as_secs_f64(), peak_mib());
    eprintln!("  built in {:.1} s, peak {:.0} MiB", build.0, build.1);
    let cfg = bench_config(Method::Ga(GaConfig::default()), args.generations);
    let t = std::time::Instant::now();
    let run = cft_core::finetune_batched(
        &head,
        SplitRef { features: &train, labels: &ytr },
        SplitRef { features: &test, labels: &yte },
        &cfg,
        64,
        &|_| {},
    );
    let epochs: usize = run.categories.iter().map(|o| o.epochs_run).sum();
    let ga = (t.elapsed().as_secs_f64(), peak_mib());
    eprintln!("  CFT-GA, {} generations of {c} classes: {:.1} s, peak {:.0} MiB", args.generations, ga.0, ga.1);
    let t = std::time::Instant::now();
    let per = cft_core::sparse_scores(cft_core::Metric::Ap, &run.head, &test, &yte);
    let defined = per.iter().flatten().count();
    let ev = (t.elapsed().as_secs_f64(), peak_mib());
    eprintln!("  evaluation: AP of {defined} classes in {:.2} s, peak {:.0} MiB", ev.0, ev.1);
    let r = OpenImagesScale {
        train_images: n,
        test_images: nt,
        dim: d,
        classes: c,
        known_per_class: (args.known_per_class, 333),
        generations: args.generations,
        build,
        cft_ga: ga,
        ga_ms_per_class_generation: 1e3 * ga.0 / epochs.max(1) as f64,
        evaluation: ev,
        threads: rayon::current_num_threads(),
        build_kind: Versions::collect().build,
    };
    println!("{}", serde_json::to_string_pretty(&r)?);
    if let Some(p) = &args.json {
        cft_data::write_atomic(p, (serde_json::to_string_pretty(&r)? + "\n").as_bytes())?;
    }
    Ok(())
}

/// What `cft bench --all-categories --json` writes.
#[derive(Debug, Serialize)]
pub struct AllCategoriesResult {
    /// Wall seconds of the whole CFT-GA run (batched engine).
    pub ga_seconds_all_categories: f64,
    /// Wall seconds of the whole CFT-BP-ASL run (batched engine).
    pub bp_seconds_all_categories: f64,
    /// Categories.
    pub categories: usize,
    /// Generations (epochs) run by every category.
    pub generations: usize,
    /// Device.
    pub device: String,
    /// GA milliseconds per category-generation (batched engine).
    pub ga_ms_per_category_epoch: f64,
    /// BP milliseconds per category-epoch (batched engine).
    pub bp_ms_per_category_epoch: f64,
    /// The same figures for the per-category engine, when compared.
    pub per_category_engine: Option<(f64, f64)>,
    /// Threads.
    pub threads: usize,
    /// Build.
    pub build: String,
    /// The GPU and GEMM precision, on CUDA.
    pub gpu: Option<String>,
}

/// The synthetic COCO-scale data of `--all-categories`.
struct CocoScale {
    train: cft_core::synthetic::SyntheticSplit,
    valid: cft_core::synthetic::SyntheticSplit,
    head: cft_core::LinearHead,
    sparse: (cft_core::SparseLabels, cft_core::SparseLabels),
}

impl CocoScale {
    fn build(args: &BenchArgs) -> Self {
        let c = args.categories;
        eprintln!(
            "building synthetic COCO-scale data: {} train images (10% known), {} valid, d = {}, {c} categories …",
            args.train_images, args.valid_samples, args.dim
        );
        let train = synthetic_split(args.train_images, args.dim, c, 0.1, 0.05, 1);
        let valid = synthetic_split(args.valid_samples, args.dim, c, 1.0, 0.05, 2);
        let head = synthetic_head(c, args.dim, 3);
        let sparse = (train.labels.to_sparse(), valid.labels.to_sparse());
        Self { train, valid, head, sparse }
    }

    fn splits(&self) -> (SplitRef<'_>, SplitRef<'_>) {
        (
            SplitRef { features: &self.train.features, labels: &self.sparse.0 },
            SplitRef { features: &self.valid.features, labels: &self.sparse.1 },
        )
    }
}

fn bench_config(method: Method, generations: usize) -> FineTuneConfig {
    let mut cfg = FineTuneConfig::reference(method);
    cfg.max_epochs = generations;
    cfg.patience = generations + 1;
    cfg
}

fn print_and_write(args: &BenchArgs, r: &AllCategoriesResult, engine: &str) -> Result<()> {
    let (c, g) = (r.categories, r.generations);
    println!("{c} categories × {g} generations on {} ({}):", r.gpu.as_deref().unwrap_or("cpu"), r.build);
    println!(
        "  CFT-GA:     {:.1} s in all, {:.3} ms per category-generation ({engine})",
        r.ga_seconds_all_categories, r.ga_ms_per_category_epoch
    );
    println!(
        "  CFT-BP-ASL: {:.1} s in all, {:.3} ms per category-epoch ({engine})",
        r.bp_seconds_all_categories, r.bp_ms_per_category_epoch
    );
    if let Some(p) = &args.json {
        cft_data::write_atomic(p, (serde_json::to_string_pretty(r)? + "\n").as_bytes())?;
    }
    Ok(())
}

#[cfg(feature = "cuda")]
fn run_all_categories_cuda(args: &BenchArgs, ordinal: usize) -> Result<()> {
    let precision: cft_cuda::GemmPrecision = args.precision.parse().map_err(anyhow::Error::msg)?;
    let gpu = crate::gpu_cmd::open_gpu(ordinal)?;
    let data = CocoScale::build(args);
    let (tr, va) = data.splits();
    let opts = cft_cuda::CudaOptions { precision, max_batch: None };
    let time = |method: Method| -> Result<(f64, f64)> {
        let cfg = bench_config(method, args.generations);
        let t = std::time::Instant::now();
        let run = gpu.finetune(&data.head, tr, va, &cfg, &opts, &|_| {})?;
        gpu.synchronize()?;
        let s = t.elapsed().as_secs_f64();
        let epochs: usize = run.categories.iter().map(|o| o.epochs_run).sum();
        Ok((s, 1e3 * s / epochs.max(1) as f64))
    };
    let (ga_s, ga_ms) = time(Method::Ga(GaConfig::default()))?;
    eprintln!("GA on {}: {ga_s:.2} s", gpu.name());
    let (bp_s, bp_ms) = time(Method::Bp { loss: Loss::ASL_REFERENCE, adam: AdamConfig::default() })?;
    eprintln!("BP-ASL on {}: {bp_s:.2} s", gpu.name());
    let r = AllCategoriesResult {
        ga_seconds_all_categories: ga_s,
        bp_seconds_all_categories: bp_s,
        categories: args.categories,
        generations: args.generations,
        device: args.device.clone(),
        ga_ms_per_category_epoch: ga_ms,
        bp_ms_per_category_epoch: bp_ms,
        per_category_engine: None,
        threads: rayon::current_num_threads(),
        build: Versions::collect().build,
        gpu: Some(format!("{} ({precision:?} GEMM)", gpu.name())),
    };
    print_and_write(args, &r, "CUDA engine")
}

fn run_all_categories(args: &BenchArgs) -> Result<()> {
    if let Some(ordinal) = crate::args::parse_device(&args.device)? {
        #[cfg(feature = "cuda")]
        return run_all_categories_cuda(args, ordinal);
        #[cfg(not(feature = "cuda"))]
        {
            let _ = ordinal;
            return Err(crate::gpu_cmd::not_built(Some("--device cpu")));
        }
    }
    let (c, g) = (args.categories, args.generations);
    let data = CocoScale::build(args);
    let (tr, va) = data.splits();
    let head = &data.head;
    let time = |method: Method, batched: bool| {
        let cfg = bench_config(method, g);
        let t = std::time::Instant::now();
        let run = if batched {
            cft_core::finetune_batched(head, tr, va, &cfg, 16, &|_| {})
        } else {
            cft_core::finetune(head, tr, va, &cfg, &|_| {})
        };
        let s = t.elapsed().as_secs_f64();
        let epochs: usize = run.categories.iter().map(|o| o.epochs_run).sum();
        (s, 1e3 * s / epochs.max(1) as f64)
    };
    let bp = Method::Bp { loss: Loss::ASL_REFERENCE, adam: AdamConfig::default() };
    let ga = Method::Ga(GaConfig::default());
    let (ga_s, ga_ms) = time(ga, true);
    eprintln!("GA, batched engine: {ga_s:.1} s");
    let (bp_s, bp_ms) = time(bp, true);
    eprintln!("BP-ASL, batched engine: {bp_s:.1} s");
    let per = args.compare_engines.then(|| {
        let (_, ga_pc) = time(ga, false);
        let (_, bp_pc) = time(bp, false);
        (ga_pc, bp_pc)
    });
    let r = AllCategoriesResult {
        ga_seconds_all_categories: ga_s,
        bp_seconds_all_categories: bp_s,
        categories: c,
        generations: g,
        device: args.device.clone(),
        ga_ms_per_category_epoch: ga_ms,
        bp_ms_per_category_epoch: bp_ms,
        per_category_engine: per,
        threads: rayon::current_num_threads(),
        build: Versions::collect().build,
        gpu: None,
    };
    print_and_write(args, &r, &format!("batched engine, {} threads", r.threads))?;
    if let Some((a, b)) = per {
        println!(
            "  per-category engine: GA {a:.1} ms, BP-ASL {b:.1} ms per category-epoch (ratio {:.2}× and {:.2}×)",
            a / ga_ms,
            b / bp_ms
        );
    }
    Ok(())
}

/// What `cft bench --json` writes.
#[derive(Debug, Serialize)]
pub struct BenchResult {
    /// Mean wall milliseconds of one BP-ASL epoch of one category (forward, gradient, Adam,
    /// validation AP).
    pub bp_ms_per_category_epoch: f64,
    /// Mean wall milliseconds of one GA generation of one category (population GEMM, 50 APs,
    /// breeding, validation AP of the best individual when it changed).
    pub ga_ms_per_category_epoch: f64,
    /// The sizes used.
    pub train_samples: usize,
    /// Validation samples.
    pub valid_samples: usize,
    /// Feature dimension.
    pub dim: usize,
    /// Epochs timed.
    pub epochs: usize,
    /// Threads.
    pub threads: usize,
    /// Build.
    pub build: String,
}

/// Runs `cft bench`.
pub fn run(args: &BenchArgs) -> Result<()> {
    // A long measurement must not end in an unwritable output.
    if let Some(p) = &args.json {
        cft_data::outputs::check_output_path(cft_data::Named::new("--json", p))?;
    }
    if args.openimages_scale {
        return run_openimages_scale(args);
    }
    if args.all_categories {
        return run_all_categories(args);
    }
    eprintln!(
        "building synthetic data: {} train, {} valid, d = {} …",
        args.train_samples, args.valid_samples, args.dim
    );
    let train = synthetic_split(args.train_samples, args.dim, 1, 1.0, 0.05, 1);
    let valid = synthetic_split(args.valid_samples, args.dim, 1, 1.0, 0.05, 2);
    let head = synthetic_head(1, args.dim, 3);
    let (st, sv) = (train.labels.to_sparse(), valid.labels.to_sparse());
    let tr = CategorySamples::gather(SplitRef { features: &train.features, labels: &st }, 0);
    let va = CategorySamples::gather(SplitRef { features: &valid.features, labels: &sv }, 0);
    let time = |method: Method| {
        let mut cfg = FineTuneConfig::reference(method);
        cfg.max_epochs = args.epochs;
        cfg.patience = args.epochs + 1;
        let out = finetune_category(0, head.weight.row(0), head.bias[0], &tr, &va, &cfg);
        1e3 * out.seconds / out.epochs_run.max(1) as f64
    };
    let bp = time(Method::Bp { loss: Loss::ASL_REFERENCE, adam: AdamConfig::default() });
    let ga = time(Method::Ga(GaConfig::default()));
    let r = BenchResult {
        bp_ms_per_category_epoch: bp,
        ga_ms_per_category_epoch: ga,
        train_samples: args.train_samples,
        valid_samples: args.valid_samples,
        dim: args.dim,
        epochs: args.epochs,
        threads: rayon::current_num_threads(),
        build: Versions::collect().build,
    };
    println!("CFT-BP (ASL): {bp:.2} ms per category-epoch");
    println!("CFT-GA:       {ga:.2} ms per category-generation");
    println!(
        "({} known training samples, {} validation samples, d = {}, {} epochs timed, {} threads, {})",
        r.train_samples, r.valid_samples, r.dim, r.epochs, r.threads, r.build
    );
    if let Some(p) = &args.json {
        cft_data::write_atomic(p, (serde_json::to_string_pretty(&r)? + "\n").as_bytes())?;
    }
    Ok(())
}
