"""Raw text -> sentences -> token ids -> fixed-length packed sequences -> memory-mapped shards.

Packing rule: a sequence is ``[CLS] s_1 s_2 ... s_k [SEP]`` where ``s_1..s_k`` are consecutive whole
sentences of ONE document, added greedily while they fit in ``max_seq_length - 2`` tokens. A new
document always starts a new sequence (documents never share one, so no attention crosses a document
boundary; the last sequence of a document may be short and is padded). A sentence longer than
``max_seq_length - 2`` tokens is cut into pieces of that size, each starting a sequence.

Streaming and the memory bound: files are read line by line; paragraphs are grouped into chunks of
about ``chunk_chars`` characters; a chunk is split into sentences and tokenized (in-process, or by a
pool of ``workers`` processes with at most ``2 * workers`` chunks in flight, consumed in submission
order so the output does not depend on the worker count); packed rows go into ONE preallocated shard
buffer of ``shard_size x max_seq_length`` ids, written to disk when full. Peak memory is therefore
about ``shard_size * max_seq_length * itemsize`` (4 MiB at the defaults with a 30k vocabulary) plus
``2 * workers + 1`` chunks (a chunk's text, sentences and ids: a few MB at the default 1 MB chunk),
plus one input line (cut at 1 MiB), plus the manifest's list of shards and source files (a few hundred
bytes per shard and per file): independent of the amount of text. ``tests/test_corpus.py`` checks it
with tracemalloc: a corpus 8x bigger (over 50 shards) peaks at about the same traced memory.

Output (``DIR``): ``shard_00000.npy`` ... (``rows x max_seq_length``, uint16 when the vocabulary has
fewer than 65536 ids else int32, padded with the pad id), ``shard_00000.lengths.npy`` (int16 real
lengths, specials included), and ``manifest.json``, written last: a dir without one is incomplete.
The same inputs and settings give byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinydistill.corpus.readers import paragraphs
from tinydistill.corpus.split import split_sentences
from tinydistill.errors import TinyDistillError
from tinydistill.ownership import fresh_work
from tinydistill.progress import progress_bar

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
PACKING = "sentences of one document per sequence: [CLS] s1 s2 ... [SEP]; long sentences cut"

_TOKENIZER: Any = None  # a tokenizers.Tokenizer, per process


def _init_worker(tokenizer_json: str) -> None:
    global _TOKENIZER
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from tokenizers import Tokenizer

    _TOKENIZER = Tokenizer.from_str(tokenizer_json)
    _TOKENIZER.no_padding()
    _TOKENIZER.no_truncation()


@dataclass
class EncodedChunk:
    """Token ids of one chunk of paragraphs: ``ids`` flat, cut by ``sent_lengths``, grouped by paragraph."""

    new_doc: np.ndarray  # (P,) bool: paragraph starts a document
    sents_per_para: np.ndarray  # (P,) int
    sent_lengths: np.ndarray  # (S,) int
    ids: np.ndarray  # (sum sent_lengths,) int32


def encode_chunk(chunk: list[tuple[bool, str]]) -> EncodedChunk:
    """Split the chunk's paragraphs into sentences and tokenize them in one batch (no special tokens)."""
    sentences: list[str] = []
    counts = []
    for _, text in chunk:
        parts = split_sentences(text)
        sentences.extend(parts)
        counts.append(len(parts))
    encoded = _TOKENIZER.encode_batch(sentences, add_special_tokens=False) if sentences else []
    lengths = np.fromiter((len(e.ids) for e in encoded), dtype=np.int64, count=len(encoded))
    ids = np.fromiter((i for e in encoded for i in e.ids), dtype=np.int32, count=int(lengths.sum()))
    return EncodedChunk(
        np.fromiter((d for d, _ in chunk), dtype=bool, count=len(chunk)),
        np.asarray(counts, dtype=np.int64),
        lengths,
        ids,
    )


class ShardWriter:
    """One preallocated ``shard_size x max_len`` buffer; full buffers go to ``shard_NNNNN.npy``."""

    def __init__(self, output: Path, shard_size: int, max_len: int, dtype: np.dtype, pad_id: int) -> None:
        self.output, self.shard_size, self.max_len, self.pad_id = output, shard_size, max_len, pad_id
        self.buffer = np.full((shard_size, max_len), pad_id, dtype=dtype)
        self.lengths = np.zeros(shard_size, dtype=np.int16)
        self.rows = 0
        self.shards: list[dict[str, Any]] = []
        self.total_sequences = 0
        self.total_tokens = 0

    def add(self, row: list[int]) -> None:
        self.buffer[self.rows, : len(row)] = row
        self.lengths[self.rows] = len(row)
        self.rows += 1
        self.total_sequences += 1
        self.total_tokens += len(row)
        if self.rows == self.shard_size:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        name = f"shard_{len(self.shards):05d}"
        _save(self.output / f"{name}.npy", self.buffer[: self.rows])
        _save(self.output / f"{name}.lengths.npy", self.lengths[: self.rows])
        self.shards.append({"file": f"{name}.npy", "lengths": f"{name}.lengths.npy", "rows": self.rows})
        self.buffer.fill(self.pad_id)
        self.lengths.fill(0)
        self.rows = 0


