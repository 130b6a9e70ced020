//! `cft gpu-check`'s report and its verdict, in every build: the report as one serde struct
//! ([`GpuCheckReport`], every section required, unknown keys refused), the bounds it is held to
//! ([`Bounds`], defaults from [`crate::bounds`]), and [`verify`]: a report that compares
//! nothing (an empty section, a zero-length random table, a method or precision missing, more
//! categories agreeing than there are) fails like a figure past its bound. `cft gpu-check
//! --verify FILE` checks a report written earlier without a GPU.

use serde::{Deserialize, Serialize};

/// What `cft gpu-check` writes to `gpu_check.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuCheckReport {
    /// The GPU's name.
    pub device: String,
    /// The build (`x86_64-linux release`).
    pub build: String,
    /// Values of the counter-based random table equal to the CPU's, bit for bit.
    pub rng_table_bit_identical: usize,
    /// Values compared.
    pub rng_table_len: usize,
    /// The rank kernel against the core's scikit-learn-exact AP/AUC.
    pub rank_kernel: Vec<RankCheck>,
    /// CFT-BP and CFT-GA on scene, the CUDA engine beside the CPU engine.
    pub scene_runs: Vec<SceneRun>,
    /// Backbone features on the GPU against torchvision's.
    pub backbone_parity: Vec<BackboneParity>,
}

/// One rank-kernel comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RankCheck {
    /// `ap` or `auc`.
    pub metric: String,
    /// Scores per row.
    pub n: usize,
    /// Rows.
    pub rows: usize,
    /// Distinct score levels (ties).
    pub levels: u32,
    /// Largest |GPU − CPU|.
    pub max_abs_diff: f64,
}

/// One scene run of a method at a GEMM precision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SceneRun {
    /// `bp-asl` or `ga`.
    pub method: String,
    /// `F32`, `Tf32` or `Bf16`.
    pub precision: String,
    /// Categories.
    pub categories: usize,
    /// Categories whose best epoch is the CPU's.
    pub same_best_epoch: usize,
    /// The CPU engine's best epochs.
    pub cpu_best_epochs: Vec<i64>,
    /// The CUDA engine's best epochs.
    pub gpu_best_epochs: Vec<i64>,
    /// Largest weight difference.
    pub max_abs_weight_diff: f64,
    /// Test mAP of the base head.
    pub test_map_base: f64,
    /// Test mAP of the CPU engine's head.
    pub test_map_cpu: f64,
    /// Test mAP of the CUDA engine's head.
    pub test_map_gpu: f64,
    /// CPU wall seconds.
    pub cpu_seconds: f64,
    /// GPU wall seconds.
    pub gpu_seconds: f64,
}

/// One backbone's features on the GPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackboneParity {
    /// The backbone.
    pub backbone: String,
    /// `F32` or `BF16`.
    pub dtype: String,
    /// Relative error against torchvision's features (the rule-weight fixtures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rel_err_vs_torchvision: Option<f64>,
    /// Relative error against PyTorch's features (the real CIFAR ResNet-20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rel_err_vs_pytorch: Option<f64>,
    /// Relative error against this build's CPU features.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rel_err_vs_cpu: Option<f64>,
}

/// The bounds, one per comparison (defaults: [`crate::bounds`], a margin above an H200's figures).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bounds {
    /// Rank kernel against the CPU's AP/AUC, absolute.
    pub rank: f64,
    /// CFT-BP in f32/TF32: largest weight difference (every category selecting the CPU's epoch).
    pub bp_f32_weight: f64,
    /// CFT-BP in bf16: test mAP difference.
    pub bp_bf16_map: f64,
    /// CFT-GA (other random streams: statistical agreement): test mAP difference.
    pub ga_map: f64,
    /// Backbones in f32 against torchvision, relative.
    pub backbone_f32: f64,
    /// Backbones in bf16 against torchvision, relative.
    pub backbone_bf16: f64,
}

impl Default for Bounds {
    fn default() -> Self {
        use crate::bounds::*;
        Self {
            rank: RANK_ABS,
            bp_f32_weight: BP_F32_WEIGHT_ABS,
            bp_bf16_map: BP_BF16_MAP_ABS,
            ga_map: GA_MAP_ABS,
            backbone_f32: BACKBONE_F32_REL,
            backbone_bf16: BACKBONE_BF16_REL,
        }
    }
}

