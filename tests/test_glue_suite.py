"""The GLUE suite's bookkeeping: budgets per task, the commands of its cells and the headline line
of docs/results.md, on hand-made metrics (no training)."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import re
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def suite():
    spec = importlib.util.spec_from_file_location("glue_suite", ROOT / "benchmarks" / "glue_suite.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["glue_suite"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("glue_suite", None)


def test_step_floor_raises_epochs_on_small_train_sets_only(suite) -> None:
    tier = suite.Tier("t", 3.0, 3e-5, 2.0, 3.0, {"SST-2": 8000}, min_stage_steps=500)
    # RTE: 2,490 rows = 78 batches of 32 -> 7 epochs reach 500 steps; SST-2 (8,000 rows capped,
    # 250 batches) keeps the tier's 2 + 3.
    assert tier.student_epochs("RTE") == (7.0, 7.0)
    assert tier.student_epochs("MRPC") == (5.0, 5.0)  # 115 batches
    assert tier.student_epochs("SST-2") == (2.0, 3.0)
    assert suite.Tier("t", 3.0, 3e-5, 2.0, 3.0).student_epochs("RTE") == (2.0, 3.0)  # no floor
    longer = suite.Tier("t", 3.0, 3e-5, 2.0, 3.0, min_stage_steps=500, min_prediction_steps=1000)
    assert longer.student_epochs("RTE") == (7.0, 13.0) and longer.student_epochs("STS-B") == (3.0, 6.0)


def test_cell_commands_carry_the_budget(suite, tmp_path) -> None:
    args = suite.parse_args(["--tier", "cpu", "--data-dir", str(tmp_path), "--output", str(tmp_path)])
    tier = suite.TIERS["cpu"]
    teacher = suite.command(suite.Cell("MRPC", "teacher"), tier, args, tmp_path)
    assert teacher[0] == "finetune" and "--length-buckets" in teacher
    student = suite.command(suite.Cell("RTE", "student", "pruned", "tinybert4"), tier, args, tmp_path)
    epochs = tier.student_epochs("RTE")
    assert student[student.index("--intermediate-epochs") + 1] == str(epochs[0])
    assert student[student.index("--prediction-epochs") + 1] == str(epochs[1])
    assert student[student.index("--start") + 1] == "pruned"
    lrc = suite.command(suite.Cell("RTE", "student", "pruned", "lrcbert4"), tier, args, tmp_path)
    assert lrc[lrc.index("--intermediate-epochs") + 1] == str(epochs[0])  # COS-NCE alone
    assert lrc[lrc.index("--prediction-epochs") + 1] == str(epochs[1])  # + soft/hard CE, its own schedule
    assert lrc[lrc.index("--prediction-lr") + 1] == str(tier.prediction_lr) and "--epochs" not in lrc
    cut = suite.command(suite.Cell("RTE", "student", "minilm", "tinybert4"), tier, args, tmp_path)
    assert cut[cut.index("--student") + 1] == str(tmp_path / "RTE" / "minilm-cut") and "--start" not in cut
    step2 = suite.Cell("RTE", "student", "pruned", "tinybert4-prediction")
    alone = suite.command(step2, tier, args, tmp_path)
    assert alone[alone.index("--recipe") + 1] == "tinybert4"
    assert alone[alone.index("--stage") + 1] == "prediction"
    assert alone[alone.index("--prediction-epochs") + 1] == str(sum(epochs))
    assert alone[alone.index("--prediction-lr") + 1] == str(tier.prediction_lr)


def test_augmented_cells_train_as_many_steps_on_the_augmented_rows(suite, tmp_path, monkeypatch) -> None:
    args = suite.parse_args(
        ["--tier", "cpu", "--data-dir", str(tmp_path / "glue"), "--output", str(tmp_path)]
    )
    tier = suite.TIERS["cpu"]
    cells = suite.plan(tier, ["CoLA", "SST-2"], None, lrc=False)
    aug = [c for c in cells if c.aug]
    assert [(c.task, c.seed, c.aug, c.aug_epochs) for c in aug] == [
        *[("CoLA", s, 4, e) for e in (None, 3) for s in (42, 43, 44)],
        ("SST-2", 42, 4, 3),  # on every task, so that it can make the headline
        ("CoLA", 42, 4, 3),  # both steps on the augmented rows: the small tasks, one seed
    ]
    plain = suite.command(
        suite.Cell("CoLA", "student", "minilm6-trim", "tinybert4-prediction"), tier, args, tmp_path
    )
    cmd = suite.command(aug[0], tier, args, tmp_path)
    assert cmd[cmd.index("--recipe") + 1] == "tinybert4" and cmd[cmd.index("--stage") + 1] == "prediction"
    assert cmd[cmd.index("--train-file") + 1] == str(tmp_path / "CoLA" / "aug4.tsv")
    epochs = float(plain[plain.index("--prediction-epochs") + 1])
    assert int(cmd[cmd.index("--prediction-max-steps") + 1]) == 268 * epochs  # 8,551 rows = 268 batches
    assert aug[0].trimmed and aug[0].config == ("minilm6-trim", "tinybert4-prediction-aug4")
    # TinyBERT's schedule on the same rows: 3 epochs over them, no step cap
    longer = suite.command(aug[3], tier, args, tmp_path)
    assert aug[3].name == "CoLA/tinybert4-prediction-aug4-e3-minilm6-trim-s42"
    assert longer[longer.index("--train-file") + 1] == str(tmp_path / "CoLA" / "aug4.tsv")
    assert longer[longer.index("--prediction-epochs") + 1] == "3" and "--prediction-max-steps" not in longer
    assert suite.augmented(aug[3], tmp_path) == suite.augmented(aug[0], tmp_path)  # one file, shared
    # both steps on the same rows: step 1 for one epoch, then step 2's 3 epochs
    both = suite.command(aug[-1], tier, args, tmp_path)
    assert aug[-1].name == "CoLA/tinybert4-aug4-e3-minilm6-trim-s42" and "--stage" not in both
    assert both[both.index("--recipe") + 1] == "tinybert4"
    assert both[both.index("--train-file") + 1] == str(tmp_path / "CoLA" / "aug4.tsv")
    assert both[both.index("--intermediate-epochs") + 1] == "1"
    assert both[both.index("--prediction-epochs") + 1] == "3" and "--prediction-max-steps" not in both
    assert both[both.index("--start") + 1] == "pretrained"
    # SST-2's cap is applied when augmenting, not to the augmented rows
    sst2 = suite.Cell("SST-2", "student", "minilm6-trim", "tinybert4-prediction-aug4")
    assert "--max-train-samples" not in suite.command(sst2, tier, args, tmp_path)
    calls = []
    monkeypatch.setattr(suite, "tinydistill", lambda cmd, *a: calls.append(cmd) or 0)
    assert not suite.prepare_augmented(sst2, args, tmp_path, None, tier)  # augment wrote nothing: refused
    assert [c[0] for c in calls] == ["mlm-head", "augment"]
    augment = calls[1]
    assert augment[augment.index("--max-train-samples") + 1] == "8000"
    assert augment[augment.index("--output") + 1].endswith("aug4.partial.tsv")
    (tmp_path / "SST-2").mkdir()
    Path(augment[augment.index("--output") + 1]).write_text("rows\n")
    (tmp_path / "mlm-head").mkdir()
    (tmp_path / "mlm-head" / "mlm_head.json").write_text("{}")
    calls.clear()
    assert (
        suite.prepare_augmented(sst2, args, tmp_path, None, tier)
        and (tmp_path / "SST-2" / "aug4.tsv").is_file()
    )
    assert [c[0] for c in calls] == ["augment"]  # the head is made once; a partial file is made again


def _write(run: Path, metrics: dict) -> None:
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps(metrics))


def test_headline_is_the_mean_of_last_dev_scores_over_teachers(suite, tmp_path) -> None:
    out = tmp_path / "suite"
    teacher = {"params": 109_488_177, "train_seconds": 600}
    _write(out / "RTE" / "teacher", {**teacher, "dev": {"accuracy": 0.70}})
    _write(out / "MRPC" / "teacher", {**teacher, "dev": {"f1": 0.90, "accuracy": 0.85}})
    student = {"params": 14_352_898, "train_seconds": 120}

    def run(*scores: float, key: str, **extra) -> dict:
        evals = [{key: s} for s in scores]
        return {**student, "stages": {"prediction": {"evals": evals}}, "dev": evals[-1], **extra}

    # RTE: best 0.66, last 0.63 -> the last counts; MRPC: two seeds, 0.81 (at the majority) and 0.87.
    _write(out / "RTE" / "tinybert4-pruned-s42", run(0.60, 0.66, 0.63, key="accuracy"))
    (out / "RTE" / "tinybert4-pruned-s42" / "wall.json").write_text(json.dumps({"wall_seconds": 300}))
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    (ledger / "notes.json").write_text(json.dumps({"MRPC/teacher": "shared the CPU with another run"}))
    _write(out / "MRPC" / "tinybert4-pruned-s42", run(0.81, key="f1", degenerate=True))
    _write(out / "MRPC" / "tinybert4-pruned-s43", run(0.80, 0.87, key="f1"))
    args = suite.parse_args(["--tasks", "RTE,MRPC,CoLA", "--seeds", "2", "--output", str(tmp_path)])
    tier = suite.TIERS["cpu"]
    cells = suite.plan(tier, args.tasks, None, lrc=False)
    suite.sync(cells, tier, args, out, ledger)
    text = suite.report(cells, tier, args, ledger, {})
    headline = next(line for line in text.splitlines() if line.startswith("mean retention:"))
    retention = (63 / 70 + (81 + 87) / 2 / 90) / 2 * 100
    match = re.match(r"mean retention: ([0-9.]+)% at ([0-9.]+)x fewer parameters", headline)
    assert match and float(match[1]) == pytest.approx(retention, abs=0.05)
    assert float(match[2]) == pytest.approx(109_488_177 / 14_352_898, abs=0.05)
    assert "2 of 3 tasks (RTE, MRPC)" in headline
    assert "- `MRPC/teacher`: shared the CPU with another run" in text
    mrpc = next(line for line in text.splitlines() if line.startswith("| MRPC | tinybert4"))
    assert "84.00 ± 4.24 (1 of 2 not beating the majority class by 1 point)" in mrpc
    rte = next(line for line in text.splitlines() if line.startswith("| RTE | tinybert4"))
    assert "| 63.00 | 66.00 | 90.0% |" in rte and rte.endswith("| 2 / 5 |")  # train / cell minutes


def test_a_trimmed_cell_is_scored_and_counted_as_trimmed_and_can_make_the_headline(suite, tmp_path) -> None:
    """minilm6-trim: all-MiniLM-L6-v2 whole, distilled, then trimmed to teacher params / 7.5 and evaluated;
    the record is the trimmed model's (the whole-vocabulary run kept beside), and the headline is the one
    configuration with the highest mean retention over the most tasks at >= 7.5x."""
    out = tmp_path / "suite"
    args = suite.parse_args(["--tasks", "RTE", "--output", str(tmp_path), "--data-dir", str(tmp_path)])
    tier = suite.TIERS["cpu"]
    cell = suite.Cell("RTE", "student", "minilm6-trim", "tinybert4-prediction")
    cmd = suite.command(cell, tier, args, out)
    assert (
        cmd[cmd.index("--student") + 1] == "all-MiniLM-L6-v2"
        and cmd[cmd.index("--start") + 1] == "pretrained"
    )
    assert cmd[cmd.index("--stage") + 1] == "prediction"
    assert suite.current(cell, tier, args).endswith("+ trim-vocab --params-ratio 7.5")
    _write(out / "RTE" / "teacher", {"params": 109_488_002, "train_seconds": 600, "dev": {"accuracy": 0.70}})
    student = {"train_seconds": 120}
    evals = [{"accuracy": 0.60}]
    _write(
        out / "RTE" / "tinybert4-pruned-s42",
        {**student, "params": 14_352_898, "stages": {"p": {"evals": evals}}},
    )
    evals = [{"accuracy": 0.64}, {"accuracy": 0.66}]
    _write(out / cell.name, {**student, "params": 22_713_602, "stages": {"p": {"evals": evals}}})
    ledger = tmp_path / "ledger"
    cells = suite.plan(tier, args.tasks, None, lrc=False)
    suite.sync(cells, tier, args, out, ledger)
    assert cell.name not in suite.read_ledger(ledger)  # distilled, not yet trimmed: not finished
    trimmed = suite.trimmed_dir(cell, out)
    trimmed.mkdir()
    trim = {"pieces_before": 30527, "pieces_after": 9000, "params": 14_450_000, "checked_on": {"texts": 3}}
    (trimmed / "trim.json").write_text(json.dumps(trim))
    suite.trimmed_eval(cell, out).write_text(json.dumps({"dev": {"accuracy": 0.65}, "degenerate": False}))
    suite.sync(cells, tier, args, out, ledger)
    rec = suite.read_ledger(ledger)[cell.name]
    assert rec["last"] == rec["best"] == {"accuracy": 0.65} and rec["params"] == 14_450_000
    assert rec["untrimmed"] == {"last": {"accuracy": 0.66}, "best": {"accuracy": 0.66}, "params": 22_713_602}
    text = suite.report(cells, tier, args, ledger, {})
    headline = next(line for line in text.splitlines() if line.startswith("mean retention:"))
    assert headline.startswith(f"mean retention: {100 * 65 / 70:.1f}% at {109_488_002 / 14_450_000:.1f}x")
    assert "all-MiniLM-L6-v2 (6L-384)" in headline
    assert "| minilm6-trim | tinybert4-prediction | 1 (RTE) | 92.9% | 92.9% | 7.6x | yes |" in text
    assert "| pruned | tinybert4 | 1 (RTE) | 85.7% | 92.9% | 7.6x |  |" in text
    pick = suite.headline_config
    assert pick({("a", "r"): (95, 4.8, ["RTE"], 0, 0), ("b", "r"): (80, 7.6, ["RTE"], 0, 0)}) == ("b", "r")
    assert pick({("a", "r"): (95, 7.6, ["RTE"], 0, 0), ("b", "r"): (80, 7.6, ["RTE", "CoLA"], 0, 0)}) == (
        "b",
        "r",
    )


def test_general_start_runs_before_random_and_is_described(suite, tmp_path) -> None:
    tier = suite.TIERS["cpu"]
    cells = suite.plan(tier, ["CoLA", "SST-2"], str(tmp_path), lrc=False)
    starts = [c.start for c in cells if c.kind == "student" and c.recipe == "tinybert4" and c.seed == 42]
    assert starts == ["pruned", "pruned", "general", "general", "random", "random", "minilm", "minilm"]
    ledger = tmp_path / "ledger"
    assert suite._general_line(None, ledger) == []
    general = tmp_path / "general"
    general.mkdir()
    plan = {"teacher": "all-mpnet-base-v2", "layers": [3, 6, 9, 12], "calibration": {"source": "runs/corpus"}}
    (general / "prune.json").write_text(json.dumps(plan))
    suite.record_general(str(general), ledger)
    assert "not on this machine" in suite._general_line(str(general), ledger)[0]  # no finished run
    metrics = {"teacher": "all-mpnet-base-v2", "corpus": "runs/corpus", "steps": 700, "global_batch_size": 32,
               "sequences_seen": 22_400, "epochs_seen": 0.55, "train_seconds": 2400.0}  # fmt: skip
    (general / "metrics.json").write_text(json.dumps(metrics))
    suite.record_general(str(general), ledger)
    line = suite._general_line(str(general), ledger)[0]
    assert "pruned from all-mpnet-base-v2 (layers [3, 6, 9, 12], calibrated on `runs/corpus`)" in line
    assert "700 steps of 32 sequences (22,400 sequences, 0.55 passes over the corpus), 40 min" in line
    shutil.rmtree(general)  # another machine: the ledger still says what the start was
    assert suite._general_line(str(general), ledger)[0] == line


def test_students_of_one_shape_share_one_latency_measurement(suite, tmp_path) -> None:
    out = tmp_path / "suite"
    shape = {"model_type": "mpnet", "num_hidden_layers": 4, "hidden_size": 312, "id2label": {"0": "a"}}
    evals = {"stages": {"prediction": {"evals": [{"accuracy": 0.8}]}}, "dev": {"accuracy": 0.8}}
    _write(out / "SST-2" / "teacher", {"params": 109_488_177, "train_seconds": 60, "dev": {"accuracy": 0.9}})
    for start in ("pruned", "general"):
        _write(out / "SST-2" / f"tinybert4-{start}-s42", {"params": 14_352_898, "train_seconds": 60, **evals})
        (out / "SST-2" / f"tinybert4-{start}-s42" / "config.json").write_text(json.dumps(shape))
    (out / "SST-2" / "teacher" / "config.json").write_text(json.dumps({**shape, "num_hidden_layers": 12}))
    lat = {"teacher": {"torch": 100.0, "onnx-int8": 50.0}}
    lat["student-pruned"] = {"torch": 10.0, "onnx-int8": 10.0}
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    (ledger / "latency.json").write_text(json.dumps(lat))
    results = tmp_path / "r.md"
    argv = ["--tasks", "SST-2", "--output", str(tmp_path), "--results", str(results), "--general", "g"]
    args = suite.parse_args(argv)
    cells = suite.plan(suite.TIERS["cpu"], args.tasks, args.general, lrc=False)
    suite.sync(cells, suite.TIERS["cpu"], args, out, ledger)
    suite.write_results(cells, suite.TIERS["cpu"], args, out, ledger, measure=True)  # nothing left to time
    rows = [line for line in results.read_text().splitlines() if line.startswith("| SST-2 | tinybert4")]
    assert len(rows) == 2 and all("| 10.0x | 5.0x |" in row for row in rows)
    assert json.loads((ledger / "latency.json").read_text()) == lat  # the general start was not timed again


def test_the_ledger_outlives_the_run_directories(suite, tmp_path) -> None:
    """A new machine has no runs/: recorded cells are reported and not rerun; a student still to run
    brings its teacher back (fine-tuned again), and the teacher's earlier score stays on record."""
    out, ledger = tmp_path / "suite", tmp_path / "ledger"
    tier = suite.TIERS["cpu"]
    args = suite.parse_args(["--tasks", "RTE", "--seeds", "2", "--output", str(tmp_path), "--no-lrc"])
    cells = suite.plan(tier, args.tasks, None, lrc=False)
    _write(out / "RTE" / "teacher", {"params": 100, "train_seconds": 60, "dev": {"accuracy": 0.70}})
    evals = [{"accuracy": 0.66}, {"accuracy": 0.63}]
    student = {"params": 10, "train_seconds": 60, "stages": {"prediction": {"evals": evals}}}
    student["dev"] = evals[-1]
    _write(out / "RTE" / "tinybert4-pruned-s42", student)
    suite.sync(cells, tier, args, out, ledger)
    recorded = json.loads((ledger / "cells.json").read_text())
    assert recorded["RTE/tinybert4-pruned-s42"]["last"] == {"accuracy": 0.63}
    assert recorded["RTE/tinybert4-pruned-s42"]["best"] == {"accuracy": 0.66}
    assert recorded["RTE/teacher"]["command"].startswith("finetune --model all-mpnet-base-v2 --output ")

    shutil.rmtree(out)  # the next machine
    names = [c.name for c in suite.todo(cells, tier, args, out, ledger)]
    assert names == [
        f"RTE/{n}"
        for n in ("teacher", "tinybert4-pruned-s43", "tinybert4-pruned-s44", "tinybert4-random-s42",
                  "tinybert4-prediction-pruned-s42", "tinybert4-prediction-minilm-s42",
                  "tinybert4-minilm-s42", "tinybert4-prediction-minilm6-trim-s42",
                  "tinybert4-prediction-minilm6-trim-s43", "tinybert4-prediction-minilm6-trim-s44",
                  "tinybert4-prediction-aug4-minilm6-trim-s42", "tinybert4-prediction-aug4-minilm6-trim-s43",
                  "tinybert4-prediction-aug4-minilm6-trim-s44")
    ] + [f"RTE/tinybert4-prediction-aug4-e3-minilm6-trim-s{s}" for s in (42, 43, 44)] + [
        "RTE/tinybert4-aug4-e3-minilm6-trim-s42"
    ]  # fmt: skip
    only = suite.parse_args(["--tasks", "RTE", "--only", "random", "--output", str(tmp_path)])
    assert [c.name for c in suite.todo(cells, tier, only, out, ledger)] == [
        "RTE/teacher",
        "RTE/tinybert4-random-s42",
    ]
    text = suite.report(cells, tier, args, ledger, {})
    assert "| RTE | tinybert4 | pruned | 1 | 70.00 | 63.00 | 66.00 | 90.0% |" in text

    _write(out / "RTE" / "teacher", {"params": 100, "train_seconds": 50, "dev": {"accuracy": 0.71}})
    suite.sync(cells, tier, args, out, ledger)
    teacher = json.loads((ledger / "cells.json").read_text())["RTE/teacher"]
    assert teacher["dev"] == {"accuracy": 0.71} and teacher["previous"][0]["dev"] == {"accuracy": 0.70}
    text = suite.report(cells, tier, args, ledger, {})
    assert "| RTE | tinybert4 | pruned | 1 | 70.00 | 63.00 |" in text  # against the teacher it learnt from
    assert "the run of" in text and "scored 70.00" in text
    suite.sync(cells, tier, args, out, ledger)  # nothing new: the record is not pushed into previous again
    assert len(json.loads((ledger / "cells.json").read_text())["RTE/teacher"]["previous"]) == 1


