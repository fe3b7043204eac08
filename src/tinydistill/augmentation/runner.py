"""TinyBERT data augmentation of a task's train set: read, find candidates, sample, write.

Every distinct sentence (both sides of pair tasks, each augmented on its own while the other side
and the label are kept) is split into words once; its eligible words get their candidates once per
run (a cache keyed by the sentence: repeated premises cost nothing); then each example gets up to
``n_aug`` variants per side. The output is the task's own train format (``tasks.write_tsv``), which
``tinydistill distill --train-file`` reads: each original row followed by its variants (text_a
variants, then text_b variants). ``--shard i/n`` augments the i-th contiguous slice of the (capped)
train set with the same per-example random streams as a whole run, so ``merge_shards`` of the shard
files in order equals the single-process file byte for byte.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tinydistill.augmentation.masked_lm import load_masked_lm
from tinydistill.augmentation.mlm_candidates import MLMCandidates
from tinydistill.augmentation.sampler import example_rng, match_case, sample_variants, split_words
from tinydistill.augmentation.stopwords import STOPWORDS, eligible, load_stopwords
from tinydistill.augmentation.word_vectors import WordVectors
from tinydistill.config import AugmentConfig
from tinydistill.data import subsample
from tinydistill.errors import TinyDistillError
from tinydistill.tasks import Example, TaskSpec, get_task, load_split, read_table, read_tsv_file, write_tsv
from tinydistill.tasks.resolve import custom_spec, read_train_file
from tinydistill.tasks.rows import report_rows

__all__ = ["AugmentConfig", "Augmenter", "augment_task", "merge_shards", "parse_shard", "task_spec"]


@dataclass
class Augmenter:
    """Candidates per distinct sentence (cached) and seeded variants per (example, side)."""

    mlm: MLMCandidates
    vectors: WordVectors | None
    n_aug: int = 20
    p: float = 0.4
    seed: int = 42
    stopwords: frozenset[str] = STOPWORDS
    cache: dict[str, tuple[list[str], dict[int, list[str]]]] = field(default_factory=dict)
    vector_queries: int = 0

    def prepare(self, texts: Iterable[str]) -> None:
        """Find the candidates of every eligible word of every new sentence."""
        new = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if not new:
            return
        words = [split_words(t) for t in new]
        encoded = self.mlm.encode(words)
        mlm_positions: list[list[int]] = []
        owners: list[dict[int, int]] = []  # token position -> word index, per sentence
        vec_jobs: dict[tuple[str, tuple[int, ...]], list[tuple[int, int]]] = {}
        for s, (ws, enc) in enumerate(zip(words, encoded, strict=True)):
            positions, owner = [], {}
            for i, w in enumerate(ws):
                pieces = enc.pieces.get(i, [])
                if not eligible(w, self.stopwords) or not pieces:
                    continue
                if len(pieces) == 1:
                    positions.append(pieces[0])
                    owner[pieces[0]] = i
                else:
                    key = (w, tuple(enc.ids[p] for p in pieces))
                    vec_jobs.setdefault(key, []).append((s, i))
            mlm_positions.append(positions)
            owners.append(owner)
        predicted = self.mlm.predict(encoded, mlm_positions)
        found: list[dict[int, list[str]]] = [
            {owners[s][pos]: cands for pos, cands in by_pos.items()} for s, by_pos in enumerate(predicted)
        ]
        if self.vectors is not None and vec_jobs:
            keys = list(vec_jobs)
            self.vector_queries += len(keys)
            near = self.vectors.neighbours([w for w, _ in keys], [list(p) for _, p in keys], self.mlm.k)
            for key, cands in zip(keys, near, strict=True):
                for s, i in vec_jobs[key]:
                    found[s][i] = cands
        for s, text in enumerate(new):
            ws = words[s]
            self.cache[text] = (ws, {i: _finish(ws[i], c) for i, c in sorted(found[s].items())})

    def candidates(self, text: str) -> dict[int, list[str]]:
        """``{word index: candidates}`` of a prepared sentence."""
        return self.cache[text][1]

    def variants(self, text: str, index: int, side: int = 0) -> list[str]:
        if text not in self.cache:
            self.prepare([text])
        words, cands = self.cache[text]
        return sample_variants(words, cands, self.n_aug, self.p, example_rng(self.seed, index, side), text)


def _finish(word: str, candidates: Sequence[str]) -> list[str]:
    """Candidates in the word's case, without the word itself or repeats."""
    out: dict[str, None] = {}
    for c in candidates:
        c = match_case(c, word)
        if c != word:
            out.setdefault(c)
    return list(out)


def parse_shard(value: str | None) -> tuple[int, int] | None:
    """``"i/n"`` (0 <= i < n) -> (i, n)."""
    if not value:
        return None
    try:
        i, n = (int(x) for x in value.split("/"))
    except ValueError:
        raise TinyDistillError(f"--shard must look like i/n (e.g. 0/4), got {value!r}") from None
    if not 0 <= i < n:
        raise TinyDistillError(f"--shard {value}: need 0 <= i < n")
    return i, n


def task_spec(
    task: str,
    train_file: str | None,
    text_columns: list[str] | None,
    label_column: str = "label",
    *,
    header: bool = True,
    delimiter: str | None = None,
    encoding: str | None = None,
) -> TaskSpec:
    if task.lower() == "custom":
        return custom_spec(
            train_file, text_columns, label_column, header=header, delimiter=delimiter, encoding=encoding
        )
    return get_task(task)


