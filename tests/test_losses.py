import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tinydistill.errors import TinyDistillError
from tinydistill.losses import (
    HiddenProjection,
    Reps,
    attention_loss,
    embedding_loss,
    hidden_loss,
    prediction_loss,
    regression_prediction_loss,
    soft_cross_entropy,
)

NEG = -3.4e38
INF = float("inf")


def test_attention_loss_t2_padded_key() -> None:
    mask = torch.tensor([[1, 0]])
    s = torch.tensor([[[[1.0, NEG], [2.0, NEG]]]], requires_grad=True)  # (1, 1, 2, 2)
    t = torch.tensor([[[[3.0, -INF], [7.0, -INF]]]])
    loss = attention_loss([s], [t], mask)
    # only (query 0, key 0) is valid: (1 - 3)^2 / (1 pair * 1 head)
    assert loss.item() == pytest.approx(4.0)
    loss.backward()
    assert torch.isfinite(s.grad).all()
    assert s.grad.tolist() == [[[[2 * (1.0 - 3.0), 0.0], [0.0, 0.0]]]]


def test_attention_loss_t3_masked_values_and_grad() -> None:
    mask = torch.tensor([[1, 1, 0]])
    s = torch.tensor([[[[1.0, 2.0, NEG], [3.0, 4.0, NEG], [5.0, 6.0, 7.0]]]], requires_grad=True)
    t = torch.tensor([[[[3.0, 2.0, -INF], [0.0, 4.0, -INF], [9.0, 9.0, 9.0]]]])
    loss = attention_loss([s], [t], mask)
    expected = ((1 - 3) ** 2 + (2 - 2) ** 2 + (3 - 0) ** 2 + (4 - 4) ** 2) / (4 * 1)  # 13 / 4
    assert loss.item() == pytest.approx(expected)
    loss.backward()
    assert torch.isfinite(s.grad).all()
    assert s.grad[0, 0, 2].abs().sum() == 0 and s.grad[0, 0, :, 2].abs().sum() == 0
    assert s.grad[0, 0, 0, 0].item() == pytest.approx(2 * (1 - 3) / 4)


def test_attention_loss_multi_layer_and_heads() -> None:
    mask = torch.tensor([[1, 1, 0]])
    s1 = torch.tensor([[[[1.0, 2.0, NEG], [3.0, 4.0, NEG], [5.0, 6.0, 7.0]]]])
    t1 = torch.tensor([[[[3.0, 2.0, -INF], [0.0, 4.0, -INF], [9.0, 9.0, 9.0]]]])
    layer1 = 13 / 4
    # layer 2 has 1 head too (shapes must match per layer); use all-zero student vs all-one teacher
    s2 = torch.zeros(1, 1, 3, 3)
    t2 = torch.ones(1, 1, 3, 3)
    layer2 = 4 * 1.0 / 4
    loss = attention_loss([s1, s2], [t1, t2], mask)
    assert loss.item() == pytest.approx((layer1 + layer2) / 2)

    # two heads, batch of two with different padding: sum / (valid pairs * H)
    mask2 = torch.tensor([[1, 1, 0], [1, 1, 1]])
    s = torch.zeros(2, 2, 3, 3)
    t = torch.full((2, 2, 3, 3), 2.0)
    t[0, :, :, 2] = NEG
    valid_pairs = 4 + 9
    expected = (valid_pairs * 2 * 4.0) / (valid_pairs * 2)
    assert attention_loss([s], [t], mask2).item() == pytest.approx(expected)


def test_attention_loss_head_mismatch() -> None:
    mask = torch.ones(1, 2)
    with pytest.raises(TinyDistillError, match="head"):
        attention_loss([torch.zeros(1, 2, 2, 2)], [torch.zeros(1, 4, 2, 2)], mask)


def _set_linear(lin: torch.nn.Linear, weight: list[list[float]], bias: list[float]) -> None:
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(weight))
        lin.bias.copy_(torch.tensor(bias))


def test_hidden_loss_hand_computed() -> None:
    proj = HiddenProjection(2, 2, n_layers=1)
    _set_linear(proj.projs[1], [[0.5, 0.0], [0.0, 0.5]], [1.0, 0.0])  # x/2 + [1, 0]
    mask = torch.tensor([[1, 1, 0]])
    s = torch.tensor([[[2.0, 4.0], [6.0, 8.0], [100.0, 100.0]]])  # -> [2, 2], [4, 4], (padding)
    t = torch.tensor([[[1.0, 2.0], [4.0, 5.0], [float("nan"), 0.0]]])
    loss = hidden_loss([s], [t], proj, mask, indices=[1])
    # diffs [1, 0], [0, -1] -> 2 / (2 tokens * 2 dims)
    assert loss.item() == pytest.approx(0.5)


