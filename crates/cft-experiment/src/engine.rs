//! What fits the CFT heads of a run: the choice a user names ([`EngineName`] in a spec's
//! `[cft] engine`, `--engine`, Python's `engine=`), resolved once against the device and the
//! GEMM precision into an [`EngineChoice`], built into a [`CftEngine`]. The CPU engines give
//! the same numbers bit for bit; the CUDA engine (the `cuda` feature) lives here too, so every
//! front end builds the same engine from the same choice, and asks it what it [supports]
//! before any work.
//!
//! [supports]: CftEngine::supports

use crate::error::{ExperimentError, Result};
use cft_core::{Batched, CheckedFineTune, FineTuneRun, Hooks, LinearHead, PerCategory, SplitRef};
use cft_cuda::GemmPrecision;
use cft_pipeline::Device;

cft_core::choice! {
    /// The engines by name, as specs, flags and the Python package spell them.
    #[derive(Default)]
    pub enum EngineName {
        /// The CUDA engine on a CUDA device in a `cuda` build, else the batched CPU engine.
        #[default]
        Auto = "auto",
        /// One loop per category, categories in parallel.
        PerCategory = "per-category",
        /// All categories of a batch advance one epoch per step and share one validation pass.
        Batched = "batched",
        /// Every category of a batch on a GPU at once (a `cuda` build).
        Cuda = "cuda",
    }
}

/// An engine, resolved: `auto` has become a CPU or the CUDA engine, and the CUDA engine knows
/// its device and GEMM precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineChoice {
    /// [`cft_core::PerCategory`].
    PerCategory,
    /// [`cft_core::Batched`], `batch` categories at a time.
    Batched {
        /// Categories held at once.
        batch: usize,
    },
    /// The CUDA engine.
    Cuda {
        /// The CUDA device's ordinal.
        ordinal: usize,
        /// Its GEMM precision.
        precision: GemmPrecision,
        /// At most this many categories on the device at once (`None`: as many as fit).
        max_batch: Option<usize>,
    },
}

impl EngineChoice {
    /// The engine `name` names on `device` with GEMM `precision`: `auto` is the CUDA engine on a
    /// CUDA device of a `cuda` build, else the batched CPU engine; `cuda` on the CPU device is
    /// device 0. A GEMM precision other than f32 only means something to the CUDA engine, so a
    /// CPU engine with one is refused rather than silently ignored.
    pub fn resolve(name: EngineName, device: Device, precision: GemmPrecision, batch: usize) -> Result<Self> {
        let choice = match (name, device) {
            (EngineName::Auto, Device::Cuda(ordinal)) if cft_cuda::CUDA_BUILT => {
                EngineChoice::Cuda { ordinal, precision, max_batch: None }
            }
            (EngineName::Auto | EngineName::Batched, _) => EngineChoice::Batched { batch },
            (EngineName::PerCategory, _) => EngineChoice::PerCategory,
            (EngineName::Cuda, Device::Cuda(ordinal)) => EngineChoice::Cuda { ordinal, precision, max_batch: None },
            (EngineName::Cuda, Device::Cpu) => EngineChoice::Cuda { ordinal: 0, precision, max_batch: None },
        };
        if precision != GemmPrecision::F32 && !matches!(choice, EngineChoice::Cuda { .. }) {
            return Err(ExperimentError::refused(format!(
                "gemm_precision = {:?}: only the CUDA engine has a GEMM precision; the {} engine computes in f32",
                precision.name(),
                choice.label()
            )));
        }
        Ok(choice)
    }

    /// Its name in manifests and messages (`batched`, `per-category`, `cuda f32`).
    pub fn label(&self) -> String {
        match self {
            EngineChoice::PerCategory => "per-category".into(),
            EngineChoice::Batched { .. } => "batched".into(),
            EngineChoice::Cuda { precision, .. } => format!("cuda {precision}"),
        }
    }

