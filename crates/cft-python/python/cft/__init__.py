"""Category-wise Fine-Tuning (CFT) in process: the workspace's Rust engine on numpy arrays and
torch tensors, with the same numbers as the ``cft`` command.

Labels use the reference encoding: 1 positive, 0 negative, -1 uncertain, NaN unknown.
Features and heads may be numpy arrays or CPU torch tensors of any float dtype (float32 and
C-contiguous memory is handed over as it is; float16, bfloat16 and float64 are converted to
float32 first). Results come back as numpy arrays, or torch tensors when the inputs were torch
tensors.

    import cft
    result = cft.finetune(train_x, train_y, valid_x, valid_y, model.fc.weight, model.fc.bias,
                          method="ga", max_epochs=500, patience=50)
    model.fc.load_state_dict(result.state_dict())
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np

from . import _cft

__all__ = ["finetune", "train_head", "evaluate", "drop_labels", "run", "FineTuneResult", "__version__"]
__version__ = _cft.version()


def _is_torch(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def _f32(x: Any, *, labels: bool = False) -> Any:
    """Float32, C-contiguous numpy view of ``x``: no copy when it already is one (numpy arrays
    and CPU torch tensors alike); other float dtypes (and, for labels, integers and booleans)
    are converted. Anything else goes through unchanged for the engine to refuse by name."""
    if _is_torch(x):
        import torch

        x = x.detach()
        if x.device.type != "cpu":
            x = x.cpu()
        if x.dtype in (torch.float16, torch.bfloat16, torch.float64) or (labels and not x.is_floating_point()):
            x = x.to(torch.float32)
        x = x.numpy()
    if isinstance(x, np.ndarray):
        if x.dtype != np.float32 and (x.dtype.kind == "f" or (labels and x.dtype.kind in "iub")):
            x = x.astype(np.float32)
        if x.dtype == np.float32 and not x.flags.c_contiguous:
            x = np.ascontiguousarray(x)
    return x


def _like(template: Any, array: np.ndarray) -> Any:
    """``array`` as a torch tensor when ``template`` is one, else as it is."""
    if _is_torch(template):
        import torch

        return torch.from_numpy(array)
    return array


def _frame(rows: list, otherwise: Any) -> Any:
    """``rows`` (a list of dicts) as a polars or pandas frame when one is installed, else
    ``otherwise``."""
    for module in ("polars", "pandas"):
        try:
            lib = __import__(module)
        except ImportError:
            continue
        return lib.DataFrame(rows)
    return otherwise


def _progress(progress: Any) -> Optional[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callable, or a tqdm bar (anything with ``update``)."""
    if progress is None or not hasattr(progress, "update"):
        return progress
    bar = progress

    def report(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return report


@dataclass
class FineTuneResult:
    """What :func:`finetune` returns: the fine-tuned head and one outcome per category."""

    weight: Any
    """``[C, d]`` weights (numpy, or torch when the inputs were torch tensors)."""
    bias: Any
    """``[C]`` biases."""
    outcomes: list = field(default_factory=list)
    """Per category: ``category``, ``skipped`` (the reason, or None), ``best_epoch`` (-1: the
    original head was kept), ``epochs_run``, ``original_score``, ``best_score``,
    ``train_known``, ``valid_known``, ``seconds``."""

    def state_dict(self) -> dict:
        """``{"weight", "bias"}``, ready for ``nn.Linear.load_state_dict``."""
        return {"weight": self.weight, "bias": self.bias}

    def table(self) -> Any:
        """The outcomes as a polars or pandas frame when one is installed, else the list."""
        return _frame(self.outcomes, self.outcomes)


def finetune(
    train_features: Any,
    train_labels: Any,
    valid_features: Any,
    valid_labels: Any,
    weight: Any,
    bias: Any = None,
    *,
    method: str = "bp-asl",
    metric: str = "ap",
    max_epochs: int = 5000,
    patience: int = 300,
    lr: float = 1e-4,
    seed: int = 0,
    engine: str = "auto",
    threads: Optional[int] = None,
    categories: Optional[Sequence[int]] = None,
    progress: Any = None,
) -> FineTuneResult:
    """Fine-tunes each category's logistic regression (a row of ``weight`` and its ``bias``)
    on the known training labels, keeping the epoch with the best validation ``metric``; as
    ``cft finetune --engine batched`` with the same settings, bit for bit.

    ``method``: ``"bp-asl"`` (Adam on the asymmetric loss), ``"bp-bce"`` or ``"ga"`` (the
    genetic algorithm, which maximises the metric directly). ``categories``: only these
    (others keep their weights). ``progress``: ``progress(done, total)`` in category-epochs,
    or a tqdm bar. The GIL is released while it runs; Ctrl-C stops it between two epochs with
    ``KeyboardInterrupt``.
    """
    out = _cft.finetune(
        _f32(train_features),
        _f32(train_labels, labels=True),
        _f32(valid_features),
        _f32(valid_labels, labels=True),
        _f32(weight),
        None if bias is None else _f32(bias),
        method=method,
        metric=metric,
        max_epochs=max_epochs,
        patience=patience,
        lr=lr,
        seed=seed,
        engine=engine,
        threads=threads,
        categories=None if categories is None else [int(c) for c in categories],
        progress=_progress(progress),
    )
    return FineTuneResult(_like(weight, out["weight"]), _like(weight, out["bias"]), out["outcomes"])


def train_head(
    features: Any,
    labels: Any,
    *,
    mode: str = "an",
    epochs: int = 300,
    lr: float = 1e-2,
    weight_decay: float = 1e-4,
    threads: Optional[int] = None,
) -> dict:
    """A base head on partial labels: ``mode="an"`` (unknown → negative) or ``"ignore"``
    (unknown labels left out of the loss); full-batch Adam, the workspace's recipe. Returns
    ``{"weight", "bias"}`` (a ``load_state_dict``-ready dict)."""
    out = _cft.train_head(
        _f32(features), _f32(labels, labels=True), mode=mode, epochs=epochs, lr=lr, weight_decay=weight_decay,
        threads=threads,
    )
    return {"weight": _like(features, out["weight"]), "bias": _like(features, out["bias"])}


def evaluate(scores_or_features: Any, labels: Any, *, metric: str = "ap", head: Any = None) -> dict:
    """Per-category AP or ROC-AUC on the known labels (scikit-learn's definitions; None where a
    category lacks a known positive or negative) and their mean. ``head``: a ``{"weight",
    "bias"}`` dict (or an ``nn.Linear``) to score features with; without it, the first
    argument holds the scores. float64 scores are ranked as float64."""
    weight = bias = None
    if head is not None:
        weight, bias = (head["weight"], head.get("bias")) if isinstance(head, dict) else (head.weight, head.bias)
    x = scores_or_features
    if head is None and _is_torch(x) and str(x.dtype) == "torch.float64":
        x = x.detach().cpu().numpy()
    if head is None and isinstance(x, np.ndarray) and x.dtype == np.float64:
        x = np.ascontiguousarray(x)
    else:
        x = _f32(x)
    per, mean = _cft.evaluate(
        x,
        _f32(labels, labels=True),
        metric=metric,
        weight=None if weight is None else _f32(weight),
        bias=None if bias is None else _f32(bias),
    )
    return {"per_category": per, "mean": mean}


def drop_labels(labels: Any, proportion: float, seed: int = 526) -> Any:
    """The reference's label masks: each known label kept with probability ``proportion``
    (the authors' seeded draw, seed 526 by default); dropped labels become NaN."""
    return _like(labels, _cft.drop_labels(_f32(labels, labels=True), float(proportion), seed))


def run(spec_path: str, *, out: Optional[str] = None, datasets_dir: Optional[str] = None, resume: bool = False,
        engine: Optional[str] = None, progress: Any = None, frame: bool = True) -> Any:
    """Runs an experiment spec (single or grid) as ``cft run`` does, on the CPU engine, writing
    its reports. A single spec returns its results (``results.json`` as a dict, or its rows as
    a polars/pandas frame when ``frame`` and one is installed); a grid returns its folder."""
    done = _cft.run(str(spec_path), out=out, datasets_dir=datasets_dir, resume=resume, engine=engine,
                    progress=_progress(progress))
    if done.get("results_json") is None:
        return done
    results = json.loads(done["results_json"])
    results["dir"] = done["dir"]
    if frame:
        return _frame([
            {"protocol": r["protocol"], "method": r["method"], "proportion": c["proportion"], "mean": c["mean"]}
            for r in results["rows"]
            for c in r["cells"]
        ], results)
    return results
