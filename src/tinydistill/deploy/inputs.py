"""Which token arrays a model takes: the one filter between tokenizer outputs and a model or ONNX graph.

A leaf module (no optional dependency, nothing from tinydistill), so training code may use it too.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
from torch import nn

TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
T = TypeVar("T")


def model_input_names(model: nn.Module) -> list[str]:
    """The :data:`TOKEN_INPUTS` that ``model.forward`` accepts (MPNet takes no token types)."""
    accepted = inspect.signature(model.forward).parameters
    return [k for k in TOKEN_INPUTS if k in accepted]


def model_inputs(model: nn.Module, batch: Mapping[str, T]) -> dict[str, T]:
    """The subset of ``batch`` that ``model.forward`` accepts (labels and extra keys dropped)."""
    return {k: batch[k] for k in model_input_names(model) if k in batch}


def feed(batch: Mapping[str, Any], names: Sequence[str]) -> dict[str, np.ndarray]:
    """The arrays named ``names`` as int64; missing ``token_type_ids`` become zeros."""
    out = {}
    for k in names:
        if k in batch:
            out[k] = np.asarray(batch[k], dtype=np.int64)
        elif k == "token_type_ids":
            out[k] = np.zeros_like(np.asarray(batch["input_ids"]), dtype=np.int64)
    return out