    /// The engine itself. A CUDA choice in a build without CUDA, or without a device that
    /// opens, is refused here, before any data is read.
    pub fn build(self) -> Result<Box<dyn CftEngine>> {
        match self {
            EngineChoice::PerCategory => Ok(Box::new(CpuEngine::PerCategory)),
            EngineChoice::Batched { batch } => Ok(Box::new(CpuEngine::Batched { batch })),
            EngineChoice::Cuda { ordinal, precision, max_batch } => cuda::engine(ordinal, precision, max_batch),
        }
    }
}

/// What fits a unit's CFT heads.
pub trait CftEngine: Sync {
    /// Its name in manifests (`batched`, `per-category`, `cuda f32`).
    fn name(&self) -> String;

    /// Whether it can run `cfg`; a protocol run asks this for every CFT configuration before
    /// any work (the CPU engines run everything).
    fn supports(&self, cfg: &CheckedFineTune) -> Result<()> {
        let _ = cfg;
        Ok(())
    }

    /// Fine-tunes `head` on `train`, selecting on `valid` (see [`cft_core::finetune()`]);
    /// `hooks` report finished categories and epochs, and may stop the run.
    fn finetune(
        &self,
        cfg: &CheckedFineTune,
        head: &LinearHead,
        train: SplitRef<'_>,
        valid: SplitRef<'_>,
        hooks: &Hooks<'_>,
    ) -> Result<FineTuneRun>;

    /// Whether units may call it from several threads at once (a GPU engine runs one at a time).
    fn parallel_units(&self) -> bool {
        true
    }
}

/// The CPU engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuEngine {
    /// One loop per category, categories in parallel.
    PerCategory,
    /// All categories of a batch advance one epoch per step and share one validation pass
    /// (faster; the same numbers bit for bit).
    Batched {
        /// Categories held at once.
        batch: usize,
    },
}

impl Default for CpuEngine {
    fn default() -> Self {
        CpuEngine::Batched { batch: cft_core::DEFAULT_BATCH }
    }
}

/// The batched CPU engine's working set per batch: a GA category holds its population's
/// scores on its known rows (50 × 74k × 4 bytes = 15 MB at partial COCO's 90%), so 64 such
/// categories at once would hold more than the features themselves
/// ([`cft_core::Batched::working_set`]).
pub const WORKING_SET_BYTES: usize = 64 << 20;

impl CftEngine for CpuEngine {
    fn name(&self) -> String {
        match self {
            CpuEngine::PerCategory => "per-category".into(),
            CpuEngine::Batched { .. } => "batched".into(),
        }
    }

    fn finetune(
        &self,
        cfg: &CheckedFineTune,
        head: &LinearHead,
        train: SplitRef<'_>,
        valid: SplitRef<'_>,
        hooks: &Hooks<'_>,
    ) -> Result<FineTuneRun> {
        Ok(match *self {
            CpuEngine::PerCategory => cft_core::finetune(&PerCategory, cfg, head, train, valid, hooks)?,
            CpuEngine::Batched { batch } => {
                let engine = Batched { batch, working_set: Some(WORKING_SET_BYTES) };
                cft_core::finetune(&engine, cfg, head, train, valid, hooks)?
            }
        })
    }
}

/// The most worker threads a front end accepts (`--threads`, Python's `threads=`): a few per
/// core is plenty for CFT's data-parallel loops, and thousands of threads only make a run crawl.
pub fn max_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    (8 * cores).max(64)
}

/// The error of a CUDA request in a build without CUDA; `cpu_choice` names the option that
/// runs the same work on the CPU, if there is one.
pub fn not_built(cpu_choice: Option<&str>) -> ExperimentError {
    let alternative = cpu_choice.map(|c| format!(", or use {c}")).unwrap_or_default();
    ExperimentError::refused(format!(
        "this `cft` was built without CUDA support; rebuild with `--features cuda` (see gpu/README.md){alternative}"
    ))
}

