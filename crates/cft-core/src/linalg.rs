//! Dense row-major f32 matrices and the three products CFT needs.
//!
//! * [`gemv`]: scores of one head on every sample (`X w + b`);
//! * [`gemv_t`]: the gradient of a loss with respect to the weights (`Xᵀ g`);
//! * [`gemm_nt`]: scores of a whole GA population (`W Xᵀ`), and [`gemm_nn`], the gradient of
//!   every head (`G X`), through [`crate::kernels`] (the same bits on every processor).
//!
//! Every reduction runs over fixed-size row blocks combined in a fixed order, so results do not
//! depend on the number of threads.

use crate::error::CoreError;
use rayon::prelude::*;

crate::choice! {
    /// Storage precision of features: computation always accumulates in f32.
    #[derive(Default)]
    pub enum Precision {
        /// 32-bit floats.
        #[default]
        F32 = "f32",
        /// IEEE half precision (halves storage; ~3 significant digits).
        F16 = "f16",
        /// bfloat16 (halves storage; f32's range, ~2 significant digits).
        Bf16 = "bf16",
    }
}

impl Precision {
    /// Rounds a value to this precision (round to nearest even), back as f32.
    pub fn round(self, v: f32) -> f32 {
        match self {
            Precision::F32 => v,
            Precision::F16 => half::f16::from_f32(v).to_f32(),
            Precision::Bf16 => half::bf16::from_f32(v).to_f32(),
        }
    }
}

/// A dense row-major `rows × cols` f32 matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

impl Matrix {
    /// Wraps row-major data; a [`CoreError::Shape`] naming both sizes if
    /// `data.len() != rows × cols`.
    pub fn new(rows: usize, cols: usize, data: Vec<f32>) -> Result<Self, CoreError> {
        if data.len() != rows * cols {
            return Err(CoreError::shape(
                "matrix",
                format!("[{rows}, {cols}] ({} values)", rows * cols),
                format!("{} values", data.len()),
            ));
        }
        Ok(Self { rows, cols, data })
    }

    /// A zero matrix.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self { rows, cols, data: vec![0.0; rows * cols] }
    }

    /// Number of rows (samples).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns (feature dimension).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Row `i`, mutable.
    pub fn row_mut(&mut self, i: usize) -> &mut [f32] {
        &mut self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// The row-major data.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// The row-major data, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// Consumes the matrix, returning its data.
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }

    /// A new matrix made of the given rows, in order.
    pub fn gather_rows(&self, rows: &[usize]) -> Matrix {
        let mut data = Vec::with_capacity(rows.len() * self.cols);
        for &r in rows {
            data.extend_from_slice(self.row(r));
        }
        Matrix { rows: rows.len(), cols: self.cols, data }
    }

    /// The matrix as it would be after storage in `precision` (every entry rounded): shows what
    /// half-precision feature storage does to CFT without half-precision kernels.
    pub fn rounded(&self, precision: Precision) -> Matrix {
        Matrix { rows: self.rows, cols: self.cols, data: self.data.iter().map(|&v| precision.round(v)).collect() }
    }

    /// Position and value of the first non-finite entry, if any.
    pub fn first_non_finite(&self) -> Option<(usize, usize, f32)> {
        self.data
            .iter()
            .position(|v| !v.is_finite())
            .map(|i| (i / self.cols.max(1), i % self.cols.max(1), self.data[i]))
    }
}

/// Dot product with 16 independent accumulators (vectorises without `unsafe`).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    const L: usize = 16;
    let mut acc = [0.0f32; L];
    let (ca, cb) = (a.chunks_exact(L), b.chunks_exact(L));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..L {
            acc[k] += x[k] * y[k];
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    let mut width = L;
    while width > 1 {
        width /= 2;
        for k in 0..width {
            acc[k] += acc[k + width];
        }
    }
    acc[0] + tail
}

const ROW_BLOCK: usize = 256;

