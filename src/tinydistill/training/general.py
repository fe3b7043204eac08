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
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import nn
from tqdm.auto import tqdm
from transformers import AutoModel, PreTrainedModel, get_linear_schedule_with_warmup

from tinydistill import config as C
from tinydistill.corpus.dataset import BatchStream, PackedCorpus, Position
from tinydistill.corpus.pack import vocab_fingerprint
from tinydistill.errors import TinyDistillError
from tinydistill.losses import HiddenProjection
from tinydistill.mapping import layer_map, parse_layer_map
from tinydistill.models.capture import enable_capture, forward_reps
from tinydistill.models.load import (
    check_vocab,
    count_params,
    load_tokenizer,
    native_bf16,
    resolve_model_path,
    save_model,
    student_config,
)
from tinydistill.training.checkpoint import latest_checkpoint, load_checkpoint, rng_state, save_checkpoint
from tinydistill.training.checkpoint import set_rng_state as restore_rng
from tinydistill.training.loop import make_accelerator
from tinydistill.training.terms import Distiller

NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")


class Interrupted(TinyDistillError):
    """Training stopped by a signal after writing a checkpoint."""


def load_encoder(name: str) -> PreTrainedModel:
    """A pre-trained encoder without any head (``AutoModel``), frozen."""
    path = resolve_model_path(name)
    try:
        model = AutoModel.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise TinyDistillError(f"cannot load teacher '{name}': {str(exc).splitlines()[0]}") from exc
    return model.eval().requires_grad_(False)


def build_encoder_student(student: str, teacher: PreTrainedModel) -> PreTrainedModel:
    """Preset / config-only dir (random init) or weights dir -> a base encoder with the teacher's vocab."""
    cfg = student_config(student, teacher.config)
    if cfg is None:
        try:
            model = AutoModel.from_pretrained(resolve_model_path(student))
        except (OSError, ValueError) as exc:
            raise TinyDistillError(f"cannot load student '{student}': {str(exc).splitlines()[0]}") from exc
    else:
        model = AutoModel.from_config(cfg)
    check_vocab(teacher.config, model.config)
    return model


def teacher_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 for ``bf16``; for ``auto`` where the hardware multiplies bf16 natively; else None (fp32)."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    return torch.bfloat16 if native_bf16(device) else None


def prepare_teacher(teacher: PreTrainedModel, device: torch.device, dtype: torch.dtype | None) -> nn.Module:
    """Move the frozen teacher; with a low-precision ``dtype`` its Linear weights are stored in it once
    (the forward then runs under autocast, so LayerNorm and softmax stay in float32)."""
    teacher.to(device)
    if dtype is not None:
        for module in teacher.modules():
            if isinstance(module, nn.Linear):
                module.to(dtype)
    return enable_capture(teacher)


class GeneralStep:
    """One optimizer step: teacher forward (inference mode, scores of the mapped layers only) + student
    forward/backward + AdamW + schedule. Shared by :func:`general` and the throughput benchmark."""

    def __init__(
        self,
        accelerator: Accelerator,
        teacher: nn.Module,
        distiller: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        teacher_layers: list[int],
        dtype: torch.dtype | None = None,
        max_grad_norm: float = 1.0,
    ) -> None:
        self.acc, self.teacher, self.distiller = accelerator, teacher, distiller
        self.optimizer, self.scheduler = optimizer, scheduler
        self.layers = sorted(set(teacher_layers))
        self.dtype, self.max_grad_norm = dtype, max_grad_norm
        self.attentions = accelerator.unwrap_model(distiller).needs_attention

    def teacher_reps(self, batch: dict[str, torch.Tensor]):
        device = self.acc.device
        cast = torch.autocast(device.type, dtype=self.dtype) if self.dtype else nullcontext()
        with torch.inference_mode(), cast:
            # the embedding/hidden/attention losses only read these (never save them for backward),
            # which inference tensors allow
            return forward_reps(self.teacher, batch, attentions=self.attentions, layers=self.layers)

    def __call__(self, batch: dict[str, torch.Tensor]) -> tuple[float, dict[str, float]]:
        batch = {k: v.to(self.acc.device) for k, v in batch.items()}
        teacher = self.teacher_reps(batch)
        loss, parts = self.distiller(batch, teacher)
        if not torch.isfinite(loss):
            raise TinyDistillError(
                f"general distillation: loss is {loss.item()}; stopping (lower the learning rate)"
            )
        self.acc.backward(loss)
        if self.max_grad_norm:
            self.acc.clip_grad_norm_(self.distiller.parameters(), self.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.item(), parts


def make_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in params if not n.endswith(NO_DECAY)], "weight_decay": weight_decay},
        {"params": [p for n, p in params if n.endswith(NO_DECAY)], "weight_decay": 0.0},
    ]
    try:  # the fused kernel (CPU and CUDA, torch >= 2.4) is several times faster than the per-tensor loop
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # pragma: no cover - other devices / older torch
        return torch.optim.AdamW(groups, lr=lr)


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