#[cfg(feature = "cuda")]
mod cuda {
    use super::*;

    /// The CUDA engine: the device is opened now (no device, no run) and per unit (units run
    /// one at a time on it).
    pub(super) fn engine(
        ordinal: usize,
        precision: GemmPrecision,
        max_batch: Option<usize>,
    ) -> Result<Box<dyn CftEngine>> {
        open(ordinal)?;
        Ok(Box::new(CudaEngine { ordinal, precision, max_batch }))
    }

    /// Opens a GPU, or says why it cannot.
    pub fn open(ordinal: usize) -> Result<cft_cuda::Gpu> {
        cft_cuda::Gpu::new(ordinal).map_err(|e| {
            ExperimentError::refused(format!(
                "cannot open CUDA device {ordinal}: {e} (is there an NVIDIA GPU and driver?)"
            ))
        })
    }

    struct CudaEngine {
        ordinal: usize,
        precision: GemmPrecision,
        max_batch: Option<usize>,
    }

    impl CftEngine for CudaEngine {
        fn name(&self) -> String {
            format!("cuda {}", self.precision)
        }

        fn supports(&self, cfg: &CheckedFineTune) -> Result<()> {
            cft_cuda::supports(cfg).map_err(ExperimentError::source)
        }

        fn finetune(
            &self,
            cfg: &CheckedFineTune,
            head: &LinearHead,
            train: SplitRef<'_>,
            valid: SplitRef<'_>,
            hooks: &Hooks<'_>,
        ) -> Result<FineTuneRun> {
            self.supports(cfg)?;
            let gpu = open(self.ordinal)?;
            let opts = cft_cuda::CudaOptions { precision: self.precision, max_batch: self.max_batch };
            gpu.finetune(cfg, head, train, valid, &opts, hooks).map_err(ExperimentError::source)
        }

        fn parallel_units(&self) -> bool {
            false
        }
    }
}

#[cfg(not(feature = "cuda"))]
mod cuda {
    use super::*;

    pub(super) fn engine(_: usize, _: GemmPrecision, _: Option<usize>) -> Result<Box<dyn CftEngine>> {
        Err(not_built(Some("--engine batched (`engine = \"batched\"` in a spec: the CPU engine)")))
    }
}

#[cfg(feature = "cuda")]
pub use cuda::open as open_gpu;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_once_and_impossible_combinations_are_refused() {
        let f32 = GemmPrecision::F32;
        assert_eq!(
            EngineChoice::resolve(EngineName::Auto, Device::Cpu, f32, 64).unwrap(),
            EngineChoice::Batched { batch: 64 }
        );
        assert_eq!(
            EngineChoice::resolve(EngineName::PerCategory, Device::Cuda(1), f32, 64).unwrap(),
            EngineChoice::PerCategory
        );
        let auto_on_gpu = EngineChoice::resolve(EngineName::Auto, Device::Cuda(1), f32, 64).unwrap();
        if cft_cuda::CUDA_BUILT {
            assert_eq!(auto_on_gpu, EngineChoice::Cuda { ordinal: 1, precision: f32, max_batch: None });
        } else {
            assert_eq!(auto_on_gpu, EngineChoice::Batched { batch: 64 });
            let e = EngineChoice::resolve(EngineName::Cuda, Device::Cpu, f32, 64).unwrap().build().err().unwrap();
            assert!(e.to_string().starts_with("this `cft` was built without CUDA support"), "{e}");
        }
        let e = EngineChoice::resolve(EngineName::Batched, Device::Cpu, GemmPrecision::Bf16, 64).unwrap_err();
        assert_eq!(
            e.to_string(),
            "gemm_precision = \"bf16\": only the CUDA engine has a GEMM precision; the batched engine computes in f32"
        );
        assert_eq!("per-category".parse::<EngineName>(), Ok(EngineName::PerCategory));
        assert!("gpu".parse::<EngineName>().is_err());
    }
}
