//! The agreement the CUDA engine is held to, each bound a margin above what an H200 measured
//! (`reports/gpu/gpu_check.json`): `cft gpu-check` fails past them, and so do the `cuda`
//! feature's tests in `tests/gpu_agreement.rs`.

/// Rank kernel against the core's scikit-learn-exact AP/AUC, absolute (measured ≤ 1.8e-15).
pub const RANK_ABS: f64 = 1e-12;
/// CFT-BP in f32 or TF32: largest weight difference from the CPU engine (measured 9.5e-7).
pub const BP_F32_WEIGHT_ABS: f64 = 1e-5;
/// CFT-BP in bf16: test mAP difference from the CPU engine (measured 2.1e-5).
pub const BP_BF16_MAP_ABS: f64 = 1e-3;
/// CFT-GA (counter-based streams, so statistical agreement): test mAP difference (measured ≤ 1.8e-4).
pub const GA_MAP_ABS: f64 = 5e-3;
/// Backbones in f32 against torchvision, relative (measured ≤ 4.8e-4).
pub const BACKBONE_F32_REL: f64 = 2e-3;
/// Backbones in bf16 against torchvision, relative (measured ≤ 8.0e-3).
pub const BACKBONE_BF16_REL: f64 = 2e-2;
