# Sourced, from the repository root on the GPU machine, by the check scripts that open with the
# agreement checks (check-agreement-and-scale.sh, check-after-refactor.sh); gpu/build-cuda.sh
# stages it in gpu-run/. Sets $OUT (default ./gpu-out), $W (scratch), $BIN (the unpacked cuda
# binary), the library path to cuBLAS, and step() (a timestamped line in $OUT/steps.log), then:
# 1. `cft gpu-check` with its default bounds (must pass: exit 0);
# 2. `cft gpu-check --verify` of that fresh report with the rank bound tightened below what the
#    GPU measured (must fail: exit 1 naming the check, the figure and the bound);
# 3. the `cuda` feature's tests of cft-cuda (crates/cft-cuda/tests/gpu_agreement.rs), staged as
#    gpu-run/gpu_agreement.
OUT=${OUT:-gpu-out}
W=/tmp/cft-check
mkdir -p "$OUT" "$W"
BIN=/tmp/cft-gpu/cft
. gpu-run/unpack.sh
lib=$(dirname "$(timeout 60 find / -name 'libcublas.so.13' -print -quit 2>/dev/null)")
export LD_LIBRARY_PATH="$lib:${LD_LIBRARY_PATH:-}"
step() { echo "== $* at $(date +%s.%N)" | tee -a "$OUT/steps.log"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >> "$OUT/steps.log" 2>&1
step gpu-check
timeout 180 $BIN gpu-check --out "$W/gc" --epochs 300 2> "$W/gpu-check.log"; echo "gpu-check rc $?" | tee -a "$OUT/steps.log"
cp "$W/gc/gpu_check.json" "$OUT/gpu_check.json" 2>/dev/null
step gpu-check verify, rank bound tightened to 1e-16
$BIN gpu-check --verify "$W/gc/gpu_check.json" --bound rank=1e-16 2>&1 | tee -a "$OUT/steps.log"
echo "tightened verify rc ${PIPESTATUS[0]}" | tee -a "$OUT/steps.log"
step cuda tests
timeout 120 gpu-run/gpu_agreement --test-threads 1 > "$W/cuda-tests.log" 2>&1; echo "cuda tests rc $?" | tee -a "$OUT/steps.log"
tail -5 "$W/cuda-tests.log" >> "$OUT/steps.log"
