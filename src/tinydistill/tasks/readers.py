"""Reading and writing task data: GLUE TSVs, user CSV/TSV/JSONL tables, and HF ``datasets``."""

from __future__ import annotations

import csv
import json
import math
import operator
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from tinydistill.errors import TinyDistillError
from tinydistill.tasks.registry import Example, TaskSpec

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
_TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl")


def _read_lines(path: Path) -> list[str]:
    """Lines without their ``\\n`` (and a CR before it), trailing blank lines dropped.

    Only ``\\n`` ends a line, so a stray CR inside a sentence never splits a row.
    """
    try:
        with open(path, encoding="utf-8-sig", newline="\n") as f:
            lines = [line[:-1] if line.endswith("\n") else line for line in f]
    except UnicodeDecodeError as e:
        raise TinyDistillError(f"{path}: not valid UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise TinyDistillError(f"{path}: cannot read file ({e.strerror or e})") from None
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def read_tsv_file(spec: TaskSpec, path: str | Path) -> list[Example]:
    """Read an explicit file laid out like the task's GLUE TSV (e.g. augmented training data)."""
    path = Path(path)
    if not path.is_file():
        raise TinyDistillError(f"file not found: {path}")
    lines = _read_lines(path)
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
    return examples


def read_glue_split(spec: TaskSpec, data_dir: str | Path, split: str) -> list[Example]:
    """Read ``<data_dir>/<spec.name>/<split>.tsv``."""
    path = Path(data_dir) / spec.name / f"{split}.tsv"
    if not path.is_file():
        raise TinyDistillError(f"GLUE file not found: {path} (expected <data_dir>/{spec.name}/{split}.tsv)")
    return read_tsv_file(spec, path)


def load_split(spec: TaskSpec, data_dir: str | Path | None, split: str) -> list[Example]:
    """Read a split from local GLUE TSVs when ``data_dir`` is given, else from the HF hub."""
    if data_dir is not None:
        return read_glue_split(spec, data_dir, split)
    return load_hf_split(spec, split)


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def load_hf_split(spec: TaskSpec, split: str) -> list[Example]:
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
    return examples


# --------------------------------------------------------------------------- custom tables


def _scalar_str(value: object) -> str:
    """String form of a JSON scalar; integral floats lose their ``.0`` so 1 and 1.0 are one label."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return str(value)


def _missing_column(where: str, name: str, columns: Iterable[str]) -> TinyDistillError:
    return TinyDistillError(f"{where}: column {name!r} not found (columns: {', '.join(columns)})")


def _iter_records(path: Path, wanted: Sequence[str]) -> Iterator[tuple[int, dict[str, object]]]:
    """Yield ``(line number, row)`` for a .csv/.tsv/.jsonl file, checking the ``wanted`` columns exist."""
    suffix = path.suffix.lower()
    if suffix not in _TABLE_SUFFIXES:
        raise TinyDistillError(
            f"{path}: unsupported file type {suffix or '(none)'!r} (expected .csv, .tsv or .jsonl)"
        )
    if not path.is_file():
        raise TinyDistillError(f"file not found: {path}")
    if suffix == ".jsonl":
        for lineno, line in enumerate(_read_lines(path), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise TinyDistillError(
                    f"{path}:{lineno}: invalid JSON ({e.msg} at column {e.colno})"
                ) from None
            if not isinstance(obj, dict):
                raise TinyDistillError(f"{path}:{lineno}: expected a JSON object, found {type(obj).__name__}")
            for name in wanted:
                if name not in obj:
                    raise _missing_column(f"{path}:{lineno}", name, obj)
            yield lineno, obj
        return
    if suffix == ".tsv":
        numbered = [
            (i, line.split("\t")) for i, line in enumerate(_read_lines(path), start=1) if line.strip()
        ]
    else:
        numbered = list(_read_csv(path))
    if not numbered:
        return
    header = [h.strip() for h in numbered[0][1]]
    seen: set[str] = set()
    for h in header:
        if h in seen:
            raise TinyDistillError(f"{path}: duplicate column {h!r} in header")
        seen.add(h)
    for name in wanted:
        if name not in seen:
            raise _missing_column(str(path), name, header)
    for lineno, cols in numbered[1:]:
        if len(cols) != len(header):
            raise TinyDistillError(f"{path}:{lineno}: expected {len(header)} columns, found {len(cols)}")
        yield lineno, dict(zip(header, cols, strict=True))


def _read_csv(path: Path) -> Iterator[tuple[int, list[str]]]:
    """CSV rows with the line number each starts on (quoted fields may span lines); blank rows skipped."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            start = 1
            try:
                for row in reader:
                    if row and any(cell.strip() for cell in row):
                        yield start, row
                    start = reader.line_num + 1
            except csv.Error as e:
                raise TinyDistillError(f"{path}:{reader.line_num}: malformed CSV ({e})") from None
    except UnicodeDecodeError as e:
        raise TinyDistillError(f"{path}: not valid UTF-8 text ({e.reason} at byte {e.start})") from None


def read_table(
    path: str | Path,
    text_columns: Sequence[str],
    label_column: str | None,
    spec: TaskSpec | None = None,
) -> list[Example]:
    """Read a user dataset with named columns (.csv with quoting, .tsv without, or .jsonl).

    With ``spec`` labels go through ``spec.label_to_index``. Without it, labels are class indices in
    the order of ``infer_labels`` (i.e. this file's own sorted label set); a missing ``label_column``
    gives unlabeled examples.
    """
    path = Path(path)
    if not 1 <= len(text_columns) <= 2:
        raise TinyDistillError(f"{path}: expected 1 or 2 text columns, got {len(text_columns)}")
    wanted = [*text_columns, *([label_column] if label_column else [])]
    if label_column and spec is None:
        labels = infer_labels(path, label_column)
        index = {label: i for i, label in enumerate(labels)}
    examples: list[Example] = []
    for lineno, row in _iter_records(path, wanted):
        texts: list[str] = []
        for name in text_columns:
            value = row[name]
            if value is None:
                raise TinyDistillError(f"{path}:{lineno}: column {name!r} is empty (null)")
            texts.append(value if isinstance(value, str) else _scalar_str(value))
        label: int | float | None = None
        if label_column:
            raw = _scalar_str(row[label_column])
            if spec is not None:
                try:
                    label = spec.label_to_index(raw)
                except TinyDistillError as e:
                    raise TinyDistillError(f"{path}:{lineno}: {e}") from None
            else:
                label = index[raw.strip()]
        examples.append(Example(texts[0], texts[1] if len(texts) > 1 else None, label))
    if not examples:
        raise TinyDistillError(f"{path}: no examples")
    return examples


def infer_labels(path: str | Path, label_column: str, declared: list[str] | None = None) -> list[str]:
    """Sorted distinct label strings of a user file (numerically when all are integers).

    With ``declared`` labels any other value is an error; without, a class label seen on one row of
    20 or more is taken for a typo (an error that lists the labels seen and names ``--labels``).
    """
    path = Path(path)
    counts: dict[str, int] = {}
    first: dict[str, int] = {}
    for lineno, row in _iter_records(path, [label_column]):
        raw = row[label_column]
        value = "" if raw is None else _scalar_str(raw).strip()
        if not value:
            raise TinyDistillError(f"{path}:{lineno}: empty label in column {label_column!r}")
        if declared is not None and value not in declared:
            raise TinyDistillError(
                f"{path}:{lineno}: label {value!r} is not one of the declared labels {declared}"
            )
        counts[value] = counts.get(value, 0) + 1
        first.setdefault(value, lineno)
    if not counts:
        raise TinyDistillError(f"{path}: no examples")
    if declared is not None:
        return list(declared)
    _refuse_typos(path, counts, first)
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


def write_tsv(spec: TaskSpec, examples: Iterable[Example], path: str | Path) -> None:
    """Write examples in the task's TSV layout so that ``read_tsv_file`` reads them back.

    Tabs and line breaks inside texts become spaces. Columns the task does not use are filled with
    the row index (id-like columns) or ``-``. The file appears atomically (temp file + rename).
    """
    path = Path(path)
    names = spec.columns + tuple(f"col{i}" for i in range(len(spec.columns), spec.min_cols))
    label_col = spec.label_col % len(names)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            if spec.has_header:
                f.write("\t".join(names) + "\n")
            for i, ex in enumerate(examples):
                raw_label = _raw_label(spec, ex.label, i)
                cols = [str(i) if name.lower() in _INDEX_COLUMNS else "-" for name in names]
                for j, name in enumerate(names):
                    if name.startswith("label") and spec.label_col < 0:
                        cols[j] = raw_label  # MNLI's annotator columns mirror the gold label
                cols[spec.text_a_col] = _clean(ex.text_a)
                if spec.text_b_col is not None:
                    cols[spec.text_b_col] = _clean(ex.text_b or "")
                cols[label_col] = raw_label
                f.write("\t".join(cols) + "\n")
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
