//! `cft bench`'s measurements, as a library: one category's epoch at COCO scale
//! ([`one_category`]), whole runs of every category with any engine ([`all_categories`]), and
//! the CFT and evaluation stages at OpenImages V3's scale ([`openimages_scale`]), on synthetic
//! features. Speed is measured here, never asserted by tests.

use crate::engine::{CftEngine, EngineChoice};
use crate::error::Result;
use crate::manifest::Versions;
use cft_core::synthetic::{synthetic_head, synthetic_split, SyntheticSplit};
use cft_core::{
    finetune_category, CategorySamples, FineTuneConfig, Hooks, LinearHead, MethodName, SparseLabels, SplitRef,
};
use serde::Serialize;

/// Sizes of the synthetic data.
#[derive(Debug, Clone, Copy)]
pub struct BenchSizes {
    /// Known training samples (one category), or training images (all categories).
    pub train: usize,
    /// Validation samples (test images at OpenImages scale: 125,436).
    pub valid: usize,
    /// Feature dimension.
    pub dim: usize,
    /// Categories (classes).
    pub categories: usize,
    /// Epochs (generations) timed.
    pub epochs: usize,
}

/// What `cft bench --json` writes.
#[derive(Debug, Serialize)]
pub struct OneCategory {
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

/// The configuration that runs exactly `epochs` epochs (patience never stops it).
fn timed(method: MethodName, epochs: usize) -> Result<cft_core::CheckedFineTune> {
    Ok(FineTuneConfig { max_epochs: epochs, patience: epochs + 1, ..FineTuneConfig::reference(method.reference(1e-4)) }
        .check()?)
}

/// One category's BP-ASL epoch and GA generation, timed on `sizes.train` known samples.
pub fn one_category(sizes: BenchSizes) -> Result<OneCategory> {
    let train = synthetic_split(sizes.train, sizes.dim, 1, 1.0, 0.05, 1);
    let valid = synthetic_split(sizes.valid, sizes.dim, 1, 1.0, 0.05, 2);
    let head = synthetic_head(1, sizes.dim, 3);
    let (st, sv) = (train.labels.to_sparse(), valid.labels.to_sparse());
    let tr = CategorySamples::gather(SplitRef { features: &train.features, labels: &st }, 0);
    let va = CategorySamples::gather(SplitRef { features: &valid.features, labels: &sv }, 0);
    let time = |method| -> Result<f64> {
        let out = finetune_category(0, head.weight.row(0), head.bias[0], &tr, &va, &timed(method, sizes.epochs)?);
        Ok(1e3 * out.seconds / out.epochs_run.max(1) as f64)
    };
    Ok(OneCategory {
        bp_ms_per_category_epoch: time(MethodName::BpAsl)?,
        ga_ms_per_category_epoch: time(MethodName::Ga)?,
        train_samples: sizes.train,
        valid_samples: sizes.valid,
        dim: sizes.dim,
        epochs: sizes.epochs,
        threads: rayon::current_num_threads(),
        build: Versions::collect().build,
    })
}

/// What `cft bench --all-categories --json` writes.
#[derive(Debug, Serialize)]
pub struct AllCategories {
    /// Wall seconds of the whole CFT-GA run.
    pub ga_seconds_all_categories: f64,
    /// Wall seconds of the whole CFT-BP-ASL run.
    pub bp_seconds_all_categories: f64,
    /// Categories.
    pub categories: usize,
    /// Generations (epochs) run by every category.
    pub generations: usize,
    /// The device (`cpu`, `cuda:0`).
    pub device: String,
    /// The engine (`batched`, `cuda tf32`, …).
    pub engine: String,
    /// GA milliseconds per category-generation.
    pub ga_ms_per_category_epoch: f64,
    /// BP milliseconds per category-epoch.
    pub bp_ms_per_category_epoch: f64,
    /// GA and BP milliseconds per category-epoch of the per-category engine, when compared.
    pub per_category_engine: Option<(f64, f64)>,
    /// Threads.
    pub threads: usize,
    /// Build.
    pub build: String,
}

/// COCO-scale synthetic data: `sizes.train` images with 10% known labels, `sizes.valid`
/// fully labelled, `sizes.categories` categories.
struct CocoScale {
    train: SyntheticSplit,
    valid: SyntheticSplit,
    head: LinearHead,
    sparse: (SparseLabels, SparseLabels),
}

impl CocoScale {
    fn build(sizes: BenchSizes) -> Self {
        let c = sizes.categories;
        let train = synthetic_split(sizes.train, sizes.dim, c, 0.1, 0.05, 1);
        let valid = synthetic_split(sizes.valid, sizes.dim, c, 1.0, 0.05, 2);
        let head = synthetic_head(c, sizes.dim, 3);
        let sparse = (train.labels.to_sparse(), valid.labels.to_sparse());
        Self { train, valid, head, sparse }
    }

