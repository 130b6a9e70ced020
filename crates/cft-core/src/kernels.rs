//! Matrix products whose results do not depend on the machine.
//!
//! Every output is one sum over its reduction index, taken **in order** (`s = 0; s = s + a·b`
//! for each term, the product rounded, then the sum rounded: no fused multiply-add), and the
//! vector lanes run across *independent outputs*, never across the terms of one sum. So each
//! lane does exactly the scalar sequence of operations, and the result is bit-identical with
//! scalar code, SSE2, AVX2 or AVX-512 (and NEON), whatever the vector width. Threads split
//! only independent outputs, so the thread count does not matter either.
//!
//! The same source is compiled for the baseline target, with AVX2 and with AVX-512F (x86-64);
//! one is picked at run time (`CFT_KERNEL=scalar|avx2|avx512|auto`, or [`set_kernel_level`]).
//! The levels differ in speed only; the tests compare every level the machine has, bit for bit.
//!
//! **Soundness.** Running the AVX-512 copy on a processor without AVX-512 is undefined
//! behaviour, so no safe function takes a bare [`KernelLevel`]: the `*_at` functions take a
//! [`Detected`] level, a token whose field is private and which only detection hands out
//! ([`Detected::all`], [`Detected::best`], [`Detected::check`]). A level the processor lacks
//! cannot be turned into one:
//!
//! ```compile_fail
//! use cft_core::kernels::{Detected, KernelLevel};
//! let forged = Detected(KernelLevel::Avx512); // error: the field is private
//! ```

use rayon::prelude::*;
use std::sync::atomic::{AtomicU8, Ordering};

/// The compiled copies of the kernels, by name (for flags, manifests and reports). A name is
/// not a permission to run: see [`Detected`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KernelLevel {
    /// The baseline build (SSE2 on x86-64, NEON on aarch64).
    Scalar,
    /// AVX2 (x86-64 with AVX2 only).
    Avx2,
    /// AVX-512F (x86-64 with AVX-512 only).
    Avx512,
}

impl KernelLevel {
    /// The levels this machine can run, slowest first.
    pub fn available() -> Vec<KernelLevel> {
        Detected::all().into_iter().map(Detected::level).collect()
    }

    /// Its name (`scalar`, `avx2`).
    pub fn name(self) -> &'static str {
        match self {
            KernelLevel::Scalar => "scalar",
            KernelLevel::Avx2 => "avx2",
            KernelLevel::Avx512 => "avx512",
        }
    }

    /// Whether the processor reports the instruction set this level needs (asked each time:
    /// the standard library caches the answer).
    fn detected(self) -> bool {
        match self {
            KernelLevel::Scalar => true,
            KernelLevel::Avx2 => avx2_detected(),
            KernelLevel::Avx512 => avx512_detected(),
        }
    }
}

/// Proof that this processor runs a kernel level: the only way into the kernels' dispatch.
/// The field is private, so safe code obtains one only from detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detected(KernelLevel);

impl Detected {
    /// Every level this processor runs, slowest first (scalar always).
    pub fn all() -> Vec<Detected> {
        [KernelLevel::Scalar, KernelLevel::Avx2, KernelLevel::Avx512]
            .into_iter()
            .filter(|l| l.detected())
            .map(Detected)
            .collect()
    }

    /// The fastest level this processor runs.
    pub fn best() -> Detected {
        Self::all().into_iter().last().unwrap_or(Detected(KernelLevel::Scalar))
    }

    /// `level`, if this processor runs it.
    pub fn check(level: KernelLevel) -> Result<Detected, UnavailableKernel> {
        check_level(level, &KernelLevel::available())
    }

    /// The level it stands for.
    pub fn level(self) -> KernelLevel {
        self.0
    }
}

impl std::str::FromStr for KernelLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "scalar" => Ok(KernelLevel::Scalar),
            "avx2" => Ok(KernelLevel::Avx2),
            "avx512" => Ok(KernelLevel::Avx512),
            other => Err(format!("kernel level `{other}`: expected scalar, avx2, avx512 or auto")),
        }
    }
}

impl std::str::FromStr for Detected {
    type Err = String;
    /// A level name (or `auto`, the best), refused when this processor lacks it.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Detected::best()),
            name => Detected::check(name.parse()?).map_err(|e| e.to_string()),
        }
    }
}

