"""Type stubs of the native module ``cft._cft`` (the Rust engine). Call it through the ``cft``
package, which converts torch tensors and other dtypes first; these stubs let editors and mypy
check those calls."""

from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

_F32 = npt.NDArray[np.float32]
_Progress = Optional[Callable[[int, int], None]]

def version() -> str: ...
def finetune(
    train_features: _F32,
    train_labels: _F32,
    valid_features: _F32,
    valid_labels: _F32,
    weight: _F32,
    bias: Optional[_F32] = None,
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
    progress: _Progress = None,
) -> dict[str, Any]: ...
def train_head(
    features: _F32,
    labels: _F32,
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
    progress: _Progress = None,
) -> dict[str, Any]: ...
def evaluate(
    scores_or_features: Union[_F32, npt.NDArray[np.float64]],
    labels: _F32,
    *,
    metric: str = "ap",
    weight: Optional[_F32] = None,
    bias: Optional[_F32] = None,
) -> tuple[list[Optional[float]], Optional[float]]: ...
def drop_labels(labels: _F32, proportion: float, seed: int = 526) -> _F32: ...
def run(
    spec_path: str,
    *,
    out: Optional[str] = None,
    datasets_dir: Optional[str] = None,
    resume: bool = False,
    engine: Optional[str] = None,
    device: Optional[str] = None,
    gemm_precision: Optional[str] = None,
    progress: _Progress = None,
) -> dict[str, Any]: ...