def general(cfg: C.GeneralConfig) -> dict[str, Any]:
    """Run (or resume) general distillation; returns the summary also written to ``metrics.json``."""
    corpus = PackedCorpus(cfg.corpus)
    tokenizer = load_tokenizer(cfg.teacher)
    if corpus.manifest.get("vocab_sha256") != vocab_fingerprint(tokenizer):
        raise TinyDistillError(
            f"corpus/teacher vocab mismatch: {cfg.corpus} was tokenized with "
            f"'{corpus.manifest.get('tokenizer')}', not the tokenizer of teacher '{cfg.teacher}'"
        )
    output = Path(cfg.output)
    ckpt_root = output / "checkpoints"
    latest = latest_checkpoint(ckpt_root)
    if latest is not None and not cfg.resume:
        raise TinyDistillError(
            f"{output} already has checkpoints: pass --resume to continue, or a new --output"
        )
    if latest is not None:
        _check_resume(cfg, output)
    teacher = load_encoder(cfg.teacher)
    set_seed(cfg.seed)
    student = build_encoder_student(cfg.student, teacher)
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
    stream = BatchStream(corpus, cfg.batch_size, cfg.seed)
    total = cfg.max_steps or max(1, math.ceil(cfg.epochs * stream.batches_per_epoch))

    output.mkdir(parents=True, exist_ok=True)
    C.save(cfg, output / "config.yaml")
    acc = make_accelerator(cfg, output)
    optimizer = make_optimizer(distiller, cfg.learning_rate, cfg.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total), total)
    distiller, optimizer, scheduler = acc.prepare(distiller, optimizer, scheduler)
    dtype = teacher_dtype(cfg.teacher_precision, acc.device)
    teacher = prepare_teacher(teacher, acc.device, dtype)
    step_fn = GeneralStep(acc, teacher, distiller, optimizer, scheduler, layers, dtype, cfg.max_grad_norm)

    state: dict[str, Any] = {
        "step": 0,
        "position": Position().to_dict(),
        "losses": [],  # every step's loss
        "history": [],  # means over logging_steps
        "running": {},  # sums since the last history entry
        "seconds": 0.0,
    }
    if latest is not None:
        tensors, meta = load_checkpoint(latest)
        acc.unwrap_model(distiller).load_state_dict(tensors["model"])
        optimizer.load_state_dict(tensors["optimizer"])
        scheduler.load_state_dict(tensors["scheduler"])
        restore_rng(meta["rng"], tensors["rng"])
        state = meta["state"]
        tqdm.write(f"resuming from {latest} (step {state['step']} of {total})")

    def checkpoint() -> Path:
        rng = rng_state()
        tensors = {
            "model": acc.unwrap_model(distiller).state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": rng["torch"],
        }
        meta = {"state": state, "rng": rng["json"], "total_steps": total}
        return save_checkpoint(ckpt_root, state["step"], tensors, meta, cfg.keep_checkpoints)

    bar = tqdm(total=total, initial=state["step"], desc="general", dynamic_ncols=True, disable=None)
    start = time.time() - state["seconds"]
    distiller.train()
    with stop_on_signals() as stop:
        batches = stream.batches(Position.from_dict(state["position"]))
        while state["step"] < total:
            batch, position = next(batches)
            loss, parts = step_fn(batch)
            state["step"] += 1
            state["position"] = position.to_dict()
            state["losses"].append(loss)
            running = state["running"]
            for key, value in {"loss": loss, **parts}.items():
                running[key] = running.get(key, 0.0) + value
            bar.update(1)
            step = state["step"]
            if step % cfg.logging_steps == 0 or step == total:
                n = cfg.logging_steps if step % cfg.logging_steps == 0 else step % cfg.logging_steps
                means = {k: v / n for k, v in running.items()}
                means["lr"] = scheduler.get_last_lr()[0]
                acc.log({f"general/{k}": v for k, v in means.items()}, step=step)
                state["history"].append({"step": step, **means})
                bar.set_postfix(loss=f"{means['loss']:.4f}")
                state["running"] = {}
            state["seconds"] = round(time.time() - start, 3)
            if step % cfg.save_every == 0 or step == total or stop["signal"]:
                path = checkpoint()
            if stop["signal"] and step < total:
                bar.close()
                acc.end_training()
                raise Interrupted(
                    f"{stop['signal']}: stopped at step {step}; checkpoint {path}; "
                    "rerun with --resume to continue"
                )
    bar.close()
    acc.end_training()
    final = acc.unwrap_model(distiller).student
    save_model(final, tokenizer, output)
    summary = {
        "teacher": cfg.teacher,
        "student": cfg.student,
        "corpus": cfg.corpus,
        "layer_map": layers,
        "steps": state["step"],
        "total_steps": total,
        "batch_size": cfg.batch_size,
        "sequences_seen": state["step"] * cfg.batch_size,
        "corpus_sequences": len(corpus),
        "epochs_seen": round(state["step"] * cfg.batch_size / len(corpus), 4),
        "teacher_precision": str(dtype or torch.float32).replace("torch.", ""),
        "train_seconds": state["seconds"],
        "params": count_params(final),
        "teacher_params": count_params(teacher),
        "history": state["history"],
        "losses": state["losses"],
    }
    tmp = output / "metrics.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2))
    tmp.replace(output / "metrics.json")
    return summary
