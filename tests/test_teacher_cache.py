"""Teacher caches: logits for a stage that needs only them, mapped states on disk for the others; a
cached stage runs the student alone and trains the same."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import tiny_bert_config, write_sst2_like, write_vocab
from safetensors.torch import load_file
from transformers import BertForSequenceClassification, BertTokenizerFast

import tinydistill
from tinydistill.data import EncodedDataset, make_collate
from tinydistill.models.capture import enable_capture, forward_reps
from tinydistill.tasks import Example, get_task
from tinydistill.training.state_cache import open_or_build
from tinydistill.training.teacher_cache import logits_only, stored_teacher_logits, teacher_logits


def test_which_stages_can_use_the_cache() -> None:
    assert logits_only({"prediction"}) and logits_only({"kd", "hard_ce"}) and logits_only({"soft_ce"})
    assert not logits_only({"hidden", "prediction"}) and not logits_only({"cos_nce", "soft_ce"})
    assert not logits_only(set())


def _toy_rows(tmp_path: Path, n_train: int) -> tuple:
    """(a tiny teacher, its rows of a toy SST-2 train set encoded, their collate, the tokenizer)."""
    from tinydistill.tasks.readers import load_split

    tok = BertTokenizerFast(vocab=str(write_vocab(tmp_path / "vocab.txt")), do_lower_case=True)
    glue = write_sst2_like(tmp_path / "glue", n_train=n_train, n_dev=4)
    torch.manual_seed(0)
    teacher = BertForSequenceClassification(tiny_bert_config(len(tok), layers=2, hidden=32)).eval()
    rows = load_split(get_task("sst2"), str(glue), "train")
    return teacher, rows, EncodedDataset(rows, tok, 32, get_task("sst2")), make_collate(tok), tok


def test_cached_logits_equal_the_per_batch_ones(tmp_path) -> None:
    teacher, _, data, collate, _ = _toy_rows(tmp_path, 40)
    cache = teacher_logits(teacher, data, collate, torch.device("cpu"), batch_size=16)
    with torch.no_grad():
        direct = torch.cat([teacher(**{k: v for k, v in collate([data[i] for i in range(j, j + 8)]).items()
                                       if k != "labels"}).logits for j in range(0, 40, 8)])  # fmt: skip
    assert cache.shape == (40, 2)
    torch.testing.assert_close(cache, direct, atol=1e-5, rtol=1e-5)


def test_stored_logits_are_read_back_for_the_same_teacher_and_rows_only(tmp_path) -> None:
    teacher, rows, data, collate, tok = _toy_rows(tmp_path, 24)
    cpu, home = torch.device("cpu"), tmp_path / "home"
    forwards = []
    teacher.register_forward_hook(lambda *_: forwards.append(1))
    first, why = stored_teacher_logits(teacher, data, collate, cpu, 8, "no", home)
    assert why.startswith("stored") and len(forwards) == 3 and len(list(home.iterdir())) == 1
    again, why = stored_teacher_logits(teacher, data, collate, cpu, 8, "no", home)
    assert why.startswith("reused") and len(forwards) == 3  # no teacher pass
    assert torch.equal(first, again)
    # other rows, another precision or other weights: a new entry, computed
    stored_teacher_logits(
        teacher, EncodedDataset(rows[:20], tok, 32, get_task("sst2")), collate, cpu, 8, "no", home
    )
    stored_teacher_logits(teacher, data, collate, cpu, 8, "bf16/cpu", home)
    with torch.no_grad():
        teacher.classifier.bias.add_(1.0)
    moved, why = stored_teacher_logits(teacher, data, collate, cpu, 8, "no", home)
    assert why.startswith("stored") and len(list(home.iterdir())) == 4
    torch.testing.assert_close(moved, first + 1.0)


def toy_teacher(tmp_path: Path, **finetune: object) -> tuple[Path, Path, Path]:
    """(glue dir, a tiny encoder, the teacher fine-tuned from it for 4 steps)."""
    tok = BertTokenizerFast(vocab=str(write_vocab(tmp_path / "vocab.txt")), do_lower_case=True)
    glue = write_sst2_like(tmp_path / "glue", n_train=48, n_dev=8)
    torch.manual_seed(0)
    encoder = tmp_path / "encoder"
    BertForSequenceClassification(tiny_bert_config(len(tok), layers=2, hidden=32)).save_pretrained(encoder)
    tok.save_pretrained(encoder)
    teacher = tmp_path / "teacher"
    tinydistill.finetune(
        task="sst2", data_dir=str(glue), model=str(encoder), output=str(teacher), max_steps=4, **finetune
    )
    return glue, encoder, teacher


def test_cached_run_trains_the_same_student(tmp_path) -> None:
    glue, encoder, teacher = toy_teacher(tmp_path)
    runs = {}
    for cached in (True, False):
        out = tmp_path / f"kd-{cached}"
        runs[cached] = tinydistill.distill(
            task="sst2", data_dir=str(glue), teacher=str(teacher), student=str(encoder), recipe="kd",
            output=str(out), max_steps=5, batch_size=8, learning_rate=1e-3, teacher_cache=cached,
        )  # fmt: skip
    assert runs[True]["stages"]["distill"]["teacher_cache"] == "logits"
    assert runs[False]["stages"]["distill"]["teacher_cache"] is None
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
    assert tb["stages"]["intermediate"]["teacher_cache"] == "states"
    assert tb["stages"]["prediction"]["teacher_cache"] == "logits"


def test_state_cache_gives_the_teachers_reps(tmp_path) -> None:
    """Cached (fp32) states equal a per-batch teacher forward on every kept layer, padding aside."""
    tok = BertTokenizerFast(vocab=str(write_vocab(tmp_path / "vocab.txt")), do_lower_case=True)
    torch.manual_seed(0)
    teacher = BertForSequenceClassification(tiny_bert_config(len(tok), layers=4, hidden=32)).eval()
    enable_capture(teacher)
    spec = get_task("sst2")
    rows = [Example(t, None, i % 2) for i, t in enumerate(["good movie", "the plot was dull and boring",
            "a film", "really quite nice acting and a very fine story", "bad"])]  # fmt: skip
    data = EncodedDataset(rows, tok, 16, spec)
    collate = make_collate(tok)
    cache, why = open_or_build(teacher, data, collate, torch.device("cpu"), [2, 4], True, torch.float32, 1.0,
                               batch_size=2, home=tmp_path / "states")  # fmt: skip
    assert cache is not None and why.startswith("built")
    batch = collate([data[i] for i in (3, 0, 4)])
    batch["row"] = torch.tensor([3, 0, 4])
    got = cache.reps(batch)
    want = forward_reps(teacher, batch, attentions=True, layers=[2, 4])
    mask = batch["attention_mask"].bool()
    for layer in (0, 2, 4):
        torch.testing.assert_close(got.hidden[layer][mask], want.hidden[layer][mask], atol=1e-5, rtol=1e-5)
    assert got.hidden[1] is None and got.attn_scores[0] is None
    valid = (mask[:, :, None] & mask[:, None, :])[:, None].expand_as(want.attn_scores[1])
    for layer in (2, 4):
        torch.testing.assert_close(
            got.attn_scores[layer - 1][valid], want.attn_scores[layer - 1][valid], atol=1e-5, rtol=1e-5
        )
    torch.testing.assert_close(got.logits, want.logits, atol=1e-5, rtol=1e-5)
    # the same teacher and rows open the entry; other rows, another teacher or other layers do not
    assert open_or_build(teacher, data, collate, torch.device("cpu"), [2, 4], True, torch.float32, 1.0,
                         home=tmp_path / "states")[1].startswith("reused")  # fmt: skip
    shorter = EncodedDataset(rows, tok, 3, spec)  # another max length
    assert open_or_build(teacher, shorter, collate, torch.device("cpu"), [2, 4], True, torch.float32, 1.0,
                         home=tmp_path / "states")[1].startswith("built")  # fmt: skip
    assert open_or_build(teacher, data, collate, torch.device("cpu"), [1, 4], True, torch.float32, 1.0,
                         home=tmp_path / "states")[1].startswith("built")  # fmt: skip
    with torch.no_grad():
        teacher.classifier.weight.add_(1.0)
    assert open_or_build(teacher, data, collate, torch.device("cpu"), [2, 4], True, torch.float32, 1.0,
                         home=tmp_path / "states")[1].startswith("built")  # fmt: skip
    # over the budget: no cache, and why
    none, why = open_or_build(teacher, data, collate, torch.device("cpu"), [2, 4], True, torch.float32, 1e-9,
                              home=tmp_path / "states")  # fmt: skip
    assert none is None and "over the --teacher-state-cache budget" in why


def test_state_cached_run_trains_the_same_student(tmp_path) -> None:
    """TinyBERT's intermediate step on cached states (fp32) = on a teacher forward every step."""
    glue, encoder, teacher = toy_teacher(tmp_path, mixed_precision="no")
    runs = {}
    for budget in (1.0, 0.0):
        runs[budget] = tinydistill.distill(
            task="sst2", data_dir=str(glue), teacher=str(teacher), student=str(encoder), start="random",
            output=str(tmp_path / f"tb-{budget}"), stage="intermediate", max_steps=8, batch_size=8,
            teacher_state_cache=budget, mixed_precision="no",
        )  # fmt: skip
    assert runs[1.0]["stages"]["intermediate"]["teacher_cache"] == "states"
    assert runs[0.0]["stages"]["intermediate"]["teacher_cache"] is None
    losses = [[h["loss"] for h in runs[b]["stages"]["intermediate"]["history"]] for b in (1.0, 0.0)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)
    a, b = (load_file(tmp_path / f"tb-{x}" / "model.safetensors") for x in (1.0, 0.0))
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4


def test_bf16_autocast_changes_the_loss_by_rounding_only(tmp_path) -> None:
    """The default (bf16 autocast where native) and fp32 give the same first-step losses on the same
    batch, up to bf16 rounding (autocast runs on any CPU, natively fast or not)."""
    glue, encoder, teacher = toy_teacher(tmp_path, mixed_precision="no")
    first = {}
    for precision in ("bf16", "no"):
        run = tinydistill.distill(
            task="sst2", data_dir=str(glue), teacher=str(teacher), student=str(encoder), start="random",
            output=str(tmp_path / f"p-{precision}"), stage="intermediate", max_steps=1, batch_size=8,
            logging_steps=1, mixed_precision=precision, teacher_cache=False,
        )  # fmt: skip
        assert run["mixed_precision"] == precision
        first[precision] = run["stages"]["intermediate"]["history"][0]
    for term in ("loss", "embedding", "hidden", "attention"):
        assert first["bf16"][term] == pytest.approx(first["no"][term], rel=3e-2), term
        assert first["bf16"][term] != first["no"][term]  # bf16 did run
