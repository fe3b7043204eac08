"""TinyBERT layer mapping ``n = g(m)``: student layer ``m`` (1..M) learns from teacher layer ``g(m)`` (1..N).

Layer 0 (the embedding output) always maps to teacher layer 0 and is not part of the returned list.

Strategies (Jiao et al. 2020, Sec. 3.1 / Table 6):

* ``"uniform"``: ``g(m) = floor(m * N / M)``. With an integer ratio ``k = N / M`` this is ``k * m``
  (M=4, N=12 -> [3, 6, 9, 12]); otherwise it rounds down (M=4, N=6 -> [1, 3, 4, 6]). Because ``N >= M``
  consecutive values differ by at least 1, so the map is strictly increasing and ``g(M) = N`` always.
* ``"top"``: the last M teacher layers, ``[N-M+1, ..., N]``.
* ``"bottom"``: the first M teacher layers, ``[1, ..., M]``.
* an explicit sequence (or comma-separated string ``"3,6,9,12"``) of M teacher layers, each in 1..N.
"""

from __future__ import annotations

from collections.abc import Sequence

from tinydistill.errors import TinyDistillError

STRATEGIES = ("uniform", "top", "bottom")


def parse_layer_map(value: str) -> str | list[int]:
    """Parse a CLI value: a strategy name (``uniform``/``top``/``bottom``) or ``"3,6,9,12"``."""
    text = value.strip()
    if text.lower() in STRATEGIES:
        return text.lower()
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise TinyDistillError(
            f"empty layer map {value!r}: use one of {', '.join(STRATEGIES)} or e.g. '3,6,9,12'"
        )
    try:
        return [int(p) for p in parts]
    except ValueError:
        raise TinyDistillError(
            f"invalid layer map {value!r}: use one of {', '.join(STRATEGIES)} or comma-separated integers"
        ) from None


def layer_map(kind: str | Sequence[int], n_student: int, n_teacher: int) -> list[int]:
    """Return ``[g(1), ..., g(M)]``: the 1-based teacher layer each student layer 1..M distils from."""
    m_layers, n_layers = int(n_student), int(n_teacher)
    if m_layers < 1 or n_layers < 1:
        raise TinyDistillError(f"layer counts must be positive (student={m_layers}, teacher={n_layers})")
    if isinstance(kind, str):
        kind = parse_layer_map(kind)
    if isinstance(kind, str):
        if m_layers > n_layers:
            raise TinyDistillError(
                f"layer map {kind!r} needs student layers <= teacher layers (got {m_layers} > {n_layers})"
            )
        if kind == "uniform":
            return [m * n_layers // m_layers for m in range(1, m_layers + 1)]
        if kind == "top":
            return list(range(n_layers - m_layers + 1, n_layers + 1))
        return list(range(1, m_layers + 1))  # "bottom" (parse_layer_map only returns known names)
    try:
        mapping = [int(v) for v in kind]
    except (TypeError, ValueError):
        raise TinyDistillError(f"invalid layer map {kind!r}: expected a strategy name or integers") from None
    if any(isinstance(v, bool) or float(v) != int(v) for v in kind):
        raise TinyDistillError(f"invalid layer map {list(kind)!r}: entries must be integers")
    if len(mapping) != m_layers:
        raise TinyDistillError(f"layer map has {len(mapping)} entries but the student has {m_layers} layers")
    bad = [v for v in mapping if not 1 <= v <= n_layers]
    if bad:
        raise TinyDistillError(f"layer map entries {bad} out of range 1..{n_layers} (teacher layers)")
    return mapping
