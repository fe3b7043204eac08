"""Turn run settings (task name, data dir, optional files) into a spec plus train/dev examples."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tinydistill.errors import TinyDistillError
from tinydistill.tasks.readers import (
    infer_labels,
    load_split,
    looks_like_regression,
    read_table,
    read_tsv_file,
)
from tinydistill.tasks.registry import Example, TaskSpec, custom_task, get_task


@dataclass
class TaskData:
    spec: TaskSpec
    train: list[Example]
    dev: dict[str, list[Example]]


def _check_file(path: str | None, flag: str) -> Path:
    if not path:
        raise TinyDistillError(f"a custom task needs {flag} FILE")
    p = Path(path)
    if not p.is_file():
        raise TinyDistillError(f"file not found: {p}")
    return p


def custom_spec(
    train_file: str | None,
    text_columns: list[str] | None,
    label_column: str,
    model_labels: list[str] | None = None,
) -> TaskSpec:
    """A user task: labels from the model's head when it has named ones, else from the train file."""
    columns = text_columns or ["text"]
    if model_labels is not None:
        labels: list[str] | None = model_labels
    else:
        values = infer_labels(_check_file(train_file, "--train-file"), label_column)
        labels = None if looks_like_regression(values) else values
    return custom_task(labels, text_b=len(columns) > 1, text_columns=columns, label_column=label_column)


def read_train_file(
    spec: TaskSpec, path: str, text_columns: list[str] | None, label_column: str
) -> list[Example]:
    """An explicit train file: the task's own TSV layout for GLUE tasks, else named columns."""
    p = Path(path)
    if not p.is_file():
        raise TinyDistillError(f"train file not found: {p}")
    if spec.hf_name is not None and p.suffix.lower() == ".tsv" and not text_columns:
        return read_tsv_file(spec, p)
    columns = text_columns or [c for c in (spec.hf_text_a, spec.hf_text_b) if c]
    return read_table(p, columns, label_column, spec)


def load_task_data(
    task: str,
    data_dir: str | None,
    train_file: str | None = None,
    dev_file: str | None = None,
    text_columns: list[str] | None = None,
    label_column: str = "label",
    model_labels: list[str] | None = None,
    need_train: bool = True,
    need_dev: bool = True,
) -> TaskData:
    """Read everything a run needs, before anything is written to its output directory."""
    if task.lower() == "custom":
        spec = custom_spec(train_file, text_columns, label_column, model_labels)
        columns = list(text_columns or ["text"])
        train = (
            read_table(_check_file(train_file, "--train-file"), columns, label_column, spec)
            if need_train
            else []
        )
        dev = (
            {"dev": read_table(_check_file(dev_file, "--dev-file"), columns, label_column, spec)}
            if need_dev
            else {}
        )
        return TaskData(spec, train, dev)
    spec = get_task(task)
    if data_dir is not None and not Path(data_dir).is_dir():
        raise TinyDistillError(f"data dir not found: {data_dir}")
    train: list[Example] = []
    if need_train:
        if train_file:
            train = read_train_file(spec, train_file, text_columns, label_column)
        else:
            train = load_split(spec, data_dir, "train")
    if not need_dev:
        dev = {}
    elif dev_file:
        dev = {"dev": read_train_file(spec, dev_file, text_columns, label_column)}
    else:
        dev = {split: load_split(spec, data_dir, split) for split in spec.dev_splits}
    return TaskData(spec, train, dev)
