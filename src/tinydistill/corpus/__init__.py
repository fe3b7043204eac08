"""General-distillation corpora: read raw text (``readers``), split sentences (``split``), tokenize and
pack into memory-mapped shards (``pack``), and read them back for training (``dataset``).

``prepare_corpus`` is the one-call entry point behind ``tinydistill corpus``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def prepare_corpus(
    inputs: list[str | Path],
    tokenizer: str,
    output: str | Path,
    *,
    max_seq_length: int = 128,
    shard_size: int = 16384,
    workers: int = 0,
    fmt: str = "auto",
    max_files: int | None = None,
    max_docs: int | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Raw text files/dirs -> packed shards + ``manifest.json`` in ``output`` (returns the manifest)."""
    from tinydistill.corpus.pack import pack_corpus
    from tinydistill.corpus.readers import list_inputs
    from tinydistill.models.load import load_tokenizer

    files = list_inputs(list(inputs), max_files)
    tok = load_tokenizer(tokenizer)
    return pack_corpus(
        files,
        tok,
        Path(output),
        tokenizer_name=str(tokenizer),
        max_seq_length=max_seq_length,
        shard_size=shard_size,
        workers=workers,
        fmt=fmt,
        max_docs=max_docs,
        overwrite=overwrite,
        progress=progress,
    )


def prepare(cfg: Any) -> dict[str, Any]:
    """``prepare_corpus`` from a :class:`~tinydistill.config.CorpusConfig`."""
    return prepare_corpus(
        cfg.input,
        cfg.tokenizer,
        cfg.output,
        max_seq_length=cfg.max_seq_length,
        shard_size=cfg.shard_size,
        workers=cfg.workers,
        fmt=cfg.fmt,
        max_files=cfg.max_files,
        max_docs=cfg.max_docs,
        overwrite=cfg.overwrite,
    )