fn avx2_detected() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn avx512_detected() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// 0: not chosen yet (read `CFT_KERNEL` on first use); 1: scalar; 2: avx2; 3: avx512. Only
/// [`Detected`] levels are stored.
static LEVEL: AtomicU8 = AtomicU8::new(0);

/// A kernel level the processor cannot run: selecting it would execute instructions the CPU
/// lacks (undefined behaviour), so it is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("kernel level {}: this processor cannot run it (available: {})", .level.name(), .available.iter().map(|l| l.name()).collect::<Vec<_>>().join(", "))]
pub struct UnavailableKernel {
    /// The level asked for.
    pub level: KernelLevel,
    /// The levels this processor runs.
    pub available: Vec<KernelLevel>,
}

/// `level` as a [`Detected`] token if it is among `available` (the detected levels; a
/// parameter so that tests can pretend a processor without AVX-512).
fn check_level(level: KernelLevel, available: &[KernelLevel]) -> Result<Detected, UnavailableKernel> {
    if available.contains(&level) {
        Ok(Detected(level))
    } else {
        Err(UnavailableKernel { level, available: available.to_vec() })
    }
}

/// Chooses the kernel level for the rest of the process (only a detected one can be given).
pub fn set_kernel_level(level: Detected) {
    LEVEL.store(
        match level.0 {
            KernelLevel::Scalar => 1,
            KernelLevel::Avx2 => 2,
            KernelLevel::Avx512 => 3,
        },
        Ordering::Relaxed,
    );
}

/// The kernel level in use: set by [`set_kernel_level`], else `CFT_KERNEL`, else the best.
/// An unusable `CFT_KERNEL` falls back to the best level (the CLI checks it and says so).
pub fn kernel_level() -> Detected {
    match LEVEL.load(Ordering::Relaxed) {
        1 => Detected(KernelLevel::Scalar),
        2 => Detected(KernelLevel::Avx2),
        3 => Detected(KernelLevel::Avx512),
        _ => {
            // `Detected::from_str` only accepts detected levels.
            let level = std::env::var("CFT_KERNEL").ok().and_then(|v| v.parse().ok()).unwrap_or_else(Detected::best);
            set_kernel_level(level);
            level
        }
    }
}

/// Individuals (rows of `w`) per tile of [`scores_nt`]: the vector direction. A remainder of
/// at most [`MR_NARROW`] heads gets a narrow tile (a population of 50: 3 × 16 + 1 × 8 lanes).
const MR: usize = 16;
/// The narrow tile's width.
const MR_NARROW: usize = 8;
/// Rows of `x` per tile of [`scores_nt`].
const NR: usize = 6;
/// Rows of `x` per parallel task of [`scores_nt`].
const ROWS_PER_TASK: usize = 64;

/// The tiles of `p` heads: (first head, width) with width [`MR`], the last one [`MR_NARROW`]
/// wide when the remainder fits it.
fn tile_plan(p: usize) -> Vec<(usize, usize)> {
    let mut plan: Vec<(usize, usize)> = (0..p / MR).map(|t| (t * MR, MR)).collect();
    match p % MR {
        0 => {}
        r if r <= MR_NARROW => plan.push((p - r, MR_NARROW)),
        r => plan.push((p - r, MR)),
    }
    plan
}

/// Heads `first..first + width` of `w` (`p × k`, row-major) stored `k`-major (`[kk][lane]`),
/// lanes past `p` zero.
fn pack_tile(w: &[f32], p: usize, k: usize, first: usize, width: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; k * width];
    for q in first..(first + width).min(p) {
        for (kk, &v) in w[q * k..(q + 1) * k].iter().enumerate() {
            out[kk * width + (q - first)] = v;
        }
    }
    out
}

/// One tile: `acc[r][lane] = Σ_kk x_r[kk] · tile[kk][lane]`, in order of `kk`.
#[inline(always)]
fn tile_body<const R: usize, const M: usize>(xs: [&[f32]; R], tile: &[f32], acc: &mut [[f32; M]; R]) {
    let k = tile.len() / M;
    let xs: [&[f32]; R] = xs.map(|x| &x[..k]);
    let tile = &tile[..k * M];
    // A local copy: the accumulators stay in registers for the whole loop.
    let mut a = *acc;
    for kk in 0..k {
        let wv: &[f32; M] = tile[kk * M..kk * M + M].try_into().expect("M lanes");
        for r in 0..R {
            let b = xs[r][kk];
            for l in 0..M {
                a[r][l] += b * wv[l];
            }
        }
    }
    *acc = a;
}

