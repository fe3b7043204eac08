"""The ``tinydistill`` command line: flags, task names, and one-line errors for bad input.

Runs in-process with typer's CliRunner (fast); one subprocess test checks the console script.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import typer.main
import yaml
from conftest import tiny_bert_config, toy_sentence, without_row_counts, write_sst2_like
from transformers import BertModel, BertTokenizerFast
from typer.testing import CliRunner

from tinydistill.cli import app
from tinydistill.tasks import get_task

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def ok(*args) -> str:
    result = invoke(*args)
    assert result.exit_code == 0, f"{result.stderr}\n{result.exception!r}"
    return result.stdout


def assert_one_line_error(result, *fragments: str) -> str:
    """Exit code 2, nothing on stdout, exactly one stderr line ``error: ...`` containing ``fragments``."""
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.exception)
    assert result.stdout == ""
    lines = without_row_counts(result.stderr).splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def vocab_size(model_dir: Path) -> int:
    return json.loads((model_dir / "config.json").read_text())["vocab_size"]


def config_dir(root: Path, vocab: int, **kw) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    cfg = tiny_bert_config(vocab, **{"layers": 1, "hidden": 16, "heads": 4, **kw})
    (root / "config.json").write_text(json.dumps(cfg.to_dict()))
    return root


# --------------------------------------------------------------------------- bad input: one line, exit 2


def _set_row(path: Path, lineno: int, row: str) -> None:
    lines = path.read_text().splitlines()
    lines[lineno - 1] = row
    path.write_text("\n".join(lines) + "\n")


def case_missing_data_dir(tmp, enc, glue):
    return ["finetune", "--task", "sst2", "--data-dir", tmp / "nope", "--model", enc], ["data dir not found"]


def case_missing_task_dir(tmp, enc, glue):
    (tmp / "empty").mkdir()
    return (
        ["finetune", "--task", "sst2", "--data-dir", tmp / "empty", "--model", enc],
        ["GLUE file not found", str(tmp / "empty" / "SST-2" / "train.tsv")],
    )


def case_missing_dev_file(tmp, enc, glue):
    (glue / "SST-2" / "dev.tsv").unlink()
    return (
        ["finetune", "--task", "sst2", "--data-dir", glue, "--model", enc],
        ["GLUE file not found", "dev.tsv"],
    )


def case_missing_train_file(tmp, enc, glue):
    return (
        ["finetune", "--task", "sst2", "--data-dir", glue, "--model", enc, "--train-file", tmp / "no.tsv"],
        ["not found", "no.tsv"],
    )


def case_unknown_task(tmp, enc, glue):
    return (
        ["finetune", "--task", "sst3", "--data-dir", glue, "--model", enc],
        ["unknown task 'sst3'", "SST-2"],
    )


def case_unknown_task_distill(tmp, enc, glue):
    return ["distill", "--task", "glue", "--data-dir", glue, "--teacher", enc], ["unknown task 'glue'"]


def case_malformed_row(tmp, enc, glue):
    path = glue / "SST-2" / "train.tsv"
    _set_row(path, 5, "a movie\t1\textra")
    return (
        ["finetune", "--task", "sst2", "--data-dir", glue, "--model", enc],
        [f"{path}:5:", "expected 2 columns, found 3"],
    )


def case_malformed_dev_row(tmp, enc, glue):
    path = glue / "SST-2" / "dev.tsv"
    _set_row(path, 3, "no label column here")
    return (["distill", "--task", "sst2", "--data-dir", glue, "--teacher", enc], [f"{path}:3:", "found 1"])


def case_unknown_label(tmp, enc, glue):
    path = glue / "SST-2" / "train.tsv"
    _set_row(path, 7, "the movie was good\tmaybe")
    return (["finetune", "--task", "sst2", "--data-dir", glue, "--model", enc], [f"{path}:7:", "'maybe'"])


def case_vocab_mismatch(tmp, enc, glue):
    student = config_dir(tmp / "student_cfg", vocab_size(enc) + 7)
    return (
        ["distill", "--task", "sst2", "--data-dir", glue, "--teacher", enc, "--student", student],
        ["vocab mismatch"],
    )


def case_tokenizer_mismatch(tmp, enc, glue):
    """A student checkpoint without a tokenizer (nothing to remap from) whose vocabulary size differs."""
    student = tmp / "student_ckpt"
    BertModel(tiny_bert_config(vocab_size(enc) + 3, layers=1, hidden=16)).save_pretrained(student)
    return (
        ["distill", "--task", "sst2", "--data-dir", glue, "--teacher", enc, "--student", student],
        ["vocab mismatch", "the student must use the teacher's tokenizer"],
    )


def case_missing_model(tmp, enc, glue):
    return (
        ["finetune", "--task", "sst2", "--data-dir", glue, "--model", "./does/not/exist"],
        ["model not found: ./does/not/exist"],
    )


def case_missing_teacher(tmp, enc, glue):
    return (
        ["distill", "--task", "sst2", "--data-dir", glue, "--teacher", "./does/not/exist"],
        ["./does/not/exist"],
    )


def case_missing_student(tmp, enc, glue):
    return (
        ["distill", "--task", "sst2", "--data-dir", glue, "--teacher", enc, "--student", "./does/not/exist"],
        ["./does/not/exist"],
    )


def case_missing_eval_model(tmp, enc, glue):
    return (
        ["evaluate", "--task", "sst2", "--data-dir", glue, "--model", "./does/not/exist"],
        ["model not found: ./does/not/exist"],
    )


def case_yaml_unknown_key(tmp, enc, glue):
    cfg = tmp / "run.yaml"
    cfg.write_text("epochs: 1\nlearnig_rate: 0.1\n")
    return (
        ["finetune", "--task", "sst2", "--data-dir", glue, "--model", enc, "--config", cfg],
        ["unknown config option", "learnig_rate"],
    )


def case_yaml_not_a_mapping(tmp, enc, glue):
    cfg = tmp / "run.yaml"
    cfg.write_text("- epochs\n- 1\n")
    return (["distill", "--task", "sst2", "--data-dir", glue, "--teacher", enc, "--config", cfg], [str(cfg)])


def case_bad_stage(tmp, enc, glue):
    return (
        ["distill", "--task", "sst2", "--data-dir", glue, "--teacher", enc, "--stage", "bogus"],
        ["--stage", "bogus"],
    )


def case_nonpositive_flag(tmp, enc, glue):
    return (
        ["finetune", "--task", "sst2", "--data-dir", glue, "--model", enc, "--max-steps", "0"],
        ["max_steps"],
    )


def case_empty_train_file(tmp, enc, glue):
    path = glue / "SST-2" / "train.tsv"
    path.write_text("sentence\tlabel\n")
    return ["finetune", "--task", "sst2", "--data-dir", glue, "--model", enc], [str(path), "no examples"]


def case_teacher_without_head(tmp, enc, glue):
    plain = tmp / "plain_bert"
    BertModel(tiny_bert_config(vocab_size(enc))).save_pretrained(plain)
    BertTokenizerFast.from_pretrained(enc).save_pretrained(plain)
    return (
        ["distill", "--task", "sst2", "--data-dir", glue, "--teacher", plain],
        ["no trained 2-output head", "finetune"],
    )


def case_custom_missing_column(tmp, enc, glue):
    data = tmp / "data.csv"
    data.write_text("text,label\na good film,pos\na bad film,neg\n")
    return (
        [
            "finetune",
            "--task",
            "custom",
            "--model",
            enc,
            "--train-file",
            data,
            "--dev-file",
            data,
            "--text-columns",
            "sentence",
        ],
        ["column 'sentence' not found"],
    )


CASES: dict[str, Callable] = {
    name[len("case_") :]: fn for name, fn in sorted(globals().items()) if name.startswith("case_")
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_error_line_and_writes_nothing(case, tmp_path, tiny_encoder, glue_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args, fragments = CASES[case](tmp_path, tiny_encoder, glue_dir)
    output = tmp_path / "out"
    if args[0] != "evaluate":
        args = [*args, "--output", output]
    assert_one_line_error(invoke(*args), *fragments)
    assert not output.exists(), f"{case} left {sorted(p.name for p in output.rglob('*'))}"


def test_head_count_mismatch_is_refused_before_writing(tmp_path, tiny_encoder, glue_dir):
    student = config_dir(tmp_path / "s", vocab_size(tiny_encoder), heads=2)
    output = tmp_path / "out"
    result = invoke(
        "distill",
        "--task",
        "sst2",
        "--data-dir",
        glue_dir,
        "--teacher",
        tiny_encoder,
        "--student",
        student,
        "--output",
        output,
        "--max-steps",
        "1",
    )
    assert_one_line_error(result, "head")
    assert not output.exists()


def test_max_seq_length_beyond_the_model_positions(tmp_path, tiny_encoder):
    task_dir = tmp_path / "glue" / "MRPC"
    task_dir.mkdir(parents=True)
    long = " ".join(["movie"] * 100)
    rows = [
        "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String",
        f"1\t1\t2\t{long}\tgood film",
        "0\t3\t4\ta bad film\ta good film",
    ]
    for split in ("train", "dev"):
        (task_dir / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    result = invoke(
        "finetune",
        "--task",
        "mrpc",
        "--data-dir",
        tmp_path / "glue",
        "--model",
        tiny_encoder,
        "--output",
        tmp_path / "out",
        "--max-steps",
        "1",
    )
    assert result.exit_code == 0, repr(result.exception)
    resolved = (tmp_path / "out" / "config.yaml").read_text()
    assert "max_seq_length: 64" in resolved  # capped at the encoder's 64 positions


# --------------------------------------------------------------------------- good input


@pytest.mark.parametrize("name", ["sst2", "SST-2", "Sst-2"])
def test_task_name_spellings(name, tmp_path, tiny_encoder, glue_dir):
    out = tmp_path / "out"
    stdout = ok(
        "finetune",
        "--task",
        name,
        "--data-dir",
        glue_dir,
        "--model",
        tiny_encoder,
        "--output",
        out,
        "--max-steps",
        "2",
    )
    printed = json.loads(stdout.strip().splitlines()[-1])
    assert printed["output"] == str(out) and "accuracy" in printed["dev"]
    assert json.loads((out / "metrics.json").read_text())["task"] == "SST-2"
    assert json.loads((out / "metrics.json").read_text())["steps"] == 2


def test_evaluate_json(tmp_path, tiny_encoder, glue_dir):
    json_file = tmp_path / "reports" / "dev.json"
    stdout = ok(
        "evaluate", "--task", "SST-2", "--data-dir", glue_dir, "--model", tiny_encoder, "--json", json_file
    )
    result = json.loads(json_file.read_text())
    assert set(result["dev"]) == {"accuracy"}
    # the contract: the trivial baseline and the verdict beside the score (toy dev: 16 rows per class)
    assert result["majority_baseline"] == {"accuracy": 0.5}
    assert isinstance(result["degenerate"], bool)
    assert set(result) == {"dev", "majority_baseline", "degenerate"} | (
        {"degenerate_reason"} if result["degenerate"] else set()
    )
    lines = stdout.strip().splitlines()
    assert lines == [f"dev: accuracy={100 * result['dev']['accuracy']:.2f} (majority: accuracy=50.00)"]


def test_all_contract_flags_in_one_tiny_run(tmp_path, tiny_encoder, glue_dir):
    common = [
        "--max-train-samples",
        "24",
        "--max-steps",
        "2",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--max-seq-length",
        "16",
        "--seed",
        "7",
    ]
    teacher, student = tmp_path / "teacher", tmp_path / "student"
    ok(
        "finetune",
        "--task",
        "sst2",
        "--data-dir",
        glue_dir,
        "--model",
        tiny_encoder,
        "--output",
        teacher,
        *common,
    )
    cfg = yaml.safe_load((teacher / "config.yaml").read_text())
    keys = ("max_train_samples", "max_steps", "epochs", "batch_size", "max_seq_length", "seed")
    assert [cfg[k] for k in keys] == [24, 2, 1, 8, 16, 7]
    metrics = json.loads((teacher / "metrics.json").read_text())
    assert (metrics["steps"], metrics["train_examples"]) == (2, 24)

    # --train-file: a train set other than <data-dir>/SST-2/train.tsv (here 12 rows)
    extra = write_sst2_like(tmp_path / "extra", n_train=12, n_dev=2, seed=5) / "SST-2" / "train.tsv"
    ok(
        "distill",
        "--task",
        "sst2",
        "--data-dir",
        glue_dir,
        "--teacher",
        teacher,
        "--student",
        config_dir(tmp_path / "s", vocab_size(tiny_encoder)),
        "--output",
        student,
        "--stage",
        "all",
        "--train-file",
        extra,
        *common,
    )
    s_metrics = json.loads((student / "metrics.json").read_text())
    assert s_metrics["train_examples"] == 12
    assert [s_metrics["stages"][s]["steps"] for s in ("intermediate", "prediction")] == [2, 2]
    s_cfg = yaml.safe_load((student / "config.yaml").read_text())
    assert s_cfg["train_file"] == str(extra) and s_cfg["stage"] == "all" and s_cfg["seed"] == 7

    for stage in ("intermediate", "prediction"):
        out = tmp_path / stage
        ok(
            "distill",
            "--task",
            "sst2",
            "--data-dir",
            glue_dir,
            "--teacher",
            teacher,
            "--student",
            student,
            "--output",
            out,
            "--stage",
            stage,
            "--max-steps",
            "1",
            "--max-seq-length",
            "16",
        )
        assert list(json.loads((out / "metrics.json").read_text())["stages"]) == [stage]

    json_file = tmp_path / "eval.json"
    ok("evaluate", "--task", "sst2", "--data-dir", glue_dir, "--model", student, "--json", json_file)
    assert "accuracy" in json.loads(json_file.read_text())["dev"]


CONTRACT = {
    "finetune": {"--task", "--data-dir", "--model", "--output"},
    "distill": {"--task", "--data-dir", "--teacher", "--student", "--output", "--stage", "--train-file"},
    "evaluate": {"--task", "--data-dir", "--model", "--json"},
}
COMMON = {"--max-train-samples", "--max-steps", "--epochs", "--batch-size", "--max-seq-length", "--seed"}


def test_contract_flags_exist():
    commands = typer.main.get_command(app).commands
    for name, flags in CONTRACT.items():
        opts = {o for p in commands[name].params for o in p.opts}
        assert flags <= opts, (name, flags - opts)
    for name in ("finetune", "distill"):
        opts = {o for p in commands[name].params for o in p.opts}
        assert COMMON <= opts, (name, COMMON - opts)
    from tinydistill.config import DistillConfig, build

    assert DistillConfig().stage == "all"  # the default when --stage is not given
    stages = build(DistillConfig, None, teacher="t").stages  # the default recipe, tinybert4
    assert [st["name"] for st in stages] == ["intermediate", "prediction"]
    assert get_task("sst2") is get_task("SST-2")


def test_table_flags_on_every_command_that_reads_rows(tmp_path, tiny_encoder):
    commands = typer.main.get_command(app).commands
    for name in ("finetune", "distill", "evaluate", "prune", "augment", "predict"):
        opts = {o for p in commands[name].params for o in (*p.opts, *p.secondary_opts)}
        assert {"--no-header", "--delimiter"} <= opts, name
    assert "--stopwords" in {o for p in commands["augment"].params for o in p.opts}
    data = tmp_path / "d.csv"
    data.write_text("pos,a good film\n")
    args = ["predict", "--model", tiny_encoder, "--input", data, "--output", tmp_path / "o.csv"]
    assert_one_line_error(invoke(*args, "--delimiter", ":"), "--delimiter must be one of tab")


def test_finetune_on_a_headerless_semicolon_file(tmp_path, tiny_encoder):
    """--no-header --text-columns 1 --label-column 0 on a ';' file (sniffed), with its labels' names."""
    rng = random.Random(0)
    for split, n in (("train", 24), ("dev", 8)):
        lines = [f"{'pos' if i % 2 else 'neg'};{toy_sentence(rng, i % 2)}" for i in range(n)]
        (tmp_path / f"{split}.csv").write_text("\n".join(lines) + "\n\n")
    out = tmp_path / "run"
    args = ["finetune", "--task", "custom", "--train-file", tmp_path / "train.csv", "--dev-file"]
    args += [tmp_path / "dev.csv", "--no-header", "--text-columns", "1", "--label-column", "0"]
    result = invoke(*args, "--model", tiny_encoder, "--output", out, "--max-steps", "1")
    assert result.exit_code == 0, result.stderr
    assert f"train: 24 rows read from {tmp_path / 'train.csv'} (0 skipped)" in result.stderr.splitlines()
    assert f"dev: 8 rows read from {tmp_path / 'dev.csv'} (0 skipped)" in result.stderr.splitlines()
    assert json.loads((out / "config.json").read_text())["id2label"] == {"0": "neg", "1": "pos"}
    assert set(json.loads((out / "metrics.json").read_text())["dev"]) == {"accuracy", "f1"}


@pytest.mark.parametrize("entry", ["script", "-m tinydistill", "-m tinydistill.cli"])
def test_console_script_help(entry):
    """Every way of starting the CLI lists the feature commands too (the module form used to
    import cli.py twice and fail on the commands registered from the feature packages)."""
    script = Path(sys.executable).with_name("tinydistill")
    if entry == "script":
        if not script.exists():
            pytest.skip("console script not installed")
        cmd = [str(script)]
    else:
        cmd = [sys.executable, *entry.split()]
    result = subprocess.run([*cmd, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for command in ("finetune", "distill", "evaluate", "corpus", "general", "augment", "export"):
        assert command in result.stdout


def test_pipeline_main_job_on_the_toy_task(tmp_path, tiny_encoder, glue_dir):
    """The main job end to end: fine-tune, distill, compare, print the teacher-vs-student table."""
    student = config_dir(tmp_path / "student-shape", vocab_size(tiny_encoder))
    out = tmp_path / "main"
    args = [
        "pipeline",
        "--task",
        "sst2",
        "--data-dir",
        glue_dir,
        "--teacher",
        tiny_encoder,
        "--student",
        student,
    ]
    args += ["--output", out, "--teacher-epochs", "20", "--teacher-lr", "2e-3", "--student-lr", "2e-3"]
    args += ["--intermediate-epochs", "20", "--prediction-epochs", "20", "--batch-size", "16"]
    stdout = ok(*args)
    assert "| teacher |" in stdout and "| student |" in stdout and "speed-up" in stdout
    rows = json.loads((out / "summary.json").read_text())
    assert rows["teacher"]["dev"]["dev"]["accuracy"] >= 0.9
    assert rows["student"]["dev"]["dev"]["accuracy"] >= 0.8
    assert rows["student"]["params"] < rows["teacher"]["params"]
    assert rows["teacher"]["latency_ms"] > 0 and rows["student"]["latency_ms"] > 0
    assert (out / "summary.md").read_text().startswith("### SST-2")
    assert (out / "teacher" / "model.safetensors").exists() and (
        out / "student" / "model.safetensors"
    ).exists()
    assert (out / "student" / "README.md").is_file() and (out / "export" / "model.int8.onnx").is_file()
    # a rerun with the same settings reuses every stage (byte-identical)
    kept = {p: p.read_bytes() for p in out.rglob("model.safetensors")}
    again = invoke(*args)
    assert again.exit_code == 0 and again.stdout == stdout
    assert "teacher: done (reused" in again.stderr and "card: done (reused" in again.stderr
    assert {p: p.read_bytes() for p in out.rglob("model.safetensors")} == kept


def test_pipeline_stops_on_a_degenerate_student(tmp_path, tiny_encoder, glue_dir):
    """A student that learned nothing stops the main job (one line, exit 2) unless --allow-degenerate."""
    student = config_dir(tmp_path / "student-shape", vocab_size(tiny_encoder))
    args = ["pipeline", "--task", "sst2", "--data-dir", glue_dir, "--teacher", tiny_encoder]
    args += ["--student", student, "--teacher-epochs", "1", "--student-lr", "1e-9", "--batch-size", "16"]
    args += ["--intermediate-epochs", "1", "--prediction-epochs", "1"]
    stopped = invoke(*args, "--output", tmp_path / "a")
    assert stopped.exit_code == 2, (stopped.stderr, stopped.exception)
    errors = [line for line in stopped.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "is degenerate" in errors[0] and "--allow-degenerate" in errors[0]
    assert "majority class" in errors[0] or "same class" in errors[0]
    # the warning came first, when the distill step ended
    assert any(line.startswith("warning: the student in") for line in stopped.stderr.splitlines())
    assert not (tmp_path / "a" / "summary.md").exists()
    assert json.loads((tmp_path / "a" / "student" / "metrics.json").read_text())["degenerate"] is True
    stdout = ok(*args, "--output", tmp_path / "b", "--allow-degenerate")
    assert "| student (DEGENERATE) |" in stdout
