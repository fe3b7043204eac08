"""The one training loop, on accelerate: device placement, AMP, DDP come from the Accelerator.

The loop knows nothing about the method: it calls ``step_loss(model, batch)`` for a scalar
loss and a dict of parts to log, steps AdamW + a linear warmup/decay schedule from
transformers, evaluates every ``eval_every`` steps and asks ``save`` to keep the best.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from tinydistill.errors import TinyDistillError


def make_accelerator(cfg: Any, output: Path) -> Accelerator:
    """The one place that decides device and precision (bf16 autocast on GPUs that have it).

    ``cfg`` is a run-config dataclass: its ``mixed_precision`` (None = automatic) is used and its
    scalar fields go to TensorBoard (``output/logs``).
    """
    precision = cfg.mixed_precision
    if precision is None:
        precision = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    acc = Accelerator(mixed_precision=precision, log_with="tensorboard", project_dir=str(output))
    flat = {k: v for k, v in dataclasses.asdict(cfg).items() if isinstance(v, (int, float, str, bool))}
    acc.init_trackers("logs", config=flat)
    return acc


@dataclass
class LoopResult:
    steps: int
    best_score: float | None = None
    best_metrics: dict[str, float] | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)


def plan_steps(n_batches: int, epochs: float, max_steps: int | None) -> int:
    """Optimizer steps for ``epochs`` passes over ``n_batches``, capped by ``max_steps``."""
    steps = max(1, math.ceil(n_batches * epochs))
    return min(steps, max_steps) if max_steps else steps


def train(
    *,
    accelerator: Accelerator,
    model: nn.Module,
    loader: DataLoader,
    step_loss: Callable[[nn.Module, dict], tuple[torch.Tensor, dict[str, float]]],
    total_steps: int,
    lr: float,
    weight_decay: float = 0.01,
    warmup_ratio: float = 0.1,
    max_grad_norm: float = 1.0,
    eval_every: int | None = None,
    evaluate: Callable[[], tuple[float, dict[str, float]]] | None = None,
    save: Callable[[], None] | None = None,
    logging_steps: int = 20,
    name: str = "train",
) -> LoopResult:
    """Train ``model`` for ``total_steps``; returns the loss history and the best evaluation.

    With ``evaluate``, ``save`` runs whenever the score improves; without it, ``save`` runs once at the end.
    """
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in params if not n.endswith(no_decay)], "weight_decay": weight_decay},
        {"params": [p for n, p in params if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=lr)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(warmup_ratio * total_steps), total_steps)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)

    result = LoopResult(steps=0)
    bar = tqdm(
        total=total_steps, desc=name, disable=not accelerator.is_local_main_process, dynamic_ncols=True
    )
    running: dict[str, float] = {}
    count = 0
    model.train()
    while result.steps < total_steps:
        for batch in loader:
            loss, parts = step_loss(model, batch)
            if not torch.isfinite(loss):
                bar.close()
                raise TinyDistillError(
                    f"{name}: loss is {loss.item()} at step {result.steps + 1}; stopping "
                    "(lower the learning rate; checkpoints already written are kept)"
                )
            accelerator.backward(loss)
            if max_grad_norm:
                accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            result.steps += 1
            for key, value in {"loss": loss.item(), **parts}.items():
                running[key] = running.get(key, 0.0) + value
            count += 1
            bar.update(1)
            if result.steps % logging_steps == 0 or result.steps == total_steps:
                means = {k: v / count for k, v in running.items()}
                means["lr"] = scheduler.get_last_lr()[0]
                accelerator.log({f"{name}/{k}": v for k, v in means.items()}, step=result.steps)
                result.history.append({"step": result.steps, **means})
                bar.set_postfix(loss=f"{means['loss']:.4f}")
                running, count = {}, 0
            if evaluate and (result.steps % (eval_every or total_steps) == 0 or result.steps == total_steps):
                _evaluate(accelerator, model, evaluate, save, result, name)
            if result.steps >= total_steps:
                break
    bar.close()
    if save and not evaluate:
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            save()
    return result


def _evaluate(accelerator, model, evaluate, save, result: LoopResult, name: str) -> None:
    if result.evals and result.evals[-1]["step"] == result.steps:
        return
    model.eval()
    score, metrics = evaluate()
    model.train()
    accelerator.log({f"{name}/eval_{k}": v for k, v in metrics.items()}, step=result.steps)
    result.evals.append({"step": result.steps, **metrics})
    tqdm.write(f"[{name}] step {result.steps}: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    if result.best_score is None or score > result.best_score:
        result.best_score, result.best_metrics = score, dict(metrics)
        accelerator.wait_for_everyone()
        if save and accelerator.is_main_process:
            save()
