//! The CUDA engine: every category's GA population (or BP head) of a batch on the GPU at once.
//!
//! Per generation: one strided-batched cuBLAS GEMM scores every individual of every category
//! on its gathered known training samples; `rank_metric_rows` computes each row's exact AP or
//! ROC-AUC; `ga_select` / `ga_breed` build the next generation (roulette ×2, uniform crossover,
//! mutation, elitism, as the CPU engine); the generation's best heads are validated with one
//! more GEMM on the shared validation features, and `track_best` keeps each category's best
//! head on the device. Only the per-category validation scores come back to the host (for
//! patience and the history). BP is the same loop with a batched forward GEMM, the loss
//! gradient, a batched backward GEMM and Adam.
//!
//! Memory: the training features are uploaded once and each batch gathers its categories'
//! known rows on the device; `CudaOptions::max_batch` (or the free memory) bounds the batch.

use crate::batch::{BatchLabels, EpochTracker};
use crate::rank::POSITIVE;
use cft_core::{
    CategoryOutcome, CheckedFineTune, CoreError, FineTuneConfig, FineTuneRun, Hooks, LinearHead, Loss, Method, Metric,
    SplitRef,
};
use cudarc::cublas::{sys as blas_sys, CudaBlas};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, DevicePtrMut, DriverError, LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::Ptx;
use std::sync::Arc;
use std::time::Instant;

/// What a step returns for the history: the GA's fitness (`k × population`) or BP's loss.
type StepOutputs = (Option<CudaSlice<f64>>, Option<CudaSlice<f64>>);

const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/cft.ptx"));
/// Positives per row that fit the kernel's shared memory (`SHARED_CAP` in the kernels).
const SHARED_CAP: usize = 4096;
const RANK_THREADS: u32 = 256;

