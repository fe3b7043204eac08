"""Report over finetune / distill run dirs: teacher-vs-student table, loss curves, accuracy vs latency.

A student's teacher is the run dir its ``metrics.json`` names (loaded even when not listed), else the
first finetune run given for the same task. Latency is batch-1 CPU latency of each run's PyTorch model,
measured interleaved here, or read from a ``tinydistill bench --json`` file (whose ONNX rows with dev
metrics are added to the scatter).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinydistill.deploy.table import points_table, report_table
from tinydistill.errors import TinyDistillError
from tinydistill.evaluation import flatten
from tinydistill.ownership import mark
from tinydistill.tasks import get_task


@dataclass
class Run:
    path: Path
    name: str
    kind: str  # "finetune" or "distill"
    task: str
    metrics: dict[str, Any]
    teacher: Run | None = None
    latency_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def params(self) -> int | None:
        return self.metrics.get("params")

    @property
    def dev(self) -> dict[str, float]:
        """Dev metrics: re-evaluated on the full dev set by a bench file when given, else metrics.json's."""
        return self.extra.get("dev") or self.metrics.get("dev") or {}


def load_run(path: str | Path) -> Run:
    p = Path(path)
    if not p.is_dir():
        raise TinyDistillError(f"run dir not found: {path}")
    mfile = p / "metrics.json"
    if not mfile.is_file():
        raise TinyDistillError(f"{path}: not a run dir (no metrics.json; is the run finished?)")
    try:
        metrics = json.loads(mfile.read_text())
    except json.JSONDecodeError as exc:
        raise TinyDistillError(f"{mfile}: invalid JSON ({exc.msg})") from None
    if not isinstance(metrics, dict) or "task" not in metrics:
        raise TinyDistillError(f"{mfile}: not a tinydistill metrics file (no 'task')")
    kind = "distill" if "stages" in metrics else "finetune"
    return Run(p, p.name, kind, str(metrics["task"]), metrics)


def primary_metric(task: str, dev: dict[str, float]) -> str | None:
    """The task's selection metric as keyed in ``dev`` (e.g. ``f1`` or ``dev_matched/accuracy``)."""
    if not dev:
        return None
    try:
        key = get_task(task).primary_metric
    except TinyDistillError:
        return next(iter(dev))
    if key in dev:
        return key
    return next((k for k in dev if k.endswith("/" + key)), next(iter(dev)))


