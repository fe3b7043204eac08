"""Loss terms over two :class:`Reps`, and the module that sums them for the training loop.

A distillation method is a weighted list of named terms; the trainer never knows which method it
runs. Adding a loss = one module under ``losses/`` + one ``LOSS_TERMS`` entry (a function
``(student Reps, teacher Reps, TermContext) -> scalar``), plus a ``TERM_INFO`` entry when the term
has options (``term_options.<name>`` in a recipe) or learnable state (an ``nn.Module`` built from the
options and owned by the :class:`Distiller`, so the optimizer trains it and accelerate places it).

Terms: ``embedding``, ``hidden``, ``attention``, ``prediction`` (= ``soft_ce``) and ``hard``
(= ``hard_ce``) from TinyBERT; ``kd`` (Hinton), ``cos_nce`` (LRC-BERT), ``pkd`` (BERT-PKD patient
loss) and ``crd`` (CRD).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tinydistill.errors import TinyDistillError
from tinydistill.losses import HiddenProjection, Reps, attention_loss, embedding_loss, hidden_loss
from tinydistill.losses import prediction_loss as _prediction_loss
from tinydistill.losses.common import fingerprints, parse_options
from tinydistill.losses.crd import CRDLoss, CRDOptions
from tinydistill.losses.kd import KDOptions, hinton_kd
from tinydistill.losses.lrc import CosNCE, CosNCEOptions
from tinydistill.losses.pkd import PatientLoss, PKDOptions
from tinydistill.models.capture import forward_reps
from tinydistill.training.perturb import embedding_module, perturbed_loss
from tinydistill.training.schedule import Schedule


@dataclass
class TermContext:
    layers: list[int]  # teacher layer g(m) for student layers m = 1..M
    proj: HiddenProjection | None
    temperature: float
    is_regression: bool
    labels: torch.Tensor | None
    options: Mapping[str, Any] = field(default_factory=dict)  # parsed options per term name
    modules: Mapping[str, nn.Module] = field(default_factory=dict)  # learnable state per term name
    sample_ids: torch.Tensor | None = None  # (B,) fingerprints of the token sequences
    update_state: bool = True  # whether memory banks take this batch in


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
    """Soft cross-entropy at the run's temperature (no T^2); MSE to the teacher for regression."""
    return _prediction_loss(s.logits, t.logits, ctx.temperature, ctx.is_regression)


def hard_term(s: Reps, t: Reps, ctx: TermContext) -> torch.Tensor:
    """Cross-entropy (MSE for regression) against the gold labels."""
    if ctx.labels is None:
        raise TinyDistillError("the hard-label loss needs labelled training data")
    if ctx.is_regression:
        return F.mse_loss(s.logits.float().reshape(-1), ctx.labels.float().reshape(-1))
    return F.cross_entropy(s.logits.float(), ctx.labels)


def kd_term(s: Reps, t: Reps, ctx: TermContext) -> torch.Tensor:
    opts: KDOptions = ctx.options.get("kd") or KDOptions()
    temperature = float(opts.temperature) if opts.temperature is not None else ctx.temperature
    return hinton_kd(s.logits, t.logits, ctx.labels, temperature, float(opts.alpha), ctx.is_regression)


def cos_nce_term(s: Reps, t: Reps, ctx: TermContext) -> torch.Tensor:
    return ctx.modules["cos_nce"](s, t, ctx.layers, ctx.sample_ids, ctx.update_state)


def pkd_term(s: Reps, t: Reps, ctx: TermContext) -> torch.Tensor:
    return ctx.modules["pkd"](s, t, ctx.layers)


def crd_term(s: Reps, t: Reps, ctx: TermContext) -> torch.Tensor:
    return ctx.modules["crd"](s, t, ctx.sample_ids, ctx.update_state)


LossFn = Callable[[Reps, Reps, TermContext], torch.Tensor]
LOSS_TERMS: dict[str, LossFn] = {
    "embedding": embedding_term,
    "hidden": hidden_term,
    "attention": attention_term,
    "prediction": prediction_term,
    "hard": hard_term,
    "soft_ce": prediction_term,
    "hard_ce": hard_term,
    "kd": kd_term,
    "cos_nce": cos_nce_term,
    "pkd": pkd_term,
    "crd": crd_term,
}


@dataclass(frozen=True)
class TermInfo:
    """Options dataclass and state factory ``build(opts, d_student, d_teacher, n_student_layers)``."""

    options: type | None = None
    build: Callable[..., nn.Module] | None = None


TERM_INFO: dict[str, TermInfo] = {
    "kd": TermInfo(KDOptions),
    "cos_nce": TermInfo(CosNCEOptions, CosNCE.build),
    "pkd": TermInfo(PKDOptions, PatientLoss.build),
    "crd": TermInfo(CRDOptions, CRDLoss.build),
}
NEEDS_ATTENTION = {"attention"}
NEEDS_PROJECTION = {"embedding", "hidden"}


def check_term_names(names: Iterable[str], where: str = "") -> None:
    unknown = sorted(set(names) - set(LOSS_TERMS))
    if unknown:
        prefix = f"{where}: " if where else ""
        raise TinyDistillError(
            f"{prefix}unknown loss term(s): {', '.join(unknown)} (known: {', '.join(LOSS_TERMS)})"
        )


