"""The one training loop (finetune, every distill stage, general distillation), on accelerate.

The loop knows nothing about the method: it calls ``step_loss(model, batch, step)`` for a scalar
loss and a dict of parts to log, steps the configured optimizer and LR schedule
(:mod:`~tinydistill.training.optim`), evaluates every ``eval_every`` steps and asks ``save`` to keep
the best. What it owns:

* **Processes.** Every process takes its share of each *global* batch (:class:`~tinydistill.data.Batches`
  decides the rows of global batch k), so N processes run the steps, schedule and data of one process
  with the same global batch; gradients are averaged by DDP; the scheduler is stepped once per
  optimizer step; only the main process writes; a stop signal or a non-finite loss on any process
  stops all of them (one small all-reduce per step).
* **Checkpoints and resume.** Every ``save_every`` steps and on SIGINT/SIGTERM it writes
  ``checkpoints/step-N/`` atomically: model, optimizer, scheduler, every process's RNG states and the
  loop's own state (step, history, evaluations, best score); ``resume`` continues from one exactly
  (the data position is the step count). A newest checkpoint that cannot be read falls back to the
  previous one.
* **Gradient accumulation** (``grad_accum`` batches per optimizer step) and a stall warning when the
  loss has not moved after ``STALL_SHARE`` of the steps: the first sign of a collapsing student.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.state import AcceleratorState
from torch import nn
from tqdm.auto import tqdm

from tinydistill.errors import Interrupted, TinyDistillError
from tinydistill.models.load import native_bf16
from tinydistill.progress import progress_bar
from tinydistill.training import checkpoint as ckpt
from tinydistill.training.optim import make_optimizer, make_scheduler


def has_accelerator() -> bool:
    probe = getattr(torch, "accelerator", None)
    return bool(probe.is_available()) if probe is not None else torch.cuda.is_available()


def resolve_precision(precision: str | None, device: str) -> str:
    """``no`` / ``bf16`` / ``fp16``: the one given, the launcher's, or bf16 where it is native."""
    if precision is None:
        precision = os.environ.get("ACCELERATE_MIXED_PRECISION") or None
    if precision is None:
        precision = "bf16" if native_bf16(device) else "no"
    return precision


def make_accelerator(
    cfg: Any, output: Path, find_unused: bool = False, cpu: bool | None = None
) -> Accelerator:
    """The one place that decides device, precision and processes.

    On a machine without GPUs a ``torchrun`` / ``accelerate launch`` job is a gloo CPU job (no
    environment variable needed).

    ``cfg.mixed_precision`` None = ``$ACCELERATE_MIXED_PRECISION`` (set by ``accelerate launch
    --mixed_precision``) when set, else bf16 autocast where the device multiplies bf16 natively (a
    bf16 GPU, or a CPU with AVX512-BF16 / AMX: 2-4x faster training steps there) and fp32
    elsewhere. Weights and optimizer state stay fp32 either way.
    ``find_unused``: some trained parameters get no gradient in a phase (distillation stages).
    """
    on_cpu = not has_accelerator() if cpu is None else cpu
    precision = resolve_precision(getattr(cfg, "mixed_precision", None), "cpu" if on_cpu else "cuda")
    logger = getattr(cfg, "logger", "tensorboard")
    log_with = None if logger == "none" else logger
    handlers = [DistributedDataParallelKwargs(find_unused_parameters=True)] if find_unused else []
    # one process may run several runs in turn (Python API, pipeline): each has its own precision,
    # so the process-wide precision state is cleared (the distributed state is kept)
    AcceleratorState._reset_state()
    environ = dict(os.environ)
    try:
        acc = Accelerator(
            cpu=on_cpu,
            mixed_precision=precision,
            log_with=log_with,
            project_dir=str(output),
            kwargs_handlers=handlers,
        )
    except ValueError as exc:  # e.g. WORLD_SIZE set without a rendezvous
        # a failed start leaves no half-made state behind (RANK, LOCAL_RANK, ... are set by then)
        os.environ.clear()
        os.environ.update(environ)
        AcceleratorState._reset_state(reset_partial_state=True)
        raise TinyDistillError(
            f"cannot start the processes ({str(exc).splitlines()[0]}): launch several with "
            "torchrun --nproc_per_node N -m tinydistill ... (docs/processes-and-resume.md)"
        ) from None
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != acc.num_processes:
        raise TinyDistillError(
            f"the launcher started {launched} processes but the accelerator sees {acc.num_processes}: "
            "use torchrun --nproc_per_node N -m tinydistill ... (docs/processes-and-resume.md)"
        )
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
    resumed_from: int | None = None  # the step a resumed run started at
    seconds: float = 0.0  # training time, over all sessions of a resumed run
    losses: list[float] = field(default_factory=list)  # every step's loss


