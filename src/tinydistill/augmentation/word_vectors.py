"""Multi-piece words' candidates: nearest neighbours by cosine similarity among word vectors.

The vectors are a GloVe / word2vec text file (:meth:`WordVectors.load`, streamed, first ``limit``
words as the paper's 100,000) or, without one, the masked LM's own input-embedding matrix restricted
to whole-word tokens (:meth:`WordVectors.from_embeddings`); a multi-piece word's vector there is the
mean of its pieces' embeddings. Queries are answered in batches with one normalised matrix product
each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tinydistill.augmentation.vocab import whole_word_table
from tinydistill.errors import TinyDistillError

__all__ = ["WordVectors"]


class WordVectors:
    """Unit-normalised word vectors with batched cosine nearest neighbours."""

    def __init__(
        self, words: list[str], matrix: torch.Tensor, piece_matrix: torch.Tensor | None = None
    ) -> None:
        self.words = words
        matrix = matrix.float()
        self.matrix = matrix / matrix.norm(dim=1, keepdim=True).clamp_min(1e-12)
        self.index: dict[str, int] = {}
        for i, w in enumerate(words):
            self.index.setdefault(w, i)
        allowed = torch.tensor([w.isalpha() for w in words], dtype=torch.bool)
        self.bias = torch.where(allowed, 0.0, -math.inf)
        self.piece_matrix = piece_matrix  # MLM input embeddings: a word's vector = mean of its pieces

    @classmethod
    def load(cls, path: str | Path, limit: int | None = 100_000) -> WordVectors:
        """A GloVe (``word v1 ... vd``) or word2vec text (``N d`` header line first) file."""
        path = Path(path)
        if not path.is_file():
            raise TinyDistillError(f"vectors file not found: {path}")
        words: list[str] = []
        rows: list[np.ndarray] = []
        dim = None
        try:
            with open(path, encoding="utf-8") as f:
                for lineno, line in enumerate(f, start=1):
                    parts = line.rstrip().split(" ")
                    if lineno == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                        dim = int(parts[1])
                        continue
                    if len(parts) < 2:
                        continue
                    try:
                        vec = np.asarray(parts[1:], dtype=np.float32)
                    except ValueError:
                        raise TinyDistillError(f"{path}:{lineno}: not a 'word number ...' line") from None
                    if dim is None:
                        dim = len(vec)
                    if len(vec) != dim:
                        raise TinyDistillError(f"{path}:{lineno}: expected {dim} numbers, found {len(vec)}")
                    words.append(parts[0])
                    rows.append(vec)
                    if limit is not None and len(words) >= limit:
                        break
        except UnicodeDecodeError:
            raise TinyDistillError(f"{path}: not a UTF-8 text vectors file (GloVe / word2vec text)") from None
        if not words:
            raise TinyDistillError(f"{path}: no word vectors")
        return cls(words, torch.from_numpy(np.stack(rows)))

    @classmethod
    def from_embeddings(cls, model: nn.Module, tokenizer) -> WordVectors:
        """The MLM's input embeddings restricted to whole-word tokens (letters only, no ``##`` pieces)."""
        weight = model.get_input_embeddings().weight.detach().float().cpu()
        allowed, words = whole_word_table(tokenizer, weight.shape[0])
        keep = np.flatnonzero(allowed)
        return cls([words[i] for i in keep], weight[torch.from_numpy(keep)], piece_matrix=weight)

    def query(self, word: str, piece_ids: Sequence[int] | None = None) -> torch.Tensor | None:
        """A word's vector: mean of its piece embeddings (embedding mode) or a lookup (exact, then lower)."""
        if self.piece_matrix is not None and piece_ids:
            return self.piece_matrix[list(piece_ids)].mean(0)
        i = self.index.get(word, self.index.get(word.lower()))
        return None if i is None else self.matrix[i]

    def neighbours(
        self, words: Sequence[str], pieces: Sequence[Sequence[int] | None] | None, k: int, batch: int = 256
    ) -> list[list[str]]:
        """The ``k`` nearest words (cosine) of each word; [] for words without a vector."""
        pieces = pieces or [None] * len(words)
        out: list[list[str]] = [[] for _ in words]
        found = [(i, v) for i, w in enumerate(words) if (v := self.query(w, pieces[i])) is not None]
        take = min(k + 1, len(self.words))
        for start in range(0, len(found), batch):
            part = found[start : start + batch]
            q = torch.stack([v for _, v in part]).float()
            q = q / q.norm(dim=1, keepdim=True).clamp_min(1e-12)
            sims = q @ self.matrix.T + self.bias
            top = sims.topk(take, dim=-1)
            for (i, _), idx, val in zip(part, top.indices.tolist(), top.values.tolist(), strict=True):
                low = words[i].lower()
                cands = [self.words[j] for j, s in zip(idx, val, strict=True) if s > -math.inf]
                out[i] = [c for c in cands if c.lower() != low][:k]
        return out