    /// Seconds of a whole run and milliseconds per category-epoch.
    fn time(&self, engine: &dyn CftEngine, method: MethodName, epochs: usize) -> Result<(f64, f64)> {
        let cfg = timed(method, epochs)?;
        engine.supports(&cfg)?;
        let tr = SplitRef { features: &self.train.features, labels: &self.sparse.0 };
        let va = SplitRef { features: &self.valid.features, labels: &self.sparse.1 };
        let t = std::time::Instant::now();
        let run = engine.finetune(&cfg, &self.head, tr, va, &Hooks::NONE)?;
        let s = t.elapsed().as_secs_f64();
        let epochs: usize = run.categories.iter().map(|o| o.epochs_run).sum();
        Ok((s, 1e3 * s / epochs.max(1) as f64))
    }
}

/// Whole CFT-GA and CFT-BP-ASL runs of every category with `engine` (and, with `compare`, the
/// per-category engine beside it, for the ratio).
pub fn all_categories(
    sizes: BenchSizes,
    device: cft_pipeline::Device,
    engine: EngineChoice,
    compare: bool,
) -> Result<AllCategories> {
    let engine = engine.build()?;
    let data = CocoScale::build(sizes);
    let (ga_s, ga_ms) = data.time(&*engine, MethodName::Ga, sizes.epochs)?;
    let (bp_s, bp_ms) = data.time(&*engine, MethodName::BpAsl, sizes.epochs)?;
    let per_category_engine = match compare {
        true => {
            let per = EngineChoice::PerCategory.build()?;
            Some((
                data.time(&*per, MethodName::Ga, sizes.epochs)?.1,
                data.time(&*per, MethodName::BpAsl, sizes.epochs)?.1,
            ))
        }
        false => None,
    };
    Ok(AllCategories {
        ga_seconds_all_categories: ga_s,
        bp_seconds_all_categories: bp_s,
        categories: sizes.categories,
        generations: sizes.epochs,
        device: device.to_string(),
        engine: engine.name(),
        ga_ms_per_category_epoch: ga_ms,
        bp_ms_per_category_epoch: bp_ms,
        per_category_engine,
        threads: rayon::current_num_threads(),
        build: Versions::collect().build,
    })
}

/// What `cft bench --openimages-scale --json` writes.
#[derive(Debug, Serialize)]
pub struct OpenImagesScale {
    /// Training images (feature rows).
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

/// Peak resident memory so far, in MiB (`VmHWM`; NaN where `/proc` has none).
fn peak_mib() -> f64 {
    cft_data::bench::proc_status_mib("VmHWM:").unwrap_or(f64::NAN)
}

/// Sparse labels: `per_class` known images per class (a quarter positive), drawn without
/// building any dense matrix.
fn sparse_labels(n: usize, classes: usize, per_class: usize, seed: u64) -> SparseLabels {
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
    SparseLabels { n_samples: n, per_category }
}

/// Features with values in [0, 1), half of them zero (ReLU outputs' shape).
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
    cft_core::Matrix::new(n, d, data).expect("n × d values")
}

/// The CFT-GA and evaluation stages at OpenImages V3's scale: `sizes.train` images × `dim`,
/// `categories` classes with `known_per_class` known training labels each, 333 known test
/// labels per class on `sizes.valid` test images; sparse labels end to end.
pub fn openimages_scale(sizes: BenchSizes, known_per_class: usize, on_note: &dyn Fn(&str)) -> Result<OpenImagesScale> {
    let (n, nt, d, c) = (sizes.train, sizes.valid, sizes.dim, sizes.categories);
    let clock = std::time::Instant::now();
    on_note(&format!("building synthetic OpenImages-scale data: {n} + {nt} images × {d}, {c} classes …"));
    let train = features(n, d, 1);
    let test = features(nt, d, 2);
    let (ytr, yte) = (sparse_labels(n, c, known_per_class, 3), sparse_labels(nt, c, 333, 4));
    let head = synthetic_head(c, d, 5);
    let build = (clock.elapsed().as_secs_f64(), peak_mib());
    on_note(&format!("  built in {:.1} s, peak {:.0} MiB", build.0, build.1));
    let cfg = timed(MethodName::Ga, sizes.epochs)?;
    let t = std::time::Instant::now();
    let engine = cft_core::Batched { batch: cft_core::DEFAULT_BATCH, working_set: None };
    let tr = SplitRef { features: &train, labels: &ytr };
    let run = cft_core::finetune(&engine, &cfg, &head, tr, SplitRef { features: &test, labels: &yte }, &Hooks::NONE)?;
    let epochs: usize = run.categories.iter().map(|o| o.epochs_run).sum();
    let ga = (t.elapsed().as_secs_f64(), peak_mib());
    on_note(&format!("  CFT-GA, {} generations of {c} classes: {:.1} s, peak {:.0} MiB", sizes.epochs, ga.0, ga.1));
    let t = std::time::Instant::now();
    let per = cft_core::sparse_scores(cft_core::Metric::Ap, &run.head, &test, &yte);
    let ev = (t.elapsed().as_secs_f64(), peak_mib());
    on_note(&format!(
        "  evaluation: AP of {} classes in {:.2} s, peak {:.0} MiB",
        per.iter().flatten().count(),
        ev.0,
        ev.1
    ));
    Ok(OpenImagesScale {
        train_images: n,
        test_images: nt,
        dim: d,
        classes: c,
        known_per_class: (known_per_class, 333),
        generations: sizes.epochs,
        build,
        cft_ga: ga,
        ga_ms_per_class_generation: 1e3 * ga.0 / epochs.max(1) as f64,
        evaluation: ev,
        threads: rayon::current_num_threads(),
        build_kind: Versions::collect().build,
    })
}