impl Bounds {
    /// The names `--bound NAME=VALUE` takes.
    pub const NAMES: [&'static str; 6] =
        ["rank", "bp-f32-weight", "bp-bf16-map", "ga-map", "backbone-f32", "backbone-bf16"];

    /// These bounds with `NAME=VALUE` overrides applied (a laboratory holding its own GPU to its
    /// own figures, or a bound tightened to see the check fail).
    pub fn with_overrides(mut self, overrides: &[String]) -> Result<Self, String> {
        for o in overrides {
            let (name, value) = o
                .split_once('=')
                .ok_or_else(|| format!("--bound {o:?}: expected NAME=VALUE, NAME one of {:?}", Self::NAMES))?;
            let v: f64 = value
                .trim()
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| format!("--bound {name}: {value:?} is not a finite bound ≥ 0"))?;
            let field = match name.trim() {
                "rank" => &mut self.rank,
                "bp-f32-weight" => &mut self.bp_f32_weight,
                "bp-bf16-map" => &mut self.bp_bf16_map,
                "ga-map" => &mut self.ga_map,
                "backbone-f32" => &mut self.backbone_f32,
                "backbone-bf16" => &mut self.backbone_bf16,
                other => return Err(format!("--bound {other:?}: unknown bound; expected one of {:?}", Self::NAMES)),
            };
            *field = v;
        }
        Ok(self)
    }
}

/// The methods × precisions a report must hold.
const SCENE_RUNS: [(&str, &str); 6] =
    [("bp-asl", "F32"), ("bp-asl", "Tf32"), ("bp-asl", "Bf16"), ("ga", "F32"), ("ga", "Tf32"), ("ga", "Bf16")];

/// Every comparison of `report` outside its bound and every way it compares less than it must,
/// one line each; empty when all hold.
pub fn failures(report: &GpuCheckReport, b: &Bounds) -> Vec<String> {
    let mut out = Vec::new();
    let mut over = |check: String, figure: f64, bound: f64| {
        if !figure.is_finite() || figure < 0.0 || figure > bound {
            out.push(format!("{check}: {figure:.3e} > bound {bound:.1e}"));
        }
    };
    let mut missing = Vec::new();
    if report.rng_table_len == 0 {
        missing.push("random table: no value compared (rng_table_len = 0)".to_string());
    } else if report.rng_table_bit_identical > report.rng_table_len {
        missing.push(format!(
            "random table: {} identical values of {} compared",
            report.rng_table_bit_identical, report.rng_table_len
        ));
    }
    over(
        "random table: values not bit-identical".into(),
        report.rng_table_len.saturating_sub(report.rng_table_bit_identical) as f64,
        0.0,
    );
    for metric in ["ap", "auc"] {
        if !report.rank_kernel.iter().any(|r| r.metric == metric && r.n > 0 && r.rows > 0) {
            missing.push(format!("rank kernel: no {metric} comparison"));
        }
    }
    for r in &report.rank_kernel {
        over(format!("rank kernel {} (n = {}): max |gpu − cpu|", r.metric, r.n), r.max_abs_diff, b.rank);
    }
    for (method, precision) in SCENE_RUNS {
        if !report.scene_runs.iter().any(|r| r.method == method && r.precision == precision) {
            missing.push(format!("scene runs: no {method} {precision} run"));
        }
    }
    for r in &report.scene_runs {
        let name = format!("scene {} {}", r.method, r.precision);
        if r.categories == 0 || r.same_best_epoch > r.categories {
            missing
                .push(format!("{name}: {} of {} categories select the CPU's epoch", r.same_best_epoch, r.categories));
        }
        let map_diff = (r.test_map_gpu - r.test_map_cpu).abs();
        match (r.method.as_str(), r.precision.as_str()) {
            ("ga", _) => over(format!("{name}: |Δ test mAP|"), map_diff, b.ga_map),
            (_, "Bf16") => over(format!("{name}: |Δ test mAP|"), map_diff, b.bp_bf16_map),
            _ => {
                over(format!("{name}: max |Δ weight|"), r.max_abs_weight_diff, b.bp_f32_weight);
                let other = r.categories.saturating_sub(r.same_best_epoch) as f64;
                over(format!("{name}: categories selecting another epoch"), other, 0.0);
            }
        }
    }
    if report.backbone_parity.is_empty() {
        missing.push("backbone parity: no backbone compared".to_string());
    }
    for r in &report.backbone_parity {
        let name = format!("backbone {} {}", r.backbone, r.dtype);
        let bound = if r.dtype == "BF16" { b.backbone_bf16 } else { b.backbone_f32 };
        match (r.rel_err_vs_torchvision, r.rel_err_vs_pytorch) {
            (Some(e), _) => over(format!("{name}: rel_err_vs_torchvision"), e, bound),
            (None, Some(e)) => over(format!("{name}: rel_err_vs_pytorch"), e, bound),
            (None, None) => missing.push(format!("{name}: no reference figure")),
        }
    }
    missing.extend(out);
    missing
}

