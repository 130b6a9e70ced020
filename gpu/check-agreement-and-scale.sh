#!/usr/bin/env bash
# One device call for the agreement checks and the paper-scale run, from the repository root
# with gpu-run/ carried (bash gpu/build-cuda.sh stages it, with the cuda test binary):
#   bash gpu/check-agreement-and-scale.sh      (summary files under $OUT, default ./gpu-out)
# 1–3. gpu/agreement-steps.sh: `cft gpu-check` (must exit 0), its --verify with the rank bound
#    tightened (must exit 1), the `cuda` feature's tests of cft-cuda;
# 4. gpu/check-paper-scale.sh: COCO-shaped rehearsal on the CPU and the CUDA engine (f32, TF32,
#    bf16) and each CUDA table's largest difference from the CPU's.
# Everything else lands in $OUT/all.tgz (the device tool returns at most 8 files).
set -u
DEADLINE=$(( $(date +%s) + ${CHECK_SECONDS:-520} ))
left() { echo $(( DEADLINE - $(date +%s) - 5 )); }
. gpu-run/agreement-steps.sh
step paper scale
CFT_BIN=$BIN OUT="$W/scale" CHECK_SECONDS=$(left) bash gpu/check-paper-scale.sh > "$W/scale.txt" 2>&1
cat "$W/scale/steps.log" "$W/scale.txt" >> "$OUT/steps.log" 2>/dev/null
for p in cpu cuda-f32 cuda-tf32 cuda-bf16; do
  { echo "### $p"; cat "$W/scale/$p/coco-shaped/stages.md" 2>/dev/null; cat "$W/scale/$p.md"; } >> "$OUT/paper-scale-stages.md" 2>/dev/null
done
step done
tar czf "$OUT/all.tgz" -C "$W" --exclude='*.safetensors' . 2>/dev/null
ls -la "$OUT"
