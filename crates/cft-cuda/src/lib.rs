//! # cft-cuda: CFT at hardware speed on NVIDIA GPUs
//!
//! The reference fine-tunes one category at a time and scores each GA individual from Python.
//! With the `cuda` feature this crate runs every category of a batch together on the GPU
//! (`Gpu::finetune`): one batched GEMM per generation scores all populations, a kernel
//! computes every individual's **exact, tie-grouped** AP or ROC-AUC ([`rank`] holds the
//! algorithm and its CPU form), and selection, breeding, validation and best-head tracking stay
//! on the device.
//!
//! Without the feature (the default, and what CI builds) the crate compiles the kernels'
//! algorithms on the CPU, [`rank`] and [`rng`], with tests against the core's scikit-learn-exact
//! metrics; [`CUDA_BUILT`] says which build this is.

pub mod batch;
pub mod bounds;
pub mod check;
pub mod choice;
pub mod rank;
pub mod rng;

#[cfg(feature = "cuda")]
mod engine;
#[cfg(feature = "cuda")]
pub use engine::{CudaError, CudaOptions, Gpu};

pub use choice::{supports, GemmPrecision, Unsupported, MAX_CUDA_POPULATION};

/// Whether this build contains the CUDA engine (the `cuda` feature).
pub const CUDA_BUILT: bool = cfg!(feature = "cuda");
