"""User tables as people have them: .csv / .tsv (Python's ``csv`` module) and .jsonl.

CSV and TSV are read with standard quoting (a quoted field may hold the delimiter, quotes and line
breaks), LF or CRLF row ends and an optional UTF-8 BOM. The delimiter is the one given
(``--delimiter``), else the suffix's (``.csv`` comma, ``.tsv`` tab), else, when the first line points
to another one, what :class:`csv.Sniffer` finds in a sample. A ``.tsv`` whose quotes are not CSV
quoting (GLUE's own files hold stray ``"`` characters) is read line by line, split on tabs.

With ``header=False`` the columns are named by their 0-based position (``"0"``, ``"1"``, ...); with a
header a column may still be given by position when no column has that name. Blank lines and, where
the caller asks for it, rows with an empty text are skipped and counted.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tinydistill.errors import TinyDistillError

__all__ = [
    "DELIMITERS", "SUFFIXES", "Record", "Table", "detect_delimiter", "parse_delimiter", "read_lines",
    "read_table_file",
]  # fmt: skip

SUFFIXES = (".csv", ".tsv", ".jsonl")
# --delimiter values -> the character
DELIMITERS = {
    "tab": "\t", "\\t": "\t", "\t": "\t", ",": ",", "comma": ",", ";": ";", "semicolon": ";", "|": "|",
    "pipe": "|",
}  # fmt: skip
_CANDIDATES = "\t,;|"
Record = tuple[int, dict[str, object]]  # (line number, {column: value})
_SAMPLE_CHARS = 64 * 1024
BLANK = "blank"
UNQUOTED_NOTE = "quotes read as text"


def parse_delimiter(value: str | None) -> str | None:
    """``tab``, ``\\t``, ``,``, ``;``, ``|`` (or their names) -> the character; None stays None."""
    if value is None:
        return None
    key = value if value in DELIMITERS else value.strip().lower()
    if key not in DELIMITERS:
        raise TinyDistillError(f"--delimiter must be one of tab, ',', ';', '|', got {value!r}")
    return DELIMITERS[key]


def read_lines(path: Path) -> list[str]:
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


def _read_text(path: Path) -> str:
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise TinyDistillError(f"{path}: not valid UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise TinyDistillError(f"{path}: cannot read file ({e.strerror or e})") from None


def detect_delimiter(path: Path, text: str) -> str:
    """The suffix's delimiter, unless the first line points to another one (then csv.Sniffer decides)."""
    default = "\t" if path.suffix.lower() == ".tsv" else ","
    first = text.split("\n", 1)[0]
    present = [d for d in _CANDIDATES if d in first]
    if not present or present == [default] or (default == "\t" and "\t" in present):
        return default
    sample = text[:_SAMPLE_CHARS]
    if len(text) > _SAMPLE_CHARS and "\n" in sample:
        sample = sample[: sample.rindex("\n")]
    try:
        return csv.Sniffer().sniff(sample, delimiters=_CANDIDATES).delimiter
    except csv.Error:
        return default if default in present else present[0]


@dataclass
class Table:
    """The rows of a user file: ``records`` are ``(line number, {column: value})``."""

    path: Path
    columns: list[str]
    records: list[Record]
    header: bool = True
    jsonl: bool = False
    skipped: dict[str, int] = field(default_factory=dict)
    note: str = ""

    def key(self, name: str) -> str:
        """The column called ``name``, or at position ``name`` (0-based) when none is called so."""
        if self.jsonl or name in self.columns:
            return name
        if name.strip().isdigit() and int(name) < len(self.columns):
            return self.columns[int(name)]
        shown = ", ".join(self.columns)
        if not self.header:
            shown += "; no header, so columns are named by position"
        raise TinyDistillError(f"{self.path}: column {name!r} not found (columns: {shown})")

    def keys(self, names: Iterable[str]) -> list[str]:
        """:meth:`key` of each name; in a JSONL file every object must have them."""
        found = [self.key(n) for n in names]
        if self.jsonl:
            for lineno, obj in self.records:
                for name in found:
                    if name not in obj:
                        shown = ", ".join(obj)
                        raise TinyDistillError(
                            f"{self.path}:{lineno}: column {name!r} not found (columns: {shown})"
                        )
        return found

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n


def read_table_file(path: str | Path, *, header: bool = True, delimiter: str | None = None) -> Table:
    """Every row of a .csv/.tsv/.jsonl file (blank lines skipped and counted)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise TinyDistillError(
            f"{path}: unsupported file type {suffix or '(none)'!r} (expected .csv, .tsv or .jsonl)"
        )
    if not path.is_file():
        raise TinyDistillError(f"file not found: {path}")
    if suffix == ".jsonl":
        return _read_jsonl(path)
    text = _read_text(path)
    sep = parse_delimiter(delimiter) or detect_delimiter(path, text)
    note = ""
    try:
        numbered = list(_csv_rows(text, sep))
    except csv.Error as e:
        if sep != "\t":
            raise TinyDistillError(f"{path}:{e.args[1]}: malformed CSV ({e.args[0]})") from None
        numbered, note = list(_plain_rows(text)), UNQUOTED_NOTE
    table = Table(path, [], [], header=header, note=note)
    rows = _drop_blank(numbered, table)
    if not rows:
        return table
    if header:
        table.columns = _header(path, rows[0][1])
        rows = rows[1:]
    else:
        table.columns = [str(i) for i in range(len(rows[0][1]))]
    width = len(table.columns)
    for lineno, cells in rows:
        if len(cells) != width:
            raise TinyDistillError(f"{path}:{lineno}: expected {width} columns, found {len(cells)}")
        table.records.append((lineno, dict(zip(table.columns, cells, strict=True))))
    return table


def _csv_rows(text: str, sep: str) -> Iterator[tuple[int, list[str]]]:
    """CSV rows with the line each starts on; a malformed row raises ``csv.Error(message, line)``."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True)
    start = 1
    try:
        for row in reader:
            yield start, row
            start = reader.line_num + 1
    except csv.Error as e:
        raise csv.Error(str(e), reader.line_num) from None


def _plain_rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """One row per ``\\n``-ended line (a CR before it dropped), split on tabs, quotes kept as text."""
    for lineno, line in enumerate(text.split("\n"), start=1):
        yield lineno, line.removesuffix("\r").split("\t")


def _drop_blank(numbered: Sequence[tuple[int, list[str]]], table: Table) -> list[tuple[int, list[str]]]:
    """The non-blank rows; blank lines before and between them are counted (trailing ones are not)."""
    rows: list[tuple[int, list[str]]] = []
    pending = 0
    for lineno, cells in numbered:
        if not any(cell.strip() for cell in cells):
            pending += 1
            continue
        if pending:
            table.skip(BLANK, pending)
        pending = 0
        rows.append((lineno, cells))
    return rows


def _header(path: Path, cells: list[str]) -> list[str]:
    names = [c.strip() or str(i) for i, c in enumerate(cells)]  # pandas writes an unnamed index column
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise TinyDistillError(f"{path}: duplicate column {name!r} in header")
        seen.add(name)
    return names


def _read_jsonl(path: Path) -> Table:
    table = Table(path, [], [], jsonl=True)
    blank = 0
    for lineno, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            blank += 1
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise TinyDistillError(f"{path}:{lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(obj, dict):
            raise TinyDistillError(f"{path}:{lineno}: expected a JSON object, found {type(obj).__name__}")
        if not table.records:
            table.columns = list(obj)
        table.records.append((lineno, obj))
    if blank:
        table.skip(BLANK, blank)
    return table
