"""Two cooperating CPU processes (gloo) under ``torchrun`` give the one-process run.

Models here have no dropout and train in fp32 (``--mixed-precision no``), so one and two processes
see the same numbers up to float summation order: the same global batches (each process takes half
of every batch), one scheduler step per optimizer step, gradients averaged by DDP. Only the main
process writes and prints.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import tiny_bert_config, without_row_counts, write_sst2_like, write_vocab
from safetensors.torch import load_file
from transformers import BertForSequenceClassification, BertTokenizerFast

import tinydistill

TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent))
pytestmark = pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed beside this python")
NO_DROPOUT = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ddp")
    tok = BertTokenizerFast(vocab=str(write_vocab(root / "vocab.txt")), do_lower_case=True)
    glue = write_sst2_like(root / "glue", n_train=64, n_dev=16)
    torch.manual_seed(0)
    encoder = root / "encoder"
    BertForSequenceClassification(
        tiny_bert_config(len(tok), layers=2, hidden=32, **NO_DROPOUT)
    ).save_pretrained(encoder)
    tok.save_pretrained(encoder)
    shape = root / "shape"
    shape.mkdir()
    shape_cfg = tiny_bert_config(len(tok), layers=1, hidden=16, **NO_DROPOUT).to_dict()
    (shape / "config.json").write_text(json.dumps(shape_cfg))
    text = root / "text.txt"
    text.write_text(
        "the movie was good and the plot was fine. the acting was bad.\n\nthe film was very nice.\n" * 40
    )
    tinydistill.prepare_corpus(text, str(encoder), root / "corpus", max_seq_length=24)
    return {"root": root, "glue": glue, "encoder": encoder, "shape": shape, "corpus": root / "corpus"}


def launch(n: int, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCELERATE_")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [TORCHRUN, "--nproc_per_node", str(n), "-m", "tinydistill", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def max_diff(a: Path, b: Path) -> float:
    x, y = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert x.keys() == y.keys()
    return max((x[k] - y[k]).abs().max().item() for k in x)


def one_and_two(world, name: str, *args: str) -> tuple[dict, dict]:
    runs = {}
    for n in (1, 2):
        out = world["root"] / f"{name}-{n}"
        result = launch(n, *args, "--output", str(out))
        lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
        assert len(lines) == 1, result.stdout  # one process prints
        runs[n] = json.loads((out / "metrics.json").read_text())
        assert not (out.parent / f".{out.name}.partial").exists()
    return runs[1], runs[2]


def flags(**options: object) -> list[str]:
    """``flags(max_steps=4)`` -> ``["--max-steps", "4"]``."""
    return [item for key, value in options.items() for item in (f"--{key.replace('_', '-')}", str(value))]


def task_run(world, command: str, **options: object) -> list[str]:
    """A ``finetune`` / ``distill`` command line on the toy task, batch 16, lr 2e-3, logged every step."""
    common = dict(task="sst2", data_dir=world["glue"], batch_size=16, learning_rate="2e-3", logging_steps=1)
    common["mixed_precision"] = "no"  # fp32: the comparison is about processes, not bf16 rounding
    return [command, *flags(**common, **options)]


def test_finetune_two_processes_equal_one(world) -> None:
    args = task_run(world, "finetune", model=world["encoder"], max_steps=6)
    one, two = one_and_two(world, "finetune", *args)
    assert one["world_size"] == 1 and two["world_size"] == 2 and two["global_batch_size"] == 16
    assert one["steps"] == two["steps"] == 6
    assert [h["loss"] for h in one["history"]] == pytest.approx([h["loss"] for h in two["history"]], abs=1e-5)
    assert one["dev"] == two["dev"]  # every dev row counted once
    assert max_diff(world["root"] / "finetune-1", world["root"] / "finetune-2") < 1e-6  # 7e-8 measured
    cfg = (world["root"] / "finetune-2" / "config.yaml").read_text()
    assert "grad_accum: 1" in cfg


def test_tinybert_two_processes_equal_one(world) -> None:
    teacher = world["root"] / "finetune-1"
    if not teacher.exists():
        pytest.skip("needs the finetune run of the previous test")
    args = task_run(world, "distill", teacher=teacher, student=world["shape"], max_steps=4)
    one, two = one_and_two(world, "tinybert", *args)
    for stage in ("intermediate", "prediction"):
        assert one["stages"][stage]["steps"] == two["stages"][stage]["steps"] == 4
    assert max_diff(world["root"] / "tinybert-1", world["root"] / "tinybert-2") < 1e-6  # 1e-8 measured
    assert two["world_size"] == 2


@pytest.mark.parametrize(("recipe", "tolerance"), [("lrcbert4", 1e-6), ("crd", 1e-4)])
def test_contrastive_recipes_two_processes_equal_one(world, recipe: str, tolerance: float) -> None:
    """In-batch negatives come from the global batch and the memory banks get every process's rows
    (gathered; CRD's trainable features with their gradients), so 2 processes = 1 process.
    Measured: LRC-BERT 3e-8, CRD 4e-5 (Adam turns float-order noise in near-zero gradients into that)."""
    teacher = world["root"] / "finetune-1"
    if not teacher.exists():
        pytest.skip("needs the finetune run")
    args = task_run(world, "distill", recipe=recipe, teacher=teacher, student=world["shape"], max_steps=4)
    one, two = one_and_two(world, recipe, *args)
    stages = list(one["stages"])  # lrcbert4: intermediate, prediction; crd: distill
    assert stages == list(two["stages"]) and two["world_size"] == 2
    for stage in stages:
        assert one["stages"][stage]["steps"] == two["stages"][stage]["steps"] == 4
        losses = [[h["loss"] for h in run["stages"][stage]["history"]] for run in (one, two)]
        assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    assert max_diff(world["root"] / f"{recipe}-1", world["root"] / f"{recipe}-2") < tolerance


def test_general_two_processes_close_to_one(world) -> None:
    args = [
        "general",
        *flags(
            teacher=world["encoder"],
            student=world["shape"],
            corpus=world["corpus"],
            max_steps=5,
            batch_size=8,
            teacher_precision="fp32",
            save_every=2,
            mixed_precision="no",
        ),
    ]
    runs = {}
    for n in (1, 2):
        out = world["root"] / f"general-{n}"
        launch(n, *args, "--output", str(out))
        runs[n] = json.loads((out / "metrics.json").read_text())
    assert runs[1]["steps"] == runs[2]["steps"] == 5 and runs[2]["world_size"] == 2
    # the losses are means over each process's real tokens, so rows of unequal length weigh a little
    # differently than in one process: 2e-4 measured after 5 steps of lr 1e-4
    assert max_diff(world["root"] / "general-1", world["root"] / "general-2") < 1e-3
    ckpts = sorted(p.name for p in (world["root"] / "general-2" / "checkpoints").iterdir())
    assert ckpts == ["step-4", "step-5"]
    assert sorted(p.name for p in (world["root"] / "general-2" / "checkpoints" / "step-5").iterdir()) == [
        "rng-0.pt",
        "rng-1.pt",
        "state.pt",
        "trainer_state.json",
    ]


def test_world_size_mismatch_is_a_clear_error(world, monkeypatch) -> None:
    from typer.testing import CliRunner

    from tinydistill.cli import app

    monkeypatch.setenv("WORLD_SIZE", "2")  # as if launched for 2 processes, without a rendezvous
    result = CliRunner().invoke(
        app,
        [
            "finetune",
            "--task",
            "sst2",
            "--data-dir",
            str(world["glue"]),
            "--model",
            str(world["encoder"]),
            "--output",
            str(world["root"] / "mismatch"),
            "--max-steps",
            "1",
        ],
    )
    assert result.exit_code == 2
    # "cannot start the processes" (no rendezvous) or "the launcher started 2 processes but the accelerator
    # sees 1" (an accelerator already set up in this process): both say how to launch
    error = without_row_counts(result.stderr)
    assert error.startswith("error: ") and error.count("\n") == 1
    assert "torchrun --nproc_per_node N -m tinydistill" in result.stderr
    # the failed start left nothing behind: a plain run in the same process works
    monkeypatch.delenv("WORLD_SIZE")
    args = ["finetune", "--task", "sst2", "--data-dir", str(world["glue"]), "--model", str(world["encoder"])]
    result = CliRunner().invoke(app, [*args, "--output", str(world["root"] / "after"), "--max-steps", "1"])
    assert result.exit_code == 0, result.output
