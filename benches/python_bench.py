"""`cft.finetune` beside a plain PyTorch loop of the same algorithm, in one process and one run,
per category-epoch (the unit of CFT's work), and the call overhead of `cft.finetune`.

    python3 benches/python_bench.py [--device cpu|cuda] [--json out.json]

Data: synthetic features (n_train × d, n_valid × d, C categories, 10% of the training labels
known, all validation labels known), the same arrays for both sides.
- BP: the reference's full-batch step per category and epoch: logits of the known training rows,
  the summed ASL (γ− = 4, γ+ = 0, clip 0.05), backward, an Adam step, then the validation AP.
  PyTorch: one category at a time as the authors' loop does; `cft.finetune(method="bp-asl")`.
- GA: one generation per category and epoch: the population's logits as one batched product
  (known rows × d × population), every head's AP on the known training labels (a sort per
  head), the elite, crossover and mutation, then the validation AP of the best head.
  PyTorch: that generation written with torch ops; `cft.finetune(method="ga")`.
- Call overhead: `cft.finetune` on 20 × 4 features, one category, one epoch (median of 200).
Both sides run once on a small slice first, so one-time costs (CUDA's start, thread pools) stay
outside the timings.
Patience equals the epoch budget on both sides, so every category runs every epoch.
"""

import argparse
import json
import statistics
import time

import numpy as np
import torch

import cft


def ap_torch(scores, y):
    """Average precision of each column of `scores` (rows × heads) against boolean `y` (rows),
    scikit-learn's step definition (ties broken by sort order: timing only)."""
    order = torch.argsort(scores, dim=0, descending=True)
    hits = y[order].float()
    tp = torch.cumsum(hits, 0)
    precision = tp / torch.arange(1, len(y) + 1, device=scores.device).unsqueeze(1)
    return (precision * hits).sum(0) / hits.sum(0).clamp(min=1)


def asl(logits, y):
    p = torch.sigmoid(logits)
    p_neg = (p - 0.05).clamp(min=0)
    pos = y * torch.log(p.clamp(min=1e-8))
    neg = (1 - y) * torch.log((1 - p_neg).clamp(min=1e-8)) * p_neg.pow(4)
    return -(pos + neg).sum()


def torch_bp(xt, yt, xv, yv, w0, b0, epochs, lr):
    for k in range(w0.shape[0]):
        known = ~torch.isnan(yt[:, k])
        x, y = xt[known], yt[known, k]
        w = w0[k].clone().requires_grad_(True)
        b = b0[k : k + 1].clone().requires_grad_(True)
        opt = torch.optim.Adam([w, b], lr=lr)
        for _ in range(epochs):
            opt.zero_grad()
            asl(x @ w + b, y).backward()
            opt.step()
            with torch.no_grad():
                ap_torch((xv @ w + b).unsqueeze(1), yv[:, k] > 0.5)


def torch_ga(xt, yt, xv, yv, w0, b0, epochs, population=50, crossover=0.2, mutation_prob=0.5, mutation_range=0.001):
    g = torch.Generator(device=xt.device).manual_seed(0)
    for k in range(w0.shape[0]):
        known = ~torch.isnan(yt[:, k])
        x = torch.cat([xt[known], torch.ones(int(known.sum()), 1, device=xt.device)], 1)
        y = yt[known, k] > 0.5
        head = torch.cat([w0[k], b0[k : k + 1]])
        pop = head + mutation_range * (2 * torch.rand(population, head.numel(), generator=g, device=xt.device) - 1)
        for _ in range(epochs):
            fitness = ap_torch(x @ pop.T, y)
            elite = pop[torch.argmax(fitness)]
            parents = pop[torch.multinomial(torch.softmax(fitness, 0), 2 * population, replacement=True, generator=g)]
            mask = torch.rand(population, head.numel(), generator=g, device=xt.device) < crossover
            children = torch.where(mask, parents[:population], parents[population:])
            mutate = torch.rand(population, head.numel(), generator=g, device=xt.device) < mutation_prob
            noise = mutation_range * (2 * torch.rand(population, head.numel(), generator=g, device=xt.device) - 1)
            pop = torch.where(mutate, children + noise, children)
            pop[0] = elite
            ap_torch((xv @ elite[:-1] + elite[-1]).unsqueeze(1), yv[:, k] > 0.5)


