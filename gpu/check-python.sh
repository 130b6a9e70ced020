#!/usr/bin/env bash
# The `cft` Python package on the GPU machine (which has PyTorch, torchvision, pytest, tqdm and
# scikit-learn but no Rust): run from the repository root with target/wheels carried (the abi3
# wheel built here by `maturin build --release -m crates/cft-python/Cargo.toml -o target/wheels`).
#   bash gpu/check-python.sh         (logs under $OUT, default ./gpu-out)
# 1. pytest crates/cft-python/tests with torch (the comparisons with the `cft` command run in CI);
# 2. the README's "From Python" example, verbatim (crates/cft-python/examples/readme_example.py);
# 3. benches/python_bench.py: cft.finetune beside the PyTorch loop on the CPU, then on the GPU;
# 4. examples/ctrl_c.py: SIGINT during a long cft.finetune.
set -u
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site target/wheels/cft-*.whl || exit 1
export PYTHONPATH=/tmp/site
python3 -c "import cft, torch, sys; print('cft', cft.__version__, 'torch', torch.__version__, sys.version.split()[0])" | tee "$OUT/versions.txt"
nproc >> "$OUT/versions.txt"
echo "== pytest"
(cd crates/cft-python && timeout 120 python3 -m pytest tests -q -rs -p no:cacheprovider \
  -k "not cft_command and not cft_run" 2>&1) | tee "$OUT/pytest.log" | tail -15
echo "== readme example"
timeout 120 python3 crates/cft-python/examples/readme_example.py 2>&1 | tee "$OUT/readme_example.txt"
echo "== bench cpu"
timeout 200 python3 benches/python_bench.py --device cpu --json "$OUT/python_bench_cpu.json" 2>&1 | tee "$OUT/python_bench_cpu.md"
echo "== bench cuda"
timeout 120 python3 benches/python_bench.py --device cuda --json "$OUT/python_bench_cuda.json" 2>&1 | tee "$OUT/python_bench_cuda.md"
echo "== ctrl-c"
timeout 60 python3 crates/cft-python/examples/ctrl_c.py 2>&1 | tee "$OUT/ctrl_c.txt"
