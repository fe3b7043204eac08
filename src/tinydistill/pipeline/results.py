"""What the pipeline hands on from its stage results: the summary table rows and the model card's inputs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tinydistill import config as C
from tinydistill.pipeline.plan import Plan
from tinydistill.pipeline.state import State


def _result(state: State, stage: str) -> dict[str, Any]:
    return (state.record(stage) or {}).get("result") or {}


def latencies(bench: dict[str, Any], model: str) -> dict[str, float]:
    """Backend -> CPU latency (ms) of one model in the bench stage's rows."""
    return {
        r["backend"]: r["latency_ms"]
        for r in bench.get("rows", [])
        if r["model"] == model and r["device"] == "cpu"
    }


def summary_rows(plan: Plan, state: State) -> dict[str, dict[str, Any]]:
    """summary.json: per model its dev metrics, verdict, parameters, size and CPU latency (PyTorch)."""
    ev, bench = _result(state, "evaluate"), _result(state, "bench")
    paths = {"teacher": plan.teacher_dir, "student": plan.model_dir}
    rows = {}
    for name, path in paths.items():
        torch_row = next(
            r for r in bench["rows"] if (r["model"], r["backend"], r["device"]) == (name, "torch", "cpu")
        )
        metrics = ev["metrics"][name]
        rows[name] = {
            "path": path,
            "dev": {s: m for s, m in metrics.items() if s != "test"},
            **({"test": metrics["test"]} if "test" in metrics else {}),
            "degenerate": ev["degenerate"][name],
            "params": torch_row["params"],
            "size_mb": round(torch_row["size_mb"], 1),
            "latency_ms": torch_row["latency_ms"],
            "latency_ms_by_backend": latencies(bench, name),
        }
    return rows


def _teacher_info(plan: Plan, state: State) -> dict[str, Any]:
    """Which model the teacher is, and how it was fine-tuned (by this pipeline, or given)."""
    if plan.enabled("teacher"):
        t = _result(state, "teacher")
        keys = ("epochs", "learning_rate", "steps", "train_examples")
        return {"name": t.get("model") or plan.cfg.teacher, "tuned": {k: t.get(k) for k in keys}}
    given = Path(plan.teacher_dir)
    metrics = given / "metrics.json"
    name = C.load_yaml(given / "config.yaml").get("model") if (given / "config.yaml").is_file() else None
    return {"name": name or str(given), "dir": str(given), "tuned": None, "has_metrics": metrics.is_file()}


def _export_info(plan: Plan, state: State) -> dict[str, Any] | None:
    if not plan.enabled("export"):
        return None
    export = _result(state, "export")
    return {
        "dir": plan.path("export"),
        "files": export.get("files"),
        "int8_agreement": export.get("int8_agreement"),
    }


def card_info(plan: Plan, state: State, card: C.CardConfig) -> dict[str, Any]:
    """Everything the model card shows, from the stages' recorded results (``card.json``)."""
    ev, bench, distill = _result(state, "evaluate"), _result(state, "bench"), _result(state, "distill")
    task = ev["task"]
    rows = summary_rows(plan, state)
    records = state.stages
    return {
        "model_name": card.model_name or f"{Path(plan.cfg.student).name}-{task['name'].lower()}",
        "license": card.license,
        "language": card.language or (["en"] if task.get("hf_name") else None),
        "tags": list(card.tags or []),
        "repo_id": plan.cfg.push_to_hub,
        "task": task,
        "teacher": _teacher_info(plan, state),
        "method": {
            k: distill.get(k) for k in ("recipe", "method", "stages", "train_examples", "batch_size", "seed")
        },
        "start": {k: v for k, v in _result(state, "start").items() if k not in ("outputs", "summary")},
        "augment": {k: v for k, v in _result(state, "augment").items() if k not in ("outputs", "summary")}
        or None,
        "trim": {k: v for k, v in _result(state, "trim").items() if k not in ("outputs", "summary")} or None,
        "metrics": ev["metrics"],
        "metrics_source": "`tinydistill evaluate` (the pipeline's evaluate stage)",
        "degenerate": ev["degenerate"],
        "models": {n: {"params": r["params"], "size_mb": r["size_mb"]} for n, r in rows.items()},
        "latency": {n: r["latency_ms_by_backend"] for n, r in rows.items()},
        "latency_setup": f"CPU, batch {bench.get('batch', 1)}, sequence length {bench.get('seq_len')}, "
        f"{bench.get('threads')} threads, p50",
        "export": _export_info(plan, state),
        "wall_seconds": {
            n: rec.get("seconds")
            for n, rec in records.items()
            if rec.get("status") == "done" and plan.enabled(n)
        },
        "machine": (state.record("distill") or {}).get("machine"),
        "date": time.strftime("%Y-%m-%d"),
    }
