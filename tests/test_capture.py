"""Attention-score capture: recorded scores equal a direct QK^T/sqrt(d) (+ bias) + mask computation."""

from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    MPNetConfig,
    MPNetForSequenceClassification,
)

from tinydistill.deploy.inputs import model_input_names, model_inputs
from tinydistill.errors import TinyDistillError
from tinydistill.models import capture
from tinydistill.models.capture import (
    ATTN_IMPL,
    disable_capture,
    enable_capture,
    forward_reps,
    recording,
)

VOCAB = 40
HIDDEN, HEADS, LAYERS = 16, 4, 2
D_HEAD = HIDDEN // HEADS


def bert(**kw) -> BertForSequenceClassification:
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=2 * HIDDEN,
        max_position_embeddings=32,
        initializer_range=0.2,
        **kw,
    )
    return BertForSequenceClassification(cfg).eval()


def mpnet(**kw) -> MPNetForSequenceClassification:
    torch.manual_seed(0)
    cfg = MPNetConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=2 * HIDDEN,
        max_position_embeddings=32,
        initializer_range=0.2,
        **kw,
    )
    return MPNetForSequenceClassification(cfg).eval()


@pytest.fixture
def batch() -> dict[str, torch.Tensor]:
    # row 1 has two padded positions (the last two keys)
    ids = torch.tensor([[2, 7, 9, 11, 13, 3], [2, 8, 10, 3, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


def heads(x: torch.Tensor) -> torch.Tensor:
    """(B, T, H*d) -> (B, H, T, d)"""
    b, t, _ = x.shape
    return x.view(b, t, HEADS, D_HEAD).transpose(1, 2)


def check_scores(got: torch.Tensor, expected: torch.Tensor, mask: torch.Tensor) -> None:
    """Real keys: equal to ``expected``; padded keys: huge negative."""
    real_key = mask.bool()[:, None, None, :].expand_as(got)
    assert got.shape == expected.shape
    torch.testing.assert_close(got[real_key], expected[real_key], atol=1e-5, rtol=1e-5)
    assert (~real_key).any()
    assert (got[~real_key] <= -1e30).all()


def test_bert_scores_match_direct_computation(batch) -> None:
    model = enable_capture(bert())
    assert model.config._attn_implementation == ATTN_IMPL
    with torch.no_grad():
        reps = forward_reps(model, batch)
    b, t = batch["input_ids"].shape
    assert len(reps.hidden) == LAYERS + 1 and reps.n_layers == LAYERS
    assert all(h.shape == (b, t, HIDDEN) for h in reps.hidden)
    assert len(reps.attn_scores) == LAYERS
    assert all(s.shape == (b, HEADS, t, t) for s in reps.attn_scores)
    assert reps.logits.shape == (b, 2)
    assert reps.attention_mask is batch["attention_mask"]
    with torch.no_grad():
        for layer_idx, layer in enumerate(model.bert.encoder.layer):
            h_in = reps.hidden[layer_idx]
            att = layer.attention.self
            q, k = heads(att.query(h_in)), heads(att.key(h_in))
            expected = q @ k.transpose(-1, -2) / math.sqrt(D_HEAD)
            check_scores(reps.attn_scores[layer_idx], expected, batch["attention_mask"])
        # the layers really differ: a score tensor is not checked against the wrong layer by accident
        assert not torch.allclose(reps.attn_scores[0], reps.attn_scores[1])


def test_mpnet_scores_match_direct_computation_with_position_bias(batch) -> None:
    model = enable_capture(mpnet())
    with torch.no_grad():
        reps = forward_reps(model, batch)
    b, t = batch["input_ids"].shape
    assert len(reps.hidden) == LAYERS + 1
    assert len(reps.attn_scores) == LAYERS
    assert all(s.shape == (b, HEADS, t, t) for s in reps.attn_scores)
    with torch.no_grad():
        bias = model.mpnet.encoder.compute_position_bias(reps.hidden[0])
        assert bias.shape == (b, HEADS, t, t)
        assert bias.abs().max() > 1e-3  # the bias matters, so leaving it out would fail the check
        for layer_idx, layer in enumerate(model.mpnet.encoder.layer):
            h_in = reps.hidden[layer_idx]
            att = layer.attention.attn
            q, k = heads(att.q(h_in)), heads(att.k(h_in))
            plain = q @ k.transpose(-1, -2) / math.sqrt(D_HEAD)
            check_scores(reps.attn_scores[layer_idx], plain + bias, batch["attention_mask"])
            real = batch["attention_mask"].bool()[:, None, None, :].expand_as(plain)
            assert not torch.allclose(reps.attn_scores[layer_idx][real], plain[real], atol=1e-4)


def test_enable_capture_twice_does_not_double_record_mpnet(batch) -> None:
    model = enable_capture(enable_capture(mpnet()))
    with torch.no_grad():
        reps = forward_reps(model, batch)
    assert len(reps.attn_scores) == LAYERS


@pytest.mark.parametrize("factory", [bert, mpnet], ids=["bert", "mpnet"])
def test_outside_recording_same_logits_and_nothing_recorded(factory, batch, monkeypatch) -> None:
    plain = factory()
    eager = copy.deepcopy(plain)
    eager.set_attn_implementation("eager")
    captured = enable_capture(copy.deepcopy(plain))
    inputs = model_inputs(captured, batch)

    sdpa_calls = []
    real_sdpa = capture.sdpa_attention_forward

    def counting_sdpa(*args, **kwargs):
        sdpa_calls.append(1)
        return real_sdpa(*args, **kwargs)

    monkeypatch.setattr(capture, "sdpa_attention_forward", counting_sdpa)
    with recording() as closed:
        pass
    with torch.no_grad():
        ref = plain(**inputs).logits
        ref_eager = eager(**inputs).logits
        out = captured(**inputs).logits
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out, ref_eager, atol=1e-5, rtol=1e-5)
    assert closed == []
    assert capture._recorder() is None
    if factory is bert:
        assert len(sdpa_calls) == LAYERS  # the recording function falls back to SDPA
        with recording() as scores, torch.no_grad():
            captured(**inputs)
        assert len(scores) == LAYERS and len(sdpa_calls) == LAYERS  # eager path while recording
    # forward_reps without attentions records nothing either
    with torch.no_grad():
        reps = forward_reps(captured, batch, attentions=False)
    assert reps.attn_scores == []
    torch.testing.assert_close(reps.logits, ref, atol=1e-5, rtol=1e-5)


def test_recording_nests_and_restores(batch) -> None:
    model = enable_capture(bert())
    inputs = model_inputs(model, batch)
    with torch.no_grad(), recording() as outer:
        with recording() as inner:
            model(**inputs)
        assert len(inner) == LAYERS and outer == []
        model(**inputs)
        assert len(outer) == LAYERS and len(inner) == LAYERS
    assert capture._recorder() is None


def test_disable_capture_restores_sdpa(batch) -> None:
    model = enable_capture(bert())
    assert model.config._attn_implementation == ATTN_IMPL
    disable_capture(model)
    assert model.config._attn_implementation == "sdpa"
    with torch.no_grad(), recording() as scores:
        model(**model_inputs(model, batch))
    assert scores == []  # sdpa does not record
    # no-op on a model that was never captured
    other = bert()
    other.set_attn_implementation("eager")
    disable_capture(other)
    assert other.config._attn_implementation == "eager"


@pytest.mark.parametrize("factory", [bert, mpnet], ids=["bert", "mpnet"])
def test_gradients_flow_from_student_scores(factory, batch) -> None:
    model = enable_capture(factory()).train()
    reps = forward_reps(model, batch)
    assert all(s.grad_fn is not None for s in reps.attn_scores)
    real = batch["attention_mask"].bool()
    valid = (real[:, :, None] & real[:, None, :])[:, None].expand_as(reps.attn_scores[0])
    loss = sum(s[valid].pow(2).mean() for s in reps.attn_scores)
    loss.backward()
    if factory is bert:
        weights = [layer.attention.self.query.weight for layer in model.bert.encoder.layer]
    else:
        weights = [layer.attention.attn.q.weight for layer in model.mpnet.encoder.layer]
    for w in weights:
        assert w.grad is not None
        assert torch.isfinite(w.grad).all()
        assert w.grad.abs().sum() > 0


def test_model_inputs_drops_token_type_ids_for_mpnet(batch) -> None:
    assert model_input_names(mpnet()) == ["input_ids", "attention_mask"]
    assert set(model_inputs(mpnet(), batch)) == {"input_ids", "attention_mask"}
    assert set(model_inputs(bert(), batch)) == {"input_ids", "attention_mask", "token_type_ids"}
    extra = {**batch, "labels": torch.tensor([0, 1])}
    assert "labels" not in model_inputs(bert(), extra)


def test_enable_capture_rejects_unsupported_model() -> None:
    module = nn.Linear(2, 2)
    module.config = SimpleNamespace(model_type="mystery")
    with pytest.raises(TinyDistillError, match="cannot capture attention scores"):
        enable_capture(module)
