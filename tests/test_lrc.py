"""COS-NCE (LRC-BERT) against hand computations: both forms, pooling, in-batch and memory negatives."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tinydistill.errors import TinyDistillError
from tinydistill.losses.common import fingerprints, parse_options
from tinydistill.losses.lrc import (
    CosNCE,
    CosNCEOptions,
    angular_distance,
    cos_nce_from_distances,
    cos_nce_loss,
)
from tinydistill.losses.reps import Reps

R2 = 1 / math.sqrt(2)


def test_angular_distance() -> None:
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [2.0, 2.0]])
    b = torch.tensor([[3.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [1.0, 0.0]])
    assert angular_distance(a, b).tolist() == pytest.approx([0.0, 1.0, 2.0, 1 - R2])


def test_cos_nce_hand_computed_both_forms() -> None:
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    pos = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    negs = torch.tensor([[[0.0, 1.0], [-1.0, 0.0]], [[1.0, 0.0], [5.0, 5.0]]])
    valid = torch.tensor([[True, True], [True, False]])  # anchor 2 has one negative
    # anchor 1: g+ = 0, g- = (1, 2); anchor 2: g+ = 1 - 1/sqrt(2), g- = (1,)
    gp2 = 1 - R2
    lrc = [0 + (2 * 2 - ((1 - 0) + (2 - 0))) / (2 * 2), gp2 + (2 * 1 - (1 - gp2)) / (2 * 1)]
    plain = [0 + ((2 - 1) + (2 - 2)) / 2, gp2 + (2 - 1) / 1]
    assert lrc == pytest.approx([0.25, 1.5 * gp2 + 0.5])
    got = cos_nce_from_distances(angular_distance(s, pos), angular_distance(s[:, None], negs), valid, "lrc")
    assert got.tolist() == pytest.approx(lrc)
    assert cos_nce_loss(s, pos, negs, valid, "lrc").item() == pytest.approx(np.mean(lrc))
    assert cos_nce_loss(s, pos, negs, valid, "plain").item() == pytest.approx(np.mean(plain))


def test_cos_nce_bounds_and_no_negatives() -> None:
    pos = torch.tensor([[1.0, 2.0]])
    best = cos_nce_loss(pos, pos, -pos[:, None], form="lrc")  # on the positive, opposite to the negative
    worst = cos_nce_loss(-pos, pos, -pos[:, None], form="lrc")
    assert best.item() == pytest.approx(0.0, abs=1e-6) and worst.item() == pytest.approx(4.0)
    assert cos_nce_loss(-pos, pos, -pos[:, None], form="plain").item() == pytest.approx(4.0)
    torch.manual_seed(0)
    s, p, n = torch.randn(8, 5), torch.randn(8, 5), torch.randn(8, 6, 5)
    for form in ("lrc", "plain"):
        values = cos_nce_from_distances(angular_distance(s, p), angular_distance(s[:, None], n), None, form)
        assert ((values >= 0) & (values <= 4)).all()
    # no valid negative: only g(s, z) remains
    none = torch.zeros(1, 1, dtype=torch.bool)
    assert cos_nce_loss(s[:1], p[:1], n[:1, :1], none).item() == pytest.approx(
        angular_distance(s[:1], p[:1]).item()
    )


def identity_cos_nce(**opts) -> CosNCE:
    """A one-layer CosNCE on width 2 whose projection W is the identity."""
    module = CosNCE(parse_options(CosNCEOptions, opts, "cos_nce"), 2, 2, n_layers=1)
    for lin in module.proj.projs:
        with torch.no_grad():
            lin.weight.copy_(torch.eye(2))
            lin.bias.zero_()
    return module


def reps(hidden_last: torch.Tensor, mask: torch.Tensor) -> Reps:
    return Reps(
        hidden=[torch.zeros_like(hidden_last), hidden_last], attn_scores=[], logits=None, attention_mask=mask
    )


def expected_pooled(s: np.ndarray, t: np.ndarray, form: str) -> float:
    """Numpy: every other sample of the batch is a negative."""

    def g(a, b):
        return 1 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b))

    out = []
    for i in range(len(s)):
        gp = g(s[i], t[i])
        gn = np.array([g(s[i], t[j]) for j in range(len(s)) if j != i])
        k = len(gn)
        out.append(gp + ((2 * k - (gn - gp).sum()) / (2 * k) if form == "lrc" else (2 - gn).mean()))
    return float(np.mean(out))


@pytest.mark.parametrize("form", ["lrc", "plain"])
def test_module_mean_and_cls_pooling_with_in_batch_negatives(form: str) -> None:
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0]])
    s_h = torch.tensor(
        [
            [[1.0, 0.0], [0.0, 2.0], [9.0, 9.0]],
            [[1.0, 1.0], [2.0, -1.0], [0.0, 1.0]],
            [[-1.0, 2.0], [7.0, 7.0], [7, 7]],
        ]
    )
    t_h = torch.tensor(
        [
            [[2.0, 1.0], [1.0, 1.0], [-5.0, 3.0]],
            [[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]],
            [[1.0, -1.0], [3.0, 3.0], [3, 3]],
        ]
    )
    ids = torch.tensor([1, 2, 3])
    m = mask.numpy()[:, :, None]
    s_mean = (s_h.numpy() * m).sum(1) / m.sum(1)  # mean over real tokens only
    t_mean = (t_h.numpy() * m).sum(1) / m.sum(1)
    mean = identity_cos_nce(representation="mean", form=form)(reps(s_h, mask), reps(t_h, mask), [1], ids)
    assert mean.item() == pytest.approx(expected_pooled(s_mean, t_mean, form), rel=1e-5)
    cls = identity_cos_nce(representation="cls", form=form)(reps(s_h, mask), reps(t_h, mask), [1], ids)
    assert cls.item() == pytest.approx(expected_pooled(s_h[:, 0].numpy(), t_h[:, 0].numpy(), form), rel=1e-5)
    assert mean.item() != pytest.approx(cls.item(), rel=1e-3)


def test_module_negatives_cap_duplicates_and_memory_bank() -> None:
    s = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]], [[1.0, 1.0]]])
    t = torch.tensor([[[1.0, 0.0]], [[-1.0, 0.0]], [[0.0, 1.0]]])
    mask = torch.ones(3, 1, dtype=torch.long)
    g = lambda a, b: angular_distance(a, b).item()  # noqa: E731
    # negatives: 1 -> sample i+1 only
    module = identity_cos_nce(representation="cls", negatives=1)
    got = module(reps(s, mask), reps(t, mask), [1], torch.tensor([1, 2, 3])).item()
    pairs = [(0, 1), (1, 2), (2, 0)]
    want = np.mean(
        [g(s[i, 0], t[i, 0]) + 1 - (g(s[i, 0], t[j, 0]) - g(s[i, 0], t[i, 0])) / 2 for i, j in pairs]
    )
    assert got == pytest.approx(want, rel=1e-5)
    # samples 1 and 2 are the same text: they are not each other's negative
    module = identity_cos_nce(representation="cls")
    got = module(reps(s, mask), reps(t, mask), [1], torch.tensor([7, 7, 3])).item()
    negs = {0: [2], 1: [2], 2: [0, 1]}
    want = np.mean(
        [
            g(s[i, 0], t[i, 0])
            + 1
            - (np.mean([g(s[i, 0], t[j, 0]) for j in negs[i]]) - g(s[i, 0], t[i, 0])) / 2
            for i in range(3)
        ]
    )
    assert got == pytest.approx(want, rel=1e-5)

    # memory: the first batch's teacher vectors become negatives of the next batch (not with update=False)
    module = identity_cos_nce(representation="cls", bank_size=4)
    module(reps(s[:2], mask[:2]), reps(t[:2], mask[:2]), [1], torch.tensor([1, 2]), update=False)
    assert module.banks[0].count == 0
    module(reps(s[:2], mask[:2]), reps(t[:2], mask[:2]), [1], torch.tensor([1, 2]))
    assert module.banks[0].count == 2
    single = module(reps(s[2:], mask[2:]), reps(t[2:], mask[2:]), [1], torch.tensor([3])).item()
    gp = g(s[2, 0], t[2, 0])
    gn = np.mean([g(s[2, 0], t[0, 0]), g(s[2, 0], t[1, 0])])
    assert single == pytest.approx(gp + 1 - (gn - gp) / 2, rel=1e-5)
    # a memory entry of the anchor's own text is skipped
    again = module(reps(s[:1], mask[:1]), reps(t[:1], mask[:1]), [1], torch.tensor([1])).item()
    gp = g(s[0, 0], t[0, 0])
    gn = np.mean([g(s[0, 0], t[1, 0]), g(s[0, 0], t[2, 0])])  # entries: samples 1, 2, 3 -> 2 and 3 count
    assert again == pytest.approx(gp + 1 - (gn - gp) / 2, rel=1e-5)


def test_module_token_level() -> None:
    s = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [5.0, 5.0]]])
    t = torch.tensor([[[1.0, 1.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]])
    mask = torch.tensor([[1, 1], [1, 0]])
    got = identity_cos_nce(representation="token")(reps(s, mask), reps(t, mask), [1], torch.tensor([1, 2]))
    g = lambda a, b: angular_distance(a, b).item()  # noqa: E731
    # real tokens: (0,0), (0,1), (1,0); the negative of token (b, p) is the other sample's token p if real
    tok00 = g(s[0, 0], t[0, 0]) + 1 - (g(s[0, 0], t[1, 0]) - g(s[0, 0], t[0, 0])) / 2
    tok01 = g(s[0, 1], t[0, 1])  # sample 2 has no real token at position 1: no negative
    tok10 = g(s[1, 0], t[1, 0]) + 1 - (g(s[1, 0], t[0, 0]) - g(s[1, 0], t[1, 0])) / 2
    assert got.item() == pytest.approx((tok00 + tok01 + tok10) / 3, rel=1e-5)


def test_module_layers_projection_and_gradients() -> None:
    torch.manual_seed(0)
    module = CosNCE(CosNCEOptions(), d_student=3, d_teacher=5, n_layers=2)
    assert len(module.proj.projs) == 3  # per layer (+ the unused embedding slot)
    s = Reps([torch.randn(4, 6, 3, requires_grad=True) for _ in range(3)], [], None, torch.ones(4, 6))
    t = Reps([torch.randn(4, 6, 5) for _ in range(5)], [], None, torch.ones(4, 6))
    loss = module(s, t, [2, 4], torch.arange(4))
    with torch.no_grad():
        want = [
            expected_pooled(module.proj(s.hidden[m].mean(1), m).numpy(), t.hidden[n].mean(1).numpy(), "lrc")
            for m, n in ((1, 2), (2, 4))
        ]
    assert loss.item() == pytest.approx(np.mean(want), rel=1e-5)
    loss.backward()
    assert all(lin.weight.grad is not None for lin in module.proj.projs[1:])
    assert s.hidden[1].grad.abs().sum() > 0 and s.hidden[2].grad.abs().sum() > 0


def test_options_errors() -> None:
    with pytest.raises(TinyDistillError, match="unknown option.*cos_nce.*temperture"):
        parse_options(CosNCEOptions, {"temperture": 1.0}, "cos_nce")
    with pytest.raises(TinyDistillError, match="representation"):
        parse_options(CosNCEOptions, {"representation": "max"}, "cos_nce")
    with pytest.raises(TinyDistillError, match="form"):
        parse_options(CosNCEOptions, {"form": "nce"}, "cos_nce")
    with pytest.raises(TinyDistillError, match="memory bank"):
        parse_options(CosNCEOptions, {"representation": "token", "bank_size": 8}, "cos_nce")


def test_fingerprints_ignore_padding() -> None:
    ids = torch.tensor([[2, 5, 6, 3, 0], [2, 5, 6, 3, 9], [2, 6, 5, 3, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 0]])
    fp = fingerprints(ids, mask)
    assert fp[0] == fp[1] and fp[0] != fp[2]
    longer = fingerprints(torch.tensor([[2, 5, 6, 3, 0, 0]]), torch.tensor([[1, 1, 1, 1, 0, 0]]))
    assert longer[0] == fp[0]
