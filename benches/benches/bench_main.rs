//! Criterion benchmarks of the CFT kernels at COCO scale (synthetic features): one BP epoch and
//! one GA generation of one category (8,200 known training samples, 40,137 validation samples,
//! d = 2048), exact AP / ROC-AUC throughput, and the machine-independent matrix products at
//! each kernel level.
//!
//! Run: `cargo bench -p cft-benches` (add `-- --quick` for a short run).

use cft_core::synthetic::{synthetic_head, synthetic_split};
use cft_core::{
    finetune_category, AdamConfig, CategorySamples, FineTuneConfig, GaConfig, Loss, Method, Metric, RankScorer,
    SplitRef,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;

const TRAIN: usize = 8200;
const VALID: usize = 40137;
const DIM: usize = 2048;

fn epochs(c: &mut Criterion) {
    let train = synthetic_split(TRAIN, DIM, 1, 1.0, 0.05, 1);
    let valid = synthetic_split(VALID, DIM, 1, 1.0, 0.05, 2);
    let head = synthetic_head(1, DIM, 3);
    let (st, sv) = (train.labels.to_sparse(), valid.labels.to_sparse());
    let tr = CategorySamples::gather(SplitRef { features: &train.features, labels: &st }, 0);
    let va = CategorySamples::gather(SplitRef { features: &valid.features, labels: &sv }, 0);
    let mut group = c.benchmark_group("cft_one_category_coco_scale");
    group.sample_size(10);
    for (name, method) in [
        ("bp_asl_epoch", Method::Bp { loss: Loss::ASL_REFERENCE, adam: AdamConfig::default() }),
        ("ga_generation", Method::Ga(GaConfig::default())),
    ] {
        // Five epochs per iteration (patience never triggers), reported per iteration.
        let mut cfg = FineTuneConfig::reference(method);
        cfg.max_epochs = 5;
        cfg.patience = 10;
        let cfg = cfg.check().expect("the reference settings pass");
        group.bench_function(BenchmarkId::new(name, "x5"), |b| {
            b.iter(|| black_box(finetune_category(0, head.weight.row(0), head.bias[0], &tr, &va, &cfg)))
        });
    }
    group.finish();
}

fn metrics(c: &mut Criterion) {
    let mut group = c.benchmark_group("rank_metrics");
    for &(rows, n) in &[(1usize, 40137usize), (50, 8200)] {
        let s = synthetic_split(n, 1, 1, 1.0, 0.05, 4);
        let labels: Vec<bool> = (0..n).map(|i| s.labels.get(i, 0) == cft_core::Label::Positive).collect();
        let scores: Vec<f32> = (0..rows * n).map(|i| ((i * 2_654_435_761) % 1_000_003) as f32 / 1e6).collect();
        let mut out = vec![0.0; rows];
        let mut scorer = RankScorer::new();
        group.throughput(Throughput::Elements((rows * n) as u64));
        for metric in [Metric::Ap, Metric::Auc] {
            group.bench_function(BenchmarkId::new(metric.name(), format!("{rows}x{n}")), |b| {
                b.iter(|| scorer.score_rows(metric, black_box(&scores), &labels, &mut out))
            });
        }
    }
    group.finish();
}

/// The machine-independent products at every kernel level this machine has: a GA
/// population's scores (50 heads × 8,200 rows × 2,048) and a base head's gradient (80 heads).
fn kernels(c: &mut Criterion) {
    use cft_core::kernels::{scores_nt_at, weighted_row_sums_at, Detected};
    let (n, k, p, m) = (TRAIN, DIM, 50usize, 80usize);
    let x = synthetic_split(n, k, 1, 1.0, 0.05, 5).features;
    let w: Vec<f32> = (0..p * k).map(|i| ((i * 104_729) % 2000) as f32 / 1000.0 - 1.0).collect();
    let a: Vec<f32> = (0..m * n).map(|i| ((i * 31) % 100) as f32 / 100.0).collect();
    let bias = vec![0.5f32; p];
    let (mut out, mut grad) = (vec![0.0f32; n * p], vec![0.0f32; m * k]);
    let mut group = c.benchmark_group("kernels_coco_scale");
    group.sample_size(10);
    for level in Detected::all() {
        let level_name = level.level().name();
        group.throughput(Throughput::Elements((n * k * p) as u64));
        group.bench_function(BenchmarkId::new("population_scores_50", level_name), |b| {
            b.iter(|| scores_nt_at(level, x.as_slice(), n, k, &w, p, &bias, black_box(&mut out)))
        });
        group.throughput(Throughput::Elements((n * k * m) as u64));
        group.bench_function(BenchmarkId::new("head_gradient_80", level_name), |b| {
            b.iter(|| weighted_row_sums_at(level, &a, m, x.as_slice(), n, k, black_box(&mut grad)))
        });
    }
    group.finish();
}

criterion_group!(benches, epochs, metrics, kernels);
criterion_main!(benches);
