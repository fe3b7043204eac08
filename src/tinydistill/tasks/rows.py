"""Rows read from one source, and the one line that says how many were read and how many skipped.

Every command that reads rows prints that line on stderr (from the main process only), e.g.
``train: 3,668 rows read from glue/MRPC/train.tsv (0 skipped)``; skipped rows say why
(``2 skipped: 1 blank, 1 empty text``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["Rows", "report_rows"]


class Rows(list):
    """A list of rows (examples) that remembers its ``source`` and the rows left out (reason -> count)."""

    def __init__(
        self,
        items: Iterable[Any] = (),
        source: str = "",
        skipped: Mapping[str, int] | None = None,
        note: str = "",
    ) -> None:
        super().__init__(items)
        self.source = source
        self.skipped = dict(skipped or {})
        self.note = note

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def line(self, what: str) -> str:
        """``what: N rows read from SOURCE (M skipped[: why])[; note]``."""
        why = ", ".join(f"{n:,} {reason}" for reason, n in self.skipped.items() if n)
        text = f"{what}: {len(self):,} rows read from {self.source} ({self.n_skipped:,} skipped"
        text += f": {why})" if why else ")"
        return text + (f"; {self.note}" if self.note else "")


def report_rows(what: str, rows: Any) -> None:
    """Print ``rows.line(what)`` on stderr (main process only); plain lists (rows given as objects) don't."""
    if isinstance(rows, Rows) and os.environ.get("RANK", "0") == "0":
        print(rows.line(what), file=sys.stderr, flush=True)
