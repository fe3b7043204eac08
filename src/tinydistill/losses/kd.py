"""Hinton et al. (2015) knowledge distillation: soft targets at temperature T mixed with the gold labels.

Classification, with student logits ``z_s``, teacher logits ``z_t`` and gold label ``y``::

    L = alpha * T^2 * CE(softmax(z_t / T), z_s / T) + (1 - alpha) * CE(y, z_s)

where ``CE(p, z) = -sum_c p_c log softmax(z)_c`` (the soft cross-entropy; it differs from
``KL(p || softmax(z))`` by the teacher's entropy, a constant, so the gradients are the same). The
``T^2`` factor keeps the soft-target gradients on the scale of the hard ones (Hinton et al., Sec. 2).

Regression (one output)::

    L = alpha * MSE(z_s, z_t) + (1 - alpha) * MSE(z_s, y)

With ``alpha = 1`` no labels are needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tinydistill.errors import TinyDistillError
from tinydistill.losses.common import require
from tinydistill.losses.tinybert import regression_prediction_loss, soft_cross_entropy


@dataclass
class KDOptions:
    """``temperature`` None: the run's ``temperature`` setting; ``alpha``: weight of the soft targets."""

    temperature: float | None = None
    alpha: float = 0.5

    def check(self) -> None:
        require(
            self.temperature is None or float(self.temperature) > 0,
            f"kd temperature must be positive, got {self.temperature}",
        )
        require(0.0 <= float(self.alpha) <= 1.0, f"kd alpha must be in [0, 1], got {self.alpha}")


def hinton_kd(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor | None,
    temperature: float,
    alpha: float,
    is_regression: bool = False,
) -> torch.Tensor:
    """``alpha * T^2 * soft-CE at T + (1 - alpha) * hard CE`` (MSE to teacher / gold for regression)."""
    if is_regression:
        soft = regression_prediction_loss(student_logits, teacher_logits)
    else:
        soft = temperature**2 * soft_cross_entropy(student_logits, teacher_logits, temperature)
    if alpha >= 1.0:
        return soft
    if labels is None:
        raise TinyDistillError("kd with alpha < 1 needs labelled training data (or set alpha: 1)")
    if is_regression:
        hard = F.mse_loss(student_logits.float().reshape(-1), labels.float().reshape(-1))
    else:
        hard = F.cross_entropy(student_logits.float(), labels)
    return alpha * soft + (1.0 - alpha) * hard
