"""Shared helpers of the `cft` package's tests: the repository's paths, the `cft` command and
a small safetensors reader (numpy only), so the tests need nothing beyond numpy and pytest."""

import json
import os
import pathlib

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
OWN = ROOT / "datasets" / "own-features"


def read_safetensors(path):
    """The tensors of a safetensors file as numpy arrays (F32/F64/F16)."""
    data = pathlib.Path(path).read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        dtype = {"F32": np.float32, "F64": np.float64, "F16": np.float16}[t["dtype"]]
        start, end = t["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + start : 8 + n + end], dtype=dtype).reshape(t["shape"])
    return out


@pytest.fixture(scope="session")
def own():
    """The bundled own-features example: emotions features with real partial labels and an AN head."""
    train, test, head = (read_safetensors(OWN / f) for f in ("train.safetensors", "test.safetensors", "head.safetensors"))
    return train, test, head


@pytest.fixture(scope="session")
def cft_bin():
    """The `cft` command the package is compared with (CFT_BIN, else the workspace's build)."""
    env = os.environ.get("CFT_BIN")
    candidates = [pathlib.Path(env)] if env else [ROOT / "target" / "debug" / "cft", ROOT / "target" / "release" / "cft"]
    for c in candidates:
        path = c if c.is_absolute() else ROOT / c
        if path.is_file():
            return path
    pytest.fail(f"no `cft` binary at {candidates}: build it (cargo build) or set CFT_BIN")
