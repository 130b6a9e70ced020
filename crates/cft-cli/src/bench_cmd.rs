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