fn tile_baseline<const R: usize, const M: usize>(xs: [&[f32]; R], tile: &[f32], acc: &mut [[f32; M]; R]) {
    tile_body(xs, tile, acc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn tile_avx2<const R: usize, const M: usize>(xs: [&[f32]; R], tile: &[f32], acc: &mut [[f32; M]; R]) {
    tile_body(xs, tile, acc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn tile_avx512<const R: usize, const M: usize>(xs: [&[f32]; R], tile: &[f32], acc: &mut [[f32; M]; R]) {
    tile_body(xs, tile, acc)
}

#[inline(always)]
fn tile<const R: usize, const M: usize>(level: Detected, xs: [&[f32]; R], t: &[f32], acc: &mut [[f32; M]; R]) {
    match level.0 {
        #[cfg(target_arch = "x86_64")]
        KernelLevel::Avx2 => {
            // SAFETY: a `Detected` level is only constructed for a level the processor reports
            // (`Detected::all`/`check`); the public entry points assert it once more.
            #[allow(unsafe_code)]
            unsafe {
                tile_avx2(xs, t, acc)
            }
        }
        #[cfg(target_arch = "x86_64")]
        KernelLevel::Avx512 => {
            // SAFETY: as above, with AVX-512F.
            #[allow(unsafe_code)]
            unsafe {
                tile_avx512(xs, t, acc)
            }
        }
        _ => tile_baseline(xs, t, acc),
    }
}

/// Runs the rows `rows` of `x` through one packed tile of `M` heads starting at `first`,
/// writing `local[q * len + (i - rows.start)] = sum + bias[q]` for the tile's real heads.
#[allow(clippy::too_many_arguments)]
fn run_tile<const M: usize>(
    level: Detected,
    x: &[f32],
    k: usize,
    rows: std::ops::Range<usize>,
    packed: &[f32],
    first: usize,
    p: usize,
    bias: &[f32],
    local: &mut [f32],
) {
    let len = rows.len();
    let row = |i: usize| &x[i * k..(i + 1) * k];
    let heads = first..(first + M).min(p);
    let mut store = |i: usize, acc: &[f32; M]| {
        for q in heads.clone() {
            local[q * len + (i - rows.start)] = acc[q - first] + bias[q];
        }
    };
    let mut i = rows.start;
    while i + NR <= rows.end {
        let mut acc = [[0.0f32; M]; NR];
        tile(level, std::array::from_fn(|r| row(i + r)), packed, &mut acc);
        for (r, a) in acc.iter().enumerate() {
            store(i + r, a);
        }
        i += NR;
    }
    while i < rows.end {
        let mut acc = [[0.0f32; M]; 1];
        tile(level, [row(i)], packed, &mut acc);
        store(i, &acc[0]);
        i += 1;
    }
}

/// `out[q × n + i] = (Σ_kk w[q][kk] · x[i][kk]) + bias[q]`: the scores of `p` heads (a GA
/// population, or every category's head) on the `n` rows of `x` (`n × k`), one row of `out`
/// per head. Each sum runs in order of `kk`; see the module docs.
pub fn scores_nt(x: &[f32], n: usize, k: usize, w: &[f32], p: usize, bias: &[f32], out: &mut [f32]) {
    scores_nt_at(kernel_level(), x, n, k, w, p, bias, out)
}

/// [`scores_nt`] with the given kernel level (same bits at every level; for tests and benches).
#[allow(clippy::too_many_arguments)]
pub fn scores_nt_at(
    level: Detected,
    x: &[f32],
    n: usize,
    k: usize,
    w: &[f32],
    p: usize,
    bias: &[f32],
    out: &mut [f32],
) {
    assert_eq!(x.len(), n * k, "x must be n × k");
    assert_eq!(w.len(), p * k, "w must be p × k");
    assert_eq!(bias.len(), p, "one bias per head");
    assert_eq!(out.len(), n * p, "out must be p × n");
    assert_detected(level);
    if n == 0 || p == 0 {
        return;
    }
    let plan = tile_plan(p);
    let packed: Vec<Vec<f32>> = plan.iter().map(|&(first, width)| pack_tile(w, p, k, first, width)).collect();
    let blocks: Vec<Vec<f32>> = (0..n.div_ceil(ROWS_PER_TASK))
        .into_par_iter()
        .map(|b| {
            let rows = b * ROWS_PER_TASK..((b + 1) * ROWS_PER_TASK).min(n);
            // Local result, head-major: local[q * len + (i - start)].
            let mut local = vec![0.0f32; p * rows.len()];
            for (&(first, width), tile_w) in plan.iter().zip(&packed) {
                if width == MR {
                    run_tile::<MR>(level, x, k, rows.clone(), tile_w, first, p, bias, &mut local);
                } else {
                    run_tile::<MR_NARROW>(level, x, k, rows.clone(), tile_w, first, p, bias, &mut local);
                }
            }
            local
        })
        .collect();
    for (b, local) in blocks.iter().enumerate() {
        let start = b * ROWS_PER_TASK;
        let len = local.len() / p;
        for (q, chunk) in local.chunks_exact(len).enumerate() {
            out[q * n + start..q * n + start + len].copy_from_slice(chunk);
        }
    }
}

/// What the dispatch's SAFETY notes rely on, checked at every public entry (a cached flag
/// read, once per call): the token's level is one the processor reports.
fn assert_detected(level: Detected) {
    assert!(level.0.detected(), "kernel level {} used on a processor without it", level.0.name());
}

/// Columns of `x` per tile of [`weighted_row_sums`]: the vector direction.
const CW: usize = 16;
/// Rows of `a` (heads) per tile of [`weighted_row_sums`].
const CH: usize = 4;
/// Columns of `x` per parallel task of [`weighted_row_sums`].
const COLS_PER_TASK: usize = 256;
/// Rows of `x` per pass (kept in cache while every head's tile runs over them).
const ROWS_PER_PASS: usize = 128;

/// One tile: `acc[h][lane] += Σ_i a_h[i] · x[i][col + lane]` over the rows of the pass, in
/// order of `i` (the accumulators carry the sum across passes, so the order is `i` overall).
#[inline(always)]
fn sums_body<const H: usize>(a: [&[f32]; H], x: &[f32], k: usize, col: usize, acc: &mut [[f32; CW]; H]) {
    let rows = a[0].len();
    let a: [&[f32]; H] = a.map(|ah| &ah[..rows]);
    // A local copy: the accumulators stay in registers for the whole loop.
    let mut s = *acc;
    for i in 0..rows {
        let xv: &[f32; CW] = x[i * k + col..i * k + col + CW].try_into().expect("CW lanes");
        for h in 0..H {
            let g = a[h][i];
            for l in 0..CW {
                s[h][l] += g * xv[l];
            }
        }
    }
    *acc = s;
}

fn sums_baseline<const H: usize>(a: [&[f32]; H], x: &[f32], k: usize, col: usize, acc: &mut [[f32; CW]; H]) {
    sums_body(a, x, k, col, acc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn sums_avx2<const H: usize>(a: [&[f32]; H], x: &[f32], k: usize, col: usize, acc: &mut [[f32; CW]; H]) {
    sums_body(a, x, k, col, acc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn sums_avx512<const H: usize>(a: [&[f32]; H], x: &[f32], k: usize, col: usize, acc: &mut [[f32; CW]; H]) {
    sums_body(a, x, k, col, acc)
}

#[inline(always)]
fn sums<const H: usize>(level: Detected, a: [&[f32]; H], x: &[f32], k: usize, col: usize, acc: &mut [[f32; CW]; H]) {
    match level.0 {
        #[cfg(target_arch = "x86_64")]
        KernelLevel::Avx2 => {
            // SAFETY: as in `tile`: a `Detected` Avx2 exists only where the processor reports AVX2.
            #[allow(unsafe_code)]
            unsafe {
                sums_avx2(a, x, k, col, acc)
            }
        }
        #[cfg(target_arch = "x86_64")]
        KernelLevel::Avx512 => {
            // SAFETY: as in `tile`: a `Detected` Avx512 exists only where the processor reports AVX-512F.
            #[allow(unsafe_code)]
            unsafe {
                sums_avx512(a, x, k, col, acc)
            }
        }
        _ => sums_baseline(a, x, k, col, acc),
    }
}

/// `out[h][j] = Σ_i a[h][i] · x[i][j]` (`a` is `m × n`, `x` is `n × k`, `out` is `m × k`, all
/// row-major): e.g. the gradient of every head at once, `G X`. Each sum runs in order of `i`.
pub fn weighted_row_sums(a: &[f32], m: usize, x: &[f32], n: usize, k: usize, out: &mut [f32]) {
    weighted_row_sums_at(kernel_level(), a, m, x, n, k, out)
}

/// [`weighted_row_sums`] continued: `out[h][j] += Σ_i a[h][i] · x[i][j]`, each sum carried on
/// from `out`'s value in order of `i`. Calling it on consecutive row blocks gives the bits of
/// one [`weighted_row_sums`] over all the rows (the base heads stream millions of rows so).
pub fn weighted_row_sums_onto(a: &[f32], m: usize, x: &[f32], n: usize, k: usize, out: &mut [f32]) {
    weighted_row_sums_from(kernel_level(), a, m, x, n, k, out, true)
}

/// [`weighted_row_sums`] with the given kernel level (same bits at every level).
pub fn weighted_row_sums_at(level: Detected, a: &[f32], m: usize, x: &[f32], n: usize, k: usize, out: &mut [f32]) {
    weighted_row_sums_from(level, a, m, x, n, k, out, false)
}

#[allow(clippy::too_many_arguments)]
fn weighted_row_sums_from(
    level: Detected,
    a: &[f32],
    m: usize,
    x: &[f32],
    n: usize,
    k: usize,
    out: &mut [f32],
    carry_on: bool,
) {
    assert_eq!(a.len(), m * n, "a must be m × n");
    assert_eq!(x.len(), n * k, "x must be n × k");
    assert_eq!(out.len(), m * k, "out must be m × k");
    assert_detected(level);
    if !carry_on {
        out.fill(0.0);
    }
    if m == 0 || k == 0 || n == 0 {
        return;
    }
    // Columns in tasks of COLS_PER_TASK; each task owns its columns of every head.
    let tasks = k.div_ceil(COLS_PER_TASK);
    let results: Vec<Vec<f32>> = (0..tasks)
        .into_par_iter()
        .map(|t| {
            let cols = t * COLS_PER_TASK..((t + 1) * COLS_PER_TASK).min(k);
            let width = cols.len();
            let mut local = vec![0.0f32; m * width];
            for h in 0..m {
                local[h * width..(h + 1) * width].copy_from_slice(&out[h * k + cols.start..h * k + cols.end]);
            }
            let full = cols.start + (width / CW) * CW;
            for pass in (0..n).step_by(ROWS_PER_PASS) {
                let rows = pass..(pass + ROWS_PER_PASS).min(n);
                let xs = &x[rows.start * k..rows.end * k];
                let a_of = |h: usize| &a[h * n + rows.start..h * n + rows.end];
                let mut h = 0;
                while h < m {
                    let hn = (m - h).min(CH);
                    let mut col = cols.start;
                    while col < full {
                        let at = |hh: usize| (h + hh) * width + (col - cols.start);
                        macro_rules! run {
                            ($H:literal, [$($o:literal),*]) => {{
                                let mut acc = [[0.0f32; CW]; $H];
                                for hh in 0..$H {
                                    acc[hh].copy_from_slice(&local[at(hh)..at(hh) + CW]);
                                }
                                sums(level, [$(a_of(h + $o)),*], xs, k, col, &mut acc);
                                for hh in 0..$H {
                                    local[at(hh)..at(hh) + CW].copy_from_slice(&acc[hh]);
                                }
                            }};
                        }
                        match hn {
                            4 => run!(4, [0, 1, 2, 3]),
                            3 => run!(3, [0, 1, 2]),
                            2 => run!(2, [0, 1]),
                            _ => run!(1, [0]),
                        }
                        col += CW;
                    }
                    // Columns past the last full tile: the same sums, one value at a time.
                    for hh in h..h + hn {
                        let ah = a_of(hh);
                        for c in full..cols.end {
                            let mut s = local[hh * width + (c - cols.start)];
                            for (i, &g) in ah.iter().enumerate() {
                                s += g * xs[i * k + c];
                            }
                            local[hh * width + (c - cols.start)] = s;
                        }
                    }
                    h += hn;
                }
            }
            local
        })
        .collect();
    for (t, local) in results.iter().enumerate() {
        let start = t * COLS_PER_TASK;
        let width = local.len() / m;
        for h in 0..m {
            out[h * k + start..h * k + start + width].copy_from_slice(&local[h * width..(h + 1) * width]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_safe_call_reaches_an_instruction_set_the_processor_lacks() {
        // A processor with AVX2 but no AVX-512 (detection overridden by the list): the level is
        // refused, so no `Detected` token for it exists and no kernel can be asked to run it.
        let without = [KernelLevel::Scalar, KernelLevel::Avx2];
        let e = check_level(KernelLevel::Avx512, &without).unwrap_err();
        assert_eq!(e.to_string(), "kernel level avx512: this processor cannot run it (available: scalar, avx2)");
        assert_eq!(check_level(KernelLevel::Avx2, &without).map(Detected::level), Ok(KernelLevel::Avx2));
        // On this processor: every token that detection hands out is a level it reports, the
        // names parse to tokens only when detected, and the one in use stays valid.
        for level in [KernelLevel::Scalar, KernelLevel::Avx2, KernelLevel::Avx512] {
            let token: Result<Detected, String> = level.name().parse();
            assert_eq!(token.is_ok(), level.detected(), "{level:?}");
            assert_eq!(Detected::check(level).is_ok(), level.detected(), "{level:?}");
        }
        for token in Detected::all() {
            assert!(token.level().detected());
            set_kernel_level(token);
            assert_eq!(kernel_level(), token);
        }
        assert!(Detected::all().contains(&Detected::best()));
        set_kernel_level(Detected::best());
        // The only constructors of `Detected` outside this module are the detected ones: the
        // field is private (the module docs' `compile_fail` example checks that a forged
        // token does not compile).
    }

    /// Values with many significant bits, so that any change of order changes the sums.
    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32 * 3.7
            })
            .collect()
    }

    /// The definition, in plain scalar code: each sum in order, product then sum rounded.
    fn scores_reference(x: &[f32], n: usize, k: usize, w: &[f32], p: usize, bias: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0f32; n * p];
        for q in 0..p {
            for i in 0..n {
                let mut s = 0.0f32;
                for kk in 0..k {
                    s += w[q * k + kk] * x[i * k + kk];
                }
                out[q * n + i] = s + bias[q];
            }
        }
        out
    }

    #[test]
    fn scores_equal_the_sequential_definition_bit_for_bit_at_every_level() {
        for &(n, k, p) in &[(1, 1, 1), (7, 3, 2), (130, 37, 50), (67, 64, 17), (5, 0, 3)] {
            let (x, w, b) = (values(n * k, 1), values(p * k, 2), values(p, 3));
            let want = scores_reference(&x, n, k, &w, p, &b);
            for level in Detected::all() {
                let mut got = vec![f32::NAN; n * p];
                scores_nt_at(level, &x, n, k, &w, p, &b, &mut got);
                let same = got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{level:?} n={n} k={k} p={p}");
            }
        }
    }

    #[test]
    fn weighted_sums_equal_the_sequential_definition_bit_for_bit_at_every_level() {
        for &(m, n, k) in &[(1, 1, 1), (3, 5, 7), (6, 300, 294), (5, 129, 40), (2, 0, 4)] {
            let (a, x) = (values(m * n, 4), values(n * k, 5));
            let mut want = vec![0.0f32; m * k];
            for h in 0..m {
                for j in 0..k {
                    let mut s = 0.0f32;
                    for i in 0..n {
                        s += a[h * n + i] * x[i * k + j];
                    }
                    want[h * k + j] = s;
                }
            }
            for level in Detected::all() {
                let mut got = vec![f32::NAN; m * k];
                weighted_row_sums_at(level, &a, m, &x, n, k, &mut got);
                let same = got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{level:?} m={m} n={n} k={k}");
            }
        }
    }

    #[test]
    fn thread_count_does_not_change_the_bits() {
        let (n, k, p) = (300, 50, 20);
        let (x, w, b) = (values(n * k, 6), values(p * k, 7), values(p, 8));
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let mut s = vec![0.0f32; n * p];
                scores_nt(&x, n, k, &w, p, &b, &mut s);
                let mut g = vec![0.0f32; p * k];
                weighted_row_sums(&s[..p * n], p, &x, n, k, &mut g);
                (s, g)
            })
        };
        assert_eq!(run(1), run(3));
    }
}
