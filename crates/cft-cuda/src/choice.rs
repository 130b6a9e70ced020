//! What a user chooses about the CUDA engine and what it can run, in every build (no GPU or
//! CUDA toolkit needed): front ends parse [`GemmPrecision`] and call [`supports`] before any
//! work, so that a configuration the engine cannot run is one error before data is read.

use cft_core::{FineTuneConfig, GaEliteTies, Method};

cft_core::choice! {
    /// How the CUDA engine's GEMMs multiply.
    #[derive(Default)]
    pub enum GemmPrecision {
        /// f32 features, f32 arithmetic (no tensor-core shortcuts).
        #[default]
        F32 = "f32",
        /// f32 features, TF32 tensor cores with f32 accumulation.
        Tf32 = "tf32",
        /// Features and genes rounded to bf16, f32 accumulation.
        Bf16 = "bf16",
    }
}

/// The largest GA population the CUDA engine's kernels hold (one block per category).
pub const MAX_CUDA_POPULATION: usize = 1024;

/// A configuration the CUDA engine cannot run, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the CUDA engine cannot run {what}: {why}")]
pub struct Unsupported {
    /// The setting, as the spec names it (`cft.ga.elite_ties = "torch-cpu"`).
    pub what: String,
    /// Why, and what to do instead.
    pub why: String,
}

/// Whether the CUDA engine runs `cfg` (every BP configuration; the GA with the `first` elite
/// rule and at most [`MAX_CUDA_POPULATION`] individuals).
pub fn supports(cfg: &FineTuneConfig) -> Result<(), Unsupported> {
    let Method::Ga(ga) = cfg.method else { return Ok(()) };
    if ga.population > MAX_CUDA_POPULATION {
        return Err(Unsupported {
            what: format!("cft.ga.population = {}", ga.population),
            why: format!(
                "its kernels hold at most {MAX_CUDA_POPULATION} individuals; use a CPU engine (`--engine batched`)"
            ),
        });
    }
    match ga.elite_ties {
        GaEliteTies::First => Ok(()),
        GaEliteTies::TorchCpu => Err(Unsupported {
            what: format!("cft.ga.elite_ties = {:?}", ga.elite_ties.name()),
            why: "it keeps the first fittest individual as the elite; the CFT authors' CPU tie order runs on a CPU engine (`--engine batched`)".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cft_core::{GaConfig, MethodName};

    #[test]
    fn the_engine_says_what_it_cannot_run_before_any_work() {
        let ga = |ga: GaConfig| FineTuneConfig::reference(Method::Ga(ga));
        supports(&ga(GaConfig::default())).unwrap();
        supports(&FineTuneConfig::reference(MethodName::BpAsl.reference(1e-4))).unwrap();
        let e = supports(&ga(GaConfig { elite_ties: GaEliteTies::TorchCpu, ..GaConfig::default() })).unwrap_err();
        assert!(e.to_string().starts_with("the CUDA engine cannot run cft.ga.elite_ties = \"torch-cpu\""), "{e}");
        let e = supports(&ga(GaConfig { population: 2000, ..GaConfig::default() })).unwrap_err();
        assert!(e.to_string().contains("at most 1024 individuals"), "{e}");
        assert_eq!("tf32".parse::<GemmPrecision>(), Ok(GemmPrecision::Tf32));
        assert!("fp8".parse::<GemmPrecision>().is_err());
    }
}
