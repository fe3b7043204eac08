"""GLUE metrics as plain floats (fractions, not percent)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from tinydistill.tasks.registry import TaskSpec

__all__ = ["compute_metrics"]


def _finite(value: Any) -> float:
    """Degenerate inputs (constant predictions) give nan in scipy: report no correlation instead."""
    value = float(value)
    return value if math.isfinite(value) else 0.0


def _corr(fn: Callable[..., Any], preds: np.ndarray, labels: np.ndarray) -> float:
    if len(preds) < 2 or np.ptp(preds) == 0 or np.ptp(labels) == 0:
        return 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _finite(fn(preds, labels)[0])


def compute_metrics(spec: TaskSpec, preds: Any, labels: Any) -> dict[str, float]:
    """Compute ``spec.metrics`` for predictions against gold labels.

    ``preds`` are class indices (2-D logits are arg-maxed) or floats for regression. ``f1`` is the
    binary F1 of class 1 (the positive class: MRPC, QQP, binary custom tasks); ``f1_macro`` the mean
    F1 over the classes present in ``labels`` (a class absent from the gold labels has no F1).
    """
    p = np.asarray(preds)
    y = np.asarray(labels)
    if spec.is_regression:
        p = p.astype(np.float64).reshape(-1)
        y = y.astype(np.float64).reshape(-1)
    else:
        if p.ndim == 2:
            p = p.argmax(axis=-1)
        p = p.astype(np.int64).reshape(-1)
        y = y.astype(np.int64).reshape(-1)
    if p.shape != y.shape:
        raise ValueError(f"{len(p)} predictions for {len(y)} labels")
    if len(y) == 0:
        raise ValueError("cannot compute metrics on zero examples")

    out: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns on single-class inputs; results are still defined
        for name in spec.metrics:
            if name == "accuracy":
                out[name] = _finite(accuracy_score(y, p))
            elif name == "mcc":
                out[name] = _finite(matthews_corrcoef(y, p))
            elif name == "f1":
                out[name] = _finite(f1_score(y, p, average="binary", pos_label=1, zero_division=0))
            elif name == "f1_macro":
                present = np.unique(y)
                out[name] = _finite(f1_score(y, p, labels=present, average="macro", zero_division=0))
            elif name == "pearson":
                out[name] = _corr(stats.pearsonr, p, y)
            elif name == "spearman":
                out[name] = _corr(stats.spearmanr, p, y)
            else:
                raise ValueError(f"unknown metric {name!r}")
    return out
