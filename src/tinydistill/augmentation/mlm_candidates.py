"""Single-piece words' candidates for TinyBERT augmentation: top-K masked-LM predictions, batched.

The paper's rule: the sentence with *that one word* replaced by ``[MASK]`` goes through the masked
LM and the top-K tokens at the mask are the candidates. One forward per word is what makes the
original script slow; here every (sentence, word) pair is one *row* and rows of many sentences
share a forward: rows are sorted by length and cut into batches of at most ``batch_rows`` rows (and
``max_batch_tokens`` tokens) so padding stays small, the encoder runs under ``inference_mode``, and
the LM head (hidden -> vocabulary projection) runs only on the masked positions' hidden states, not
on every token. A batch also ends where the next (shorter) row would add more than ``max_padding``
padding, once the batch holds ``min_batch_tokens``: sorted rows then waste a few percent of the
compute on padding instead of ~15%. Candidates are the K best tokens that are whole words made of
letters (no ``##`` continuation pieces, no special tokens, no punctuation or numbers), excluding the
original token.

``masks_per_row`` trades fidelity for speed: ``N > 1`` masks up to N eligible words, spread evenly
over the sentence, in one row, and ``"15%"`` masks as many as 15% of the row's tokens (BERT's own
pre-training rate, so the MLM sees inputs like those it was trained on); each word is then
predicted with a few other words masked too, which is *not* the paper's one-word setting (default 1).
``pair_context`` feeds ``[CLS] masked [SEP] original [SEP]`` as the original script does (its MLM
sees the unmasked sentence as a second segment).

Multi-piece words get word-vector neighbours instead (:mod:`tinydistill.augmentation.word_vectors`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from tinydistill.augmentation.vocab import whole_word_table
from tinydistill.errors import TinyDistillError
from tinydistill.progress import progress_bar

__all__ = [
    "ALL_MASKS",
    "Encoded",
    "MLMCandidates",
    "MasksPerRow",
    "masks_per_row_label",
    "parse_masks_per_row",
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


@dataclass
class Encoded:
    """One sentence tokenized for the MLM: ids (with specials), segment ids, and word -> piece positions."""

    ids: list[int]
    type_ids: list[int] | None
    pieces: dict[int, list[int]]


class MaskedBatch(NamedTuple):
    """One forward's inputs (on the model's device) and where its masks are.

    ``rows``/``cols`` index the masked positions, ``originals`` are the token ids they replaced and
    ``owners`` the (sentence, token position) each prediction belongs to.
    """

    inputs: dict[str, torch.Tensor]
    rows: torch.Tensor
    cols: torch.Tensor
    originals: list[int]
    owners: list[tuple[int, int]]


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

    def _masked_batch(
        self, encoded: Sequence[Encoded], chunk: Sequence[tuple[int, list[int]]]
    ) -> MaskedBatch:
        """Rows padded to the first (longest) one, with their positions replaced by the mask token."""
        length = len(encoded[chunk[0][0]].ids)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
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
        ids[r_t, c_t] = self.tokenizer.mask_token_id
        batch = {"input_ids": ids, "attention_mask": attn}
        if encoded[chunk[0][0]].type_ids is not None:
            batch["token_type_ids"] = types
        batch = {k: v.to(self.device) for k, v in batch.items()}
        return MaskedBatch(batch, r_t, c_t, orig, owner)

    def _top_k(self, masked: MaskedBatch) -> list[list[int]]:
        """The K best whole-word token ids at each masked position, the original token excluded."""
        with torch.inference_mode():
            rows, cols = masked.rows.to(self.device), masked.cols.to(self.device)
            logits = self._logits(masked.inputs, rows, cols).float()
            logits += self.bias
            logits[
                torch.arange(len(masked.originals), device=self.device),
                torch.tensor(masked.originals, device=self.device),
            ] = -math.inf
            return logits.topk(self.k, dim=-1).indices.cpu().tolist()

    def predict(
        self, encoded: Sequence[Encoded], positions: Sequence[Sequence[int]]
    ) -> list[dict[int, list[str]]]:
        """For each sentence, ``{token position: [K candidate words]}`` for the given positions."""
        rows = self._rows(encoded, positions)
        rows.sort(key=lambda r: -len(encoded[r[0]].ids))
        results: list[dict[int, list[str]]] = [{} for _ in encoded]
        bar = progress_bar(len(rows), "MLM candidates", unit="row", disable=not self.progress)
        for start, end in self._batches([len(encoded[s].ids) for s, _ in rows]):
            chunk = rows[start:end]
            self.padded_tokens += len(chunk) * len(encoded[chunk[0][0]].ids)
            self.tokens += sum(len(encoded[s].ids) for s, _ in chunk)
            masked = self._masked_batch(encoded, chunk)
            for (s, p), ids_k in zip(masked.owners, self._top_k(masked), strict=True):
                results[s][p] = [self.words[i] for i in ids_k]
            self.forwards += 1
            self.rows += len(chunk)
            bar.update(len(chunk))
        bar.close()
        return results
