"""The example of "Applying CFT to your own model": feature sets in the format `cft finetune`
and `[data] source = "features"` read, written the way a PyTorch user writes them
(`safetensors` `features` [n, d] float32, `labels` [n, C] float32 with 1 / 0 / NaN unknown,
`categories` JSON metadata). Made from the bundled Mulan `emotions` data (../emotions): its 72
audio features stand in for a network's penultimate layer, and 60% of the training labels are
hidden (numpy PCG64 seed 0) as a real partial-label training set would lack them; the test
labels are complete. Run from this folder: python make_own_features.py  (numpy, safetensors)."""
import json, os
import numpy as np
from safetensors.numpy import save_file

here = os.path.dirname(os.path.abspath(__file__))
meta = json.load(open(os.path.join(here, "../emotions/manifest.json")))
n_labels = len(meta["categories"])

def read_arff(path):
    rows = []
    with open(path) as f:
        data = False
        for line in f:
            line = line.strip()
            if not line or line.startswith("%"):
                continue
            if line.lower() == "@data":
                data = True
                continue
            if data:
                rows.append([float(v) for v in line.split(",")])
    a = np.array(rows, dtype=np.float32)
    return np.ascontiguousarray(a[:, :-n_labels]), np.ascontiguousarray(a[:, -n_labels:])

rng = np.random.Generator(np.random.PCG64(0))
for split, hide in [("train", 0.6), ("test", 0.0)]:
    x, y = read_arff(os.path.join(here, f"../emotions/emotions-{split}.arff"))
    y = y.copy()
    y[rng.random(y.shape) < hide] = np.nan
    save_file({"features": x, "labels": np.ascontiguousarray(y)}, os.path.join(here, f"{split}.safetensors"),
              metadata={"categories": json.dumps(meta["categories"])})
    print(split, x.shape, "known labels:", float(np.mean(~np.isnan(y))))
