"""COS-NCE, the contrastive intermediate-layer loss of LRC-BERT (Fu et al., AAAI 2021, arXiv 2012.07335).

Angular distance ``g(a, b) = 1 - cos(a, b)``, in [0, 2]. For a mapped layer (student layer m, teacher
layer g(m)) and sample i, let ``s = W h^S_i`` be the projected student representation, ``z = h^T_i`` the
teacher's representation of the same sample (the positive) and ``n_1..n_K`` the teacher's
representations of K *other* samples (the negatives). Two bounded forms are offered:

* ``form: lrc`` (default)::

      L_i = g(s, z) + (2K - sum_k [g(s, n_k) - g(s, z)]) / (2K)
          = g(s, z) + 1 - (mean_k g(s, n_k) - g(s, z)) / 2

  This is Eq. (1) of LRC-BERT as written in a public re-implementation that follows the paper's
  notation; the paper's text itself could not be retrieved offline to check it.
* ``form: plain``::

      L_i = g(s, z) + (1/K) sum_k (2 - g(s, n_k))

Both lie in [0, 4]; they pull ``s`` towards the teacher's view of the same sample and push it away
from the teacher's views of other samples. The loss is averaged over samples (tokens for
``representation: token``) and then over the mapped layers 1..M (the embedding layer is not used).

Representation of a layer's output (B, T, D): ``mean`` (default; mean over real tokens), ``cls`` (the
first token) or ``token`` (every real token is an anchor; its negatives are the teacher's tokens at
the same position in other samples, where those are real tokens). ``W`` is a learnable
``nn.Linear(d_student, d_teacher)`` per layer (``shared_projection: true`` for one shared W).

Negatives: the other samples of the batch (sample i uses i+1, ..., i+k mod B), then, with
``bank_size > 0``, the most recent entries of a FIFO memory of past teacher representations (one
per layer; the teacher is frozen, so these are exact teacher views of earlier training samples); at
most ``negatives`` in all. A negative whose token sequence equals the anchor's is skipped. With no
negative at all (batch of one, empty bank) only ``g(s, z)`` remains.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tinydistill.losses.common import FeatureQueue, in_batch_negatives, pool, require
from tinydistill.losses.reps import Reps
from tinydistill.losses.tinybert import HiddenProjection

REPRESENTATIONS = ("mean", "cls", "token")
FORMS = ("lrc", "plain")


def angular_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``g(a, b) = 1 - cos(a, b)`` over the last dimension (broadcasting), in float32."""
    return 1.0 - F.cosine_similarity(a.float(), b.float(), dim=-1, eps=1e-8)


def cos_nce_from_distances(
    g_pos: torch.Tensor, g_neg: torch.Tensor, valid: torch.Tensor | None = None, form: str = "lrc"
) -> torch.Tensor:
    """Per-anchor COS-NCE from ``g_pos`` (...) and ``g_neg`` (..., K); ``valid`` masks negatives."""
    require(form in FORMS, f"COS-NCE form must be one of {', '.join(FORMS)}, got '{form}'")
    if valid is None:
        valid = torch.ones_like(g_neg, dtype=torch.bool)
    k = valid.sum(-1)
    mean_neg = torch.where(valid, g_neg, torch.zeros_like(g_neg)).sum(-1) / k.clamp(min=1)
    neg_term = 1.0 - (mean_neg - g_pos) / 2.0 if form == "lrc" else 2.0 - mean_neg
    return g_pos + torch.where(k > 0, neg_term, torch.zeros_like(neg_term))


def cos_nce_loss(
    student: torch.Tensor,
    positive: torch.Tensor,
    negatives: torch.Tensor,
    valid: torch.Tensor | None = None,
    form: str = "lrc",
) -> torch.Tensor:
    """Mean COS-NCE of anchors ``student`` (N, D) with ``positive`` (N, D) and ``negatives`` (N, K, D)."""
    g_pos = angular_distance(student, positive)
    g_neg = angular_distance(student[:, None, :], negatives)
    return cos_nce_from_distances(g_pos, g_neg, valid, form).mean()


