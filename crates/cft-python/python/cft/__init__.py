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
    """Whether ``x`` is a torch tensor (not a module or anything else from torch)."""
    if type(x).__module__.split(".")[0] != "torch":
        return False
    import torch

    return isinstance(x, torch.Tensor)


def _f32(x: Any, name: str = "array", *, labels: bool = False) -> Any:
    """Float32, C-contiguous numpy view of ``x``: no copy when it already is one (numpy arrays
    and CPU torch tensors alike); other float dtypes (and, for labels, integers and booleans)
    are converted. Tensors without data here (meta, sparse) are refused naming ``name``;
    anything else goes through unchanged for the engine to refuse by name."""
    if _is_torch(x):
        import torch

        if x.layout != torch.strided:
            raise TypeError(f"{name}: a {x.layout} tensor; expected a dense tensor (call .to_dense() first)")
        if x.device.type == "meta":
            raise TypeError(f"{name}: a tensor on the meta device holds no values")
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


def _categories(categories: Any) -> Optional[list]:
    """The category indices as given (the engine refuses non-integers and an empty list by
    name); booleans are refused here, as Python counts them as integers."""
    if categories is None:
        return None
    out = list(categories)
    for c in out:
        if isinstance(c, (bool, np.bool_)):
            raise TypeError(f"categories: {c!r} is a boolean; expected category indices")
    return [int(c) if isinstance(c, np.integer) else c for c in out]


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
    """A ``progress(done, total)`` callable, or a tqdm bar (anything with ``update``); anything
    else is refused before the work starts."""
    if progress is None:
        return None
    if not hasattr(progress, "update"):
        if not callable(progress):
            raise TypeError(f"progress: expected a callable progress(done, total) or a tqdm bar, got {type(progress).__name__}")
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
    ga_elite_ties: str = "first",
    engine: str = "auto",
    device: str = "cpu",
    gemm_precision: str = "f32",
    threads: Optional[int] = None,
    categories: Optional[Sequence[int]] = None,
    progress: Any = None,
) -> FineTuneResult:
    """Fine-tunes each category's logistic regression (a row of ``weight`` and its ``bias``)
    on the known training labels, keeping the epoch with the best validation ``metric``; as
    ``cft finetune`` with the same settings, bit for bit.

    ``method``: ``"bp-asl"`` (Adam on the asymmetric loss), ``"bp-bce"`` or ``"ga"`` (the
    genetic algorithm, which maximises the metric directly); ``ga_elite_ties``: ``"first"`` or
    ``"torch-cpu"`` (the CFT authors' CPU tie order). ``engine``: ``"auto"``, ``"batched"``,
    ``"per-category"`` (the CPU engines give the same numbers) or ``"cuda"`` (a CUDA build, on
    ``device="cuda:N"`` with ``gemm_precision``). ``categories``: only these (others keep
    their weights). ``progress``: ``progress(done, total)`` in category-epochs, or a tqdm bar.
    The GIL is released while it runs; Ctrl-C stops it between two epochs with
    ``KeyboardInterrupt``.
    """
    out = _cft.finetune(
        _f32(train_features, "train_features"),
        _f32(train_labels, "train_labels", labels=True),
        _f32(valid_features, "valid_features"),
        _f32(valid_labels, "valid_labels", labels=True),
        _f32(weight, "weight"),
        None if bias is None else _f32(bias, "bias"),
        method=method,
        metric=metric,
        max_epochs=max_epochs,
        patience=patience,
        lr=lr,
        seed=seed,
        ga_elite_ties=ga_elite_ties,
        engine=engine,
        device=device,
        gemm_precision=gemm_precision,
        threads=threads,
        categories=_categories(categories),
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
    init: Optional[str] = None,
    ls_coef: Optional[float] = None,
    expected_positives: Optional[float] = None,
    estimator_lr_mult: Optional[float] = None,
    role_init: str = "fixed",
    role_seed: int = 0,
    alpha: Optional[float] = None,
    beta: Optional[float] = None,
    neg_proportion: Optional[float] = None,
    warmup_epoch: Optional[int] = None,
    delta_rel: Optional[float] = None,
    threads: Optional[int] = None,
    progress: Any = None,
) -> dict:
    """A base head on partial labels with full-batch Adam: ``mode="an"`` (unknown → negative),
    ``"ignore"`` (unknown labels left out of the loss), or one of the field's partial-label
    losses, ``"an-ls"``, ``"wan"``, ``"epr"``, ``"role"`` (Cole et al. 2021), ``"em"``,
    ``"em-apl"`` (Zhou et al. 2022), ``"ll-r"``, ``"ll-ct"``, ``"ll-cp"`` (Kim et al. 2022),
    with their parameters as ``cft train-head``'s flags (unset: the defaults). ``init``:
    ``"zeros"`` or ``"prior"`` (default: prior for an and ignore, zeros otherwise). Returns
    ``{"weight", "bias"}`` (a ``load_state_dict``-ready dict) and the trainer's ``notes``.
    Ctrl-C stops it between two epochs with ``KeyboardInterrupt``."""
    out = _cft.train_head(
        _f32(features, "features"), _f32(labels, "labels", labels=True), mode=mode, epochs=epochs, lr=lr,
        weight_decay=weight_decay, init=init, ls_coef=ls_coef, expected_positives=expected_positives,
        estimator_lr_mult=estimator_lr_mult, role_init=role_init, role_seed=role_seed, alpha=alpha, beta=beta,
        neg_proportion=neg_proportion, warmup_epoch=warmup_epoch, delta_rel=delta_rel, threads=threads,
        progress=_progress(progress),
    )
    return {"weight": _like(features, out["weight"]), "bias": _like(features, out["bias"]), "notes": out["notes"]}