def _save(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(array), allow_pickle=False)
    os.replace(tmp, path)


class Packer:
    """Greedy packing of one document's sentences into ``[CLS] ... [SEP]`` rows (see the module doc)."""

    def __init__(self, writer: ShardWriter, cls_id: int, sep_id: int) -> None:
        self.writer, self.cls_id, self.sep_id = writer, cls_id, sep_id
        self.room = writer.max_len - 2
        self.current: list[int] = []
        self.sentences = 0

    def new_document(self) -> None:
        self.flush()

    def add_sentence(self, ids: np.ndarray) -> None:
        self.sentences += 1
        ids = ids.tolist()
        if len(self.current) + len(ids) > self.room:
            self.flush()
        while len(ids) > self.room:
            self.writer.add([self.cls_id, *ids[: self.room], self.sep_id])
            ids = ids[self.room :]
        self.current.extend(ids)

    def flush(self) -> None:
        if self.current:
            self.writer.add([self.cls_id, *self.current, self.sep_id])
            self.current = []

    def add_chunk(self, enc: EncodedChunk) -> int:
        """Pack one encoded chunk; returns the number of documents it started."""
        offsets = np.concatenate([[0], np.cumsum(enc.sent_lengths)])
        sent = 0
        for new_doc, count in zip(enc.new_doc, enc.sents_per_para, strict=True):
            if new_doc:
                self.new_document()
            for _ in range(count):
                self.add_sentence(enc.ids[offsets[sent] : offsets[sent + 1]])
                sent += 1
        return int(enc.new_doc.sum())


class _Source:
    """Counts and hashes the bytes of one input file as it is read (and moves the progress bar)."""

    def __init__(self, path: Path, bar: Any) -> None:
        self.path, self.bar = path, bar
        self.sha = hashlib.sha256()
        self.size = 0
        self.partial = False  # reading stopped early (max_docs)

    def update(self, data: bytes) -> None:
        self.sha.update(data)
        self.size += len(data)
        self.bar.update(len(data))


def _chunks(
    files: list[Path], fmt: str, unk_token: str, chunk_chars: int, max_docs: int | None, bar: Any
) -> Iterator[tuple[list[tuple[bool, str]], list[_Source]]]:
    """Chunks of ``(new_doc, paragraph)``; each chunk comes with the sources read to completion so far."""
    chunk: list[tuple[bool, str]] = []
    size = 0
    docs = 0
    done: list[_Source] = []
    for path in files:
        source = _Source(path, bar)
        for i, (new_doc, text) in enumerate(paragraphs(path, fmt, unk_token, source)):
            new_doc = new_doc or i == 0  # a file never continues the previous file's document
            if new_doc:
                docs += 1
                if max_docs is not None and docs > max_docs:
                    source.partial = True
                    done.append(source)
                    yield chunk, done
                    return
            chunk.append((new_doc, text))
            size += len(text)
            if size >= chunk_chars:
                yield chunk, done
                chunk, size, done = [], 0, []
        done.append(source)
    yield chunk, done


def _encoded(chunks: Iterable, tokenizer_json: str, workers: int) -> Iterator[tuple[EncodedChunk, list]]:
    """Encode chunks in order: in-process, or with a pool and at most ``2 * workers`` chunks in flight."""
    if workers <= 1:
        _init_worker(tokenizer_json)
        for chunk, done in chunks:
            yield encode_chunk(chunk), done
        return
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(tokenizer_json,)) as pool:
        pending: deque = deque()
        for chunk, done in chunks:
            pending.append((pool.apply_async(encode_chunk, (chunk,)), done))
            if len(pending) >= 2 * workers:
                result, finished = pending.popleft()
                yield result.get(), finished
        while pending:
            result, finished = pending.popleft()
            yield result.get(), finished


def vocab_fingerprint(tokenizer: Any) -> str:
    """sha256 of the tokenizer's token -> id map (a teacher must have exactly this vocabulary)."""
    items = sorted(tokenizer.get_vocab().items())
    return hashlib.sha256(json.dumps(items, ensure_ascii=False).encode()).hexdigest()


def _corpus_files(output: Path) -> list[Path]:
    if not output.is_dir():
        return []
    return [p for p in output.iterdir() if p.name == MANIFEST or p.name.startswith("shard_")]