def test_cells_recorded_with_other_settings_are_run_again_and_kept_out_of_the_tables(suite, tmp_path) -> None:
    out, ledger = tmp_path / "suite", tmp_path / "ledger"
    old = suite.Tier(**{**suite.TIERS["cpu"].__dict__, "seeds": (42,)})
    args = suite.parse_args(["--tasks", "RTE", "--output", str(tmp_path), "--no-lrc"])
    cells = suite.plan(old, args.tasks, None, lrc=False)
    _write(out / "RTE" / "teacher", {"params": 100, "train_seconds": 60, "dev": {"accuracy": 0.70}})
    evals = [{"accuracy": 0.55}]
    _write(out / "RTE" / "tinybert4-pruned-s42", {"params": 10, "train_seconds": 60, "dev": evals[0],
                                                  "stages": {"prediction": {"evals": evals}}})  # fmt: skip
    student_cmd = suite.command(cells[1], old, args, out)
    (out / "RTE" / "tinybert4-pruned-s42.cmd").write_text(" ".join(student_cmd) + "\n")
    suite.sync(cells, old, args, out, ledger)

    new = suite.Tier(**{**old.__dict__, "prediction_lr": 3e-4})  # the tier changed its settings
    assert "--prediction-lr" in suite.command(cells[1], new, args, out)
    assert [c.name for c in suite.collect(cells, ledger, new, args)] == ["RTE/teacher"]  # paths do not count
    assert [c.name for c in suite.todo(cells, new, args, out, ledger)] == [
        "RTE/tinybert4-pruned-s42",
        "RTE/tinybert4-random-s42",
        "RTE/tinybert4-prediction-pruned-s42",
        "RTE/tinybert4-prediction-minilm-s42",
        "RTE/tinybert4-minilm-s42",
        "RTE/tinybert4-prediction-minilm6-trim-s42",
        "RTE/tinybert4-prediction-aug4-minilm6-trim-s42",
        "RTE/tinybert4-prediction-aug4-e3-minilm6-trim-s42",
        "RTE/tinybert4-aug4-e3-minilm6-trim-s42",
    ]
    text = suite.report(cells, new, args, ledger, {})
    assert "| RTE | tinybert4 |" not in text and "mean retention: n/a" in text
    earlier = text.split("## Cells recorded with other settings")[1]
    assert "`RTE/tinybert4-pruned-s42`" in earlier and "accuracy last 55.00, best 55.00" in earlier
    assert "ran with `--prediction-lr 0.0002` (now `--prediction-lr 0.0003`)" in earlier

    run = out / "RTE" / "tinybert4-pruned-s42"
    suite.set_aside_if_stale(run, " ".join(suite.command(cells[1], old, args, tmp_path / "elsewhere")))
    assert run.is_dir()  # same settings, other paths: resumed as it is
    suite.set_aside_if_stale(run, " ".join(suite.command(cells[1], new, args, out)))
    assert not run.exists() and (out / "RTE" / "tinybert4-pruned-s42.earlier" / "metrics.json").is_file()

    # run again with the present settings: in the table, and the earlier run in the notes
    evals = [{"accuracy": 0.60}, {"accuracy": 0.62}]
    _write(
        run, {"params": 10, "train_seconds": 70, "dev": evals[1], "stages": {"prediction": {"evals": evals}}}
    )
    (out / "RTE" / "tinybert4-pruned-s42.cmd").write_text(" ".join(suite.command(cells[1], new, args, out)))
    suite.sync(cells, new, args, out, ledger)
    text = suite.report(cells, new, args, ledger, {})
    assert "| RTE | tinybert4 | pruned | 1 | 70.00 | 62.00 | 62.00 |" in text
    assert (
        "scored last 55.00, best 55.00; it ran with `--prediction-lr 0.0002` (now `--prediction-lr 0.0003`)"
        in text
    )
    assert "## Cells recorded with other settings" not in text


