"""candle ÷ torchvision images/s from the JSON lines the two benchmarks wrote in the same run
(`cft bench-backbone --json`, `benches/torchvision_bench.py network`), as a Markdown table.

    python3 benches/ratios.py --candle candle.jsonl [--candle cudnn=candle_cudnn.jsonl] \
        --torchvision torchvision.jsonl --title "..." --out ratios.md

Pairs: candle f32 ↔ torchvision strict fp32 (TF32 off; on the CPU plain fp32), candle f32 with
--tf32 ↔ torchvision fp32 with TF32 (its CUDA default), candle bf16 ↔ torchvision bf16 autocast.
Where a run has no strict-fp32 torchvision line (older runs), candle f32 is compared with TF32
and the row says so. Several lines of one configuration are averaged."""
import argparse
import json
import statistics
from collections import defaultdict

# Older torchvision_bench.py runs named the modes differently.
MODE = {"fp32_tf32": "fp32", "bf16_autocast": "bf16"}


def lines(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--candle", action="append", required=True, help="[label=]file.jsonl")
    p.add_argument("--torchvision", required=True)
    p.add_argument("--title", default="candle vs torchvision, images/s")
    p.add_argument("--out")
    a = p.parse_args()
    tv = defaultdict(list)
    device = "cpu"
    for d in lines(a.torchvision):
        if d.get("what", "network") != "network" or d.get("channels_last"):
            continue
        mode = MODE.get(d["mode"], d["mode"])
        device = d.get("device", "cuda")
        tv[(d["backbone"], d["image_size"], d["batch"], mode)].append(d["images_per_second"])
    rows = []
    for spec in a.candle:
        label, path = spec.split("=", 1) if "=" in spec else ("candle", spec)
        got = defaultdict(list)
        for d in lines(path):
            prec = d["precision"].lower() + ("+tf32" if d.get("tf32") else "")
            got[(d["backbone"], d["image_size"], d["batch"], prec)].append(d["images_per_second"])
        for (b, s, n, prec), v in got.items():
            cpu = device == "cpu"
            want = {"f32": "fp32" if cpu else "fp32-strict", "f32+tf32": "fp32", "bf16": "bf16", "f16": "fp16"}[prec]
            note = ""
            if (b, s, n, want) not in tv and want == "fp32-strict":
                want, note = "fp32", " (torchvision with TF32)"
            t = tv.get((b, s, n, want))
            c = statistics.mean(v)
            rows.append((b, s, n, f"{label} {prec}", c, f"{want}{note}", statistics.mean(t) if t else None))
    out = [f"{a.title}", "", "| backbone | size | batch | ours | images/s | torchvision | images/s | ours ÷ torchvision |",
           "|---|---:|---:|---|---:|---|---:|---:|"]
    for b, s, n, ours, c, mode, t in rows:
        ratio = f"{c / t:.2f}" if t else "—"
        fmt = lambda x: f"{x:,.2f}" if x < 10 else f"{x:,.1f}"
        tvs = fmt(t) if t else "not measured"
        out.append(f"| {b} | {s} | {n} | {ours} | {fmt(c)} | {mode} | {tvs} | {ratio} |")
    text = "\n".join(out) + "\n"
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    print(text, end="")


if __name__ == "__main__":
    main()
