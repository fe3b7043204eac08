"""Optimizer and LR schedule by name (a recipe's ``optimizer`` / ``scheduler``), shared by every trainer.

Weight decay skips biases and norm weights (as in BERT). AdamW uses torch's fused kernel where
it exists (several times faster on CPU and CUDA than the per-tensor loop). Schedules come from
``transformers.get_scheduler``: linear warm-up over ``warmup_steps``, then the named decay.
"""

from __future__ import annotations

import torch
from torch import nn

from tinydistill.errors import TinyDistillError

NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [
        {"params": [p for n, p in params if not n.endswith(NO_DECAY)], "weight_decay": weight_decay},
        {"params": [p for n, p in params if n.endswith(NO_DECAY)], "weight_decay": 0.0},
    ]


def make_optimizer(name: str, model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    groups = param_groups(model, weight_decay)
    if name in ("adamw", "adam"):
        cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
        try:
            return cls(groups, lr=lr, fused=True)
        except (RuntimeError, TypeError, ValueError):  # pragma: no cover - devices without the fused kernel
            return cls(groups, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9)
    if name == "adafactor":
        from transformers.optimization import Adafactor

        return Adafactor(groups, lr=lr, scale_parameter=False, relative_step=False, warmup_init=False)
    raise TinyDistillError(f"unknown optimizer '{name}' (adamw, adam, sgd, adafactor)")


def make_scheduler(
    name: str, optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    from transformers import get_scheduler

    try:
        return get_scheduler(name, optimizer, num_warmup_steps=warmup_steps, num_training_steps=total_steps)
    except ValueError as exc:
        raise TinyDistillError(f"scheduler '{name}': {str(exc).splitlines()[0]}") from None
