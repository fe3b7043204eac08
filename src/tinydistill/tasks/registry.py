"""Task specifications: the nine GLUE tasks, user-defined tasks, and name resolution."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from tinydistill.errors import TinyDistillError

__all__ = ["Example", "TaskSpec", "GLUE_TASKS", "get_task", "custom_task"]

# f1: the positive class's F1 (binary tasks); f1_macro: the mean F1 over the classes in the gold labels
_KNOWN_METRICS = ("mcc", "accuracy", "f1", "f1_macro", "pearson", "spearman")


@dataclass(frozen=True)
class Example:
    """One input pair. ``label`` is a class index, a float (regression) or None (unlabeled)."""

    text_a: str
    text_b: str | None
    label: int | float | None


@dataclass(frozen=True)
class TaskSpec:
    """Everything the readers, metrics and trainer need to know about a task.

    Column indices describe the task's TSV layout (0-based). ``label_col = -1`` means the last
    column (MNLI has a different number of columns in train and dev). ``n_cols = None`` means the
    number of columns varies and only a minimum is checked. ``columns`` holds the header names used
    when writing a file in this layout. ``labels`` are the label strings of the files (class ids in
    their order); ``label_names`` what people read (``id2label``, predictions), when they differ.
    """

    name: str
    hf_name: str | None
    labels: tuple[str, ...] | None
    metrics: tuple[str, ...]
    primary_metric: str
    dev_splits: tuple[str, ...]
    text_a_col: int
    text_b_col: int | None
    label_col: int
    has_header: bool
    n_cols: int | None
    epochs: float
    learning_rate: float
    max_seq_length: int
    batch_size: int
    hf_text_a: str | None
    hf_text_b: str | None
    columns: tuple[str, ...] = ()
    label_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for metric in self.metrics:
            if metric not in _KNOWN_METRICS:
                raise ValueError(f"unknown metric {metric!r} for task {self.name}")
        if self.primary_metric not in self.metrics:
            raise ValueError(f"primary metric {self.primary_metric!r} not in {self.metrics}")
        if self.columns and self.n_cols is not None and len(self.columns) != self.n_cols:
            raise ValueError(f"task {self.name}: {len(self.columns)} column names for {self.n_cols} columns")
        if self.label_names is not None and len(self.label_names) != len(self.labels or ()):
            raise ValueError(f"task {self.name}: {len(self.label_names)} names for {self.num_labels} labels")

    @property
    def is_regression(self) -> bool:
        return self.labels is None

    @property
    def class_names(self) -> tuple[str, ...] | None:
        """The classes' names in id order (``label_names``, else ``labels``); None for regression."""
        return self.label_names or self.labels

    @property
    def num_labels(self) -> int:
        return 1 if self.labels is None else len(self.labels)

    @property
    def has_text_b(self) -> bool:
        return self.text_b_col is not None

    @property
    def min_cols(self) -> int:
        """Fewest columns a row may have (the label, when it is the last column, must be separate)."""
        used = [c for c in (self.text_a_col, self.text_b_col, self.label_col) if c is not None and c >= 0]
        need = max(used) + 1
        return need + 1 if self.label_col < 0 else need

    def label_to_index(self, raw: str) -> int | float:
        """Map a raw label string to a class index, or to a float for regression."""
        value = str(raw).strip()
        if self.labels is None:
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if not math.isfinite(number):
                raise TinyDistillError(f"label {raw!r} is not a number")
            return number
        try:
            return self.labels.index(value)
        except ValueError:
            allowed = ", ".join(self.labels)
            raise TinyDistillError(
                f"unknown label {raw!r} for task {self.name} (expected one of: {allowed})"
            ) from None