def _same(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def link_teachers(runs: list[Run]) -> list[Run]:
    """Attach each distill run's teacher run; returns the runs plus teachers loaded from metrics.json."""
    out = list(runs)
    for run in runs:
        if run.kind != "distill":
            continue
        named = Path(str(run.metrics.get("teacher", "")))
        match = next((r for r in out if named.parts and _same(r.path, named)), None)
        if match is None and named.parts and (named / "metrics.json").is_file():
            match = load_run(named)
            out.append(match)
        if match is None:
            match = next((r for r in out if r.kind == "finetune" and r.task == run.task), None)
        run.teacher = match
    names = [r.name for r in out]
    if len(set(names)) != len(names):
        for r in out:
            r.name = "/".join(r.path.parts[-2:])
    return out


def measure_latency(runs: list[Run], seq_len: int, threads: int | None, repeats: int) -> None:
    """Batch-1 CPU p50 latency of every run's PyTorch model, measured interleaved."""
    from tinydistill.deploy.bench import bench

    todo = [r for r in runs if r.latency_ms is None]
    if not todo:
        return
    result = bench(
        [str(r.path) for r in todo],
        "torch",
        [1],
        seq_len=seq_len,
        threads=threads,
        repeats=repeats,
        device="cpu",
        names=[r.name for r in todo],
    )
    for run, row in zip(todo, result["rows"], strict=True):
        run.latency_ms = row["latency_ms"]["1"]["p50"]


def _read_bench(bench_file: str | Path) -> list[dict[str, Any]]:
    path = Path(bench_file)
    if not path.is_file():
        raise TinyDistillError(f"bench file not found: {bench_file}")
    try:
        rows = json.loads(path.read_text())["rows"]
        if not isinstance(rows, list):
            raise TypeError
    except (json.JSONDecodeError, KeyError, TypeError):
        raise TinyDistillError(f"{bench_file}: not a 'tinydistill bench --json' file") from None
    return rows


def _row_run(runs: list[Run], row: dict[str, Any]) -> Run | None:
    """The run a bench row measured: by its path, or by the source of an export dir."""
    for key in ("path", "source"):
        value = row.get(key)
        if value and Path(value).exists():
            match = next((r for r in runs if _same(r.path, Path(value))), None)
            if match is not None:
                return match
    return None


def bench_points(runs: list[Run], bench_files: list[str]) -> list[tuple[Run, str, float, dict[str, float]]]:
    """Latencies from bench JSONs (torch, CPU, b=1); their ONNX rows with dev metrics become extra points."""
    extra = []
    for bench_file in bench_files:
        for row in _read_bench(bench_file):
            run = _row_run(runs, row)
            lat = (row.get("latency_ms") or {}).get("1", {}).get("p50")
            if run is None or lat is None or row.get("device", "cpu") != "cpu":
                continue
            flat = flatten(row["dev"]) if row.get("dev") else None
            if row.get("backend") == "torch":
                run.latency_ms = lat
                if flat:
                    run.extra["dev"] = flat
            elif flat:
                extra.append((run, row["backend"], lat, flat))
    return extra


def _point(run: Run, backend: str, lat: float, dev: dict[str, float], key: str | None) -> dict[str, Any]:
    teacher = run.teacher if run.kind == "distill" else run
    return {
        "teacher_latency_ms": teacher.latency_ms if teacher else None,
        "name": run.name if backend == "torch" else f"{run.name} ({backend})",
        "model": run.name,
        "task": run.task,
        "backend": backend,
        "latency_ms": lat,
        "metric": key,
        "score": 100 * dev[key],
    }


def table_rows(runs: list[Run]) -> list[dict[str, Any]]:
    """One row per run, teachers first within each task, with ratios against the run's teacher."""
    rows = []
    for task in dict.fromkeys(r.task for r in runs):
        group = sorted((r for r in runs if r.task == task), key=lambda r: r.kind != "finetune")
        for run in group:
            key = primary_metric(task, run.dev)
            teacher = run.teacher if run.kind == "distill" else run
            t_score = teacher.dev.get(key) if teacher and key else None
            score = run.dev.get(key) if key else None
            row = {
                "task": task,
                "model": run.name,
                "path": str(run.path),
                "degenerate": bool(run.metrics.get("degenerate")),
                "role": "student" if run.kind == "distill" else "teacher",
                "teacher": teacher.name if teacher else None,
                "metric": key,
                "score": score,
                "retention": 100 * score / t_score if score is not None and t_score else None,
                "params": run.params,
                "params_ratio": teacher.params / run.params
                if teacher and teacher.params and run.params
                else None,
                "latency_ms": run.latency_ms,
                "speedup": (
                    teacher.latency_ms / run.latency_ms
                    if teacher and teacher.latency_ms and run.latency_ms
                    else None
                ),
            }
            rows.append(row)
    return rows


def _run_lines(run: Run) -> str:
    m = run.metrics
    dev = ", ".join(f"{k}={100 * v:.2f}" for k, v in (m.get("dev") or {}).items()) or "-"
    if run.extra.get("dev"):
        dev += " (metrics.json); " + ", ".join(f"{k}={100 * v:.2f}" for k, v in run.extra["dev"].items())
        dev += " (re-evaluated by the bench)"
    steps = (
        m.get("steps")
        if run.kind == "finetune"
        else {s: i.get("steps") for s, i in m.get("stages", {}).items()}
    )
    parts = [f"- **{run.name}** (`{run.path}`): {run.kind}, task {run.task}, dev {dev}"]
    if m.get("degenerate"):
        parts.append(f"DEGENERATE: {m.get('degenerate_reason', 'no better than the trivial baseline')}")
    parts.append(
        f"steps {steps}, train examples {m.get('train_examples')}, train time {m.get('train_seconds')} s"
    )
    if run.kind == "distill":
        parts.append(
            f"student `{m.get('student')}`, teacher `{m.get('teacher')}`, layer map {m.get('layer_map')}"
        )
    return "; ".join(parts)


def build_report(
    run_dirs: list[str],
    output: str | Path,
    bench_files: list[str] | None = None,
    seq_len: int = 128,
    threads: int | None = None,
    repeats: int = 10,
    measure: bool = True,
) -> dict[str, Any]:
    """Write ``report.md``, ``report.json``, ``loss_curves.png`` and ``accuracy_vs_latency.png``."""
    from tinydistill.deploy.plots import plot_accuracy_latency, plot_losses

    if not run_dirs:
        raise TinyDistillError("no run dirs given")
    runs = link_teachers([load_run(d) for d in run_dirs])
    extra = bench_points(runs, bench_files) if bench_files else []
    source = f"from {', '.join(bench_files)}" if bench_files else "measured interleaved by this report"
    if measure:
        missing = [r for r in runs if r.latency_ms is None]
        measure_latency(runs, seq_len, threads, repeats)
        if missing and bench_files:
            source += f"; measured here: {', '.join(r.name for r in missing)}"
    out = mark(output, "report")
    rows = table_rows(runs)
    points = [
        _point(r, "torch", r.latency_ms, r.dev, primary_metric(r.task, r.dev))
        for r in runs
        if r.latency_ms is not None and primary_metric(r.task, r.dev)
    ] + [_point(r, b, lat, dev, primary_metric(r.task, dev)) for r, b, lat, dev in extra]
    plot_losses(runs, out / "loss_curves.png")
    plot_accuracy_latency(points, out / "accuracy_vs_latency.png", seq_len)
    md = [
        "# tinydistill report",
        "",
        "## Teacher vs student",
        "",
        "Retention % = student metric / teacher metric x 100; params ratio and speed-up = teacher / student.",
        f"Latency: PyTorch fp32, CPU, batch 1, seq len {seq_len}, p50 ({source}).",
        "Dev metrics: "
        + (
            "re-evaluated on the full dev set by the bench where it has them, else the run's metrics.json."
            if bench_files
            else "the runs' metrics.json (best dev evaluation during training)."
        ),
        "",
        report_table(rows),
        "## Training loss",
        "",
        "![training loss curves](loss_curves.png)",
        "",
        "## Accuracy vs latency",
        "",
        "![dev metric vs CPU latency](accuracy_vs_latency.png)",
        "",
        points_table(points),
        "## Runs",
        "",
        *[_run_lines(r) for r in runs],
        "",
    ]
    (out / "report.md").write_text("\n".join(md))
    payload = {"rows": rows, "points": points, "seq_len": seq_len, "latency_source": source}
    (out / "report.json").write_text(json.dumps(payload, indent=2))
    return {"output": str(out), "rows": rows, "table": report_table(rows), "points": points}
