"""The teacher's mapped states computed once and kept on disk, so repeated epochs (and other runs on
the same teacher and rows: seeds, starts, methods) train the student alone.

A stage that reads the teacher's hidden states or attention scores (TinyBERT's intermediate step,
LRC-BERT, BERT-PKD, CRD) normally pays a full teacher forward every step, the larger part of the
step. The teacher is frozen and the rows are fixed, so per row we store, in the teacher's compute
dtype (bf16 under bf16 autocast, else fp32): the hidden states of the embedding layer, of the mapped
layers and of the last layer, the pre-softmax attention scores of the mapped layers (the
``length x length`` block of real tokens: padding only adds a mask to padded keys, so the block does
not depend on the batch), and the logits. Rows are computed in length-sorted batches in inference mode.

Entries live under ``<cache home>/teacher-states/<key>``; the key hashes the teacher's weights, the
token ids of every row (so the data file, tokenizer and max length), the layers kept and the dtype:
a change to any of them is a new entry. The cache is used only when the new entry fits the disk
budget (``--teacher-state-cache GB``, which also bounds all entries together: the least recently
used are removed first) and the free disk; otherwise the stage runs the teacher every step, as it
says.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tinydistill.data import row_lengths
from tinydistill.deploy.cache import cache_home
from tinydistill.losses.reps import Reps
from tinydistill.models.capture import forward_reps
from tinydistill.progress import progress

VERSION = 1
DONE = "layout.json"  # written last: an entry without it is incomplete


@dataclass(frozen=True)
class Layout:
    hidden_layers: tuple[int, ...]  # indices into Reps.hidden (0 = embeddings)
    attn_layers: tuple[int, ...]  # 1-based layers whose scores are kept
    n_layers: int
    hidden_size: int
    heads: int
    num_labels: int
    dtype: str  # bfloat16 | float32

    @property
    def store(self) -> type:
        """The numpy dtype of the files (bf16 kept bit for bit as uint16)."""
        return np.uint16 if self.dtype == "bfloat16" else np.float32

    def sizes(self, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Values per row: hidden states, attention scores."""
        return (
            len(self.hidden_layers) * lengths * self.hidden_size,
            len(self.attn_layers) * self.heads * lengths * lengths,
        )

    def offsets(self, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where each row starts (and the last one ends) in the hidden and attention files."""
        return tuple(np.concatenate([[0], np.cumsum(n)]) for n in self.sizes(lengths))  # type: ignore[return-value]

    def nbytes(self, lengths: np.ndarray) -> int:
        return int(sum(n.sum() for n in self.sizes(lengths))) * np.dtype(self.store).itemsize


def layout_for(teacher: nn.Module, layers: Sequence[int], attentions: bool, dtype: torch.dtype) -> Layout:
    c = teacher.config
    return Layout(
        hidden_layers=tuple(sorted({0, *layers, c.num_hidden_layers})),
        attn_layers=tuple(sorted(set(layers))) if attentions else (),
        n_layers=c.num_hidden_layers,
        hidden_size=c.hidden_size,
        heads=c.num_attention_heads,
        num_labels=c.num_labels,
        dtype="bfloat16" if dtype == torch.bfloat16 else "float32",
    )


def cache_key(teacher: nn.Module, dataset: Any, layout: Layout) -> str:
    """Hash of the teacher's weights, every row's token ids and the layout."""
    return fingerprint(teacher, dataset, [VERSION, layout.__dict__])


def fingerprint(teacher: nn.Module, dataset: Any, what: Any) -> str:
    """Hash of ``what`` (JSON), the teacher's weights and every row's token ids."""
    h = hashlib.sha1(json.dumps(what).encode())
    for name, tensor in sorted(teacher.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().float().cpu().numpy().tobytes())
    for i in range(len(dataset)):
        row = dataset[i]
        for k in ("input_ids", "token_type_ids"):
            if k in row:
                h.update(np.asarray(row[k], dtype=np.int64).tobytes())
    return h.hexdigest()[:20]


class StateCache:
    """Read side: the cached Reps of a batch (rows by their ``row`` index, padded to its length)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.layout = Layout(**{k: tuple(v) if isinstance(v, list) else v for k, v in _read(root).items()})
        self.lengths = np.load(root / "lengths.npy")
        self.hidden_at, self.attn_at = self.layout.offsets(self.lengths)
        store = self.layout.store
        self.hidden = np.memmap(root / "hidden.bin", dtype=store, mode="r")
        self.attn = np.memmap(root / "attn.bin", dtype=store, mode="r") if self.attn_at[-1] else None
        self.logits = torch.from_numpy(np.load(root / "logits.npy"))
        (root / DONE).touch()  # recently used

    def _tensor(self, flat: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.array(flat))
        return (t.view(torch.bfloat16) if self.layout.dtype == "bfloat16" else t).float()

    def reps(self, batch: dict[str, torch.Tensor]) -> Reps:
        lay, device = self.layout, batch["input_ids"].device
        rows = batch["row"].cpu().tolist()
        b, length = len(rows), batch["input_ids"].shape[1]
        n_h, n_a = len(lay.hidden_layers), len(lay.attn_layers)
        hidden = torch.zeros(n_h, b, length, lay.hidden_size)
        attn = torch.zeros(n_a, b, lay.heads, length, length)
        for j, r in enumerate(rows):
            n = int(self.lengths[r])
            h = self._tensor(self.hidden[self.hidden_at[r] : self.hidden_at[r + 1]])
            hidden[:, j, :n] = h.view(n_h, n, lay.hidden_size)
            if n_a:
                a = self._tensor(self.attn[self.attn_at[r] : self.attn_at[r + 1]])
                attn[:, j, :, :n, :n] = a.view(n_a, lay.heads, n, n)
        hidden_list: list[torch.Tensor | None] = [None] * (lay.n_layers + 1)
        for i, layer in enumerate(lay.hidden_layers):
            hidden_list[layer] = hidden[i].to(device)
        scores: list[torch.Tensor | None] = [None] * lay.n_layers if n_a else []
        for i, layer in enumerate(lay.attn_layers):
            scores[layer - 1] = attn[i].to(device)
        return Reps(
            hidden=hidden_list,  # type: ignore[arg-type]  # layers not kept are None
            attn_scores=scores,
            logits=self.logits[rows].to(device),
            attention_mask=batch["attention_mask"],
        )


def _read(root: Path) -> dict[str, Any]:
    return json.loads((root / DONE).read_text())


def _entries(home: Path) -> list[tuple[float, int, Path]]:
    out = []
    for d in home.iterdir() if home.is_dir() else []:
        if (d / DONE).is_file():
            out.append(((d / DONE).stat().st_mtime, sum(f.stat().st_size for f in d.iterdir()), d))
    return sorted(out)


def open_or_build(
    teacher: nn.Module,
    dataset: Any,
    collate: Callable[[list], dict],
    device: torch.device,
    layers: Sequence[int],
    attentions: bool,
    dtype: torch.dtype,
    budget_gb: float,
    batch_size: int = 32,
    home: Path | None = None,
) -> tuple[StateCache | None, str]:
    """The cache entry for these rows (built when missing), or None and why not."""
    layout = layout_for(teacher, layers, attentions, dtype)
    lengths = row_lengths(dataset)
    size = layout.nbytes(lengths)
    budget = int(budget_gb * 2**30)
    if size > budget:
        return (
            None,
            f"{size / 2**30:.1f} GB needed, over the --teacher-state-cache budget of {budget_gb:g} GB",
        )
    home = home or cache_home() / "teacher-states"
    root = home / cache_key(teacher, dataset, layout)
    if (root / DONE).is_file():
        return StateCache(root), f"reused {root} ({size / 2**30:.2f} GB)"
    home.mkdir(parents=True, exist_ok=True)
    for _, _, old in _entries(home):  # least recently used first, until the new entry fits
        if sum(e[1] for e in _entries(home)) + size <= budget:
            break
        shutil.rmtree(old, ignore_errors=True)
    free = shutil.disk_usage(home).free
    if size + 2**30 > free:
        return None, f"{size / 2**30:.1f} GB needed, {free / 2**30:.1f} GB free on {home}"
    began = time.perf_counter()
    _build(root, teacher, dataset, collate, device, layout, lengths, batch_size)
    return StateCache(root), f"built {root} ({size / 2**30:.2f} GB, {time.perf_counter() - began:.0f} s)"


@torch.inference_mode()
def _build(
    root: Path, teacher: nn.Module, dataset: Any, collate: Callable[[list], dict], device: torch.device,
    layout: Layout, lengths: np.ndarray, batch_size: int,
) -> None:  # fmt: skip
    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    store = layout.store
    dtype = torch.bfloat16 if layout.dtype == "bfloat16" else torch.float32
    order = np.argsort(lengths, kind="stable")
    h_at, a_at = layout.offsets(lengths)
    hidden = np.memmap(tmp / "hidden.bin", dtype=store, mode="w+", shape=(max(int(h_at[-1]), 1),))
    attn = np.memmap(tmp / "attn.bin", dtype=store, mode="w+", shape=(int(a_at[-1]),)) if a_at[-1] else None
    logits = np.zeros((len(lengths), layout.num_labels), dtype=np.float32)
    teacher.eval()
    starts = range(0, len(order), batch_size)
    for start in progress(starts, len(starts), "teacher states"):
        rows = order[start : start + batch_size].tolist()
        batch = {k: v.to(device) for k, v in collate([dataset[i] for i in rows]).items()}
        reps = forward_reps(teacher, batch, attentions=bool(layout.attn_layers), layers=layout.attn_layers)
        logits[rows] = reps.logits.float().cpu().numpy()
        hs = torch.stack([reps.hidden[i] for i in layout.hidden_layers], 1).to(dtype).cpu()  # (B, nh, T, D)
        att = None
        if attn is not None:  # (B, na, H, T, T)
            att = torch.stack([reps.attn_scores[i - 1] for i in layout.attn_layers], 1).to(dtype).cpu()
        for j, r in enumerate(rows):
            n = int(lengths[r])
            hidden[h_at[r] : h_at[r + 1]] = _flat(hs[j, :, :n], store)
            if att is not None:
                attn[a_at[r] : a_at[r + 1]] = _flat(att[j, :, :, :n, :n], store)
    hidden.flush()
    if attn is not None:
        attn.flush()
    np.save(tmp / "lengths.npy", lengths)
    np.save(tmp / "logits.npy", logits)
    (tmp / DONE).write_text(json.dumps(layout.__dict__))
    tmp.rename(root)


def _flat(t: torch.Tensor, store: type) -> np.ndarray:
    """A tensor's values as the store's flat array (bf16 kept bit for bit as uint16)."""
    t = t.contiguous().reshape(-1)
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(np.uint16)
    return t.numpy().astype(store, copy=False)
