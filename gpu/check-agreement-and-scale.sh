#!/usr/bin/env bash
# One device call for the agreement checks and the paper-scale run, from the repository root
# with gpu-run/ carried (bash gpu/build-cuda.sh stages it, with the cuda test binary):
#   bash gpu/check-agreement-and-scale.sh      (summary files under $OUT, default ./gpu-out)
# 1. `cft gpu-check` with its default bounds (must pass: exit 0);
# 2. `cft gpu-check --verify` of that fresh report with the rank bound tightened below what the
#    GPU measured (must fail: exit 1 naming the check, the figure and the bound);
# 3. the `cuda` feature's tests of cft-cuda (crates/cft-cuda/tests/gpu_agreement.rs);
# 4. gpu/check-paper-scale.sh: COCO-shaped rehearsal on the CPU and the CUDA engine (f32, TF32,
#    bf16) and each CUDA table's largest difference from the CPU's.
# Everything else lands in $OUT/all.tgz (the device tool returns at most 8 files).
set -u
OUT=${OUT:-gpu-out}
W=/tmp/cft-check
mkdir -p "$OUT" "$W"
BIN=/tmp/cft-gpu/cft
. gpu-run/unpack.sh
lib=$(dirname "$(timeout 60 find / -name 'libcublas.so.13' -print -quit 2>/dev/null)")
export LD_LIBRARY_PATH="$lib:${LD_LIBRARY_PATH:-}"
DEADLINE=$(( $(date +%s) + ${CHECK_SECONDS:-520} ))
step() { echo "== $* at $(date +%s.%N)" | tee -a "$OUT/steps.log"; }
left() { echo $(( DEADLINE - $(date +%s) - 5 )); }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >> "$OUT/steps.log" 2>&1
step gpu-check
timeout 180 $BIN gpu-check --out "$W/gc" --epochs 300 2> "$W/gpu-check.log"; echo "gpu-check rc $?" | tee -a "$OUT/steps.log"
cp "$W/gc/gpu_check.json" "$OUT/gpu_check.json" 2>/dev/null
step gpu-check verify, rank bound tightened to 1e-16
$BIN gpu-check --verify "$W/gc/gpu_check.json" --bound rank=1e-16 2>&1 | tee -a "$OUT/steps.log"
echo "tightened verify rc ${PIPESTATUS[0]}" | tee -a "$OUT/steps.log"
step cuda tests
if [ -x gpu-run/gpu_agreement ]; then
  timeout 120 gpu-run/gpu_agreement --test-threads 1 > "$W/cuda-tests.log" 2>&1; echo "cuda tests rc $?" | tee -a "$OUT/steps.log"
  tail -5 "$W/cuda-tests.log" >> "$OUT/steps.log"
fi
step paper scale
CFT_BIN=$BIN OUT="$W/scale" CHECK_SECONDS=$(left) bash gpu/check-paper-scale.sh > "$W/scale.txt" 2>&1
cat "$W/scale/steps.log" "$W/scale.txt" >> "$OUT/steps.log" 2>/dev/null
for p in cpu cuda-f32 cuda-tf32 cuda-bf16; do
  { echo "### $p"; cat "$W/scale/$p/coco-shaped/stages.md" 2>/dev/null; cat "$W/scale/$p.md"; } >> "$OUT/paper-scale-stages.md" 2>/dev/null
done
step done
tar czf "$OUT/all.tgz" -C "$W" --exclude='*.safetensors' . 2>/dev/null
ls -la "$OUT"
