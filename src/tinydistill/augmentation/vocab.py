"""Which tokens of a masked LM's vocabulary are whole words: the only tokens a candidate may be."""

from __future__ import annotations

import numpy as np

__all__ = ["whole_word_table", "word_marker"]


def word_marker(tokenizer) -> str | None:
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
    marker = word_marker(tokenizer)
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