def _train_examples(cfg: AugmentConfig, spec: TaskSpec) -> list[Example]:
    table = dict(header=cfg.header, delimiter=cfg.delimiter, encoding=cfg.encoding)
    if cfg.task.lower() == "custom":
        path = Path(cfg.train_file or "")
        rows = read_table(path, cfg.text_columns or ["text"], cfg.label_column, spec, **table)
    elif cfg.train_file:
        rows = read_train_file(spec, cfg.train_file, cfg.text_columns, cfg.label_column, **table)
    else:
        if cfg.data_dir is not None and not Path(cfg.data_dir).is_dir():
            raise TinyDistillError(f"data dir not found: {cfg.data_dir}")
        rows = load_split(spec, cfg.data_dir, "train")
    report_rows("train", rows)
    source = Path(getattr(rows, "source", "") or "")
    if source.is_file() and source.resolve() == Path(cfg.output).resolve():
        raise TinyDistillError(f"--output {cfg.output} is the train file it reads; write elsewhere")
    return rows


def augment_task(cfg: AugmentConfig) -> dict:
    """Write the augmented train file of ``cfg.task`` to ``cfg.output``; returns counts and timings."""
    cfg.check()
    shard = parse_shard(cfg.shard)
    table = dict(header=cfg.header, delimiter=cfg.delimiter, encoding=cfg.encoding)
    spec = task_spec(cfg.task, cfg.train_file, cfg.text_columns, cfg.label_column, **table)
    examples = subsample(_train_examples(cfg, spec), cfg.max_train_samples, cfg.seed)
    lo, hi = _shard_range(len(examples), shard)
    stopwords = load_stopwords(cfg.stopwords) if cfg.stopwords else STOPWORDS
    mlm, vectors = _candidate_sources(cfg)
    aug = Augmenter(mlm, vectors, n_aug=cfg.n_aug, p=cfg.p, seed=cfg.seed, stopwords=stopwords)
    start = time.time()
    rows = _augmented_rows(aug, examples, lo, hi)
    seconds = time.time() - start
    write_tsv(spec, rows, cfg.output)
    return {
        "output": cfg.output,
        "task": spec.name,
        "examples": hi - lo,
        "rows": len(rows),
        "variants": len(rows) - (hi - lo),
        "sentences": len(aug.cache),
        "mlm_rows": mlm.rows,
        "mlm_forwards": mlm.forwards,
        "vector_queries": aug.vector_queries,
        "seconds": round(seconds, 2),
        "device": str(mlm.device),
    }


def _shard_range(n: int, shard: tuple[int, int] | None) -> tuple[int, int]:
    """``[lo, hi)`` of the shard's contiguous slice of ``n`` examples (all of them without a shard)."""
    if shard is None:
        return 0, n
    return shard[0] * n // shard[1], (shard[0] + 1) * n // shard[1]


def _candidate_sources(cfg: AugmentConfig) -> tuple[MLMCandidates, WordVectors]:
    """The masked LM's candidates and the word vectors (``cfg.vectors`` or the MLM's embeddings)."""
    model, tokenizer = load_masked_lm(cfg.mlm, cfg.device, cfg.dtype)
    vectors = (
        WordVectors.load(cfg.vectors, cfg.vocab_limit)
        if cfg.vectors
        else WordVectors.from_embeddings(model, tokenizer)
    )
    mlm = MLMCandidates(
        model,
        tokenizer,
        k=cfg.candidates,
        batch_rows=cfg.batch_rows,
        masks_per_row=cfg.masks_per_row,
        pair_context=cfg.pair_context,
        progress=cfg.progress,
    )
    return mlm, vectors


def _augmented_rows(aug: Augmenter, examples: Sequence[Example], lo: int, hi: int) -> list[Example]:
    """Examples ``lo..hi-1``, each followed by its text_a variants, then its text_b variants.

    Variants are seeded by the example's index in the whole train set, so shards match a whole run.
    """
    part = examples[lo:hi]
    aug.prepare([ex.text_a for ex in part] + [ex.text_b for ex in part if ex.text_b is not None])
    rows: list[Example] = []
    for i in range(lo, hi):
        ex = examples[i]
        rows.append(ex)
        rows += [Example(v, ex.text_b, ex.label) for v in aug.variants(ex.text_a, i, 0)]
        if ex.text_b is not None:
            rows += [Example(ex.text_a, v, ex.label) for v in aug.variants(ex.text_b, i, 1)]
    return rows


def merge_shards(
    task: str,
    inputs: Sequence[str],
    output: str,
    train_file: str | None = None,
    text_columns: list[str] | None = None,
    label_column: str = "label",
    *,
    header: bool = True,
    delimiter: str | None = None,
    encoding: str | None = None,
) -> dict:
    """Concatenate shard files (in the given order) into one train file of the task's format."""
    if not inputs:
        raise TinyDistillError("--merge needs at least one shard file")
    if Path(output).suffix.lower() != ".tsv":
        raise TinyDistillError(f"--output must be a .tsv file, got {output}")
    table = dict(header=header, delimiter=delimiter if train_file else None, encoding=encoding)
    spec = task_spec(task, train_file or inputs[0], text_columns, label_column, **table)
    rows: list[Example] = []
    for i, path in enumerate(inputs):
        shard = read_tsv_file(spec, path)
        report_rows(f"shard {i}", shard)
        rows += shard
    write_tsv(spec, rows, output)
    return {"output": output, "task": spec.name, "shards": len(inputs), "rows": len(rows)}
