"""The state file ``OUTPUT/pipeline.json``: per stage its status, fingerprint, options and result.

A stage's fingerprint hashes its options (paths inside the run dir written ``$OUT/...``, so a moved
run dir keeps its state), a stamp (names, sizes, mtimes) of every file or dir it reads from outside
the run dir, and the fingerprints of the stages it reads from. A stage is reused only when it is
``done`` with the same fingerprint, its outputs are still there and no stage it reads from ran again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any

from tinydistill.errors import TinyDistillError

STATE_FILE = "pipeline.json"
VERSION = 1
OUT = "$OUT"


def portable(value: Any, out: Path) -> Any:
    """``value`` with paths under the run dir written ``$OUT/...`` and other existing paths absolute
    (however they were spelled); None values dropped from mappings."""
    if isinstance(value, dict):
        return {k: portable(v, out) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [portable(v, out) for v in value]
    if not isinstance(value, str) or not value:
        return value
    path, root = Path(value).resolve(), out.resolve()
    if path.is_relative_to(root):
        return str(Path(OUT, path.relative_to(root)))
    return str(path) if path.exists() else value


def stamp(path: Path) -> str:
    """A short hash of the names, sizes and mtimes of a file, or of the files of a dir (two levels)."""
    files = [path] if path.is_file() else sorted(p for p in path.glob("*") if p.is_file())
    if path.is_dir():
        files += sorted(p for p in path.glob("*/*") if p.is_file())
    text = "|".join(f"{p.relative_to(path.parent)}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def external_inputs(options: dict[str, Any]) -> dict[str, str]:
    """Stamps of the existing files and dirs named in ``options`` (portable form) outside the run dir."""
    found: dict[str, str] = {}

    def visit(value: Any) -> None:
        if isinstance(value, dict):
            for v in value.values():
                visit(v)
        elif isinstance(value, list):
            for v in value:
                visit(v)
        elif isinstance(value, str) and value and not value.startswith(OUT) and Path(value).exists():
            found[value] = stamp(Path(value))

    visit(options)
    return found


def fingerprint(options: dict[str, Any], inputs: dict[str, str], upstream: dict[str, str]) -> str:
    payload = json.dumps({"options": options, "inputs": inputs, "upstream": upstream}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Option names whose values differ: inside a command's options, or the top-level ones."""
    out: list[str] = []
    for key in dict.fromkeys([*old, *new]):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += [k for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)]
        elif a != b:
            out.append(key)
    return out


@dataclasses.dataclass
class Identity:
    """What makes a stage's run the same as a recorded one."""

    options: dict[str, Any]
    inputs: dict[str, str]
    upstream: dict[str, str]

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.options, self.inputs, self.upstream)

    def why_changed(self, record: dict[str, Any]) -> str:
        """What differs from the recorded run, in a few words."""
        parts = []
        keys = changed_keys(record.get("options", {}), self.options)
        if keys:
            parts.append("options changed: " + ", ".join(keys))
        old_inputs = record.get("inputs", {})
        inputs = {
            Path(p).name for p in {*old_inputs, *self.inputs} if old_inputs.get(p) != self.inputs.get(p)
        }
        if inputs:
            parts.append("input changed: " + ", ".join(sorted(inputs)))
        old_up = record.get("upstream", {})
        ups = [s for s in {*old_up, *self.upstream} if old_up.get(s) != self.upstream.get(s)]
        if ups:
            parts.append("upstream changed: " + ", ".join(sorted(ups)))
        return "; ".join(parts) or "fingerprint changed"


@dataclasses.dataclass
class Decision:
    """``reuse`` a done stage, ``resume`` an interrupted one or ``run`` it (``fresh``: replace its output)."""

    action: str
    reason: str = ""
    fresh: bool = False


def decide(
    record: dict[str, Any] | None, ident: Identity, forced: str | None, reran: list[str], missing: list[str]
) -> Decision:
    """Whether a stage runs, and why (``reran``: stages it reads from that ran in this call)."""
    if forced:
        return Decision("run", forced, fresh=True)
    if record is None:
        return Decision("run", "first run")
    if record.get("fingerprint") != ident.fingerprint:
        return Decision("run", ident.why_changed(record), fresh=True)
    if reran:
        return Decision("run", f"{', '.join(reran)} ran again", fresh=True)
    if record.get("status") != "done":
        error = str(record.get("error", "?"))[:80]
        return Decision("resume", "interrupted" if record.get("status") == "running" else f"failed: {error}")
    if missing:
        return Decision("run", f"output missing: {', '.join(missing)}", fresh=True)
    return Decision("reuse")


class State:
    """The records of ``pipeline.json``, written atomically after every change."""

    def __init__(self, out: Path) -> None:
        self.path = out / STATE_FILE
        self.data: dict[str, Any] = {"version": VERSION, "stages": {}}
        if self.path.is_file():
            try:
                self.data = json.loads(self.path.read_text())
            except json.JSONDecodeError as exc:
                raise TinyDistillError(
                    f"{self.path}: invalid JSON ({exc.msg}); delete it to start the state afresh"
                ) from None

    @property
    def stages(self) -> dict[str, dict[str, Any]]:
        return self.data.setdefault("stages", {})

    def record(self, name: str) -> dict[str, Any] | None:
        return self.stages.get(name)

    def begin(self, name: str, ident: Identity, machine: str, replace: bool) -> None:
        """``replace``: what the stage's dir holds is an older run's, to be replaced (not adopted)."""
        self.stages[name] = {
            "status": "running",
            "fingerprint": ident.fingerprint,
            **dataclasses.asdict(ident),
            "started": _now(),
            "machine": machine,
            "replace": replace,
        }
        self.save()

    def finish(self, name: str, result: dict[str, Any], seconds: float) -> None:
        rec = self.stages[name]
        rec.update(status="done", finished=_now(), seconds=round(seconds, 1), result=result)
        rec.pop("error", None)
        self.save()

    def fail(self, name: str, error: str, interrupted: bool) -> None:
        rec = self.stages[name]
        rec.update(status="running" if interrupted else "failed", error=error)
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.data, indent=2))
        tmp.replace(self.path)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")
