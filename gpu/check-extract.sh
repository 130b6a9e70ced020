#!/usr/bin/env bash
# Extraction speed and parity, candle beside torchvision in one run (issue #14), on the lent GPU
# machine from the repository root with gpu-run/ carried (bash gpu/build-cuda.sh stages it):
#   bash gpu-run/check-extract.sh        (writes everything under $OUT, default ./gpu-out)
# 1. network only (input on the device), batch 64: `cft bench-backbone` f32, f32 + TF32, bf16
#    and torchvision fp32-strict, fp32 (TF32), bf16, then channels-last, for ResNet-101/50 at 448
#    and DenseNet-121 at 224;
# 2. from files: N JPEGs on disk → a feature file on disk. torchvision + DataLoader (16 workers,
#    PIL Resize((S, S)), ToTensor, pinned memory) and `cft extract` (exact decoding, and
#    --jpeg-decode reduced) with the same random weights (saved by torch), images/s of each;
# 3. parity of every path with torchvision's strict-fp32 features of the same files.
# A CPU smoke run of the same script (what was checked on the 2-core machine):
#   DEVICE=cpu CFT_BIN=target/release/cft PY=~/.cache/cft-torch/bin/python NET_MODELS=resnet50:64 \
#   BATCH=8 ITERS=1 FILES=16 FILE_MODEL=resnet50:64 WORKERS=2 OUT=/tmp/smoke bash gpu/check-extract.sh
set -u
OUT=${OUT:-gpu-out}
DEVICE=${DEVICE:-cuda}
PY=${PY:-python3}
NET_MODELS=${NET_MODELS:-resnet101:448 resnet50:448 densenet121:224}
FILE_MODEL=${FILE_MODEL:-resnet101:448}
BATCH=${BATCH:-64}
ITERS=${ITERS:-10}
N=${FILES:-2048}
WORKERS=${WORKERS:-16}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
if [ -n "${CFT_BIN:-}" ]; then
  BIN=$CFT_BIN
else
  # The binary travels xz-compressed (the carry limit is 64 MiB).
  BIN=/tmp/cft-gpu/cft
  . "$HERE/unpack.sh" "$HERE"
fi
if [ "$DEVICE" != cpu ]; then
  lib=$(dirname "$(timeout 60 find / -name 'libcublas.so.13' -print -quit 2>/dev/null)")
  export LD_LIBRARY_PATH="$lib:${LD_LIBRARY_PATH:-}"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/nvidia-smi.csv" 2>&1
  CANDLE_PRECISIONS=("f32" "f32 --tf32" "bf16")
  TV_MODES=(--mode fp32-strict --mode fp32 --mode bf16)
  FILE_RUNS=("f32:--precision f32" "tf32:--precision f32 --tf32" "bf16:--precision bf16"
             "tf32_reduced:--precision f32 --tf32 --jpeg-decode reduced")
  TV_FILE_MODES=(fp32 bf16)
else
  # The CPU has neither TF32 nor a bf16 matmul in candle.
  CANDLE_PRECISIONS=("f32")
  TV_MODES=(--mode fp32)
  FILE_RUNS=("f32:--precision f32" "f32_reduced:--precision f32 --jpeg-decode reduced")
  TV_FILE_MODES=()
fi
nproc > "$OUT/nproc.txt"
DEADLINE=$(( $(date +%s) + ${CHECK_SECONDS:-540} ))
lim() { local left=$(( DEADLINE - $(date +%s) - 5 )); [ "$left" -lt "$1" ] && echo $(( left > 1 ? left : 1 )) || echo "$1"; }
step() { echo "== $* at $(date +%s.%N)" | tee -a "$OUT/steps.log"; }
# Staged in gpu-run/ by build-cuda.sh; from a checkout they live in benches/.
B=$HERE/../benches; [ -f "$HERE/torchvision_bench.py" ] && B=$HERE
TV="$PY $B/torchvision_bench.py"