def test_tasks_chooses_what_runs_and_the_report_keeps_every_recorded_task(suite, tmp_path) -> None:
    out, ledger, results = tmp_path / "suite", tmp_path / "ledger", tmp_path / "r.md"
    student = {"params": 14_352_898, "train_seconds": 60}
    for task, key, t, s in (("RTE", "accuracy", 0.70, 0.63), ("MRPC", "f1", 0.90, 0.81)):
        teacher = {"params": 109_488_177, "train_seconds": 60, "dev": {key: t}}
        _write(out / "cpu" / "mpnet" / task / "teacher", teacher)
        evals = {"stages": {"prediction": {"evals": [{key: s}]}}, "dev": {key: s}}
        _write(out / "cpu" / "mpnet" / task / "tinybert4-pruned-s42", {**student, **evals})
    common = ["--output", str(out), "--ledger", str(ledger), "--results", str(results), "--seeds", "1"]
    assert suite.main([*common, "--report-only", "--tasks", "RTE,MRPC"]) == 0  # both recorded
    general = {"teacher": "t", "corpus": "c", "steps": 6, "global_batch_size": 32, "train_seconds": 60}
    (ledger / "cpu" / "mpnet" / "general.json").write_text(json.dumps({"runs/g": general}))
    assert suite.main([*common, "--report-only", "--tasks", "RTE", "--no-lrc"]) == 0  # one chosen
    lines = results.read_text().splitlines()
    assert "2 of 5 tasks (RTE, MRPC)" in next(line for line in lines if line.startswith("mean retention:"))
    assert any(line.startswith("| MRPC | tinybert4") for line in lines)
    assert any(line.startswith("- General start: `runs/g`: random init") for line in lines)  # not given


