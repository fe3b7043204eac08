"""What every run recipe shares: its rows, resolved settings, loop options and result.

A run dir holds the resolved ``config.yaml``, ``metrics.json``, metric logs under ``logs/`` and the
model in HF format (safetensors + tokenizer + config).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from tinydistill import config as C
from tinydistill.data import subsample
from tinydistill.models.load import resolve_model_path
from tinydistill.tasks.resolve import TaskData, as_examples, load_task_data


class RunResult(dict):
    """A run's metrics (this dict, as in ``metrics.json``), plus ``output`` (the run dir), ``model`` (the
    trained model object) and ``paths`` (model dir, config.yaml, metrics.json, logs)."""

    def __init__(self, metrics: dict[str, Any], output: Path, model: Any = None) -> None:
        super().__init__(metrics)
        self.output = Path(output)
        self.model = model
        self.paths = {
            "model": self.output,
            "config": self.output / "config.yaml",
            "metrics": self.output / "metrics.json",
            "logs": self.output / "logs",
        }


def model_labels(model_dir: str) -> list[str] | None:
    """Named labels of a checkpoint's head (for custom tasks), None when it has only LABEL_i names."""
    path = Path(resolve_model_path(model_dir)) / "config.json"
    if not path.exists():
        return None
    id2label = json.loads(path.read_text()).get("id2label") or {}
    names = [id2label[k] for k in sorted(id2label, key=int)]
    return None if not names or all(n.startswith("LABEL_") for n in names) else names


def task_data(
    cfg: C.RunConfig, labels_from: str | None = None, train: Any = None, dev: Any = None
) -> TaskData:
    """The task's rows from files, or ``train`` / ``dev`` rows given as objects (see ``as_examples``)."""
    data = load_task_data(
        cfg.task,
        cfg.data_dir,
        cfg.train_file,
        cfg.dev_file,
        cfg.text_columns,
        cfg.label_column,
        model_labels=model_labels(labels_from) if labels_from and cfg.task.lower() == "custom" else None,
        need_train=train is None,
        need_dev=dev is None,
    )
    if train is not None:
        data.train = as_examples(train, data.spec)
    if dev is not None:
        splits = dev if isinstance(dev, dict) else {"dev": dev}
        data.dev = {split: as_examples(rows, data.spec) for split, rows in splits.items()}
    return data


def position_limit(*models: Any, tokenizer: Any = None) -> int:
    """Longest input every model (and the tokenizer) accepts."""
    limits = [m.config.max_position_embeddings for m in models]
    if tokenizer is not None and 0 < tokenizer.model_max_length < 100_000:
        limits.append(tokenizer.model_max_length)
    return min(limits)


def resolve(cfg: C.RunConfig, data: TaskData, position_limit: int | None = None) -> C.RunConfig:
    """Fill unset values from the task's defaults; cap the length at what the models accept."""
    spec = data.spec
    length = cfg.max_seq_length or spec.max_seq_length
    if position_limit:
        length = min(length, position_limit)
    return dataclasses.replace(
        cfg,
        epochs=cfg.epochs or spec.epochs,
        learning_rate=cfg.learning_rate or spec.learning_rate,
        max_seq_length=length,
        batch_size=cfg.batch_size or spec.batch_size,
    )


def dev_rows(cfg: C.RunConfig, data: TaskData) -> dict:
    return {s: subsample(ex, cfg.max_eval_samples, cfg.seed) for s, ex in data.dev.items()}


def write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    tmp.replace(path)


def loop_options(cfg: C.RunConfig, n_batches: int) -> dict[str, Any]:
    """The training-loop settings every recipe takes from its run config."""
    return dict(
        optimizer_name=cfg.optimizer,
        scheduler_name=cfg.scheduler,
        weight_decay=cfg.weight_decay,
        warmup_ratio=cfg.warmup_ratio,
        max_grad_norm=cfg.max_grad_norm,
        eval_every=cfg.eval_every or n_batches,
        logging_steps=cfg.logging_steps,
    )
