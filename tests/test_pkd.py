"""BERT-PKD patient loss against hand computations; layer choice and projection."""

from __future__ import annotations

import pytest
import torch

from tinydistill.errors import TinyDistillError
from tinydistill.losses.common import parse_options
from tinydistill.losses.pkd import PatientLoss, PKDOptions, patient_loss
from tinydistill.losses.reps import Reps


def test_patient_loss_hand_computed() -> None:
    # layer 1: s/|s| = (0.6, 0.8) vs (1, 0): (-0.4)^2 + 0.8^2 = 0.8; second sample identical direction: 0
    s1 = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    t1 = torch.tensor([[5.0, 0.0], [0.0, 7.0]])
    # layer 2: opposite directions: |(-1, 0) - (1, 0)|^2 = 4, orthogonal: 2
    s2 = torch.tensor([[-2.0, 0.0], [0.0, 1.0]])
    t2 = torch.tensor([[1.0, 0.0], [3.0, 0.0]])
    layer1, layer2 = (0.8 + 0.0) / 2, (4.0 + 2.0) / 2
    assert patient_loss([s1], [t1]).item() == pytest.approx(layer1)
    assert patient_loss([s1, s2], [t1, t2]).item() == pytest.approx(layer1 + layer2)  # sum over layers


def cls_reps(cls_states: list[torch.Tensor]) -> Reps:
    """Reps whose layer j has [CLS] state cls_states[j-1] (and a different second token)."""
    hidden = [torch.zeros(2, 2, cls_states[0].shape[-1])]
    for c in cls_states:
        h = torch.full((2, 2, c.shape[-1]), 9.0)
        h[:, 0] = c
        hidden.append(h)
    return Reps(hidden, [], None, torch.ones(2, 2))


def test_module_uses_intermediate_layers_and_cls_only() -> None:
    module = PatientLoss(PKDOptions(), d_student=2, d_teacher=2, n_layers=3)
    assert sum(p.numel() for p in module.parameters()) == 0  # same width: W is the identity
    assert module.student_layers([2, 4, 6]) == [1, 2]  # PKD-Skip: layer M is left to the prediction loss
    s_cls = [
        torch.tensor([[3.0, 4.0], [0.0, 2.0]]),
        torch.tensor([[-2.0, 0.0], [0.0, 1.0]]),
        torch.randn(2, 2),
    ]
    t_cls = [
        torch.randn(2, 2),
        torch.tensor([[5.0, 0.0], [0.0, 7.0]]),
        torch.randn(2, 2),
        torch.tensor([[1.0, 0.0], [3.0, 0.0]]),
        torch.randn(2, 2),
        torch.randn(2, 2),
    ]
    got = module(cls_reps(s_cls), cls_reps(t_cls), [2, 4, 6]).item()
    assert got == pytest.approx(0.4 + 3.0)  # student 1 <- teacher 2, student 2 <- teacher 4
    every = PatientLoss(PKDOptions(layers="all"), 2, 2, 3)
    want = patient_loss(s_cls, [t_cls[1], t_cls[3], t_cls[5]]).item()
    assert every(cls_reps(s_cls), cls_reps(t_cls), [2, 4, 6]).item() == pytest.approx(want)


def test_projection_when_widths_differ_and_errors() -> None:
    module = PatientLoss(PKDOptions(), d_student=2, d_teacher=3, n_layers=2)
    lin = module.proj.projs[1]
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
        lin.bias.zero_()
    s = cls_reps([torch.tensor([[3.0, 4.0], [0.0, 2.0]]), torch.zeros(2, 2)])
    t = cls_reps([torch.tensor([[5.0, 0.0, 0.0], [0.0, 7.0, 0.0]]), torch.zeros(2, 3)])
    assert module(s, t, [1, 2]).item() == pytest.approx(0.4)
    with pytest.raises(TinyDistillError, match="2 layers"):
        PatientLoss(PKDOptions(), 2, 2, n_layers=1)
    PatientLoss(PKDOptions(layers="all"), 2, 2, n_layers=1)  # fine with layers: all
    with pytest.raises(TinyDistillError, match="pkd layers"):
        parse_options(PKDOptions, {"layers": "skip"}, "pkd")
