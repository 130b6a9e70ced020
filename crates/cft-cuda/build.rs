//! With the `cuda` feature, compiles `kernels/cft.cu` to PTX with nvcc (found through
//! `CUDA_ROOT`, `NVCC` or `PATH`) for compute capability `CUDA_COMPUTE_CAP` (default 90: H100,
//! H200). Without the feature nothing is built and no CUDA toolkit is needed.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=kernels/cft.cu");
    println!("cargo:rerun-if-env-changed=CUDA_COMPUTE_CAP");
    println!("cargo:rerun-if-env-changed=NVCC");
    println!("cargo:rerun-if-env-changed=CUDA_ROOT");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("cft.ptx");
    let cap = std::env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "90".into());
    let nvcc = std::env::var("NVCC").ok().map(PathBuf::from).unwrap_or_else(|| match std::env::var("CUDA_ROOT") {
        Ok(root) => PathBuf::from(root).join("bin").join("nvcc"),
        Err(_) => PathBuf::from("nvcc"),
    });
    let status = Command::new(&nvcc)
        .args(["--ptx", "-O3", "-std=c++17", &format!("-arch=compute_{cap}"), "-o"])
        .arg(&out)
        .arg("kernels/cft.cu")
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run {} ({e}): the `cuda` feature needs nvcc, see gpu/README.md", nvcc.display())
        });
    assert!(status.success(), "nvcc failed to compile kernels/cft.cu");
}
