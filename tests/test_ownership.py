"""No run destroys what it did not write: ``--overwrite`` replaces only tinydistill's own folders,
places no run may take are refused with one line, and one output has one writer at a time."""

from __future__ import annotations

import json
import os
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
from tinydistill.errors import TinyDistillError
from tinydistill.ownership import MARKER


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> dict[str, Path]:
    """A tiny encoder with a head, GLUE-style rows, a text file, a corpus and one finished run."""
    root = tmp_path_factory.mktemp("own")
    tok = BertTokenizerFast(vocab=str(write_vocab(root / "vocab.txt")), do_lower_case=True)
    glue = write_sst2_like(root / "glue", n_train=32, n_dev=8)
    torch.manual_seed(0)
    encoder = root / "encoder"
    BertForSequenceClassification(tiny_bert_config(len(tok), layers=1, hidden=16)).save_pretrained(encoder)
    tok.save_pretrained(encoder)
    text = root / "text.txt"
    text.write_text("the movie was good and the plot was fine.\n\nthe film was very nice and bad.\n" * 20)
    finished = root / "finished"
    common = {"task": "sst2", "data_dir": str(glue), "model": str(encoder)}
    tinydistill.finetune(**common, output=str(finished), max_steps=2)
    tinydistill.prepare_corpus(text, str(encoder), root / "corpus", max_seq_length=24)
    return {"root": root, "glue": glue, "encoder": encoder, "text": text, "finished": finished}


def snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def foreign(path: Path) -> dict[str, bytes]:
    """A folder of the user's own files (what ``--overwrite`` once deleted); its snapshot."""
    (path / "chapters").mkdir(parents=True)
    (path / "thesis.txt").write_text("three years of work\n")
    (path / "chapters" / "one.md").write_bytes(os.urandom(64))
    return snapshot(path)


def one_line_error(result, *fragments: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.exception)
    line = without_row_counts(result.stderr)
    assert line.startswith("error: ") and line.count("\n") == 1, line
    for fragment in fragments:
        assert fragment in line, line
    return line


def left_beside(path: Path) -> list[str]:
    """What a refused run left next to ``path``: a partial dir, an old dir or a lock file."""
    return sorted(p.name for p in path.parent.glob(f".{path.name}.*"))


def finetune_args(site, output: Path | str, *extra: str) -> list[str]:
    return [
        "finetune", "--task", "sst2", "--data-dir", str(site["glue"]), "--model", str(site["encoder"]),
        "--output", str(output), "--max-steps", "2", *extra,
    ]  # fmt: skip


# ----------------------------------------------------------------------------- ownership


@pytest.mark.parametrize("flags", [["--overwrite"], []], ids=["overwrite", "plain"])
def test_a_folder_tinydistill_did_not_write_is_never_replaced(site, flags) -> None:
    precious = site["root"] / f"precious-{len(flags)}"
    before = foreign(precious)
    line = one_line_error(
        CliRunner().invoke(app, finetune_args(site, precious, *flags)), "did not write", str(precious)
    )
    assert "--overwrite" not in line  # the error no longer suggests the flag that deleted it
    assert snapshot(precious) == before
    assert left_beside(precious) == []


def test_the_python_api_refuses_it_too(site) -> None:
    precious = site["root"] / "precious-api"
    before = foreign(precious)
    with pytest.raises(TinyDistillError, match="did not write"):
        tinydistill.finetune(
            task="sst2", data_dir=str(site["glue"]), model=str(site["encoder"]), output=str(precious),
            max_steps=1, overwrite=True,
        )  # fmt: skip
    assert snapshot(precious) == before


def places(site, proj: Path) -> dict[str, str]:
    """``--output`` values no run may take, run from ``proj``."""
    return {
        "dot": ".",
        "dotdot": "..",
        "tilde": "~",
        "home": str(Path.home()),
        "root": "/",
        "above the cwd": str(proj.parent),
        "above an input": str(site["glue"].parent),
        "an input": str(site["encoder"]),
        "above tinydistill": str(Path(tinydistill.__file__).resolve().parents[1]),
        "a file": str(site["text"]),
    }


PLACES = ["dot", "dotdot", "tilde", "home", "root", "above the cwd", "above an input", "an input",
          "above tinydistill", "a file"]  # fmt: skip


@pytest.mark.parametrize("place", PLACES)
def test_places_no_run_may_take(site, tmp_path, monkeypatch, place) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "notes.txt").write_text("mine\n")
    monkeypatch.chdir(proj)
    output = places(site, proj)[place]
    watched = {p: snapshot(p) for p in (proj, site["glue"], site["encoder"])}
    line = one_line_error(CliRunner().invoke(app, finetune_args(site, output, "--overwrite")))
    assert "--overwrite" not in line
    assert {p: snapshot(p) for p in watched} == watched
    assert sorted(p.name for p in proj.iterdir()) == ["notes.txt"]  # no ..partial, no lock
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proj"]


