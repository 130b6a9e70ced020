//! `cft gpu-check`: the CUDA engine's agreement with the CPU, on the GPU machine.
//!
//! 1. the kernels' counter-based random table equals [`cft_cuda::rng`]'s bit for bit;
//! 2. the rank kernel's AP and AUC equal the core's scikit-learn-exact metrics on tie-heavy
//!    rows (shared-memory and global-memory paths);
//! 3. CFT-BP-ASL on the bundled `scene` data (30% known labels, AN base head): the CUDA engine
//!    in strict f32 against the CPU engine: selected epochs, weights, test mAP;
//! 4. CFT-GA on the same data: both engines' test mAP (different random streams, so the
//!    comparison is statistical).
//!
//! Writes `gpu_check.json` into `--out`.

use anyhow::Result;
use std::path::PathBuf;

/// Arguments of `cft gpu-check`.
#[derive(Debug, Clone, clap::Args)]
pub struct GpuCheckArgs {
    /// Folder for gpu_check.json.
    #[arg(long, default_value = "gpu-check")]
    pub out: PathBuf,
    /// CUDA device ordinal.
    #[arg(long, default_value_t = 0)]
    pub device: usize,
    /// Folder of the bundled datasets.
    #[arg(long)]
    pub datasets_dir: Option<PathBuf>,
    /// Epochs of the scene runs.
    #[arg(long, default_value_t = 300)]
    pub epochs: usize,
    /// Check a `gpu_check.json` written earlier against the bounds instead of running (no GPU
    /// needed); exits non-zero naming every check outside its bound.
    #[arg(long)]
    pub verify: Option<PathBuf>,
    /// Replaces one bound, `NAME=VALUE` (repeatable); NAME is one of rank, bp-f32-weight,
    /// bp-bf16-map, ga-map, backbone-f32, backbone-bf16. Defaults: `cft_cuda::bounds`.
    #[arg(long = "bound", value_name = "NAME=VALUE")]
    pub bounds: Vec<String>,
}

impl GpuCheckArgs {
    /// The bounds this run holds the report to.
    fn tolerances(&self) -> Result<crate::gpu_tolerances::Tolerances> {
        crate::gpu_tolerances::Tolerances::default().with_overrides(&self.bounds)
    }
}

/// `cft gpu-check --verify FILE`: the bounds of [`crate::gpu_tolerances`] on a report on disk.
fn verify(path: &std::path::Path, tol: &crate::gpu_tolerances::Tolerances) -> Result<()> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let report: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: not a gpu_check.json ({e})", path.display()))?;
    crate::gpu_tolerances::check(&report, tol, &path.display().to_string())?;
    eprintln!("{}: every GPU check within its bound", path.display());
    Ok(())
}

/// Opens a GPU, or explains why this build cannot.
#[cfg(feature = "cuda")]
pub fn open_gpu(ordinal: usize) -> Result<cft_cuda::Gpu> {
    cft_cuda::Gpu::new(ordinal)
        .map_err(|e| anyhow::anyhow!("cannot open CUDA device {ordinal}: {e} (is there an NVIDIA GPU and driver?)"))
}

/// The error for CUDA requests in a build without the `cuda` feature.
/// The error of a CUDA request in a build without CUDA; `cpu_choice` names the option that
/// runs the same work on the CPU (`--engine batched`, `--device cpu`), if there is one.
pub fn not_built(cpu_choice: Option<&str>) -> anyhow::Error {
    let alternative = cpu_choice.map(|c| format!(", or use {c}")).unwrap_or_default();
    anyhow::anyhow!(
        "this `cft` was built without CUDA support; rebuild with `--features cuda` (see gpu/README.md){alternative}"
    )
}

/// Runs `cft gpu-check`.
#[cfg(not(feature = "cuda"))]
pub fn run(args: &GpuCheckArgs) -> Result<()> {
    match &args.verify {
        Some(path) => verify(path, &args.tolerances()?),
        None => Err(not_built(None)),
    }
}

