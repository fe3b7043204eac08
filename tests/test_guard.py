"""Never a useless model silently: the trivial baseline beside every score, the degenerate verdict,
the stall warning of the loop, and run records that say what each stage really used."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from accelerate import Accelerator
from conftest import tiny_bert_config, write_vocab
from torch import nn
from transformers import BertForSequenceClassification, BertTokenizerFast
from typer.testing import CliRunner

import tinydistill
from tinydistill.cli import app
from tinydistill.data import Batches
from tinydistill.evaluation import Evaluation, constant_predictions, trivial_baseline
from tinydistill.tasks import get_task
from tinydistill.training.loop import train

SST2, STSB, COLA, MRPC = (get_task(t) for t in ("sst2", "stsb", "cola", "mrpc"))


# --------------------------------------------------------------------------- baselines and verdicts


def test_majority_baseline_scores_the_most_frequent_label():
    labels = np.array([1, 1, 1, 0])
    assert trivial_baseline(SST2, labels) == {"accuracy": 0.75}
    # MRPC: always "paraphrase" -> F1 of the positive class 2*0.75/(1+0.75)
    assert trivial_baseline(MRPC, labels) == pytest.approx({"accuracy": 0.75, "f1": 6 / 7})
    assert trivial_baseline(COLA, labels) == {"mcc": 0.0}
    assert trivial_baseline(STSB, np.array([0.5, 2.0, 4.0])) == {"pearson": 0.0, "spearman": 0.0}


def test_constant_predictions():
    assert constant_predictions(SST2, np.array([[2.0, 1.0], [3.0, 0.5], [0.9, 0.1]]))
    assert not constant_predictions(SST2, np.array([[2.0, 1.0], [0.0, 0.5]]))
    assert constant_predictions(STSB, np.full((4, 1), 2.5))
    assert not constant_predictions(STSB, np.array([[2.5], [2.6]]))


def verdict(spec, got, base, constant=False) -> Evaluation:
    return Evaluation(spec, {"dev": got}, {"dev": base}, {"dev": constant})


def test_degenerate_verdict():
    base = {"accuracy": 0.509}
    assert verdict(SST2, {"accuracy": 0.487}, base).degenerate  # below the majority class
    assert verdict(SST2, {"accuracy": 0.518}, base).degenerate  # within 1 point of it
    ok = verdict(SST2, {"accuracy": 0.70}, base)
    assert not ok.degenerate and ok.record() == {"majority_baseline": base, "degenerate": False}
    # a constant model is degenerate whatever its score
    const = verdict(SST2, {"accuracy": 0.70}, base, constant=True)
    assert "same class for every dev row" in const.reason
    # MRPC: F1 of a useful model may sit near the all-positive F1; accuracy above it is enough
    assert not verdict(MRPC, {"accuracy": 0.70, "f1": 0.8135}, {"accuracy": 0.684, "f1": 0.812}).degenerate
    stsb = verdict(STSB, {"pearson": 0.005, "spearman": 0.002}, {"pearson": 0.0, "spearman": 0.0})
    assert stsb.degenerate and stsb.record()["constant_baseline"] == {"pearson": 0.0, "spearman": 0.0}
    assert "majority" in ok.line() and "DEGENERATE" in const.line()


# --------------------------------------------------------------------------- the guard on real runs


def constant_model(root: Path) -> Path:
    """A BERT classifier whose head ignores its input: zero weights, bias favouring class 0."""
    tok = BertTokenizerFast(vocab=str(write_vocab(root / "vocab.txt")), do_lower_case=True)
    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_bert_config(len(tok)))
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([1.0, 0.0]))
    out = root / "constant"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_evaluate_flags_a_constant_model(tmp_path, glue_dir):
    model = constant_model(tmp_path)
    json_file = tmp_path / "dev.json"
    result = CliRunner().invoke(
        app,
        ["evaluate", "--task", "sst2", "--data-dir", str(glue_dir), "--model", str(model)]
        + ["--json", str(json_file)],
    )
    assert result.exit_code == 0, result.stderr
    record = json.loads(json_file.read_text())
    assert record["degenerate"] is True and record["majority_baseline"] == {"accuracy": 0.5}
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "degenerate" in warnings[0] and "same class" in warnings[0]


def test_learned_model_is_not_flagged(tmp_path, glue_dir, tiny_encoder, capsys):
    out = tmp_path / "teacher"
    metrics = tinydistill.finetune(
        task="sst2", data_dir=str(glue_dir), model=str(tiny_encoder), output=str(out),
        epochs=20, learning_rate=2e-3, batch_size=16, logging_steps=5,
    )  # fmt: skip
    assert metrics["dev"]["accuracy"] >= 0.9
    assert metrics["degenerate"] is False and metrics["majority_baseline"] == {"accuracy": 0.5}
    assert "warning:" not in capsys.readouterr().err
    assert json.loads((out / "metrics.json").read_text())["degenerate"] is False


# --------------------------------------------------------------------------- the loop's stall warning


def stall_run(step_loss, total_steps=40):
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    loader = Batches(8, 2, lambda rows, x=torch.randn(8, 2): {"x": x[torch.as_tensor(rows)]}, shuffle=False)
    return train(
        accelerator=Accelerator(cpu=True),
        model=model,
        batches=loader,
        step_loss=step_loss,
        total_steps=total_steps,
        lr=0.05,
        logging_steps=4,
        name="prediction",
    )


def test_loop_warns_when_the_loss_does_not_move(capsys):
    # ln 2 whatever the weights: the loss of a two-class model that learns nothing
    flat = stall_run(lambda m, b, step: (m(b["x"]).mean() * 0 + 0.6931, {}))
    err = capsys.readouterr().err
    assert flat.stalled
    assert "warning: prediction: the loss has not moved from its starting value" in err
    assert "after 25% of the steps (10/40)" in err


def test_loop_is_quiet_when_the_loss_moves(capsys):
    moving = stall_run(lambda m, b, step: ((m(b["x"]) - 3.0).pow(2).mean(), {}))
    assert not moving.stalled
    assert "warning:" not in capsys.readouterr().err


# --------------------------------------------------------------------------- honest run records


def test_config_records_what_each_stage_used(tmp_path, glue_dir, tiny_encoder, monkeypatch):
    used: list[float] = []
    real_adamw = torch.optim.AdamW

    def spy(groups, lr, **kw):
        used.append(lr)
        return real_adamw(groups, lr=lr, **kw)

    monkeypatch.setattr(torch.optim, "AdamW", spy)
    teacher = tmp_path / "teacher"
    tinydistill.finetune(
        task="sst2", data_dir=str(glue_dir), model=str(tiny_encoder), output=str(teacher),
        max_steps=2, batch_size=16,
    )  # fmt: skip
    used.clear()
    out = tmp_path / "student"
    metrics = tinydistill.distill(
        task="sst2", data_dir=str(glue_dir), teacher=str(teacher), student=str(tiny_encoder),
        output=str(out), batch_size=16, intermediate_epochs=1, prediction_epochs=0.5,
        intermediate_lr=3e-4,
    )  # fmt: skip
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    stages = {st["name"]: st for st in cfg["stages"]}
    assert [stages[n]["learning_rate"] for n in ("intermediate", "prediction")] == pytest.approx(used)
    assert used[0] == pytest.approx(3e-4)
    assert stages["intermediate"]["epochs"] == 1 and stages["prediction"]["epochs"] == 0.5
    # no run-wide value that no stage used
    assert cfg["learning_rate"] is None and cfg["epochs"] is None
    # 96 rows / 16 = 6 batches: 6 and 3 steps, recorded with the terms in metrics.json
    record = metrics["stages"]
    assert record["intermediate"]["steps"] == 6 and record["prediction"]["steps"] == 3
    assert record["intermediate"]["learning_rate"] == pytest.approx(3e-4)
    assert set(record["intermediate"]["phases"][0]["terms"]) == {"embedding", "hidden", "attention"}
    # the recorded config reruns the same method
    again = tinydistill.distill(config_file=str(out / "config.yaml"), output=str(tmp_path / "again"))
    assert {n: s["steps"] for n, s in again["stages"].items()} == {"intermediate": 6, "prediction": 3}


# --------------------------------------------------------------------------- the default learns


def test_default_learns_where_the_old_default_collapsed(tmp_path, glue_dir, tiny_encoder):
    """The toy task at the default learning rates and a 2 + 2 epoch budget (12 + 12 steps): the old
    default (random start) predicts one class; today's default (pruned from the teacher) learns."""
    teacher = tmp_path / "teacher"
    t = tinydistill.finetune(
        task="sst2", data_dir=str(glue_dir), model=str(tiny_encoder), output=str(teacher),
        epochs=20, learning_rate=2e-3, batch_size=16,
    )  # fmt: skip
    assert t["dev"]["accuracy"] >= 0.9
    shape = tmp_path / "shape"
    shape.mkdir()
    vocab = json.loads((tiny_encoder / "config.json").read_text())["vocab_size"]
    (shape / "config.json").write_text(json.dumps(tiny_bert_config(vocab, layers=1, hidden=16).to_dict()))
    common = dict(task="sst2", data_dir=str(glue_dir), teacher=str(teacher), student=str(shape))
    common.update(intermediate_epochs=2, prediction_epochs=2, batch_size=8)
    old = tinydistill.distill(output=str(tmp_path / "old"), start="random", **common)
    new = tinydistill.distill(output=str(tmp_path / "new"), **common)
    assert old["start"] == "random" and old["degenerate"] is True
    assert old["dev"]["accuracy"] <= old["majority_baseline"]["accuracy"] + 0.01
    assert new["start"] == "pruned" and new["degenerate"] is False
    assert new["dev"]["accuracy"] >= new["majority_baseline"]["accuracy"] + 0.15  # 0.69 measured (0.78 with
    # the DataLoader order used before the resumable batch order)


