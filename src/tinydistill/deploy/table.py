"""Markdown tables of teacher-vs-student results: the one place that lays out rows and formats cells.

Used by the main job (:mod:`tinydistill.pipeline`), ``tinydistill bench``
(:mod:`tinydistill.deploy.bench`) and ``tinydistill report`` (:mod:`tinydistill.deploy.report`).
Ratios read ``2.1x`` and are taken teacher / student (or first row / row); missing values read ``-``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from tinydistill.evaluation import flatten

DEGENERATE = "(DEGENERATE)"


def markdown(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A markdown table: header, separator, one line per row, ending in a newline."""
    lines = [_line(header), "|" + "---|" * len(header), *(_line(r) for r in rows)]
    return "\n".join(lines) + "\n"


def _line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def num(value: float | None, pattern: str = ".2f", suffix: str = "") -> str:
    """``value`` formatted with ``pattern`` and ``suffix``, or ``-`` when missing."""
    return "-" if value is None else f"{value:{pattern}}{suffix}"


def ratio(value: float | None) -> str:
    """A ratio such as ``2.1x`` (``-`` when missing)."""
    return num(value, ".1f", "x")


def label(name: str, degenerate: bool = False) -> str:
    """A model's name, marked when its dev predictions are no better than the trivial baseline."""
    return f"{name} {DEGENERATE}" if degenerate else name


def human_count(n: int | None) -> str:
    """``12.3M`` / ``45.6K`` (``-`` when missing)."""
    if n is None:
        return "-"
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}K"


def percents(dev: dict[str, dict[str, float]]) -> list[str]:
    """Dev metrics (``{split: {metric: value}}``) as percent cells."""
    return [f"{100 * v:.2f}" for v in flatten(dev).values()]


def pipeline_table(task: str, rows: dict[str, dict[str, Any]], seq_len: int = 128) -> str:
    """The main job's table: dev metrics, size and latency of each model, ratios against the first."""
    base = next(iter(rows.values()))
    header = ["model", *flatten(base["dev"]), "params", "size MB"]
    header += [f"CPU latency ms (b=1, len={seq_len})", "params ratio", "speed-up"]
    body = [
        [
            label(name, r.get("degenerate", False)),
            *percents(r["dev"]),
            human_count(r["params"]),
            f"{r['size_mb']:.1f}",
            f"{r['latency_ms']:.2f}",
            ratio(base["params"] / r["params"]),
            ratio(base["latency_ms"] / r["latency_ms"]),
        ]
        for name, r in rows.items()
    ]
    return f"### {task}: teacher vs student (dev metrics in %)\n\n" + markdown(header, body)


def bench_table(result: dict[str, Any]) -> str:
    """``tinydistill bench``: size, latency, throughput (+ dev metrics) and ratios against the first row."""
    rows, meta = result["rows"], result["meta"]
    sizes = [str(b) for b in meta["batch_sizes"]]
    lat, thr = sizes[0], sizes[-1]
    metrics = list(flatten(rows[0]["dev"])) if rows and rows[0].get("dev") else []
    header = ["model", "backend", "device", "params", "size MB", f"p50 ms b={lat}", f"p95 ms b={lat}"]
    header += [f"seq/s b={thr}", *metrics, "speed-up", f"throughput x b={thr}", "params ratio", "size ratio"]
    body = [
        [
            r["model"],
            r["backend"],
            r["device"],
            human_count(r["params"]),
            f"{r['size_mb']:.1f}",
            f"{r['latency_ms'][lat]['p50']:.2f}",
            f"{r['latency_ms'][lat]['p95']:.2f}",
            f"{r['throughput'][thr]:.1f}",
            *percents(r.get("dev") or {}),
            *(ratio(r["ratios"][k]) for k in ("speedup", "throughput", "params")),
            ratio(r["ratios"]["size"] or None),
        ]
        for r in rows
    ]
    title = f"seq len {meta['seq_len']}, {meta['threads']} CPU threads; ratios vs the first row"
    if meta.get("cuda"):
        title += f"; GPU {meta['cuda']}"
    return f"{title}\n\n" + markdown(header, body)


def report_table(rows: list[dict[str, Any]]) -> str:
    """``tinydistill report``: each run with its retention and ratios against its teacher."""
    header = ["task", "model", "role", "metric", "dev %", "retention %", "params", "params ratio"]
    header += ["latency ms", "latency ratio (speed-up)"]
    body = [
        [
            r["task"],
            label(r["model"], r.get("degenerate", False)),
            r["role"] if r["role"] == "teacher" else f"student of {r['teacher'] or '?'}",
            r["metric"] or "-",
            num(None if r["score"] is None else 100 * r["score"]),
            num(r["retention"], ".1f"),
            human_count(r["params"]),
            ratio(r["params_ratio"]),
            num(r["latency_ms"]),
            ratio(r["speedup"]),
        ]
        for r in rows
    ]
    return markdown(header, body)


def points_table(points: list[dict[str, Any]]) -> str:
    """Every plotted model x backend with its speed-up over its teacher's PyTorch latency."""
    header = ["model", "task", "backend", "metric", "dev %", "latency ms", "speed-up vs teacher torch"]
    body = []
    for p in sorted(points, key=lambda p: (p["task"], -p["latency_ms"])):
        t = p.get("teacher_latency_ms")
        cells = [p["name"], p["task"], p["backend"], p["metric"], num(p["score"]), num(p["latency_ms"])]
        body.append([*cells, ratio(t / p["latency_ms"] if t else None)])
    return markdown(header, body)
