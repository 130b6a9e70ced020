//! The native module of the `cft` Python package (`cft._cft`): the library crates' checked
//! entry points on numpy arrays, with the GIL released during the work, progress reported to a
//! Python callable, and Ctrl-C (KeyboardInterrupt) honoured between epochs. The package's
//! `cft/__init__.py` turns torch tensors and other dtypes into float32 numpy arrays first; this
//! module holds no CFT logic of its own: every check and every number comes from `cft-core`,
//! `cft-data` and `cft-experiment`, as in the `cft` command.

use cft_core::{
    drop_labels as core_drop_labels, mean_defined, partial_scores, BaseHeadConfig, BaseMode, CategoryOutcome, Choice,
    GaEliteTies, HeadInit, Hooks, LinearHead, LossParams, Matrix, MethodName, Metric, ParamError, PartialLabels,
    RoleInit, SkipReason, SplitRef,
};
use cft_cuda::GemmPrecision;
use cft_experiment::engine::{EngineChoice, EngineName};
use cft_experiment::finetune_job::FinetuneRequest;
use cft_pipeline::Device;
use numpy::ndarray::{Array1, Array2};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// How often the waiting thread looks for Ctrl-C and reports progress.
const POLL: Duration = Duration::from_millis(50);

/// The process that first ran work: a different process id later means a forked child.
static FIRST_PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

fn value_error(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// A choice keyword (`method="ga"`), parsed by the owning crate's enum: a misspelling is one
/// `ValueError` naming the keyword and the accepted spellings, as the command line's.
fn choice<T: Choice>(keyword: &str, value: &str) -> PyResult<T> {
    value.parse::<T>().map_err(|e| value_error(e.named(keyword)))
}

/// A count keyword (`max_epochs`, `threads`): an integer from `min`; a negative or too large
/// one is a `ValueError` naming the keyword, not an `OverflowError`.
fn count(keyword: &str, value: i64, min: i64, max: Option<usize>) -> PyResult<usize> {
    let max = max.unwrap_or(usize::MAX);
    match usize::try_from(value) {
        Ok(v) if value >= min && v <= max => Ok(v),
        _ if max == usize::MAX => Err(value_error(format!("{keyword} = {value}: expected an integer ≥ {min}"))),
        _ => Err(value_error(format!("{keyword} = {value}: expected an integer from {min} to {max}"))),
    }
}

/// A seed keyword: 0 to 2⁶⁴ − 1.
fn seed(keyword: &str, value: i128) -> PyResult<u64> {
    u64::try_from(value)
        .map_err(|_| value_error(format!("{keyword} = {value}: expected an integer from 0 to 2**64 - 1")))
}

/// The worker threads of `threads=`: 1 to [`cft_experiment::engine::max_threads`].
fn threads(value: Option<i64>) -> PyResult<Option<usize>> {
    value.map(|t| count("threads", t, 1, Some(cft_experiment::engine::max_threads()))).transpose()
}

/// The engine `engine=` names on `device=` (the command line's resolution and engines); a CUDA
/// engine in this CPU wheel is refused saying so.
fn build_engine(
    name: EngineName,
    device: Device,
    precision: GemmPrecision,
) -> PyResult<Box<dyn cft_experiment::engine::CftEngine>> {
    let choice = EngineChoice::resolve(name, device, precision, cft_core::DEFAULT_BATCH)
        .map_err(|e| value_error(format!("engine = {:?}: {e}", name.name())))?;
    if matches!(choice, EngineChoice::Cuda { .. }) && !cft_cuda::CUDA_BUILT {
        return Err(value_error(format!(
            "engine = {:?}: this `cft` package was built without CUDA support; use engine=\"auto\" (the CPU engine)",
            name.name()
        )));
    }
    choice.build().map_err(|e| value_error(format!("engine = {:?}: {e}", name.name())))
}

/// The core's refusal under the keyword the caller used (`max_epochs`, `lr`, `categories`).
fn keyword_error(e: ParamError) -> PyErr {
    let keyword = match e.param.as_str() {
        "adam.lr" => "lr".to_string(),
        other => other.rsplit('.').next().unwrap_or(other).to_string(),
    };
    value_error(e.named(&keyword))
}

/// A 2-D float32 array argument, copied into the engine's row-major matrix memory (one
/// memcpy when it is C-contiguous), with its shape.
fn f32_rows(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<(usize, usize, Vec<f32>)> {
    let any = obj.cast::<PyUntypedArray>().map_err(|_| {
        let ty = obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
        PyTypeError::new_err(format!("{name}: expected a numpy array or a torch tensor, got {ty}"))
    })?;
    if any.ndim() != 2 {
        return Err(PyValueError::new_err(format!(
            "{name}: shape {:?}; expected a 2-D array [rows, columns]",
            any.shape()
        )));
    }
    let arr = obj.cast::<PyArray2<f32>>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{name}: dtype {}; expected float32 (the `cft` package converts float16, bfloat16 and float64)",
            any.dtype()
        ))
    })?;
    let ro = arr.readonly();
    let (rows, cols) = (any.shape()[0], any.shape()[1]);
    let data = match ro.as_slice() {
        Ok(s) => s.to_vec(),
        Err(_) => ro.as_array().iter().copied().collect(),
    };
    Ok((rows, cols, data))
}

