#!/usr/bin/env bash
# The GPU checks, run on the lent GPU machine from the repository root with gpu-run/ carried:
#   bash gpu-run/check.sh        (writes everything under $OUT, default ./gpu-out)
# 1. cft gpu-check: CUDA engine vs CPU (random table, AP/AUC kernels, BP/GA on scene) and the
#    backbone parity fixtures on the GPU;
# 2. the 80-category COCO-scale CFT run: 5000 GA generations + 5000 BP epochs (TF32, bf16; f32);
# 3. backbone images/s (candle, network only) and torchvision's on the same GPU.
set -u
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
# The binary travels xz-compressed (the carry limit is 64 MiB).
BIN=/tmp/cft-gpu/cft
. gpu-run/unpack.sh
lib=$(dirname "$(timeout 60 find / -name 'libcublas.so.13' -print -quit 2>/dev/null)")
export LD_LIBRARY_PATH="$lib:${LD_LIBRARY_PATH:-}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/nvidia-smi.csv" 2>&1
nproc > "$OUT/nproc.txt"
# Every step gets at most its own limit and never runs past the overall deadline (the device
# tool allows 600 s per command).
DEADLINE=$(( $(date +%s) + ${CHECK_SECONDS:-540} ))
lim() { local left=$(( DEADLINE - $(date +%s) - 5 )); [ "$left" -lt "$1" ] && echo $(( left > 1 ? left : 1 )) || echo "$1"; }
step() { echo "== $* at $(date +%s.%N)" | tee -a "$OUT/steps.log"; }
step gpu-check
timeout $(lim 120) $BIN gpu-check --out "$OUT" --epochs 300 2> "$OUT/gpu-check.log"; echo "rc $?" >> "$OUT/steps.log"
for p in tf32 bf16; do
  step bench $p 5000
  timeout $(lim 120) $BIN bench --all-categories --device cuda --generations 5000 --precision $p \
    --json "$OUT/cuda_all_categories_5000_$p.json" > "$OUT/bench_$p.txt" 2>&1; echo "rc $?" >> "$OUT/steps.log"
done
step bench f32 1000
timeout $(lim 60) $BIN bench --all-categories --device cuda --generations 1000 --precision f32 \
  --json "$OUT/cuda_all_categories_1000_f32.json" > "$OUT/bench_f32.txt" 2>&1; echo "rc $?" >> "$OUT/steps.log"
step backbones
for spec in "resnet101 448" "resnet50 448" "densenet121 224"; do
  set -- $spec
  for p in f32 bf16; do
    timeout $(lim 40) $BIN bench-backbone --device cuda --backbone "$1" --image-size "$2" --batch 64 --iters 10 \
      --precision $p --json "$OUT/candle_backbones.jsonl" >> "$OUT/backbones.log" 2>&1
  done
done
step torchvision
timeout $(lim 100) python3 gpu-run/torchvision_bench.py network --device cuda --batch 64 --model resnet101:448 \
  --model resnet50:448 --model densenet121:224 --mode fp32 --mode bf16 > "$OUT/torchvision.jsonl" 2> "$OUT/torchvision.log"
step done
