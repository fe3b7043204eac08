"""Replacement candidates for TinyBERT augmentation: masked-LM predictions and word-vector neighbours.

**Single-piece words** (the paper's rule): the sentence with *that one word* replaced by ``[MASK]``
goes through the masked LM and the top-K tokens at the mask are the candidates. One forward per
word is what makes the original script slow; here every (sentence, word) pair is one *row* and rows
of many sentences share a forward: rows are sorted by length and cut into batches of at most
``batch_rows`` rows (and ``max_batch_tokens`` tokens) so padding stays small, the encoder runs under
``inference_mode``, and the LM head (hidden -> vocabulary projection) runs only on the masked
positions' hidden states, not on every token. A batch also ends where the next (shorter) row would
add more than ``max_padding`` padding, once the batch holds ``min_batch_tokens``: sorted rows then
waste a few percent of the compute on padding instead of ~15%. Candidates are the K best tokens
that are whole words made of letters (no ``##`` continuation pieces, no special tokens, no
punctuation or numbers), excluding the original token.

``masks_per_row`` trades fidelity for speed: ``N > 1`` masks up to N eligible words, spread evenly
over the sentence, in one row, and ``"15%"`` masks as many as 15% of the row's tokens (BERT's own
pre-training rate, so the MLM sees inputs like those it was trained on); each word is then
predicted with a few other words masked too, which is *not* the paper's one-word setting (default 1).
``pair_context`` feeds ``[CLS] masked [SEP] original [SEP]`` as the original script does (its MLM
sees the unmasked sentence as a second segment).

**Multi-piece words**: nearest neighbours by cosine similarity, either in a GloVe / word2vec text file
(:meth:`WordVectors.load`, streamed, first ``limit`` words as the paper's 100,000) or, without one,
in the masked LM's own input-embedding matrix restricted to whole-word tokens
(:meth:`WordVectors.from_embeddings`); a multi-piece word's vector there is the mean of its pieces'
embeddings. Queries are answered in batches with one normalised matrix product each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from tinydistill.errors import TinyDistillError
from tinydistill.models.load import native_bf16

__all__ = [
    "Encoded",
    "MLMCandidates",
    "WordVectors",
    "load_masked_lm",
    "parse_masks_per_row",
    "masks_per_row_label",
    "whole_word_table",
]

MasksPerRow = int | float  # a count of words (>= 1) or a fraction of the row's tokens (< 1)
ALL_MASKS = 1_000_000  # masks per row meaning "every eligible word of the sentence in one row"


def parse_masks_per_row(value: str | int | float) -> MasksPerRow:
    """``1`` (the paper), ``N``, ``all`` (one row per sentence) or ``P%`` of the row's tokens."""
    if isinstance(value, float) and 0 < value < 1:
        return value
    text = str(value).strip().lower()
    try:
        if text == "all":
            return ALL_MASKS
        if text.endswith("%"):
            frac = float(text[:-1]) / 100
            if 0 < frac < 1:
                return frac
        elif int(text) >= 1:
            return int(text)
    except ValueError:
        pass
    raise TinyDistillError(
        f"--masks-per-row must be a count >= 1, 'all' or a percentage like 15%, got {value!r}"
    )


def masks_per_row_label(masks_per_row: MasksPerRow) -> str:
    """The ``--masks-per-row`` spelling of a parsed value: ``1``, ``all``, ``15%``."""
    if isinstance(masks_per_row, float):
        return f"{100 * masks_per_row:g}%"
    return "all" if masks_per_row >= ALL_MASKS else str(masks_per_row)