def evaluate(scores_or_features: Any, labels: Any, *, metric: str = "ap", head: Any = None) -> dict:
    """Per-category AP or ROC-AUC on the known labels (scikit-learn's definitions; None where a
    category lacks a known positive or negative) and their mean. ``head``: a ``{"weight",
    "bias"}`` dict (or an ``nn.Linear``) to score features with; without it, the first
    argument holds the scores. float64 scores are ranked as float64."""
    weight = bias = None
    if head is not None:
        if isinstance(head, dict):
            if "weight" not in head:
                raise TypeError("head: a dict without a \"weight\" entry; expected {\"weight\", \"bias\"} or an nn.Linear")
            weight, bias = head["weight"], head.get("bias")
        elif hasattr(head, "weight"):
            weight, bias = head.weight, getattr(head, "bias", None)
        else:
            raise TypeError(f"head: expected a {{\"weight\", \"bias\"}} dict or an nn.Linear, got {type(head).__name__}")
    x = scores_or_features
    if head is None and _is_torch(x) and str(x.dtype) == "torch.float64":
        x = x.detach().cpu().numpy()
    if head is None and isinstance(x, np.ndarray) and x.dtype == np.float64:
        x = np.ascontiguousarray(x)
    else:
        x = _f32(x, "scores_or_features")
    per, mean = _cft.evaluate(
        x,
        _f32(labels, "labels", labels=True),
        metric=metric,
        weight=None if weight is None else _f32(weight, "head.weight"),
        bias=None if bias is None else _f32(bias, "head.bias"),
    )
    return {"per_category": per, "mean": mean}


def drop_labels(labels: Any, proportion: float, seed: int = 526) -> Any:
    """The reference's label masks: each known label kept with probability ``proportion``
    (the authors' seeded draw, seed 526 by default); dropped labels become NaN."""
    return _like(labels, _cft.drop_labels(_f32(labels, "labels", labels=True), float(proportion), seed))


def run(spec_path: str, *, out: Optional[str] = None, datasets_dir: Optional[str] = None, resume: bool = False,
        engine: Optional[str] = None, device: Optional[str] = None, gemm_precision: Optional[str] = None,
        progress: Any = None, frame: bool = True) -> Any:
    """Runs an experiment spec (single or grid) as ``cft run`` does, writing its reports; the
    engine, device and GEMM precision override the spec's, as the command's flags do, and the
    bundled datasets are found where the command finds them. A single spec returns its results
    (``results.json`` as a dict, or its rows as a polars/pandas frame when ``frame`` and one is
    installed); a grid returns its folder. Ctrl-C stops it between epochs, units and cells."""
    done = _cft.run(str(spec_path), out=out, datasets_dir=datasets_dir, resume=resume, engine=engine, device=device,
                    gemm_precision=gemm_precision, progress=_progress(progress))
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