def test_hidden_and_embedding_loss_vs_numpy() -> None:
    torch.manual_seed(0)
    proj = HiddenProjection(2, 3, n_layers=2)
    w_e, b_e = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), np.array([0.0, 0.5, 0.0])
    w_h, b_h = np.array([[2.0, 0.0], [0.0, -1.0], [0.5, 0.5]]), np.array([1.0, 0.0, -1.0])
    _set_linear(proj.projs[0], w_e.tolist(), b_e.tolist())
    _set_linear(proj.projs[1], w_h.tolist(), b_h.tolist())
    mask = np.array([[1, 1, 0], [1, 0, 0]])
    s = [torch.randn(2, 3, 2) for _ in range(3)]
    t = [torch.randn(2, 3, 3) for _ in range(3)]

    def manual(x: torch.Tensor, y: torch.Tensor, w: np.ndarray, b: np.ndarray) -> float:
        p = x.numpy() @ w.T + b
        sq = ((p - y.numpy()) ** 2).sum(-1)  # (B, T)
        return float((sq * mask).sum() / (mask.sum() * 3))

    m = torch.tensor(mask)
    per_layer = [manual(s[0], t[0], w_e, b_e), manual(s[1], t[1], w_h, b_h), manual(s[2], t[2], w_h, b_h)]
    assert embedding_loss(s[0], t[0], proj, m).item() == pytest.approx(per_layer[0], rel=1e-5)
    assert hidden_loss(s, t, proj, m).item() == pytest.approx(sum(per_layer) / 3, rel=1e-5)
    assert hidden_loss(s[1:], t[1:], proj, m, indices=[1, 2]).item() == pytest.approx(
        sum(per_layer[1:]) / 2, rel=1e-5
    )


def test_hidden_projection_parameter_counts() -> None:
    def count(p: HiddenProjection) -> int:
        return sum(x.numel() for x in p.parameters())

    per = 4 * 8 + 8
    assert count(HiddenProjection(4, 8, n_layers=3)) == 2 * per
    assert count(HiddenProjection(4, 8, n_layers=3, shared=False)) == 4 * per
    assert count(HiddenProjection(8, 8, n_layers=3, identity_if_equal=True)) == 0
    assert count(HiddenProjection(8, 8, n_layers=3)) == 2 * (8 * 8 + 8)
    shared = HiddenProjection(4, 8, n_layers=3)
    assert shared.slot(0) == 0 and {shared.slot(i) for i in (1, 2, 3)} == {1}
    assert shared(torch.zeros(1, 2, 4), 3).shape == (1, 2, 8)
    with pytest.raises(IndexError):
        shared(torch.zeros(1, 2, 4), 4)


def _np_soft_ce(s: np.ndarray, t: np.ndarray, temp: float) -> float:
    def softmax(z: np.ndarray) -> np.ndarray:
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    return float(np.mean(-(softmax(t / temp) * np.log(softmax(s / temp))).sum(-1)))


@pytest.mark.parametrize("temp", [1.0, 2.0])
def test_soft_cross_entropy_vs_numpy(temp: float) -> None:
    s = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    t = np.array([[0.5, 1.5, -0.5], [2.0, 0.0, 1.0]])
    got = soft_cross_entropy(torch.tensor(s), torch.tensor(t), temperature=temp).item()
    assert got == pytest.approx(_np_soft_ce(s, t, temp), rel=1e-6)
    assert prediction_loss(
        torch.tensor(s), torch.tensor(t), temp, is_regression=False
    ).item() == pytest.approx(got)


def test_soft_cross_entropy_hand_value_and_hard_limit() -> None:
    # uniform teacher over 2 classes, student logits (0, ln 3): p = (1/4, 3/4)
    s = torch.tensor([[0.0, math.log(3.0)]])
    t = torch.zeros(1, 2)
    expected = -0.5 * (math.log(0.25) + math.log(0.75))
    assert soft_cross_entropy(s, t).item() == pytest.approx(expected, rel=1e-6)
    # a very peaked teacher reduces to the ordinary cross-entropy with its argmax labels
    s = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    t = torch.tensor([[0.0, 0.0, 50.0], [50.0, 0.0, 0.0]])
    assert soft_cross_entropy(s, t).item() == pytest.approx(
        F.cross_entropy(s, torch.tensor([2, 0])).item(), rel=1e-5
    )


def test_regression_loss_targets_teacher_not_gold() -> None:
    s = torch.tensor([[1.0], [2.0]])
    teacher = torch.tensor([[0.0], [4.0]])
    gold = torch.tensor([1.0, 2.0])  # the student matches the gold label exactly
    expected = ((1 - 0) ** 2 + (2 - 4) ** 2) / 2
    assert regression_prediction_loss(s, teacher).item() == pytest.approx(expected)
    assert F.mse_loss(s.squeeze(1), gold).item() == 0.0
    assert prediction_loss(s, teacher.squeeze(1), 1.0, is_regression=True).item() == pytest.approx(expected)


def test_reps_container() -> None:
    reps = Reps(
        hidden=[torch.zeros(1, 2, 4)] * 3, attn_scores=[], logits=None, attention_mask=torch.ones(1, 2)
    )
    assert reps.n_layers == 2
