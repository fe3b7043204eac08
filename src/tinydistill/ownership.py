"""Which paths a command may write or replace, and one writer per output at a time.

Every folder tinydistill makes (run, stage, corpus, export, report, pipeline dirs) gets the marker
``.tinydistill`` first. A command writes or replaces a folder only when it is new, empty, holds the
marker, or holds the files a tinydistill run left before the marker existed (``LEGACY``). Anything
else, and places no run may take (``.``, ``~``, ``/``, a folder above the working dir, the inputs or
the installation), is refused with one line before any work. While it runs, a command holds an
advisory ``flock`` on ``.NAME.lock`` beside its output: a second run on that output refuses at once,
and the kernel drops the lock of a process that dies, so a killed run never blocks the next one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from tinydistill.errors import TinyDistillError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks
    fcntl = None  # type: ignore[assignment]

MARKER = ".tinydistill"
# What a folder written before the marker existed holds (every name of one group): it stays usable.
LEGACY = (
    ("metrics.json", "config.yaml"),  # a finished finetune / distill / general run
    ("config.yaml", "checkpoints"),  # an interrupted general run
    ("manifest.json", "shard_00000.npy"),  # a prepared corpus
    ("prune.json", "config.json"),  # a pruned student
    ("trim.json", "config.json"),  # a trimmed vocabulary
    ("export.json", "model.onnx"),  # an export
    ("report.json", "report.md"),  # a report
    ("mlm_head.json",),  # a masked-LM head
    ("pipeline.json",),  # a pipeline run
)
# what an unfinished ``.NAME.partial`` dir of an older version holds
LEGACY_PARTIAL = ("config.yaml", "checkpoints", "logs", "manifest.json", "shard_00000.npy")
# config fields that name the data and models a command reads (an output may not hold them)
INPUT_FIELDS = (
    "data_dir", "train_file", "dev_file", "test_file", "model", "teacher", "student", "teacher_finetuned",
    "corpus", "input", "input_file", "encoder", "mlm", "augment_mlm", "merge", "run_dirs", "bench_files",
    "models", "tokenizer", "vectors", "stopwords", "vocab_from",
)  # fmt: skip
# every command that writes: the config field of its output, whether that is a folder, and its flag
OUTPUTS: dict[str, tuple[str, bool, str]] = {
    "finetune": ("output", True, "--output"), "distill": ("output", True, "--output"),
    "general": ("output", True, "--output"), "prune": ("output", True, "--output"),
    "trim-vocab": ("output", True, "--output"),
    "mlm-head": ("output", True, "--output"), "corpus": ("output", True, "--output"),
    "export": ("output", True, "--output"), "report": ("output", True, "--output"),
    "pipeline": ("output", True, "--output"), "augment": ("output", False, "--output"),
    "predict": ("output_file", False, "--output"), "evaluate": ("json_file", False, "--json"),
    "bench": ("json_file", False, "--json"),
}  # fmt: skip
PACKAGE = Path(__file__).resolve().parent
_HELD: dict[Path, int] = {}  # lock files this process holds -> the thread that took each


def is_main() -> bool:
    """The main process (RANK 0, or no torchrun): the one that writes and locks."""
    return int(os.environ.get("RANK", "0")) == 0


def inputs_of(cfg: Any) -> list[Path]:
    """The existing paths a command's config reads from."""
    found: list[Path] = []
    for name in INPUT_FIELDS:
        value = getattr(cfg, name, None) if dataclasses.is_dataclass(cfg) else None
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, (str, Path)) and str(item) and Path(item).exists():
                found.append(Path(item))
    return found


# ----------------------------------------------------------------------------- the rule


def _contains(outer: Path, inner: Path) -> bool:
    return inner == outer or outer in inner.parents


def check_target(
    output: str | Path, inputs: Iterable[Path] = (), *, folder: bool = True, flag: str = "--output"
) -> None:
    """One-line refusal of a path no run may write: ``.``, ``~``, ``/``, above the working dir, the
    inputs or the installation; for a folder output also a file, for a file output a folder."""
    text = str(output)
    if not text or text.startswith("~"):
        raise TinyDistillError(f"{flag} {text!r}: give a folder path ('~' is not expanded here)")
    path = Path(output)
    where = path.resolve()
    cwd = Path.cwd().resolve()
    places = {
        "the current folder": where == cwd,
        "a folder above the current one": _contains(where, cwd),
        "the home folder or one above it": _contains(where, _home()),
        "where tinydistill is installed, or above it": _contains(where, PACKAGE),
    }
    for what, taken in places.items():
        if taken:
            raise TinyDistillError(f"{flag} {text} is {what}; name a new folder for it, e.g. runs/NAME")
    for given in inputs:
        source = Path(given).resolve()
        if (folder and _contains(where, source)) or where == source:
            raise TinyDistillError(f"{flag} {text} would hold or replace an input ({given}); write elsewhere")
    if folder and path.exists() and not path.is_dir():
        raise TinyDistillError(f"{flag} {text} is a file, not a folder; name a new folder for the output")
    if not folder and path.is_dir():
        raise TinyDistillError(f"{flag} {text} is a folder; it takes a file path")