def timed(fn, sync):
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--n-train", type=int, default=20000)
    p.add_argument("--n-valid", type=int, default=5000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--categories", type=int, default=16)
    p.add_argument("--bp-epochs", type=int, default=50)
    p.add_argument("--ga-epochs", type=int, default=20)
    p.add_argument("--json")
    a = p.parse_args()
    rng = np.random.default_rng(0)
    c, d = a.categories, a.dim
    xt = rng.normal(size=(a.n_train, d)).astype(np.float32)
    xv = rng.normal(size=(a.n_valid, d)).astype(np.float32)
    w_true = rng.normal(size=(c, d)).astype(np.float32) / np.sqrt(d)
    yt = (xt @ w_true.T + rng.normal(size=(a.n_train, c)) > 1.0).astype(np.float32)
    yv = (xv @ w_true.T + rng.normal(size=(a.n_valid, c)) > 1.0).astype(np.float32)
    yt[rng.random(yt.shape) > 0.1] = np.nan
    w0 = (0.5 * w_true + 0.01 * rng.normal(size=(c, d))).astype(np.float32)
    b0 = np.zeros(c, np.float32)
    dev = torch.device(a.device)
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    T = lambda v: torch.from_numpy(v).to(dev)
    # One-time costs stay outside the timings: CUDA's context, cuBLAS and kernel loads, and the
    # thread pools of both sides.
    warm = slice(0, 256)
    torch_bp(T(xt[warm]), T(yt[warm]), T(xv[warm]), T(yv[warm]), T(w0[:1]), T(b0[:1]), 2, 1e-3)
    torch_ga(T(xt[warm]), T(yt[warm]), T(xv[warm]), T(yv[warm]), T(w0[:1]), T(b0[:1]), 2)
    sync()
    for method in ["bp-asl", "ga"]:
        cft.finetune(xt[warm], yt[warm, :1], xv[warm], yv[warm, :1], w0[:1], b0[:1], method=method, max_epochs=2,
                     patience=2)
    rows = []
    for method, epochs in [("bp-asl", a.bp_epochs), ("ga", a.ga_epochs)]:
        ours = timed(lambda: cft.finetune(xt, yt, xv, yv, w0, b0, method=method, max_epochs=epochs, patience=epochs,
                                          lr=1e-3), lambda: None)
        if method == "bp-asl":
            theirs = timed(lambda: torch_bp(T(xt), T(yt), T(xv), T(yv), T(w0), T(b0), epochs, 1e-3), sync)
        else:
            theirs = timed(lambda: torch_ga(T(xt), T(yt), T(xv), T(yv), T(w0), T(b0), epochs), sync)
        per = c * epochs
        rows.append({"method": method, "category_epochs": per, "cft_ms": 1e3 * ours / per,
                     "torch_ms": 1e3 * theirs / per, "torch_device": a.device, "ratio": theirs / ours})
    tiny_x = rng.normal(size=(20, 4)).astype(np.float32)
    tiny_y = (tiny_x[:, :1] > 0).astype(np.float32)
    tiny_w = np.zeros((1, 4), np.float32)
    calls = []
    for _ in range(200):
        calls.append(timed(lambda: cft.finetune(tiny_x, tiny_y, tiny_x, tiny_y, tiny_w, method="bp-asl", max_epochs=1,
                                                patience=1), lambda: None))
    overhead_us = 1e6 * statistics.median(calls)
    print(f"data: train {a.n_train} × {d} (10% of labels known), valid {a.n_valid}, {c} categories; "
          f"torch {torch.__version__} on {a.device} ({torch.get_num_threads()} threads), cft {cft.__version__} on the CPU")
    print()
    print("| method | category-epochs | cft.finetune (ms per category-epoch) | PyTorch loop (ms) | PyTorch ÷ cft |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['method']} | {r['category_epochs']} | {r['cft_ms']:.3f} | {r['torch_ms']:.3f} | {r['ratio']:.2f}× |")
    print()
    print(f"call overhead of cft.finetune (20 × 4, 1 category, 1 epoch; median of 200): {overhead_us:.0f} µs")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"rows": rows, "call_overhead_us": overhead_us, "args": vars(a), "torch": torch.__version__}, f,
                      indent=1)


if __name__ == "__main__":
    main()
