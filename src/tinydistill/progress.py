"""Progress bars of the long loops besides training (evaluation, prediction): tqdm, as the training loop.

A bar shows on a terminal only (tqdm's ``disable=None``: never in logs or tests), from the main
process, for loops of at least ``MIN_STEPS`` batches, and leaves no line behind when done.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TypeVar

__all__ = ["MIN_STEPS", "progress"]

MIN_STEPS = 10
T = TypeVar("T")


def progress(items: Iterable[T], total: int, desc: str, unit: str = "batch") -> Iterable[T]:
    """``items`` with a transient tqdm bar (see the module docstring for when it shows)."""
    from tqdm.auto import tqdm

    show = total >= MIN_STEPS and os.environ.get("LOCAL_RANK", "0") == "0"
    disable = None if show else True  # None: tqdm shows the bar on a terminal only
    return tqdm(items, total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True, disable=disable)
