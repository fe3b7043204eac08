"""CRD: contrastive representation distillation (Tian, Krishnan & Isola, ICLR 2020), InfoNCE variant.

Student and teacher sentence features (the last layer's [CLS] state, or its mean over real tokens)
are embedded into a shared space by learnable linear heads and L2-normalised::

    u_i = normalize(W_s h^S_i + b_s),    v_i = normalize(W_t h^T_i + b_t)      (dimension feat_dim = 128)

The paper's critic ``exp(u . v / tau)`` (tau = 0.07) scores pairs; the positive pair is (u_i, v_i),
negatives pair u_i with the teacher features of *other* samples, and, symmetrically, v_i with the
student features of other samples. This implementation uses the softmax-contrastive (InfoNCE) form
over those negatives instead of the paper's NCE with a uniform noise normaliser ``Z``::

    L_{s->t} = mean_i -log( e^{u_i.v_i/tau} / (e^{u_i.v_i/tau} + sum_{n in N_i^T} e^{u_i.n/tau}) )
    L_{t->s} = mean_i -log( e^{v_i.u_i/tau} / (e^{v_i.u_i/tau} + sum_{n in N_i^S} e^{v_i.n/tau}) )
    L_crd    = L_{s->t} + L_{t->s}

``N_i^T`` = the teacher features of the other samples in the batch plus the most recent entries of a
FIFO memory of past teacher features (``bank_size`` entries, detached: the paper's memory bank, with
queue replacement instead of momentum 0.5 updates of a per-sample slot); likewise ``N_i^S`` from a
student-feature memory. At most ``negatives`` (paper: 16384; default here 4096) per anchor; a
negative with the anchor's token sequence is skipped. The teacher head ``W_t`` is trained by this
loss (the teacher itself stays frozen). The CRD paper trains with ``L_CE + beta * L_crd`` (beta = 0.8),
optionally plus KD; see ``recipes/crd.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tinydistill.losses.common import POOLINGS, FeatureQueue, in_batch_negatives, pool, require
from tinydistill.losses.reps import Reps


def info_nce(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negatives: torch.Tensor,
    valid: torch.Tensor | None,
    temperature: float,
    memory: torch.Tensor | None = None,
    memory_valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """``mean_i -log softmax([a_i.p_i, a_i.n_i1, ...] / tau)[0]``.

    ``anchor``, ``positive``: (B, F); ``negatives``: (B, K, F) per anchor, ``valid`` (B, K) masks them;
    ``memory``: (Q, F) negatives shared by all anchors, ``memory_valid`` (B, Q).
    """
    pos = (anchor * positive).sum(-1, keepdim=True) / temperature  # (B, 1)
    neg = torch.einsum("bf,bkf->bk", anchor, negatives) / temperature  # (B, K)
    if valid is not None:
        neg = neg.masked_fill(~valid, float("-inf"))
    logits = [pos, neg]
    if memory is not None and len(memory):
        mem = anchor @ memory.T.to(anchor.dtype) / temperature  # (B, Q)
        logits.append(mem if memory_valid is None else mem.masked_fill(~memory_valid, float("-inf")))
    full = torch.cat(logits, dim=1)
    return (torch.logsumexp(full, dim=1) - pos[:, 0]).mean()


@dataclass
class CRDOptions:
    feat_dim: int = 128
    temperature: float = 0.07
    bank_size: int = 4096
    negatives: int = 4096
    representation: str = "cls"

    def check(self) -> None:
        require(int(self.feat_dim) >= 1, f"crd feat_dim must be >= 1, got {self.feat_dim}")
        require(float(self.temperature) > 0, f"crd temperature must be positive, got {self.temperature}")
        require(int(self.bank_size) >= 0, f"crd bank_size must be >= 0, got {self.bank_size}")
        require(int(self.negatives) >= 1, f"crd negatives must be >= 1, got {self.negatives}")
        require(
            self.representation in POOLINGS,
            f"crd representation must be one of {', '.join(POOLINGS)}, got '{self.representation}'",
        )


class CRDLoss(nn.Module):
    """The ``crd`` term: embedding heads for both models, two feature memories, two-sided InfoNCE."""

    def __init__(self, opts: CRDOptions, d_student: int, d_teacher: int) -> None:
        super().__init__()
        self.opts = opts
        self.embed_s = nn.Linear(d_student, opts.feat_dim)
        self.embed_t = nn.Linear(d_teacher, opts.feat_dim)
        self.bank_s = FeatureQueue(opts.bank_size, opts.feat_dim)
        self.bank_t = FeatureQueue(opts.bank_size, opts.feat_dim)

    @classmethod
    def build(cls, opts: CRDOptions, d_student: int, d_teacher: int, n_layers: int) -> CRDLoss:
        return cls(opts, d_student, d_teacher)

    def embed(self, s: Reps, t: Reps) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised (B, feat_dim) student and teacher features of the last layer."""
        hs = pool(s.hidden[-1], s.attention_mask, self.opts.representation)
        ht = pool(t.hidden[-1], t.attention_mask, self.opts.representation)
        u = F.normalize(self.embed_s(hs).float(), dim=-1)
        v = F.normalize(self.embed_t(ht).float(), dim=-1)
        return u, v

    def _contrast(
        self, anchor: torch.Tensor, others: torch.Tensor, ids: torch.Tensor, bank: FeatureQueue
    ) -> torch.Tensor:
        """InfoNCE of ``anchor`` vs ``others`` (row i: the positive; other rows: negatives) and the memory."""
        # the features of both sides carry gradients (the embedding heads train): gather with them
        negatives, valid, k_batch = in_batch_negatives(
            others, ids, int(self.opts.negatives), differentiable=True
        )
        feats, bank_ids = bank.recent(int(self.opts.negatives) - k_batch)
        return info_nce(
            anchor,
            others,
            negatives,
            valid,
            float(self.opts.temperature),
            memory=feats,
            memory_valid=bank_ids[None, :] != ids[:, None],
        )

    def forward(self, s: Reps, t: Reps, sample_ids: torch.Tensor, update: bool = True) -> torch.Tensor:
        u, v = self.embed(s, t)
        loss = self._contrast(u, v, sample_ids, self.bank_t) + self._contrast(v, u, sample_ids, self.bank_s)
        if update:
            self.bank_s.push(u, sample_ids)
            self.bank_t.push(v, sample_ids)
        return loss
