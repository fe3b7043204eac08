"""Reading and writing task data: GLUE TSVs, user CSV/TSV/JSONL tables, and HF ``datasets``."""

from __future__ import annotations

import csv
import math
import operator
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TextIO

from tinydistill.errors import TinyDistillError
from tinydistill.tasks.registry import Example, TaskSpec
from tinydistill.tasks.rows import Rows
from tinydistill.tasks.table import Record, Table, read_lines, read_table_file

__all__ = [
    "read_glue_split",
    "read_tsv_file",
    "read_table",
    "infer_labels",
    "looks_like_regression",
    "load_hf_split",
    "load_split",
    "write_tsv",
]

_HF_SPLITS = {
    "dev": "validation",
    "dev_matched": "validation_matched",
    "dev_mismatched": "validation_mismatched",
}
_INDEX_COLUMNS = {"index", "id", "qid1", "qid2", "#1 id", "#2 id", "promptid", "pairid", "old_index"}


def read_tsv_file(spec: TaskSpec, path: str | Path, encoding: str | None = None) -> Rows:
    """Read an explicit file laid out like the task's TSV (e.g. augmented training data).

    GLUE layouts are read line by line with no quoting (GLUE's files hold stray ``"`` characters);
    a custom task's layout (``write_tsv``) is a quoted TSV read by :func:`read_table`.
    """
    path = Path(path)
    if spec.hf_name is None:
        names = [c for c in (spec.hf_text_a, spec.hf_text_b) if c]
        label = spec.columns[spec.label_col]
        return read_table(path, names, label, spec, header=spec.has_header, delimiter="\t", encoding=encoding)
    if not path.is_file():
        raise TinyDistillError(f"file not found: {path}")
    lines = read_lines(path, encoding)
    start = 1 if spec.has_header else 0
    min_cols = spec.min_cols
    examples: list[Example] = []
    for lineno, line in enumerate(lines[start:], start=start + 1):
        cols = line.split("\t")
        if spec.n_cols is not None and len(cols) != spec.n_cols:
            raise TinyDistillError(f"{path}:{lineno}: expected {spec.n_cols} columns, found {len(cols)}")
        if len(cols) < min_cols:
            raise TinyDistillError(
                f"{path}:{lineno}: expected at least {min_cols} columns, found {len(cols)}"
            )
        try:
            label = spec.label_to_index(cols[spec.label_col])
        except TinyDistillError as e:
            raise TinyDistillError(f"{path}:{lineno}: {e}") from None
        text_b = cols[spec.text_b_col] if spec.text_b_col is not None else None
        examples.append(Example(cols[spec.text_a_col], text_b, label))
    if not examples:
        raise TinyDistillError(f"{path}: no examples")
    return Rows(examples, str(path))


def read_glue_split(spec: TaskSpec, data_dir: str | Path, split: str) -> Rows:
    """Read ``<data_dir>/<spec.name>/<split>.tsv``."""
    path = Path(data_dir) / spec.name / f"{split}.tsv"
    if not path.is_file():
        raise TinyDistillError(f"GLUE file not found: {path} (expected <data_dir>/{spec.name}/{split}.tsv)")
    return read_tsv_file(spec, path)


def load_split(spec: TaskSpec, data_dir: str | Path | None, split: str) -> Rows:
    """Read a split from local GLUE TSVs when ``data_dir`` is given, else from the HF hub."""
    if data_dir is not None:
        return read_glue_split(spec, data_dir, split)
    return load_hf_split(spec, split)


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def load_hf_split(spec: TaskSpec, split: str) -> Rows:
    """Load a GLUE split with HF ``datasets`` (labels there are already indices in our order)."""
    if spec.hf_name is None or spec.hf_text_a is None:
        raise TinyDistillError(
            f"task {spec.name} has no Hugging Face dataset; pass --data-dir or --train-file"
        )
    hint = "pass --data-dir with the GLUE TSVs"
    try:
        import datasets  # optional dependency, imported only when needed
    except ImportError:
        raise TinyDistillError(
            f"the 'datasets' package is not installed (pip install 'tinydistill[hub]'); or {hint}"
        ) from None
    hf_split = _HF_SPLITS.get(split, split)
    try:
        rows = datasets.load_dataset("nyu-mll/glue", spec.hf_name, split=hf_split)
    except Exception as e:  # network, hub, cache and bad-split errors all look different
        raise TinyDistillError(
            f"could not load GLUE {spec.name} split '{hf_split}' from the Hugging Face hub "
            f"({type(e).__name__}: {_one_line(str(e))}); {hint}"
        ) from None
    examples: list[Example] = []
    for i, row in enumerate(rows):
        raw = row.get("label")
        label: int | float | None
        if raw is None or (float(raw) < 0 and (hf_split.startswith("test") or not spec.is_regression)):
            label = None  # GLUE test splits have no labels and store -1 instead
        elif spec.is_regression:
            label = float(raw)
        else:
            label = int(raw)
            if label >= spec.num_labels:
                raise TinyDistillError(f"HF GLUE {spec.name} {hf_split} row {i}: label {label} out of range")
        text_b = str(row[spec.hf_text_b]) if spec.hf_text_b is not None else None
        examples.append(Example(str(row[spec.hf_text_a]), text_b, label))
    if not examples:
        raise TinyDistillError(f"HF GLUE {spec.name} split '{hf_split}': no examples")
    return Rows(examples, f"the HF hub (nyu-mll/glue {spec.hf_name} {hf_split})")


