"""The one training loop, on accelerate: device placement, AMP, DDP come from the Accelerator.

The loop knows nothing about the method: it calls ``step_loss(model, batch)`` for a scalar
loss and a dict of parts to log, steps the configured optimizer and LR schedule
(:mod:`~tinydistill.training.optim`), evaluates every ``eval_every`` steps and asks ``save`` to keep the best.
It warns once when the loss has not moved from its starting value after ``STALL_SHARE`` of the
steps: the first sign of a student collapsing to a constant prediction.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from tinydistill.errors import TinyDistillError
from tinydistill.training.optim import make_optimizer, make_scheduler


def make_accelerator(cfg: Any, output: Path) -> Accelerator:
    """The one place that decides device and precision (bf16 autocast on GPUs that have it).

    ``cfg`` is a run-config dataclass: its ``mixed_precision`` (None = automatic) is used and its
    scalar fields go to TensorBoard (``output/logs``).
    """
    precision = cfg.mixed_precision
    if precision is None:
        precision = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    logger = getattr(cfg, "logger", "tensorboard")
    log_with = None if logger == "none" else logger
    acc = Accelerator(mixed_precision=precision, log_with=log_with, project_dir=str(output))
    if log_with:
        flat = {k: v for k, v in dataclasses.asdict(cfg).items() if isinstance(v, (int, float, str, bool))}
        acc.init_trackers("logs", config=flat)
    return acc


# Stall warning: after this share of the steps, a mean loss within STALL_TOLERANCE (relative) of
# the mean of the first logging window means nothing is being learnt (runs of STALL_MIN_STEPS or more).
STALL_SHARE = 0.25
STALL_TOLERANCE = 0.01
STALL_MIN_STEPS = 20


@dataclass
class LoopResult:
    steps: int
    best_score: float | None = None
    best_metrics: dict[str, float] | None = None
    best_step: int | None = None
    best_eval: Any = None  # what ``evaluate`` returned for the best step (an Evaluation, or a tuple)
    stalled: bool = False
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
    evaluate: Callable[[], Any] | None = None,
    save: Callable[[], None] | None = None,
    logging_steps: int = 20,
    name: str = "train",
    optimizer_name: str = "adamw",
    scheduler_name: str = "linear",
) -> LoopResult:
    """Train ``model`` for ``total_steps``; returns the loss history and the best evaluation.

    ``evaluate`` returns ``(score, metrics)`` or an object with ``score``, ``flat`` (metrics) and
    ``line()`` (an :class:`~tinydistill.evaluation.Evaluation`). With ``evaluate``, ``save`` runs
    whenever the score improves; without it, ``save`` runs once at the end.
    """
    optimizer = make_optimizer(optimizer_name, model, lr, weight_decay)
    scheduler = make_scheduler(scheduler_name, optimizer, int(warmup_ratio * total_steps), total_steps)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)

    result = LoopResult(steps=0)
    bar = tqdm(
        total=total_steps, desc=name, disable=not accelerator.is_local_main_process, dynamic_ncols=True
    )
    running: dict[str, float] = {}
    count = 0
    stall = _StallWatch(total_steps, logging_steps, name)
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
            loss_value = loss.item()
            for key, value in {"loss": loss_value, **parts}.items():
                running[key] = running.get(key, 0.0) + value
            result.stalled |= stall.update(result.steps, loss_value)
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


class _StallWatch:
    """Compares the mean loss of the latest window with the first window's, once, at STALL_SHARE."""

    def __init__(self, total_steps: int, logging_steps: int, name: str) -> None:
        self.window = max(1, min(logging_steps, total_steps // 10))
        self.check_at = max(2 * self.window, math.ceil(STALL_SHARE * total_steps))
        self.active = total_steps >= STALL_MIN_STEPS and self.check_at <= total_steps
        self.name, self.total = name, total_steps
        self.first: list[float] = []
        self.recent: deque[float] = deque(maxlen=self.window)

    def update(self, step: int, loss: float) -> bool:
        """Feed the loss of 1-based ``step``; True (and a warning on stderr) when it stalled."""
        if not self.active:
            return False
        if step <= self.window:
            self.first.append(loss)
        self.recent.append(loss)
        if step != self.check_at:
            return False
        self.active = False
        start, now = sum(self.first) / len(self.first), sum(self.recent) / len(self.recent)
        if abs(now - start) > STALL_TOLERANCE * max(abs(start), 1e-8):
            return False
        tqdm.write(
            f"warning: {self.name}: the loss has not moved from its starting value ({start:.4f} -> "
            f"{now:.4f}, under {100 * STALL_TOLERANCE:g}%) after {100 * STALL_SHARE:g}% of the steps "
            f"({step}/{self.total}): the model may be collapsing to a constant prediction",
            file=sys.stderr,
        )
        return True


def _evaluate(accelerator, model, evaluate, save, result: LoopResult, name: str) -> None:
    if result.evals and result.evals[-1]["step"] == result.steps:
        return
    model.eval()
    out = evaluate()
    model.train()
    if isinstance(out, tuple):
        score, metrics = out
        line = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items())
    else:
        score, metrics, line = out.score, out.flat, out.line()
    accelerator.log({f"{name}/eval_{k}": v for k, v in metrics.items()}, step=result.steps)
    result.evals.append({"step": result.steps, **metrics})
    tqdm.write(f"[{name}] step {result.steps}: {line}")
    if result.best_score is None or score > result.best_score:
        result.best_score, result.best_metrics = score, dict(metrics)
        result.best_step, result.best_eval = result.steps, out
        accelerator.wait_for_everyone()
        if save and accelerator.is_main_process:
            save()