def parse_term_options(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """``term_options`` of a recipe -> parsed options objects, one per term that has options."""
    raw = dict(raw or {})
    check_term_names(raw, "term_options")
    no_options = sorted(k for k in raw if k not in TERM_INFO)
    if no_options:
        raise TinyDistillError(
            f"term_options: loss term(s) {', '.join(no_options)} take no options "
            f"(terms with options: {', '.join(TERM_INFO)})"
        )
    return {name: parse_options(TERM_INFO[name].options, raw.get(name), name) for name in TERM_INFO}


def build_term_modules(
    names: Iterable[str], options: Mapping[str, Any], d_student: int, d_teacher: int, n_layers: int
) -> dict[str, nn.Module]:
    """The learnable state of every term in ``names`` that has some (in a fixed order)."""
    wanted = set(names)
    return {
        name: info.build(options[name], d_student, d_teacher, n_layers)
        for name, info in TERM_INFO.items()
        if name in wanted and info.build is not None
    }


class Distiller(nn.Module):
    """Student + projections + term state; ``forward`` returns the weighted loss of the active terms.

    ``set_schedule`` + ``set_step`` switch the active terms inside one training run (see
    :mod:`tinydistill.training.schedule`); ``perturb_epsilon`` enables gradient perturbation.
    """

    def __init__(
        self,
        student: nn.Module,
        proj: HiddenProjection | None,
        layers: list[int],
        temperature: float = 1.0,
        is_regression: bool = False,
        *,
        modules: Mapping[str, nn.Module] | None = None,
        options: Mapping[str, Any] | None = None,
        perturb_epsilon: float | None = None,
    ) -> None:
        super().__init__()
        self.student = student
        self.proj = proj
        self.layers = layers
        self.temperature = temperature
        self.is_regression = is_regression
        self.term_modules = nn.ModuleDict(dict(modules or {}))
        self.options = dict(options or {})
        self.perturb_epsilon = perturb_epsilon
        self.weights: dict[str, float] = {}
        self.schedule: Schedule | None = None
        self.phase: int | None = None

    def set_terms(self, weights: Mapping[str, float]) -> None:
        check_term_names(weights)
        active = {k: float(w) for k, w in weights.items() if w}
        if not active:
            raise TinyDistillError("no loss term has a non-zero weight")
        if set(active) & NEEDS_PROJECTION and self.proj is None:
            raise TinyDistillError("hidden/embedding losses need a projection")
        missing = sorted(
            k for k in active if k in TERM_INFO and TERM_INFO[k].build and k not in self.term_modules
        )
        if missing:
            raise TinyDistillError(
                f"loss term(s) {', '.join(missing)} need their module (build_term_modules)"
            )
        self.weights = active

    def set_schedule(self, schedule: Schedule) -> None:
        """Follow ``schedule`` (phases of weighted terms over a stage's steps) from step 0."""
        self.schedule, self.phase = schedule, None
        self.set_step(0)

    def set_step(self, step: int) -> None:
        """Activate the phase of 0-based optimizer step ``step`` (no-op without a schedule)."""
        if self.schedule is None:
            return
        index = self.schedule.index_at(step)
        if index != self.phase:
            self.set_terms(self.schedule.phases[index].terms)
            self.phase = index

    @property
    def needs_attention(self) -> bool:
        return bool(set(self.weights) & NEEDS_ATTENTION)

    def _loss(
        self, batch: Mapping[str, torch.Tensor], teacher: Reps, update_state: bool
    ) -> tuple[torch.Tensor, dict[str, float]]:
        student = forward_reps(self.student, batch, attentions=self.needs_attention)
        ctx = TermContext(
            self.layers,
            self.proj,
            self.temperature,
            self.is_regression,
            batch.get("labels"),
            options=self.options,
            modules=self.term_modules,
            sample_ids=fingerprints(batch["input_ids"], batch["attention_mask"]),
            update_state=update_state,
        )
        total = torch.zeros((), device=student.hidden[0].device)
        parts: dict[str, float] = {}
        for name, weight in self.weights.items():
            value = LOSS_TERMS[name](student, teacher, ctx)
            parts[name] = value.item()
            total = total + weight * value
        return total, parts

    def forward(
        self, batch: Mapping[str, torch.Tensor], teacher: Reps
    ) -> tuple[torch.Tensor, dict[str, float]]:
        if not self.perturb_epsilon or not self.training:
            return self._loss(batch, teacher, update_state=True)
        return perturbed_loss(
            lambda update: self._loss(batch, teacher, update),
            embedding_module(self.student),
            float(self.perturb_epsilon),
        )


@torch.no_grad()
def teacher_reps(
    teacher: nn.Module,
    batch: Mapping[str, torch.Tensor],
    attentions: bool,
    layers: Sequence[int] | None = None,
) -> Reps:
    """The teacher's Reps; with ``layers``, attention scores are kept for those (mapped) layers only."""
    return forward_reps(teacher, batch, attentions=attentions, layers=sorted(set(layers)) if layers else None)
