"""Helpers shared by the representation losses: pooling, sample fingerprints, a FIFO feature queue,
and parsing of a loss term's options from a recipe.

* ``pool(h, mask, "cls")`` is ``h[:, 0]``; ``pool(h, mask, "mean")`` is the mean over real tokens,
  ``sum_t m_t h_t / sum_t m_t``.
* ``fingerprints(input_ids, mask)`` gives one integer per sample, equal for equal token sequences
  (padding ignored); contrastive losses use it so that a sample (or an identical copy of it) is never
  its own negative, in the batch or in a memory queue.
* :class:`FeatureQueue` keeps the last ``size`` detached feature vectors (and their fingerprints).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

import torch
from torch import nn

from tinydistill.errors import TinyDistillError

POOLINGS = ("cls", "mean")
_PRIME = 2**31 - 1
_BASE = 1_000_003


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, how: str) -> torch.Tensor:
    """(B, T, D) -> (B, D): the [CLS] (first) token or the mean over real tokens, in float32."""
    if how == "cls":
        return hidden[:, 0].float()
    if how == "mean":
        m = attention_mask.to(torch.float32)[:, :, None]
        return (hidden.float() * m).sum(1) / m.sum(1).clamp(min=1.0)
    raise TinyDistillError(f"unknown pooling '{how}' (use one of {', '.join(POOLINGS)})")


def fingerprints(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) token ids -> (B,) int64 polynomial hashes of the real tokens (collisions are negligible)."""
    length = input_ids.shape[1]
    weights = torch.tensor([pow(_BASE, i, _PRIME) for i in range(length)], dtype=torch.int64)
    ids = input_ids.long() * attention_mask.long()
    return (ids * weights.to(ids.device)).sum(-1)


class FeatureQueue(nn.Module):
    """FIFO memory of the last ``size`` (D,) vectors and their sample fingerprints (not saved)."""

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.size = int(size)
        self.register_buffer("feats", torch.zeros(self.size, dim), persistent=False)
        self.register_buffer("ids", torch.full((self.size,), -1, dtype=torch.int64), persistent=False)
        self.ptr = 0
        self.count = 0

    def recent(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``min(n, count)`` most recently pushed vectors (k, D) and fingerprints (k,)."""
        k = max(0, min(int(n), self.count))
        idx = (self.ptr - 1 - torch.arange(k, device=self.feats.device)) % max(self.size, 1)
        return self.feats[idx], self.ids[idx]

    @torch.no_grad()
    def push(self, feats: torch.Tensor, ids: torch.Tensor) -> None:
        if self.size == 0:
            return
        feats, ids = feats.detach()[-self.size :], ids.detach()[-self.size :]
        idx = (self.ptr + torch.arange(len(feats), device=self.feats.device)) % self.size
        self.feats[idx] = feats.to(self.feats.dtype)
        self.ids[idx] = ids.to(self.ids.device)
        self.ptr = (self.ptr + len(feats)) % self.size
        self.count = min(self.size, self.count + len(feats))


T = TypeVar("T")


def parse_options(cls: type[T], raw: Mapping[str, Any] | None, term: str) -> T:
    """A term's options dataclass from a recipe mapping; unknown keys or bad values -> one-line error."""
    if raw is not None and not isinstance(raw, Mapping):
        raise TinyDistillError(f"options of loss term '{term}' must be a mapping, got {raw!r}")
    values = dict(raw or {})
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise TinyDistillError(
            f"unknown option(s) for loss term '{term}': {', '.join(unknown)} (known: {', '.join(known)})"
        )
    opts = cls(**values)
    check = getattr(opts, "check", None)
    if check is not None:
        check()
    return opts


def require(ok: bool, message: str) -> None:
    if not ok:
        raise TinyDistillError(message)
