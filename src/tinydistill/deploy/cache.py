"""Where tinydistill keeps what it builds once: ``$TINYDISTILL_CACHE``, default ``~/.cache/tinydistill``."""

from __future__ import annotations

import os
from pathlib import Path

ENV = "TINYDISTILL_CACHE"


def cache_home() -> Path:
    """The cache dir: ``$TINYDISTILL_CACHE`` (``~`` expanded) or ``~/.cache/tinydistill``."""
    return Path(os.environ.get(ENV, "~/.cache/tinydistill")).expanduser()


def onnx_cache(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where on-the-fly ONNX exports go: ``cache_dir`` when given, else ``<cache home>/onnx``."""
    return Path(cache_dir) if cache_dir else cache_home() / "onnx"
