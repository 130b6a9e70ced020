//! The bounds `cft gpu-check` holds the CUDA engine to ([`cft_cuda::bounds`], a margin above
//! what the H200 measured, `reports/gpu/gpu_check.json`), and the check of a `gpu_check.json`
//! against them: a failing comparison names the check, the
//! figure and the bound, and the command exits non-zero. `cft gpu-check --verify FILE` checks a
//! report written earlier (no GPU needed).

use serde_json::Value;

/// The bounds, one per comparison.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerances {
    /// Rank kernel against the CPU's scikit-learn-exact AP/AUC (measured ≤ 1.8e-15).
    pub rank_abs: f64,
    /// CFT-BP in f32/TF32: largest weight difference from the CPU (measured 9.5e-7), with every
    /// category selecting the CPU's epoch.
    pub bp_f32_weight_abs: f64,
    /// CFT-BP in bf16: test mAP difference from the CPU (measured 2.1e-5).
    pub bp_bf16_map_abs: f64,
    /// CFT-GA (other random streams: statistical agreement): test mAP difference (measured ≤ 1.8e-4).
    pub ga_map_abs: f64,
    /// Backbones in f32 against torchvision, relative (measured ≤ 4.8e-4).
    pub backbone_f32_rel: f64,
    /// Backbones in bf16 against torchvision, relative (measured ≤ 8.0e-3).
    pub backbone_bf16_rel: f64,
}

impl Default for Tolerances {
    fn default() -> Self {
        use cft_cuda::bounds::*;
        Self {
            rank_abs: RANK_ABS,
            bp_f32_weight_abs: BP_F32_WEIGHT_ABS,
            bp_bf16_map_abs: BP_BF16_MAP_ABS,
            ga_map_abs: GA_MAP_ABS,
            backbone_f32_rel: BACKBONE_F32_REL,
            backbone_bf16_rel: BACKBONE_BF16_REL,
        }
    }
}

impl Tolerances {
    /// The names `--bound NAME=VALUE` takes, each with its field.
    pub const NAMES: [&'static str; 6] =
        ["rank", "bp-f32-weight", "bp-bf16-map", "ga-map", "backbone-f32", "backbone-bf16"];

    /// These bounds with `NAME=VALUE` overrides applied (`cft gpu-check --bound`): a laboratory
    /// holding its own GPU to its own figures, or a bound tightened to see the check fail.
    pub fn with_overrides(mut self, overrides: &[String]) -> anyhow::Result<Self> {
        for o in overrides {
            let (name, value) = o
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--bound {o:?}: expected NAME=VALUE, NAME one of {:?}", Self::NAMES))?;
            let v: f64 = value
                .trim()
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| anyhow::anyhow!("--bound {name}: {value:?} is not a finite bound ≥ 0"))?;
            let field = match name.trim() {
                "rank" => &mut self.rank_abs,
                "bp-f32-weight" => &mut self.bp_f32_weight_abs,
                "bp-bf16-map" => &mut self.bp_bf16_map_abs,
                "ga-map" => &mut self.ga_map_abs,
                "backbone-f32" => &mut self.backbone_f32_rel,
                "backbone-bf16" => &mut self.backbone_bf16_rel,
                other => anyhow::bail!("--bound {other:?}: unknown bound; expected one of {:?}", Self::NAMES),
            };
            *field = v;
        }
        Ok(self)
    }
}

