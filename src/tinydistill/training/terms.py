"""Loss terms over two :class:`Reps`, and the module that sums them for the training loop.

A distillation method is a weighted list of named terms; the trainer never knows which method
it runs. Adding a loss = one function here (or in its own module) + one ``LOSS_TERMS`` entry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tinydistill.errors import TinyDistillError
from tinydistill.losses import HiddenProjection, Reps, attention_loss, embedding_loss, hidden_loss
from tinydistill.losses import prediction_loss as _prediction_loss
from tinydistill.models.capture import forward_reps


@dataclass
class TermContext:
    layers: list[int]  # teacher layer g(m) for student layers m = 1..M
    proj: HiddenProjection | None
    temperature: float
    is_regression: bool
    labels: torch.Tensor | None


def embedding_term(s: Reps, t: Reps, ctx: TermContext) -> torch.Tensor:
    return embedding_loss(s.hidden[0], t.hidden[0], ctx.proj, s.attention_mask)


def hidden_term(s: Reps, t: Reps, ctx: TermContext) -> torch.Tensor:
    teacher = [t.hidden[n] for n in ctx.layers]
    return hidden_loss(
        s.hidden[1:], teacher, ctx.proj, s.attention_mask, indices=range(1, len(ctx.layers) + 1)
    )


def attention_term(s: Reps, t: Reps, ctx: TermContext) -> torch.Tensor:
    return attention_loss(s.attn_scores, [t.attn_scores[n - 1] for n in ctx.layers], s.attention_mask)


def prediction_term(s: Reps, t: Reps, ctx: TermContext) -> torch.Tensor:
    return _prediction_loss(s.logits, t.logits, ctx.temperature, ctx.is_regression)


def hard_term(s: Reps, t: Reps, ctx: TermContext) -> torch.Tensor:
    """Cross-entropy (MSE for regression) against the gold labels."""
    if ctx.labels is None:
        raise TinyDistillError("the hard-label loss needs labelled training data")
    if ctx.is_regression:
        return F.mse_loss(s.logits.float().reshape(-1), ctx.labels.float().reshape(-1))
    return F.cross_entropy(s.logits.float(), ctx.labels)


LossFn = Callable[[Reps, Reps, TermContext], torch.Tensor]
LOSS_TERMS: dict[str, LossFn] = {
    "embedding": embedding_term,
    "hidden": hidden_term,
    "attention": attention_term,
    "prediction": prediction_term,
    "hard": hard_term,
}
NEEDS_ATTENTION = {"attention"}
NEEDS_PROJECTION = {"embedding", "hidden"}


class Distiller(nn.Module):
    """Student + learnable projections; ``forward`` returns the weighted loss of the active terms."""

    def __init__(
        self,
        student: nn.Module,
        proj: HiddenProjection | None,
        layers: list[int],
        temperature: float = 1.0,
        is_regression: bool = False,
    ) -> None:
        super().__init__()
        self.student = student
        self.proj = proj
        self.layers = layers
        self.temperature = temperature
        self.is_regression = is_regression
        self.weights: dict[str, float] = {}

    def set_terms(self, weights: Mapping[str, float]) -> None:
        unknown = sorted(set(weights) - set(LOSS_TERMS))
        if unknown:
            raise TinyDistillError(
                f"unknown loss term(s): {', '.join(unknown)} (known: {', '.join(LOSS_TERMS)})"
            )
        active = {k: float(w) for k, w in weights.items() if w}
        if not active:
            raise TinyDistillError("no loss term has a non-zero weight")
        if set(active) & NEEDS_PROJECTION and self.proj is None:
            raise TinyDistillError("hidden/embedding losses need a projection")
        self.weights = active

    @property
    def needs_attention(self) -> bool:
        return bool(set(self.weights) & NEEDS_ATTENTION)

    def forward(
        self, batch: Mapping[str, torch.Tensor], teacher: Reps
    ) -> tuple[torch.Tensor, dict[str, float]]:
        student = forward_reps(self.student, batch, attentions=self.needs_attention)
        ctx = TermContext(self.layers, self.proj, self.temperature, self.is_regression, batch.get("labels"))
        total = torch.zeros((), device=student.hidden[0].device)
        parts: dict[str, float] = {}
        for name, weight in self.weights.items():
            value = LOSS_TERMS[name](student, teacher, ctx)
            parts[name] = value.item()
            total = total + weight * value
        return total, parts


@torch.no_grad()
def teacher_reps(teacher: nn.Module, batch: Mapping[str, torch.Tensor], attentions: bool) -> Reps:
    return forward_reps(teacher, batch, attentions=attentions)
