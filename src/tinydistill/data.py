"""Examples -> tokenized tensors -> padded batches (dynamic padding per batch)."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from transformers import PreTrainedTokenizerBase

from tinydistill.errors import TinyDistillError
from tinydistill.tasks import Example, TaskSpec


class EncodedDataset(Dataset):
    """Tokenized examples held in memory (GLUE-scale sets fit easily)."""

    def __init__(
        self,
        examples: Sequence[Example],
        tokenizer: PreTrainedTokenizerBase,
        max_seq_length: int,
        task: TaskSpec,
    ) -> None:
        if not examples:
            raise TinyDistillError("no examples to encode (empty dataset)")
        a = [e.text_a for e in examples]
        b = [e.text_b or "" for e in examples] if examples[0].text_b is not None else None
        enc = tokenizer(a, b, truncation=True, max_length=max_seq_length, padding=False)
        self.features = [{k: enc[k][i] for k in enc} for i in range(len(examples))]
        dtype = torch.float32 if task.is_regression else torch.long
        for feat, ex in zip(self.features, examples, strict=True):
            if ex.label is not None:
                feat["labels"] = torch.tensor(ex.label, dtype=dtype)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, idx: int) -> dict:
        return self.features[idx]


def make_collate(tokenizer: PreTrainedTokenizerBase):
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def collate(items: list[dict]) -> dict[str, torch.Tensor]:
        length = max(len(it["input_ids"]) for it in items)
        batch: dict[str, torch.Tensor] = {}
        for key, pad in (("input_ids", pad_id), ("attention_mask", 0), ("token_type_ids", 0)):
            if key in items[0]:
                batch[key] = torch.tensor([it[key] + [pad] * (length - len(it[key])) for it in items])
        if "labels" in items[0]:
            batch["labels"] = torch.stack([it["labels"] for it in items])
        return batch

    return collate


class Batches:
    """A seeded, resumable batch order: global batch ``k`` is the same rows whatever the process count.

    Epoch ``e`` visits the rows in ``default_rng([seed, e]).permutation(n)`` (or in order), in batches
    of ``batch_size`` (the last one may be smaller). The training loop asks for the rows of global
    batches ``start, start + 1, ...`` (so a resumed run continues exactly where it stopped) and gives
    each process its share of every batch.

    With ``lengths`` and ``buckets`` > 0, batches hold rows of similar length: the epoch's permutation
    is cut into windows of ``buckets`` batches, each window sorted by length and cut into batches, and
    the batches shuffled (the smallest stays last). Batches then pad far less (GLUE train sets, batch
    32: 33-67% of the tokens of random batches are real, 96-98% with windows of 50 batches).
    """

    def __init__(
        self, n_rows: int, batch_size: int, collate, seed: int = 42, shuffle: bool = True,
        lengths: Sequence[int] | None = None, buckets: int = 0,
    ) -> None:  # fmt: skip
        if n_rows < 1:
            raise TinyDistillError("no examples to train on (empty dataset)")
        self.n_rows, self.batch_size, self.collate = n_rows, batch_size, collate
        self.seed, self.shuffle = seed, shuffle
        self.lengths = np.asarray(lengths) if lengths is not None and buckets > 0 else None
        self.buckets = buckets
        self.batches_per_epoch = -(-n_rows // batch_size)

    def order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.n_rows)
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self.n_rows)
        if self.lengths is None:
            return order
        window = self.buckets * self.batch_size
        windows = [order[i : i + window] for i in range(0, self.n_rows, window)]
        order = np.concatenate([w[np.argsort(self.lengths[w], kind="stable")] for w in windows])
        batches = [order[i : i + self.batch_size] for i in range(0, self.n_rows, self.batch_size)]
        full = len(batches) - (len(batches[-1]) < self.batch_size)
        picked = rng.permutation(full).tolist() + list(range(full, len(batches)))
        return np.concatenate([batches[i] for i in picked])

    def rows(self, start: int = 0) -> Iterator[np.ndarray]:
        """Row indices of global batches ``start``, ``start + 1``, ... (forever, epoch after epoch)."""
        epoch, index = divmod(start, self.batches_per_epoch)
        while True:
            order = self.order(epoch)
            for i in range(index, self.batches_per_epoch):
                yield order[i * self.batch_size : (i + 1) * self.batch_size]
            epoch, index = epoch + 1, 0


def row_lengths(dataset: EncodedDataset) -> np.ndarray:
    """Token count of every encoded row (length buckets, the teacher-state cache's layout)."""
    return np.array([len(dataset[i]["input_ids"]) for i in range(len(dataset))], dtype=np.int64)


def train_batches(
    dataset: EncodedDataset, tokenizer: PreTrainedTokenizerBase, batch_size: int, seed: int, buckets: int = 0
) -> Batches:
    """Shuffled training batches of an encoded task set (dynamic padding per batch; ``buckets`` > 0:
    rows of similar length together, see :class:`Batches`); each batch also carries its rows'
    indices (``row``), the key of per-row caches such as the teacher's logits."""
    collate = make_collate(tokenizer)

    def rows_batch(rows) -> dict[str, torch.Tensor]:
        return {**collate([dataset[int(i)] for i in rows]), "row": torch.as_tensor(rows, dtype=torch.long)}

    lengths = row_lengths(dataset) if buckets else None
    return Batches(len(dataset), batch_size, rows_batch, seed, lengths=lengths, buckets=buckets)


def make_loader(dataset: EncodedDataset, tokenizer: PreTrainedTokenizerBase, batch_size: int) -> DataLoader:
    """In-order batches for evaluation and calibration (training batches: :class:`Batches`)."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=make_collate(tokenizer))


def subsample(examples: list[Example], n: int | None, seed: int) -> list[Example]:
    """A seeded random subset of ``n`` examples (all of them when n is None or larger)."""
    if n is None or n >= len(examples):
        return examples
    if n <= 0:
        raise TinyDistillError(f"--max-train-samples must be positive, got {n}")
    idx = sorted(random.Random(seed).sample(range(len(examples)), n))
    return [examples[i] for i in idx]
