"""The main job: fine-tune a teacher, distill a student from it, compare both side by side."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from tinydistill import api
from tinydistill.config import QUICK, DistillConfig, EvaluateConfig, FinetuneConfig, PipelineConfig, build
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
        verdict = api.evaluate(build(EvaluateConfig, None, task=task, model=path, data_dir=data_dir))
        rows[name] = {"path": path, "dev": verdict.metrics, "degenerate": verdict.degenerate}
    runners = [load_runner(path, "torch", name) for name, path in models.items()]
    for row, runner, times in zip(rows.values(), runners, time_runners(runners, 1, seq_len), strict=True):
        row["params"] = int(runner.params)
        row["size_mb"] = round(runner.size_bytes / 2**20, 1)
        row["latency_ms"] = p50_p95(times)[0]
    return rows


def find_glue() -> str | None:
    """``../shared/data/glue`` (beside the working dir or the checkout) when it exists, else None (HF hub)."""
    candidates = [
        Path.cwd().parent / "shared" / "data" / "glue",
        Path(__file__).resolve().parents[3] / "shared" / "data" / "glue",
    ]
    return next((str(p) for p in candidates if p.is_dir()), None)


def with_caps(cfg: PipelineConfig) -> PipelineConfig:
    """Fill the QUICK caps (rows, epochs) left unset, unless ``full``; find the GLUE dir."""
    caps = {k: v for k, v in QUICK.items() if getattr(cfg, k) is None and not cfg.full}
    return dataclasses.replace(cfg, data_dir=cfg.data_dir or find_glue(), **caps)


def run(cfg: PipelineConfig) -> dict[str, Any]:
    """Fine-tune the teacher, distill the student (tinybert4), compare them; writes summary.md/json."""
    cfg = with_caps(cfg)
    out = Path(cfg.output)
    # finished runs with the same settings are kept, interrupted ones continue; --overwrite redoes both
    again = dict(resume=not cfg.overwrite, overwrite=cfg.overwrite)
    common: dict[str, Any] = dict(
        **again,
        task=cfg.task,
        data_dir=cfg.data_dir,
        max_train_samples=cfg.max_train_samples,
        max_steps=cfg.max_steps,
        batch_size=cfg.batch_size,
        max_seq_length=cfg.max_seq_length,
        seed=cfg.seed,
    )
    api.finetune(
        build(
            FinetuneConfig,
            None,
            model=cfg.teacher,
            output=str(out / "teacher"),
            epochs=cfg.teacher_epochs,
            learning_rate=cfg.teacher_lr,
            **common,
        )
    )
    student_metrics = api.distill(
        build(
            DistillConfig,
            None,
            teacher=str(out / "teacher"),
            student=cfg.student,
            output=str(out / "student"),
            learning_rate=cfg.student_lr,
            intermediate_epochs=cfg.intermediate_epochs,
            prediction_epochs=cfg.prediction_epochs,
            **common,
        )
    )
    if student_metrics["degenerate"] and not cfg.allow_degenerate:
        raise TinyDistillError(
            f"the student in {out / 'student'} is degenerate ({student_metrics['degenerate_reason']}); "
            "stopping before the comparison. Try more steps (--intermediate-epochs/--prediction-epochs), "
            "more training rows (--max-train-samples), or --recipe kd; --allow-degenerate to go on"
        )
    rows = compare(cfg.task, {"teacher": str(out / "teacher"), "student": str(out / "student")}, cfg.data_dir)
    table = pipeline_table(get_task(cfg.task).name, rows)
    (out / "summary.md").write_text(table)
    (out / "summary.json").write_text(json.dumps(rows, indent=2))
    return {"rows": rows, "table": table}
