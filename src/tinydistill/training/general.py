"""General distillation (TinyBERT stage 1): a pre-trained teacher -> a general student on unlabeled text.

The student learns the teacher's embedding output, hidden states (through the projection ``W_h``) and
pre-softmax attention scores of the mapped layers (``embedding``, ``hidden``, ``attention`` terms of
:mod:`tinydistill.training.terms`; no prediction loss) on a corpus prepared by ``tinydistill corpus``.
AdamW + linear warm-up/decay (transformers), accelerate for device and student AMP.

Resume is exact: every ``save_every`` steps ``DIR/checkpoints/step-N/`` gets the student and
projection weights, optimizer, scheduler, the RNG states (Python, NumPy, torch, CUDA), the corpus
position (epoch, row) and the loss history; ``resume=True`` continues from the newest one with the
same batches and the same random numbers as an uninterrupted run. SIGINT/SIGTERM finish the current
step, write a checkpoint and stop. The output dir ends up a plain HF encoder (weights, config, the
teacher's tokenizer) that ``tinydistill distill --student DIR`` starts task distillation from.
"""

from __future__ import annotations

import dataclasses
import json
import math
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from tinydistill import config as C
from tinydistill.corpus.dataset import BatchStream, PackedCorpus, Position
from tinydistill.corpus.pack import vocab_fingerprint
from tinydistill.errors import TinyDistillError
from tinydistill.losses import HiddenProjection
from tinydistill.mapping import layer_map, parse_layer_map
from tinydistill.models.capture import enable_capture
from tinydistill.models.load import count_params, load_tokenizer, save_model
from tinydistill.training.checkpoint import latest_checkpoint, load_checkpoint, rng_state, save_checkpoint
from tinydistill.training.checkpoint import set_rng_state as restore_rng
from tinydistill.training.general_step import (
    GeneralStep,
    build_encoder_student,
    load_encoder,
    prepare_teacher,
    teacher_dtype,
)
from tinydistill.training.loop import make_accelerator
from tinydistill.training.optim import make_optimizer, make_scheduler
from tinydistill.training.terms import Distiller

__all__ = ["Interrupted", "general", "stop_on_signals"]


class Interrupted(TinyDistillError):
    """Training stopped by a signal after writing a checkpoint."""


@contextmanager
def stop_on_signals() -> Any:
    """SIGINT/SIGTERM set a flag (checked between steps) instead of killing the step half-way."""
    flag = {"signal": None}
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


def _check_resume(cfg: C.GeneralConfig, output: Path) -> None:
    saved = output / "config.yaml"
    if not saved.exists():
        return
    old = yaml.safe_load(saved.read_text()) or {}
    new = dataclasses.asdict(cfg)
    changed = [k for k in C.GENERAL_RUN_KEYS if k in old and old[k] != new[k]]
    if changed:
        raise TinyDistillError(
            f"--resume with different settings than the run in {output}: {', '.join(changed)} "
            "(use the same values, or a new --output)"
        )


@dataclass
class _Run:
    """Everything :func:`general` builds before the first step."""

    cfg: C.GeneralConfig
    corpus: PackedCorpus
    tokenizer: PreTrainedTokenizerBase
    output: Path
    latest: Path | None  # the checkpoint to resume from
    teacher: nn.Module
    layers: list[int]
    distiller: nn.Module
    stream: BatchStream
    total: int
    acc: Accelerator
    optimizer: torch.optim.Optimizer
    scheduler: Any
    dtype: torch.dtype | None  # the teacher's; None is float32
    step_fn: GeneralStep

    @property
    def ckpt_root(self) -> Path:
        return self.output / "checkpoints"


def general(cfg: C.GeneralConfig) -> dict[str, Any]:
    """Run (or resume) general distillation; returns the summary also written to ``metrics.json``."""
    run = _set_up(cfg)
    state = _fresh_state() if run.latest is None else _resume(run, run.latest)
    _train(run, state)
    return _finish(run, state)


def _open_corpus(cfg: C.GeneralConfig) -> tuple[PackedCorpus, PreTrainedTokenizerBase]:
    """The packed corpus and the teacher's tokenizer, refused unless the corpus used that vocab."""
    corpus = PackedCorpus(cfg.corpus)
    tokenizer = load_tokenizer(cfg.teacher)
    if corpus.manifest.get("vocab_sha256") != vocab_fingerprint(tokenizer):
        raise TinyDistillError(
            f"corpus/teacher vocab mismatch: {cfg.corpus} was tokenized with "
            f"'{corpus.manifest.get('tokenizer')}', not the tokenizer of teacher '{cfg.teacher}'"
        )
    return corpus, tokenizer