/// A report's verdict: `Err` naming every failing check, the source first.
pub fn verify(report: &GpuCheckReport, b: &Bounds, source: &str) -> Result<(), String> {
    let failed = failures(report, b);
    if failed.is_empty() {
        return Ok(());
    }
    Err(format!("{source}: {} GPU check(s) failed: {}", failed.len(), failed.join("; ")))
}

/// Reads and verifies a report file (`cft gpu-check --verify FILE`).
pub fn verify_file(path: &std::path::Path, b: &Bounds) -> Result<GpuCheckReport, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let report: GpuCheckReport = serde_json::from_str(&text)
        .map_err(|e| format!("{}: line {}: not a gpu_check.json report ({e})", path.display(), e.line()))?;
    verify(&report, b, &path.display().to_string())?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed() -> GpuCheckReport {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../reports/gpu/gpu_check.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn the_h200_report_holds_its_bounds_and_a_tightened_bound_fails_naming_the_figure() {
        let report = committed();
        assert_eq!(failures(&report, &Bounds::default()), Vec::<String>::new());
        // Tightened below what the H200 measured: the rank kernel's 1.8e-15 on 40,137 rows fails.
        let tight = Bounds { rank: 1e-15, ..Bounds::default() };
        assert_eq!(
            failures(&report, &tight),
            vec!["rank kernel ap (n = 40137): max |gpu − cpu|: 1.832e-15 > bound 1.0e-15".to_string()]
        );
        let e = verify(&report, &tight, "gpu_check.json").unwrap_err();
        assert!(e.starts_with("gpu_check.json: 1 GPU check(s) failed: rank kernel ap"), "{e}");
    }

    #[test]
    fn a_report_that_compares_nothing_fails() {
        let report = committed();
        let fails = |f: &dyn Fn(&mut GpuCheckReport)| {
            let mut r = report.clone();
            f(&mut r);
            failures(&r, &Bounds::default())
        };
        assert_eq!(
            fails(&|r| r.rank_kernel.clear()),
            ["rank kernel: no ap comparison", "rank kernel: no auc comparison"]
        );
        assert_eq!(
            fails(&|r| (r.rng_table_len, r.rng_table_bit_identical) = (0, 0))[0],
            "random table: no value compared (rng_table_len = 0)"
        );
        assert_eq!(fails(&|r| r.scene_runs.retain(|s| s.method != "ga")).len(), 3);
        assert!(fails(&|r| r.scene_runs[0].same_best_epoch = 99)[0].contains("99 of 6 categories"));
        assert!(fails(&|r| r.rank_kernel[0].max_abs_diff = -1.0)[0].contains("-1.000e0 > bound"));
        assert_eq!(fails(&|r| r.backbone_parity.clear()), ["backbone parity: no backbone compared"]);
        // Missing, misspelled or mistyped sections do not parse at all.
        let text = serde_json::to_string(&report).unwrap();
        for broken in [
            text.replace("\"scene_runs\"", "\"scene_run\""),
            text.replace("\"rng_table_len\":65536", "\"rng_table_len\":\"65536\""),
            text.replace("\"max_abs_diff\":0.0", "\"max_abs_diff\":null"),
        ] {
            assert!(serde_json::from_str::<GpuCheckReport>(&broken).is_err(), "{broken}");
        }
    }

    #[test]
    fn bound_overrides_set_their_field_and_refuse_unknown_names_and_bad_values() {
        let t = Bounds::default().with_overrides(&["rank=1e-15".into(), "ga-map = 0.01".into()]).unwrap();
        assert_eq!(t, Bounds { rank: 1e-15, ga_map: 0.01, ..Bounds::default() });
        let e = Bounds::default().with_overrides(&["rnk=1".into()]).unwrap_err();
        assert!(e.starts_with("--bound \"rnk\": unknown bound; expected one of [\"rank\""), "{e}");
        assert_eq!(
            Bounds::default().with_overrides(&["rank=-1".into()]).unwrap_err(),
            "--bound rank: \"-1\" is not a finite bound ≥ 0"
        );
        assert!(Bounds::default().with_overrides(&["rank".into()]).is_err());
    }
}
