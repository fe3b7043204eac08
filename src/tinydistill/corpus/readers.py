"""Stream paragraphs out of raw-text corpus files, marking where each document starts.

A reader yields ``(new_doc, text)`` pairs: ``new_doc`` is True for the first paragraph of a document,
``text`` one paragraph (or one sentence) of it. Nothing bigger than one line is ever held: files are
read line by line, and a line longer than ``LINE_LIMIT`` bytes is cut into pieces (each piece then
counts as a paragraph of its own).

Formats (``detect_format`` picks one per file; ``--format`` forces it):

* ``plain``: blank lines separate documents; every other line is a paragraph, or a sentence (the
  one-sentence-per-line form of BERT/TinyBERT pre-generation is the same thing with one sentence a
  line: the sentence splitter leaves such lines whole).
* ``wikiextractor``: ``<doc id=.. url=.. title=..>`` ... ``</doc>`` blocks; the title line that
  follows the opening tag and blank lines are dropped; one paragraph per line.
* ``wikitext``: WikiText ``.tokens`` files. A top-level heading `` = Title = `` starts a document;
  section headings (`` = = Section = = ``) and blank lines are dropped. The text is detokenized
  (``@-@`` -> ``-``, ``@,@`` -> ``,``, ``@.@`` -> ``.``; no space before ``. , ; : ! ? ) 's n't``,
  none after ``(``). ``<unk>`` (the words WikiText replaced) becomes the tokenizer's own unknown
  token (``[UNK]`` for BERT), so every replaced word stays one position in the sequence and the
  teacher sees what it was trained to see for unknown words, rather than a silently shortened sentence.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

from tinydistill.errors import TinyDistillError

FORMATS = ("auto", "plain", "wikiextractor", "wikitext")
LINE_LIMIT = 1 << 20  # bytes read at most per line (longer lines are cut into pieces)

_WT_TITLE = re.compile(r"^ ?= (?!=)(.*?)(?<!=) = ?$")
_WT_SECTION = re.compile(r"^ ?(= ){2,}.*?( =){2,} ?$")
_WT_JOINERS = ((" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."))
_WT_NO_SPACE_BEFORE = re.compile(r" (?=[.,;:!?)\]}%]|'s\b|n't\b)")
_WT_NO_SPACE_AFTER = re.compile(r"(?<=[(\[{]) ")


def read_lines(path: Path, hasher: hashlib._Hash | None = None) -> Iterator[str]:
    """The lines of ``path`` (UTF-8, undecodable bytes replaced), without line ends; feeds ``hasher``."""
    with open(path, "rb") as f:
        while True:
            raw = f.readline(LINE_LIMIT)
            if not raw:
                return
            if hasher is not None:
                hasher.update(raw)
            yield raw.decode("utf-8", errors="replace").rstrip("\r\n")


def detect_format(path: Path) -> str:
    """``wikitext`` for ``*.tokens``; ``wikiextractor`` when the first non-blank line opens a ``<doc``."""
    if path.suffix == ".tokens":
        return "wikitext"
    for line in read_lines(path):
        if line.strip():
            return "wikiextractor" if line.lstrip().startswith("<doc") else "plain"
    return "plain"


def plain_paragraphs(lines: Iterator[str]) -> Iterator[tuple[bool, str]]:
    new_doc = True
    for line in lines:
        text = line.strip()
        if not text:
            new_doc = True
            continue
        yield new_doc, text
        new_doc = False


def wikiextractor_paragraphs(lines: Iterator[str]) -> Iterator[tuple[bool, str]]:
    """Paragraphs inside ``<doc>`` blocks; the title line after the tag is dropped, text outside ignored."""
    in_doc, expect_title, new_doc = False, False, False
    for line in lines:
        text = line.strip()
        if text.startswith("<doc") and text.endswith(">"):
            in_doc, expect_title, new_doc = True, True, True
            continue
        if text == "</doc>":
            in_doc = False
            continue
        if not in_doc or not text:
            continue
        if expect_title:
            expect_title = False
            continue
        yield new_doc, text
        new_doc = False


def detokenize_wikitext(text: str, unk_token: str = "[UNK]") -> str:
    """Undo WikiText's tokenization as far as sentence splitting and subword tokenizers care."""
    text = f" {text} "
    for old, new in _WT_JOINERS:
        text = text.replace(old, new)
    text = text.replace(" <unk> ", f" {unk_token} ")  # twice: adjacent <unk>s share a space
    text = text.replace(" <unk> ", f" {unk_token} ")
    text = _WT_NO_SPACE_BEFORE.sub("", text)
    text = _WT_NO_SPACE_AFTER.sub("", text)
    return text.strip()


def wikitext_paragraphs(lines: Iterator[str], unk_token: str = "[UNK]") -> Iterator[tuple[bool, str]]:
    new_doc = True
    for line in lines:
        if not line.strip():
            continue
        if _WT_SECTION.match(line):
            continue
        if _WT_TITLE.match(line):
            new_doc = True
            continue
        text = detokenize_wikitext(line.strip(), unk_token)
        if text:
            yield new_doc, text
            new_doc = False


def paragraphs(
    path: Path, fmt: str = "auto", unk_token: str = "[UNK]", hasher: hashlib._Hash | None = None
) -> Iterator[tuple[bool, str]]:
    """``(new_doc, paragraph)`` pairs of one file in the given (or detected) format."""
    if fmt not in FORMATS:
        raise TinyDistillError(f"unknown corpus format '{fmt}' (known: {', '.join(FORMATS)})")
    if fmt == "auto":
        fmt = detect_format(path)
    lines = read_lines(path, hasher)
    if fmt == "wikiextractor":
        return wikiextractor_paragraphs(lines)
    if fmt == "wikitext":
        return wikitext_paragraphs(lines, unk_token)
    return plain_paragraphs(lines)


def documents(path: Path, fmt: str = "auto", unk_token: str = "[UNK]") -> list[list[str]]:
    """All documents of a (small) file as lists of paragraphs: for tests and inspection, not streaming."""
    docs: list[list[str]] = []
    for new_doc, text in paragraphs(Path(path), fmt, unk_token):
        if new_doc or not docs:
            docs.append([])
        docs[-1].append(text)
    return docs


def list_inputs(inputs: list[str | Path], max_files: int | None = None) -> list[Path]:
    """Files named, and the files under directories named (sorted, hidden files skipped), in order."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                raise TinyDistillError(f"corpus input dir has no files: {path}")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise TinyDistillError(f"corpus input not found: {path}")
    if not files:
        raise TinyDistillError("no corpus input files given (--input FILE_OR_DIR)")
    files = files[:max_files] if max_files else files
    for path in files:
        check_text(path)
    return files


def check_text(path: Path, probe: int = 8192) -> None:
    """Refuse a binary file (NUL bytes, or mostly undecodable bytes, in its first ``probe`` bytes)."""
    with open(path, "rb") as f:
        head = f.read(probe)
    undecodable = head.decode("utf-8", errors="replace").count("\ufffd")
    if b"\x00" in head or (head and undecodable > len(head) // 10):
        raise TinyDistillError(f"corpus input {path} is not text (binary data); give UTF-8 text files")
