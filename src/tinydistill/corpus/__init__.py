"""General-distillation corpora: read raw text (``readers``), split sentences (``split``), tokenize and
pack into memory-mapped shards (``pack``), and read them back for training (``dataset``).

``prepare`` is the one-call entry point behind ``tinydistill corpus`` (``tinydistill.prepare_corpus``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def prepare(cfg: Any, progress: bool | None = None) -> dict[str, Any]:
    """Raw text files/dirs -> packed shards + ``manifest.json`` in ``cfg.output`` (returns the manifest).

    ``cfg`` is a :class:`~tinydistill.config.CorpusConfig`.
    """
    from tinydistill.corpus.pack import pack_corpus
    from tinydistill.corpus.readers import list_inputs
    from tinydistill.models.load import load_tokenizer

    files = list_inputs(list(cfg.input), cfg.max_files)
    return pack_corpus(
        files,
        load_tokenizer(cfg.tokenizer),
        Path(cfg.output),
        tokenizer_name=str(cfg.tokenizer),
        max_seq_length=cfg.max_seq_length,
        shard_size=cfg.shard_size,
        workers=cfg.workers,
        fmt=cfg.fmt,
        max_docs=cfg.max_docs,
        overwrite=cfg.overwrite,
        progress=progress,
    )
