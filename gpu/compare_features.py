"""Compares feature files (safetensors, key `features`, rows in the same image order): prints one
JSON line per candidate with max |a - b| / max |b| and the mean relative row error against the
reference. Needs only torch.
    python3 gpu/compare_features.py REFERENCE CANDIDATE [CANDIDATE ...]"""
import json
import struct
import sys

import torch

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    h = header["features"]
    a, b = h["data_offsets"]
    t = torch.frombuffer(bytearray(data[a:b]), dtype=DTYPES[h["dtype"]]).reshape(h["shape"])
    return t.float()


ref = load(sys.argv[1])
for path in sys.argv[2:]:
    got = load(path)
    if got.shape != ref.shape:
        print(json.dumps({"candidate": path, "error": f"shape {list(got.shape)} vs {list(ref.shape)}"}))
        continue
    d = (got - ref).abs()
    rows = d.norm(dim=1) / ref.norm(dim=1).clamp_min(1e-30)
    print(json.dumps({"reference": sys.argv[1], "candidate": path, "rows": ref.shape[0],
                      "max_abs_over_max_ref": (d.max() / ref.abs().max()).item(),
                      "mean_row_relative_l2": rows.mean().item(), "max_row_relative_l2": rows.max().item()}))