fn f32_vector(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<Vec<f32>> {
    let arr = obj.cast::<PyArray1<f32>>().map_err(|_| {
        PyTypeError::new_err(format!("{name}: expected a 1-D float32 array (the `cft` package converts other floats)"))
    })?;
    Ok(arr.readonly().as_array().iter().copied().collect())
}

fn features(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<Matrix> {
    let (r, c, data) = f32_rows(name, obj)?;
    cft_data::arrays::features(name, r, c, data).map_err(value_error)
}

fn labels_for(name: &str, features_name: &str, rows: usize, obj: &Bound<'_, PyAny>) -> PyResult<PartialLabels> {
    let (r, c, data) = f32_rows(name, obj)?;
    cft_data::arrays::labels_for(name, features_name, rows, (r, c), &data).map_err(value_error)
}

fn head(weight: &Bound<'_, PyAny>, bias: Option<&Bound<'_, PyAny>>, d: usize, c: usize) -> PyResult<LinearHead> {
    let w = f32_rows("weight", weight)?;
    let b = bias.map(|b| f32_vector("bias", b)).transpose()?;
    cft_data::arrays::head(w, b, d, c).map_err(value_error)
}

fn matrix_out<'py>(py: Python<'py>, m: &Matrix) -> Bound<'py, PyArray2<f32>> {
    Array2::from_shape_vec((m.rows(), m.cols()), m.as_slice().to_vec()).expect("a matrix's shape").into_pyarray(py)
}

/// `{"weight": [C, d], "bias": [C]}` of a head, as numpy arrays.
fn head_dict<'py>(py: Python<'py>, head: &LinearHead) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    out.set_item("weight", matrix_out(py, &head.weight))?;
    out.set_item("bias", Array1::from_vec(head.bias.clone()).into_pyarray(py))?;
    Ok(out)
}

/// Progress and the stop request shared by the working thread and the waiting one.
#[derive(Default)]
struct Watch {
    done: AtomicU64,
    total: AtomicU64,
    stop: AtomicBool,
}

