"""Resumable training state: checkpoints written atomically, the newest found again, old ones pruned.

A checkpoint is a dir ``step-N/`` holding ``state.pt`` (tensors only, loadable with
``weights_only=True``: model + projection weights, optimizer, scheduler), ``rng-R.pt`` per process
(Python, NumPy, torch and CUDA RNG states) and ``trainer_state.json`` (the loop's step, history,
evaluations). It is written as ``.step-N.tmp/`` and renamed into place, so a dir named ``step-N`` is
always complete; :func:`latest_readable` falls back to the previous one when the newest is damaged.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

_STEP_DIR = re.compile(r"^step-(\d+)$")


def rng_state() -> dict[str, Any]:
    """Python and NumPy generator states (JSON-able) and the torch ones (tensors)."""
    version, state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    torch_state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        torch_state["cuda"] = torch.cuda.get_rng_state_all()
    return {
        "json": {
            "python": [version, list(state), gauss],
            "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        },
        "torch": torch_state,
    }


def set_rng_state(json_part: dict[str, Any], torch_part: dict[str, Any]) -> None:
    version, state, gauss = json_part["python"]
    random.setstate((version, tuple(state), gauss))
    kind, keys, pos, has_gauss, cached = json_part["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch_part["cpu"])
    if "cuda" in torch_part and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(torch_part["cuda"])


def checkpoint_dirs(root: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under ``root``, oldest first."""
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _STEP_DIR.match(path.name)
        if match and (path / "trainer_state.json").exists() and (path / "state.pt").exists():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_readable(root: Path) -> Path | None:
    """The newest checkpoint whose files load; a damaged newer one is reported and skipped."""
    for _, path in reversed(checkpoint_dirs(root)):
        try:  # memory-mapped: a cut-short or garbled file fails here without reading the tensors
            torch.load(path / "state.pt", map_location="cpu", weights_only=True, mmap=True)
            read_meta(path)
            return path
        except Exception as exc:  # noqa: BLE001 - any unreadable file: fall back, say so
            print(f"warning: checkpoint {path} is unreadable ({type(exc).__name__}); using the previous one",
                  file=sys.stderr)  # fmt: skip
    return None


def temp_dir(root: Path, step: int) -> Path:
    return root / f".step-{step}.tmp"


def begin(root: Path, step: int) -> Path:
    """A fresh temp dir for checkpoint ``step`` (the main process makes it; all write into it)."""
    tmp = temp_dir(root, step)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def save_rng(tmp: Path, rank: int) -> None:
    torch.save(rng_state(), tmp / f"rng-{rank}.pt")


def load_rng(path: Path, rank: int) -> None:
    state = torch.load(path / f"rng-{rank}.pt", map_location="cpu", weights_only=True)
    set_rng_state(state["json"], state["torch"])


def commit(tmp: Path, final: Path, tensors: dict[str, Any], meta: dict[str, Any], keep: int) -> Path:
    """Write the tensors and meta into ``tmp``, rename it to ``final``, keep the newest ``keep``."""
    torch.save(tensors, tmp / "state.pt")
    (tmp / "trainer_state.json").write_text(json.dumps(meta))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for _, old in checkpoint_dirs(final.parent)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def read_meta(path: Path) -> dict[str, Any]:
    """A checkpoint's JSON part (the loop's state and its caller's ``meta``)."""
    return json.loads((path / "trainer_state.json").read_text())


def load_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    tensors = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
    return tensors, read_meta(path)
