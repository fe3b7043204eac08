"""Which words TinyBERT's augmentation may replace: words made of letters that are not stopwords.

The paper's script leaves stopwords and anything with a non-letter character (numbers, punctuation,
``b-52``) untouched; :func:`eligible` is that rule. ``STOPWORDS`` is a short list of English
function words (pronouns, determiners, auxiliaries, prepositions, conjunctions, negation and the
contraction fragments a punctuation split leaves behind, such as ``s``, ``t``, ``ll``).
"""

from __future__ import annotations

__all__ = ["STOPWORDS", "eligible", "is_word"]

_LIST = """
i me my mine myself we us our ours ourselves you your yours yourself yourselves
he him his himself she her hers herself it its itself they them their theirs themselves
one ones someone something anyone anything everyone everything nobody nothing
this that these those here there where when why how what which who whom whose
a an the some any each every either neither both all few many much more most other another such
own same only just very too so than then now again also once ever still even yet
am is are was were be been being have has had having do does did doing done
can could will would shall should may might must ought let
not no nor never cannot ain aren couldn didn doesn hadn hasn haven isn mightn mustn
needn shan shouldn wasn weren won wouldn don
and or but if because as until while although though whether since unless
of at by for with about against between into through during before after above below
to from up down in out on off over under upon within without along across around among
toward towards onto per via
s t d ll m o re ve y ma
"""

STOPWORDS: frozenset[str] = frozenset(_LIST.split())


def is_word(token: str) -> bool:
    """True for tokens made only of letters (``movie``, ``Café``); False for ``3d``, ``--``, ``b52``."""
    return token.isalpha()


def eligible(token: str) -> bool:
    """A word the augmentation may replace: letters only and not a stopword (case-insensitive)."""
    return is_word(token) and token.lower() not in STOPWORDS
