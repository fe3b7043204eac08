"""Tiny, self-made fixtures: a word-level WordPiece vocab, random BERT/MPNet configs, GLUE-style files.

The toy task is learnable in a few dozen steps: label 1 iff the sentence contains a positive word.
"""

from __future__ import annotations

import csv
import os
import random
import re
import tempfile
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
POSITIVE = ["good", "great", "fine", "nice", "superb"]
NEGATIVE = ["bad", "awful", "poor", "dull", "boring"]
FILLER = ["the", "movie", "was", "plot", "story", "acting", "really", "quite", "and", "a", "film", "very"]
WORDS = POSITIVE + NEGATIVE + FILLER
# the line every command that reads rows prints on stderr (tinydistill.tasks.rows)
ROW_COUNT = re.compile(r"^[\w /-]+: [\d,]+ rows read from .+ \([\d,]+ skipped[^)]*\)")


def without_row_counts(stderr: str) -> str:
    """stderr without the row-count lines (what is left of an error is its one ``error:`` line)."""
    return "".join(line for line in stderr.splitlines(keepends=True) if not ROW_COUNT.match(line))


def pytest_configure(config):
    # The fixtures are tiny: one thread is faster than two and leaves the other core free.
    torch.set_num_threads(1)
    # caches built by the code under test (ONNX exports, teacher states) go to a fresh dir, not ~/.cache
    os.environ["TINYDISTILL_CACHE"] = tempfile.mkdtemp(prefix="tinydistill-test-cache-")


def write_vocab(path: Path, words: list[str] = WORDS) -> Path:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    path.write_text("\n".join(specials + words + [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]) + "\n")
    return path


def toy_sentence(rng: random.Random, label: int) -> str:
    words = rng.sample(FILLER, 4)
    words.insert(rng.randrange(len(words) + 1), rng.choice(POSITIVE if label else NEGATIVE))
    return " ".join(words)


def write_sentiment_csv(path: Path, n: int, seed: int) -> Path:
    """``text,label`` rows of the toy task with string labels (pos / neg), written by ``csv``."""
    rng = random.Random(seed)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i in range(n):
            w.writerow([toy_sentence(rng, i % 2), "pos" if i % 2 else "neg"])
    return path


def write_sst2_like(root: Path, n_train: int = 96, n_dev: int = 32, seed: int = 0) -> Path:
    """<root>/SST-2/{train,dev}.tsv in the GLUE layout (header ``sentence\\tlabel``)."""
    rng = random.Random(seed)
    task_dir = root / "SST-2"
    task_dir.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("dev", n_dev)):
        rows = ["sentence\tlabel"]
        for i in range(n):
            label = i % 2
            rows.append(f"{toy_sentence(rng, label)}\t{label}")
        (task_dir / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    return root


def tiny_bert_config(
    vocab_size: int, layers: int = 2, hidden: int = 32, heads: int = 4, max_positions: int = 64, **kw
) -> BertConfig:
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=2 * hidden,
        max_position_embeddings=max_positions,
        **kw,
    )


@pytest.fixture
def tokenizer_dir(tmp_path: Path) -> Path:
    d = tmp_path / "tok"
    d.mkdir()
    tok = BertTokenizerFast(vocab=str(write_vocab(d / "vocab.txt")), do_lower_case=True)
    tok.save_pretrained(d)
    return d


@pytest.fixture
def tiny_encoder(tmp_path: Path, tokenizer_dir: Path) -> Path:
    """A random 2-layer, 32-wide BERT 'pre-trained' encoder dir with its tokenizer."""
    tok = BertTokenizerFast.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_bert_config(len(tok), layers=2, hidden=32))
    d = tmp_path / "encoder"
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.fixture
def glue_dir(tmp_path: Path) -> Path:
    return write_sst2_like(tmp_path / "glue")


@pytest.fixture
def shared_glue() -> Path:
    path = SHARED / "glue"
    if not path.is_dir():
        pytest.skip("../shared/data/glue is not present")
    return path


def write_saved_dataset(
    path: Path, rows: list[dict], class_labels: dict[str, list[str]] | None = None
) -> Path:
    """A folder laid out as ``datasets.Dataset.save_to_disk`` writes it (Arrow IPC stream file +
    ``dataset_info.json`` + ``state.json``), written with pyarrow; ``class_labels`` columns are stored as
    ClassLabel indices, as ``datasets`` stores them."""
    import json

    import pyarrow as pa

    class_labels = class_labels or {}
    stored = [{k: class_labels[k].index(v) if k in class_labels else v for k, v in r.items()} for r in rows]
    table = pa.Table.from_pylist(stored)
    features = {
        name: {"names": class_labels[name], "_type": "ClassLabel"}
        if name in class_labels
        else {"dtype": "string", "_type": "Value"}
        for name in table.column_names
    }
    info = {"citation": "", "description": "", "features": features, "homepage": "", "license": ""}
    table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    path.mkdir(parents=True)
    name = "data-00000-of-00001.arrow"
    with pa.OSFile(str(path / name), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    (path / "dataset_info.json").write_text(json.dumps(info, indent=2))
    state = {
        "_data_files": [{"filename": name}], "_fingerprint": "0" * 16, "_format_columns": None,
        "_format_kwargs": {}, "_format_type": None, "_output_all_columns": False, "_split": "train",
    }  # fmt: skip
    (path / "state.json").write_text(json.dumps(state, indent=2))
    return path