/// `out[i] = x.row(i) · w + b`.
pub fn gemv(x: &Matrix, w: &[f32], b: f32, out: &mut [f32]) {
    assert_eq!(w.len(), x.cols, "weight length must equal the feature dimension");
    assert_eq!(out.len(), x.rows, "output length must equal the number of rows");
    let d = x.cols.max(1);
    out.par_chunks_mut(ROW_BLOCK).zip(x.data.par_chunks(ROW_BLOCK * d)).for_each(|(o, rows)| {
        for (oi, row) in o.iter_mut().zip(rows.chunks_exact(d)) {
            *oi = dot(row, w) + b;
        }
    });
}

/// `out = xᵀ g` (length `cols`): per fixed row block a partial sum, then the blocks in order.
pub fn gemv_t(x: &Matrix, g: &[f32], out: &mut [f32]) {
    assert_eq!(g.len(), x.rows, "gradient length must equal the number of rows");
    assert_eq!(out.len(), x.cols, "output length must equal the feature dimension");
    let d = x.cols.max(1);
    let partials: Vec<Vec<f32>> = x
        .data
        .par_chunks(GEMV_T_BLOCK * d)
        .zip(g.par_chunks(GEMV_T_BLOCK))
        .map(|(rows, gs)| {
            let mut acc = vec![0.0f32; x.cols];
            for (row, &gi) in rows.chunks_exact(d).zip(gs) {
                if gi != 0.0 {
                    for (a, &v) in acc.iter_mut().zip(row) {
                        *a += gi * v;
                    }
                }
            }
            acc
        })
        .collect();
    sum_partials(partials, out);
}

/// Rows per partial sum of [`gemv_t`]: fixed, so the thread count never changes the sums.
const GEMV_T_BLOCK: usize = 1024;

/// `out = Σ partials`, in order, starting from zero.
fn sum_partials(partials: Vec<Vec<f32>>, out: &mut [f32]) {
    out.fill(0.0);
    for p in partials {
        for (o, v) in out.iter_mut().zip(p) {
            *o += v;
        }
    }
}

/// `out[p × n + i] = w.row(p) · x.row(i) + bias[p]`: every individual's scores, one row each.
/// Machine-independent: see [`crate::kernels::scores_nt`].
pub fn gemm_nt(x: &Matrix, w: &Matrix, bias: &[f32], out: &mut [f32]) {
    assert_eq!(w.cols, x.cols, "population genes must equal the feature dimension");
    crate::kernels::scores_nt(&x.data, x.rows, x.cols, &w.data, w.rows, bias, out);
}

/// `out = a · x` where `a` is `m × n` row-major and `x` is `n × k`: `out` is `m × k` row-major.
/// Used for the gradient of all heads at once (`G X`). Machine-independent: see
/// [`crate::kernels::weighted_row_sums`].
pub fn gemm_nn(a: &[f32], m: usize, x: &Matrix, out: &mut [f32]) {
    crate::kernels::weighted_row_sums(a, m, &x.data, x.rows, x.cols, out);
}

/// Some rows of a matrix by index (or all of them), read in place. The products below give
/// the bits of the same products on the gathered matrix ([`Matrix::gather_rows`]) without
/// holding that copy: a category's known samples at partial COCO (tens of thousands of rows ×
/// 2048 features) would otherwise be copied once per category, hundreds of MB each.
#[derive(Debug, Clone)]
pub struct RowSubset<'a> {
    matrix: &'a Matrix,
    /// `None`: every row, in order.
    rows: Option<Vec<usize>>,
}

/// Rows per gathered block of [`gemm_nt_rows`] (8 MB at 2048 features).
const GATHER_BLOCK: usize = 1024;

impl<'a> RowSubset<'a> {
    /// Every row of `matrix`.
    pub fn all(matrix: &'a Matrix) -> Self {
        Self { matrix, rows: None }
    }

    /// The given rows (ascending, each at most once); all of them when that is every row.
    pub fn of(matrix: &'a Matrix, rows: Vec<usize>) -> Self {
        if rows.len() == matrix.rows() {
            Self::all(matrix)
        } else {
            Self { matrix, rows: Some(rows) }
        }
    }