# --------------------------------------------------------------------------- the marks in tables


def test_report_and_pipeline_tables_mark_a_degenerate_run():
    from tinydistill.deploy.report import Run, table_rows
    from tinydistill.deploy.table import pipeline_table, report_table

    def run(name, kind, acc, degenerate):
        metrics = {"task": "SST-2", "dev": {"accuracy": acc}, "params": 10, "degenerate": degenerate}
        if kind == "distill":
            metrics["stages"] = {}
        return Run(Path(name), name, kind, "SST-2", metrics)

    teacher, student = run("t", "finetune", 0.8, False), run("s", "distill", 0.49, True)
    student.teacher = teacher
    table = report_table(table_rows([teacher, student]))
    assert "| s (DEGENERATE) |" in table and "| t |" in table
    rows = {
        "teacher": {"dev": {"dev": {"accuracy": 0.8}}, "params": 20, "size_mb": 1.0, "latency_ms": 2.0},
        "student": {"dev": {"dev": {"accuracy": 0.49}}, "params": 10, "size_mb": 0.5, "latency_ms": 1.0,
                    "degenerate": True},
    }  # fmt: skip
    text = pipeline_table("SST-2", rows)
    assert "| student (DEGENERATE) | 49.00 |" in text and "| teacher | 80.00 |" in text
