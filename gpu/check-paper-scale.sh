#!/usr/bin/env bash
# The COCO-shaped rehearsal on the GPU (README "The paper's size"), run on the lent GPU machine
# from the repository root with gpu-run/ carried:
#   bash gpu/check-paper-scale.sh        (writes everything under $OUT, default ./gpu-out)
# 1. writes the synthetic COCO-shaped feature sets (82,081 + 40,137 × 2048, 80 categories);
# 2. `cft run experiments/rehearsal/coco-shaped.toml --stages` on the CPU (batched engine, all
#    cores) and with the CUDA engine in f32, TF32 and bf16: each run's stage table;
# 3. the largest difference of every CUDA table from the CPU's (gpu/compare_results.py):
#    BP in f32 should select the same epochs as the CPU; the GA's counter-based streams agree
#    statistically, not bit for bit.
set -u
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
BIN=${CFT_BIN:-/tmp/cft-gpu/cft}
if [ ! -x "$BIN" ]; then
  . gpu-run/unpack.sh
fi
lib=$(dirname "$(timeout 60 find / -name 'libcublas.so.13' -print -quit 2>/dev/null)")
export LD_LIBRARY_PATH="$lib:${LD_LIBRARY_PATH:-}"
DEADLINE=$(( $(date +%s) + ${CHECK_SECONDS:-540} ))
lim() { local left=$(( DEADLINE - $(date +%s) - 5 )); [ "$left" -lt "$1" ] && echo $(( left > 1 ? left : 1 )) || echo "$1"; }
step() { echo "== $* at $(date +%s.%N)" | tee -a "$OUT/steps.log"; }
SPEC=experiments/rehearsal/coco-shaped.toml
step synthesize
timeout $(lim 120) "$BIN" data synthesize --like coco --categories datasets/rehearsal/coco2014_categories_80.json \
  --out target/rehearsal/coco 2> "$OUT/synthesize.log"; echo "rc $?" >> "$OUT/steps.log"
step cpu
timeout $(lim 240) "$BIN" run "$SPEC" --stages --engine batched --out "$OUT/cpu" > "$OUT/cpu.md" 2> "$OUT/cpu.log"
echo "rc $?" >> "$OUT/steps.log"
for p in f32 tf32 bf16; do
  step cuda $p
  timeout $(lim 120) "$BIN" run "$SPEC" --stages --device cuda --engine cuda --gemm-precision $p \
    --out "$OUT/cuda-$p" > "$OUT/cuda-$p.md" 2> "$OUT/cuda-$p.log"; echo "rc $?" >> "$OUT/steps.log"
  python3 gpu/compare_results.py "$OUT/cpu/coco-shaped/results.json" "$OUT/cuda-$p/coco-shaped/results.json" \
    > "$OUT/diff-$p.txt" 2>&1
done
step done
cat "$OUT"/diff-*.txt
