"""Gradient perturbation: the size and direction of r, one forward when off, a different gradient when on."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_bert_config
from transformers import BertForSequenceClassification

from tinydistill.losses import HiddenProjection
from tinydistill.losses.common import parse_options
from tinydistill.training.perturb import (
    PerturbOptions,
    add_to_output,
    capture_output,
    embedding_module,
    perturbation,
)
from tinydistill.training.terms import Distiller, teacher_reps

VOCAB = 40
NO_DROPOUT = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, initializer_range=0.2)


def models():
    torch.manual_seed(0)
    teacher = BertForSequenceClassification(tiny_bert_config(VOCAB, layers=2, hidden=32, **NO_DROPOUT)).eval()
    student = BertForSequenceClassification(tiny_bert_config(VOCAB, layers=1, hidden=16, **NO_DROPOUT))
    return teacher, student


def batch() -> dict[str, torch.Tensor]:
    ids = torch.tensor([[2, 7, 9, 11, 3], [2, 8, 3, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "token_type_ids": torch.zeros_like(ids),
        "labels": torch.tensor([1, 0]),
    }


def distiller(student, epsilon: float | None) -> Distiller:
    d = Distiller(student, HiddenProjection(16, 32, 1), [2], temperature=2.0, perturb_epsilon=epsilon)
    d.set_terms({"hidden": 1.0, "prediction": 1.0, "hard": 0.5})
    return d.train()


def test_perturbation_has_size_epsilon_per_sample_along_the_gradient() -> None:
    g = torch.tensor([[[3.0, 0.0], [0.0, 4.0]], [[0.0, 0.0], [1.0, 0.0]]])
    r = perturbation(g, 0.5)
    assert r.flatten(1).norm(dim=1).tolist() == pytest.approx([0.5, 0.5])
    assert r[0].flatten().tolist() == pytest.approx([0.3, 0.0, 0.0, 0.4])  # 0.5 * g / 5
    assert perturbation(torch.zeros(1, 2, 2), 1.0).abs().sum() == 0  # no NaN for a zero gradient


def test_off_means_exactly_one_forward() -> None:
    teacher, student = models()
    calls = []
    student.register_forward_hook(lambda *a: calls.append("student"))
    embedding_module(student).register_forward_hook(lambda *a: calls.append("embeddings"))
    b = batch()
    t = teacher_reps(teacher, b, attentions=False)
    total, parts = distiller(student, None)(b, t)
    assert calls == ["embeddings", "student"]
    assert set(parts) == {"hidden", "prediction", "hard"}
    calls.clear()
    on = distiller(student, 0.1)
    on(b, t)
    assert calls == ["embeddings", "student"] * 2
    calls.clear()
    on.eval()(b, t)  # evaluation never perturbs
    assert calls == ["embeddings", "student"]


def grads(d: Distiller, b, t) -> tuple[torch.Tensor, dict, torch.Tensor]:
    d.zero_grad()
    total, parts = d(b, t)
    total.backward()
    return total, parts, d.student.bert.encoder.layer[0].attention.self.query.weight.grad.clone()


def test_on_adds_the_loss_at_e_plus_r_and_changes_the_gradient() -> None:
    teacher, student = models()
    b = batch()
    t = teacher_reps(teacher, b, attentions=False)
    d = distiller(student, None)
    clean, _, g_off = grads(d, b, t)

    d.perturb_epsilon = 0.05
    total, parts, g_on = grads(d, b, t)
    assert parts["clean"] == pytest.approx(clean.item(), rel=1e-6)
    assert total.item() == pytest.approx(parts["clean"] + parts["perturbed"], rel=1e-6)
    assert parts["perturbed"] > parts["clean"]  # r points up the loss
    assert not torch.allclose(g_on, g_off) and not torch.allclose(g_on, 2 * g_off)

    # the perturbed pass is the loss with E + epsilon * g / ||g|| (by hand, with the hooks)
    emb = embedding_module(student)
    with capture_output(emb) as seen:
        loss, _ = d._loss(b, t, update_state=False)
    (g,) = torch.autograd.grad(loss, seen[0])
    with add_to_output(emb, perturbation(g, 0.05)):
        by_hand, _ = d._loss(b, t, update_state=False)
    assert parts["perturbed"] == pytest.approx(by_hand.item(), rel=1e-5)

    # a vanishing epsilon doubles the clean loss and gradient
    d.perturb_epsilon = 1e-7
    total, _, g_tiny = grads(d, b, t)
    assert total.item() == pytest.approx(2 * clean.item(), rel=1e-5)
    assert torch.allclose(g_tiny, 2 * g_off, rtol=1e-3, atol=1e-6)


def test_options() -> None:
    assert parse_options(PerturbOptions, {"enabled": True}, "perturbation").epsilon == 1.0
    with pytest.raises(Exception, match="epsilon"):
        parse_options(PerturbOptions, {"enabled": True, "epsilon": 0}, "perturbation")
    with pytest.raises(Exception, match="true/false"):
        parse_options(PerturbOptions, {"enabled": "yes"}, "perturbation")