def test_a_student_is_compared_with_the_teacher_run_it_learnt_from(suite) -> None:
    """A teacher fine-tuned again later (a new machine) does not re-score the students of the earlier run."""
    teacher = {
        "dev": {"accuracy": 0.70},
        "finished": "2026-12-07",
        "previous": [
            {"dev": {"accuracy": 0.66}, "finished": "2026-12-03"},
            {"dev": {"accuracy": 0.68}, "finished": "2026-12-05"},
        ],
    }
    assert suite.teacher_of({"finished": "2026-12-05"}, teacher, "RTE") == pytest.approx(68)
    assert suite.teacher_of({"finished": "2026-12-04"}, teacher, "RTE") == pytest.approx(66)
    assert suite.teacher_of({"finished": "2026-12-07"}, teacher, "RTE") == pytest.approx(70)
    recorded = {"finished": "2026-12-05", "teacher_dev": {"accuracy": 0.69}}
    assert suite.teacher_of(recorded, teacher, "RTE") == pytest.approx(69)  # recorded with the student


def test_a_plain_run_is_the_core_cells_and_only_or_all_cells_reach_the_rest(suite, tmp_path) -> None:
    tier = suite.TIERS["cpu"]
    cells = suite.plan(tier, ["RTE", "SST-2"], None, lrc=True)
    names = [c.name for c in suite.core(cells, tier)]
    assert names == [
        "RTE/teacher", "RTE/tinybert4-pruned-s42", "SST-2/teacher", "SST-2/tinybert4-pruned-s42",
        "RTE/tinybert4-prediction-minilm6-trim-s42", "SST-2/tinybert4-prediction-minilm6-trim-s42",
        "RTE/tinybert4-prediction-aug4-e3-minilm6-trim-s42",
        "SST-2/tinybert4-prediction-aug4-e3-minilm6-trim-s42",
    ]  # fmt: skip
    base = ["--tasks", "RTE,SST-2", "--output", str(tmp_path), "--data-dir", str(tmp_path), "--dry-run"]
    for extra, runs_lrc in (([], False), (["--all-cells"], True), (["--only", "lrcbert4"], True)):
        args = ["--results", str(tmp_path / "r.md"), "--ledger", str(tmp_path / "ledger"), *base, *extra]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert suite.main(args) == 0
        assert ("lrcbert4-pruned-s42" in out.getvalue()) is runs_lrc, extra
        assert ("prediction-minilm6-trim-s44" in out.getvalue()) is (extra == ["--all-cells"])


def test_settings_compare_the_files_the_suite_makes_wherever_its_output_is(suite) -> None:
    def same(a: str, b: str) -> bool:
        return suite._settings_of(a) == suite._settings_of(b)

    here = "distill --output runs/x/RTE/c --student runs/x/RTE/minilm-cut --train-file runs/x/RTE/aug4.tsv"
    there = "distill --output /tmp/o/cpu/mpnet/RTE/c --student /tmp/o/cpu/mpnet/RTE/minilm-cut"
    assert same(f"{here} --seed 42", f"{there} --train-file /tmp/o/RTE/aug4.tsv --seed 42")
    assert not same(f"{here} --seed 42", f"{there} --train-file /tmp/o/RTE/aug8.tsv --seed 42")
    assert not same(f"{here} --seed 42", f"{there} --train-file /tmp/o/RTE/aug4.tsv --seed 43")
    assert not same("distill --student all-MiniLM-L6-v2", "distill --student tinybert-4l-312")
