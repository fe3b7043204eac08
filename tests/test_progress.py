"""Progress that suits where it goes: a bar on a terminal, a few plain lines in a log."""

from __future__ import annotations

import io
import re

from conftest import write_sst2_like
from typer.testing import CliRunner

from tinydistill import progress as P
from tinydistill.cli import app

LINE = re.compile(r"^(?P<desc>[\w/ =-]+): (?P<pct>\d+)% (?P<n>\d+)/(?P<total>\d+) \w+")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fake_clock_and_stderr(monkeypatch) -> tuple[Clock, io.StringIO]:
    """A clock the test moves by hand, and stderr captured as a non-terminal stream."""
    clock = Clock()
    monkeypatch.setattr(P.time, "monotonic", clock)
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    return clock, err


def test_plain_lines_every_tenth_or_30_s(monkeypatch):
    clock, err = fake_clock_and_stderr(monkeypatch)
    bar = P.progress_bar(1000, "distill/prediction", min_gap_s=0)
    assert isinstance(bar, P.LineProgress)  # not a terminal
    for step in range(1000):
        clock.now += 0.5  # 500 s in all: ten tenths, and a line every 30 s between them
        if step % 100 == 0:
            bar.set_postfix(loss=f"{1 / (step + 1):.4f}", lr="2.00e-04")
        bar.update(1)
    bar.close()
    lines = err.getvalue().splitlines()
    assert "\r" not in err.getvalue()
    assert 10 <= len(lines) <= 10 + 500 // 30 + 1, lines
    first = LINE.match(lines[0])
    assert first and first["desc"] == "distill/prediction" and first["total"] == "1000"
    assert lines[0].endswith("s/step, ETA " + lines[0].rsplit("ETA ", 1)[1])
    assert "loss " in lines[0] and "lr 2.00e-04" in lines[0] and "0.5 s/step" in lines[0]
    assert lines[-1].startswith("distill/prediction: 100% 1000/1000 steps") and "took 8m20s" in lines[-1]


def test_a_slow_loop_gets_a_line_every_30_s_and_no_tenth_right_after_one(monkeypatch):
    clock, err = fake_clock_and_stderr(monkeypatch)
    bar = P.progress_bar(63, "finetune", min_gap_s=0)
    for _ in range(63):
        clock.now += 5.4  # 340 s in all
        bar.update(1)
    bar.close()
    steps = [int(LINE.match(line)["n"]) for line in err.getvalue().splitlines()]
    assert steps[-1] == 63 and 10 <= len(steps) <= 340 // 30 + 10
    assert all(b - a >= 2 for a, b in zip(steps, steps[1:], strict=False)), steps  # never 5 s apart


def test_short_loops_stay_quiet_in_a_log(monkeypatch):
    """An evaluation of a few seconds writes nothing to a log (its result line says enough)."""
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    assert list(P.progress(range(50), 50, "evaluate dev")) == list(range(50))
    assert err.getvalue() == ""


def test_a_non_terminal_finetune_writes_a_bounded_number_of_lines(tmp_path, tiny_encoder):
    """~10 plain lines per training stage in a log, not a frame per step."""
    glue = write_sst2_like(tmp_path / "glue", n_train=96, n_dev=16)
    args = ["finetune", "--task", "sst2", "--data-dir", glue, "--model", tiny_encoder]
    args += ["--output", tmp_path / "run", "--epochs", "12", "--batch-size", "4", "--logging-steps", "10"]
    result = CliRunner().invoke(app, [str(a) for a in args])  # stderr is not a terminal here
    assert result.exit_code == 0, result.stderr
    assert "\r" not in result.stderr
    lines = [m for m in map(LINE.match, result.stderr.splitlines()) if m]
    steps = 96 // 4 * 12
    assert {m["desc"] for m in lines} == {"finetune"} and all(m["total"] == str(steps) for m in lines)
    assert 5 <= len(lines) <= 12, result.stderr
    assert lines[-1]["pct"] == "100" and "loss " in lines[-1].string and "lr " in lines[-1].string
