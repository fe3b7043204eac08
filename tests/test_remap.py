"""A pre-trained student of another vocabulary, put on the teacher's tokenizer (models/remap.py)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from conftest import WORDS, tiny_bert_config, write_sst2_like
from transformers import AutoTokenizer, BertForSequenceClassification, BertModel, BertTokenizerFast

import tinydistill
from tinydistill import TinyDistillError
from tinydistill.models.remap import remap_vocabulary
from tinydistill.start import resolve_start

MPNET_STYLE = dict(
    cls_token="<s>", sep_token="</s>", pad_token="<pad>", unk_token="<unk>", mask_token="<mask>"
)


def other_vocab_student(root: Path, seed: int = 0, layers: int = 2, hidden: int = 32) -> Path:
    """A 'pre-trained' student whose vocabulary differs from the teacher's (conftest.write_vocab):
    other special tokens, its pieces shuffled, 'superb' missing (it has 'super' + '##b'), an extra piece."""
    rng = random.Random(seed)
    pieces = [w for w in WORDS if w != "superb"] + ["super", "zebra"]
    pieces += [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]
    rng.shuffle(pieces)
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    root.mkdir(parents=True)
    (root / "vocab.txt").write_text("\n".join(specials + pieces + ["<mask>"]) + "\n")
    tok = BertTokenizerFast(vocab=str(root / "vocab.txt"), do_lower_case=True, **MPNET_STYLE)
    assert len(tok) == len(specials) + len(pieces) + 1
    torch.manual_seed(seed)
    config = tiny_bert_config(len(tok), layers=layers, hidden=hidden, pad_token_id=1)
    model = BertForSequenceClassification(config)
    model.save_pretrained(root)
    tok.save_pretrained(root)
    return root


def test_shared_pieces_keep_their_vectors_and_outputs(tmp_path: Path, tokenizer_dir: Path) -> None:
    student_dir = other_vocab_student(tmp_path / "student")
    s_tok = AutoTokenizer.from_pretrained(student_dir)
    t_tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    assert s_tok.get_vocab() != t_tok.get_vocab() and len(t_tok) == 5 + len(WORDS) + 26
    model = BertForSequenceClassification.from_pretrained(student_dir).eval()
    before = model.get_input_embeddings().weight.detach().clone()
    text = "the movie was really good and the acting nice"
    with torch.no_grad():
        expected = model(**s_tok(text, return_tensors="pt")).logits

    report = remap_vocabulary(model, s_tok, t_tok)

    after = model.get_input_embeddings().weight.detach()
    assert after.shape == (len(t_tok), 32) and model.config.vocab_size == len(t_tok)
    s_vocab = s_tok.get_vocab()
    for piece, tid in t_tok.get_vocab().items():
        if piece in s_vocab:
            assert torch.equal(after[tid], before[s_vocab[piece]]), piece
    for t_special, s_special in (("[CLS]", "<s>"), ("[SEP]", "</s>"), ("[PAD]", "<pad>"), ("[UNK]", "<unk>")):
        assert torch.equal(after[t_tok.convert_tokens_to_ids(t_special)], before[s_vocab[s_special]])
    superb = (before[s_vocab["super"]] + before[s_vocab["##b"]]) / 2
    assert torch.allclose(after[t_tok.convert_tokens_to_ids("superb")], superb)
    # counts: the 5 specials by role, 'superb' from its pieces, every other teacher piece by string
    assert report.special_by_role == 5 and report.from_subpieces == 1 and report.from_unk == 0
    assert report.same_string == len(t_tok) - 6
    assert report.coverage == pytest.approx((len(t_tok) - 1) / len(t_tok))
    assert report.examples["from_subpieces"] == ["superb"]
    assert model.config.pad_token_id == t_tok.pad_token_id
    with torch.no_grad():  # the same text, now through the teacher's tokenizer: the same outputs
        got = model(**t_tok(text, return_tensors="pt")).logits
    torch.testing.assert_close(got, expected)


def test_a_piece_the_student_cannot_spell_starts_from_unk(tmp_path: Path, tokenizer_dir: Path) -> None:
    student_dir = other_vocab_student(tmp_path / "student")
    s_tok = AutoTokenizer.from_pretrained(student_dir)
    t_tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    t_tok.add_tokens(["ü"])  # no student piece for it
    model = BertForSequenceClassification.from_pretrained(student_dir)
    unk = model.get_input_embeddings().weight[s_tok.unk_token_id].detach().clone()
    report = remap_vocabulary(model, s_tok, t_tok)
    assert report.from_unk == 1 and report.examples["from_unk"] == ["ü"]
    assert torch.equal(model.get_input_embeddings().weight[t_tok.convert_tokens_to_ids("ü")], unk)


def test_pretrained_start_needs_a_checkpoint(tiny_encoder: Path) -> None:
    assert resolve_start("pretrained", str(tiny_encoder), None) == "checkpoint"
    with pytest.raises(TinyDistillError, match="pre-trained checkpoint"):
        resolve_start("pretrained", "tinybert-4l-312", None)


def test_a_student_with_its_own_vocabulary_distills(tmp_path: Path, tiny_encoder: Path, capfd) -> None:
    glue = write_sst2_like(tmp_path / "glue")
    student_dir = other_vocab_student(tmp_path / "student")
    out = tmp_path / "run"
    metrics = tinydistill.distill(
        task="sst2", data_dir=str(glue), teacher=str(tiny_encoder), student=str(student_dir),
        start="pretrained", output=str(out), recipe="kd", epochs=2, batch_size=16, max_seq_length=16,
    )  # fmt: skip
    n = len(AutoTokenizer.from_pretrained(tiny_encoder))
    assert f"vocabulary remap: {n - 1} of {n} teacher pieces found" in capfd.readouterr().err
    assert metrics["start"] == "checkpoint"
    assert metrics["vocab_remap"]["from_subpieces"] == 1
    assert metrics["vocab_remap"]["coverage"] == pytest.approx((n - 1) / n, abs=1e-6)
    saved = AutoTokenizer.from_pretrained(out)  # the student now ships the teacher's tokenizer
    assert saved.get_vocab() == AutoTokenizer.from_pretrained(tiny_encoder).get_vocab()
    assert json.loads((out / "config.json").read_text())["vocab_size"] == len(saved)
    assert metrics["dev"]  # evaluated through the teacher's tokenizer


def test_prune_cuts_a_pretrained_model_on_the_teachers_tokenizer(tmp_path: Path, tiny_encoder: Path) -> None:
    """A pre-trained 3L-48 of its own vocabulary cut to 1L-16 for a 2L-32 teacher, then distilled."""
    glue = write_sst2_like(tmp_path / "glue")
    source = other_vocab_student(tmp_path / "source", layers=3, hidden=48)
    shape = tmp_path / "shape.json"
    keys = dict(num_hidden_layers=1, hidden_size=16, intermediate_size=32, num_attention_heads=4)
    shape.write_text(json.dumps(keys))
    cut = tmp_path / "cut"
    r = tinydistill.prune(
        teacher=str(source), vocab_from=str(tiny_encoder), shape=str(shape), task="sst2", data_dir=str(glue),
        output=str(cut), calibration_samples=32,
    )  # fmt: skip
    t_tok = AutoTokenizer.from_pretrained(tiny_encoder)
    assert r["vocab_remap"]["from_subpieces"] == 1 and r["hidden_size"] == 16
    assert AutoTokenizer.from_pretrained(cut).get_vocab() == t_tok.get_vocab()
    assert json.loads((cut / "config.json").read_text())["vocab_size"] == len(t_tok)
    metrics = tinydistill.distill(
        task="sst2", data_dir=str(glue), teacher=str(tiny_encoder), student=str(cut),
        output=str(tmp_path / "run"), recipe="tinybert4", intermediate_epochs=1, prediction_epochs=1,
        batch_size=16, max_seq_length=16,
    )  # fmt: skip
    # the plan was cut from the 3-layer source, not the teacher: the default layer map and a fresh W_h
    assert metrics["start"] == "checkpoint" and metrics["layer_map"] == [2]
    assert metrics["vocab_remap"] is None  # already on the teacher's tokenizer


def test_a_pretrained_students_new_head_is_drawn_from_the_seed(tmp_path: Path, tiny_encoder: Path) -> None:
    """The head a checkpoint without one gets comes from --seed, not from what the process drew before
    (a pipeline run after its teacher stage and one started --from distill train the same student)."""
    glue = write_sst2_like(tmp_path / "glue")
    student_dir = other_vocab_student(tmp_path / "student")
    BertModel.from_pretrained(student_dir).save_pretrained(student_dir)  # the encoder alone: no head

    def head(name: str, seed: int, draws: int) -> torch.Tensor:
        torch.rand(draws)  # what an earlier stage of the same process may have drawn
        out = tmp_path / name
        tinydistill.distill(
            task="sst2", data_dir=str(glue), teacher=str(tiny_encoder), student=str(student_dir),
            start="pretrained", output=str(out), recipe="kd", epochs=1, batch_size=16, max_seq_length=16,
            seed=seed,
        )  # fmt: skip
        return BertForSequenceClassification.from_pretrained(out).classifier.weight.detach()

    first = head("a", 7, 0)
    assert torch.equal(head("b", 7, 1000), first)
    assert not torch.equal(head("c", 8, 0), first)