# --------------------------------------------------------------------------- custom tables


def _scalar_str(value: object) -> str:
    """String form of a JSON scalar; integral floats lose their ``.0`` so 1 and 1.0 are one label."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return str(value)


EMPTY_TEXT = "empty text"


def _text(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else _scalar_str(value)


def _kept(table: Table, text_keys: Sequence[str]) -> list[Record]:
    """The records whose text columns are all non-empty; the others are counted as skipped."""
    kept = []
    for lineno, row in table.records:
        if text_keys and any(not _text(row[k]).strip() for k in text_keys):
            table.skip(EMPTY_TEXT)
            continue
        kept.append((lineno, row))
    return kept


def _no_examples(table: Table) -> TinyDistillError:
    skipped = sum(table.skipped.values())
    why = f" ({skipped} rows skipped: {', '.join(table.skipped)})" if skipped else ""
    return TinyDistillError(f"{table.path}: no examples{why}")


def read_table(
    path: str | Path,
    text_columns: Sequence[str],
    label_column: str | None,
    spec: TaskSpec | None = None,
    *,
    header: bool = True,
    delimiter: str | None = None,
    encoding: str | None = None,
) -> Rows:
    """Read a user dataset (.csv / .tsv with standard quoting, .jsonl, Parquet or a saved dataset folder;
    see :mod:`tinydistill.tasks.table`).

    Columns are named by the header, or by position (``"0"``, ``"1"``, ...) with ``header=False``.
    Rows with an empty text are skipped (and counted). With ``spec`` labels go through
    ``spec.label_to_index``. Without it, labels are class indices in the order of ``infer_labels``
    (this file's own sorted label set); a missing ``label_column`` gives unlabeled examples.
    """
    path = Path(path)
    if not 1 <= len(text_columns) <= 2:
        raise TinyDistillError(f"{path}: expected 1 or 2 text columns, got {len(text_columns)}")
    table = read_table_file(path, header=header, delimiter=delimiter, encoding=encoding)
    text_keys = table.keys(text_columns)
    label_key = table.keys([label_column])[0] if label_column else None
    rows = _kept(table, text_keys)
    if label_key is not None and spec is None:
        index = {label: i for i, label in enumerate(_labels_of(table, rows, label_key))}
    examples: list[Example] = []
    for lineno, row in rows:
        texts = [_text(row[k]) for k in text_keys]
        label: int | float | None = None
        if label_key is not None:
            raw = _scalar_str(row[label_key])
            if spec is not None:
                try:
                    label = spec.label_to_index(raw)
                except TinyDistillError as e:
                    raise TinyDistillError(f"{path}:{lineno}: {e}") from None
            else:
                label = index[raw.strip()]
        examples.append(Example(texts[0], texts[1] if len(texts) > 1 else None, label))
    if not examples:
        raise _no_examples(table)
    return Rows(examples, str(path), table.skipped, table.note)


def infer_labels(
    path: str | Path,
    label_column: str,
    declared: list[str] | None = None,
    *,
    text_columns: Sequence[str] = (),
    header: bool = True,
    delimiter: str | None = None,
    encoding: str | None = None,
) -> list[str]:
    """Sorted distinct label strings of a user file (numerically when all are integers).

    Rows that ``read_table`` skips (an empty text in ``text_columns``) do not count. With ``declared``
    labels any other value is an error; without, a class label seen on one row of 20 or more is taken
    for a typo (an error that lists the labels seen and names ``--labels``).
    """
    table = read_table_file(path, header=header, delimiter=delimiter, encoding=encoding)
    text_keys = table.keys(text_columns)
    label_key = table.keys([label_column])[0]
    return _labels_of(table, _kept(table, text_keys), label_key, declared)


def _labels_of(
    table: Table, rows: Sequence[Record], label_key: str, declared: list[str] | None = None
) -> list[str]:
    counts: dict[str, int] = {}
    first: dict[str, int] = {}
    for lineno, row in rows:
        raw = row[label_key]
        value = "" if raw is None else _scalar_str(raw).strip()
        if not value:
            raise TinyDistillError(f"{table.path}:{lineno}: empty label in column {label_key!r}")
        if declared is not None and value not in declared:
            raise TinyDistillError(
                f"{table.path}:{lineno}: label {value!r} is not one of the declared labels {declared}"
            )
        counts[value] = counts.get(value, 0) + 1
        first.setdefault(value, lineno)
    if not counts:
        raise _no_examples(table)
    if declared is not None:
        return list(declared)
    _refuse_typos(table.path, counts, first)
    try:
        return sorted(counts, key=int)
    except ValueError:
        return sorted(counts)


def _refuse_typos(path: Path, counts: dict[str, int], first: dict[str, int]) -> None:
    if looks_like_regression(counts) or sum(counts.values()) < 20:
        return
    lonely = [v for v, n in counts.items() if n == 1]
    if lonely and len(lonely) < len(counts):
        seen = ", ".join(f"{v!r} x{n}" for v, n in sorted(counts.items(), key=lambda kv: -kv[1]))
        raise TinyDistillError(
            f"{path}:{first[lonely[0]]}: label {lonely[0]!r} occurs on one row only (labels seen: {seen}); "
            "fix the row, or declare the labels with --labels a,b,..."
        )


def looks_like_regression(values: Iterable[str]) -> bool:
    """True when every value is a finite number and there are more than 10 distinct ones."""
    distinct: set[float] = set()
    for value in values:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return False
        if not math.isfinite(number):
            return False
        distinct.add(number)
    return len(distinct) > 10


# --------------------------------------------------------------------------- writing


def _clean(text: str) -> str:
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def _raw_label(spec: TaskSpec, label: int | float | None, i: int) -> str:
    if label is None:
        raise TinyDistillError(f"cannot write unlabeled example {i} for task {spec.name}")
    if spec.labels is None:
        value = float(label)
        if not math.isfinite(value):
            raise TinyDistillError(
                f"cannot write example {i} for task {spec.name}: label {value} is not finite"
            )
        return repr(value)
    try:
        idx = operator.index(label)  # type: ignore[arg-type]
    except TypeError:
        idx = -1
    if not 0 <= idx < len(spec.labels):
        raise TinyDistillError(f"cannot write example {i} for task {spec.name}: bad class index {label!r}")
    return spec.labels[idx]


def _row_writer(f: TextIO, quoted: bool) -> Callable[[list[str]], object]:
    """Tab-separated rows: with standard CSV quoting, or joined as they are (GLUE)."""
    if quoted:
        return csv.writer(f, delimiter="\t", lineterminator="\n").writerow
    return lambda cols: f.write("\t".join(cols) + "\n")


def write_tsv(spec: TaskSpec, examples: Iterable[Example], path: str | Path) -> None:
    """Write examples in the task's TSV layout so that ``read_tsv_file`` reads them back.

    GLUE layouts have no quoting: tabs and line breaks inside texts become spaces. A custom task's
    layout is a TSV with standard quoting (texts kept as they are). Columns the task does not use are
    filled with the row index (id-like columns) or ``-``. The file appears atomically (temp file + rename).
    """
    path = Path(path)
    names = spec.columns + tuple(f"col{i}" for i in range(len(spec.columns), spec.min_cols))
    label_col = spec.label_col % len(names)
    quoted = spec.hf_name is None
    clean = (lambda text: text) if quoted else _clean
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            write = _row_writer(f, quoted)
            if spec.has_header:
                write(list(names))
            for i, ex in enumerate(examples):
                raw_label = _raw_label(spec, ex.label, i)
                cols = [str(i) if name.lower() in _INDEX_COLUMNS else "-" for name in names]
                for j, name in enumerate(names):
                    if name.startswith("label") and spec.label_col < 0:
                        cols[j] = raw_label  # MNLI's annotator columns mirror the gold label
                cols[spec.text_a_col] = clean(ex.text_a)
                if spec.text_b_col is not None:
                    cols[spec.text_b_col] = clean(ex.text_b or "")
                cols[label_col] = raw_label
                write(cols)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
