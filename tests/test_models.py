"""Teacher loading, student construction (presets, config-only, checkpoints), init and saving."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import tiny_bert_config
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
    BertModel,
    BertTokenizerFast,
)

from tinydistill.errors import TinyDistillError
from tinydistill.models.capture import ATTN_IMPL, enable_capture
from tinydistill.models.load import (
    build_student,
    check_vocab,
    count_params,
    init_from_teacher,
    load_classifier,
    save_model,
    student_config,
)
from tinydistill.tasks import get_task

SST2 = get_task("SST-2")
MNLI = get_task("MNLI")
STSB = get_task("STS-B")


@pytest.fixture
def teacher(tiny_encoder: Path):
    return load_classifier(str(tiny_encoder), SST2).eval()


def write_config(path: Path, cfg: BertConfig) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(cfg.to_json_string())
    return path


def same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_preset_student_shape_and_vocab(teacher) -> None:
    student = build_student("tinybert-4l-312", teacher, SST2)
    cfg = student.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size, cfg.num_attention_heads) == (
        4,
        312,
        1200,
        12,
    )
    assert cfg.vocab_size == teacher.config.vocab_size
    assert len(student.bert.encoder.layer) == 4
    assert student.get_input_embeddings().weight.shape == (teacher.config.vocab_size, 312)
    assert cfg.num_labels == 2 and student.classifier.out_features == 2
    assert cfg.problem_type == "single_label_classification"


def test_preset_regression_head(teacher) -> None:
    student = build_student("tinybert-4l-312", teacher, STSB)
    assert student.config.num_labels == 1 and student.config.problem_type == "regression"


def test_tinybert4_param_count_for_bert_base_vocab() -> None:
    fake_teacher = SimpleNamespace(config=BertConfig(vocab_size=30522))
    student = build_student("tinybert-4l-312", fake_teacher, SST2)
    n = count_params(student)
    assert abs(n - 14.5e6) / 14.5e6 < 0.02  # TinyBERT4: 14.5M parameters
    # exact count of the BERT layout: embeddings + 4 layers + pooler + 2-way classifier
    h, f, v = 312, 1200, 30522
    emb = (v + 512 + 2) * h + 2 * h
    layer = 4 * (h * h + h) + 2 * h + (h * f + f) + (f * h + h) + 2 * h
    assert n == emb + 4 * layer + (h * h + h) + (2 * h + 2)
    assert count_params(student, exclude_embeddings=True) == n - v * h


def test_preset_6l_768_shape(teacher) -> None:
    cfg = student_config("tinybert-6l-768", teacher.config)
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size, cfg.num_attention_heads) == (
        6,
        768,
        3072,
        12,
    )
    assert cfg.vocab_size == teacher.config.vocab_size


def test_student_from_config_only_dir_and_file(tmp_path: Path, teacher) -> None:
    vocab = teacher.config.vocab_size
    cfg = tiny_bert_config(vocab, layers=1, hidden=16)
    cfg_file = write_config(tmp_path / "student" / "config.json", cfg)
    for source in (cfg_file.parent, cfg_file):
        student = build_student(str(source), teacher, SST2, seed=3)
        assert student.config.num_hidden_layers == 1 and len(student.bert.encoder.layer) == 1
        assert student.config.hidden_size == 16 and student.config.vocab_size == vocab
        assert student.config.num_labels == 2
    # random init is seeded: same seed -> same weights, other seed -> other weights
    again = build_student(str(cfg_file), teacher, SST2, seed=3)
    same_state(student, again)
    other = build_student(str(cfg_file), teacher, SST2, seed=4)
    emb = student.bert.embeddings.word_embeddings.weight
    assert not torch.equal(other.bert.embeddings.word_embeddings.weight, emb)


def test_student_from_checkpoint_keeps_weights(tmp_path: Path, teacher) -> None:
    torch.manual_seed(7)
    saved = BertForSequenceClassification(tiny_bert_config(teacher.config.vocab_size, layers=1, hidden=16))
    ckpt = tmp_path / "ckpt"
    saved.save_pretrained(ckpt)
    student = build_student(str(ckpt), teacher, SST2)
    assert student.tinydistill_new_head is False
    same_state(student, saved)


def test_unknown_student_is_refused(tmp_path: Path, teacher) -> None:
    with pytest.raises(TinyDistillError, match="neither a preset"):
        build_student(str(tmp_path / "nope"), teacher, SST2)


def test_student_vocab_mismatch(tmp_path: Path, teacher) -> None:
    cfg = tiny_bert_config(teacher.config.vocab_size + 5)
    cfg_dir = write_config(tmp_path / "s" / "config.json", cfg).parent
    with pytest.raises(TinyDistillError, match="vocab mismatch"):
        build_student(str(cfg_dir), teacher, SST2)
    with pytest.raises(TinyDistillError, match="vocab mismatch"):
        check_vocab(teacher.config, tiny_bert_config(teacher.config.vocab_size - 1))
    check_vocab(teacher.config, tiny_bert_config(teacher.config.vocab_size))


def test_init_from_teacher_copies_mapped_layers(tmp_path: Path, teacher) -> None:
    cfg = write_config(tmp_path / "s" / "config.json", tiny_bert_config(teacher.config.vocab_size, layers=1))
    student = build_student(str(cfg), teacher, SST2)
    assert not torch.equal(
        student.bert.embeddings.word_embeddings.weight, teacher.bert.embeddings.word_embeddings.weight
    )
    init_from_teacher(student, teacher, [2])
    same_state(student.bert.embeddings, teacher.bert.embeddings)
    same_state(student.bert.encoder.layer[0], teacher.bert.encoder.layer[1])
    q_s = student.bert.encoder.layer[0].attention.self.query.weight
    assert not torch.equal(q_s, teacher.bert.encoder.layer[0].attention.self.query.weight)
    # a copy, not shared storage
    assert q_s.data_ptr() != teacher.bert.encoder.layer[1].attention.self.query.weight.data_ptr()


def test_init_from_teacher_refuses_other_width(tmp_path: Path, teacher) -> None:
    cfg = write_config(
        tmp_path / "s" / "config.json", tiny_bert_config(teacher.config.vocab_size, layers=1, hidden=16)
    )
    student = build_student(str(cfg), teacher, SST2)
    before = student.bert.embeddings.word_embeddings.weight.clone()
    with pytest.raises(TinyDistillError, match="same architecture and width"):
        init_from_teacher(student, teacher, [2])
    assert torch.equal(student.bert.embeddings.word_embeddings.weight, before)


def test_load_classifier_missing_path(tmp_path: Path) -> None:
    with pytest.raises(TinyDistillError, match="model not found"):
        load_classifier(str(tmp_path / "missing"), SST2)
    with pytest.raises(TinyDistillError, match="model not found"):
        load_classifier("./definitely/not/here", SST2)


def test_new_head_flag(tmp_path: Path, tiny_encoder: Path) -> None:
    torch.manual_seed(0)
    encoder_only = tmp_path / "bare"
    BertModel(tiny_bert_config(40)).save_pretrained(encoder_only)
    bare = load_classifier(str(encoder_only), SST2)
    assert bare.tinydistill_new_head is True
    assert bare.config.num_labels == 2

    kept = load_classifier(str(tiny_encoder), SST2)  # saved with a 2-way head
    assert kept.tinydistill_new_head is False
    reference = AutoModelForSequenceClassification.from_pretrained(tiny_encoder)
    assert torch.equal(kept.classifier.weight, reference.classifier.weight)

    resized = load_classifier(str(tiny_encoder), MNLI)  # 3 labels: the 2-way head is re-initialised
    assert resized.tinydistill_new_head is True
    assert resized.classifier.out_features == 3
    assert resized.config.id2label == dict(enumerate(MNLI.labels))


def test_save_model_into_existing_dir(tmp_path: Path, tiny_encoder: Path, teacher) -> None:
    tok = BertTokenizerFast.from_pretrained(tiny_encoder)
    model = enable_capture(teacher)
    out = tmp_path / "run"
    (out / "logs").mkdir(parents=True)
    (out / "logs" / "events.txt").write_text("keep me")
    (out / "train_config.yaml").write_text("seed: 1\n")
    (out / "config.json").write_text("{}")  # stale: replaced

    save_model(model, tok, out)

    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (out / name).is_file(), name
    assert (out / "logs" / "events.txt").read_text() == "keep me"
    assert (out / "train_config.yaml").read_text() == "seed: 1\n"
    assert not (out / ".saving").exists()
    text = (out / "config.json").read_text()
    assert "tinydistill" not in text
    assert json.loads(text)["model_type"] == "bert"
    assert model.config._attn_implementation == ATTN_IMPL  # restored after saving

    reloaded = AutoModelForSequenceClassification.from_pretrained(out).eval()
    assert reloaded.config._attn_implementation != ATTN_IMPL
    enc = tok(["good movie", "the plot was dull and boring"], padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**enc).logits, model.eval()(**enc).logits, atol=1e-6, rtol=1e-6)
    assert BertTokenizerFast.from_pretrained(out).get_vocab() == tok.get_vocab()