def test_an_empty_folder_can_be_used_and_every_run_is_marked(site, tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(app, finetune_args(site, empty))
    assert result.exit_code == 0, result.stderr
    marker = json.loads((empty / MARKER).read_text())
    assert marker["made_by"] == "tinydistill finetune" and marker["version"] == tinydistill.__version__
    assert (site["root"] / "corpus" / MARKER).is_file() and (site["finished"] / MARKER).is_file()
    assert left_beside(empty) == []


def test_runs_written_before_the_marker_stay_usable(site, tmp_path) -> None:
    old = tmp_path / "old"
    result = CliRunner().invoke(app, finetune_args(site, old))
    assert result.exit_code == 0, result.stderr
    (old / MARKER).unlink()  # as an older version left it
    kept = CliRunner().invoke(app, finetune_args(site, old, "--resume"))
    assert kept.exit_code == 0, kept.stderr
    assert not (old / MARKER).exists()
    one_line_error(CliRunner().invoke(app, finetune_args(site, old)), "holds a finished run: --overwrite")
    replaced = CliRunner().invoke(app, finetune_args(site, old, "--overwrite", "--learning-rate", "1e-3"))
    assert replaced.exit_code == 0, replaced.stderr
    assert (old / MARKER).is_file() and "learning_rate: 0.001" in (old / "config.yaml").read_text()


def test_a_partial_dir_is_emptied_only_when_tinydistill_made_it(site, tmp_path) -> None:
    mine = tmp_path / ".x.partial"  # a user's folder that happens to have the name
    before = foreign(mine)
    one_line_error(CliRunner().invoke(app, finetune_args(site, tmp_path / "x")), str(mine), "did not write")
    assert snapshot(mine) == before and not (tmp_path / "x").exists()
    old = tmp_path / ".y.partial"  # an unfinished run of an older version (no marker)
    (old / "logs").mkdir(parents=True)
    (old / "config.yaml").write_text("task: sst2\n")
    result = CliRunner().invoke(app, finetune_args(site, tmp_path / "y"))
    assert result.exit_code == 0, result.stderr
    assert not old.exists() and (tmp_path / "y" / MARKER).is_file()


# ----------------------------------------------------------------------------- every command


def command_args(site, name: str, out: Path) -> list[str]:
    """``tinydistill NAME`` writing to ``out`` (``--overwrite`` where the command has it)."""
    glue, enc, fin, text = (str(site[k]) for k in ("glue", "encoder", "finished", "text"))
    data = ["--task", "sst2", "--data-dir", glue]
    return {
        "finetune": ["finetune", *data, "--model", enc, "--output", out, "--overwrite"],
        "distill": ["distill", *data, "--teacher", fin, "--student", enc, "--output", out, "--overwrite"],
        "general": ["general", "--teacher", enc, "--student", enc, "--corpus", str(site["root"] / "corpus"),
                    "--output", out, "--max-steps", "1"],
        "corpus": ["corpus", "--input", text, "--tokenizer", enc, "--output", out, "--overwrite"],
        "mlm-head": ["mlm-head", "--encoder", enc, "--corpus", text, "--output", out, "--max-steps", "1"],
        "prune": ["prune", "--teacher", fin, *data, "--shape", "tinybert-4l-312", "--output", out],
        "trim-vocab": ["trim-vocab", "--model", fin, *data, "--keep", "5", "--output", out],
        "export": ["export", "--model", fin, "--output", out],
        "report": ["report", fin, "--output", out],
        "pipeline": ["pipeline", *data, "--teacher", enc, "--output", out, "--overwrite"],
        # file outputs: a folder where the file would go is refused, never emptied
        "augment": ["augment", *data, "--mlm", enc, "--output", out],
        "predict": ["predict", "--model", fin, "--input", text, "--output", out],
        "evaluate --json": ["evaluate", *data, "--model", fin, "--json", out],
        "bench --json": ["bench", fin, "--json", out],
    }[name]  # fmt: skip


WRITERS = ["finetune", "distill", "general", "corpus", "mlm-head", "prune", "trim-vocab", "export", "report",
           "pipeline", "augment", "predict", "evaluate --json", "bench --json"]  # fmt: skip


@pytest.mark.parametrize("name", WRITERS)
def test_every_writing_command_refuses_a_foreign_folder(site, tmp_path, name) -> None:
    out = tmp_path / ("mine.tsv" if name == "augment" else "mine")
    before = foreign(out)
    args = [str(a) for a in command_args(site, name, out)]
    one_line_error(CliRunner().invoke(app, args), str(out))
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


@pytest.mark.parametrize("name", ["predict", "augment"])
def test_a_file_output_never_replaces_an_input(site, tmp_path, name) -> None:
    source = tmp_path / "rows.tsv"
    source.write_text("sentence\tlabel\nthe film was good\t1\nthe plot was bad\t0\n")
    before = source.read_bytes()
    if name == "predict":
        args = ["predict", "--model", str(site["finished"]), "--input", str(source), "--output", str(source)]
    else:
        args = ["augment", "--task", "sst2", "--train-file", str(source), "--mlm", str(site["encoder"]),
                "--output", str(source)]  # fmt: skip
    one_line_error(CliRunner().invoke(app, args), "input")
    assert source.read_bytes() == before


# ----------------------------------------------------------------------------- one writer at a time

RACE = ["--epochs", "1000", "--max-steps", "40", "--batch-size", "8", "--learning-rate", "1e-3"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tinydistill", *args], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def wait_for_lock(out: Path, proc: subprocess.Popen) -> dict:
    """The holder info of ``.NAME.lock`` once ``proc`` has taken it."""
    lock = out.parent / f".{out.name}.lock"
    deadline = time.time() + 120
    while time.time() < deadline:
        if lock.is_file() and lock.read_text():
            return json.loads(lock.read_text())
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.02)
    pytest.fail("the run never took its lock")


@pytest.fixture(scope="module")
def solo(site) -> Path:
    """The race's run on its own: what the one run that goes ahead must equal."""
    out = site["root"] / "solo"
    result = CliRunner().invoke(app, finetune_args(site, out, *RACE))
    assert result.exit_code == 0, result.stderr
    return out


def same_run(a: Path, b: Path) -> None:
    x, y = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
    ma, mb = (json.loads((p / "metrics.json").read_text()) for p in (a, b))
    assert (ma["dev"], ma["history"], ma["steps"]) == (mb["dev"], mb["history"], mb["steps"])


def test_a_second_run_on_a_busy_output_refuses_at_once(site, solo, tmp_path) -> None:
    out = tmp_path / "same"
    first = start(finetune_args(site, out, *RACE))
    try:
        holder = wait_for_lock(out, first)
        began = time.time()
        other = CliRunner().invoke(app, finetune_args(site, out, "--max-steps", "3", "--learning-rate", "5"))
        assert time.time() - began < 10
        one_line_error(other, f"{out} is in use by another run", f"pid {first.pid}")
        assert holder["pid"] == first.pid and holder["command"] == "finetune"
        assert first.wait(timeout=300) == 0, first.stderr.read().decode()[-2000:]
    finally:
        first.kill()
    assert "max_steps: 40" in (out / "config.yaml").read_text()  # the first run's own settings
    same_run(out, solo)
    assert left_beside(out) == []


def test_two_runs_started_together_one_runs(site, solo, tmp_path) -> None:
    out = tmp_path / "together"
    procs = [start(finetune_args(site, out, *RACE)) for _ in range(2)]
    try:
        codes = [p.wait(timeout=300) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert sorted(codes) == [0, 2], codes
    loser = procs[codes.index(2)]
    line = without_row_counts(loser.stderr.read().decode())
    assert line.startswith("error: ") and line.count("\n") == 1, line
    assert "is in use by another run" in line and f"pid {procs[codes.index(0)].pid}" in line
    same_run(out, solo)


def test_a_lock_left_by_a_killed_run_does_not_block(site, solo, tmp_path) -> None:
    out = tmp_path / "killed"
    proc = start(finetune_args(site, out, *RACE))
    wait_for_lock(out, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out.parent / f".{out.name}.lock").is_file()  # the file stays; its lock went with the process
    rerun = CliRunner().invoke(app, finetune_args(site, out, *RACE, "--overwrite"))
    assert rerun.exit_code == 0, rerun.stderr
    same_run(out, solo)
    assert left_beside(out) == []


def test_a_file_system_without_locks_runs_unlocked_with_a_warning(site, tmp_path, monkeypatch) -> None:
    import errno

    from tinydistill import ownership

    def no_locks(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(ownership.fcntl, "flock", no_locks)
    out = tmp_path / "nfs"
    result = CliRunner().invoke(app, finetune_args(site, out))
    assert result.exit_code == 0, result.stderr
    assert "warning: cannot lock" in result.stderr and (out / "metrics.json").is_file()
    assert left_beside(out) == []