def _glue(
    name: str,
    hf_name: str,
    labels: tuple[str, ...] | None,
    metrics: tuple[str, ...],
    primary: str,
    columns: tuple[str, ...],
    text_a: int,
    text_b: int | None,
    label: int,
    hf_text: tuple[str, str | None],
    *,
    has_header: bool = True,
    fixed_cols: bool = True,
    dev_splits: tuple[str, ...] = ("dev",),
    epochs: float = 3.0,
    max_seq_length: int = 128,
    names: tuple[str, ...] | None = None,
) -> TaskSpec:
    return TaskSpec(
        name=name,
        hf_name=hf_name,
        labels=labels,
        metrics=metrics,
        primary_metric=primary,
        dev_splits=dev_splits,
        text_a_col=text_a,
        text_b_col=text_b,
        label_col=label,
        has_header=has_header,
        n_cols=len(columns) if fixed_cols else None,
        epochs=epochs,
        learning_rate=2e-5,
        max_seq_length=max_seq_length,
        batch_size=32,
        hf_text_a=hf_text[0],
        hf_text_b=hf_text[1],
        columns=columns,
        label_names=names,
    )


_BINARY = ("0", "1")
_ENTAIL2 = ("entailment", "not_entailment")
_ENTAIL3 = ("entailment", "neutral", "contradiction")
_PAIR = ("sentence1", "sentence2")
_IDX_S1_S2_LABEL = ("index", "sentence1", "sentence2", "label")
# MNLI train layout (dev files add label2..label5 before gold_label; the label is read from the last column).
_MNLI_COLUMNS = (
    "index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
    "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "gold_label",
)  # fmt: skip
_STSB_COLUMNS = (
    "index", "genre", "filename", "year", "old_index", "source1", "source2",
    "sentence1", "sentence2", "score",
)  # fmt: skip

# Small tasks (a few thousand training rows or fewer) get 5 epochs; the large ones keep 3. Tasks whose
# files hold 0/1 labels name their classes (``names``: id2label, predictions), as the HF GLUE dataset does.
GLUE_TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        _glue("CoLA", "cola", _BINARY, ("mcc",), "mcc", ("source", "label", "original_label", "sentence"),
              3, None, 1, ("sentence", None), has_header=False, epochs=5.0, max_seq_length=64,
              names=("unacceptable", "acceptable")),
        _glue("SST-2", "sst2", _BINARY, ("accuracy",), "accuracy", ("sentence", "label"),
              0, None, 1, ("sentence", None), max_seq_length=64, names=("negative", "positive")),
        _glue("MRPC", "mrpc", _BINARY, ("f1", "accuracy"), "f1",
              ("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"), 3, 4, 0, _PAIR, epochs=5.0,
              names=("not_equivalent", "equivalent")),
        _glue("STS-B", "stsb", None, ("pearson", "spearman"), "spearman", _STSB_COLUMNS,
              7, 8, 9, _PAIR, epochs=5.0),
        _glue("QQP", "qqp", _BINARY, ("f1", "accuracy"), "f1",
              ("id", "qid1", "qid2", "question1", "question2", "is_duplicate"), 3, 4, 5,
              ("question1", "question2"), fixed_cols=False, names=("not_duplicate", "duplicate")),
        _glue("MNLI", "mnli", _ENTAIL3, ("accuracy",), "accuracy", _MNLI_COLUMNS, 8, 9, -1,
              ("premise", "hypothesis"), fixed_cols=False, dev_splits=("dev_matched", "dev_mismatched")),
        _glue("QNLI", "qnli", _ENTAIL2, ("accuracy",), "accuracy", ("index", "question", "sentence", "label"),
              1, 2, 3, ("question", "sentence")),
        _glue("RTE", "rte", _ENTAIL2, ("accuracy",), "accuracy", _IDX_S1_S2_LABEL, 1, 2, 3, _PAIR,
              epochs=5.0),
        _glue("WNLI", "wnli", _BINARY, ("accuracy",), "accuracy", _IDX_S1_S2_LABEL, 1, 2, 3, _PAIR,
              epochs=5.0, names=("not_entailment", "entailment")),  # WNLI's 1 is entailment
    )
}  # fmt: skip


def _normalize(name: str) -> str:
    return re.sub(r"[-_\s]", "", name.strip().lower())


