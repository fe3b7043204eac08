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
    """FIFO memory of the last ``size`` (D,) vectors and their sample fingerprints.

    Its state is in buffers, so a training checkpoint holds it and a resumed run sees the same
    negatives. Under several processes every process pushes the rows of all of them (gathered), so
    the memories stay equal and hold what one process would.
    """

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.size = int(size)
        self.register_buffer("feats", torch.zeros(self.size, dim))
        self.register_buffer("ids", torch.full((self.size,), -1, dtype=torch.int64))
        self.register_buffer("state", torch.zeros(2, dtype=torch.int64))  # write pointer, count

    @property
    def ptr(self) -> int:
        return int(self.state[0])

    @property
    def count(self) -> int:
        return int(self.state[1])

    def recent(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``min(n, count)`` most recently pushed vectors (k, D) and fingerprints (k,)."""
        k = max(0, min(int(n), self.count))
        idx = (self.ptr - 1 - torch.arange(k, device=self.feats.device)) % max(self.size, 1)
        return self.feats[idx], self.ids[idx]

    @torch.no_grad()
    def push(self, feats: torch.Tensor, ids: torch.Tensor) -> None:
        if self.size == 0:
            return
        feats, ids = gather_rows(feats.detach()), gather_rows(ids.detach())
        feats, ids = feats[-self.size :], ids[-self.size :]
        idx = (self.ptr + torch.arange(len(feats), device=self.feats.device)) % self.size
        self.feats[idx] = feats.to(self.feats.dtype)
        self.ids[idx] = ids.to(self.ids.device)
        self.state[0] = (self.ptr + len(feats)) % self.size
        self.state[1] = min(self.size, self.count + len(feats))


def world() -> tuple[int, int]:
    """(rank, world size) of the process group, (0, 1) without one."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_rows(x: torch.Tensor, differentiable: bool = False) -> torch.Tensor:
    """The rows of ``x`` from every process, in rank order (shares may differ by a row).

    ``differentiable``: gradients flow back to each process's own rows (in-batch negatives that
    carry gradients, as in one process). Without a process group, ``x`` itself.
    """
    return _gather(x, differentiable)[0]


def _gather(x: torch.Tensor, differentiable: bool = False) -> tuple[torch.Tensor, list[int]]:
    """``gather_rows`` and the number of rows each process gave."""
    size = world()[1]
    if size == 1:
        return x, [x.shape[0]]
    dist = torch.distributed
    n = torch.tensor([x.shape[0]], device=x.device)
    counts = [torch.zeros_like(n) for _ in range(size)]
    dist.all_gather(counts, n)
    sizes = [int(c.item()) for c in counts]
    most = max(sizes)
    padded = torch.cat([x, x.new_zeros((most - x.shape[0], *x.shape[1:]))]) if x.shape[0] < most else x
    if differentiable:
        from torch.distributed.nn.functional import all_gather

        parts = list(all_gather(padded))
    else:
        parts = [torch.empty_like(padded) for _ in range(size)]
        dist.all_gather(parts, padded)
    return torch.cat([p[:s] for p, s in zip(parts, sizes, strict=True)]), sizes


def in_batch_negatives(
    rows: torch.Tensor, ids: torch.Tensor, cap: int, differentiable: bool = False
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The in-batch negatives of each local row: the next ``k`` rows of the *global* batch (cyclic).

    Returns (B, k, ...) negatives, (B, k) validity (a negative with the anchor's own token sequence is
    not one) and ``k = min(global batch - 1, cap)``. One process: the rows of its batch; several: of
    all processes' rows in rank order, so the negatives are those one process would use.
    """
    all_rows, sizes = _gather(rows, differentiable)
    all_ids = gather_rows(ids)
    offset = sum(sizes[: world()[0]])
    total = all_rows.shape[0]
    k = max(0, min(total - 1, int(cap)))
    local = offset + torch.arange(rows.shape[0], device=rows.device)[:, None]
    idx = (local + torch.arange(1, k + 1, device=rows.device)[None, :]) % total
    return all_rows[idx], all_ids[idx] != ids[:, None], k


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
