"""Batched inference over a TSV / CSV / JSONL / Parquet file or a saved dataset folder, and dev-set
scoring of any runner (PyTorch or ONNX).

Output rows keep the input columns and add ``prediction`` plus ``prob_<label>`` per class (or ``score``
for a regression head). Texts are sorted by length into batches and written back in input order.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tinydistill.deploy.runners import load_runner
from tinydistill.deploy.runtime import Runner, encode, softmax
from tinydistill.errors import TinyDistillError
from tinydistill.models.load import refuse_new_head
from tinydistill.progress import progress
from tinydistill.tasks import compute_metrics
from tinydistill.tasks.rows import Rows, report_rows
from tinydistill.tasks.table import Table, read_table_file

FORMATS = (".tsv", ".csv", ".jsonl", ".parquet")
# Text columns of GLUE files and common datasets, tried in order when --text-columns is not given.
KNOWN_COLUMNS = [
    ("sentence1", "sentence2"),
    ("question1", "question2"),
    ("question", "sentence"),
    ("premise", "hypothesis"),
    ("#1 String", "#2 String"),
    ("text_a", "text_b"),
    ("sentence",),
    ("text",),
]
_NOT_TEXT = {"label", "labels", "idx", "index", "id", "score", "quality"}


def _format(path: Path, what: str) -> str:
    from tinydistill.tasks.arrow import is_saved_dataset

    suffix = path.suffix.lower()
    if what == "input" and is_saved_dataset(path):
        return ""
    if suffix not in FORMATS:
        also = " or a folder written by datasets' save_to_disk" if what == "input" else ""
        raise TinyDistillError(
            f"{what} {path}: unsupported file type {suffix or '(none)'!r} "
            f"(expected .tsv, .csv, .jsonl, .parquet{also})"
        )
    return suffix


def read_rows(
    path: str | Path,
    text_columns: list[str] | None = None,
    *,
    header: bool = True,
    delimiter: str | None = None,
    encoding: str | None = None,
) -> tuple[Rows, list[str]]:
    """All rows of the input file as dicts, and the text column(s) to classify.

    Without a header the columns are ``"0"``, ``"1"``, ...; a first row that looks like data (a number, a
    sentence) is not taken for a header silently: without ``text_columns`` that is an error.
    """
    path = Path(path)
    _format(path, "input")
    if not path.exists():
        raise TinyDistillError(f"input file not found: {path}")
    table = read_table_file(path, header=header, delimiter=delimiter, encoding=encoding)
    if not table.records:
        raise TinyDistillError(f"{path}: no rows")
    if text_columns:
        chosen = table.keys(text_columns)
    elif header and not table.jsonl and _looks_like_data(table.columns):
        shown = ", ".join(repr(c) for c in table.columns)
        raise TinyDistillError(
            f"{path}: the first row ({_clip(shown)}) looks like data, not a header: pass --no-header "
            "(columns are then 0, 1, ...), or name the text column(s) with --text-columns"
        )
    else:
        chosen = guess_text_columns(table.columns) if header or table.jsonl else [_longest_text(table)]
    if not chosen or len(chosen) > 2:
        raise TinyDistillError(
            f"{path}: give 1 or 2 text columns (--text-columns), found columns: {table.columns}"
        )
    rows = Rows([row for _, row in table.records], str(path), table.skipped, table.note)
    for lineno, row in table.records:
        for c in chosen:
            if not isinstance(row[c], str):
                row[c] = "" if row[c] is None else str(row[c])
            if not row[c].strip() and c == chosen[0]:
                raise TinyDistillError(f"{path}:{lineno}: empty text in column {c!r}")
    return rows, chosen


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _looks_like_data(cells: list[str]) -> bool:
    """A header row holds names: a number or a sentence (4+ words) in it means the row is data."""
    for cell in cells:
        try:
            float(cell)
            return True
        except ValueError:
            pass
        if len(cell.split()) >= 4:
            return True
    return False


def _longest_text(table: Table) -> str:
    """The column of a headerless file with the longest values (on its first 100 rows): the text."""
    sample = [row for _, row in table.records[:100]]
    return max(table.columns, key=lambda c: sum(len(str(row[c])) for row in sample))


def guess_text_columns(columns: list[str]) -> list[str]:
    """A known text-column set, else the first column that does not look like a label or id."""
    present = set(columns)
    for cand in KNOWN_COLUMNS:
        if all(c in present for c in cand):
            return list(cand)
    rest = [c for c in columns if c.strip().lower() not in _NOT_TEXT and "id" not in c.lower().split()]
    return rest[:1]


def predict_logits(
    runner: Runner,
    texts_a: list[str],
    texts_b: list[str] | None = None,
    batch_size: int = 32,
    max_seq_length: int = 128,
) -> np.ndarray:
    """Logits for every text (pair), batched by length, in input order."""
    if batch_size <= 0:
        raise TinyDistillError(f"--batch-size must be positive, got {batch_size}")
    tok = runner.tokenizer
    max_len = min(max_seq_length, runner.max_length)
    order = sorted(range(len(texts_a)), key=lambda i: len(texts_a[i]) + len(texts_b[i] if texts_b else ""))
    out: np.ndarray | None = None
    starts = range(0, len(order), batch_size)
    for start in progress(starts, len(starts), "predict"):
        idx = order[start : start + batch_size]
        b = [texts_b[i] for i in idx] if texts_b is not None else None
        logits = runner(encode(tok, [texts_a[i] for i in idx], b, max_len))
        if out is None:
            out = np.zeros((len(texts_a), logits.shape[-1]), dtype=np.float32)
        out[idx] = logits
    if out is None:
        raise TinyDistillError("nothing to predict (no texts)")
    return out


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rows in the format of the path's extension, appearing atomically."""
    suffix = _format(path, "output")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        from tinydistill.tasks.arrow import write_parquet

        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(fd)
        try:
            write_parquet(Path(tmp), rows)
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return
    buf = io.StringIO(newline="")
    if suffix == ".jsonl":
        buf.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    else:
        sep = "\t" if suffix == ".tsv" else ","  # standard quoting: texts come back as they were
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), delimiter=sep, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
        f.write(buf.getvalue())
    os.replace(tmp, path)