def _home() -> Path:
    try:
        return Path.home().resolve()
    except RuntimeError:  # no HOME and no user entry
        return Path("/")  # ``/`` holds the working dir anyway


def _legacy(folder: Path, groups: Iterable[tuple[str, ...]]) -> bool:
    return any(all((folder / name).exists() for name in group) for group in groups)


def owned(folder: Path) -> bool:
    """Written by tinydistill: the marker, or the files of an older version's output."""
    return (folder / MARKER).is_file() or _legacy(folder, LEGACY)


def check_folder(output: str | Path, flag: str = "--output") -> None:
    """A non-empty folder that tinydistill did not write is never written into or replaced (the main
    process decides: under torchrun it may be marking the folder while the others look)."""
    path = Path(output)
    if is_main() and path.is_dir() and any(path.iterdir()) and not owned(path):
        raise TinyDistillError(
            f"{flag} {path} holds files tinydistill did not write (no {MARKER} marker); "
            "they are never replaced: name a new or empty folder"
        )


def mark(folder: str | Path, command: str) -> Path:
    """Make ``folder`` (when needed) and write its marker, unless it has one."""
    from tinydistill import __version__

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / MARKER
    if not marker.is_file():
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        payload = {"made_by": f"tinydistill {command}", "version": __version__, "created": stamp}
        tmp = folder / f"{MARKER}.tmp"
        tmp.write_text(json.dumps(payload) + "\n")
        tmp.replace(marker)
    return folder


def fresh_work(work: Path, command: str) -> Path:
    """Empty the ``.NAME.partial`` dir a run is written into (only one tinydistill made) and mark it."""
    import shutil

    if work.exists():
        old = _legacy(work, [(name,) for name in LEGACY_PARTIAL])
        ours = work.is_dir() and (not any(work.iterdir()) or (work / MARKER).is_file() or old)
        if not ours:
            raise TinyDistillError(f"{work} holds files tinydistill did not write; move it away to run here")
        shutil.rmtree(work)
    return mark(work, command)


# ----------------------------------------------------------------------------- one writer at a time


def lock_path(output: Path) -> Path:
    return output.parent / f".{output.name}.lock"


@contextlib.contextmanager
def lock(output: str | Path, command: str) -> Iterator[None]:
    """Hold ``.NAME.lock`` beside ``output`` (it covers ``.NAME.partial`` and the final rename)."""
    output = Path(output)
    path = lock_path(output)
    key = path.parent.resolve() / path.name
    if fcntl is None or not is_main() or _HELD.get(key) == threading.get_ident():
        yield  # no locks here, or not the main process, or this thread holds it already (the CLI)
        return
    made = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    while True:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise TinyDistillError(f"cannot write the run to {output}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise TinyDistillError(
                f"{output} is in use by another run ({holder}); wait for it to end or choose another output"
            ) from None
        except OSError as exc:  # a file system without flock (some network mounts): run unlocked
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(path)
            print(f"warning: cannot lock {path} ({exc.strerror}); runs into {output} are not serialised",
                  file=sys.stderr)  # fmt: skip
            yield
            return
        try:  # the holder before us may have removed the file on release: lock the one at the path
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    info = {"pid": os.getpid(), "host": socket.gethostname(), "command": command, "started": started}
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(info).encode())
    _HELD[key] = threading.get_ident()
    try:
        yield
    finally:
        del _HELD[key]
        with contextlib.suppress(OSError):
            os.unlink(path)  # while still held: a run waiting on this file retries on a new one
        os.close(fd)
        for folder in made:  # the folders made for the lock alone (a refused run leaves nothing)
            with contextlib.suppress(OSError):
                folder.rmdir()


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "starting"
    command, pid, host, started = (info.get(k) for k in ("command", "pid", "host", "started"))
    return f"tinydistill {command}, pid {pid} on {host}, started {started}"


@contextlib.contextmanager
def writing(
    output: str | Path,
    command: str,
    inputs: Iterable[Path] = (),
    *,
    folder: bool = True,
    flag: str = "--output",
) -> Iterator[Path]:
    """The checks, then the lock for the whole command: ``with writing(cfg.output, "prune", ...):``."""
    path = Path(output)
    check_target(path, list(inputs), folder=folder, flag=flag)
    if folder:
        check_folder(path, flag)
    with lock(path, command):
        yield path


def guard(command: str, cfg: Any) -> contextlib.AbstractContextManager:
    """:func:`writing` on the output of ``command`` (a key of ``OUTPUTS``) given in ``cfg``, if any."""
    field, folder, flag = OUTPUTS[command]
    target = getattr(cfg, field, None)
    if not target:
        return contextlib.nullcontext()
    return writing(target, command, inputs_of(cfg), folder=folder, flag=flag)


def guarded(command: str) -> Callable:
    """Decorate an API function ``f(cfg, ...)`` of ``command``: :func:`guard` around every call."""

    def wrap(func: Callable) -> Callable:
        @functools.wraps(func)
        def run(cfg: Any, *args: Any, **kwargs: Any) -> Any:
            with guard(command, cfg):
                return func(cfg, *args, **kwargs)

        return run

    return wrap
