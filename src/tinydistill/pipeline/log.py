"""The pipeline's voice: a line per stage on the terminal, and everything in ``OUTPUT/pipeline.log``.

While a stage runs, stderr (progress bars, warnings, evaluation lines) is copied into the log, each
progress bar by its final state only; ``quiet`` keeps the terminal free of all of it.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

LOG_FILE = "pipeline.log"


class _Tee:
    """A stderr that also writes finished lines to the log (a ``\\r``-redrawn bar as its last state)."""

    def __init__(self, terminal: IO[str], log: IO[str], quiet: bool) -> None:
        self.terminal, self.log, self.quiet = terminal, log, quiet
        self.pending = ""

    def write(self, text: str) -> int:
        if not self.quiet:
            self.terminal.write(text)
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            final = line.rsplit("\r", 1)[-1].strip()
            if final:
                self.log.write(final + "\n")
        return len(text)

    def flush(self) -> None:
        self.terminal.flush()
        self.log.flush()

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, ...
        return getattr(self.terminal, name)


class Log:
    """``line`` for the pipeline's own lines, ``capture`` around a stage's work."""

    def __init__(self, out: Path, quiet: bool = False) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.path = out / LOG_FILE
        self.quiet = quiet
        self.file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self.file.write(f"\n== tinydistill pipeline, {time.strftime('%Y-%m-%d %H:%M:%S')} ==\n")

    def line(self, text: str, terminal: bool = True) -> None:
        self.file.write(f"{time.strftime('%H:%M:%S')} {text}\n")
        self.file.flush()
        if terminal and not self.quiet:
            print(text, file=sys.stderr, flush=True)

    @contextlib.contextmanager
    def capture(self) -> Iterator[None]:
        """A stage's stdout and stderr (evaluation lines, bars) to the terminal's stderr and the log:
        stdout stays for the pipeline's result."""
        tee = _Tee(sys.stderr, self.file, self.quiet)
        try:
            with contextlib.redirect_stderr(tee), contextlib.redirect_stdout(tee):  # type: ignore[type-var]
                yield
        finally:
            tee.write("\n" if tee.pending else "")
            self.file.flush()

    def close(self) -> None:
        self.file.close()