step network candle
for spec in $NET_MODELS; do
  name=${spec%%:*} size=${spec##*:}
  for p in "${CANDLE_PRECISIONS[@]}"; do
    timeout $(lim 40) $BIN bench-backbone --device $DEVICE --backbone $name --image-size $size --batch $BATCH \
      --iters $ITERS --precision $p --json "$OUT/candle_network.jsonl" >> "$OUT/candle_network.log" 2>&1
  done
done
step network torchvision
models=(); for spec in $NET_MODELS; do models+=(--model $spec); done
timeout $(lim 120) $TV network --device $DEVICE --batch $BATCH --iters $ITERS "${models[@]}" "${TV_MODES[@]}" \
  > "$OUT/torchvision_network.jsonl" 2>> "$OUT/torchvision.log"
timeout $(lim 60) $TV network --device $DEVICE --batch $BATCH --iters $ITERS --channels-last "${models[@]}" \
  "${TV_MODES[@]}" >> "$OUT/torchvision_network.jsonl" 2>> "$OUT/torchvision.log"

step files setup "$N images"
IMG=/tmp/cft-files && rm -rf $IMG && mkdir -p $IMG
photos=("$HERE"/../datasets/images/*.jpg)
for i in $(seq 0 $((N - 1))); do cp "${photos[$((i % ${#photos[@]}))]}" "$IMG/$(printf %06d $i).jpg"; done
W=/tmp/cft-files-weights.safetensors
fname=${FILE_MODEL%%:*} fsize=${FILE_MODEL##*:}
step files torchvision fp32-strict
timeout $(lim 90) $TV files --device $DEVICE --images $IMG --model $FILE_MODEL --batch $BATCH --workers $WORKERS \
  --mode fp32-strict --weights-out $W --out /tmp/tv_strict.safetensors >> "$OUT/files.jsonl" 2>> "$OUT/torchvision.log"
compare=()
for m in "${TV_FILE_MODES[@]}"; do
  step files torchvision $m
  timeout $(lim 90) $TV files --device $DEVICE --images $IMG --model $FILE_MODEL --batch $BATCH --workers $WORKERS \
    --mode $m --out /tmp/tv_$m.safetensors >> "$OUT/files.jsonl" 2>> "$OUT/torchvision.log"
  compare+=(/tmp/tv_$m.safetensors)
done
for run in "${FILE_RUNS[@]}"; do
  name=${run%%:*} args=${run#*:}
  step files cft $name
  rm -rf /tmp/cft_$name.safetensors*
  t0=$(date +%s.%N)
  timeout $(lim 120) $BIN extract --backbone $fname --weights $W --images $IMG --image-size $fsize --normalize none \
    --batch $BATCH --device $DEVICE $args --out /tmp/cft_$name.safetensors >> "$OUT/cft_extract.log" 2>&1
  rc=$? t1=$(date +%s.%N)
  awk -v n="$N" -v a="$t0" -v b="$t1" -v v="$name" -v x="$args" -v rc="$rc" -v m="$FILE_MODEL" 'BEGIN { printf "{\"what\": \"files\", \"tool\": \"cft\", \"variant\": \"%s\", \"args\": \"%s\", \"model\": \"%s\", \"images\": %d, \"rc\": %d, \"seconds\": %.3f, \"images_per_second\": %.1f}\n", v, x, m, n, rc, b - a, n / (b - a) }' >> "$OUT/files.jsonl"
  cp /tmp/cft_$name.safetensors.manifest.json "$OUT/cft_$name.manifest.json" 2>/dev/null
  compare+=(/tmp/cft_$name.safetensors)
done
step parity
timeout $(lim 60) $PY "$HERE/compare_features.py" /tmp/tv_strict.safetensors "${compare[@]}" \
  > "$OUT/parity.jsonl" 2>> "$OUT/parity.log"
$PY $B/ratios.py --candle "$OUT/candle_network.jsonl" --torchvision "$OUT/torchvision_network.jsonl" \
  --title "$DEVICE, network only (gpu/check-extract.sh)" --out "$OUT/ratios.md" > /dev/null 2>> "$OUT/parity.log"
step done
