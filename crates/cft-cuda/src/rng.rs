//! The GPU engine's random numbers: a counter-based generator (SplitMix64's finaliser applied
//! to the key `(seed, category, generation, individual, gene, slot)`), so that every gene of
//! every individual can draw its own number in parallel without shared state.
//!
//! This is **not** the CPU engine's per-category PCG64 stream: a CUDA GA run is reproducible
//! for a seed but takes different random draws than `cft finetune --engine batched`, so the
//! two agree statistically, not bit for bit. The kernels in `kernels/cft.cu` compute the same
//! function; the GPU check compares a table of values.

fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform double in `[0, 1)` for one key; identical to `counter_uniform` in the kernels.
pub fn counter_uniform(seed: u64, cat: u64, gen: u64, ind: u64, gene: u64, slot: u64) -> f64 {
    let mut h = mix64(seed ^ 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(cat + 1));
    h = mix64(h ^ 0xD1B5_4A32_D192_ED03u64.wrapping_mul(gen + 1));
    h = mix64(h ^ ((ind << 32) | gene) ^ 0x8CB9_2BA7_2F3D_8DD7u64.wrapping_mul(slot + 1));
    (h >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
}

/// The table the kernel `counter_uniform_table` writes: entry `i` is
/// `counter_uniform(seed, i % 7, i % 5, i % 3, i, i % 4)`.
pub fn counter_uniform_table(seed: u64, count: usize) -> Vec<f64> {
    (0..count as u64).map(|i| counter_uniform(seed, i % 7, i % 5, i % 3, i, i % 4)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_and_key_sensitive() {
        let t = counter_uniform_table(7, 100_000);
        assert!(t.iter().all(|&u| (0.0..1.0).contains(&u)));
        let mean = t.iter().sum::<f64>() / t.len() as f64;
        assert!((mean - 0.5).abs() < 0.005, "mean {mean}");
        // Every key component changes the value.
        let base = counter_uniform(1, 2, 3, 4, 5, 0);
        for other in [
            counter_uniform(2, 2, 3, 4, 5, 0),
            counter_uniform(1, 3, 3, 4, 5, 0),
            counter_uniform(1, 2, 4, 4, 5, 0),
            counter_uniform(1, 2, 3, 5, 5, 0),
            counter_uniform(1, 2, 3, 4, 6, 0),
            counter_uniform(1, 2, 3, 4, 5, 1),
        ] {
            assert_ne!(base, other);
        }
    }
}