    /// Whether this is every row of the matrix, in order.
    pub fn is_all(&self) -> bool {
        self.rows.is_none()
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows.as_ref().map_or(self.matrix.rows(), Vec::len)
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.matrix.cols()
    }

    /// Row `i` of the subset.
    pub fn row(&self, i: usize) -> &'a [f32] {
        let matrix: &'a Matrix = self.matrix;
        match &self.rows {
            None => matrix.row(i),
            Some(r) => matrix.row(r[i]),
        }
    }

    /// The subset as a matrix (borrowed when it is every row).
    pub fn to_matrix(&self) -> std::borrow::Cow<'a, Matrix> {
        match &self.rows {
            None => std::borrow::Cow::Borrowed(self.matrix),
            Some(r) => std::borrow::Cow::Owned(self.matrix.gather_rows(r)),
        }
    }
}

/// [`gemv`] on a row subset: the same dot product per row.
pub fn gemv_rows(x: &RowSubset<'_>, w: &[f32], b: f32, out: &mut [f32]) {
    if x.is_all() {
        return gemv(x.matrix, w, b, out);
    }
    assert_eq!(w.len(), x.cols(), "weight length must equal the feature dimension");
    assert_eq!(out.len(), x.rows(), "output length must equal the number of rows");
    out.par_chunks_mut(ROW_BLOCK).enumerate().for_each(|(blk, o)| {
        for (j, oi) in o.iter_mut().enumerate() {
            *oi = dot(x.row(blk * ROW_BLOCK + j), w) + b;
        }
    });
}

/// [`gemv_t`] on a row subset: the same row blocks, summed in the same order.
pub fn gemv_t_rows(x: &RowSubset<'_>, g: &[f32], out: &mut [f32]) {
    if x.is_all() {
        return gemv_t(x.matrix, g, out);
    }
    assert_eq!(g.len(), x.rows(), "gradient length must equal the number of rows");
    assert_eq!(out.len(), x.cols(), "output length must equal the feature dimension");
    let partials: Vec<Vec<f32>> = g
        .par_chunks(GEMV_T_BLOCK)
        .enumerate()
        .map(|(blk, gs)| {
            let mut acc = vec![0.0f32; x.cols()];
            for (j, &gi) in gs.iter().enumerate() {
                if gi != 0.0 {
                    for (a, &v) in acc.iter_mut().zip(x.row(blk * GEMV_T_BLOCK + j)) {
                        *a += gi * v;
                    }
                }
            }
            acc
        })
        .collect();
    sum_partials(partials, out);
}

