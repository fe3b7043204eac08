"""The general-distillation step and what it needs: frozen teacher, encoder student, AdamW.

Shared by :func:`tinydistill.training.general.general` and ``benchmarks/general_throughput.py``.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch
from accelerate import Accelerator
from torch import nn
from transformers import AutoModel, PreTrainedModel

from tinydistill.errors import TinyDistillError
from tinydistill.models.capture import enable_capture, forward_reps
from tinydistill.models.load import check_vocab, native_bf16, resolve_model_path, student_config

__all__ = [
    "GeneralStep",
    "build_encoder_student",
    "load_encoder",
    "prepare_teacher",
    "teacher_dtype",
]


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
