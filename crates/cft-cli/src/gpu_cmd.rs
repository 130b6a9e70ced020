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
use cft_cuda::check::Bounds;
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
    fn bounds(&self) -> Result<Bounds> {
        Bounds::default().with_overrides(&self.bounds).map_err(anyhow::Error::msg)
    }
}

/// `cft gpu-check --verify FILE`: the report on disk against the bounds (no GPU needed).
fn verify(path: &std::path::Path, bounds: &Bounds) -> Result<()> {
    cft_cuda::check::verify_file(path, bounds).map_err(anyhow::Error::msg)?;
    eprintln!("{}: every GPU check within its bound", path.display());
    Ok(())
}

/// Runs `cft gpu-check`.
#[cfg(not(feature = "cuda"))]
pub fn run(args: &GpuCheckArgs) -> Result<()> {
    match &args.verify {
        Some(path) => verify(path, &args.bounds()?),
        None => Err(cft_experiment::engine::not_built(None).into()),
    }
}

/// Runs `cft gpu-check`.
#[cfg(feature = "cuda")]
pub fn run(args: &GpuCheckArgs) -> Result<()> {
    use cft_core::{
        drop_labels, mean_defined, partial_scores, train_base_head, AdamConfig, BaseHeadConfig, BaseMode, Batched,
        FineTuneConfig, GaConfig, Hooks, Loss, Method, Metric, Pcg64, SplitRef,
    };
    use cft_cuda::check::{GpuCheckReport, RankCheck, SceneRun};
    use cft_cuda::{rank, CudaOptions, GemmPrecision};
    let bounds = args.bounds()?;
    if let Some(path) = &args.verify {
        return verify(path, &bounds);
    }
    let gpu = cft_experiment::engine::open_gpu(args.device)?;
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
            rank_checks.push(RankCheck { metric: metric.name().into(), n, rows, levels, max_abs_diff: max_diff });
        }
    }
    // 3–4. Scene, 30% known labels, AN base head, validation on the test split (paper protocol).
    let dir = args.datasets_dir.clone().unwrap_or_else(cft_experiment::run::default_datasets_dir);
    let manifest = cft_data::DatasetManifest::resolve("scene", &dir)?;
    let train = manifest.load_split("train")?;
    let test = manifest.load_split("test")?;
    let masked = drop_labels(&train.labels, 0.3, 526);
    let base = train_base_head(&train.features, &masked, &BaseHeadConfig::recipe(BaseMode::An).check()?).head;
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
        let cfg =
            FineTuneConfig { max_epochs: args.epochs, patience: 50, ..FineTuneConfig::reference(method) }.check()?;
        let t = std::time::Instant::now();
        let cpu = cft_core::finetune(&Batched::default(), &cfg, &base, tr, va, &Hooks::NONE)?;
        let cpu_s = t.elapsed().as_secs_f64();
        for precision in [GemmPrecision::F32, GemmPrecision::Tf32, GemmPrecision::Bf16] {
            let t = std::time::Instant::now();
            let g = gpu.finetune(&cfg, &base, tr, va, &CudaOptions { precision, max_batch: None }, &Hooks::NONE)?;
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
            let r = SceneRun {
                method: label.into(),
                precision: format!("{precision:?}"),
                categories: cpu.categories.len(),
                same_best_epoch: same_epoch,
                cpu_best_epochs: cpu.categories.iter().map(|o| o.best_epoch).collect(),
                gpu_best_epochs: g.categories.iter().map(|o| o.best_epoch).collect(),
                max_abs_weight_diff: f64::from(max_w),
                test_map_base: test_map(&base),
                test_map_cpu: test_map(&cpu.head),
                test_map_gpu: test_map(&g.head),
                cpu_seconds: cpu_s,
                gpu_seconds: gpu_s,
            };
            eprintln!("{}", serde_json::to_string(&r)?);
            runs.push(r);
        }
    }
    let backbones = backbone_parity(&dir, args.device)?;
    std::fs::create_dir_all(&args.out)?;
    let report = GpuCheckReport {
        device: name,
        build: cft_experiment::manifest::Versions::collect().build,
        rng_table_bit_identical: rng_equal,
        rng_table_len: table.len(),
        rank_kernel: rank_checks,
        scene_runs: runs,
        backbone_parity: backbones,
    };
    let path = args.out.join("gpu_check.json");
    cft_data::write_atomic(&path, (serde_json::to_string_pretty(&report)? + "\n").as_bytes())?;
    // The report is written either way; a comparison outside its bound fails the command.
    cft_cuda::check::verify(&report, &bounds, &path.display().to_string()).map_err(anyhow::Error::msg)
}

/// The backbone parity fixtures on the GPU: relative error of the CUDA features against
/// torchvision's (f32 and bf16), and of the CUDA features against the CPU's.
#[cfg(feature = "cuda")]
fn backbone_parity(datasets: &std::path::Path, ordinal: usize) -> Result<Vec<cft_cuda::check::BackboneParity>> {
    use candle_core::{DType, Device, Tensor};
    use cft_cuda::check::BackboneParity;
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
            let r = BackboneParity {
                backbone: name.into(),
                dtype: format!("{dtype:?}"),
                rel_err_vs_torchvision: Some(f64::from(rel(&fg, &fx[&format!("{name}_features_64")])?)),
                rel_err_vs_pytorch: None,
                rel_err_vs_cpu: Some(f64::from(rel(&fg, &fc)?)),
            };
            eprintln!("{}", serde_json::to_string(&r)?);
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
    let r = BackboneParity {
        backbone: "resnet20-cifar (real weights)".into(),
        dtype: "F32".into(),
        rel_err_vs_torchvision: None,
        rel_err_vs_pytorch: Some(f64::from(rel(&fg, &f20["features"])?)),
        rel_err_vs_cpu: None,
    };
    eprintln!("{}", serde_json::to_string(&r)?);
    out.push(r);
    Ok(out)
}
