"""Turn run settings (task name, data dir, optional files) into a spec plus train/dev examples."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinydistill.errors import TinyDistillError
from tinydistill.tasks.readers import (
    infer_labels,
    load_split,
    looks_like_regression,
    read_table,
    read_tsv_file,
)
from tinydistill.tasks.registry import Example, TaskSpec, custom_task, get_task
from tinydistill.tasks.rows import Rows, report_rows


@dataclass
class TaskData:
    spec: TaskSpec
    train: list[Example]
    dev: dict[str, list[Example]]


def _check_file(path: str | None, flag: str) -> Path:
    if not path:
        raise TinyDistillError(f"a custom task needs {flag} FILE")
    p = Path(path)
    if not p.exists():
        raise TinyDistillError(f"file not found: {p}")
    return p


def custom_spec(
    train_file: str | None,
    text_columns: list[str] | None,
    label_column: str,
    model_labels: list[str] | None = None,
    declared: list[str] | None = None,
    *,
    header: bool = True,
    delimiter: str | None = None,
    encoding: str | None = None,
) -> TaskSpec:
    """A user task: labels from the model's head when it has named ones, else declared (``--labels``),
    else from the train file."""
    if not header and not text_columns:
        raise TinyDistillError("without a header, give the text column(s) by position: --text-columns 1")
    columns = text_columns or ["text"]
    if model_labels is not None:
        labels: list[str] | None = model_labels
    elif declared and not train_file:
        labels = list(declared)
    else:
        path = _check_file(train_file, "--train-file")
        values = infer_labels(
            path,
            label_column,
            declared,
            text_columns=columns,
            header=header,
            delimiter=delimiter,
            encoding=encoding,
        )
        labels = values if declared else (None if looks_like_regression(values) else values)
    return custom_task(
        labels, text_b=len(columns) > 1, text_columns=columns, label_column=label_column, header=header
    )


def read_train_file(
    spec: TaskSpec,
    path: str,
    text_columns: list[str] | None,
    label_column: str,
    *,
    header: bool = True,
    delimiter: str | None = None,
    encoding: str | None = None,
) -> Rows:
    """An explicit train (or dev) file: the task's own TSV layout for GLUE tasks, else a user table."""
    p = Path(path)
    if not p.exists():
        raise TinyDistillError(f"train file not found: {p}")
    if spec.hf_name is not None and p.suffix.lower() == ".tsv" and not text_columns and header:
        return read_tsv_file(spec, p, encoding)
    columns = text_columns or [c for c in (spec.hf_text_a, spec.hf_text_b) if c]
    return read_table(p, columns, label_column, spec, header=header, delimiter=delimiter, encoding=encoding)


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
    labels: list[str] | None = None,
    *,
    header: bool = True,
    delimiter: str | None = None,
    encoding: str | None = None,
) -> TaskData:
    """Read everything a run needs, before anything is written to its output directory.

    Says on stderr how many rows each split has (:func:`~tinydistill.tasks.rows.report_rows`).
    """
    table = dict(header=header, delimiter=delimiter, encoding=encoding)
    train: list[Example] = []
    dev: dict[str, list[Example]] = {}
    if task.lower() == "custom":
        spec = custom_spec(train_file, text_columns, label_column, model_labels, labels, **table)
        columns = list(text_columns or ["text"])
        if need_train:
            path = _check_file(train_file, "--train-file")
            train = read_table(path, columns, label_column, spec, **table)
        if need_dev:
            path = _check_file(dev_file, "--dev-file")
            dev = {"dev": read_table(path, columns, label_column, spec, **table)}
    else:
        spec = get_task(task)
        if data_dir is not None and not Path(data_dir).is_dir():
            raise TinyDistillError(f"data dir not found: {data_dir}")
        if need_train:
            if train_file:
                train = read_train_file(spec, train_file, text_columns, label_column, **table)
            else:
                train = load_split(spec, data_dir, "train")
        if need_dev and dev_file:
            dev = {"dev": read_train_file(spec, dev_file, text_columns, label_column, **table)}
        elif need_dev:
            dev = {split: load_split(spec, data_dir, split) for split in spec.dev_splits}
    if need_train:
        report_rows("train", train)
    for split, rows in dev.items():
        report_rows(split, rows)
    return TaskData(spec, train, dev)


def as_examples(rows: Iterable[Any], spec: TaskSpec) -> list[Example]:
    """Rows given through the Python API -> Examples of ``spec``.

    A row is an :class:`Example`, a tuple ``(text, label)`` / ``(text_a, text_b, label)``, or a mapping
    with ``text``/``text_a``/``sentence``/``sentence1`` (+ ``text_b``/``sentence2``) and ``label``.
    Labels are class indices, the task's labels (as in its files, or their names), or floats for regression.
    """
    out = []
    for i, row in enumerate(rows):
        if isinstance(row, Example):
            out.append(row)
            continue
        if isinstance(row, Mapping):
            a = next(
                (row[k] for k in ("text_a", "text", "sentence", "sentence1", "question") if k in row), None
            )
            b = next((row[k] for k in ("text_b", "sentence2") if k in row), None)
            label = row.get("label")
        elif isinstance(row, (tuple, list)) and len(row) in (2, 3):
            a, b, label = (row[0], None, row[1]) if len(row) == 2 else row
        else:
            raise TinyDistillError(
                f"row {i}: give an Example, (text, label), (text_a, text_b, label) or a dict"
            )
        if a is None or (spec.has_text_b and b is None):
            raise TinyDistillError(
                f"row {i}: task {spec.name} needs {'two texts' if spec.has_text_b else 'a text'}"
            )
        out.append(Example(str(a), None if b is None else str(b), _label(label, spec, i)))
    if not out:
        raise TinyDistillError("no rows given")
    return out


def _label(label: Any, spec: TaskSpec, i: int) -> int | float | None:
    if label is None:
        return None
    if spec.labels is None:
        return float(label)
    if isinstance(label, str) and label in spec.labels:
        return spec.labels.index(label)
    if isinstance(label, str) and spec.label_names and label in spec.label_names:
        return spec.label_names.index(label)  # SST-2's "positive" as well as its "1"
    if isinstance(label, int) and not isinstance(label, bool) and 0 <= label < len(spec.labels):
        return label
    raise TinyDistillError(f"row {i}: label {label!r} is not one of {list(spec.labels)} (or their indices)")
