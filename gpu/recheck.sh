#!/usr/bin/env bash
# Quick re-check after an engine change: gpu-check and the 5000-generation TF32 bench.
set -u
BIN=/tmp/cft-gpu/cft
. gpu-run/unpack.sh
for lib in libcublas.so.13 libcudnn.so.9 libcurand.so.10 libcudart.so.13; do
  d=$(dirname "$(timeout 60 find / -name "$lib" -print -quit 2>/dev/null)")
  export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
done
timeout 120 $BIN gpu-check --out "$OUT" --epochs 300 2>&1 | grep -v '"backbone"' | cut -c1-400
timeout 150 $BIN bench --all-categories --device cuda --generations 5000 --precision tf32 --json "$OUT/cuda_all_categories_5000_tf32.json" 2>&1 | tail -3