def predict_file(
    model: str,
    input_path: str | Path,
    output_path: str | Path,
    text_columns: list[str] | None = None,
    batch_size: int = 32,
    max_seq_length: int = 128,
    backend: str = "auto",
    threads: int | None = None,
    cache_dir: str | None = None,
    allow_new_head: bool = False,
    header: bool = True,
    delimiter: str | None = None,
    encoding: str | None = None,
) -> dict[str, Any]:
    """Classify every row of ``input_path`` and write labels + probabilities to ``output_path``.

    Output rows are the input's columns (``"0"``, ``"1"``, ... without a header) plus ``prediction``
    (the label name of the model's ``id2label``) and ``prob_<label>`` per class, or ``score``.
    """
    output_path = Path(output_path)
    _format(output_path, "output")
    rows, cols = read_rows(input_path, text_columns, header=header, delimiter=delimiter, encoding=encoding)
    report_rows("predict", rows)
    runner = load_runner(model, backend, threads=threads, cache_dir=cache_dir)
    if hasattr(runner, "model"):
        refuse_new_head(runner.model, model, allow_new_head, "")
    texts_b = [r[cols[1]] for r in rows] if len(cols) > 1 else None
    logits = predict_logits(runner, [r[cols[0]] for r in rows], texts_b, batch_size, max_seq_length)
    out_rows = []
    if runner.is_regression:
        for row, lg in zip(rows, logits, strict=True):
            out_rows.append({**row, "score": round(float(lg[0]), 6)})
    else:
        labels = runner.labels
        probs = softmax(logits)
        for row, p in zip(rows, probs, strict=True):
            extra = {"prediction": labels[int(p.argmax())]}
            extra.update({f"prob_{lab}": round(float(v), 6) for lab, v in zip(labels, p, strict=True)})
            out_rows.append({**row, **extra})
    _write(output_path, out_rows)
    return {
        "rows": len(out_rows),
        "output": str(output_path),
        "backend": runner.backend,
        "text_columns": cols,
    }


def evaluate_runner(
    runner: Runner,
    task: str,
    data_dir: str | None = None,
    max_eval_samples: int | None = None,
    batch_size: int = 64,
    max_seq_length: int | None = None,
) -> dict[str, dict[str, float]]:
    """The task's dev metrics for any runner (e.g. fp32 vs int8 ONNX), like ``tinydistill evaluate``."""
    from tinydistill.data import subsample
    from tinydistill.tasks.resolve import load_task_data

    data = load_task_data(task, data_dir, need_train=False)
    spec = data.spec
    if runner.num_outputs != spec.num_labels:
        raise TinyDistillError(
            f"model {runner.path} has {runner.num_outputs} outputs, task needs {spec.num_labels}"
        )
    results = {}
    for split, examples in data.dev.items():
        examples = subsample(examples, max_eval_samples, 42)
        b = [e.text_b or "" for e in examples] if examples[0].text_b is not None else None
        logits = predict_logits(
            runner, [e.text_a for e in examples], b, batch_size, max_seq_length or spec.max_seq_length
        )
        preds = logits.reshape(-1) if spec.is_regression else logits.argmax(-1)
        results[split] = compute_metrics(spec, preds, np.array([e.label for e in examples]))
    return results
