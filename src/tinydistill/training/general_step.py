"""The general-distillation step and what it needs: frozen teacher, encoder student, AdamW.

Shared by :func:`tinydistill.training.general.general` and ``benchmarks/general_throughput.py``.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn
from transformers import AutoModel, PreTrainedModel

from tinydistill.errors import TinyDistillError
from tinydistill.models.capture import enable_capture, forward_reps
from tinydistill.models.load import LOAD_ERRORS, check_vocab, native_bf16, resolve_model_path, student_config

__all__ = [
    "GeneralLoss",
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
    except LOAD_ERRORS as exc:
        raise TinyDistillError(f"cannot load teacher '{name}': {str(exc).splitlines()[0]}") from exc
    return model.eval().requires_grad_(False)


def build_encoder_student(student: str, teacher: PreTrainedModel) -> PreTrainedModel:
    """Preset / config-only dir (random init) or weights dir -> a base encoder with the teacher's vocab."""
    cfg = student_config(student, teacher.config)
    if cfg is None:
        try:
            model = AutoModel.from_pretrained(resolve_model_path(student))
        except LOAD_ERRORS as exc:
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


class GeneralLoss:
    """The general-distillation loss of one batch: the teacher forward (inference mode, bf16 where
    chosen, scores of the mapped layers only) and the student's embedding / hidden / attention terms.
    It is the ``step_loss`` that :func:`tinydistill.training.loop.train` runs for ``tinydistill general``
    (and what ``benchmarks/general_throughput.py`` times inside that loop)."""

    def __init__(self, device: torch.device, teacher: nn.Module, teacher_layers: list[int], attentions: bool,
                 dtype: torch.dtype | None = None) -> None:  # fmt: skip
        self.device, self.teacher = device, teacher
        self.layers = sorted(set(teacher_layers))
        self.dtype, self.attentions = dtype, attentions

    def teacher_reps(self, batch: dict[str, torch.Tensor]):
        cast = torch.autocast(self.device.type, dtype=self.dtype) if self.dtype else nullcontext()
        with torch.inference_mode(), cast:
            # the embedding/hidden/attention losses only read these (never save them for backward),
            # which inference tensors allow
            return forward_reps(self.teacher, batch, attentions=self.attentions, layers=self.layers)

    def __call__(self, distiller: nn.Module, batch: dict[str, torch.Tensor], step: int):
        return distiller(batch, self.teacher_reps(batch))
