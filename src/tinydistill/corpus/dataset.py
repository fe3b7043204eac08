"""Read a prepared corpus back: memory-mapped shards, deterministic shuffling, a resumable position.

``PackedCorpus`` is a ``torch.utils.data.Dataset`` over every row of every shard (``np.load(...,
mmap_mode="r")``: only the rows a batch touches are read from disk). ``BatchStream`` walks it in
batches: epoch ``e`` visits the rows in the order ``numpy.random.default_rng([seed, e]).permutation``,
drops the last incomplete batch, and its :class:`Position` ``(epoch, index)`` (rows of the epoch
already consumed) is all a checkpoint needs to continue with exactly the next batch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from tinydistill.corpus.pack import MANIFEST
from tinydistill.errors import TinyDistillError


def load_manifest(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_dir():
        raise TinyDistillError(f"corpus dir not found: {path}")
    file = path / MANIFEST
    if not file.exists():
        raise TinyDistillError(
            f"{path} has no {MANIFEST}: not a prepared corpus "
            "(run tinydistill corpus first, or it was interrupted)"
        )
    try:
        manifest = json.loads(file.read_text())
        rows = [int(s["rows"]) for s in manifest["shards"]]
        int(manifest["max_seq_length"])
    except (ValueError, KeyError, TypeError) as exc:
        raise TinyDistillError(f"{file}: invalid corpus manifest ({exc})") from exc
    if not rows or sum(rows) == 0:
        raise TinyDistillError(f"{path}: the prepared corpus is empty")
    for shard in manifest["shards"]:
        for key in ("file", "lengths"):
            if not (path / shard[key]).exists():
                raise TinyDistillError(f"{path}: shard file missing: {shard[key]}")
        _check_shard(path, shard, int(manifest["max_seq_length"]))
    return manifest


def _check_shard(path: Path, shard: dict[str, Any], max_len: int) -> None:
    """A shard's arrays must open and hold the rows the manifest says (a copy cut short does not)."""
    try:
        ids = np.load(path / shard["file"], mmap_mode="r")
        lengths = np.load(path / shard["lengths"], mmap_mode="r")
    except (ValueError, OSError, EOFError) as exc:
        raise TinyDistillError(
            f"{path}: shard {shard['file']} is damaged ({str(exc).splitlines()[0]})"
        ) from None
    rows = int(shard["rows"])
    if ids.shape != (rows, max_len) or lengths.shape != (rows,):
        raise TinyDistillError(
            f"{path}: shard {shard['file']} holds {ids.shape[0]} rows of {ids.shape[1:]}, the manifest "
            f"says {rows} of {max_len}: the corpus is damaged; prepare it again (tinydistill corpus)"
        )


class PackedCorpus(Dataset):
    """Rows of a prepared corpus: ``input_ids``, ``attention_mask``, ``token_type_ids`` (zeros)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.manifest = load_manifest(self.path)
        self.max_seq_length = int(self.manifest["max_seq_length"])
        self.pad_id = int(self.manifest["pad_token_id"])
        self.rows = np.array([int(s["rows"]) for s in self.manifest["shards"]], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.rows)])
        self._ids: list[np.ndarray | None] = [None] * len(self.rows)
        self._lengths: list[np.ndarray | None] = [None] * len(self.rows)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def _shard(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self._ids[k] is None:
            shard = self.manifest["shards"][k]
            self._ids[k] = np.load(self.path / shard["file"], mmap_mode="r")
            self._lengths[k] = np.load(self.path / shard["lengths"], mmap_mode="r")
        return self._ids[k], self._lengths[k]

    def rows_of(self, indices: np.ndarray | list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids (n, max_len) int64 and lengths (n,) of global row ``indices``."""
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"row index out of range 0..{len(self) - 1}")
        shard_of = np.searchsorted(self.starts, indices, side="right") - 1
        ids = np.empty((len(indices), self.max_seq_length), dtype=np.int64)
        lengths = np.empty(len(indices), dtype=np.int64)
        for k in np.unique(shard_of):
            where = np.nonzero(shard_of == k)[0]
            local = indices[where] - self.starts[k]
            shard_ids, shard_lengths = self._shard(int(k))
            ids[where] = shard_ids[local]
            lengths[where] = shard_lengths[local]
        return ids, lengths

    def batch(self, indices: np.ndarray | list[int]) -> dict[str, torch.Tensor]:
        """A padded batch, trimmed to its longest row."""
        ids, lengths = self.rows_of(indices)
        width = int(lengths.max()) if len(lengths) else 0
        ids = torch.from_numpy(np.ascontiguousarray(ids[:, :width]))
        mask = (torch.arange(width)[None, :] < torch.from_numpy(lengths)[:, None]).long()
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        ids, lengths = self.rows_of([index])
        n = int(lengths[0])
        row = torch.from_numpy(ids[0, :n].copy())
        return {
            "input_ids": row,
            "attention_mask": torch.ones_like(row),
            "token_type_ids": torch.zeros_like(row),
        }


@dataclass(frozen=True)
class Position:
    """Where a :class:`BatchStream` stands: ``index`` rows of epoch ``epoch`` consumed."""

    epoch: int = 0
    index: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "index": self.index}

    @classmethod
    def from_dict(cls, data: dict[str, int]) -> Position:
        return cls(int(data["epoch"]), int(data["index"]))


class BatchStream:
    """Endless batches over a :class:`PackedCorpus` in a (seed, epoch)-determined order."""

    def __init__(self, corpus: PackedCorpus, batch_size: int, seed: int = 42) -> None:
        if batch_size < 1:
            raise TinyDistillError(f"batch_size must be positive, got {batch_size}")
        if len(corpus) < batch_size:
            raise TinyDistillError(
                f"the corpus has {len(corpus)} sequences, fewer than one batch of {batch_size}"
            )
        self.corpus, self.batch_size, self.seed = corpus, batch_size, seed
        self.batches_per_epoch = len(corpus) // batch_size

    def order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.corpus))

    def indices(self, start: Position = Position()) -> Iterator[tuple[np.ndarray, Position]]:
        """``(row indices, position after this batch)`` from ``start`` on, forever."""
        epoch, index = start.epoch, start.index
        usable = self.batches_per_epoch * self.batch_size
        if index % self.batch_size or index > usable:
            raise TinyDistillError(f"invalid corpus position {start} for batch size {self.batch_size}")
        while True:
            if index >= usable:
                epoch, index = epoch + 1, 0
            order = self.order(epoch)
            while index < usable:
                rows = order[index : index + self.batch_size]
                index += self.batch_size
                yield rows, Position(epoch, index)
            epoch, index = epoch + 1, 0

    def rows(self, start: int = 0) -> Iterator[np.ndarray]:
        """Row indices of global batches ``start``, ``start + 1``, ... (the training loop's interface)."""
        epoch, index = divmod(start, self.batches_per_epoch)
        for rows, _ in self.indices(Position(epoch, index * self.batch_size)):
            yield rows

    def collate(self, rows: np.ndarray) -> dict[str, torch.Tensor]:
        return self.corpus.batch(rows)

    def batches(self, start: Position = Position()) -> Iterator[tuple[dict[str, torch.Tensor], Position]]:
        for rows, position in self.indices(start):
            yield self.corpus.batch(rows), position
