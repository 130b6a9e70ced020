"""The largest difference between two `results.json` files of one spec (e.g. the CPU's and
the CUDA engine's): per row, the largest |Δ| of the mean and of any category's score over the
table's columns, and the largest over every row.

    python3 gpu/compare_results.py cpu/results.json cuda/results.json
"""
import json
import sys


def cells(path):
    with open(path) as f:
        results = json.load(f)
    out = {}
    for row in results["rows"]:
        for cell in row["cells"]:
            out[(row["protocol"], row["method"], cell["proportion"])] = cell
    return out


def main(a, b):
    left, right = cells(a), cells(b)
    if left.keys() != right.keys():
        print(f"the tables differ in shape: {sorted(left.keys() ^ right.keys())[:5]}")
        return 1
    worst = {}
    for key, x in left.items():
        y = right[key]
        pairs = [(x["mean"], y["mean"])] + list(zip(x["per_category"], y["per_category"]))
        d = max((abs(p - q) for p, q in pairs if p is not None and q is not None), default=0.0)
        row = key[:2]
        worst[row] = max(worst.get(row, 0.0), d)
    for (protocol, method), d in sorted(worst.items()):
        print(f"{protocol:9} {method:28} max |Δ| = {d:.3g}")
    print(f"largest difference over every row: {max(worst.values()):.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
