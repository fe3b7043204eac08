"""Distiller: the weighted sum of loss terms equals the losses computed directly on the same Reps."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_bert_config
from transformers import BertForSequenceClassification

from tinydistill.errors import TinyDistillError
from tinydistill.losses import (
    HiddenProjection,
    attention_loss,
    embedding_loss,
    hidden_loss,
    regression_prediction_loss,
    soft_cross_entropy,
)
from tinydistill.models.capture import enable_capture, forward_reps
from tinydistill.training import terms
from tinydistill.training.terms import LOSS_TERMS, Distiller, teacher_reps

VOCAB = 40
LAYERS = [2]  # student layer 1 <- teacher layer 2


def pair(num_labels: int = 2):
    torch.manual_seed(0)
    teacher = BertForSequenceClassification(
        tiny_bert_config(VOCAB, layers=2, hidden=32, heads=4, num_labels=num_labels, initializer_range=0.2)
    ).eval()
    student = BertForSequenceClassification(
        tiny_bert_config(VOCAB, layers=1, hidden=16, heads=4, num_labels=num_labels, initializer_range=0.2)
    ).eval()  # eval: no dropout, so two forward passes agree exactly
    return enable_capture(teacher), enable_capture(student)


def make_batch(labels: torch.Tensor) -> dict[str, torch.Tensor]:
    ids = torch.tensor([[2, 7, 9, 11, 3], [2, 8, 3, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    types = torch.zeros_like(ids)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types, "labels": labels}


WEIGHTS = {"embedding": 0.5, "hidden": 2.0, "attention": 1.5, "prediction": 0.7, "hard": 0.3}


def test_total_is_weighted_sum_of_direct_losses() -> None:
    teacher, student = pair()
    batch = make_batch(torch.tensor([1, 0]))
    mask = batch["attention_mask"]
    proj = HiddenProjection(16, 32, n_layers=1, shared=True)
    torch.nn.init.normal_(proj.projs[0].weight, std=0.5)  # make slots 0 and 1 clearly different
    distiller = Distiller(student, proj, LAYERS, temperature=2.0, is_regression=False)
    distiller.set_terms(WEIGHTS)
    t = teacher_reps(teacher, batch, attentions=True)
    assert len(t.attn_scores) == 2

    total, parts = distiller(batch, t)

    s = forward_reps(student, batch)
    expected = {
        "embedding": embedding_loss(s.hidden[0], t.hidden[0], proj, mask),
        "hidden": hidden_loss([s.hidden[1]], [t.hidden[2]], proj, mask, indices=[1]),
        "attention": attention_loss([s.attn_scores[0]], [t.attn_scores[1]], mask),
        "prediction": soft_cross_entropy(s.logits, t.logits, temperature=2.0),
        "hard": F.cross_entropy(s.logits, batch["labels"]),
    }
    assert set(parts) == set(WEIGHTS)
    for name, value in expected.items():
        assert parts[name] == pytest.approx(value.item(), rel=1e-5), name
    want = sum(WEIGHTS[k] * v for k, v in expected.items())
    assert total.item() == pytest.approx(want.item(), rel=1e-5)
    assert total.ndim == 0

    # the checks above can tell the mapped layer, the projection slot and the temperature apart
    wrong_layer = attention_loss([s.attn_scores[0]], [t.attn_scores[0]], mask)
    assert wrong_layer.item() != pytest.approx(expected["attention"].item(), rel=1e-3)
    wrong_hidden = hidden_loss([s.hidden[1]], [t.hidden[1]], proj, mask, indices=[1])
    assert wrong_hidden.item() != pytest.approx(expected["hidden"].item(), rel=1e-3)
    wrong_slot = hidden_loss([s.hidden[1]], [t.hidden[2]], proj, mask, indices=[0])
    assert wrong_slot.item() != pytest.approx(expected["hidden"].item(), rel=1e-3)
    t1 = soft_cross_entropy(s.logits, t.logits, temperature=1.0)
    assert t1.item() != pytest.approx(expected["prediction"].item(), rel=1e-3)

    # the total trains the student and the projection
    total.backward()
    assert student.bert.encoder.layer[0].attention.self.query.weight.grad.abs().sum() > 0
    assert proj.projs[0].weight.grad.abs().sum() > 0 and proj.projs[1].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())

    # the teacher's scores of the mapped layers only (what distill captures; unmapped layers run SDPA,
    # hence float-rounding differences) give the same losses
    mapped = teacher_reps(teacher, batch, attentions=True, layers=LAYERS)
    assert mapped.attn_scores[0] is None
    real = t.attn_scores[1] > -1e30
    torch.testing.assert_close(mapped.attn_scores[1][real], t.attn_scores[1][real], atol=1e-5, rtol=1e-5)
    total_mapped, parts_mapped = distiller(batch, mapped)
    torch.testing.assert_close(total_mapped, total, atol=1e-5, rtol=1e-5)
    assert parts_mapped == pytest.approx(parts, rel=1e-5)


def test_zero_weight_terms_are_inactive(monkeypatch) -> None:
    teacher, student = pair()
    batch = make_batch(torch.tensor([1, 0]))
    distiller = Distiller(student, HiddenProjection(16, 32, 1), LAYERS)
    distiller.set_terms({"embedding": 0.0, "hidden": 1.0, "attention": 0, "prediction": 0.0})
    assert distiller.weights == {"hidden": 1.0}
    assert distiller.needs_attention is False

    seen = []
    real = terms.forward_reps

    def spy(model, b, attentions=True, layers=None):
        seen.append(attentions)
        return real(model, b, attentions=attentions, layers=layers)

    monkeypatch.setattr(terms, "forward_reps", spy)
    t = teacher_reps(teacher, batch, attentions=False)
    assert t.attn_scores == []
    total, parts = distiller(batch, t)
    assert seen == [False, False]  # neither teacher nor student recorded attention scores
    assert set(parts) == {"hidden"}
    assert total.item() == pytest.approx(parts["hidden"], rel=1e-6)


def test_needs_attention_only_when_attention_active() -> None:
    _, student = pair()
    distiller = Distiller(student, HiddenProjection(16, 32, 1), LAYERS)
    distiller.set_terms({"attention": 1.0})
    assert distiller.needs_attention is True
    distiller.set_terms({"attention": 0.0, "prediction": 1.0})
    assert distiller.needs_attention is False
    distiller.set_terms({"embedding": 1.0, "hidden": 1.0})
    assert distiller.needs_attention is False


def test_set_terms_errors() -> None:
    _, student = pair()
    distiller = Distiller(student, HiddenProjection(16, 32, 1), LAYERS)
    with pytest.raises(TinyDistillError, match="unknown loss term.*bogus"):
        distiller.set_terms({"hidden": 1.0, "bogus": 1.0})
    with pytest.raises(TinyDistillError, match="no loss term"):
        distiller.set_terms({"hidden": 0.0, "attention": 0.0})
    with pytest.raises(TinyDistillError, match="no loss term"):
        distiller.set_terms({})
    no_proj = Distiller(student, None, LAYERS)
    with pytest.raises(TinyDistillError, match="projection"):
        no_proj.set_terms({"hidden": 1.0})
    no_proj.set_terms({"attention": 1.0, "prediction": 1.0})  # fine without a projection
    tinybert = {"embedding", "hidden", "attention", "prediction", "hard"}
    assert tinybert <= set(LOSS_TERMS)  # recipes add more (cos_nce, kd, pkd, crd, ...)


def test_hard_term_without_labels() -> None:
    teacher, student = pair()
    batch = make_batch(torch.tensor([1, 0]))
    del batch["labels"]
    distiller = Distiller(student, None, LAYERS)
    distiller.set_terms({"hard": 1.0})
    with pytest.raises(TinyDistillError, match="labelled"):
        distiller(batch, teacher_reps(teacher, batch, attentions=False))


def test_regression_prediction_uses_teacher_and_hard_uses_gold() -> None:
    teacher, student = pair(num_labels=1)
    labels = torch.tensor([4.0, -3.0])
    batch = make_batch(labels)
    t = teacher_reps(teacher, batch, attentions=False)
    s = forward_reps(student, batch, attentions=False)
    assert s.logits.shape == (2, 1)

    to_teacher = F.mse_loss(s.logits.reshape(-1), t.logits.reshape(-1)).item()
    to_gold = F.mse_loss(s.logits.reshape(-1), labels).item()
    assert to_teacher != pytest.approx(to_gold, rel=1e-2)

    pred = Distiller(student, None, LAYERS, temperature=3.0, is_regression=True)
    pred.set_terms({"prediction": 1.0})
    total, parts = pred(batch, t)
    assert parts["prediction"] == pytest.approx(to_teacher, rel=1e-5)
    direct = regression_prediction_loss(s.logits, t.logits).item()
    assert parts["prediction"] == pytest.approx(direct, rel=1e-5)
    assert total.item() == pytest.approx(to_teacher, rel=1e-5)

    hard = Distiller(student, None, LAYERS, is_regression=True)
    hard.set_terms({"hard": 2.0})
    total, parts = hard(batch, t)
    assert parts["hard"] == pytest.approx(to_gold, rel=1e-5)
    assert total.item() == pytest.approx(2.0 * to_gold, rel=1e-5)


def test_teacher_reps_have_no_graph() -> None:
    teacher, _ = pair()
    batch = make_batch(torch.tensor([1, 0]))
    t = teacher_reps(teacher, batch, attentions=True)
    assert all(h.grad_fn is None and not h.requires_grad for h in t.hidden)
    assert all(s.grad_fn is None for s in t.attn_scores)
    assert t.logits.grad_fn is None
