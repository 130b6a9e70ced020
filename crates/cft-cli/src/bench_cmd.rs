//! `cft bench`: milliseconds per category-epoch of CFT-BP and CFT-GA at COCO scale on
//! synthetic features (the measurements are `cft_experiment::bench`'s).

use crate::args::choice;
use anyhow::Result;
use cft_cuda::GemmPrecision;
use cft_experiment::bench::{all_categories, one_category, openimages_scale, BenchSizes};
use cft_experiment::engine::{EngineChoice, EngineName};
use cft_pipeline::Device;
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
    pub device: Device,
    /// GEMM precision on CUDA: f32, tf32 (tensor cores, f32 accumulation) or bf16.
    #[arg(long, value_parser = choice::<GemmPrecision>(), default_value = "tf32")]
    pub precision: GemmPrecision,
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

fn write_json<T: Serialize>(path: Option<&PathBuf>, value: &T) -> Result<()> {
    if let Some(p) = path {
        cft_data::write_atomic(p, (serde_json::to_string_pretty(value)? + "\n").as_bytes())?;
    }
    Ok(())
}

/// Runs `cft bench`.
pub fn run(args: &BenchArgs) -> Result<()> {
    // A long measurement must not end in an unwritable output.
    if let Some(p) = &args.json {
        cft_data::outputs::check_output_path(cft_data::Named::new("--json", p))?;
    }
    if args.openimages_scale {
        let sizes = BenchSizes {
            train: args.train_images,
            valid: 125_436,
            dim: args.dim,
            categories: args.categories,
            epochs: args.generations,
        };
        let r = openimages_scale(sizes, args.known_per_class, &|line| eprintln!("{line}"))?;
        println!("{}", serde_json::to_string_pretty(&r)?);
        return write_json(args.json.as_ref(), &r);
    }
    if args.all_categories {
        let sizes = BenchSizes {
            train: args.train_images,
            valid: args.valid_samples,
            dim: args.dim,
            categories: args.categories,
            epochs: args.generations,
        };
        if args.device.is_cuda() && !cft_cuda::CUDA_BUILT {
            return Err(cft_experiment::engine::not_built(Some("--device cpu")).into());
        }
        let precision = if args.device.is_cuda() { args.precision } else { GemmPrecision::F32 };
        let engine = EngineChoice::resolve(EngineName::Auto, args.device, precision, 16)?;
        eprintln!(
            "building synthetic COCO-scale data: {} train images (10% known), {} valid, d = {}, {} categories …",
            sizes.train, sizes.valid, sizes.dim, sizes.categories
        );
        let r = all_categories(sizes, args.device, engine, args.compare_engines)?;
        println!(
            "{} categories × {} generations, {} engine ({}, {} threads):",
            r.categories, r.generations, r.engine, r.build, r.threads
        );
        println!(
            "  CFT-GA:     {:.1} s in all, {:.3} ms per category-generation",
            r.ga_seconds_all_categories, r.ga_ms_per_category_epoch
        );
        println!(
            "  CFT-BP-ASL: {:.1} s in all, {:.3} ms per category-epoch",
            r.bp_seconds_all_categories, r.bp_ms_per_category_epoch
        );
        if let Some((a, b)) = r.per_category_engine {
            println!(
                "  per-category engine: GA {a:.1} ms, BP-ASL {b:.1} ms per category-epoch (ratio {:.2}× and {:.2}×)",
                a / r.ga_ms_per_category_epoch,
                b / r.bp_ms_per_category_epoch
            );
        }
        return write_json(args.json.as_ref(), &r);
    }
    eprintln!(
        "building synthetic data: {} train, {} valid, d = {} …",
        args.train_samples, args.valid_samples, args.dim
    );
    let sizes = BenchSizes {
        train: args.train_samples,
        valid: args.valid_samples,
        dim: args.dim,
        categories: 1,
        epochs: args.epochs,
    };
    let r = one_category(sizes)?;
    println!("CFT-BP (ASL): {:.2} ms per category-epoch", r.bp_ms_per_category_epoch);
    println!("CFT-GA:       {:.2} ms per category-generation", r.ga_ms_per_category_epoch);
    println!(
        "({} known training samples, {} validation samples, d = {}, {} epochs timed, {} threads, {})",
        r.train_samples, r.valid_samples, r.dim, r.epochs, r.threads, r.build
    );
    write_json(args.json.as_ref(), &r)
}