@dataclass
class CosNCEOptions:
    representation: str = "mean"
    negatives: int = 1024
    bank_size: int = 0
    form: str = "lrc"
    shared_projection: bool = False

    def check(self) -> None:
        require(
            self.representation in REPRESENTATIONS,
            f"cos_nce representation must be one of {', '.join(REPRESENTATIONS)}, "
            f"got '{self.representation}'",
        )
        require(self.form in FORMS, f"cos_nce form must be one of {', '.join(FORMS)}, got '{self.form}'")
        require(int(self.negatives) >= 1, f"cos_nce negatives must be >= 1, got {self.negatives}")
        require(int(self.bank_size) >= 0, f"cos_nce bank_size must be >= 0, got {self.bank_size}")
        require(
            not (self.bank_size and self.representation == "token"),
            "cos_nce: a memory bank (bank_size > 0) needs a pooled representation (mean or cls)",
        )


class CosNCE(nn.Module):
    """COS-NCE over all mapped layers, with its projections W and optional teacher memory banks."""

    def __init__(self, opts: CosNCEOptions, d_student: int, d_teacher: int, n_layers: int) -> None:
        super().__init__()
        self.opts = opts
        self.proj = HiddenProjection(d_student, d_teacher, n_layers, shared=opts.shared_projection)
        self.banks = nn.ModuleList(FeatureQueue(opts.bank_size, d_teacher) for _ in range(n_layers))

    @classmethod
    def build(cls, opts: CosNCEOptions, d_student: int, d_teacher: int, n_layers: int) -> CosNCE:
        return cls(opts, d_student, d_teacher, n_layers)

    def forward(
        self, s: Reps, t: Reps, layers: list[int], sample_ids: torch.Tensor, update: bool = True
    ) -> torch.Tensor:
        mask = s.attention_mask
        losses = []
        for m, n in enumerate(layers, start=1):
            if self.opts.representation == "token":
                losses.append(self._token_loss(self.proj(s.hidden[m], m), t.hidden[n], mask, sample_ids))
                continue
            hs = self.proj(pool(s.hidden[m], mask, self.opts.representation), m)
            ht = pool(t.hidden[n], mask, self.opts.representation)
            losses.append(self._pooled_loss(hs, ht, sample_ids, self.banks[m - 1]))
            if update:
                self.banks[m - 1].push(F.normalize(ht, dim=-1), sample_ids)
        return torch.stack(losses).mean()

    def _pooled_loss(
        self, hs: torch.Tensor, ht: torch.Tensor, ids: torch.Tensor, bank: FeatureQueue
    ) -> torch.Tensor:
        negatives, valid, k_batch = in_batch_negatives(ht, ids, int(self.opts.negatives))
        g_pos = angular_distance(hs, ht)
        g_neg = angular_distance(hs[:, None, :], negatives)  # (B, k_batch)
        feats, bank_ids = bank.recent(int(self.opts.negatives) - k_batch)
        if len(feats):
            g_bank = 1.0 - F.normalize(hs, dim=-1) @ feats.T.to(hs.dtype)  # (B, k_bank)
            g_neg = torch.cat([g_neg, g_bank], dim=1)
            valid = torch.cat([valid, bank_ids[None, :] != ids[:, None]], dim=1)
        return cos_nce_from_distances(g_pos, g_neg, valid, self.opts.form).mean()

    def _token_loss(
        self, hs: torch.Tensor, ht: torch.Tensor, mask: torch.Tensor, ids: torch.Tensor
    ) -> torch.Tensor:
        batch = hs.shape[0]
        k_batch = min(batch - 1, int(self.opts.negatives))
        real = mask.bool()
        g_pos = angular_distance(hs, ht)  # (B, T)
        g_neg, valid = [], []
        for k in range(1, k_batch + 1):
            other = torch.roll(ht, shifts=-k, dims=0)
            g_neg.append(angular_distance(hs, other))
            valid.append(
                real & torch.roll(real, shifts=-k, dims=0) & (torch.roll(ids, -k, 0) != ids)[:, None]
            )
        if g_neg:
            per_token = cos_nce_from_distances(
                g_pos, torch.stack(g_neg, -1), torch.stack(valid, -1), self.opts.form
            )
        else:
            per_token = g_pos
        zero = torch.zeros_like(per_token)
        return torch.where(real, per_token, zero).sum() / real.sum().clamp(min=1)