/// [`gemm_nt`] on a row subset: blocks of rows gathered one at a time (each score is its own
/// sum, so the block size does not change any bit).
pub fn gemm_nt_rows(x: &RowSubset<'_>, w: &Matrix, bias: &[f32], out: &mut [f32]) {
    if x.is_all() {
        return gemm_nt(x.matrix, w, bias, out);
    }
    let (n, p, d) = (x.rows(), w.rows(), x.cols());
    assert_eq!(w.cols, d, "population genes must equal the feature dimension");
    assert_eq!(out.len(), p * n, "out must be population × rows");
    // One pair of buffers per thread, kept between calls: a GA step calls this once per
    // category, and fresh 8 MB buffers each time fragment the allocator's heap (the process
    // then holds gigabytes it no longer uses).
    thread_local! {
        static BUFFERS: std::cell::RefCell<(Vec<f32>, Vec<f32>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
    }
    // Taken out while in use: the product runs on rayon, whose waiting thread may run
    // another category's call here (which then finds no buffers and makes its own).
    let (mut block, mut scores) = BUFFERS.with(|b| std::mem::take(&mut *b.borrow_mut()));
    {
        scores.resize(p * GATHER_BLOCK.min(n), 0.0);
        for start in (0..n).step_by(GATHER_BLOCK) {
            let len = GATHER_BLOCK.min(n - start);
            block.clear();
            for i in start..start + len {
                block.extend_from_slice(x.row(i));
            }
            let scores = &mut scores[..p * len];
            crate::kernels::scores_nt(&block, len, d, &w.data, p, bias, scores);
            for q in 0..p {
                out[q * n + start..q * n + start + len].copy_from_slice(&scores[q * len..(q + 1) * len]);
            }
        }
    }
    BUFFERS.with(|b| *b.borrow_mut() = (block, scores));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &Matrix, w: &[f32]) -> Vec<f32> {
        (0..x.rows()).map(|i| x.row(i).iter().zip(w).map(|(a, b)| a * b).sum()).collect()
    }

    fn sample(rows: usize, cols: usize) -> Matrix {
        let data = (0..rows * cols).map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 250.0).collect();
        Matrix::new(rows, cols, data).unwrap()
    }

    #[test]
    fn products_on_a_row_subset_equal_those_on_the_gathered_rows_bit_for_bit() {
        let x = sample(2500, 37);
        let rows: Vec<usize> = (0..2500).filter(|i| i % 3 != 1).collect();
        let (sub, gathered) = (RowSubset::of(&x, rows.clone()), x.gather_rows(&rows));
        assert_eq!((sub.rows(), sub.is_all()), (rows.len(), false));
        let w: Vec<f32> = (0..37).map(|j| (j as f32 - 18.0) / 10.0).collect();
        let (mut a, mut b) = (vec![0.0; rows.len()], vec![0.0; rows.len()]);
        gemv_rows(&sub, &w, 0.25, &mut a);
        gemv(&gathered, &w, 0.25, &mut b);
        assert_eq!(a, b);
        let g: Vec<f32> = (0..rows.len()).map(|i| ((i * 31) % 7) as f32 / 3.0 - 1.0).collect();
        let (mut a, mut b) = (vec![0.0; 37], vec![0.0; 37]);
        gemv_t_rows(&sub, &g, &mut a);
        gemv_t(&gathered, &g, &mut b);
        assert_eq!(a, b);
        let pop = sample(5, 37);
        let bias = [0.0, 1.0, 2.0, 3.0, 4.0];
        let (mut a, mut b) = (vec![0.0; 5 * rows.len()], vec![0.0; 5 * rows.len()]);
        gemm_nt_rows(&sub, &pop, &bias, &mut a);
        gemm_nt(&gathered, &pop, &bias, &mut b);
        assert_eq!(a, b);
        assert!(RowSubset::of(&x, (0..2500).collect()).is_all());
    }

    #[test]
    fn products_match_naive_loops() {
        let x = sample(300, 37);
        let w: Vec<f32> = (0..37).map(|j| (j as f32 - 18.0) / 10.0).collect();
        let mut out = vec![0.0; 300];
        gemv(&x, &w, 0.5, &mut out);
        for (a, b) in out.iter().zip(naive(&x, &w)) {
            assert!((a - (b + 0.5)).abs() < 1e-3, "{a} vs {b}");
        }
        let g: Vec<f32> = (0..300).map(|i| (i % 5) as f32 - 2.0).collect();
        let mut gt = vec![0.0; 37];
        gemv_t(&x, &g, &mut gt);
        for (j, &got) in gt.iter().enumerate() {
            let want: f32 = (0..300).map(|i| x.row(i)[j] * g[i]).sum();
            assert!((got - want).abs() < 1e-2, "{j}: {got} vs {want}");
        }
        let pop = sample(5, 37);
        let mut s = vec![0.0; 5 * 300];
        gemm_nt(&x, &pop, &[0.0, 1.0, 2.0, 3.0, 4.0], &mut s);
        for p in 0..5 {
            let want = naive(&x, pop.row(p));
            for i in 0..300 {
                assert!((s[p * 300 + i] - want[i] - p as f32).abs() < 1e-3);
            }
        }
        let a: Vec<f32> = (0..2 * 300).map(|i| (i % 3) as f32 - 1.0).collect();
        let mut prod = vec![0.0; 2 * 37];
        gemm_nn(&a, 2, &x, &mut prod);
        for r in 0..2 {
            for j in 0..37 {
                let want: f32 = (0..300).map(|i| a[r * 300 + i] * x.row(i)[j]).sum();
                assert!((prod[r * 37 + j] - want).abs() < 1e-2);
            }
        }
    }
}
