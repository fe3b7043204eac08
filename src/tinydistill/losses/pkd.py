"""BERT-PKD patient loss (Sun et al., EMNLP 2019: "Patient Knowledge Distillation for BERT Model
Compression").

The student also learns from the teacher's intermediate [CLS] states, each normalised to unit length::

    L_PT = sum_{j in J} mean_i || W h^S_{i,j} / ||W h^S_{i,j}||_2  -  h^T_{i,I(j)} / ||h^T_{i,I(j)}||_2 ||_2^2

with ``h_{i,j}`` the [CLS] hidden state of sample i at layer j and ``I(j)`` the layer map. The paper's
full objective is ``(1 - alpha) * L_CE + alpha * L_DS + beta * L_PT`` (``L_DS``: soft cross-entropy at
temperature T, *without* a T^2 factor); the ``pkd`` recipe builds it from the ``hard_ce``,
``soft_ce`` and ``pkd`` terms. Here the paper's sum over samples is a mean (so ``beta`` does not
depend on the batch size); the sum over layers is kept.

``layers: intermediate`` (default, as in the paper) uses student layers 1..M-1, since the last layer
is already distilled through the prediction layer: with the uniform ("PKD-Skip") map a 6-layer
student of a 12-layer teacher learns from teacher layers {2, 4, 6, 8, 10}. ``layers: all`` adds
layer M. ``W`` is the identity when student and teacher have the same width (the paper's setting),
else one learnable ``nn.Linear(d_student, d_teacher)`` shared by all layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tinydistill.errors import TinyDistillError
from tinydistill.losses.common import require
from tinydistill.losses.reps import Reps
from tinydistill.losses.tinybert import HiddenProjection

LAYER_CHOICES = ("intermediate", "all")


def patient_loss(s_cls: Sequence[torch.Tensor], t_cls: Sequence[torch.Tensor]) -> torch.Tensor:
    """Sum over layers of the batch mean of ``||s/||s|| - t/||t|| ||^2`` for (B, D) [CLS] states."""
    if len(s_cls) != len(t_cls) or not s_cls:
        raise TinyDistillError(f"patient loss: {len(s_cls)} student vs {len(t_cls)} teacher layers")
    total = torch.zeros((), device=s_cls[0].device)
    for s, t in zip(s_cls, t_cls, strict=True):
        diff = F.normalize(s.float(), dim=-1, eps=1e-8) - F.normalize(t.float(), dim=-1, eps=1e-8)
        total = total + diff.pow(2).sum(-1).mean()
    return total


@dataclass
class PKDOptions:
    layers: str = "intermediate"

    def check(self) -> None:
        require(
            self.layers in LAYER_CHOICES,
            f"pkd layers must be one of {', '.join(LAYER_CHOICES)}, got '{self.layers}'",
        )


class PatientLoss(nn.Module):
    """The ``pkd`` term: patient loss on mapped [CLS] states, through ``W`` when widths differ."""

    def __init__(self, opts: PKDOptions, d_student: int, d_teacher: int, n_layers: int) -> None:
        super().__init__()
        if opts.layers == "intermediate" and n_layers < 2:
            raise TinyDistillError(
                "pkd (layers: intermediate) needs a student with >= 2 layers; use layers: all"
            )
        self.opts = opts
        self.proj = HiddenProjection(d_student, d_teacher, n_layers, shared=True, identity_if_equal=True)

    @classmethod
    def build(cls, opts: PKDOptions, d_student: int, d_teacher: int, n_layers: int) -> PatientLoss:
        return cls(opts, d_student, d_teacher, n_layers)

    def student_layers(self, layers: list[int]) -> list[int]:
        """Student layers (1-based) that take part: 1..M-1 or 1..M."""
        last = len(layers) if self.opts.layers == "all" else len(layers) - 1
        return list(range(1, last + 1))

    def forward(self, s: Reps, t: Reps, layers: list[int]) -> torch.Tensor:
        picked = self.student_layers(layers)
        s_cls = [self.proj(s.hidden[m][:, 0], m) for m in picked]
        t_cls = [t.hidden[layers[m - 1]][:, 0] for m in picked]
        return patient_loss(s_cls, t_cls)
