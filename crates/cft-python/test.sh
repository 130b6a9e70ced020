#!/usr/bin/env bash
# The `cft` Python package's tests, as CI runs them (the README's test command ends with this):
# builds the abi3 wheel (maturin, release) into a fresh virtual environment under the cargo
# target folder ($CARGO_TARGET_DIR, else target/),
# installs it with pytest, numpy, scikit-learn and tqdm from PyPI, and runs
# crates/cft-python/tests. The comparisons with the `cft` command use <target>/debug/cft (built
# by `cargo test --workspace`), or CFT_BIN. The torch tests are skipped, saying so, where torch
# is not installed (PYTHON_TORCH=1 installs it from PyPI first: about 3 GB with its CUDA
# libraries).
set -euo pipefail
cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac
venv="$target/python-tests"
python3 -m venv --clear "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check "maturin>=1.7,<2" pytest numpy scikit-learn tqdm
if [ "${PYTHON_TORCH:-0}" = 1 ]; then "$venv/bin/pip" install -q torch; fi
rm -rf "$target/wheels/tests"
"$venv/bin/maturin" build --release --quiet -m crates/cft-python/Cargo.toml -o "$target/wheels/tests"
"$venv/bin/pip" install -q --no-deps "$target"/wheels/tests/cft-*.whl
export CFT_BIN="${CFT_BIN:-$target/debug/cft}"
cd crates/cft-python
"$venv/bin/python" -m pytest tests -q -rs -p no:cacheprovider
