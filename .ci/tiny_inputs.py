"""Tiny inputs for .ci/main-job: a 2-layer, 32-wide BERT teacher with its tokenizer, a 1-layer
checkpoint with its own tokenizer standing in for the main job's pre-trained student, and train/dev
CSVs of the tests' toy sentiment task (tests/conftest.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import torch  # noqa: E402
import transformers  # noqa: E402
from conftest import tiny_bert_config, write_sentiment_csv, write_vocab  # noqa: E402
from transformers import BertForSequenceClassification, BertModel, BertTokenizerFast  # noqa: E402


def main(root: Path) -> None:
    transformers.utils.logging.disable_progress_bar()
    tok = BertTokenizerFast(vocab=str(write_vocab(root / "vocab.txt")), do_lower_case=True)
    torch.manual_seed(0)
    BertForSequenceClassification(tiny_bert_config(len(tok))).save_pretrained(root / "teacher")
    tok.save_pretrained(root / "teacher")
    BertModel(tiny_bert_config(len(tok), layers=1, hidden=16, heads=4)).save_pretrained(root / "student")
    tok.save_pretrained(root / "student")
    write_sentiment_csv(root / "train.csv", 64, seed=3)
    write_sentiment_csv(root / "dev.csv", 32, seed=4)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
