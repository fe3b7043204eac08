"""End-to-end runs of the Python API on tiny, learnable toy tasks (CPU, a few seconds each).

One teacher and one student are trained per module (``trained``) and shared by the tests that only
inspect their outputs; the other tests run their own short jobs with ``max_steps``.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml
from conftest import (
    NEGATIVE,
    POSITIVE,
    tiny_bert_config,
    toy_sentence,
    write_sentiment_csv,
    write_sst2_like,
    write_vocab,
)
from transformers import BertForSequenceClassification, BertTokenizerFast

import tinydistill
from tinydistill import TinyDistillError
from tinydistill.tasks import get_task

# The recipe that is known to reach dev accuracy 1.0 on the toy SST-2 task.
RECIPE = dict(learning_rate=2e-3, batch_size=16, logging_steps=5)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def make_encoder(root: Path, positions: int = 64) -> Path:
    """The same random 2-layer, 32-wide BERT dir as conftest's ``tiny_encoder`` (module-scoped here)."""
    tok_dir = root / "tok"
    tok_dir.mkdir(parents=True)
    tok = BertTokenizerFast(vocab=str(write_vocab(tok_dir / "vocab.txt")), do_lower_case=True)
    torch.manual_seed(0)
    config = tiny_bert_config(len(tok), layers=2, hidden=32, max_positions=positions)
    model = BertForSequenceClassification(config)
    enc = root / "encoder"
    model.save_pretrained(enc)
    tok.save_pretrained(enc)
    return enc


def student_config_dir(root: Path, vocab_size: int, **kw) -> Path:
    """A config-only student (no weights): 1 layer, 16 wide, 4 heads like the teacher."""
    root.mkdir(parents=True, exist_ok=True)
    cfg = tiny_bert_config(vocab_size, **{"layers": 1, "hidden": 16, "heads": 4, **kw})
    (root / "config.json").write_text(json.dumps(cfg.to_dict()))
    return root


def vocab_size(model_dir: Path) -> int:
    return json.loads((model_dir / "config.json").read_text())["vocab_size"]


@dataclass
class Trained:
    root: Path
    glue: Path
    encoder: Path
    student_cfg: Path
    teacher: Path
    student: Path
    teacher_metrics: dict
    student_metrics: dict


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Trained:
    root = tmp_path_factory.mktemp("e2e")
    glue = write_sst2_like(root / "glue")
    encoder = make_encoder(root)
    teacher = root / "teacher"
    t_metrics = tinydistill.finetune(
        task="sst2", data_dir=str(glue), model=str(encoder), output=str(teacher), epochs=20, **RECIPE
    )
    student_cfg = student_config_dir(root / "student_cfg", vocab_size(encoder))
    student = root / "student"
    s_metrics = tinydistill.distill(
        task="sst2",
        data_dir=str(glue),
        teacher=str(teacher),
        student=str(student_cfg),
        output=str(student),
        epochs=20,
        **RECIPE,
    )
    return Trained(root, glue, encoder, student_cfg, teacher, student, t_metrics, s_metrics)


def read_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


# --------------------------------------------------------------------------- the tiny run learns


def test_teacher_and_student_learn_the_toy_task(trained):
    assert trained.teacher_metrics["dev"]["accuracy"] >= 0.9
    assert trained.student_metrics["dev"]["accuracy"] >= 0.85
    history = trained.student_metrics["stages"]["intermediate"]["history"]
    assert len(history) >= 2
    assert history[-1]["loss"] < history[0]["loss"] / 2
    # the intermediate step logs its three TinyBERT terms, the prediction step its distillation loss
    assert {"embedding", "hidden", "attention"} <= set(history[0])
    evals = trained.student_metrics["stages"]["prediction"]["evals"]
    assert evals and all("accuracy" in e and "step" in e for e in evals)
    assert trained.student_metrics["stages"]["prediction"]["history"]
    assert trained.student_metrics["params"] < trained.student_metrics["teacher_params"]


@pytest.mark.parametrize("which", ["teacher", "student"])
def test_run_dir_contents(trained, which):
    out = getattr(trained, which)
    for name in ("config.yaml", "metrics.json", "config.json", "model.safetensors", *TOKENIZER_FILES):
        assert (out / name).is_file(), name
    assert list((out / "logs").rglob("events.out.tfevents.*")), "no TensorBoard events under logs/"
    assert not (out / ".saving").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(getattr(trained, f"{which}_metrics")))
    cfg = read_yaml(out / "config.yaml")
    spec = get_task("sst2")
    # given values are kept, missing ones are filled from the task's defaults
    assert cfg["epochs"] == 20
    assert cfg["learning_rate"] == pytest.approx(2e-3)
    assert cfg["batch_size"] == 16
    assert cfg["max_seq_length"] == spec.max_seq_length
    assert cfg["output"] == str(out)
    if which == "student":
        # each stage records what it ran with (the run-wide values replace the recipe's)
        assert [st["learning_rate"] for st in cfg["stages"]] == pytest.approx([2e-3, 2e-3])
        assert [st["epochs"] for st in cfg["stages"]] == [20, 20]
        assert cfg["teacher"] == str(trained.teacher)


def test_defaults_filled_from_the_task_registry(tmp_path):
    encoder = make_encoder(tmp_path, positions=128)  # room for MRPC's default length of 128
    glue = write_sst2_like(tmp_path / "glue", n_train=8, n_dev=4)
    write_mrpc_like(glue, n_train=8, n_dev=4)
    for task in ("sst2", "mrpc"):
        out = tmp_path / task
        tinydistill.finetune(task=task, data_dir=str(glue), model=str(encoder), output=str(out), max_steps=1)
        cfg, spec = read_yaml(out / "config.yaml"), get_task(task)
        assert cfg["epochs"] == spec.epochs
        assert cfg["learning_rate"] == spec.learning_rate
        assert cfg["max_seq_length"] == spec.max_seq_length
        assert cfg["batch_size"] == spec.batch_size
        assert json.loads((out / "metrics.json").read_text())["task"] == spec.name
    sst2, mrpc = read_yaml(tmp_path / "sst2" / "config.yaml"), read_yaml(tmp_path / "mrpc" / "config.yaml")
    assert (sst2["max_seq_length"], mrpc["max_seq_length"]) == (64, 128)
    assert get_task("SST-2").epochs != get_task("MRPC").epochs
    assert (sst2["epochs"], mrpc["epochs"]) == (get_task("SST-2").epochs, get_task("MRPC").epochs)
    # MRPC is scored by F1 (primary) and accuracy
    assert set(json.loads((tmp_path / "mrpc" / "metrics.json").read_text())["dev"]) == {"f1", "accuracy"}


# --------------------------------------------------------------------------- outputs are plain HF models


def test_student_loads_and_runs_in_a_transformers_pipeline(trained):
    from transformers import AutoModelForSequenceClassification, pipeline

    model = AutoModelForSequenceClassification.from_pretrained(trained.student)
    assert model.config.num_hidden_layers == 1 and model.config.hidden_size == 16
    labels = list(get_task("sst2").class_names)  # negative, positive: the names of SST-2's 0 and 1
    assert [model.config.id2label[i] for i in range(len(labels))] == labels
    clf = pipeline(
        "text-classification", model=str(trained.student), tokenizer=str(trained.student), device="cpu"
    )
    positive, negative = "the acting was really superb", "the plot was quite boring"
    assert POSITIVE[-1] in positive and NEGATIVE[-1] in negative
    preds = clf([positive, negative])
    assert {p["label"] for p in preds} <= set(labels)
    assert [p["label"] for p in preds] == ["positive", "negative"]


def test_evaluate_matches_the_best_checkpoint_metrics(trained):
    for out in (trained.teacher, trained.student):
        metrics = json.loads((out / "metrics.json").read_text())
        result = tinydistill.evaluate("sst2", str(out), data_dir=str(trained.glue))
        assert set(result.metrics) == {"dev"}
        assert result.metrics["dev"]["accuracy"] == pytest.approx(metrics["dev"]["accuracy"])
    # the teacher's reported dev metrics are its best evaluation, i.e. the checkpoint that was kept
    evals = trained.teacher_metrics["evals"]
    best = max(e["accuracy"] for e in evals)
    assert trained.teacher_metrics["dev"]["accuracy"] == best


def test_stage_by_stage_distillation(trained):
    inter = trained.root / "stage_intermediate"
    m1 = tinydistill.distill(
        task="sst2",
        data_dir=str(trained.glue),
        teacher=str(trained.teacher),
        student=str(trained.student_cfg),
        output=str(inter),
        stage="intermediate",
        epochs=20,
        **RECIPE,
    )
    assert list(m1["stages"]) == ["intermediate"]
    hist = m1["stages"]["intermediate"]["history"]
    assert hist[-1]["loss"] < hist[0]["loss"] / 2
    assert "accuracy" in m1["dev"]
    assert (inter / "model.safetensors").is_file()

    pred = trained.root / "stage_prediction"
    m2 = tinydistill.distill(
        task="sst2",
        data_dir=str(trained.glue),
        teacher=str(trained.teacher),
        student=str(inter),
        output=str(pred),
        stage="prediction",
        epochs=20,
        **RECIPE,
    )
    assert list(m2["stages"]) == ["prediction"]
    assert m2["dev"]["accuracy"] >= 0.85
    assert m2["stages"]["prediction"]["evals"]
    result = tinydistill.evaluate("sst2", str(pred), data_dir=str(trained.glue))
    assert result.metrics["dev"]["accuracy"] == pytest.approx(m2["dev"]["accuracy"])


# --------------------------------------------------------------------------- other task shapes


def write_mrpc_like(root: Path, n_train: int = 16, n_dev: int = 8, seed: int = 1) -> Path:
    """<root>/MRPC/{train,dev}.tsv: BOM + GLUE header, rows ``label id id s1 s2``."""
    rng = random.Random(seed)
    task_dir = root / "MRPC"
    task_dir.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("dev", n_dev)):
        rows = ["\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String"]
        for i in range(n):
            label = i % 2
            s1 = toy_sentence(rng, 1)
            s2 = toy_sentence(rng, label)
            rows.append(f"{label}\t{1000 + i}\t{2000 + i}\t{s1}\t{s2}")
        (task_dir / f"{split}.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def write_stsb_like(root: Path, n_train: int = 24, n_dev: int = 12, seed: int = 2) -> Path:
    """<root>/STS-B/{train,dev}.tsv: the 10-column GLUE layout with a float score in [0, 5]."""
    rng = random.Random(seed)
    task_dir = root / "STS-B"
    task_dir.mkdir(parents=True, exist_ok=True)
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"
    for split, n in (("train", n_train), ("dev", n_dev)):
        rows = [header]
        for i in range(n):
            same = i % 2
            s1 = toy_sentence(rng, 1)
            s2 = toy_sentence(rng, same)
            score = (4.0 if same else 1.0) + rng.random()
            rows.append(f"{i}\tmain-captions\tMSRvid\t2012test\t{i:04d}\tnone\tnone\t{s1}\t{s2}\t{score:.3f}")
        (task_dir / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    return root


def test_custom_csv_dataset_finetune_distill_evaluate(tmp_path):
    encoder = make_encoder(tmp_path)
    train = write_sentiment_csv(tmp_path / "train.csv", 32, seed=3)
    dev = write_sentiment_csv(tmp_path / "dev.csv", 8, seed=4)
    common = dict(
        task="custom",
        train_file=str(train),
        dev_file=str(dev),
        text_columns=["text"],
        max_steps=3,
        batch_size=8,
    )
    teacher = tmp_path / "teacher"
    mt = tinydistill.finetune(model=str(encoder), output=str(teacher), **common)
    assert {"accuracy", "f1"} <= set(mt["dev"])
    t_cfg = json.loads((teacher / "config.json").read_text())
    assert t_cfg["id2label"] == {"0": "neg", "1": "pos"}
    assert t_cfg["label2id"] == {"neg": 0, "pos": 1}

    student = tmp_path / "student"
    student_cfg = student_config_dir(tmp_path / "s", vocab_size(encoder))
    ms = tinydistill.distill(teacher=str(teacher), student=str(student_cfg), output=str(student), **common)
    assert {"accuracy", "f1"} <= set(ms["dev"])
    s_cfg = json.loads((student / "config.json").read_text())
    assert s_cfg["id2label"] == {"0": "neg", "1": "pos"}
    result = tinydistill.evaluate("custom", str(student), dev_file=str(dev), text_columns=["text"])
    assert result.metrics["dev"]["accuracy"] == pytest.approx(ms["dev"]["accuracy"])


def test_regression_task_finetune_and_distill(tmp_path):
    encoder = make_encoder(tmp_path)
    glue = write_stsb_like(tmp_path / "glue")
    teacher, student = tmp_path / "teacher", tmp_path / "student"
    mt = tinydistill.finetune(
        task="stsb",
        data_dir=str(glue),
        model=str(encoder),
        output=str(teacher),
        max_steps=3,
        batch_size=8,
        learning_rate=1e-3,
    )
    assert set(mt["dev"]) == {"pearson", "spearman"}
    t_cfg = json.loads((teacher / "config.json").read_text())
    assert t_cfg.get("problem_type") == "regression" and len(t_cfg["id2label"]) == 1
    ms = tinydistill.distill(
        task="STS-B",
        data_dir=str(glue),
        teacher=str(teacher),
        student=str(student_config_dir(tmp_path / "s", vocab_size(encoder))),
        output=str(student),
        max_steps=2,
        batch_size=8,
    )
    assert set(ms["dev"]) == {"pearson", "spearman"}
    assert all(-1.0 <= v <= 1.0 for v in ms["dev"].values())
    assert set(ms["stages"]) == {"intermediate", "prediction"}
    result = tinydistill.evaluate("sts-b", str(student), data_dir=str(glue))
    assert set(result.metrics["dev"]) == {"pearson", "spearman"}


# --------------------------------------------------------------------------- failures keep what was written


def test_nan_loss_raises_and_keeps_earlier_files(tmp_path):
    """A run that blows up never touches the finished run in --output; its partial dir keeps what it wrote."""
    encoder = make_encoder(tmp_path)
    glue = write_sst2_like(tmp_path / "glue", n_train=32, n_dev=8)
    out = tmp_path / "run"
    common = dict(task="sst2", data_dir=str(glue), model=str(encoder), output=str(out), batch_size=4)
    tinydistill.finetune(max_steps=2, **common)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(TinyDistillError, match=r"loss is (nan|inf)"):
        # eval_every=1 saves a best model at step 1, before the loss blows up
        tinydistill.finetune(
            max_steps=30, learning_rate=1e6, eval_every=1, logging_steps=1, overwrite=True, **common
        )
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # byte-identical
    partial = tmp_path / ".run.partial"
    assert read_yaml(partial / "config.yaml")["learning_rate"] == 1e6
    assert (partial / "model.safetensors").is_file() and not (partial / "metrics.json").exists()
    assert not (partial / ".saving").exists()


def test_nan_loss_during_distillation_raises(trained, tmp_path, monkeypatch):
    from tinydistill.training import terms

    def nan_hidden(s, t, ctx):
        return s.hidden[-1].sum() * float("nan")

    monkeypatch.setitem(terms.LOSS_TERMS, "hidden", nan_hidden)
    out = tmp_path / "student"
    with pytest.raises(TinyDistillError, match=r"intermediate: loss is nan at step 1"):
        tinydistill.distill(
            task="sst2",
            data_dir=str(trained.glue),
            teacher=str(trained.teacher),
            student=str(trained.student_cfg),
            output=str(out),
            max_steps=2,
            **RECIPE,
        )
    assert not out.exists()  # nothing finished: --output is not created
    assert (tmp_path / ".student.partial" / "config.yaml").is_file()


def test_in_training_evaluation_sees_every_dev_example(tmp_path):
    """Regression: dev metrics logged during training must equal a standalone evaluation.

    With 40 train rows at batch 16 the training loader has a remainder of 8; evaluation used to go
    through ``gather_for_metrics``, which trimmed every dev batch to that remainder.
    """
    encoder = make_encoder(tmp_path)
    glue = write_sst2_like(tmp_path / "glue", n_train=40, n_dev=33, seed=3)
    out = tmp_path / "run"
    metrics = tinydistill.finetune(
        task="sst2",
        data_dir=str(glue),
        model=str(encoder),
        output=str(out),
        epochs=1,
        batch_size=16,
        eval_batch_size=16,
        learning_rate=1e-3,
    )
    logged = metrics["evals"][-1]["accuracy"]
    assert round(logged * 33) == pytest.approx(logged * 33, abs=1e-9)  # a fraction of all 33 rows
    result = tinydistill.evaluate("sst2", str(out), data_dir=str(glue))
    assert result.metrics["dev"]["accuracy"] == pytest.approx(logged)