/// Runs `work` on a scoped thread (in a pool of `threads` when given) with the GIL released;
/// the calling thread waits, calling `progress(done, total)` when `done` moved and checking for
/// Ctrl-C every [`POLL`]. A KeyboardInterrupt (or an exception from the callback) sets the stop
/// request, waits for the work to return, and is raised. A panic is raised as RuntimeError.
fn run_watched<R: Send>(
    py: Python<'_>,
    total: u64,
    threads: Option<usize>,
    progress: Option<&Bound<'_, PyAny>>,
    work: impl FnOnce(&Watch) -> R + Send,
) -> PyResult<R> {
    // In a child forked after the parent used the engine (multiprocessing's default on Linux,
    // PyTorch DataLoader workers), the global pool's threads did not survive the fork: waiting
    // on them would hang. Such a child gets a pool of its own.
    let forked = std::process::id() != *FIRST_PID.get_or_init(std::process::id);
    let threads = match (threads, forked) {
        (None, true) => Some(std::thread::available_parallelism().map_or(1, usize::from)),
        (t, _) => t,
    };
    let pool = threads
        .map(|n| rayon::ThreadPoolBuilder::new().num_threads(n).build())
        .transpose()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start {threads:?} threads: {e}")))?;
    let progress: Option<Py<PyAny>> = progress.map(|p| p.clone().unbind());
    let watch = Watch { total: AtomicU64::new(total), ..Watch::default() };
    let mut raised: Option<PyErr> = None;
    let joined = py.detach(|| {
        std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let watch = &watch;
            let handle = s.spawn(move || {
                let r = match &pool {
                    Some(pool) => pool.install(|| work(watch)),
                    None => work(watch),
                };
                let _ = tx.send(());
                r
            });
            let mut reported = u64::MAX;
            loop {
                let finished = !matches!(rx.recv_timeout(POLL), Err(std::sync::mpsc::RecvTimeoutError::Timeout));
                let total = watch.total.load(Ordering::Relaxed);
                let done = if finished { total } else { watch.done.load(Ordering::Relaxed).min(total) };
                Python::attach(|py| {
                    if raised.is_none() && !finished {
                        if let Err(e) = py.check_signals() {
                            raised = Some(e);
                            watch.stop.store(true, Ordering::SeqCst);
                        }
                    }
                    if let (Some(cb), true) = (&progress, done != reported && raised.is_none()) {
                        if let Err(e) = cb.call1(py, (done, total)) {
                            raised = Some(e);
                            watch.stop.store(true, Ordering::SeqCst);
                        }
                    }
                });
                reported = done;
                if finished {
                    break;
                }
            }
            handle.join()
        })
    });
    match (joined, raised) {
        (_, Some(e)) => Err(e),
        (Ok(r), None) => Ok(r),
        (Err(panic), None) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(PyRuntimeError::new_err(format!("internal error in the cft engine (please report it): {what}")))
        }
    }
}

fn skip_name(r: SkipReason) -> String {
    r.to_string()
}

fn outcome_dict<'py>(py: Python<'py>, o: &CategoryOutcome) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("category", o.category)?;
    d.set_item("skipped", o.skipped.map(skip_name))?;
    d.set_item("best_epoch", o.best_epoch)?;
    d.set_item("epochs_run", o.epochs_run)?;
    d.set_item("original_score", o.original_score)?;
    d.set_item("best_score", o.best_score)?;
    d.set_item("train_known", o.train_known)?;
    d.set_item("valid_known", o.valid_known)?;
    d.set_item("seconds", o.seconds)?;
    Ok(d)
}

