"""A small rule-based sentence splitter (no models, no downloads).

A sentence ends at ``.``, ``!`` or ``?`` (runs such as ``?!`` or ``...`` included, with any closing
quotes or brackets after them) when whitespace follows and the next text starts like a sentence: an
upper-case letter, a digit, or an opening quote/bracket before one. A ``.`` does *not* end a sentence after

* a known abbreviation (``Mr.``, ``Dr.``, ``St.``, ``e.g.``, ``i.e.``, ``vs.``, ``No.``, ``c.``,
  ``Jan.``, ... see ``ABBREVIATIONS``), compared without case;
* a single letter (initials: ``J. R. R. Tolkien``, ``H. americanus``);
* a dotted abbreviation (``U.S.``, ``a.m.``, ``Ph.D.``);

and decimals (``3.14``), version numbers and URLs never split because no whitespace follows the dot.
The price of these rules: a sentence that really ends with an initial or a dotted abbreviation
(``... in the U.S. The``) stays joined to the next one, which costs nothing for packing.
"""

from __future__ import annotations

import re

ABBREVIATIONS = frozenset(
    """
    mr mrs ms dr prof sr jr st mt ft gen col lt sgt capt cmdr adm gov sen rep rev hon pres supt
    messrs mme mlle
    e.g i.e cf vs etc al approx ca c fl b d no nos vol vols pp p fig figs eq eqs ch sec art
    dept univ inc ltd co corp bros assn est op ed eds trans
    jan feb mar apr jun jul aug sep sept oct nov dec
    """.split()
)
# "etc." usually ends a clause, not a sentence, in encyclopaedic text; leave it in the list.

_END = re.compile(r"([.!?]+)([\"'”’)\]]*)(\s+)")
_STARTS_SENTENCE = re.compile(r"[\"'“‘(\[]*[A-Z0-9]")
_LAST_WORD = re.compile(r"(\S+)$")


def _is_abbreviation(word: str) -> bool:
    """``word`` is the text before a final ``.`` (leading brackets or quotes allowed)."""
    word = word.lstrip("\"'“‘([")
    if not word:
        return False
    if len(word) == 1 and word.isalpha():
        return True  # an initial
    if word.lower() in ABBREVIATIONS:
        return True
    parts = word.split(".")
    return len(parts) > 1 and all(0 < len(p) <= 2 and p.isalpha() for p in parts)  # U.S, a.m, Ph.D


def split_sentences(text: str) -> list[str]:
    """Split one paragraph into sentences (stripped, non-empty)."""
    sentences: list[str] = []
    start = 0
    for m in _END.finditer(text):
        end = m.end(2)
        if not _STARTS_SENTENCE.match(text, m.end()):
            continue
        if m.group(1) == ".":
            word = _LAST_WORD.search(text, start, m.start(1))
            if word and _is_abbreviation(word.group(1)):
                continue
        piece = text[start:end].strip()
        if piece:
            sentences.append(piece)
        start = m.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences
