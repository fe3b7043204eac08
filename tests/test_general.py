"""General distillation on tiny fixtures: it learns, resumes exactly, and feeds task distillation."""

from __future__ import annotations

import json
import random
import signal
from pathlib import Path

import pytest
import torch
from conftest import WORDS, tiny_bert_config, write_vocab
from safetensors.torch import load_file
from transformers import BertTokenizerFast, MPNetConfig, MPNetModel
from typer.testing import CliRunner

import tinydistill
from tinydistill import TinyDistillError
from tinydistill.cli import app
from tinydistill.training import general as G
from tinydistill.training import general_step as S
from tinydistill.training.checkpoint import checkpoint_dirs


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_text(path: Path, n_docs: int = 40, seed: int = 0) -> Path:
    rng = random.Random(seed)
    docs = []
    for _ in range(n_docs):
        sents = [
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 10))).capitalize() + "."
            for _ in range(rng.randint(2, 6))
        ]
        docs.append(" ".join(sents))
    path.write_text("\n\n".join(docs) + "\n")
    return path


@pytest.fixture
def setup(tmp_path, tiny_encoder):
    """A prepared corpus (tokenized with the tiny encoder's vocabulary) and a 1-layer student config dir."""
    corpus = tmp_path / "corpus"
    tinydistill.prepare_corpus(
        write_text(tmp_path / "text.txt"), str(tiny_encoder), corpus, max_seq_length=24
    )
    student = tmp_path / "student"
    student.mkdir()
    vocab = json.loads((tiny_encoder / "config.json").read_text())["vocab_size"]
    cfg = tiny_bert_config(vocab, layers=1, hidden=16, heads=4)
    (student / "config.json").write_text(json.dumps(cfg.to_dict()))
    return {"teacher": str(tiny_encoder), "student": str(student), "corpus": str(corpus)}


def run(setup, output, **kw):
    args = dict(batch_size=8, learning_rate=2e-3, logging_steps=1, save_every=3, teacher_precision="fp32")
    return tinydistill.general(**{**setup, "output": str(output), **args, **kw})


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "model.safetensors"))


def test_general_distillation_learns(setup, tmp_path):
    summary = run(setup, tmp_path / "out", max_steps=30, warmup_ratio=0.0)
    losses = summary["losses"]
    assert len(losses) == 30 and summary["steps"] == 30
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5
    assert set(summary["history"][0]) >= {"loss", "embedding", "hidden", "attention", "lr"}
    out = tmp_path / "out"
    for name in ("config.json", "model.safetensors", "config.yaml", "metrics.json", "logs"):
        assert (out / name).exists(), name
    assert any((out / f).exists() for f in ("tokenizer.json", "vocab.txt"))
    assert json.loads((out / "config.json").read_text())["architectures"] == ["BertModel"]
    # checkpoints every 3 steps, the last 2 kept
    assert [s for s, _ in checkpoint_dirs(out / "checkpoints")] == [27, 30]


def test_exact_resume_after_a_signal(setup, tmp_path, monkeypatch):
    straight = run(setup, tmp_path / "straight", max_steps=6)

    calls = {"n": 0}
    step = S.GeneralLoss.__call__

    def stop_after_three(self, distiller, batch, i):
        out = step(self, distiller, batch, i)
        calls["n"] += 1
        if calls["n"] == 3:
            signal.raise_signal(
                signal.SIGTERM
            )  # the handler only sets a flag: the loop checkpoints and stops
        return out

    monkeypatch.setattr(S.GeneralLoss, "__call__", stop_after_three)
    with pytest.raises(G.Interrupted, match="SIGTERM: stopped general at step 3"):
        run(setup, tmp_path / "resumed", max_steps=6, save_every=100)
    assert [s for s, _ in checkpoint_dirs(tmp_path / "resumed" / "checkpoints")] == [3]
    assert not (tmp_path / "resumed" / "model.safetensors").exists()
    monkeypatch.setattr(S.GeneralLoss, "__call__", step)

    with pytest.raises(TinyDistillError, match="pass --resume"):
        run(setup, tmp_path / "resumed", max_steps=6, save_every=100)
    with pytest.raises(TinyDistillError, match="different settings.*learning_rate"):
        run(setup, tmp_path / "resumed", max_steps=6, save_every=100, resume=True, learning_rate=1e-3)
    resumed = run(setup, tmp_path / "resumed", max_steps=6, save_every=100, resume=True)

    assert resumed["losses"] == straight["losses"]  # bitwise: same batches, dropout masks, updates
    assert resumed["history"] == straight["history"]
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # resuming a finished run only rewrites the output
    again = run(setup, tmp_path / "resumed", max_steps=6, save_every=100, resume=True)
    assert again["losses"] == straight["losses"]


def test_general_student_starts_task_distillation(setup, tmp_path, glue_dir):
    run(setup, tmp_path / "general", max_steps=3)
    general_weights = weights(tmp_path / "general")
    metrics = tinydistill.distill(
        task="SST-2",
        data_dir=str(glue_dir),
        teacher=setup["teacher"],
        student=str(tmp_path / "general"),
        output=str(tmp_path / "task"),
        max_steps=1,
        batch_size=8,
        max_seq_length=24,
        stage="intermediate",
        learning_rate=1e-9,
        warmup_ratio=0.0,
    )
    assert metrics["stages"]["intermediate"]["steps"] == 1
    task = weights(tmp_path / "task")
    key = "embeddings.word_embeddings.weight"
    # the task student started from the general student's encoder (one tiny step later)
    assert torch.allclose(task[f"bert.{key}"], general_weights[key], atol=1e-6)


def test_general_from_a_pruned_student_keeps_its_plan(setup, tmp_path):
    """A student pruned from the teacher starts general distillation where it is: the plan's layer map,
    W_h at the channel selection (so the hidden loss starts near zero for a student that keeps every
    channel), and the plan goes on to the output for task distillation."""
    teacher_layers = json.loads((Path(setup["teacher"]) / "config.json").read_text())["num_hidden_layers"]
    shape = tmp_path / "shape.json"
    shape.write_text(json.dumps({"num_hidden_layers": 1}))  # every channel kept, one layer
    tinydistill.prune(teacher=setup["teacher"], output=str(tmp_path / "pruned"), shape=str(shape),
                      corpus=setup["corpus"], calibration_samples=16, layer_map="bottom")  # fmt: skip
    plan = json.loads((tmp_path / "pruned" / "prune.json").read_text())
    assert plan["layers"] == [1] != [teacher_layers]  # the uniform map would pick the last layer
    cfg_file = tmp_path / "pruned" / "config.json"  # no dropout: the student's outputs equal the teacher's
    cfg = json.loads(cfg_file.read_text())
    cfg_file.write_text(json.dumps({**cfg, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}))
    summary = run({**setup, "student": str(tmp_path / "pruned")}, tmp_path / "out", max_steps=1,
                  learning_rate=1e-9, warmup_ratio=0.0)  # fmt: skip
    assert summary["layer_map"] == [1]
    first = summary["history"][0]
    assert max(first["embedding"], first["hidden"], first["attention"]) < 1e-4  # vs ~1.35 from random
    assert json.loads((tmp_path / "out" / "prune.json").read_text()) == plan
    random_start = run(setup, tmp_path / "random", max_steps=1, learning_rate=1e-9, warmup_ratio=0.0)
    assert random_start["history"][0]["hidden"] > 0.1  # a fresh W_h and random student start far off


def test_mpnet_teacher(tmp_path, tokenizer_dir):
    tok = BertTokenizerFast.from_pretrained(tokenizer_dir)
    cfg = MPNetConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=40,
    )
    torch.manual_seed(0)
    MPNetModel(cfg).save_pretrained(tmp_path / "mpnet")
    tok.save_pretrained(tmp_path / "mpnet")
    tinydistill.prepare_corpus(
        write_text(tmp_path / "t.txt"), str(tmp_path / "mpnet"), tmp_path / "c", max_seq_length=24
    )
    student = tmp_path / "student"
    student.mkdir()
    (student / "config.json").write_text(
        json.dumps(tiny_bert_config(len(tok), layers=1, hidden=16, heads=4).to_dict())
    )
    summary = tinydistill.general(
        teacher=str(tmp_path / "mpnet"),
        student=str(student),
        corpus=str(tmp_path / "c"),
        output=str(tmp_path / "out"),
        max_steps=2,
        batch_size=4,
        logging_steps=1,
    )
    assert len(summary["losses"]) == 2 and all(v > 0 for v in summary["history"][0].values())
    assert summary["layer_map"] == [2]


def test_teacher_bf16_capture_selected_layers(tiny_encoder):
    from tinydistill.models.capture import forward_reps

    batch = {"input_ids": torch.tensor([[2, 7, 9, 3, 0]]), "attention_mask": torch.tensor([[1, 1, 1, 1, 0]])}
    full = forward_reps(
        S.prepare_teacher(S.load_encoder(str(tiny_encoder)), torch.device("cpu"), None), batch
    )
    teacher = S.prepare_teacher(S.load_encoder(str(tiny_encoder)), torch.device("cpu"), torch.bfloat16)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        half = forward_reps(teacher, batch, layers=[2])
    assert half.attn_scores[0] is None and half.attn_scores[1] is not None
    assert torch.allclose(half.hidden[-1].float(), full.hidden[-1], atol=0.05)
    assert S.teacher_dtype("fp32", torch.device("cpu")) is None
    assert S.teacher_dtype("bf16", torch.device("cpu")) == torch.bfloat16


def test_general_errors(setup, tmp_path, tokenizer_dir):
    with pytest.raises(TinyDistillError, match="no manifest.json"):
        run({**setup, "corpus": str(tmp_path)}, tmp_path / "o", max_steps=1)
    with pytest.raises(TinyDistillError, match="--max-steps or --epochs"):
        run(setup, tmp_path / "o")
    with pytest.raises(TinyDistillError, match="only embedding, hidden, attention"):
        run(setup, tmp_path / "o", max_steps=1, weights={"prediction": 1.0})
    # a corpus tokenized with another vocabulary
    other = tmp_path / "other_tok"
    other.mkdir()
    BertTokenizerFast(vocab=str(write_vocab(other / "vocab.txt", WORDS[:-3]))).save_pretrained(other)
    tinydistill.prepare_corpus(write_text(tmp_path / "t.txt"), str(other), tmp_path / "c2", max_seq_length=24)
    with pytest.raises(TinyDistillError, match="vocab mismatch"):
        run({**setup, "corpus": str(tmp_path / "c2")}, tmp_path / "o", max_steps=1)
    # the student must have the teacher's head count for the attention loss
    bad = tmp_path / "bad_student"
    bad.mkdir()
    vocab = json.loads((Path(setup["teacher"]) / "config.json").read_text())["vocab_size"]
    (bad / "config.json").write_text(
        json.dumps(tiny_bert_config(vocab, layers=1, hidden=16, heads=2).to_dict())
    )
    with pytest.raises(TinyDistillError, match="equal head counts"):
        run({**setup, "student": str(bad)}, tmp_path / "o", max_steps=1)


def test_cli_general(setup, tmp_path):
    runner = CliRunner()
    args = [
        "general",
        "--teacher",
        setup["teacher"],
        "--student",
        setup["student"],
        "--corpus",
        setup["corpus"],
        "--output",
        str(tmp_path / "o"),
        "--max-steps",
        "2",
        "--batch-size",
        "4",
        "--save-every",
        "1",
        "--keep-checkpoints",
        "1",
        "--teacher-precision",
        "fp32",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["steps"] == 2
    assert [s for s, _ in checkpoint_dirs(tmp_path / "o" / "checkpoints")] == [2]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "pass --resume" in result.stderr
    assert runner.invoke(app, [*args, "--resume"]).exit_code == 0
    result = runner.invoke(app, ["general", "--corpus", str(tmp_path / "nope"), "--max-steps", "1"])
    assert (
        result.exit_code == 2 and result.stderr.strip() == f"error: corpus dir not found: {tmp_path / 'nope'}"
    )