def _checkpoint_to_resume(cfg: C.GeneralConfig, output: Path) -> Path | None:
    """The newest checkpoint in ``output``: an error without ``resume`` or with changed settings."""
    latest = latest_checkpoint(output / "checkpoints")
    if latest is not None and not cfg.resume:
        raise TinyDistillError(
            f"{output} already has checkpoints: pass --resume to continue, or a new --output"
        )
    if latest is not None:
        _check_resume(cfg, output)
    return latest


def _make_distiller(
    cfg: C.GeneralConfig, student: PreTrainedModel, teacher: PreTrainedModel, corpus: PackedCorpus
) -> tuple[Distiller, list[int]]:
    """The student, a fresh ``W_h`` projection and the weighted terms; also the layer map."""
    n_s, n_t = student.config.num_hidden_layers, teacher.config.num_hidden_layers
    layers = layer_map(parse_layer_map(cfg.layer_map), n_s, n_t)
    weights = {k: float(v) for k, v in cfg.weights.items() if v}
    limit = min(student.config.max_position_embeddings, teacher.config.max_position_embeddings)
    if corpus.max_seq_length > limit:
        raise TinyDistillError(
            f"corpus sequences have {corpus.max_seq_length} tokens; the models accept {limit}"
        )
    if "attention" in weights:
        heads = (student.config.num_attention_heads, teacher.config.num_attention_heads)
        if heads[0] != heads[1]:
            raise TinyDistillError(
                f"the attention loss needs equal head counts: student has {heads[0]}, teacher {heads[1]}"
            )
        enable_capture(student)
    proj = HiddenProjection(
        student.config.hidden_size, teacher.config.hidden_size, n_s, shared=cfg.hidden_proj_shared
    )
    distiller = Distiller(student, proj, layers)
    distiller.set_terms(weights)
    return distiller, layers


def _set_up(cfg: C.GeneralConfig) -> _Run:
    """Check the inputs, build models, optimizer and schedule, and save ``config.yaml``.

    The student and ``W_h`` are initialised right after ``set_seed``, in this order, so a run's
    weights depend on the seed alone (a resume then loads weights and RNG states from its checkpoint).
    """
    corpus, tokenizer = _open_corpus(cfg)
    output = Path(cfg.output)
    latest = _checkpoint_to_resume(cfg, output)
    teacher = load_encoder(cfg.teacher)
    set_seed(cfg.seed)
    student = build_encoder_student(cfg.student, teacher)
    distiller, layers = _make_distiller(cfg, student, teacher, corpus)
    stream = BatchStream(corpus, cfg.batch_size, cfg.seed)
    total = cfg.max_steps or max(1, math.ceil(cfg.epochs * stream.batches_per_epoch))

    output.mkdir(parents=True, exist_ok=True)
    C.save(cfg, output / "config.yaml")
    acc = make_accelerator(cfg, output)
    optimizer = make_optimizer(cfg.optimizer, distiller, cfg.learning_rate, cfg.weight_decay)
    scheduler = make_scheduler(cfg.scheduler, optimizer, int(cfg.warmup_ratio * total), total)
    distiller, optimizer, scheduler = acc.prepare(distiller, optimizer, scheduler)
    dtype = teacher_dtype(cfg.teacher_precision, acc.device)
    teacher = prepare_teacher(teacher, acc.device, dtype)
    step_fn = GeneralStep(acc, teacher, distiller, optimizer, scheduler, layers, dtype, cfg.max_grad_norm)
    return _Run(
        cfg=cfg, corpus=corpus, tokenizer=tokenizer, output=output, latest=latest, teacher=teacher,
        layers=layers, distiller=distiller, stream=stream, total=total, acc=acc, optimizer=optimizer,
        scheduler=scheduler, dtype=dtype, step_fn=step_fn,
    )  # fmt: skip


def _fresh_state() -> dict[str, Any]:
    """The run's progress, saved in every checkpoint (JSON)."""
    return {
        "step": 0,
        "position": Position().to_dict(),
        "losses": [],  # every step's loss
        "history": [],  # means over logging_steps
        "running": {},  # sums since the last history entry
        "seconds": 0.0,
    }


