#!/usr/bin/env bash
# Backbone speed and parity with the cuDNN build (`--features cudnn`), on the GPU machine.
# libcudnn.so.9 is taken from the machine's PyTorch install (nvidia-cudnn wheel).
set -u
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
BIN=/tmp/cft-gpu/cft
. gpu-run/unpack.sh
for lib in libcublas.so.13 libcudnn.so.9 libcurand.so.10 libcudart.so.13; do
  d=$(dirname "$(timeout 60 find / -name "$lib" -print -quit 2>/dev/null)")
  echo "$lib from $d"
  export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
done
timeout 120 $BIN gpu-check --out "$OUT" --epochs 50 2>&1 | grep backbone
for spec in "resnet101 448" "resnet50 448" "densenet121 224"; do
  set -- $spec
  for p in f32 bf16; do
    timeout 60 $BIN bench-backbone --device cuda --backbone "$1" --image-size "$2" --batch 64 --iters 10 \
      --precision $p --json "$OUT/candle_cudnn_backbones.jsonl" 2>&1 | tail -1
  done
done