/// CFT on in-memory features: see `cft.finetune` in the package.
#[pyfunction]
#[pyo3(signature = (train_features, train_labels, valid_features, valid_labels, weight, bias=None, *,
    method="bp-asl", metric="ap", max_epochs=5000, patience=300, lr=1e-4, seed=0, ga_elite_ties="first",
    engine="auto", device="cpu", gemm_precision="f32", threads=None, categories=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn finetune<'py>(
    py: Python<'py>,
    train_features: &Bound<'py, PyAny>,
    train_labels: &Bound<'py, PyAny>,
    valid_features: &Bound<'py, PyAny>,
    valid_labels: &Bound<'py, PyAny>,
    weight: &Bound<'py, PyAny>,
    bias: Option<&Bound<'py, PyAny>>,
    method: &str,
    metric: &str,
    max_epochs: i64,
    patience: i64,
    lr: f32,
    seed: i128,
    ga_elite_ties: &str,
    engine: &str,
    device: &str,
    gemm_precision: &str,
    threads: Option<i64>,
    categories: Option<Vec<i64>>,
    progress: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let request = FinetuneRequest {
        method: choice::<MethodName>("method", method)?,
        lr,
        max_epochs: count("max_epochs", max_epochs, 1, None)?,
        patience: count("patience", patience, 1, None)?,
        seed: self::seed("seed", seed)?,
        metric: choice::<Metric>("metric", metric)?,
        elite_ties: choice::<GaEliteTies>("ga_elite_ties", ga_elite_ties)?,
        categories: categories.map(|c| c.into_iter().map(|k| count("categories", k, 0, None)).collect()).transpose()?,
        keep_history: false,
    };
    request.config().check().map_err(keyword_error)?;
    let device: Device = device.parse().map_err(|e| value_error(format!("device = {device:?}: {e}")))?;
    let engine = choice::<EngineName>("engine", engine)?;
    let precision = choice::<GemmPrecision>("gemm_precision", gemm_precision)?;
    let engine = build_engine(engine, device, precision)?;
    let threads = self::threads(threads)?;
    let tx = features("train_features", train_features)?;
    let ty = labels_for("train_labels", "train_features", tx.rows(), train_labels)?;
    let vx = features("valid_features", valid_features)?;
    let vy = labels_for("valid_labels", "valid_features", vx.rows(), valid_labels)?;
    let (d, c) = (tx.cols(), ty.n_categories());
    if vx.cols() != d || vy.n_categories() != c {
        return Err(PyValueError::new_err(format!(
            "valid_features: [{}, {}] with {} label columns do not match the training set ([{}, {d}], {c} label columns)",
            vx.rows(),
            vx.cols(),
            vy.n_categories(),
            tx.rows()
        )));
    }
    let head = head(weight, bias, d, c)?;
    let cfg = request.checked(c).map_err(keyword_error)?;
    engine.supports(&cfg).map_err(value_error)?;
    let requested = cfg.categories.as_ref().map_or(c, Vec::len) as u64;
    let per_category = cfg.max_epochs as u64;
    let (st, sv) = (ty.to_sparse(), vy.to_sparse());
    let run = run_watched(py, requested * per_category, threads, progress, |watch| {
        let on_done = |o: &CategoryOutcome| {
            if o.skipped != Some(SkipReason::NotRequested) {
                let counted = (o.epochs_run as u64).min(per_category);
                watch.done.fetch_add(per_category - counted, Ordering::Relaxed);
            }
        };
        let on_epochs = |n: usize| {
            watch.done.fetch_add(n as u64, Ordering::Relaxed);
            if watch.stop.load(Ordering::Relaxed) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        };
        engine.finetune(
            &cfg,
            &head,
            SplitRef { features: &tx, labels: &st },
            SplitRef { features: &vx, labels: &sv },
            &Hooks { on_done: &on_done, on_epochs: &on_epochs },
        )
    })?
    // Interrupted without a raised KeyboardInterrupt cannot happen: only a raised error stops.
    .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    let out = head_dict(py, &run.head)?;
    let outcomes: Vec<Bound<'py, PyDict>> =
        run.categories.iter().map(|o| outcome_dict(py, o)).collect::<PyResult<_>>()?;
    out.set_item("outcomes", outcomes)?;
    Ok(out)
}

/// A base head trained on in-memory features with AN, Ignore or one of the field's
/// partial-label losses: see `cft.train_head`. The keywords are `cft train-head`'s flags.
#[pyfunction]
#[pyo3(signature = (features, labels, *, mode="an", epochs=300, lr=1e-2, weight_decay=1e-4, init=None,
    ls_coef=None, expected_positives=None, estimator_lr_mult=None, role_init="fixed", role_seed=0, alpha=None,
    beta=None, neg_proportion=None, warmup_epoch=None, delta_rel=None, threads=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn train_head<'py>(
    py: Python<'py>,
    features: &Bound<'py, PyAny>,
    labels: &Bound<'py, PyAny>,
    mode: &str,
    epochs: i64,
    lr: f32,
    weight_decay: f32,
    init: Option<&str>,
    ls_coef: Option<f64>,
    expected_positives: Option<f64>,
    estimator_lr_mult: Option<f64>,
    role_init: &str,
    role_seed: i128,
    alpha: Option<f64>,
    beta: Option<f64>,
    neg_proportion: Option<f64>,
    warmup_epoch: Option<i64>,
    delta_rel: Option<f64>,
    threads: Option<i64>,
    progress: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = LossParams::default();
    let cfg = BaseHeadConfig {
        mode: choice::<BaseMode>("mode", mode)?,
        epochs: count("epochs", epochs, 1, None)?,
        lr,
        weight_decay,
        init: init.map(|i| choice::<HeadInit>("init", i)).transpose()?,
        params: LossParams {
            ls_coef: ls_coef.unwrap_or(d.ls_coef),
            expected_positives: expected_positives.unwrap_or(d.expected_positives),
            estimator_lr_mult: estimator_lr_mult.unwrap_or(d.estimator_lr_mult),
            role_init: choice::<RoleInit>("role_init", role_init)?,
            role_seed: seed("role_seed", role_seed)?,
            alpha: alpha.unwrap_or(d.alpha),
            beta: beta.unwrap_or(d.beta),
            neg_proportion: neg_proportion.unwrap_or(d.neg_proportion),
            warmup_epoch: warmup_epoch.map(|w| count("warmup_epoch", w, 1, None)).transpose()?,
            delta_rel: delta_rel.unwrap_or(d.delta_rel),
        },
    };
    let cfg = cfg.check().map_err(keyword_error)?;
    let threads = self::threads(threads)?;
    let x = self::features("features", features)?;
    let y = labels_for("labels", "features", x.rows(), labels)?.to_sparse();
    cft_experiment::head_job::check_head_fits("mode", cfg.mode, x.rows(), y.n_categories()).map_err(value_error)?;
    let trained = run_watched(py, 1, threads, progress, |watch| {
        let stop = || watch.stop.load(Ordering::Relaxed);
        cft_core::train_base_head_stoppable(&x, None, &y, &cfg, &stop)
    })?
    .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    let out = head_dict(py, &trained.head)?;
    out.set_item("notes", trained.notes)?;
    Ok(out)
}

