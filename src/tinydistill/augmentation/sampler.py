"""Words in, augmented sentences out: TinyBERT's sampling step, deterministic per example.

A sentence is split into words as BERT's basic tokenizer does (whitespace, then every punctuation
character on its own), keeping the original case. Given candidate lists for the eligible words, each
of the ``n_aug`` draws replaces every such word, independently with probability ``p``, by a candidate
chosen uniformly; the words are joined with single spaces (as the original script does). Draws that
equal the original sentence or an earlier draw are dropped, so a sentence yields at most ``n_aug``
variants. The random stream is a numpy ``Generator`` seeded by ``(seed, example index, side)``: the
same seed gives the same variants whatever else is in the run (sharding included).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["split_words", "join_words", "match_case", "sample_variants", "example_rng"]


def _is_punct(ch: str) -> bool:
    """BERT's rule: ASCII symbols and every Unicode punctuation character split off."""
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def split_words(text: str) -> list[str]:
    """Whitespace split, then each punctuation character as its own word (case kept)."""
    words: list[str] = []
    for chunk in text.split():
        current = []
        for ch in chunk:
            if _is_punct(ch):
                if current:
                    words.append("".join(current))
                    current = []
                words.append(ch)
            else:
                current.append(ch)
        if current:
            words.append("".join(current))
    return words


def join_words(words: Sequence[str]) -> str:
    return " ".join(words)


def match_case(candidate: str, word: str) -> str:
    """Give a candidate the original word's case pattern (UPPER, Title or as predicted)."""
    if len(word) > 1 and word.isupper():
        return candidate.upper()
    if word[:1].isupper():
        return candidate[:1].upper() + candidate[1:]
    return candidate


def example_rng(seed: int, index: int, side: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, index, side])


def sample_variants(
    words: Sequence[str],
    candidates: Mapping[int, Sequence[str]],
    n_aug: int,
    p: float,
    rng: np.random.Generator,
    original: str | None = None,
) -> list[str]:
    """Up to ``n_aug`` distinct sentences, each eligible word replaced with probability ``p``.

    ``candidates`` maps word positions to their replacement lists (positions without candidates are
    never replaced). ``original`` (the raw text) is excluded as well as the joined ``words``.
    """
    positions = [i for i in sorted(candidates) if len(candidates[i]) > 0]
    seen = {join_words(words)}
    if original is not None:
        seen.add(original)
    if not positions or n_aug <= 0:
        return []
    sizes = np.array([len(candidates[i]) for i in positions])
    replace = rng.random((n_aug, len(positions))) < p
    picks = (rng.random((n_aug, len(positions))) * sizes).astype(np.int64)
    out: list[str] = []
    for draw in range(n_aug):
        new = list(words)
        for j in np.flatnonzero(replace[draw]):
            pos = positions[j]
            new[pos] = candidates[pos][picks[draw, j]]
        sentence = join_words(new)
        if sentence not in seen:
            seen.add(sentence)
            out.append(sentence)
    return out
