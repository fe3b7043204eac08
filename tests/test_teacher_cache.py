"""Cached teacher logits: a stage that needs only them runs the student alone and trains the same."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_bert_config, write_sst2_like, write_vocab
from safetensors.torch import load_file
from transformers import BertForSequenceClassification, BertTokenizerFast

import tinydistill
from tinydistill.data import EncodedDataset, make_collate
from tinydistill.tasks import get_task
from tinydistill.training.teacher_cache import logits_only, teacher_logits


def test_which_stages_can_use_the_cache() -> None:
    assert logits_only({"prediction"}) and logits_only({"kd", "hard_ce"}) and logits_only({"soft_ce"})
    assert not logits_only({"hidden", "prediction"}) and not logits_only({"cos_nce", "soft_ce"})
    assert not logits_only(set())


def test_cached_logits_equal_the_per_batch_ones(tmp_path) -> None:
    tok = BertTokenizerFast(vocab=str(write_vocab(tmp_path / "vocab.txt")), do_lower_case=True)
    glue = write_sst2_like(tmp_path / "glue", n_train=40, n_dev=4)
    torch.manual_seed(0)
    teacher = BertForSequenceClassification(tiny_bert_config(len(tok), layers=2, hidden=32)).eval()
    from tinydistill.tasks.readers import load_split

    rows = load_split(get_task("sst2"), str(glue), "train")
    data = EncodedDataset(rows, tok, 32, get_task("sst2"))
    collate = make_collate(tok)
    cache = teacher_logits(teacher, data, collate, torch.device("cpu"), batch_size=16)
    with torch.no_grad():
        direct = torch.cat([teacher(**{k: v for k, v in collate([data[i] for i in range(j, j + 8)]).items()
                                       if k != "labels"}).logits for j in range(0, 40, 8)])  # fmt: skip
    assert cache.shape == (40, 2)
    torch.testing.assert_close(cache, direct, atol=1e-5, rtol=1e-5)


def test_cached_run_trains_the_same_student(tmp_path) -> None:
    tok = BertTokenizerFast(vocab=str(write_vocab(tmp_path / "vocab.txt")), do_lower_case=True)
    glue = write_sst2_like(tmp_path / "glue", n_train=48, n_dev=8)
    torch.manual_seed(0)
    encoder = tmp_path / "encoder"
    BertForSequenceClassification(tiny_bert_config(len(tok), layers=2, hidden=32)).save_pretrained(encoder)
    tok.save_pretrained(encoder)
    teacher = tmp_path / "teacher"
    tinydistill.finetune(
        task="sst2", data_dir=str(glue), model=str(encoder), output=str(teacher), max_steps=4
    )
    runs = {}
    for cached in (True, False):
        out = tmp_path / f"kd-{cached}"
        runs[cached] = tinydistill.distill(
            task="sst2", data_dir=str(glue), teacher=str(teacher), student=str(encoder), recipe="kd",
            output=str(out), max_steps=5, batch_size=8, learning_rate=1e-3, teacher_cache=cached,
        )  # fmt: skip
    assert runs[True]["stages"]["distill"]["teacher_cache"] is True
    assert runs[False]["stages"]["distill"]["teacher_cache"] is False
    a, b = (
        load_file(tmp_path / "kd-True" / "model.safetensors"),
        load_file(tmp_path / "kd-False" / "model.safetensors"),
    )
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5
    losses = [[h["loss"] for h in runs[c]["stages"]["distill"]["history"]] for c in (True, False)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    # TinyBERT: the intermediate step needs the teacher's layers; the prediction step only its logits
    tb = tinydistill.distill(task="sst2", data_dir=str(glue), teacher=str(teacher), student=str(encoder),
                             output=str(tmp_path / "tb"), max_steps=2, batch_size=8)  # fmt: skip
    assert (
        tb["stages"]["intermediate"]["teacher_cache"] is False and tb["stages"]["prediction"]["teacher_cache"]
    )