/// Errors of the CUDA engine.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    /// The driver failed (no device, out of memory, a kernel fault).
    #[error("CUDA driver: {0}")]
    Driver(#[from] DriverError),
    /// cuBLAS failed.
    #[error("cuBLAS: {0:?}")]
    Blas(#[from] cudarc::cublas::result::CublasError),
    /// A configuration the engine does not support ([`crate::supports`] says so before any work).
    #[error(transparent)]
    Unsupported(#[from] crate::Unsupported),
    /// The core refused the call (shapes, categories) or the caller stopped it.
    #[error(transparent)]
    Core(#[from] CoreError),
}

/// Result of the CUDA engine.
pub type Result<T> = std::result::Result<T, CudaError>;

use crate::GemmPrecision;

/// Options of a CUDA run.
#[derive(Debug, Clone, Copy)]
pub struct CudaOptions {
    /// GEMM precision.
    pub precision: GemmPrecision,
    /// At most this many categories on the device at once (`None`: as many as fit in ~60% of
    /// the free memory).
    pub max_batch: Option<usize>,
}

impl Default for CudaOptions {
    fn default() -> Self {
        Self { precision: GemmPrecision::Tf32, max_batch: None }
    }
}

struct Kernels {
    rank: CudaFunction,
    select: CudaFunction,
    breed: CudaFunction,
    gather_best: CudaFunction,
    track_best: CudaFunction,
    copy_improved: CudaFunction,
    to_bf16: CudaFunction,
    gather_rows: CudaFunction,
    gather_rows_bf16: CudaFunction,
    loss_grad: CudaFunction,
    adam: CudaFunction,
    uniform_table: CudaFunction,
}

/// One GPU with the engine's kernels loaded.
pub struct Gpu {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    k: Kernels,
}

/// Device features in the GEMM's element type.
enum DevMatrix {
    F32(CudaSlice<f32>),
    Bf16(CudaSlice<half::bf16>),
}

fn grid(n: usize, threads: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: ((n as u32).div_ceil(threads).max(1), 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// The CUDA engine behind [`cft_core::Engine`]: the shared outer loop hands it the categories
/// that can be fine-tuned; it uploads the features once and runs them in GPU batches.
struct CudaCategories<'a> {
    gpu: &'a Gpu,
    opts: &'a CudaOptions,
}

impl cft_core::Engine for CudaCategories<'_> {
    type Error = CudaError;

    fn run_categories(
        &self,
        head: &LinearHead,
        train: SplitRef<'_>,
        valid: SplitRef<'_>,
        cfg: &CheckedFineTune,
        runnable: &[usize],
        hooks: &Hooks<'_>,
    ) -> Result<Vec<CategoryOutcome>> {
        let (gpu, opts) = (self.gpu, self.opts);
        let shared = SharedData::upload(gpu, train, valid, opts.precision)?;
        let nmax = runnable
            .iter()
            .map(|&k| {
                let s = &train.labels.per_category[k];
                s.positives.len() + s.negatives.len()
            })
            .max()
            .unwrap_or(0);
        let batch =
            opts.max_batch.unwrap_or_else(|| gpu.auto_batch(cfg, nmax, head.dim(), valid.features.rows(), opts));
        let mut out = Vec::with_capacity(runnable.len());
        for chunk in runnable.chunks(batch.max(1)) {
            let mut epochs = 0;
            for o in gpu.run_batch(head, train, valid, &shared, cfg, opts, chunk)? {
                (hooks.on_done)(&o);
                epochs += o.epochs_run;
                out.push(o);
            }
            hooks.epochs(epochs).map_err(CoreError::from)?;
        }
        Ok(out)
    }
}

impl Gpu {
    /// Opens device `ordinal` and loads the kernels.
    pub fn new(ordinal: usize) -> Result<Self> {
        let ctx = CudaContext::new(ordinal)?;
        let stream = ctx.default_stream();
        let blas = CudaBlas::new(stream.clone())?;
        let module = ctx.load_module(Ptx::from_src(PTX))?;
        let f = |name: &str| module.load_function(name);
        let k = Kernels {
            rank: f("rank_metric_rows")?,
            select: f("ga_select")?,
            breed: f("ga_breed")?,
            gather_best: f("gather_best")?,
            track_best: f("track_best")?,
            copy_improved: f("copy_improved")?,
            to_bf16: f("to_bf16")?,
            gather_rows: f("gather_rows")?,
            gather_rows_bf16: f("gather_rows_bf16")?,
            loss_grad: f("loss_grad")?,
            adam: f("adam_step")?,
            uniform_table: f("counter_uniform_table")?,
        };
        Ok(Self { ctx, stream, blas, k })
    }

    /// The device's name, e.g. "NVIDIA H200".
    pub fn name(&self) -> String {
        self.ctx.name().unwrap_or_else(|_| "CUDA device".into())
    }

    /// Waits for all queued work.
    pub fn synchronize(&self) -> Result<()> {
        Ok(self.stream.synchronize()?)
    }

    /// The kernel's counter-based random table (see [`crate::rng::counter_uniform_table`]).
    #[allow(unsafe_code)] // kernel launches or raw cuBLAS: SAFETY notes on each block
    pub fn counter_uniform_table(&self, seed: u64, count: usize) -> Result<Vec<f64>> {
        let mut out = self.stream.alloc_zeros::<f64>(count)?;
        let n = count as i32;
        // SAFETY: `counter_uniform_table(u64 seed, int count, double* out)`: the arguments are in that order and
        // of those types; `out` holds `count` f64 and the kernel writes `out[i]` only for `i < count`.
        unsafe {
            self.stream.launch_builder(&self.k.uniform_table).arg(&seed).arg(&n).arg(&mut out).launch(grid(count, 256))
        }?;
        Ok(self.stream.clone_dtoh(&out)?)
    }

    /// AP or AUC of every row of `scores` (`rows × n`) against `labels` (`rows × n`, codes of
    /// [`crate::rank`]): the kernel the engine uses, exposed for agreement checks.
    pub fn rank_metric_rows(&self, metric: Metric, scores: &[f32], labels: &[i8], n: usize) -> Result<Vec<f64>> {
        let rows = scores.len() / n.max(1);
        let s = self.stream.clone_htod(scores)?;
        let l = self.stream.clone_htod(labels)?;
        let max_pos = labels.chunks(n.max(1)).map(|r| r.iter().filter(|&&v| v == POSITIVE).count()).max().unwrap_or(0);
        let mut out = self.stream.alloc_zeros::<f64>(rows)?;
        let mut scratch = Scratch::default();
        self.launch_rank(metric, &s, n, None, &l, n, 1, n, rows, max_pos, &mut scratch, &mut out)?;
        Ok(self.stream.clone_dtoh(&out)?)
    }

    #[allow(clippy::too_many_arguments)]
    #[allow(unsafe_code)] // kernel launches or raw cuBLAS: SAFETY notes on each block
    fn launch_rank(
        &self,
        metric: Metric,
        scores: &CudaSlice<f32>,
        ld: usize,
        bias: Option<(&CudaSlice<f32>, usize, usize)>,
        labels: &CudaSlice<i8>,
        labels_ld: usize,
        group: usize,
        n: usize,
        rows: usize,
        max_pos: usize,
        scratch: &mut Scratch,
        out: &mut CudaSlice<f64>,
    ) -> Result<()> {
        let cap = max_pos.max(1).next_power_of_two();
        if cap > SHARED_CAP {
            scratch.ensure(&self.stream, rows * (2 * cap + 1))?;
        } else {
            scratch.ensure(&self.stream, 1)?;
        }
        let sc = scratch.buf.as_ref().expect("scratch allocated");
        let (ld, labels_ld, group, n, cap) = (ld as i64, labels_ld as i64, group as i32, n as i32, cap as i32);
        let metric_code: i32 = match metric {
            Metric::Ap => 0,
            Metric::Auc => 1,
        };
        let cfg = LaunchConfig { grid_dim: (rows as u32, 1, 1), block_dim: (RANK_THREADS, 1, 1), shared_mem_bytes: 0 };
        let null = 0u64;
        let bias_view = bias.map(|(buf, offset, stride)| (buf.slice(offset..), stride as i64));
        let no_stride = 0i64;
        let mut b = self.stream.launch_builder(&self.k.rank);
        b.arg(scores).arg(&ld);
        match &bias_view {
            Some((view, stride)) => b.arg(view).arg(stride),
            None => b.arg(&null).arg(&no_stride),
        };
        b.arg(labels).arg(&labels_ld).arg(&group).arg(&n).arg(&metric_code).arg(&cap).arg(sc).arg(out);
        // SAFETY: the arguments follow `rank_metric_rows`' C signature in order and type (f32* scores, i64 ld,
        // f32* bias or null with i64 stride, i8* labels, i64 labels_ld, i32 group/n/metric/cap, f32* scratch,
        // f64* out); the callers pass `scores` with `rows` rows of stride `ld` ≥ `n`, labels for every row group
        // and `out` with `rows` values; `scratch` was sized just above for `rows · (2·cap + 1)` values when
        // `cap` exceeds the shared buffer; one block per row.
        unsafe { b.launch(cfg) }?;
        Ok(())
    }

    /// `C[b] (m × n, column-major, ldc) = op(A[b]) · op(B[b])` for `batch` matrices, f32 output.
    #[allow(clippy::too_many_arguments)]
    #[allow(unsafe_code)] // kernel launches or raw cuBLAS: SAFETY notes on each block
    fn gemm(
        &self,
        precision: GemmPrecision,
        trans_a: bool,
        trans_b: bool,
        (m, n, k): (usize, usize, usize),
        a: (u64, usize, usize),
        b: (u64, usize, usize),
        c: (u64, usize, usize),
        batch: usize,
    ) -> Result<()> {
        use blas_sys::{cublasComputeType_t as Ct, cublasOperation_t as Op, cudaDataType_t as Dt};
        let (dt, ct) = match precision {
            GemmPrecision::F32 => (Dt::CUDA_R_32F, Ct::CUBLAS_COMPUTE_32F),
            GemmPrecision::Tf32 => (Dt::CUDA_R_32F, Ct::CUBLAS_COMPUTE_32F_FAST_TF32),
            GemmPrecision::Bf16 => (Dt::CUDA_R_16BF, Ct::CUBLAS_COMPUTE_32F),
        };
        let op = |t: bool| if t { Op::CUBLAS_OP_T } else { Op::CUBLAS_OP_N };
        let (alpha, beta) = (1.0f32, 0.0f32);
        // SAFETY: the handle is this engine's, bound to its stream; `a`, `b` and `c` are device pointers into
        // live allocations that the caller holds across the call, and every caller derives the shapes, leading
        // dimensions and strides from those buffers' sizes, so `batch` strided matrices stay inside them; alpha
        // and beta are host f32 values as CUBLAS_COMPUTE_32F reads them; the status is checked below.
        let status = unsafe {
            blas_sys::cublasGemmStridedBatchedEx(
                *self.blas.handle(),
                op(trans_a),
                op(trans_b),
                m as i32,
                n as i32,
                k as i32,
                (&alpha) as *const f32 as *const _,
                a.0 as *const _,
                dt,
                a.1 as i32,
                a.2 as i64,
                b.0 as *const _,
                dt,
                b.1 as i32,
                b.2 as i64,
                (&beta) as *const f32 as *const _,
                c.0 as *mut _,
                Dt::CUDA_R_32F,
                c.1 as i32,
                c.2 as i64,
                batch as i32,
                ct,
                blas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        };
        status.result()?;
        Ok(())
    }

    fn upload_features(&self, data: &[f32], precision: GemmPrecision) -> Result<DevMatrix> {
        Ok(match precision {
            GemmPrecision::Bf16 => {
                let v: Vec<half::bf16> = data.iter().map(|&x| half::bf16::from_f32(x)).collect();
                DevMatrix::Bf16(self.stream.clone_htod(&v)?)
            }
            _ => DevMatrix::F32(self.stream.clone_htod(data)?),
        })
    }

    /// The device pointer a GEMM reads for `src`: `src` itself, or its bf16 copy in `staging`
    /// (bf16 GEMMs).
    fn operand(&self, src: &CudaSlice<f32>, staging: Option<&mut CudaSlice<half::bf16>>) -> Result<u64> {
        Ok(match staging {
            Some(b) => {
                self.bf16_copy(src, b)?;
                b.device_ptr(&self.stream).0
            }
            None => src.device_ptr(&self.stream).0,
        })
    }

    #[allow(unsafe_code)] // kernel launches or raw cuBLAS: SAFETY notes on each block
    fn bf16_copy(&self, src: &CudaSlice<f32>, dst: &mut CudaSlice<half::bf16>) -> Result<()> {
        let n = src.len() as i64;
        // SAFETY: `to_bf16(const float*, bf16*, long long n)` with `n = src.len()`; the staging buffer `dst` is
        // allocated with the length of the f32 buffer it mirrors, and the kernel writes `dst[i]` only for `i <
        // n`.
        unsafe { self.stream.launch_builder(&self.k.to_bf16).arg(src).arg(dst).arg(&n).launch(grid(src.len(), 256)) }?;
        Ok(())
    }

    /// Fine-tunes every category of `head` on the GPU, `opts.max_batch` categories at a time.
    ///
    /// Same algorithm, skip rules, selection and patience as [`cft_core::finetune`]; BP is
    /// deterministic and agrees with the CPU to float tolerance (different summation order,
    /// TF32/bf16 when chosen); the GA draws from counter-based streams ([`crate::rng`]), so it
    /// agrees statistically, not bit for bit. `hooks.on_done` is called per category as batches
    /// finish (a category's `seconds` is its batch's wall time divided by the batch size), and
    /// `hooks.on_epochs` once per finished batch, where the run may be stopped. What the engine
    /// cannot run ([`crate::supports`]) is refused before anything is uploaded.
    pub fn finetune(
        &self,
        cfg: &CheckedFineTune,
        head: &LinearHead,
        train: SplitRef<'_>,
        valid: SplitRef<'_>,
        opts: &CudaOptions,
        hooks: &Hooks<'_>,
    ) -> Result<FineTuneRun> {
        crate::supports(cfg)?;
        cft_core::finetune(&CudaCategories { gpu: self, opts }, cfg, head, train, valid, hooks)
    }

    fn auto_batch(&self, cfg: &FineTuneConfig, nmax: usize, d: usize, nv: usize, opts: &CudaOptions) -> usize {
        let elem = if opts.precision == GemmPrecision::Bf16 { 2 } else { 4 };
        let pop = match cfg.method {
            Method::Ga(ga) => ga.population,
            Method::Bp { .. } => 1,
        };
        let per_cat = nmax * d * elem + pop * nmax * 4 + 3 * pop * (d + 1) * 4 + nv * 5 + nmax * 9;
        let free = self.ctx.mem_get_info().map(|(f, _)| f).unwrap_or(8 << 30);
        ((free as f64 * 0.6) as usize / per_cat.max(1)).max(1)
    }

    #[allow(clippy::too_many_arguments)]
    #[allow(unsafe_code)] // kernel launches or raw cuBLAS: SAFETY notes on each block
    fn run_batch(
        &self,
        head: &LinearHead,
        train: SplitRef<'_>,
        valid: SplitRef<'_>,
        shared: &SharedData,
        cfg: &FineTuneConfig,
        opts: &CudaOptions,
        cats: &[usize],
    ) -> Result<Vec<CategoryOutcome>> {
        let start = Instant::now();
        let (k, d) = (cats.len(), head.dim());
        // Row strides padded to multiples of 8 elements: aligned rows keep cuBLAS on its
        // tensor-core kernels. Gene rows hold the weights, the bias at column d, then zeros.
        let d1 = (d + 1).next_multiple_of(8);
        let nv = valid.features.rows();
        let nvp = nv.next_multiple_of(8);
        let st = &self.stream;
        // Training rows of each category (gathered on the device) and their labels; padding −1.
        let labels = BatchLabels::new(train, valid, cats);
        let (nmax, train_pos, valid_pos) = (labels.nmax, labels.train_pos, labels.valid_pos);
        let idx_d = st.clone_htod(&labels.idx)?;
        let ytr_d = st.clone_htod(&labels.ytr)?;
        let yva_d = st.clone_htod(&labels.yva)?;
        let xtr = self.gather(&shared.train, &idx_d, d)?;
        drop(idx_d);
        let params0 = initial_params(head, cats, d1);
        let mut scratch_t = Scratch::default();
        let mut scratch_v = Scratch::default();
        let mut head_d = st.clone_htod(&params0)?;
        let mut best_d = st.clone_htod(&params0)?;
        let mut head_bf = match opts.precision {
            GemmPrecision::Bf16 => Some(st.alloc_zeros::<half::bf16>(k * d1)?),
            _ => None,
        };
        let mut vscores = st.alloc_zeros::<f64>(k)?;
        let mut vlogits = st.alloc_zeros::<f32>(k * nvp)?;
        // Validation of the current heads: V (nv × k, column-major) = Xvᵀ-rows · headᵀ.
        let validate = |head_d: &CudaSlice<f32>,
                        head_bf: &mut Option<CudaSlice<half::bf16>>,
                        vlogits: &mut CudaSlice<f32>,
                        vscores: &mut CudaSlice<f64>,
                        scratch_v: &mut Scratch|
         -> Result<()> {
            let hp = self.operand(head_d, head_bf.as_mut())?;
            let vp = vlogits.device_ptr_mut(st).0;
            self.gemm(
                opts.precision,
                true,
                false,
                (nv, k, d),
                (shared.valid.ptr(st), d, 0),
                (hp, d1, 0),
                (vp, nvp, 0),
                1,
            )?;
            self.launch_rank(
                cfg.metric,
                vlogits,
                nvp,
                Some((head_d, d, d1)),
                &yva_d,
                nv,
                1,
                nv,
                k,
                valid_pos,
                scratch_v,
                vscores,
            )
        };
        validate(&head_d, &mut head_bf, &mut vlogits, &mut vscores, &mut scratch_v)?;
        let original = st.clone_dtoh(&vscores)?;
        let mut best_score_d = st.clone_htod(&original)?;
        let mut best_epoch_d = st.clone_htod(&vec![-1i32; k])?;
        let mut improved = st.alloc_zeros::<u8>(k)?;
        let mut tracker = EpochTracker::new(&original);
        let mut active_d = st.clone_htod(&tracker.active)?;
        let mut state = Optimizer::new(self, cfg, opts, &params0, k, nmax, d1)?;
        let dims = Dims { k, d, d1, nmax };
        for epoch in 0..cfg.max_epochs {
            // One step for every category of the batch: the new heads land in `head_d`.
            let (fit, loss) = state.step(
                self,
                cfg,
                opts,
                dims,
                &xtr,
                &ytr_d,
                train_pos,
                &mut head_d,
                &active_d,
                &mut scratch_t,
                epoch,
                cats,
            )?;
            validate(&head_d, &mut head_bf, &mut vlogits, &mut vscores, &mut scratch_v)?;
            self.keep_improved(
                &vscores,
                (&mut best_score_d, &mut best_epoch_d, &mut improved),
                &active_d,
                (&head_d, &mut best_d),
                (k, d1),
                epoch,
            )?;
            let v = st.clone_dtoh(&vscores)?;
            let (fit_h, loss_h) =
                if cfg.keep_history { (to_host(st, &fit)?, to_host(st, &loss)?) } else { (None, None) };
            let changed = tracker.record(epoch, &v, fit_h.as_deref(), loss_h.as_deref(), cfg);
            if changed {
                st.memcpy_htod(&tracker.active, &mut active_d)?;
            }
            if tracker.all_stopped() {
                break;
            }
        }
        let best = st.clone_dtoh(&best_d)?;
        let seconds = start.elapsed().as_secs_f64() / k as f64;
        Ok(tracker.into_outcomes(cats, &labels, &original, &best, (d, d1), seconds))
    }

    /// After an epoch's validation: the kernels mark each active category whose score beat its
    /// best (`improved`), update its best score and epoch, and copy its head into `best`.
    #[allow(unsafe_code)] // kernel launches: SAFETY notes on each block
    fn keep_improved(
        &self,
        vscores: &CudaSlice<f64>,
        (best_score_d, best_epoch_d, improved): (&mut CudaSlice<f64>, &mut CudaSlice<i32>, &mut CudaSlice<u8>),
        active_d: &CudaSlice<u8>,
        (head_d, best_d): (&CudaSlice<f32>, &mut CudaSlice<f32>),
        (k, d1): (usize, usize),
        epoch: usize,
    ) -> Result<()> {
        let st = &self.stream;
        let e = epoch as i32;
        let ki = k as i32;
        // SAFETY: `track_best(const double* valid, double* best_score, int* best_epoch, u8* improved, const
        // u8* active, int k, int epoch)`, arguments in that order and type; every buffer has one entry per
        // category of the batch (`k`), and the kernel touches index `c` only for `c < k`.
        unsafe {
            st.launch_builder(&self.k.track_best)
                .arg(vscores)
                .arg(best_score_d)
                .arg(best_epoch_d)
                .arg(&mut *improved)
                .arg(active_d)
                .arg(&ki)
                .arg(&e)
                .launch(grid(k, 128))
        }?;
        let d1i = d1 as i32;
        // SAFETY: `copy_improved(const float* head, float* best, const u8* improved, int k, int d1)`: `head`
        // and `best` are `k × d1`, `improved` has `k` entries; the kernel indexes `idx < k·d1` only.
        unsafe {
            st.launch_builder(&self.k.copy_improved)
                .arg(head_d)
                .arg(best_d)
                .arg(&*improved)
                .arg(&ki)
                .arg(&d1i)
                .launch(grid(k * d1, 256))
        }?;
        Ok(())
    }

    /// Gathers rows `idx` (−1: a zero row) of the device training features.
    fn gather(&self, src: &DevMatrix, idx: &CudaSlice<i32>, d: usize) -> Result<DevMatrix> {
        Ok(match src {
            DevMatrix::F32(s) => DevMatrix::F32(self.gather_rows(&self.k.gather_rows, s, idx, d)?),
            DevMatrix::Bf16(s) => DevMatrix::Bf16(self.gather_rows(&self.k.gather_rows_bf16, s, idx, d)?),
        })
    }

    #[allow(unsafe_code)] // kernel launches or raw cuBLAS: SAFETY notes on each block
    fn gather_rows<T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits>(
        &self,
        kernel: &CudaFunction,
        src: &CudaSlice<T>,
        idx: &CudaSlice<i32>,
        d: usize,
    ) -> Result<CudaSlice<T>> {
        let rows = idx.len();
        let (r, di) = (rows as i64, d as i64);
        let mut out = self.stream.alloc_zeros::<T>(rows * d)?;
        // SAFETY: `gather_rows(const T* src, const int* idx, long long rows, long long d, T* dst)`: `out` is
        // allocated just above with `rows × d` values; every `idx` entry is −1 (a zero row) or a row of `src`,
        // which holds the split's features uploaded whole (`n × d`), since the indices come from that split's
        // known samples; the kernel writes `t < rows·d` only.
        unsafe {
            self.stream
                .launch_builder(kernel)
                .arg(src)
                .arg(idx)
                .arg(&r)
                .arg(&di)
                .arg(&mut out)
                .launch(grid(rows * d, 256))
        }?;
        Ok(out)
    }
}

impl DevMatrix {
    fn ptr(&self, st: &CudaStream) -> u64 {
        match self {
            DevMatrix::F32(s) => s.device_ptr(st).0,
            DevMatrix::Bf16(s) => s.device_ptr(st).0,
        }
    }
}

/// Features shared by every batch: all training rows (gathered per batch) and the validation
/// matrix.
struct SharedData {
    train: DevMatrix,
    valid: DevMatrix,
}

impl SharedData {
    fn upload(gpu: &Gpu, train: SplitRef<'_>, valid: SplitRef<'_>, precision: GemmPrecision) -> Result<Self> {
        Ok(Self {
            train: gpu.upload_features(train.features.as_slice(), precision)?,
            valid: gpu.upload_features(valid.features.as_slice(), precision)?,
        })
    }
}

/// A growable device scratch area for the rank kernel's large rows.
#[derive(Default)]
struct Scratch {
    buf: Option<CudaSlice<f32>>,
}

impl Scratch {
    fn ensure(&mut self, st: &Arc<CudaStream>, len: usize) -> Result<()> {
        if self.buf.as_ref().is_none_or(|b| b.len() < len) {
            self.buf = Some(st.alloc_zeros::<f32>(len)?);
        }
        Ok(())
    }
}

/// Sizes of a batch: categories, feature dimension, padded gene-row stride, padded training rows.
#[derive(Debug, Clone, Copy)]
struct Dims {
    k: usize,
    d: usize,
    d1: usize,
    nmax: usize,
}

/// The optimizer state of a batch on the device.
enum Optimizer {
    Ga {
        pop: usize,
        genes: CudaSlice<f32>,
        next: CudaSlice<f32>,
        genes_bf: Option<CudaSlice<half::bf16>>,
        scores: CudaSlice<f32>,
        fitness: CudaSlice<f64>,
        pa: CudaSlice<i32>,
        pb: CudaSlice<i32>,
        flag: CudaSlice<u8>,
        best: CudaSlice<i32>,
        cat_ids: CudaSlice<i32>,
    },
    Bp {
        m: CudaSlice<f32>,
        v: CudaSlice<f32>,
        logits: CudaSlice<f32>,
        grad: CudaSlice<f32>,
        grad_bf: Option<CudaSlice<half::bf16>>,
        head_bf: Option<CudaSlice<half::bf16>>,
        grad_w: CudaSlice<f32>,
        bias_grad: CudaSlice<f64>,
        loss_sum: CudaSlice<f64>,
    },
}

impl Optimizer {
    fn new(
        gpu: &Gpu,
        cfg: &FineTuneConfig,
        opts: &CudaOptions,
        params0: &[f32],
        k: usize,
        nmax: usize,
        d1: usize,
    ) -> Result<Self> {
        let st = &gpu.stream;
        let bf = opts.precision == GemmPrecision::Bf16;
        Ok(match cfg.method {
            Method::Ga(ga) => {
                let pop = ga.population;
                let mut g = Vec::with_capacity(k * pop * d1);
                for b in 0..k {
                    for _ in 0..pop {
                        g.extend_from_slice(&params0[b * d1..(b + 1) * d1]);
                    }
                }
                Optimizer::Ga {
                    pop,
                    genes: st.clone_htod(&g)?,
                    next: st.clone_htod(&g)?,
                    genes_bf: if bf { Some(st.alloc_zeros(k * pop * d1)?) } else { None },
                    scores: st.alloc_zeros(k * pop * nmax.max(1))?,
                    fitness: st.alloc_zeros(k * pop)?,
                    pa: st.alloc_zeros(k * pop)?,
                    pb: st.alloc_zeros(k * pop)?,
                    flag: st.alloc_zeros(k * pop)?,
                    best: st.alloc_zeros(k)?,
                    cat_ids: st.alloc_zeros(k)?,
                }
            }
            Method::Bp { .. } => Optimizer::Bp {
                m: st.alloc_zeros(k * d1)?,
                v: st.alloc_zeros(k * d1)?,
                logits: st.alloc_zeros(k * nmax.max(1))?,
                grad: st.alloc_zeros(k * nmax.max(1))?,
                grad_bf: if bf { Some(st.alloc_zeros(k * nmax.max(1))?) } else { None },
                head_bf: if bf { Some(st.alloc_zeros(k * d1)?) } else { None },
                grad_w: st.alloc_zeros(k * d1)?,
                bias_grad: st.alloc_zeros(k)?,
                loss_sum: st.alloc_zeros(k)?,
            },
        })
    }

    /// One generation / epoch of every category; the new heads go to `head`. Returns the GA's
    /// fitness buffer or BP's loss buffer for the history.
    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        gpu: &Gpu,
        cfg: &FineTuneConfig,
        opts: &CudaOptions,
        dims: Dims,
        x: &DevMatrix,
        y: &CudaSlice<i8>,
        max_pos: usize,
        head: &mut CudaSlice<f32>,
        active: &CudaSlice<u8>,
        scratch: &mut Scratch,
        epoch: usize,
        cats: &[usize],
    ) -> Result<StepOutputs> {
        match self {
            Optimizer::Ga { .. } => self.step_ga(gpu, cfg, opts, dims, (x, y, max_pos), head, scratch, epoch, cats),
            Optimizer::Bp { .. } => self.step_bp(gpu, cfg, opts, dims, (x, y), head, active, epoch),
        }
    }

    /// One GA generation of every category: the population's fitness (one batched product and
    /// the rank kernel), selection, the best individual into `head`, breeding.
    #[allow(clippy::too_many_arguments)]
    #[allow(unsafe_code)] // kernel launches or raw cuBLAS: SAFETY notes on each block
    fn step_ga(
        &mut self,
        gpu: &Gpu,
        cfg: &FineTuneConfig,
        opts: &CudaOptions,
        dims: Dims,
        (x, y, max_pos): (&DevMatrix, &CudaSlice<i8>, usize),
        head: &mut CudaSlice<f32>,
        scratch: &mut Scratch,
        epoch: usize,
        cats: &[usize],
    ) -> Result<StepOutputs> {
        let st = &gpu.stream;
        let Dims { k, d, d1, nmax } = dims;
        let Optimizer::Ga { pop, genes, next, genes_bf, scores, fitness, pa, pb, flag, best, cat_ids } = self else {
            unreachable!("step_ga on the GA state")
        };
        let pop = *pop;
        let Method::Ga(ga) = cfg.method else { unreachable!("GA state for a GA method") };
        if epoch == 0 {
            let ids: Vec<i32> = cats.iter().map(|&c| c as i32).collect();
            st.memcpy_htod(&ids, cat_ids)?;
        }
        let gp = gpu.operand(genes, genes_bf.as_mut())?;
        // Scores of category b: (nmax × pop, column-major) = X_bᵀ-rows · genes_bᵀ.
        gpu.gemm(
            opts.precision,
            true,
            false,
            (nmax, pop, d),
            (x.ptr(st), d, nmax * d),
            (gp, d1, pop * d1),
            (scores.device_ptr_mut(st).0, nmax, pop * nmax),
            k,
        )?;
        gpu.launch_rank(
            cfg.metric,
            scores,
            nmax,
            Some((genes, d, d1)),
            y,
            nmax,
            pop,
            nmax,
            k * pop,
            max_pos,
            scratch,
            fitness,
        )?;
        let (popi, eli, gen) = (pop as i32, ga.elitism as i32, epoch as i32);
        let seed = cfg.seed;
        let sel = LaunchConfig { grid_dim: (k as u32, 1, 1), block_dim: (64, 1, 1), shared_mem_bytes: 0 };
        // SAFETY: `ga_select(const double* fitness, int pop, int elitism, double mutation_prob, u64
        // seed, int gen, const int* cat_ids, int* pa, int* pb, u8* flag, int* best)`, in that order and
        // type; `fitness`, `pa`, `pb` and `flag` are `k × pop`, `cat_ids` and `best` have `k` entries;
        // one block per category (`grid_dim = k`).
        unsafe {
            st.launch_builder(&gpu.k.select)
                .arg(&*fitness)
                .arg(&popi)
                .arg(&eli)
                .arg(&ga.mutation_prob)
                .arg(&seed)
                .arg(&gen)
                .arg(&*cat_ids)
                .arg(&mut *pa)
                .arg(&mut *pb)
                .arg(&mut *flag)
                .arg(&mut *best)
                .launch(sel)
        }?;
        let (ki, d1i) = (k as i32, d1 as i32);
        // SAFETY: `gather_best(const float* genes, const int* best, float* head, int k, int pop, int
        // d1)`: `genes` is `k × pop × d1`, `head` is `k × d1`, `best[c] < pop` (written by `ga_select`);
        // the kernel indexes `idx < k·d1` only.
        unsafe {
            st.launch_builder(&gpu.k.gather_best)
                .arg(&*genes)
                .arg(&*best)
                .arg(&mut *head)
                .arg(&ki)
                .arg(&popi)
                .arg(&d1i)
                .launch(grid(k * d1, 256))
        }?;
        // SAFETY: `ga_breed(const float* cur, float* next, const int* pa, const int* pb, const u8* flag,
        // const int* cat_ids, int k, int pop, int d1, double crossover, double range, u64 seed, int
        // gen)`, in that order and type; `genes`/`next` are `k × pop × d1`, the parent arrays `k × pop`
        // with entries below `pop` (from `ga_select`); the kernel indexes `idx < k·pop·d1` only.
        unsafe {
            st.launch_builder(&gpu.k.breed)
                .arg(&*genes)
                .arg(&mut *next)
                .arg(&*pa)
                .arg(&*pb)
                .arg(&*flag)
                .arg(&*cat_ids)
                .arg(&ki)
                .arg(&popi)
                .arg(&d1i)
                .arg(&ga.crossover)
                .arg(&ga.mutation_range)
                .arg(&seed)
                .arg(&gen)
                .launch(grid(k * pop * d1, 256))
        }?;
        std::mem::swap(genes, next);
        let fit = if cfg.keep_history { Some(st.clone_dtod(&*fitness)?) } else { None };
        Ok((fit, None))
    }

    /// One BP epoch of every category: logits, the loss gradient, the weight gradient (two
    /// batched products and the loss kernel) and the Adam step of the active categories.
    #[allow(clippy::too_many_arguments)]
    #[allow(unsafe_code)] // kernel launches or raw cuBLAS: SAFETY notes on each block
    fn step_bp(
        &mut self,
        gpu: &Gpu,
        cfg: &FineTuneConfig,
        opts: &CudaOptions,
        dims: Dims,
        (x, y): (&DevMatrix, &CudaSlice<i8>),
        head: &mut CudaSlice<f32>,
        active: &CudaSlice<u8>,
        epoch: usize,
    ) -> Result<StepOutputs> {
        let st = &gpu.stream;
        let Dims { k, d, d1, nmax } = dims;
        let Optimizer::Bp { m, v, logits, grad, grad_bf, head_bf, grad_w, bias_grad, loss_sum } = self else {
            unreachable!("step_bp on the BP state")
        };
        let Method::Bp { loss, adam } = cfg.method else { unreachable!("BP state for a BP method") };
        let hp = gpu.operand(head, head_bf.as_mut())?;
        // Logits (nmax × 1 per category) = X_b-rows · w_b.
        gpu.gemm(
            opts.precision,
            true,
            false,
            (nmax, 1, d),
            (x.ptr(st), d, nmax * d),
            (hp, d1, d1),
            (logits.device_ptr_mut(st).0, nmax, nmax),
            k,
        )?;
        st.memset_zeros(bias_grad)?;
        st.memset_zeros(loss_sum)?;
        let (code, gn, gp, clip, eps) = match loss {
            Loss::Bce => (0i32, 0f32, 0f32, 0f32, 0f32),
            Loss::Asl { gamma_neg, gamma_pos, clip, eps } => (1, gamma_neg, gamma_pos, clip, eps),
        };
        let (d1i, di, ki, ni) = (d1 as i32, d as i32, k as i32, nmax as i32);
        let null = 0u64;
        let lg = LaunchConfig {
            grid_dim: ((nmax as u32).div_ceil(256).clamp(1, 64), k as u32, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        {
            let mut b = st.launch_builder(&gpu.k.loss_grad);
            b.arg(&*logits).arg(y).arg(&*head).arg(&d1i).arg(&di).arg(&ki).arg(&ni).arg(&code);
            b.arg(&gn).arg(&gp).arg(&clip).arg(&eps).arg(&mut *grad);
            match grad_bf {
                Some(g) => b.arg(&mut *g),
                None => b.arg(&null),
            };
            b.arg(&mut *bias_grad).arg(&mut *loss_sum);
            // SAFETY: `loss_grad`'s C signature in order and type (f32* logits, i8* labels, f32* params,
            // i32 d1/bias_col/k/n/loss, f32 gamma_neg/gamma_pos/clip/eps, f32* grad, bf16* grad_bf16 or
            // null, f64* bias_grad, f64* loss_sum); `logits`, `grad` (and `grad_bf`) and the labels are
            // `k × nmax`, `head` is `k × d1`, the sums have `k` entries; blocks cover `k` categories
            // (`grid_dim.y`) and stride over `j < n`.
            unsafe { b.launch(lg) }?;
        }
        let gptr = match grad_bf {
            Some(g) => g.device_ptr(st).0,
            None => grad.device_ptr(st).0,
        };
        // Weight gradient (d × 1 per category) = X_bᵀ · g_b.
        gpu.gemm(
            opts.precision,
            false,
            false,
            (d, 1, nmax),
            (x.ptr(st), d, nmax * d),
            (gptr, nmax, nmax),
            (grad_w.device_ptr_mut(st).0, d1, d1),
            k,
        )?;
        let (step_size, bc2_sqrt) = adam.corrections((epoch + 1) as i32);
        // SAFETY: `adam_step(float* params, float* m, float* v, const float* grad_w, const double*
        // bias_grad, const u8* active, int k, int d1, int bias_col, float beta1, float beta2, float eps,
        // float weight_decay, float step_size, float bc2_sqrt)`, in that order and type; `head`, `m`,
        // `v` and `grad_w` are `k × d1`, `bias_grad` and `active` have `k` entries; the kernel indexes
        // `idx < k·d1` only.
        unsafe {
            st.launch_builder(&gpu.k.adam)
                .arg(&mut *head)
                .arg(&mut *m)
                .arg(&mut *v)
                .arg(&*grad_w)
                .arg(&*bias_grad)
                .arg(active)
                .arg(&ki)
                .arg(&d1i)
                .arg(&di)
                .arg(&adam.beta1)
                .arg(&adam.beta2)
                .arg(&adam.eps)
                .arg(&adam.weight_decay)
                .arg(&step_size)
                .arg(&bc2_sqrt)
                .launch(grid(k * d1, 256))
        }?;
        let l = if cfg.keep_history { Some(st.clone_dtod(&*loss_sum)?) } else { None };
        Ok((None, l))
    }
}

/// A step's history output on the host, when it has one.
fn to_host(st: &Arc<CudaStream>, v: &Option<CudaSlice<f64>>) -> Result<Option<Vec<f64>>> {
    Ok(match v {
        Some(v) => Some(st.clone_dtoh(v)?),
        None => None,
    })
}

/// The batch's starting heads, one row of `d1` values per category: the weights, the bias at
/// column `d`, then zeros (rows padded for aligned cuBLAS operands).
fn initial_params(head: &LinearHead, cats: &[usize], d1: usize) -> Vec<f32> {
    let d = head.dim();
    let mut params0 = Vec::with_capacity(cats.len() * d1);
    for &cat in cats {
        params0.extend_from_slice(head.weight.row(cat));
        params0.push(head.bias[cat]);
        params0.resize(params0.len() + d1 - d - 1, 0.0);
    }
    params0
}