/// Runs `cft gpu-check`.
#[cfg(feature = "cuda")]
pub fn run(args: &GpuCheckArgs) -> Result<()> {
    use crate::reproduce_cmd::default_datasets_dir;
    let tolerances = args.tolerances()?;
    if let Some(path) = &args.verify {
        return verify(path, &tolerances);
    }
    use cft_core::{
        drop_labels, finetune_batched, mean_defined, partial_scores, train_base_head, AdamConfig, BaseHeadConfig,
        BaseMode, FineTuneConfig, GaConfig, Loss, Method, Metric, Pcg64, SplitRef,
    };
    use cft_cuda::{rank, CudaOptions, GemmPrecision};
    use serde_json::json;

    let gpu = open_gpu(args.device)?;
    let name = gpu.name();
    eprintln!("device: {name}");
    // 1. Random table.
    let table = gpu.counter_uniform_table(42, 1 << 16)?;
    let cpu_table = cft_cuda::rng::counter_uniform_table(42, 1 << 16);
    let rng_equal = table.iter().zip(&cpu_table).filter(|(a, b)| a.to_bits() == b.to_bits()).count();
    eprintln!("rng table: {rng_equal} / {} bit-identical", table.len());
    // 2. Rank kernel on tie-heavy rows, both memory paths (up to 12,000 positives per row).
    let mut rank_checks = Vec::new();
    let mut rng = Pcg64::new(7);
    for &(n, levels, rate, rows) in &[(1000usize, 5u32, 0.3, 64usize), (8200, 200, 0.05, 200), (40137, 10000, 0.3, 8)] {
        let (scores, labels) = rank::tie_heavy_rows(&mut rng, n, levels, rate, rows);
        for metric in [Metric::Ap, Metric::Auc] {
            let got = gpu.rank_metric_rows(metric, &scores, &labels, n)?;
            let want = rank::exact_rows(metric, &scores, &labels, n);
            let max_diff = got.iter().zip(&want).map(|(g, w)| (g - w).abs()).fold(0.0f64, f64::max);
            eprintln!("rank kernel {metric:?}: n = {n}, {rows} rows, max |gpu − sklearn-exact cpu| = {max_diff:.3e}");
            rank_checks.push(
                json!({"metric": metric.name(), "n": n, "rows": rows, "levels": levels, "max_abs_diff": max_diff}),
            );
        }
    }
    // 3–4. Scene, 30% known labels, AN base head, validation on the test split (paper protocol).
    let dir = args.datasets_dir.clone().unwrap_or_else(default_datasets_dir);
    let manifest = cft_data::DatasetManifest::resolve("scene", &dir)?;
    let train = manifest.load_split("train")?;
    let test = manifest.load_split("test")?;
    let masked = drop_labels(&train.labels, 0.3, 526);
    let base = train_base_head(&train.features, &masked, &BaseHeadConfig::recipe(BaseMode::An));
    let (st, sv) = (masked.to_sparse(), test.labels.to_sparse());
    let (tr, va) =
        (SplitRef { features: &train.features, labels: &st }, SplitRef { features: &test.features, labels: &sv });
    let test_map = |h: &cft_core::LinearHead| {
        let logits = h.logits(&test.features);
        mean_defined(&partial_scores(Metric::Ap, &logits, &test.labels)).unwrap_or(f64::NAN)
    };
    let mut runs = Vec::new();
    for (label, method) in [
        ("bp-asl", Method::Bp { loss: Loss::ASL_REFERENCE, adam: AdamConfig { lr: 1e-2, ..AdamConfig::default() } }),
        ("ga", Method::Ga(GaConfig::default())),
    ] {
        let mut cfg = FineTuneConfig::reference(method);
        cfg.max_epochs = args.epochs;
        cfg.patience = 50;
        let t = std::time::Instant::now();
        let cpu = finetune_batched(&base, tr, va, &cfg, cft_core::DEFAULT_BATCH, &|_| {});
        let cpu_s = t.elapsed().as_secs_f64();
        for precision in [GemmPrecision::F32, GemmPrecision::Tf32, GemmPrecision::Bf16] {
            let t = std::time::Instant::now();
            let g = gpu.finetune(&base, tr, va, &cfg, &CudaOptions { precision, max_batch: None }, &|_| {})?;
            let gpu_s = t.elapsed().as_secs_f64();
            let same_epoch =
                cpu.categories.iter().zip(&g.categories).filter(|(a, b)| a.best_epoch == b.best_epoch).count();
            let max_w = cpu
                .head
                .weight
                .as_slice()
                .iter()
                .zip(g.head.weight.as_slice())
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            let r = json!({
                "method": label, "precision": format!("{precision:?}"),
                "categories": cpu.categories.len(), "same_best_epoch": same_epoch,
                "cpu_best_epochs": cpu.categories.iter().map(|o| o.best_epoch).collect::<Vec<_>>(),
                "gpu_best_epochs": g.categories.iter().map(|o| o.best_epoch).collect::<Vec<_>>(),
                "max_abs_weight_diff": max_w,
                "test_map_base": test_map(&base), "test_map_cpu": test_map(&cpu.head), "test_map_gpu": test_map(&g.head),
                "cpu_seconds": cpu_s, "gpu_seconds": gpu_s,
            });
            eprintln!("{r}");
            runs.push(r);
        }
    }
    let backbones = backbone_parity(&dir, args.device)?;
    std::fs::create_dir_all(&args.out)?;
    let report = json!({
        "device": name, "rng_table_bit_identical": rng_equal, "rng_table_len": table.len(),
        "rank_kernel": rank_checks, "scene_runs": runs, "backbone_parity": backbones, "build": crate::manifest::Versions::collect().build,
    });
    let path = args.out.join("gpu_check.json");
    cft_data::write_atomic(&path, (serde_json::to_string_pretty(&report)? + "\n").as_bytes())?;
    // The report is written either way; a comparison outside its bound fails the command.
    crate::gpu_tolerances::check(&report, &tolerances, &path.display().to_string())
}