@dataclass
class Checkpointing:
    """Where and when the loop writes checkpoints, and which one it resumes from.

    ``offset`` numbers this loop's checkpoints after those of earlier stages (``step-(offset + k)``);
    ``meta`` is recorded in each (the caller's own state, e.g. finished stages); ``resume`` is a
    checkpoint this loop wrote (its ``name`` must match).
    """

    root: Path
    every: int | None = None
    keep: int = 2
    offset: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
    resume: Path | None = None
    at_end: bool = False  # also write one after the last step (general: a finished run resumes to itself)


def plan_steps(n_batches: int, epochs: float, max_steps: int | None) -> int:
    """Optimizer steps for ``epochs`` passes over ``n_batches``, capped by ``max_steps``."""
    steps = max(1, math.ceil(n_batches * epochs))
    return min(steps, max_steps) if max_steps else steps


@contextmanager
def stop_on_signals() -> Iterator[dict[str, str | None]]:
    """SIGINT/SIGTERM set a flag (checked between steps) instead of killing the step half-way."""
    flag: dict[str, str | None] = {"signal": None}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, _frame):
        flag["signal"] = signal.Signals(signum).name

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def shard(rows: np.ndarray, rank: int, world: int) -> np.ndarray:
    """This process's share of a global batch (contiguous; rows repeat when fewer than processes)."""
    if world == 1:
        return rows
    if len(rows) < world:
        rows = np.resize(rows, world)
    return np.array_split(rows, world)[rank]


