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
    if let Some(ordinal) = crate::gpu_cmd::parse_device(&args.device)? {
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