def _resume(run: _Run, latest: Path) -> dict[str, Any]:
    """Load weights, optimizer, scheduler and RNG states from ``latest``; return its saved state."""
    tensors, meta = load_checkpoint(latest)
    run.acc.unwrap_model(run.distiller).load_state_dict(tensors["model"])
    run.optimizer.load_state_dict(tensors["optimizer"])
    run.scheduler.load_state_dict(tensors["scheduler"])
    restore_rng(meta["rng"], tensors["rng"])
    state = meta["state"]
    tqdm.write(f"resuming from {latest} (step {state['step']} of {run.total})")
    return state


def _checkpoint(run: _Run, state: dict[str, Any]) -> Path:
    """Write ``checkpoints/step-N/`` (keeping the newest ``keep_checkpoints``); return its path."""
    rng = rng_state()
    tensors = {
        "model": run.acc.unwrap_model(run.distiller).state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "rng": rng["torch"],
    }
    meta = {"state": state, "rng": rng["json"], "total_steps": run.total}
    return save_checkpoint(run.ckpt_root, state["step"], tensors, meta, run.cfg.keep_checkpoints)


def _record(
    run: _Run, state: dict[str, Any], position: Position, loss: float, parts: dict[str, float], bar: tqdm
) -> None:
    """Count one step in ``state``; every ``logging_steps`` (and at the end) log the means."""
    state["step"] += 1
    state["position"] = position.to_dict()
    state["losses"].append(loss)
    running = state["running"]
    for key, value in {"loss": loss, **parts}.items():
        running[key] = running.get(key, 0.0) + value
    bar.update(1)
    step, every = state["step"], run.cfg.logging_steps
    if step % every == 0 or step == run.total:
        n = every if step % every == 0 else step % every
        means = {k: v / n for k, v in running.items()}
        means["lr"] = run.scheduler.get_last_lr()[0]
        run.acc.log({f"general/{k}": v for k, v in means.items()}, step=step)
        state["history"].append({"step": step, **means})
        bar.set_postfix(loss=f"{means['loss']:.4f}")
        state["running"] = {}


def _train(run: _Run, state: dict[str, Any]) -> None:
    """Steps until ``total``, checkpointing every ``save_every``; a signal checkpoints and raises."""
    cfg, total = run.cfg, run.total
    bar = tqdm(total=total, initial=state["step"], desc="general", dynamic_ncols=True, disable=None)
    start = time.time() - state["seconds"]
    run.distiller.train()
    with stop_on_signals() as stop:
        batches = run.stream.batches(Position.from_dict(state["position"]))
        while state["step"] < total:
            batch, position = next(batches)
            loss, parts = run.step_fn(batch)
            _record(run, state, position, loss, parts, bar)
            step = state["step"]
            state["seconds"] = round(time.time() - start, 3)
            if step % cfg.save_every == 0 or step == total or stop["signal"]:
                path = _checkpoint(run, state)
            if stop["signal"] and step < total:
                bar.close()
                run.acc.end_training()
                raise Interrupted(
                    f"{stop['signal']}: stopped at step {step}; checkpoint {path}; "
                    "rerun with --resume to continue"
                )
    bar.close()
    run.acc.end_training()


def _finish(run: _Run, state: dict[str, Any]) -> dict[str, Any]:
    """Save the student as a plain HF encoder and write ``metrics.json``; return the summary."""
    cfg, corpus = run.cfg, run.corpus
    final = run.acc.unwrap_model(run.distiller).student
    save_model(final, run.tokenizer, run.output)
    summary = {
        "teacher": cfg.teacher,
        "student": cfg.student,
        "corpus": cfg.corpus,
        "layer_map": run.layers,
        "steps": state["step"],
        "total_steps": run.total,
        "batch_size": cfg.batch_size,
        "sequences_seen": state["step"] * cfg.batch_size,
        "corpus_sequences": len(corpus),
        "epochs_seen": round(state["step"] * cfg.batch_size / len(corpus), 4),
        "teacher_precision": str(run.dtype or torch.float32).replace("torch.", ""),
        "train_seconds": state["seconds"],
        "params": count_params(final),
        "teacher_params": count_params(run.teacher),
        "history": state["history"],
        "losses": state["losses"],
    }
    tmp = run.output / "metrics.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2))
    tmp.replace(run.output / "metrics.json")
    return summary
