"""User tables as people have them: .csv / .tsv (Python's ``csv`` module), .jsonl, Parquet and
``datasets.save_to_disk`` folders (:mod:`tinydistill.tasks.arrow`).

Text files are UTF-8 (with or without a BOM) or UTF-16 with a BOM (Excel's "Unicode Text"), told
apart by their first bytes; ``--encoding`` reads any other. CSV and TSV are read with standard
quoting (a quoted field may hold the delimiter, quotes and line breaks) and LF or CRLF row ends. The
delimiter is the one given (``--delimiter``), else the suffix's (``.csv`` comma, ``.tsv`` tab),
else, when the first line points to another one, what :class:`csv.Sniffer` finds in a sample. A
``.tsv`` whose quotes are not CSV quoting (GLUE's own files hold stray ``"`` characters) is read line
by line, split on tabs.

With ``header=False`` the columns are named by their 0-based position (``"0"``, ``"1"``, ...); with a
header a column may still be given by position when no column has that name. Blank lines and, where
the caller asks for it, rows with an empty text are skipped and counted.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tinydistill.errors import TinyDistillError

__all__ = [
    "DELIMITERS", "SUFFIXES", "Record", "Table", "check_encoding", "decode", "detect_delimiter",
    "parse_delimiter", "read_lines", "read_table_file",
]  # fmt: skip

SUFFIXES = (".csv", ".tsv", ".jsonl", ".parquet")
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


# byte-order marks, longest first (UTF-32's LE mark starts like UTF-16's)
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)  # fmt: skip


def check_encoding(encoding: str | None) -> None:
    """A one-line error for an encoding name Python does not know."""
    if encoding is None:
        return
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise TinyDistillError(
            f"--encoding: unknown encoding {encoding!r} (e.g. cp1252, latin-1, utf-16)"
        ) from None


def decode(path: Path, encoding: str | None = None) -> str:
    """The text of ``path``: in ``encoding``, else by its byte-order mark, else UTF-8."""
    check_encoding(encoding)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise TinyDistillError(f"{path}: cannot read file ({e.strerror or e})") from None
    guessed = encoding is None
    if guessed:
        encoding = next((name for bom, name in _BOMS if data.startswith(bom)), "utf-8")
    what = "UTF-8" if encoding == "utf-8" else encoding
    hint = (
        "give the file's encoding with --encoding, e.g. --encoding cp1252"
        if guessed
        else ("is --encoding right?")
    )
    try:
        text = data.decode(encoding).removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        raise TinyDistillError(
            f"{path}: not valid {what} text ({e.reason} at byte {e.start}); {hint}"
        ) from None
    if "\x00" in text:  # UTF-16 without a byte-order mark, read as an 8-bit encoding
        raise TinyDistillError(
            f"{path}: not {what} text (it holds NUL characters: UTF-16 without a byte-order mark?); "
            "give its encoding with --encoding, e.g. --encoding utf-16-le"
        )
    if b"\n" in data and "\n" not in text:
        raise TinyDistillError(f"{path}: not {what} text (no line breaks once decoded); {hint}")
    return text


def read_lines(path: Path, encoding: str | None = None) -> list[str]:
    """Lines without their ``\\n`` (and a CR before it), trailing blank lines dropped.

    Only ``\\n`` ends a line, so a stray CR inside a sentence never splits a row.
    """
    lines = decode(path, encoding).split("\n")
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


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


def read_table_file(
    path: str | Path, *, header: bool = True, delimiter: str | None = None, encoding: str | None = None
) -> Table:
    """Every row of a .csv/.tsv/.jsonl/.parquet file or a saved dataset folder (blank rows skipped and
    counted). Parquet and saved datasets name their columns themselves (``header`` does not apply)."""
    from tinydistill.tasks.arrow import is_saved_dataset

    path = Path(path)
    suffix = path.suffix.lower()
    if is_saved_dataset(path):
        return _read_columnar(path)
    if suffix not in SUFFIXES:
        raise TinyDistillError(
            f"{path}: unsupported file type {suffix or '(none)'!r} "
            "(expected .csv, .tsv, .jsonl, .parquet or a folder written by datasets' save_to_disk)"
        )
    if not path.is_file():
        raise TinyDistillError(f"file not found: {path}")
    if suffix == ".parquet":
        return _read_columnar(path)
    if suffix == ".jsonl":
        return _read_jsonl(path, encoding)
    text = decode(path, encoding)
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


def _read_columnar(path: Path) -> Table:
    """A Parquet file or saved dataset: rows numbered from 1, all-empty rows skipped as blank."""
    from tinydistill.tasks.arrow import read_columnar

    columns, rows = read_columnar(path)
    table = Table(path, columns, [])
    for i, row in enumerate(rows, start=1):
        if all(v is None or (isinstance(v, str) and not v.strip()) for v in row.values()):
            table.skip(BLANK)
            continue
        table.records.append((i, row))
    return table


def _read_jsonl(path: Path, encoding: str | None = None) -> Table:
    table = Table(path, [], [], jsonl=True)
    blank = 0
    for lineno, line in enumerate(read_lines(path, encoding), start=1):
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