def load_masked_lm(name: str, device: str | None = None, dtype: str | torch.dtype | None = "auto"):
    """``(model, tokenizer)`` of a masked LM dir, packaged alias or hub id, ready for inference.

    Refuses models whose LM head was not in the checkpoint (a plain encoder loaded as an MLM would
    predict noise): ``tinydistill mlm-head`` trains one.
    """
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from tinydistill.models.load import resolve_model_path

    path = resolve_model_path(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model, info = AutoModelForMaskedLM.from_pretrained(path, output_loading_info=True)
    except (OSError, ValueError) as exc:
        raise TinyDistillError(f"cannot load a masked LM from '{name}': {str(exc).splitlines()[0]}") from None
    prefix = model.base_model_prefix
    tied = {k for k in getattr(model, "all_tied_weights_keys", {}) or {}}
    fresh = [k for k in info.get("missing_keys", []) if not k.startswith(prefix) and k not in tied]
    fresh = [k for k in fresh if not k.endswith("decoder.weight") and not k.endswith("decoder.bias")]
    if fresh:
        raise TinyDistillError(
            f"'{name}' has no trained masked-LM head (missing {fresh[0]}); "
            "train one with: tinydistill mlm-head --encoder MODEL --corpus FILES --output DIR"
        )
    if tokenizer.mask_token_id is None:
        raise TinyDistillError(f"the tokenizer of '{name}' has no mask token")
    if _word_marker(tokenizer) == "Ġ" and not getattr(tokenizer, "add_prefix_space", False):
        # words are fed pre-split: byte-level BPE (RoBERTa) must encode each as a mid-sentence word
        tokenizer = AutoTokenizer.from_pretrained(path, add_prefix_space=True)
    try:
        tokenizer([["a", "b"]], is_split_into_words=True)
    except Exception as exc:  # noqa: BLE001 - each tokenizer class words this differently
        raise TinyDistillError(f"the tokenizer of '{name}' cannot encode pre-split words: {exc}") from None
    return prepare_model(model, device, dtype), tokenizer


def prepare_model(model: nn.Module, device: str | None = None, dtype: str | torch.dtype | None = "auto"):
    """eval mode, on ``device`` (CUDA when present), in ``dtype``.

    ``auto`` is bf16 where the hardware multiplies it natively (bf16 GPUs; CPUs with AVX512-BF16 or
    AMX, about 3x faster than fp32 there), else fp32. bf16 scores differ from fp32 in the third digit,
    so near-tied candidates can swap places (``benchmarks/augment_throughput.py`` measures how often).
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dtype in (None, "auto"):
        dtype = torch.bfloat16 if native_bf16(device) else torch.float32
    elif isinstance(dtype, str):
        names = {
            "float32": torch.float32,
            "fp32": torch.float32,
            "bfloat16": torch.bfloat16,
            "bf16": torch.bfloat16,
        }
        if dtype not in names:
            raise TinyDistillError(f"unknown dtype {dtype!r} (auto, float32, bfloat16)")
        dtype = names[dtype]
    return model.to(device=device, dtype=dtype).eval()


def _word_marker(tokenizer) -> str | None:
    """``Ġ`` (byte-level BPE) or ``▁`` (SentencePiece) when tokens carry their leading space, else None."""
    first = (tokenizer.tokenize(" hello") or [""])[0]
    return next((m for m in ("Ġ", "▁") if first.startswith(m)), None)


def whole_word_table(tokenizer, vocab_size: int) -> tuple[np.ndarray, list[str]]:
    """Which token ids are whole words made of letters, and the word each one spells.

    WordPiece continuations (``##ing``) are not letters-only; with byte-level BPE (``Ġword``) and
    SentencePiece (``▁word``) only word-initial tokens count. Special tokens and ids past the
    tokenizer are never words.
    """
    n = min(vocab_size, len(tokenizer))
    tokens = tokenizer.convert_ids_to_tokens(list(range(n)))
    tokens = [t if isinstance(t, str) else "" for t in tokens]
    marker = _word_marker(tokenizer)
    if marker:
        words = [t[1:] if t.startswith(marker) and t[1:].isalpha() else "" for t in tokens]
    else:
        words = [t if t.isalpha() else "" for t in tokens]
    for i in tokenizer.all_special_ids:
        if 0 <= i < n:
            words[i] = ""
    words += [""] * (vocab_size - n)
    allowed = np.array([bool(w) for w in words])
    return allowed, words


@dataclass
class Encoded:
    """One sentence tokenized for the MLM: ids (with specials), segment ids, and word -> piece positions."""

    ids: list[int]
    type_ids: list[int] | None
    pieces: dict[int, list[int]]


class MLMCandidates:
    """Top-K masked-LM candidates for many (sentence, word) pairs, batched across sentences."""

    def __init__(
        self,
        model: nn.Module,
        tokenizer,
        k: int = 15,
        batch_rows: int = 256,
        max_batch_tokens: int = 32768,
        masks_per_row: MasksPerRow | str = 1,
        pair_context: bool = False,
        progress: bool = False,
        min_batch_tokens: int = 2048,
        max_padding: float = 0.05,
    ) -> None:
        if k < 1:
            raise TinyDistillError(f"--candidates must be at least 1, got {k}")
        if batch_rows < 1:
            raise TinyDistillError("--batch-rows must be at least 1")
        masks_per_row = parse_masks_per_row(masks_per_row)
        self.model, self.tokenizer = model, tokenizer
        self.batch_rows, self.max_batch_tokens = batch_rows, max_batch_tokens
        self.min_batch_tokens, self.max_padding = min_batch_tokens, max_padding
        self.masks_per_row, self.pair_context, self.progress = masks_per_row, pair_context, progress
        self.device = next(model.parameters()).device
        vocab = model.config.vocab_size
        allowed, self.words = whole_word_table(tokenizer, vocab)
        if allowed.sum() < 2:
            raise TinyDistillError("the masked LM's vocabulary has fewer than 2 whole-word tokens")
        self.k = min(k, int(allowed.sum()) - 1)
        self.bias = torch.zeros(vocab)
        self.bias[torch.from_numpy(~allowed)] = -math.inf
        self.bias = self.bias.to(self.device)
        self.head = next(
            (m for a in ("cls", "lm_head") if isinstance(m := getattr(model, a, None), nn.Module)), None
        )
        limits = [getattr(model.config, "max_position_embeddings", 512) or 512, 512]
        if 0 < getattr(tokenizer, "model_max_length", 0) < 100_000:
            limits.append(tokenizer.model_max_length)
        self.max_length = min(limits)
        self.forwards = self.rows = self.tokens = self.padded_tokens = 0

    # ------------------------------------------------------------------ encoding

    def encode(self, sentences: Sequence[Sequence[str]], chunk: int = 1024) -> list[Encoded]:
        """Tokenize word lists (pairs ``masked, original`` in pair-context mode), truncated to the model."""
        out: list[Encoded] = []
        for start in range(0, len(sentences), chunk):
            part = [list(s) for s in sentences[start : start + chunk]]
            second = part if self.pair_context else None
            enc = self.tokenizer(
                part, second, is_split_into_words=True, truncation=True, max_length=self.max_length
            )
            for i in range(len(part)):
                word_ids, seq_ids = enc.word_ids(i), enc.sequence_ids(i)
                pieces: dict[int, list[int]] = {}
                for pos, (w, s) in enumerate(zip(word_ids, seq_ids, strict=True)):
                    if w is not None and s == 0:
                        pieces.setdefault(w, []).append(pos)
                types = enc["token_type_ids"][i] if "token_type_ids" in enc else None
                out.append(Encoded(list(enc["input_ids"][i]), types, pieces))
        return out

    # ------------------------------------------------------------------ prediction

    def _rows(
        self, encoded: Sequence[Encoded], positions: Sequence[Sequence[int]]
    ) -> list[tuple[int, list[int]]]:
        """(sentence, token positions masked together); one position per row unless masks_per_row > 1.

        Several positions of a row are ``n_rows`` eligible words apart (``pos[r::n_rows]``), so the
        words masked together are spread over the sentence rather than adjacent.
        """
        rows = []
        for s, pos in enumerate(positions):
            if not pos:
                continue
            per_row = self.masks_per_row
            if isinstance(per_row, float):  # a fraction of the row's tokens, at least one word
                per_row = max(1, int(per_row * len(encoded[s].ids)))
            n_rows = math.ceil(len(pos) / per_row)
            rows += [(s, list(pos[r::n_rows])) for r in range(n_rows)]
        return rows

    def _batches(self, lengths: Sequence[int]) -> list[tuple[int, int]]:
        """``(start, end)`` slices of rows sorted by decreasing length, padded to their first row."""
        out, start = [], 0
        while start < len(lengths):
            first = lengths[start]
            size = max(1, min(self.batch_rows, self.max_batch_tokens // first))
            end = start + 1
            while end < min(start + size, len(lengths)):
                full = (end - start) * first >= self.min_batch_tokens
                if full and lengths[end] < first * (1 - self.max_padding):
                    break
                end += 1
            out.append((start, end))
            start = end
        return out

    def _logits(self, batch: dict[str, torch.Tensor], rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """Vocabulary scores at the masked positions only."""
        if self.head is not None:
            hidden = self.model.base_model(**batch).last_hidden_state
            return self.head(hidden[rows, cols])
        return self.model(**batch).logits[rows, cols]

    def predict(
        self, encoded: Sequence[Encoded], positions: Sequence[Sequence[int]]
    ) -> list[dict[int, list[str]]]:
        """For each sentence, ``{token position: [K candidate words]}`` for the given positions."""
        rows = self._rows(encoded, positions)
        rows.sort(key=lambda r: -len(encoded[r[0]].ids))
        results: list[dict[int, list[str]]] = [{} for _ in encoded]
        mask_id = self.tokenizer.mask_token_id
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        bar = tqdm(total=len(rows), desc="MLM candidates", unit="row", disable=not self.progress)
        for start, end in self._batches([len(encoded[s].ids) for s, _ in rows]):
            chunk = rows[start:end]
            length = len(encoded[chunk[0][0]].ids)
            self.padded_tokens += len(chunk) * length
            self.tokens += sum(len(encoded[s].ids) for s, _ in chunk)
            ids = torch.full((len(chunk), length), pad_id, dtype=torch.long)
            attn = torch.zeros((len(chunk), length), dtype=torch.long)
            types = torch.zeros((len(chunk), length), dtype=torch.long)
            r_idx, c_idx, orig, owner = [], [], [], []
            for b, (s, pos) in enumerate(chunk):
                enc = encoded[s]
                n = len(enc.ids)
                ids[b, :n] = torch.tensor(enc.ids)
                attn[b, :n] = 1
                if enc.type_ids is not None:
                    types[b, :n] = torch.tensor(enc.type_ids)
                for p in pos:
                    r_idx.append(b)
                    c_idx.append(p)
                    orig.append(enc.ids[p])
                    owner.append((s, p))
            r_t, c_t = torch.tensor(r_idx), torch.tensor(c_idx)
            ids[r_t, c_t] = mask_id
            batch = {"input_ids": ids, "attention_mask": attn}
            if encoded[chunk[0][0]].type_ids is not None:
                batch["token_type_ids"] = types
            batch = {k: v.to(self.device) for k, v in batch.items()}
            with torch.inference_mode():
                logits = self._logits(batch, r_t.to(self.device), c_t.to(self.device)).float()
                logits += self.bias
                logits[
                    torch.arange(len(orig), device=self.device), torch.tensor(orig, device=self.device)
                ] = -math.inf
                top = logits.topk(self.k, dim=-1).indices.cpu().tolist()
            for (s, p), ids_k in zip(owner, top, strict=True):
                results[s][p] = [self.words[i] for i in ids_k]
            self.forwards += 1
            self.rows += len(chunk)
            bar.update(len(chunk))
        bar.close()
        return results


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
