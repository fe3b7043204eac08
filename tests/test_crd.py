"""CRD (InfoNCE variant) against hand computations: critic, masking, memories, two-sided loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tinydistill.errors import TinyDistillError
from tinydistill.losses.common import FeatureQueue, parse_options
from tinydistill.losses.crd import CRDLoss, CRDOptions, info_nce
from tinydistill.losses.reps import Reps


def test_info_nce_hand_computed() -> None:
    a = torch.tensor([[1.0, 0.0]])
    p = torch.tensor([[1.0, 0.0]])
    n = torch.tensor([[[0.0, 1.0], [-1.0, 0.0]]])
    tau = 0.5
    # logits: positive 1/0.5 = 2, negatives 0 and -2
    want = math.log(math.exp(2) + math.exp(0) + math.exp(-2)) - 2
    assert info_nce(a, p, n, None, tau).item() == pytest.approx(want)
    # the invalid negative drops out
    valid = torch.tensor([[True, False]])
    assert info_nce(a, p, n, valid, tau).item() == pytest.approx(math.log(math.exp(2) + 1) - 2)
    # shared memory negatives give the same as per-anchor ones
    mem = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    got = info_nce(a, p, n[:, :0], None, tau, memory=mem, memory_valid=torch.tensor([[True, True]]))
    assert got.item() == pytest.approx(want)


def identity_crd(**opts) -> CRDLoss:
    module = CRDLoss(parse_options(CRDOptions, {"feat_dim": 2, **opts}, "crd"), 2, 2)
    for lin in (module.embed_s, module.embed_t):
        with torch.no_grad():
            lin.weight.copy_(torch.eye(2))
            lin.bias.zero_()
    return module


def last_layer(cls: torch.Tensor) -> Reps:
    h = torch.zeros(cls.shape[0], 2, 2)
    h[:, 0] = cls
    return Reps([torch.zeros_like(h), h], [], None, torch.ones(cls.shape[0], 2))


def numpy_two_sided(u: np.ndarray, v: np.ndarray, tau: float) -> float:
    """sum over the two directions of mean_i -log softmax over (positive, other samples)."""

    def one(anchor, other):
        out = []
        for i in range(len(anchor)):
            logits = other @ anchor[i] / tau
            out.append(np.log(np.exp(logits).sum()) - logits[i])
        return np.mean(out)

    return float(one(u, v) + one(v, u))


def test_module_two_sided_with_in_batch_negatives() -> None:
    s = torch.tensor([[3.0, 4.0], [0.0, -2.0], [1.0, 1.0]])
    t = torch.tensor([[1.0, 0.0], [1.0, 1.0], [-3.0, 1.0]])
    module = identity_crd(temperature=0.5)
    got = module(last_layer(s), last_layer(t), torch.tensor([1, 2, 3])).item()
    u = s.numpy() / np.linalg.norm(s.numpy(), axis=1, keepdims=True)
    v = t.numpy() / np.linalg.norm(t.numpy(), axis=1, keepdims=True)
    assert got == pytest.approx(numpy_two_sided(u, v, 0.5), rel=1e-5)
    # both memories took the batch in
    assert module.bank_s.count == 3 and module.bank_t.count == 3
    assert torch.allclose(module.bank_t.recent(3)[0], torch.tensor(v[::-1].copy()))


def test_module_memory_negatives_and_update_flag() -> None:
    module = identity_crd(temperature=1.0, bank_size=8)
    s1, t1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    module(last_layer(s1), last_layer(t1), torch.tensor([1, 2]), update=False)
    assert module.bank_s.count == 0
    module(last_layer(s1), last_layer(t1), torch.tensor([1, 2]))
    s2, t2 = torch.tensor([[1.0, 1.0]]), torch.tensor([[1.0, -1.0]])
    got = module(last_layer(s2), last_layer(t2), torch.tensor([2])).item()  # id 2: memory entry 2 is skipped
    u = np.array([1.0, 1.0]) / math.sqrt(2)
    v = np.array([1.0, -1.0]) / math.sqrt(2)
    # student anchor u: positive v, negative = teacher memory of sample 1 (0, 1)
    s_to_t = np.log(np.exp(u @ v) + np.exp(u @ np.array([0.0, 1.0]))) - u @ v
    # teacher anchor v: positive u, negative = student memory of sample 1 (1, 0)
    t_to_s = np.log(np.exp(v @ u) + np.exp(v @ np.array([1.0, 0.0]))) - v @ u
    assert got == pytest.approx(s_to_t + t_to_s, rel=1e-5)


def test_gradients_reach_both_heads_and_options() -> None:
    torch.manual_seed(0)
    module = CRDLoss(CRDOptions(feat_dim=4, bank_size=0), d_student=3, d_teacher=5)
    s = Reps([torch.randn(4, 2, 3, requires_grad=True)], [], None, torch.ones(4, 2))
    t = Reps([torch.randn(4, 2, 5)], [], None, torch.ones(4, 2))
    module(s, t, torch.arange(4)).backward()
    assert module.embed_s.weight.grad.abs().sum() > 0 and module.embed_t.weight.grad.abs().sum() > 0
    assert s.hidden[-1].grad.abs().sum() > 0
    with pytest.raises(TinyDistillError, match="representation"):
        parse_options(CRDOptions, {"representation": "token"}, "crd")
    with pytest.raises(TinyDistillError, match="temperature"):
        parse_options(CRDOptions, {"temperature": -1}, "crd")


def test_feature_queue_fifo() -> None:
    q = FeatureQueue(3, 1)
    q.push(torch.tensor([[1.0], [2.0]]), torch.tensor([1, 2]))
    q.push(torch.tensor([[3.0], [4.0]]), torch.tensor([3, 4]))
    feats, ids = q.recent(10)
    assert ids.tolist() == [4, 3, 2] and feats[:, 0].tolist() == [4.0, 3.0, 2.0]
    assert q.recent(1)[1].tolist() == [4]
    empty = FeatureQueue(0, 2)
    empty.push(torch.ones(2, 2), torch.tensor([1, 2]))
    assert len(empty.recent(5)[0]) == 0
