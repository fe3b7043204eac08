"""Hinton KD against hand computations, and the kd term's options inside the Distiller."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tinydistill.errors import TinyDistillError
from tinydistill.losses.common import parse_options
from tinydistill.losses.kd import KDOptions, hinton_kd
from tinydistill.losses.reps import Reps
from tinydistill.training.terms import TermContext, kd_term


def log_softmax(values: list[float]) -> list[float]:
    z = math.log(sum(math.exp(v) for v in values))
    return [v - z for v in values]


def test_classification_hand_computed() -> None:
    zs, zt, y = torch.tensor([[1.0, 2.0]]), torch.tensor([[2.0, 0.0]]), torch.tensor([0])
    T, alpha = 2.0, 0.3
    p_t = [math.exp(v) for v in log_softmax([1.0, 0.0])]  # softmax(z_t / T)
    log_q = log_softmax([0.5, 1.0])  # log softmax(z_s / T)
    soft = -(p_t[0] * log_q[0] + p_t[1] * log_q[1])
    hard = -log_softmax([1.0, 2.0])[0]
    want = alpha * T**2 * soft + (1 - alpha) * hard
    assert hinton_kd(zs, zt, y, T, alpha).item() == pytest.approx(want, rel=1e-6)
    # alpha = 1: soft targets only, T^2-scaled; alpha = 0: plain cross-entropy
    assert hinton_kd(zs, zt, None, T, 1.0).item() == pytest.approx(T**2 * soft, rel=1e-6)
    assert hinton_kd(zs, zt, y, T, 0.0).item() == pytest.approx(hard, rel=1e-6)


def test_batch_mean_and_gradient_scale() -> None:
    torch.manual_seed(0)
    zs = torch.randn(4, 3, requires_grad=True)
    zt, y = torch.randn(4, 3), torch.tensor([0, 2, 1, 1])
    T = 3.0
    loss = hinton_kd(zs, zt, y, T, 0.5)
    soft = -(F.softmax(zt / T, -1) * F.log_softmax(zs / T, -1)).sum(-1).mean()
    assert loss.item() == pytest.approx((0.5 * T**2 * soft + 0.5 * F.cross_entropy(zs, y)).item(), rel=1e-6)
    loss.backward()
    assert torch.isfinite(zs.grad).all()


def test_regression_hand_computed() -> None:
    zs, zt, y = torch.tensor([[1.0], [3.0]]), torch.tensor([[2.0], [1.0]]), torch.tensor([0.0, 3.0])
    to_teacher = ((1 - 2) ** 2 + (3 - 1) ** 2) / 2
    to_gold = ((1 - 0) ** 2 + (3 - 3) ** 2) / 2
    got = hinton_kd(zs, zt, y, temperature=5.0, alpha=0.25, is_regression=True)
    assert got.item() == pytest.approx(0.25 * to_teacher + 0.75 * to_gold)


def test_needs_labels_unless_alpha_one_and_options() -> None:
    with pytest.raises(TinyDistillError, match="labelled"):
        hinton_kd(torch.zeros(1, 2), torch.zeros(1, 2), None, 1.0, 0.5)
    with pytest.raises(TinyDistillError, match="alpha"):
        parse_options(KDOptions, {"alpha": 1.5}, "kd")
    with pytest.raises(TinyDistillError, match="temperature"):
        parse_options(KDOptions, {"temperature": 0}, "kd")


def test_kd_term_uses_its_options_or_the_run_temperature() -> None:
    zs, zt, y = torch.tensor([[0.5, -1.0]]), torch.tensor([[2.0, 1.0]]), torch.tensor([1])
    s = Reps([torch.zeros(1, 1, 2)], [], zs, torch.ones(1, 1))
    t = Reps([torch.zeros(1, 1, 2)], [], zt, torch.ones(1, 1))

    def ctx(options: dict) -> TermContext:
        return TermContext([1], None, 4.0, False, y, options={"kd": parse_options(KDOptions, options, "kd")})

    assert kd_term(s, t, ctx({"alpha": 0.2})).item() == pytest.approx(hinton_kd(zs, zt, y, 4.0, 0.2).item())
    got = kd_term(s, t, ctx({"alpha": 0.2, "temperature": 2.0})).item()
    assert got == pytest.approx(hinton_kd(zs, zt, y, 2.0, 0.2).item())
    assert got != pytest.approx(hinton_kd(zs, zt, y, 4.0, 0.2).item(), rel=1e-3)
