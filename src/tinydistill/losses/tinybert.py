"""TinyBERT Transformer-distillation losses (Jiao et al. 2020, "TinyBERT: Distilling BERT for NLU").

Student layer m learns from teacher layer g(m) (see :mod:`tinydistill.mapping`) through

* attention loss ``L_attn = 1/h sum_i MSE(A_i^S, A_i^T)`` on pre-softmax attention scores,
* hidden-state loss ``L_hidn = MSE(H^S W_h, H^T)`` with a learnable projection ``W_h``,
* embedding loss ``L_embd = MSE(E^S W_e, E^T)``,
* prediction loss ``L_pred = CE(z^T / t, z^S / t)`` (soft cross-entropy; MSE for regression tasks).

Padding positions are excluded everywhere: they are zeroed with ``torch.where`` before any arithmetic so
that additive-mask values (-3.4e38, -inf) never produce inf/NaN values or gradients. Losses are computed
in float32 whatever the input dtype. Teacher tensors are used as given: compute them under ``no_grad``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from tinydistill.errors import TinyDistillError


def _check_pairs(name: str, s: Sequence[torch.Tensor], t: Sequence[torch.Tensor]) -> None:
    if len(s) != len(t):
        raise TinyDistillError(f"{name}: {len(s)} student tensors but {len(t)} teacher tensors")
    if not s:
        raise TinyDistillError(f"{name}: no layers given (were they captured by the model?)")


def attention_loss(
    s_scores: Sequence[torch.Tensor], t_scores: Sequence[torch.Tensor], attention_mask: torch.Tensor
) -> torch.Tensor:
    """Mean over mapped layers of the masked MSE between (B, H, T, T) pre-softmax attention scores.

    Only entries whose query i and key j are both real tokens (``mask[b,i] * mask[b,j] = 1``) count:
    ``sum_{b,h,i,j valid} (S - T)^2 / (n_valid_pairs * H)``. Invalid entries are zeroed on both tensors
    before subtracting. Student and teacher must have the same number of heads.
    """
    _check_pairs("attention_loss", s_scores, t_scores)
    mask = attention_mask.bool()
    valid = (mask[:, :, None] & mask[:, None, :])[:, None]  # (B, 1, T, T)
    n_pairs = valid.sum()
    losses = []
    for s, t in zip(s_scores, t_scores, strict=True):
        if s.shape[1] != t.shape[1]:
            raise TinyDistillError(
                f"attention loss needs equal head counts: student has {s.shape[1]}, teacher has {t.shape[1]}"
            )
        if s.shape != t.shape:
            raise TinyDistillError(
                f"attention score shapes differ: student {tuple(s.shape)}, teacher {tuple(t.shape)}"
            )
        zero = s.new_zeros((), dtype=torch.float32)
        s32 = torch.where(valid, s.float(), zero)
        t32 = torch.where(valid, t.float(), zero)
        denom = (n_pairs * s.shape[1]).clamp(min=1)
        losses.append((s32 - t32).pow(2).sum() / denom)
    return torch.stack(losses).mean()


class HiddenProjection(nn.Module):
    """Learnable ``W`` (``nn.Linear(d_student, d_teacher)``, with bias) mapping student to teacher width.

    Index 0 is the embedding layer (``W_e``), indices 1..n_layers the student transformer layers (``W_h``).
    ``shared=True`` (TinyBERT): one Linear for the embeddings and one shared by all layers 1..n_layers.
    ``shared=False``: a separate Linear for every index 0..n_layers.
    ``identity_if_equal=True`` uses ``nn.Identity`` (no parameters) when the widths already match.
    """

    def __init__(
        self,
        d_student: int,
        d_teacher: int,
        n_layers: int,
        shared: bool = True,
        identity_if_equal: bool = False,
    ) -> None:
        super().__init__()
        self.d_student, self.d_teacher, self.n_layers, self.shared = d_student, d_teacher, n_layers, shared
        n_proj = 2 if shared else n_layers + 1
        use_identity = identity_if_equal and d_student == d_teacher
        self.projs = nn.ModuleList(
            nn.Identity() if use_identity else nn.Linear(d_student, d_teacher) for _ in range(n_proj)
        )

    def slot(self, index: int) -> int:
        """Position in ``self.projs`` used for layer ``index`` (0 = embeddings)."""
        if not 0 <= index <= self.n_layers:
            raise IndexError(f"projection index {index} out of range 0..{self.n_layers}")
        if self.shared:
            return 0 if index == 0 else 1
        return index

    def forward(self, x: torch.Tensor, index: int) -> torch.Tensor:
        """Project student states ``x`` (..., d_student) of layer ``index`` to (..., d_teacher)."""
        return self.projs[self.slot(index)](x)


def hidden_loss(
    s_hidden: Sequence[torch.Tensor],
    t_hidden: Sequence[torch.Tensor],
    proj: HiddenProjection,
    attention_mask: torch.Tensor,
    indices: Sequence[int] | None = None,
) -> torch.Tensor:
    """Mean over layers of ``MSE(proj(H_s, idx), H_t)`` over real tokens only.

    Per layer: ``sum_{valid b,t; d} (H_s W - H_t)^2 / (n_valid_tokens * D_t)``. ``indices`` gives the
    projection index of each list entry; by default ``0..len-1``, i.e. the lists start at the embedding
    layer (pass ``range(1, M+1)`` when the embeddings are left out).
    """
    _check_pairs("hidden_loss", s_hidden, t_hidden)
    idx = list(range(len(s_hidden))) if indices is None else list(indices)
    if len(idx) != len(s_hidden):
        raise TinyDistillError(f"hidden_loss: {len(idx)} indices for {len(s_hidden)} layers")
    valid = attention_mask.bool()[:, :, None]  # (B, T, 1)
    n_tokens = valid.sum()
    losses = []
    for i, s, t in zip(idx, s_hidden, t_hidden, strict=True):
        p = proj(s, i).float()
        if p.shape != t.shape:
            raise TinyDistillError(
                f"hidden shapes differ after projection: {tuple(p.shape)} vs {tuple(t.shape)}"
            )
        zero = p.new_zeros(())
        diff = torch.where(valid, p, zero) - torch.where(valid, t.float(), zero)
        losses.append(diff.pow(2).sum() / (n_tokens * t.shape[-1]).clamp(min=1))
    return torch.stack(losses).mean()


def embedding_loss(
    s_emb: torch.Tensor, t_emb: torch.Tensor, proj: HiddenProjection, attention_mask: torch.Tensor
) -> torch.Tensor:
    """TinyBERT embedding loss ``MSE(E_s W_e, E_t)`` over real tokens (projection slot 0)."""
    return hidden_loss([s_emb], [t_emb], proj, attention_mask, indices=[0])


def soft_cross_entropy(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """TinyBERT prediction loss: ``mean_b -sum_c softmax(z_t/T)_c * log_softmax(z_s/T)_c``.

    Unlike Hinton-style KD the result is NOT multiplied by ``T^2`` (TinyBERT uses T = 1).
    """
    if temperature <= 0:
        raise TinyDistillError(f"temperature must be positive, got {temperature}")
    if student_logits.shape != teacher_logits.shape:
        raise TinyDistillError(
            f"logit shapes differ: student {tuple(student_logits.shape)} vs {tuple(teacher_logits.shape)}"
        )
    target = F.softmax(teacher_logits.float() / temperature, dim=-1)
    log_prob = F.log_softmax(student_logits.float() / temperature, dim=-1)
    return -(target * log_prob).sum(dim=-1).mean()


def regression_prediction_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """``MSE(z_s, z_t)`` between student and teacher regression outputs (B, 1): the teacher, not the gold."""
    if student_logits.numel() != teacher_logits.numel():
        raise TinyDistillError(
            f"regression output sizes differ: {tuple(student_logits.shape)} vs {tuple(teacher_logits.shape)}"
        )
    return F.mse_loss(student_logits.float().reshape(-1), teacher_logits.float().reshape(-1))


def prediction_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 1.0,
    is_regression: bool = False,
) -> torch.Tensor:
    """Soft cross-entropy for classification, MSE to the teacher for regression."""
    if is_regression:
        return regression_prediction_loss(student_logits, teacher_logits)
    return soft_cross_entropy(student_logits, teacher_logits, temperature)
