"""Which words TinyBERT's augmentation may replace: words made of letters that are not stopwords.

The paper's script leaves stopwords and anything with a non-letter character (numbers, punctuation,
``b-52``) untouched; :func:`eligible` is that rule. ``STOPWORDS`` is NLTK's English stop-word list
(``nltk.corpus.stopwords.words("english")``, NLTK 3.8: 179 words, in its order), typed in as data;
``tinydistill augment --stopwords FILE`` replaces it (other languages, other lists).
"""

from __future__ import annotations

from pathlib import Path

from tinydistill.errors import TinyDistillError

__all__ = ["NLTK_ENGLISH", "STOPWORDS", "eligible", "is_word", "load_stopwords"]

NLTK_ENGLISH: tuple[str, ...] = tuple(
    """
i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself yourselves
he him his himself she she's her hers herself it it's its itself they them their theirs themselves
what which who whom this that that'll these those am is are was were be been being have has had
having do does did doing a an the and but if or because as until while of at by for with about
against between into through during before after above below to from up down in out on off over
under again further then once here there when where why how all any both each few more most other
some such no nor not only own same so than too very s t can will just don don't should should've
now d ll m o re ve y ain aren aren't couldn couldn't didn didn't doesn doesn't hadn hadn't hasn
hasn't haven haven't isn isn't ma mightn mightn't mustn mustn't needn needn't shan shan't shouldn
shouldn't wasn wasn't weren weren't won won't wouldn wouldn't
""".split()
)

STOPWORDS: frozenset[str] = frozenset(NLTK_ENGLISH)


def load_stopwords(path: str | Path) -> frozenset[str]:
    """Stop words of a UTF-8 file: whitespace-separated (e.g. one per line), ``#`` starts a comment line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise TinyDistillError(f"stop-word file not found: {path}") from None
    except UnicodeDecodeError as e:
        raise TinyDistillError(f"{path}: not valid UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise TinyDistillError(f"{path}: cannot read file ({e.strerror or e})") from None
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    words = [w.lower() for line in lines for w in line.split()]
    if not words:
        raise TinyDistillError(f"{path}: no stop words in the file")
    return frozenset(words)


def is_word(token: str) -> bool:
    """True for tokens made only of letters (``movie``, ``Café``); False for ``3d``, ``--``, ``b52``."""
    return token.isalpha()


def eligible(token: str, stopwords: frozenset[str] = STOPWORDS) -> bool:
    """A word the augmentation may replace: letters only and not a stopword (case-insensitive)."""
    return is_word(token) and token.lower() not in stopwords