/// Per-category AP or ROC-AUC on the known labels (scikit-learn's definitions) and their mean
/// over the defined categories: see `cft.evaluate`.
#[pyfunction]
#[pyo3(signature = (scores_or_features, labels, *, metric="ap", weight=None, bias=None))]
fn evaluate<'py>(
    py: Python<'py>,
    scores_or_features: &Bound<'py, PyAny>,
    labels: &Bound<'py, PyAny>,
    metric: &str,
    weight: Option<&Bound<'py, PyAny>>,
    bias: Option<&Bound<'py, PyAny>>,
) -> PyResult<(Vec<Option<f64>>, Option<f64>)> {
    let metric = choice::<Metric>("metric", metric)?;
    let name = if weight.is_some() { "features" } else { "scores" };
    let per = match (weight, scores_or_features.cast::<PyArray2<f64>>()) {
        (None, Ok(scores64)) => {
            let (n, c) = (scores64.shape()[0], scores64.shape()[1]);
            let s: Vec<f64> = scores64.readonly().as_array().iter().copied().collect();
            if let Some(k) = s.iter().position(|v| v.is_nan()) {
                return Err(PyValueError::new_err(format!(
                    "scores: row {}, column {} is NaN",
                    k / c.max(1),
                    k % c.max(1)
                )));
            }
            let y = labels_for("labels", name, n, labels)?;
            check_columns(&y, c)?;
            py.detach(|| partial_scores(metric, &s, &y))
        }
        (w, _) => {
            let x = features(name, scores_or_features)?;
            let y = labels_for("labels", name, x.rows(), labels)?;
            let scores = match w {
                Some(w) => {
                    let h = head(w, bias, x.cols(), y.n_categories())?;
                    py.detach(|| h.logits(&x))
                }
                None => {
                    check_columns(&y, x.cols())?;
                    x.as_slice().to_vec()
                }
            };
            py.detach(|| partial_scores(metric, &scores, &y))
        }
    };
    let mean = mean_defined(&per);
    Ok((per, mean))
}

fn check_columns(y: &PartialLabels, c: usize) -> PyResult<()> {
    if y.n_categories() != c {
        return Err(PyValueError::new_err(format!(
            "labels: {} columns but the scores have {c}: one score column per category is required",
            y.n_categories()
        )));
    }
    Ok(())
}

/// The reference's label masks: each known label kept with probability `proportion`, the
/// authors' seeded order (seed 526 by default): see `cft.drop_labels`.
#[pyfunction]
#[pyo3(signature = (labels, proportion, seed=526))]
fn drop_labels<'py>(
    py: Python<'py>,
    labels: &Bound<'py, PyAny>,
    proportion: f64,
    seed: u64,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    cft_core::params::check_known_proportion("proportion", proportion).map_err(value_error)?;
    let (n, c, values) = f32_rows("labels", labels)?;
    let y = cft_data::arrays::labels("labels", n, c, &values).map_err(value_error)?;
    let dropped = core_drop_labels(&y, proportion, seed);
    let out: Vec<f32> = (0..n).flat_map(|i| dropped.row(i).iter().map(|l| l.to_reference())).collect();
    Ok(Array2::from_shape_vec((n, c), out).expect("shape").into_pyarray(py))
}

/// Runs an experiment spec (single or grid) as `cft run` does: see `cft.run`. Returns the
/// output folder and, for a single spec, `results.json`'s text. Ctrl-C stops it between
/// epochs, units and cells.
#[pyfunction]
#[pyo3(signature = (spec_path, *, out=None, datasets_dir=None, resume=false, engine=None, device=None,
    gemm_precision=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn run<'py>(
    py: Python<'py>,
    spec_path: std::path::PathBuf,
    out: Option<std::path::PathBuf>,
    datasets_dir: Option<std::path::PathBuf>,
    resume: bool,
    engine: Option<&str>,
    device: Option<&str>,
    gemm_precision: Option<&str>,
    progress: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    use cft_experiment::run::{default_datasets_dir, run_spec, RunOutcome, RunRequest};
    let spec = cft_experiment::spec::ExperimentSpec::load(&spec_path).map_err(|e| value_error(format!("{e:#}")))?;
    let name = engine.map(|e| choice::<EngineName>("engine", e)).transpose()?.unwrap_or(spec.cft.engine);
    let device: Device = match device {
        Some(d) => d.parse().map_err(|e| value_error(format!("device = {d:?}: {e}")))?,
        None => spec.backbone.as_ref().map(|b| b.device).unwrap_or_default(),
    };
    let precision = gemm_precision
        .map(|p| choice::<GemmPrecision>("gemm_precision", p))
        .transpose()?
        .unwrap_or(spec.cft.gemm_precision);
    let engine = build_engine(name, device, precision)?;
    // The bundled datasets are found as `cft run` finds them.
    let datasets_dir = datasets_dir.unwrap_or_else(default_datasets_dir);
    let outcome = run_watched(py, 0, None, progress, |watch| {
        let sink = WatchedProgress(watch);
        let req = RunRequest {
            spec_path: &spec_path,
            spec: None,
            out,
            datasets_dir,
            head_key: None,
            resume,
            shard: None,
            stages: None,
            engine: &*engine,
            progress: &sink,
            images: None,
            interrupt_after_units: None,
        };
        run_spec(&req).map_err(|e| format!("{e:#}"))
    })?
    .map_err(PyValueError::new_err)?;
    let d = PyDict::new(py);
    match outcome {
        RunOutcome::Single(r) => {
            d.set_item("dir", r.dir.clone())?;
            let text = r.results.as_ref().map(serde_json::to_string).transpose().map_err(value_error)?;
            d.set_item("results_json", text)?;
        }
        RunOutcome::Grid(g) => {
            d.set_item("dir", g.dir.clone())?;
            d.set_item("merged", g.merged)?;
            d.set_item("cells", g.total)?;
        }
    }
    Ok(d)
}

/// [`cft_experiment::progress::Progress`] into the waiting thread's counters.
struct WatchedProgress<'a>(&'a Watch);

impl cft_experiment::progress::Progress for WatchedProgress<'_> {
    fn update(&self, done: u64, total: u64, _label: &str) {
        self.0.total.store(total, Ordering::Relaxed);
        self.0.done.store(done, Ordering::Relaxed);
    }

    fn stop_requested(&self) -> bool {
        self.0.stop.load(Ordering::Relaxed)
    }
}

/// The package's version (the workspace's).
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// The `cft._cft` module.
#[pymodule]
fn _cft(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(finetune, m)?)?;
    m.add_function(wrap_pyfunction!(train_head, m)?)?;
    m.add_function(wrap_pyfunction!(evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(drop_labels, m)?)?;
    m.add_function(wrap_pyfunction!(run, m)?)?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    Ok(())
}