def _to(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


class _State:
    """The loop's own progress, saved in every checkpoint (JSON) next to the tensors."""

    def __init__(self, total: int, logging_steps: int, name: str) -> None:
        self.result = LoopResult(steps=0)
        self.running: dict[str, float] = {}
        self.count = 0
        self.seconds = 0.0
        self.best_state: dict | None = None
        self.stall = _StallWatch(total, logging_steps, name)

    def to_json(self) -> dict[str, Any]:
        r = self.result
        return {
            "step": r.steps, "history": r.history, "evals": r.evals, "best_score": r.best_score,
            "best_metrics": r.best_metrics, "best_step": r.best_step, "best_state": self.best_state,
            "stalled": r.stalled, "running": self.running, "count": self.count, "seconds": self.seconds,
            "stall": self.stall.to_json(), "losses": r.losses,
        }  # fmt: skip

    def load(self, data: dict[str, Any], restore_eval: Callable[[dict], Any] | None) -> None:
        r = self.result
        r.steps, r.history, r.evals = data["step"], data["history"], data["evals"]
        r.best_score, r.best_metrics, r.best_step = (
            data["best_score"],
            data["best_metrics"],
            data["best_step"],
        )
        r.stalled, r.resumed_from, r.losses = data["stalled"], data["step"], data["losses"]
        self.best_state = data["best_state"]
        if self.best_state is not None and restore_eval is not None:
            r.best_eval = restore_eval(self.best_state)
        elif r.best_metrics is not None:
            r.best_eval = (r.best_score, r.best_metrics)
        self.running, self.count, self.seconds = data["running"], data["count"], data["seconds"]
        self.stall.load(data["stall"])


@dataclass
class _Parts:
    """What one ``train`` call works with."""

    acc: Accelerator
    model: nn.Module
    optimizer: Any
    scheduler: Any
    name: str


def train(
    *,
    accelerator: Accelerator,
    model: nn.Module,
    batches: Any,
    step_loss: Callable[[nn.Module, dict, int], tuple[torch.Tensor, dict[str, float]]],
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
    grad_accum: int = 1,
    checkpoint: Checkpointing | None = None,
    restore_eval: Callable[[dict], Any] | None = None,
    progress: bool = True,
) -> LoopResult:
    """Train ``model`` for ``total_steps`` optimizer steps over ``batches``; returns history and best eval.

    ``batches`` gives the rows of global batch k (``rows(start)``) and turns rows into tensors
    (``collate``), e.g. :class:`~tinydistill.data.Batches`. ``step_loss(model, batch, step)`` gets the
    0-based optimizer step. ``evaluate`` returns ``(score, metrics)`` or an Evaluation (``score``,
    ``flat``, ``line()``, ``state()``); with it, ``save`` runs whenever the score improves, without it
    once at the end. A stop signal writes a checkpoint (when ``checkpoint`` is set) and raises
    :class:`~tinydistill.errors.Interrupted`.
    """
    optimizer = make_optimizer(optimizer_name, model, lr, weight_decay)
    # not prepared: accelerate would step it once per process per optimizer step
    scheduler = make_scheduler(scheduler_name, optimizer, int(warmup_ratio * total_steps), total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    run = _Parts(accelerator, model, optimizer, scheduler, name)
    state = _State(total_steps, logging_steps, name)
    if checkpoint is not None and checkpoint.resume is not None:
        _resume(run, state, checkpoint.resume, restore_eval)
    rank, world = accelerator.process_index, accelerator.num_processes
    rows = batches.rows(state.result.steps * grad_accum)
    bar = progress_bar(total_steps, name, initial=state.result.steps, min_gap_s=0,
                       disable=not (progress and accelerator.is_local_main_process))  # fmt: skip
    began = time.time() - state.seconds
    model.train()
    with stop_on_signals() as stop:
        while state.result.steps < total_steps:
            step = state.result.steps
            try:
                loss, parts, signal_name = _step(
                    run, batches, rows, step_loss, step, grad_accum, max_grad_norm, rank, world, stop
                )
            except TinyDistillError:
                bar.close()
                raise
            scheduler.step()
            _record(run, state, loss, parts, total_steps, logging_steps, bar)
            state.seconds = round(time.time() - began, 3)
            done = state.result.steps
            if evaluate and (done % (eval_every or total_steps) == 0 or done == total_steps):
                _evaluate(run, evaluate, save, state)
            if checkpoint is not None and (signal_name or _due(checkpoint, done, total_steps)):
                path = _save(run, state, checkpoint)
            if signal_name:
                bar.close()
                where = f"checkpoint {path}" if checkpoint is not None else "no checkpoint (none configured)"
                raise Interrupted(
                    f"{signal_name}: stopped {name} at step {done}; {where}; rerun with --resume"
                )
    bar.close()
    state.result.seconds = state.seconds
    if save and not evaluate:
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            save()
    return state.result


def _due(checkpoint: Checkpointing, done: int, total: int) -> bool:
    if done == total:
        return checkpoint.at_end
    return bool(checkpoint.every) and done % checkpoint.every == 0


def _step(run: _Parts, batches, rows, step_loss, step, grad_accum, max_grad_norm, rank, world, stop):
    """One optimizer step over ``grad_accum`` global batches (gradients synced on the last one only).

    Returns the mean loss, the mean parts and the stop signal all processes agreed on. A non-finite
    loss on any process raises before its backward: the weights stay as they were.
    """
    total, parts_sum, agreed = None, {}, None
    for micro in range(grad_accum):
        batch = _to(batches.collate(shard(next(rows), rank, world)), run.acc.device)
        sync = micro == grad_accum - 1
        with nullcontext() if sync else run.acc.no_sync(run.model):
            loss, parts = step_loss(run.model, batch, step)
            agreed = _agree(run.acc, stop["signal"], loss) or agreed
            if agreed == "nonfinite":
                raise TinyDistillError(
                    f"{run.name}: loss is {loss.item()} at step {step + 1}; stopping "
                    "(lower the learning rate; checkpoints already written are kept)"
                )
            run.acc.backward(loss / grad_accum)
        total = loss.detach() if total is None else total + loss.detach()
        for k, v in parts.items():
            parts_sum[k] = parts_sum.get(k, 0.0) + v / grad_accum
    if max_grad_norm:
        run.acc.clip_grad_norm_(run.model.parameters(), max_grad_norm)
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    return total / grad_accum, parts_sum, agreed


def _agree(acc: Accelerator, signal_name: str | None, loss: torch.Tensor) -> str | None:
    """The stop reason every process agrees on: 'nonfinite', a signal name, or None."""
    flags = torch.tensor([float(not torch.isfinite(loss)), float(signal_name is not None)], device=acc.device)
    if acc.num_processes > 1:
        torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
    if flags[0] > 0:
        return "nonfinite"
    if flags[1] > 0:
        return signal_name or "SIGTERM"
    return None


def _record(run: _Parts, state: _State, loss, parts, total: int, logging_steps: int, bar) -> None:
    result = state.result
    result.steps += 1
    loss_value = loss.item()
    result.losses.append(loss_value)
    for key, value in {"loss": loss_value, **parts}.items():
        state.running[key] = state.running.get(key, 0.0) + value
    result.stalled |= state.stall.update(result.steps, loss_value)
    state.count += 1
    if result.steps % logging_steps == 0 or result.steps == total:
        means = {k: v / state.count for k, v in state.running.items()}
        if run.acc.num_processes > 1:  # the mean over processes = over the global batch
            values = run.acc.reduce(torch.tensor(list(means.values()), device=run.acc.device), "mean")
            means = dict(zip(means, values.tolist(), strict=True))
        means["lr"] = run.scheduler.get_last_lr()[0]
        run.acc.log({f"{run.name}/{k}": v for k, v in means.items()}, step=result.steps)
        result.history.append({"step": result.steps, **means})
        state.running, state.count = {}, 0
        bar.set_postfix(loss=f"{means['loss']:.4f}", lr=f"{means['lr']:.2e}")
    else:  # the mean loss of the logging window so far (shown without redrawing a bar)
        mean = state.running["loss"] / state.count
        bar.set_postfix(loss=f"{mean:.4f}", lr=f"{run.scheduler.get_last_lr()[0]:.2e}", refresh=False)
    bar.update(1)


def _evaluate(run: _Parts, evaluate, save, state: _State) -> None:
    result = state.result
    if result.evals and result.evals[-1]["step"] == result.steps:
        return
    run.model.eval()
    out = evaluate()
    run.model.train()
    if isinstance(out, tuple):
        score, metrics = out
        line = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items())
    else:
        score, metrics, line = out.score, out.flat, out.line()
    run.acc.log({f"{run.name}/eval_{k}": v for k, v in metrics.items()}, step=result.steps)
    result.evals.append({"step": result.steps, **metrics})
    if run.acc.is_local_main_process:
        tqdm.write(f"[{run.name}] step {result.steps}: {line}")
    if result.best_score is None or score > result.best_score:
        result.best_score, result.best_metrics = score, dict(metrics)
        result.best_step, result.best_eval = result.steps, out
        state.best_state = out.state() if hasattr(out, "state") else None
        run.acc.wait_for_everyone()
        if save and run.acc.is_main_process:
            save()
        run.acc.wait_for_everyone()


def _save(run: _Parts, state: _State, checkpoint: Checkpointing) -> Path:
    """Write ``step-N``: every process its RNG states, the main one the tensors and the loop state."""
    acc = run.acc
    step = checkpoint.offset + state.result.steps
    tmp = ckpt.begin(checkpoint.root, step) if acc.is_main_process else ckpt.temp_dir(checkpoint.root, step)
    acc.wait_for_everyone()
    ckpt.save_rng(tmp, acc.process_index)
    acc.wait_for_everyone()
    final = checkpoint.root / f"step-{step}"
    if acc.is_main_process:
        tensors = {
            "model": acc.unwrap_model(run.model).state_dict(),
            "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(),
        }
        meta = {"name": run.name, "loop": state.to_json(), "world_size": acc.num_processes, **checkpoint.meta}
        ckpt.commit(tmp, final, tensors, meta, checkpoint.keep)
    acc.wait_for_everyone()
    return final


def _resume(run: _Parts, state: _State, path: Path, restore_eval) -> None:
    tensors, meta = ckpt.load_checkpoint(path)
    if meta.get("name") != run.name:
        raise TinyDistillError(f"checkpoint {path} belongs to '{meta.get('name')}', not '{run.name}'")
    if meta.get("world_size", 1) != run.acc.num_processes:
        raise TinyDistillError(
            f"checkpoint {path} was written by {meta.get('world_size')} processes; resume with as many "
            f"(this run has {run.acc.num_processes}) for an exact continuation"
        )
    run.acc.unwrap_model(run.model).load_state_dict(tensors["model"])
    run.optimizer.load_state_dict(tensors["optimizer"])
    run.scheduler.load_state_dict(tensors["scheduler"])
    ckpt.load_rng(path, run.acc.process_index)
    state.load(meta["loop"], restore_eval)
    if run.acc.is_local_main_process:
        tqdm.write(f"resuming {run.name} from {path} (step {state.result.steps})")


class _StallWatch:
    """Compares the mean loss of the latest window with the first window's, once, at STALL_SHARE."""

    def __init__(self, total_steps: int, logging_steps: int, name: str) -> None:
        self.window = max(1, min(logging_steps, total_steps // 10))
        self.check_at = max(2 * self.window, math.ceil(STALL_SHARE * total_steps))
        self.active = total_steps >= STALL_MIN_STEPS and self.check_at <= total_steps
        self.name, self.total = name, total_steps
        self.first: list[float] = []
        self.recent: deque[float] = deque(maxlen=self.window)

    def to_json(self) -> dict[str, Any]:
        return {"active": self.active, "first": self.first, "recent": list(self.recent)}

    def load(self, data: dict[str, Any]) -> None:
        self.active, self.first = data["active"], data["first"]
        self.recent = deque(data["recent"], maxlen=self.window)

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
            f"({step}/{self.total}): the model may be collapsing to a constant prediction (or it started"
            " already trained on this task)",
            file=sys.stderr,
        )
        return True
