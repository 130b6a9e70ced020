//! The CUDA engine against the CPU, on a GPU (`cargo test -p cft-cuda --features cuda`): the
//! same comparisons as `cft gpu-check`'s first two, held to [`cft_cuda::bounds`]. Without the
//! `cuda` feature this file compiles to nothing (the CPU forms of the kernels are tested in
//! the crate's unit tests).
#![cfg(feature = "cuda")]

use cft_core::{Metric, Pcg64};
use cft_cuda::{bounds, rank, Gpu};

#[test]
fn the_random_table_equals_the_cpu_one_bit_for_bit() {
    let gpu = Gpu::new(0).expect("a CUDA device");
    let table = gpu.counter_uniform_table(42, 1 << 16).unwrap();
    let cpu = cft_cuda::rng::counter_uniform_table(42, 1 << 16);
    let same = table.iter().zip(&cpu).filter(|(a, b)| a.to_bits() == b.to_bits()).count();
    assert_eq!(same, table.len(), "{same} of {} values bit-identical", table.len());
}

#[test]
fn the_rank_kernel_equals_the_exact_cpu_metrics_on_tie_heavy_rows() {
    let gpu = Gpu::new(0).expect("a CUDA device");
    let mut rng = Pcg64::new(7);
    // Shared-memory and global-memory paths (up to about 12,000 positives per row).
    for &(n, levels, rate, rows) in &[(1000usize, 5u32, 0.3, 64usize), (40137, 10000, 0.3, 8)] {
        let (scores, labels) = rank::tie_heavy_rows(&mut rng, n, levels, rate, rows);
        for metric in [Metric::Ap, Metric::Auc] {
            let got = gpu.rank_metric_rows(metric, &scores, &labels, n).unwrap();
            for (r, (g, w)) in got.iter().zip(rank::exact_rows(metric, &scores, &labels, n)).enumerate() {
                let diff = (g - w).abs();
                assert!(diff <= bounds::RANK_ABS, "{metric:?}, n = {n}, row {r}: |gpu − cpu| = {diff:e}");
            }
        }
    }
}
