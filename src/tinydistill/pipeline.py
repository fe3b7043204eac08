"""The main job: fine-tune a teacher, distill a student from it, compare both side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from tinydistill import api
from tinydistill.config import DistillConfig, FinetuneConfig
from tinydistill.deploy.runners import load_runner
from tinydistill.deploy.table import pipeline_table
from tinydistill.deploy.timing import p50_p95, time_runners
from tinydistill.errors import TinyDistillError
from tinydistill.tasks import get_task


def compare(
    task: str,
    models: dict[str, str],
    data_dir: str | None,
    seq_len: int = 128,
    threads: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Dev metrics, parameter count, size and batch-1 CPU latency (PyTorch) of each saved model."""
    if threads:
        torch.set_num_threads(threads)
    rows: dict[str, dict[str, Any]] = {}
    for name, path in models.items():
        verdict = api.evaluate(task, path, data_dir=data_dir)
        rows[name] = {"path": path, "dev": verdict.metrics, "degenerate": verdict.degenerate}
    runners = [load_runner(path, "torch", name) for name, path in models.items()]
    for row, runner, times in zip(rows.values(), runners, time_runners(runners, 1, seq_len), strict=True):
        row["params"] = int(runner.params)
        row["size_mb"] = round(runner.size_bytes / 2**20, 1)
        row["latency_ms"] = p50_p95(times)[0]
    return rows


def run(
    task: str = "SST-2",
    data_dir: str | None = None,
    output: str = "runs/main",
    teacher: str = "all-MiniLM-L6-v2",
    student: str = "tinybert-4l-312",
    max_train_samples: int | None = None,
    teacher_epochs: float | None = None,
    teacher_lr: float | None = None,
    student_lr: float | None = None,
    intermediate_epochs: float | None = None,
    prediction_epochs: float | None = None,
    max_steps: int | None = None,
    batch_size: int | None = None,
    max_seq_length: int | None = None,
    seed: int = 42,
    allow_degenerate: bool = False,
) -> dict[str, Any]:
    out = Path(output)
    common: dict[str, Any] = dict(
        task=task,
        data_dir=data_dir,
        max_train_samples=max_train_samples,
        max_steps=max_steps,
        batch_size=batch_size,
        max_seq_length=max_seq_length,
        seed=seed,
    )
    api.finetune(
        FinetuneConfig(
            model=teacher,
            output=str(out / "teacher"),
            epochs=teacher_epochs,
            learning_rate=teacher_lr,
            **common,
        )
    )
    student_metrics = api.distill(
        DistillConfig(
            teacher=str(out / "teacher"),
            student=student,
            output=str(out / "student"),
            learning_rate=student_lr,
            stage="all",
            intermediate_epochs=intermediate_epochs,
            prediction_epochs=prediction_epochs,
            **common,
        )
    )
    if student_metrics["degenerate"] and not allow_degenerate:
        raise TinyDistillError(
            f"the student in {out / 'student'} is degenerate ({student_metrics['degenerate_reason']}); "
            "stopping before the comparison. Try more steps (--intermediate-epochs/--prediction-epochs), "
            "more training rows (--max-train-samples), or --recipe kd; --allow-degenerate to go on"
        )
    rows = compare(task, {"teacher": str(out / "teacher"), "student": str(out / "student")}, data_dir)
    table = pipeline_table(get_task(task).name, rows)
    (out / "summary.md").write_text(table)
    (out / "summary.json").write_text(json.dumps(rows, indent=2))
    return {"rows": rows, "table": table}