/// The backbone parity fixtures on the GPU: relative error of the CUDA features against
/// torchvision's (f32 and bf16), and of the CUDA features against the CPU's.
#[cfg(feature = "cuda")]
fn backbone_parity(datasets: &std::path::Path, ordinal: usize) -> Result<serde_json::Value> {
    use candle_core::{DType, Device, Tensor};
    use cft_features::{Backbone, Placement, WeightSource};
    let rel = |a: &Tensor, b: &Tensor| -> Result<f32> {
        let a = a.flatten_all()?.to_vec1::<f32>()?;
        let b = b.flatten_all()?.to_vec1::<f32>()?;
        let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        Ok(a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max) / scale)
    };
    let fx = candle_core::safetensors::load(
        datasets.join("fixtures/backbones/torchvision_rule_weights_2img.safetensors"),
        &Device::Cpu,
    )?;
    let x = (fx["input_64_u8"].to_dtype(DType::F32)? / 255.0)?;
    let gpu = Device::new_cuda(ordinal)?;
    let mut out = Vec::new();
    for name in ["resnet50", "resnet101", "densenet121"] {
        let cpu = Backbone::load(name, &WeightSource::Rule, Placement { device: Device::Cpu, dtype: DType::F32 })?;
        let fc = cpu.features(&x)?;
        for dtype in [DType::F32, DType::BF16] {
            let g = Backbone::load(name, &WeightSource::Rule, Placement { device: gpu.clone(), dtype })?;
            let fg = g.features(&x)?;
            let r = serde_json::json!({
                "backbone": name, "dtype": format!("{dtype:?}"),
                "rel_err_vs_torchvision": rel(&fg, &fx[&format!("{name}_features_64")])?,
                "rel_err_vs_cpu": rel(&fg, &fc)?,
            });
            eprintln!("{r}");
            out.push(r);
        }
    }
    let f20 = candle_core::safetensors::load(
        datasets.join("fixtures/backbones/resnet20_cifar10_real.safetensors"),
        &Device::Cpu,
    )?;
    let w = WeightSource::from_file(&datasets.join("weights/resnet20_cifar10.safetensors"))?;
    let g = Backbone::load("resnet20-cifar", &w, Placement { device: gpu, dtype: DType::F32 })?;
    let fg = g.features(&f20["input_32_normalized"])?;
    let r = serde_json::json!({"backbone": "resnet20-cifar (real weights)", "dtype": "F32",
        "rel_err_vs_pytorch": rel(&fg, &f20["features"])?});
    eprintln!("{r}");
    out.push(r);
    Ok(serde_json::Value::Array(out))
}

/// The CUDA CFT engine for `cft run` (`[cft] engine = "cuda"`, or `auto` on a CUDA device).
#[cfg(feature = "cuda")]
pub fn cuda_cft_engine(device: &str, precision: &str) -> Result<Box<dyn cft_experiment::partial_label::CftEngine>> {
    let ordinal = crate::args::parse_device(device)?.unwrap_or_default();
    let gemm: cft_cuda::GemmPrecision = precision.parse().map_err(anyhow::Error::msg)?;
    // Refused now rather than after the data is read: no device, no run.
    open_gpu(ordinal)?;
    Ok(Box::new(CudaCft { ordinal, gemm, label: format!("cuda {precision}") }))
}

/// The CUDA CFT engine for `cft run`; without the `cuda` feature, the error that says so.
#[cfg(not(feature = "cuda"))]
pub fn cuda_cft_engine(_device: &str, _precision: &str) -> Result<Box<dyn cft_experiment::partial_label::CftEngine>> {
    Err(not_built(Some("[cft] engine = \"batched\" (or --engine batched, the CPU engine)")))
}

/// The CUDA engine behind [`cft_experiment::partial_label::CftEngine`]: the device is opened per
/// unit (units run one at a time on it), from plain settings.
#[cfg(feature = "cuda")]
struct CudaCft {
    ordinal: usize,
    gemm: cft_cuda::GemmPrecision,
    label: String,
}

#[cfg(feature = "cuda")]
impl cft_experiment::partial_label::CftEngine for CudaCft {
    fn name(&self) -> String {
        self.label.clone()
    }

    fn finetune(
        &self,
        head: &cft_core::LinearHead,
        train: cft_core::SplitRef<'_>,
        valid: cft_core::SplitRef<'_>,
        cfg: &cft_core::FineTuneConfig,
    ) -> cft_experiment::error::Result<cft_core::FineTuneRun> {
        use cft_experiment::error::ExperimentError;
        let gpu = open_gpu(self.ordinal).map_err(ExperimentError::source)?;
        let opts = cft_cuda::CudaOptions { precision: self.gemm, max_batch: None };
        gpu.finetune(head, train, valid, cfg, &opts, &|_| {}).map_err(ExperimentError::source)
    }

    fn parallel_units(&self) -> bool {
        false
    }
}