fn num(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

/// Every comparison of `report` outside its bound, one line each (`check: figure > bound`);
/// empty when all hold. A missing or non-numeric figure fails its check.
pub fn failures(report: &Value, tol: &Tolerances) -> Vec<String> {
    let mut out = Vec::new();
    let mut over = |check: String, figure: f64, bound: f64| {
        if figure.is_nan() || figure > bound {
            out.push(format!("{check}: {figure:.3e} > bound {bound:.1e}"));
        }
    };
    let (same, len) = (num(report, "rng_table_bit_identical"), num(report, "rng_table_len"));
    over("random table: values not bit-identical".into(), len - same, 0.0);
    for r in report.get("rank_kernel").and_then(Value::as_array).into_iter().flatten() {
        let name = format!("rank kernel {} (n = {})", r["metric"].as_str().unwrap_or("?"), r["n"]);
        over(format!("{name}: max |gpu − cpu|"), num(r, "max_abs_diff"), tol.rank_abs);
    }
    for r in report.get("scene_runs").and_then(Value::as_array).into_iter().flatten() {
        let (method, precision) = (r["method"].as_str().unwrap_or("?"), r["precision"].as_str().unwrap_or("?"));
        let name = format!("scene {method} {precision}");
        let map_diff = (num(r, "test_map_gpu") - num(r, "test_map_cpu")).abs();
        match (method, precision) {
            ("ga", _) => over(format!("{name}: |Δ test mAP|"), map_diff, tol.ga_map_abs),
            (_, "Bf16") => over(format!("{name}: |Δ test mAP|"), map_diff, tol.bp_bf16_map_abs),
            _ => {
                over(format!("{name}: max |Δ weight|"), num(r, "max_abs_weight_diff"), tol.bp_f32_weight_abs);
                let other = num(r, "categories") - num(r, "same_best_epoch");
                over(format!("{name}: categories selecting another epoch"), other, 0.0);
            }
        }
    }
    for r in report.get("backbone_parity").and_then(Value::as_array).into_iter().flatten() {
        let name = format!("backbone {} {}", r["backbone"].as_str().unwrap_or("?"), r["dtype"].as_str().unwrap_or("?"));
        let (key, bound) = match (r.get("rel_err_vs_torchvision"), r["dtype"].as_str()) {
            (Some(_), Some("BF16")) => ("rel_err_vs_torchvision", tol.backbone_bf16_rel),
            (Some(_), _) => ("rel_err_vs_torchvision", tol.backbone_f32_rel),
            (None, _) => ("rel_err_vs_pytorch", tol.backbone_f32_rel),
        };
        over(format!("{name}: {key}"), num(r, key), bound);
    }
    out
}

/// `Err` naming every failing check (the command then exits non-zero).
pub fn check(report: &Value, tol: &Tolerances, source: &str) -> anyhow::Result<()> {
    let failed = failures(report, tol);
    if failed.is_empty() {
        return Ok(());
    }
    anyhow::bail!("{source}: {} GPU check(s) outside their bounds: {}", failed.len(), failed.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed() -> Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../reports/gpu/gpu_check.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn the_h200_report_holds_its_bounds_and_a_tightened_bound_fails_naming_the_figure() {
        let report = committed();
        assert_eq!(failures(&report, &Tolerances::default()), Vec::<String>::new());
        // Tightened below what the H200 measured: the rank kernel's 1.8e-15 on 40,137 rows fails.
        let tight = Tolerances { rank_abs: 1e-15, ..Tolerances::default() };
        let failed = failures(&report, &tight);
        assert_eq!(failed, vec!["rank kernel ap (n = 40137): max |gpu − cpu|: 1.832e-15 > bound 1.0e-15".to_string()]);
        let e = check(&report, &tight, "gpu_check.json").unwrap_err().to_string();
        assert!(e.starts_with("gpu_check.json: 1 GPU check(s) outside their bounds: rank kernel ap"), "{e}");
        // A missing figure fails rather than passing silently.
        let mut broken = report.clone();
        broken["scene_runs"][0].as_object_mut().unwrap().remove("max_abs_weight_diff");
        assert!(failures(&broken, &Tolerances::default())[0].contains("scene bp-asl F32: max |Δ weight|: NaN"));
    }

    #[test]
    fn bound_overrides_set_their_field_and_refuse_unknown_names_and_bad_values() {
        let t = Tolerances::default().with_overrides(&["rank=1e-15".into(), "ga-map = 0.01".into()]).unwrap();
        assert_eq!(t, Tolerances { rank_abs: 1e-15, ga_map_abs: 0.01, ..Tolerances::default() });
        let e = Tolerances::default().with_overrides(&["rnk=1".into()]).unwrap_err().to_string();
        assert!(e.starts_with("--bound \"rnk\": unknown bound; expected one of [\"rank\""), "{e}");
        let e = Tolerances::default().with_overrides(&["rank=-1".into()]).unwrap_err().to_string();
        assert_eq!(e, "--bound rank: \"-1\" is not a finite bound ≥ 0");
        assert!(Tolerances::default().with_overrides(&["rank".into()]).is_err());
    }
}