def _prepare_output(output: Path, overwrite: bool) -> Path:
    """Check ``output`` and return a fresh dir beside it that the new corpus is written into."""
    if output.exists() and not output.is_dir():
        raise TinyDistillError(f"corpus output is a file, not a dir: {output}")
    if _corpus_files(output) and not overwrite:
        raise TinyDistillError(f"{output} already holds a prepared corpus (pass --overwrite to replace it)")
    work = output.parent / f".{output.name}.partial"
    try:
        fresh_work(work, "corpus")  # its marker moves into --output with the corpus
    except OSError as exc:
        raise TinyDistillError(f"cannot write the corpus to {output}: {exc.strerror or exc}") from None
    return work


def _install(work: Path, output: Path) -> None:
    """The complete new corpus replaces the old one: shards first, the manifest last."""
    output.mkdir(parents=True, exist_ok=True)
    for old in _corpus_files(output):
        old.unlink() if old.is_file() else shutil.rmtree(old)
    for new in sorted(work.iterdir(), key=lambda p: p.name == MANIFEST):
        os.replace(new, output / new.name)
    work.rmdir()


def pack_corpus(
    files: list[Path],
    tokenizer: Any,
    output: Path,
    *,
    tokenizer_name: str,
    max_seq_length: int = 128,
    shard_size: int = 16384,
    workers: int = 0,
    fmt: str = "auto",
    max_docs: int | None = None,
    chunk_chars: int = 1_000_000,
    overwrite: bool = False,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Prepare ``files`` into ``output`` (see the module doc); returns the manifest."""
    from tinydistill import __version__

    if max_seq_length < 3:
        raise TinyDistillError(f"max_seq_length must be at least 3, got {max_seq_length}")
    if shard_size < 1 or chunk_chars < 1:
        raise TinyDistillError("shard_size and chunk_chars must be positive")
    if max_docs is not None and max_docs < 1:
        raise TinyDistillError(f"max_docs must be positive, got {max_docs}")
    if not getattr(tokenizer, "is_fast", False) or getattr(tokenizer, "backend_tokenizer", None) is None:
        raise TinyDistillError(
            f"tokenizer '{tokenizer_name}' has no fast (Rust) version; a fast one is needed"
        )
    specials = {k: getattr(tokenizer, f"{k}_token_id") for k in ("cls", "sep", "pad")}
    missing = [k for k, v in specials.items() if v is None]
    if missing:
        raise TinyDistillError(f"tokenizer '{tokenizer_name}' has no {'/'.join(missing)} token")
    vocab_size = len(tokenizer)
    dtype = np.dtype(np.uint16 if vocab_size <= 65536 else np.int32)
    output = Path(output)
    work = _prepare_output(output, overwrite)
    writer = ShardWriter(work, shard_size, max_seq_length, dtype, specials["pad"])
    packer = Packer(writer, specials["cls"], specials["sep"])
    total_bytes = sum(p.stat().st_size for p in files)
    bar = progress_bar(total_bytes, "corpus", unit="B", disable=progress is False)
    sources: list[dict[str, Any]] = []
    documents = 0
    chunks = _chunks(files, fmt, tokenizer.unk_token or "[UNK]", chunk_chars, max_docs, bar)
    for enc, done in _encoded(chunks, tokenizer.backend_tokenizer.to_str(), workers):
        documents += packer.add_chunk(enc)
        for src in done:
            entry = {"path": str(src.path), "size": src.size, "sha256": src.sha.hexdigest()}
            if src.partial:
                entry.update(partial=True, sha256=None)
            sources.append(entry)
    packer.flush()
    writer.flush()
    bar.close()
    if writer.total_sequences == 0:
        shutil.rmtree(work, ignore_errors=True)
        raise TinyDistillError("the corpus produced no sequences (no text found in the input files)")
    manifest = {
        "format": "tinydistill-packed-corpus",
        "format_version": FORMAT_VERSION,
        "created_by": f"tinydistill {__version__}",
        "tokenizer": tokenizer_name,
        "vocab_size": vocab_size,
        "vocab_sha256": vocab_fingerprint(tokenizer),
        "dtype": dtype.name,
        "max_seq_length": max_seq_length,
        "pad_token_id": specials["pad"],
        "cls_token_id": specials["cls"],
        "sep_token_id": specials["sep"],
        "packing": PACKING,
        "shard_size": shard_size,
        "shards": writer.shards,
        "total_sequences": writer.total_sequences,
        "total_tokens": writer.total_tokens,
        "documents": documents,
        "sentences": packer.sentences,
        "sources": sources,
    }
    (work / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    _install(work, output)
    return manifest
