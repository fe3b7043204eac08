"""Columnar tables: Parquet files and folders written by ``datasets.save_to_disk``, read with pyarrow.

A saved dataset is a folder of Arrow IPC stream files (``data-00000-of-00001.arrow``, ...) with
``dataset_info.json`` and ``state.json``; ``datasets`` itself is not needed to read it. Columns that
the dataset declares as ``ClassLabel`` are read as their label names, so a saved dataset and the CSV it
came from give the same labels. pyarrow is the optional extra ``tinydistill[parquet]``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tinydistill.errors import TinyDistillError

__all__ = ["PARQUET", "is_columnar", "is_saved_dataset", "read_columnar", "write_parquet"]

PARQUET = ".parquet"
_INFO = ("dataset_info.json", "state.json")


def require_pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.ipc  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise TinyDistillError(
            "reading or writing Parquet files and saved datasets needs pyarrow: "
            "pip install 'tinydistill[parquet]'"
        ) from None
    return pyarrow


def is_saved_dataset(path: Path) -> bool:
    """A folder written by ``datasets.save_to_disk`` (one split, or a DatasetDict of splits)."""
    return path.is_dir() and (
        any((path / name).is_file() for name in (*_INFO, "dataset_dict.json"))
        or any(path.glob("data-*.arrow"))
    )


def is_columnar(path: Path) -> bool:
    return path.suffix.lower() == PARQUET or is_saved_dataset(path)


def _arrow_files(path: Path) -> list[Path]:
    if (path / "dataset_dict.json").is_file():
        splits = json.loads((path / "dataset_dict.json").read_text()).get("splits", [])
        raise TinyDistillError(
            f"{path}: a saved DatasetDict ({', '.join(splits)}); give one split's folder, "
            f"e.g. {path / (splits[0] if splits else 'train')}"
        )
    state = path / "state.json"
    if state.is_file():
        names = [f["filename"] for f in json.loads(state.read_text()).get("_data_files", [])]
        if names:
            return [path / n for n in names]
    files = sorted(path.glob("data-*.arrow"))
    if not files:
        raise TinyDistillError(f"{path}: no data-*.arrow files (expected a folder written by save_to_disk)")
    return files


def _class_labels(path: Path) -> dict[str, list[str]]:
    """``{column: names}`` of the ClassLabel columns in ``dataset_info.json``."""
    info = path / "dataset_info.json"
    if not info.is_file():
        return {}
    features = json.loads(info.read_text()).get("features") or {}
    return {
        name: list(f["names"])
        for name, f in features.items()
        if isinstance(f, dict) and f.get("_type") == "ClassLabel" and f.get("names")
    }


def _read_arrow(pa: Any, file: Path) -> Any:
    with pa.memory_map(str(file)) as source:
        try:
            return pa.ipc.open_stream(source).read_all()
        except pa.ArrowInvalid:
            source.seek(0)
            return pa.ipc.open_file(source).read_all()


def read_columnar(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """Column names and rows (dicts of Python values) of a Parquet file or a saved dataset folder."""
    pa = require_pyarrow()
    labels: dict[str, list[str]] = {}
    try:
        if path.is_dir():
            files = _arrow_files(path)
            table = pa.concat_tables([_read_arrow(pa, f) for f in files])
            labels = _class_labels(path)
        else:
            table = pa.parquet.read_table(path)
    except (OSError, pa.ArrowException) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        kind = "a saved dataset" if path.is_dir() else "Parquet"
        raise TinyDistillError(f"{path}: cannot read it as {kind} ({first})") from None
    rows = table.to_pylist()
    for name, names in labels.items():
        for row in rows:
            value = row.get(name)
            if isinstance(value, int) and 0 <= value < len(names):
                row[name] = names[value]
    return list(table.column_names), rows


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rows (dicts with the same keys) as one Parquet file."""
    pa = require_pyarrow()
    pa.parquet.write_table(pa.Table.from_pylist(rows), path)
