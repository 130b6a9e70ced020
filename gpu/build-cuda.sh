#!/usr/bin/env bash
# Builds the `cuda` cft binary on a machine without a GPU and stages it in gpu-run/ (git-ignored)
# with the check scripts, ready for the device tool's `carry`.
# Needs the CUDA 13.0 toolchain from PyPI wheels: ../shared/gpu/cuda-toolchain.sh (or any CUDA
# 13.0 install with CUDA_ROOT set). About 18 minutes cold (candle's kernels), then incremental.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${CUDA_ROOT:-}" ]; then
  eval "$(bash "${CFT_CUDA_TOOLCHAIN:-../shared/gpu/cuda-toolchain.sh}")"
fi
export PATH="$CUDA_ROOT/bin:$PATH" CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
export LIBRARY_PATH="$CUDA_ROOT/lib:$CUDA_ROOT/lib/stubs:${LIBRARY_PATH:-}"
cargo build --release --features cuda -p cft-cli
mkdir -p gpu-run
cp target/release/cft gpu-run/cft
strip gpu-run/cft
# The device tool carries at most 64 MiB, the tree included: ship it xz-compressed (about
# 11 MB; gpu/unpack.sh unpacks it there).
xz -9 -T0 -f gpu-run/cft && rm -f gpu-run/cft.gz
# The cuda feature's tests of cft-cuda, as one test binary (run there by check-agreement-and-scale.sh).
test_bin=$(cargo test --release --features cuda -p cft-cuda --test gpu_agreement --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys; print([m["executable"] for m in map(json.loads, sys.stdin) if m.get("executable")][-1])')
cp "$test_bin" gpu-run/gpu_agreement && strip gpu-run/gpu_agreement
cp gpu/unpack.sh gpu/agreement-steps.sh gpu/check.sh gpu/check-agreement-and-scale.sh gpu/check-after-refactor.sh gpu/check-extract.sh gpu/check-paper-scale.sh gpu/compare_results.py gpu/compare_features.py benches/torchvision_bench.py benches/ratios.py gpu-run/
ls -la gpu-run
