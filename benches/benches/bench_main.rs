//! Criterion benchmarks of the CFT kernels at COCO scale (synthetic features): one BP epoch and
//! one GA generation of one category (8,200 known training samples, 40,137 validation samples,
//! d = 2048), and exact AP / ROC-AUC throughput.
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

criterion_group!(benches, epochs, metrics);
criterion_main!(benches);
