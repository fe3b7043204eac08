"""Gradient perturbation of the student's embedding output (LRC-BERT, Fu et al. 2021).

With ``E`` the output of the student's embedding layer (B, T, D) and ``L(E)`` the distillation loss of
one batch, one training step computes::

    g  = dL/dE                                   (detached)
    r  = epsilon * g_b / ||g_b||_2               (per sample b: the norm runs over all its T x D values)
    L_total = L(E) + L(E + r)

i.e. a second forward pass of the student whose embedding output is moved by ``epsilon`` along the
direction that increases the loss most, and whose loss is added to the clean one (one backward pass
of ``L_total`` then trains on both). The clean graph is kept (``retain_graph``) so that the loop's
backward also goes through ``L(E)``. When disabled nothing of this runs: exactly one forward pass.

Stateful terms (memory banks) are updated only by the perturbed pass, so both passes see the same
memory. ``epsilon`` is an absolute L2 size per sample; LayerNorm'd embeddings have a norm of about
``sqrt(T * D)`` per sample (~80 for 20 tokens of width 312), so the default 1.0 is a ~1% change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from tinydistill.losses.common import require

LossFn = Callable[[bool], tuple[torch.Tensor, dict[str, float]]]


@dataclass
class PerturbOptions:
    enabled: bool = False
    epsilon: float = 1.0

    def check(self) -> None:
        require(
            isinstance(self.enabled, bool), f"perturbation enabled must be true/false, got {self.enabled!r}"
        )
        require(float(self.epsilon) > 0, f"perturbation epsilon must be positive, got {self.epsilon}")


def embedding_module(model: nn.Module) -> nn.Module:
    """The embedding layer of an HF encoder (``model.base_model.embeddings``)."""
    base = getattr(model, "base_model", model)
    emb = getattr(base, "embeddings", None)
    require(emb is not None, f"gradient perturbation: {type(model).__name__} has no .embeddings module")
    return emb


def perturbation(grad: torch.Tensor, epsilon: float) -> torch.Tensor:
    """``r = epsilon * g / ||g||`` with one L2 norm per sample (all dims but the first)."""
    g = grad.detach().float()
    norm = g.flatten(1).norm(dim=1).clamp(min=1e-12)
    return (epsilon * g / norm.view(-1, *([1] * (g.dim() - 1)))).to(grad.dtype)


@contextmanager
def capture_output(module: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Record every output of ``module`` while the block runs."""
    seen: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda mod, args, out: seen.append(out))
    try:
        yield seen
    finally:
        handle.remove()


@contextmanager
def add_to_output(module: nn.Module, delta: torch.Tensor) -> Iterator[None]:
    """Replace ``module``'s output by ``output + delta`` while the block runs."""
    handle = module.register_forward_hook(lambda mod, args, out: out + delta.to(out.dtype))
    try:
        yield
    finally:
        handle.remove()


def perturbed_loss(loss_fn: LossFn, embeddings: nn.Module, epsilon: float) -> tuple[torch.Tensor, dict]:
    """``L(E) + L(E + r)``; ``loss_fn(update_state)`` runs one student forward and returns (loss, parts)."""
    with capture_output(embeddings) as outputs:
        clean, parts = loss_fn(False)
    require(len(outputs) == 1, f"gradient perturbation: embeddings ran {len(outputs)} times in one forward")
    emb = outputs[0]
    # (in the two early returns below memories skip this batch: nothing to perturb, e.g. frozen embeddings)
    if not emb.requires_grad:
        return clean, parts
    (grad,) = torch.autograd.grad(clean, emb, retain_graph=True, allow_unused=True)
    if grad is None:  # the active terms do not depend on the student's embeddings
        return clean, parts
    with add_to_output(embeddings, perturbation(grad, epsilon)):
        noisy, _ = loss_fn(True)
    return clean + noisy, {**parts, "clean": clean.item(), "perturbed": noisy.item()}
