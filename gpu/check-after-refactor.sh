#!/usr/bin/env bash
# One short device call after the CUDA engine's refactor into run_batch / BatchLabels /
# EpochTracker (#23) and for the Python package on the GPU (#22), from the repository root with
# gpu-run/ carried (bash gpu/build-cuda.sh stages the binary and the cuda test binary; copy the
# wheel's Python file and stripped, xz-compressed module into gpu-run/py/ too):
#   bash gpu/check-after-refactor.sh      (summary files under $OUT, default ./gpu-out)
# 1–2. gpu/agreement-steps.sh: `cft gpu-check` (must exit 0), its --verify with the rank bound
#    tightened (must exit 1), the cuda feature's tests (crates/cft-cuda/tests/gpu_agreement.rs);
# 3. the fresh gpu_check.json beside the one measured before the refactor
#    (reports/gpu/check-2026-11-28/): the CUDA runs' best epochs, test mAP and weight differences;
# 4. the Python package with PyTorch: pytest (the torch module included; the comparisons with the
#    `cft` command run in CI), the README example verbatim, Ctrl-C, the benchmark on the GPU.
set -u
. gpu-run/agreement-steps.sh
step before and after the refactor
python3 - reports/gpu/check-2026-11-28/gpu_check.json "$W/gc/gpu_check.json" <<'EOF' 2>&1 | tee "$OUT/before-after.md"
import json, sys
before, after = (json.load(open(p)) for p in sys.argv[1:3])
print("| method | precision | best epochs equal | test mAP before | after | max weight diff before | after |")
print("|---|---|---|---|---|---|---|")
for b, a in zip(before["scene_runs"], after["scene_runs"]):
    assert (b["method"], b["precision"]) == (a["method"], a["precision"])
    print(f"| {a['method']} | {a['precision']} | {b['gpu_best_epochs'] == a['gpu_best_epochs']} | "
          f"{b['test_map_gpu']!r} | {a['test_map_gpu']!r} | {b['max_abs_weight_diff']!r} | {a['max_abs_weight_diff']!r} |")
EOF
step python
# The wheel's stripped module travels xz-compressed (the tree plus gpu-run/ must stay under the
# device tool's 64 MiB): gpu-run/py/ holds cft/__init__.py and _cft.abi3.so.xz from the wheel.
mkdir -p /tmp/site/cft && cp gpu-run/py/__init__.py /tmp/site/cft/
python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" \
  gpu-run/py/_cft.abi3.so.xz /tmp/site/cft/_cft.abi3.so
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
python3 -c "import cft, torch, sys; print('cft', cft.__version__, 'torch', torch.__version__, sys.version.split()[0], torch.cuda.get_device_name())" | tee -a "$OUT/steps.log"
(cd crates/cft-python && timeout 90 python3 -m pytest tests -q -rs -p no:cacheprovider \
  -k "not cft_command and not cft_run" 2>&1) > "$OUT/pytest.log"; echo "pytest rc $?" | tee -a "$OUT/steps.log"
tail -3 "$OUT/pytest.log" >> "$OUT/steps.log"
step readme example
timeout 60 python3 crates/cft-python/examples/readme_example.py > "$OUT/readme_example.txt" 2>&1; echo "readme rc $?" | tee -a "$OUT/steps.log"
step ctrl-c
timeout 30 python3 crates/cft-python/examples/ctrl_c.py > "$OUT/ctrl_c.txt" 2>&1; echo "ctrl-c rc $?" | tee -a "$OUT/steps.log"
step bench cuda
timeout 75 python3 benches/python_bench.py --device cuda --json "$W/python_bench_cuda.json" > "$OUT/python_bench_cuda.md" 2>&1; echo "bench rc $?" | tee -a "$OUT/steps.log"
step done
# The device tool brings back at most 8 files: the rest travels in all.tgz.
tar czf "$OUT/all.tgz" -C "$W" --exclude='*.safetensors' . 2>/dev/null
ls -la "$OUT"