_ALIASES: dict[str, str] = {}
for _spec in GLUE_TASKS.values():
    _ALIASES[_normalize(_spec.name)] = _spec.name
    _ALIASES[_normalize(_spec.hf_name or _spec.name)] = _spec.name


def get_task(name: str) -> TaskSpec:
    """Resolve a GLUE task by its directory name (``SST-2``) or HF name (``sst2``), ignoring case."""
    canonical = _ALIASES.get(_normalize(name))
    if canonical is None:
        valid = ", ".join(GLUE_TASKS)
        raise TinyDistillError(f"unknown task {name!r} (valid GLUE tasks: {valid})")
    return GLUE_TASKS[canonical]


def custom_task(
    labels: Sequence[str] | None,
    text_b: bool,
    name: str = "custom",
    text_columns: Sequence[str] = ("text_a", "text_b"),
    label_column: str = "label",
    *,
    header: bool = True,
    epochs: float = 3.0,
    learning_rate: float = 2e-5,
    max_seq_length: int = 128,
    batch_size: int = 32,
) -> TaskSpec:
    """Build a spec for a user dataset; ``labels=None`` makes it a regression task.

    Its TSV layout (used by ``write_tsv``/``read_tsv_file``) is ``text_a [text_b] label`` with a header
    row named after ``text_columns`` and ``label_column``; with ``header=False`` the columns are
    positions (``"1"``, ``"0"``) and the layout puts each at its position, without a header row.
    Binary tasks report the F1 of their second class (``f1``), larger ones the macro F1 (``f1_macro``).
    """
    n_text = 2 if text_b else 1
    if len(text_columns) < n_text:
        raise TinyDistillError(
            f"custom task {name!r} needs {n_text} text column names, got {len(text_columns)}"
        )
    text_names = tuple(str(c).strip() for c in text_columns[:n_text])
    if labels is not None:
        label_tuple = tuple(str(label).strip() for label in labels)
        if len(set(label_tuple)) != len(label_tuple):
            raise TinyDistillError(f"custom task {name!r}: duplicate labels in {', '.join(label_tuple)}")
        if len(label_tuple) < 2:
            found = ", ".join(repr(x) for x in label_tuple) or "none"
            raise TinyDistillError(f"custom task {name!r} needs at least 2 distinct labels, found: {found}")
        metrics: tuple[str, ...] = ("accuracy", "f1" if len(label_tuple) == 2 else "f1_macro")
        primary = "accuracy"
    else:
        label_tuple = None
        metrics = ("pearson", "spearman")
        primary = "spearman"
    used = (*text_names, str(label_column).strip())
    if header:
        positions = list(range(len(used)))
        columns = used
    else:
        positions = _positions(used)
        columns = tuple(str(i) for i in range(max(positions) + 1))
    return TaskSpec(
        name=name,
        hf_name=None,
        labels=label_tuple,
        metrics=metrics,
        primary_metric=primary,
        dev_splits=("dev",),
        text_a_col=positions[0],
        text_b_col=positions[1] if text_b else None,
        label_col=positions[-1],
        has_header=header,
        n_cols=len(columns),
        epochs=epochs,
        learning_rate=learning_rate,
        max_seq_length=max_seq_length,
        batch_size=batch_size,
        hf_text_a=text_names[0],
        hf_text_b=text_names[1] if text_b else None,
        columns=columns,
    )


def _positions(columns: Sequence[str]) -> list[int]:
    """Column positions of a file without a header (``--text-columns 1 --label-column 0``)."""
    bad = [c for c in columns if not c.isdigit()]
    if bad:
        raise TinyDistillError(
            f"without a header, columns are given by position (0, 1, ...): got {', '.join(map(repr, bad))} "
            "(e.g. --text-columns 1 --label-column 0)"
        )
    positions = [int(c) for c in columns]
    if len(set(positions)) != len(positions):
        raise TinyDistillError(f"a column is used twice: {', '.join(columns)}")
    return positions
