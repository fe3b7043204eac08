"""Progress of the long loops (training, evaluation, prediction, augmentation, corpus, latency).

On a terminal: a tqdm bar, as always. Anywhere else (stderr is a file or a pipe): one plain line
every 10% of the loop or every ``EVERY_S`` seconds, whichever comes first, e.g.::

    distill/prediction: 40% 536/1340 steps, loss 0.4312, lr 1.20e-04, 0.41 s/step, ETA 5m29s

so a log holds tens of lines per stage instead of thousands of ``\\r`` frames. Only the main process
shows progress. ``min_gap_s`` keeps short loops (a few seconds of evaluation) quiet in a log.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

__all__ = ["EVERY_S", "MIN_STEPS", "LineProgress", "progress", "progress_bar"]

MIN_STEPS = 10
EVERY_S = 30.0
MIN_GAP_S = 5.0
T = TypeVar("T")


def _plural(unit: str) -> str:
    if unit == "B" or unit.endswith("s"):
        return unit
    return unit + ("es" if unit.endswith(("ch", "sh", "x")) else "s")


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class LineProgress:
    """tqdm's ``update`` / ``set_postfix`` / ``close`` as plain lines on stderr (see the module doc)."""

    def __init__(
        self, total: int, desc: str, unit: str = "step", initial: int = 0, min_gap_s: float = MIN_GAP_S
    ) -> None:
        self.total, self.desc, self.unit, self.n = max(0, int(total)), desc, unit, initial
        self.min_gap_s = min_gap_s
        self.began = self.last_t = time.monotonic()
        self.start_n = self.last_n = initial
        self.last_tenth = self._tenth()
        self.postfix: dict[str, Any] = {}
        self.lines = 0
        self.timed = False  # the last line came from the clock, not from a tenth
        self.closed = False

    def _tenth(self) -> int:
        return math.floor(10 * self.n / self.total) if self.total else 0

    def set_postfix(self, refresh: bool = True, **values: Any) -> None:
        self.postfix.update(values)

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        tenth = self._tenth()
        if now - self.last_t >= EVERY_S:
            self._emit(now, timed=True)
        elif tenth > self.last_tenth and now - self.last_t >= self.min_gap_s:
            if self.timed and now - self.last_t < EVERY_S / 2:
                self.last_tenth = tenth  # a line came a moment ago: this tenth needs none
            else:
                self._emit(now)

    def line(self, now: float | None = None) -> str:
        """The line as it would be written now."""
        now = time.monotonic() if now is None else now
        pct = f"{100 * self.n // self.total}% " if self.total else ""
        count = f"{self.n}/{self.total} {_plural(self.unit)}"
        if self.unit == "B":
            count = f"{self.n / 1e6:.1f}/{self.total / 1e6:.1f} MB"
        parts = [f"{self.desc}: {pct}{count}"]
        parts += [f"{k} {v}" for k, v in self.postfix.items()]
        done = self.n - self.start_n
        if done > 0:
            per = (now - self.began) / done
            rate = (
                f"{per:.3g} s/{self.unit}"
                if per >= 0.01
                else f"{1 / max(per, 1e-9):.0f} {_plural(self.unit)}/s"
            )
            parts.append(rate)
            if self.n < self.total:
                parts.append(f"ETA {_duration(per * (self.total - self.n))}")
            else:
                parts.append(f"took {_duration(now - self.began)}")
        return ", ".join(parts)

    def _emit(self, now: float, timed: bool = False) -> None:
        print(self.line(now), file=sys.stderr, flush=True)
        self.last_t, self.last_n, self.last_tenth, self.lines = now, self.n, self._tenth(), self.lines + 1
        self.timed = timed

    def close(self) -> None:
        """A last line when the loop finished after its last line (if it was long enough to show one)."""
        if self.closed:
            return
        self.closed = True
        now = time.monotonic()
        finished_late = self.n != self.last_n and self.n >= self.total > 0
        if finished_late and (self.lines or now - self.began >= self.min_gap_s):
            self._emit(now)

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _main_process() -> bool:
    return os.environ.get("LOCAL_RANK", "0") == "0"


def progress_bar(
    total: int,
    desc: str,
    unit: str = "step",
    initial: int = 0,
    disable: bool = False,
    min_gap_s: float = MIN_GAP_S,
    leave: bool = True,
) -> Any:
    """A tqdm bar on a terminal, a :class:`LineProgress` elsewhere, or a silent bar when ``disable``
    (or not the main process). All three have ``update``, ``set_postfix`` and ``close``."""
    from tqdm.auto import tqdm

    if disable or not _main_process():
        return tqdm(total=total, disable=True)
    stream = sys.stderr
    if getattr(stream, "isatty", lambda: False)():
        return tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=leave, dynamic_ncols=True)
    return LineProgress(total, desc, unit, initial=initial, min_gap_s=min_gap_s)


def progress(
    items: Iterable[T], total: int, desc: str, unit: str = "batch", min_steps: int = MIN_STEPS
) -> Iterator[T]:
    """``items`` with progress (see :func:`progress_bar`), for loops of at least ``min_steps`` items;
    on a terminal the bar leaves no line behind."""
    bar = progress_bar(total, desc, unit, disable=total < min_steps, leave=False)
    try:
        for item in items:
            yield item
            bar.update(1)
    finally:
        bar.close()
