"""Faults: SIGKILL at a random step then ``--resume`` gives the uninterrupted run bit for bit, and a
finished run dir is never replaced without ``--overwrite``."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import tiny_bert_config, without_row_counts, write_sst2_like, write_vocab
from safetensors.torch import load_file
from transformers import BertForSequenceClassification, BertTokenizerFast
from typer.testing import CliRunner

import tinydistill
from tinydistill.cli import app
from tinydistill.training.checkpoint import checkpoint_dirs


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("resume")
    tok = BertTokenizerFast(vocab=str(write_vocab(root / "vocab.txt")), do_lower_case=True)
    glue = write_sst2_like(root / "glue", n_train=64, n_dev=16)
    torch.manual_seed(0)
    encoder = root / "encoder"  # with dropout: a resume must restore the RNG too
    BertForSequenceClassification(tiny_bert_config(len(tok), layers=2, hidden=32)).save_pretrained(encoder)
    tok.save_pretrained(encoder)
    shape = root / "shape"
    shape.mkdir()
    (shape / "config.json").write_text(json.dumps(tiny_bert_config(len(tok), layers=1, hidden=16).to_dict()))
    text = root / "text.txt"
    text.write_text(
        "the movie was good and the plot was fine. the acting was bad.\n\nthe film was very nice.\n" * 40
    )
    tinydistill.prepare_corpus(text, str(encoder), root / "corpus", max_seq_length=24)
    return {"root": root, "glue": glue, "encoder": encoder, "shape": shape, "corpus": root / "corpus"}


def flags(**options: object) -> list[str]:
    """``flags(max_steps=4)`` -> ``["--max-steps", "4"]``."""
    return [item for key, value in options.items() for item in (f"--{key.replace('_', '-')}", str(value))]


def same_weights(a: Path, b: Path) -> bool:
    x, y = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def kill_after(args: list[str], ckpt_root: Path, at_least: int) -> int:
    """Start ``tinydistill ARGS``, SIGKILL it once a checkpoint >= ``at_least`` exists; its step."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tinydistill", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            steps = [s for s, _ in checkpoint_dirs(ckpt_root)]
            if steps and steps[-1] >= at_least:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return steps[-1]
            if proc.poll() is not None:
                pytest.fail(f"finished before the kill: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
    pytest.fail("no checkpoint appeared")


def check_resume(args: list[str], out: Path, straight: Path, at_least: int, work_ckpts: Path) -> None:
    killed = kill_after([*args, "--output", str(out)], work_ckpts, at_least)
    assert not (out / "metrics.json").exists()
    runner = CliRunner()
    refused = runner.invoke(app, [*args, "--output", str(out)])
    assert refused.exit_code == 2 and "--resume to continue" in refused.stderr
    resumed = runner.invoke(app, [*args, "--output", str(out), "--resume"])
    assert resumed.exit_code == 0, resumed.stderr
    assert same_weights(out, straight), f"killed at checkpoint {killed}"
    a, b = json.loads((out / "metrics.json").read_text()), json.loads((straight / "metrics.json").read_text())
    return a, b


def test_finetune_kill_and_resume_is_exact(toy) -> None:
    args = [
        "finetune",
        *flags(
            task="sst2",
            data_dir=str(toy["glue"]),
            model=str(toy["encoder"]),
            max_steps="240",
            epochs="100",
            batch_size="8",
            learning_rate="1e-3",
            save_every="20",
            eval_every="40",
            logging_steps="10",
        ),
    ]
    straight = toy["root"] / "ft-straight"
    assert CliRunner().invoke(app, [*args, "--output", str(straight)]).exit_code == 0
    out = toy["root"] / "ft-killed"
    a, b = check_resume(
        args, out, straight, random.choice([40, 100]), toy["root"] / ".ft-killed.partial" / "checkpoints"
    )
    assert a["history"] == b["history"] and a["evals"] == b["evals"] and a["dev"] == b["dev"]
    assert not (out / "checkpoints").exists()  # dropped once the run is finished


@pytest.mark.parametrize("recipe", ["tinybert4", "lrcbert4"])
def test_distill_kill_and_resume_is_exact(toy, recipe: str) -> None:
    """TinyBERT: two stages; LRC-BERT: two phases in one run, memory banks, gradient perturbation."""
    teacher = toy["root"] / "ft-straight"
    if not teacher.exists():
        pytest.skip("needs the finetune run")
    args = [
        "distill",
        *flags(
            task="sst2",
            data_dir=str(toy["glue"]),
            teacher=str(teacher),
            student=str(toy["shape"]),
            max_steps="120",
            epochs="100",
            batch_size="8",
            save_every="20",
            logging_steps="10",
            recipe=recipe,
        ),
    ]
    straight = toy["root"] / f"{recipe}-straight"
    assert CliRunner().invoke(app, [*args, "--output", str(straight)]).exit_code == 0
    # checkpoints are numbered across stages: step-140 is step 20 of tinybert4's prediction stage
    a, b = check_resume(
        args,
        toy["root"] / f"{recipe}-killed",
        straight,
        random.choice([40, 100 if recipe == "lrcbert4" else 140]),
        toy["root"] / f".{recipe}-killed.partial" / "checkpoints",
    )
    assert a["stages"].keys() == b["stages"].keys()
    for stage in a["stages"]:
        assert a["stages"][stage]["history"] == b["stages"][stage]["history"]
    assert a["dev"] == b["dev"]


def test_general_kill_and_resume_is_exact(toy) -> None:
    args = [
        "general",
        *flags(
            teacher=str(toy["encoder"]),
            student=str(toy["shape"]),
            corpus=str(toy["corpus"]),
            max_steps="200",
            batch_size="8",
            save_every="20",
            teacher_precision="fp32",
        ),
    ]
    straight = toy["root"] / "g-straight"
    assert CliRunner().invoke(app, [*args, "--output", str(straight)]).exit_code == 0
    out = toy["root"] / "g-killed"
    killed = kill_after([*args, "--output", str(out)], out / "checkpoints", random.choice([40, 100]))
    resumed = CliRunner().invoke(app, [*args, "--output", str(out), "--resume"])
    assert resumed.exit_code == 0, resumed.stderr
    assert same_weights(out, straight), f"killed at checkpoint {killed}"
    a, b = json.loads((out / "metrics.json").read_text()), json.loads((straight / "metrics.json").read_text())
    assert a["losses"] == b["losses"]


def test_a_finished_run_is_never_replaced_without_overwrite(toy) -> None:
    finished = toy["root"] / "ft-straight"
    if not finished.exists():
        pytest.skip("needs the finetune run")
    before = {p.name: p.read_bytes() for p in finished.iterdir() if p.is_file()}
    args = [
        "finetune",
        *flags(
            task="sst2",
            data_dir=str(toy["glue"]),
            model=str(toy["encoder"]),
            output=str(finished),
            max_steps="2",
        ),
    ]
    again = CliRunner().invoke(app, args)
    error = without_row_counts(again.stderr)
    assert again.exit_code == 2 and error.count("\n") == 1
    assert error.startswith(f"error: {finished} holds a finished run: --overwrite to replace it")
    assert {p.name: p.read_bytes() for p in finished.iterdir() if p.is_file()} == before
    # --resume keeps a finished run made with the same settings; other settings are refused
    kept = CliRunner().invoke(app, [*args, "--resume"])
    assert kept.exit_code == 2 and "--resume with other settings than the run in" in kept.stderr
    assert "max_steps" in kept.stderr
    assert {p.name: p.read_bytes() for p in finished.iterdir() if p.is_file()} == before
    replaced = CliRunner().invoke(app, [*args, "--overwrite"])
    assert replaced.exit_code == 0
    assert json.loads((finished / "metrics.json").read_text())["steps"] == 2
    assert not (finished.parent / ".ft-straight.partial").exists()


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous(tmp_path, capsys) -> None:
    from tinydistill.training import checkpoint as ckpt

    root = tmp_path / "checkpoints"
    for step in (10, 20):
        tmp = ckpt.begin(root, step)
        ckpt.save_rng(tmp, 0)
        ckpt.commit(
            tmp, root / f"step-{step}", {"model": {"w": torch.full((2,), float(step))}}, {"step": step}, 2
        )
    assert ckpt.latest_readable(root) == root / "step-20"
    state = root / "step-20" / "state.pt"
    state.write_bytes(state.read_bytes()[:40])  # a copy cut short
    assert ckpt.latest_readable(root) == root / "step-10"
    assert "step-20 is unreadable" in capsys.readouterr().err
    tensors, meta = ckpt.load_checkpoint(root / "step-10")
    assert meta == {"step": 10} and torch.equal(tensors["model"]["w"], torch.full((2,), 10.0))
