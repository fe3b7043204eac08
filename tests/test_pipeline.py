"""``tinydistill pipeline``: named stages in subdirectories, the state file, reruns, resume and the card.

One full run (custom CSV data with string labels, augmentation, a labelled test file, every stage
but push) is shared by the tests that only read it; the tests that change something work on a copy
of its run dir (the state file writes paths inside the run dir as ``$OUT``, so a copy is a run too).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml
from conftest import tiny_bert_config, write_sentiment_csv, write_vocab
from transformers import AutoTokenizer, BertForSequenceClassification, BertTokenizerFast
from typer.testing import CliRunner

from tinydistill.cli import app
from tinydistill.pipeline.state import Identity, changed_keys, decide

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
huggingface_hub = pytest.importorskip("huggingface_hub")

STAGE_DIRS = ("teacher", "start", "augment", "student", "evaluate", "export", "bench", "report")
RAN = ("teacher", "start", "augment", "distill", "evaluate", "export", "bench", "report", "card")
OPTIONS = {
    "mlm_head": {"max_steps": 4, "batch_size": 4, "max_seq_length": 32},
    "augment": {"candidates": 4},
    "bench": {"batch_sizes": "1", "repeats": 3, "warmup": 1},
}


def make_encoder(root: Path) -> Path:
    tok = BertTokenizerFast(vocab=str(write_vocab(root / "vocab.txt")), do_lower_case=True)
    torch.manual_seed(0)
    enc = root / "encoder"
    BertForSequenceClassification(tiny_bert_config(len(tok), layers=2, hidden=32)).save_pretrained(enc)
    tok.save_pretrained(enc)
    return enc


@dataclass
class Job:
    root: Path
    out: Path
    result: object  # the first run's CliRunner result

    def args(self, out: Path | None = None, options: dict | None = None, *extra) -> list[str]:
        """The pipeline command of the shared run (another output, more options, more flags)."""
        config = self.root / f"options-{len(list(self.root.glob('options-*')))}.yaml"
        config.write_text(yaml.safe_dump({"options": {**OPTIONS, **(options or {})}}))
        r = self.root
        args = [
            "pipeline", "--task", "custom", "--train-file", r / "train.csv", "--dev-file", r / "dev.csv",
            "--test-file", r / "test.csv", "--text-columns", "text", "--teacher", r / "encoder",
            "--student", r / "student-shape", "--output", out or self.out, "--teacher-epochs", "10",
            "--teacher-lr", "2e-3", "--student-lr", "2e-3", "--intermediate-epochs", "6",
            "--prediction-epochs", "6", "--batch-size", "8", "--augment", "--augment-n", "2",
            "--config", config, *extra,
        ]  # fmt: skip
        return [str(a) for a in args]

    def copy(self, tmp_path: Path) -> Path:
        out = tmp_path / "run"
        shutil.copytree(self.out, out)
        return out


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> Job:
    root = tmp_path_factory.mktemp("pipeline")
    enc = make_encoder(root)
    (root / "student-shape").mkdir()
    vocab = json.loads((enc / "config.json").read_text())["vocab_size"]
    shape = tiny_bert_config(vocab, layers=1, hidden=16, heads=4)
    (root / "student-shape" / "config.json").write_text(json.dumps(shape.to_dict()))
    write_sentiment_csv(root / "train.csv", 48, seed=3)
    write_sentiment_csv(root / "dev.csv", 16, seed=4)
    write_sentiment_csv(root / "test.csv", 16, seed=5)
    j = Job(root, root / "out", None)
    j.result = CliRunner().invoke(app, j.args())
    assert j.result.exit_code == 0, (j.result.stderr, j.result.exception)
    return j


def invoke(args: list[str]):
    return CliRunner().invoke(app, args)


def stage_lines(stderr: str) -> dict[str, str]:
    """``stage -> its last line`` among the pipeline's own lines (progress bars aside)."""
    lines = {}
    for line in stderr.splitlines():
        name, _, rest = line.partition(": ")
        if name in (*RAN, "push"):
            lines[name] = rest
    return lines


def state(out: Path) -> dict:
    return json.loads((out / "pipeline.json").read_text())["stages"]


def mtimes(out: Path, *names: str) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for n in names for p in (out / n).rglob("*") if p.is_file()}


# ----------------------------------------------------------------------------- a full run


def test_every_stage_writes_its_dir_and_records_itself(job):
    for name in STAGE_DIRS:
        assert (job.out / name).is_dir(), name
    records = state(job.out)
    assert list(records) == list(RAN)
    assert all(
        r["status"] == "done" and r["seconds"] >= 0 and len(r["fingerprint"]) == 16 for r in records.values()
    )
    assert records["distill"]["upstream"] == {
        s: records[s]["fingerprint"] for s in ("teacher", "start", "augment")
    }
    assert records["teacher"]["options"]["finetune"]["output"] == "$OUT/teacher"
    assert str(job.root / "train.csv") in records["teacher"]["inputs"]  # a file read from outside the run
    lines = stage_lines(job.result.stderr)
    assert all(lines[s].startswith("done in ") for s in RAN) and lines["push"].startswith("off")
    assert "dev accuracy" in lines["distill"] and "pruned from the teacher" in lines["start"]
    log = (job.out / "pipeline.log").read_text()
    assert "distill: done in" in log and "finetune: 100%" in log  # stage lines and the bars' last states
    # the table at the end, on stdout, and nothing else there
    assert job.result.stdout.startswith("### custom: teacher vs student")
    assert "| student |" in job.result.stdout and "card: " in job.result.stdout
    rows = json.loads((job.out / "summary.json").read_text())
    assert rows["student"]["dev"]["dev"]["accuracy"] >= 0.75 and rows["student"]["test"]["accuracy"] > 0.5
    assert {"torch", "onnx", "onnx-int8"} <= set(rows["student"]["latency_ms_by_backend"])


def test_distill_trains_on_the_augmented_file_with_string_labels(job):
    aug = job.out / "augment" / "train.tsv"
    rows = list(csv.DictReader(aug.open(), delimiter="\t"))
    assert len(rows) > 48 and {r["label"] for r in rows} == {"neg", "pos"}
    cfg = yaml.safe_load((job.out / "student" / "config.yaml").read_text())
    assert Path(cfg["train_file"]) == aug and cfg["max_train_samples"] is None
    assert json.loads((job.out / "student" / "metrics.json").read_text())["train_examples"] == len(rows)
    assert json.loads((job.out / "student" / "config.json").read_text())["id2label"] == {
        "0": "neg",
        "1": "pos",
    }
    assert (job.out / "start" / "prune.json").is_file()  # the student started pruned from the teacher


def test_model_card_loads_and_its_metrics_are_the_runs(job):
    from huggingface_hub import ModelCard

    card = ModelCard.load(job.out / "student" / "README.md")
    results = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    dev = json.loads((job.out / "student" / "metrics.json").read_text())["dev"]
    assert {m: results["validation", m] for m in dev} == pytest.approx(dev)
    test = json.loads((job.out / "evaluate" / "metrics.json").read_text())["metrics"]["student"]["test"]
    assert {m: results["test", m] for m in test} == pytest.approx(test)
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "text-classification"
    assert {"tinydistill", "knowledge-distillation", "tinybert4"} <= set(card.data.tags)
    assert card.data.base_model is None  # a local teacher has no Hub id
    text = card.text
    for part in ("## Teacher vs student", "latency ms, ONNX int8", "## How it was made", "recipe `tinybert4`",
                 "pruned from the fine-tuned teacher", "TinyBERT augmentation", "| distill |",
                 'pipeline("text-classification"', "ort.InferenceSession", "## Limitations"):  # fmt: skip
        assert part in text, part


def test_rerun_reuses_every_stage_in_seconds(job):
    before = mtimes(job.out, *STAGE_DIRS)
    began = time.time()
    again = invoke(job.args())
    seconds = time.time() - began
    assert again.exit_code == 0, again.stderr
    lines = stage_lines(again.stderr)
    assert [lines[s] for s in RAN] == ["done (reused, 0.0 s)"] * len(RAN)
    assert seconds < 10, seconds
    assert mtimes(job.out, *STAGE_DIRS) == before
    assert again.stdout == job.result.stdout


def test_every_stage_dir_is_marked_and_the_output_has_one_pipeline_at_a_time(job):
    import threading

    from tinydistill import ownership

    for name in ("", "augment/mlm", *STAGE_DIRS):
        made_by = json.loads((job.out / name / ownership.MARKER).read_text())["made_by"]
        assert made_by.startswith("tinydistill "), (name, made_by)
    taken, done = threading.Event(), threading.Event()

    def hold() -> None:  # another run holding the output (its own flock, as another process would)
        with ownership.lock(job.out, "pipeline"):
            taken.set()
            done.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert taken.wait(30)
        before = mtimes(job.out, *STAGE_DIRS)
        refused = invoke(job.args())
    finally:
        done.set()
        holder.join()
    assert refused.exit_code == 2 and refused.stderr.startswith(f"error: {job.out} is in use by another run")
    assert refused.stderr.count("\n") == 1 and mtimes(job.out, *STAGE_DIRS) == before


# ----------------------------------------------------------------------------- changes and interruptions


def test_a_changed_distill_option_reruns_distill_and_what_follows(job, tmp_path):
    out = job.copy(tmp_path)
    before, teacher = state(out), mtimes(out, "teacher", "start", "augment")
    args = job.args(out)
    args[args.index("--student-lr") + 1] = "1e-3"
    result = invoke(args)
    assert result.exit_code == 0, result.stderr
    lines = stage_lines(result.stderr)
    assert all(lines[s] == "done (reused, 0.0 s)" for s in ("teacher", "start", "augment"))
    assert "distill: running (options changed: learning_rate)" in result.stderr
    for name in ("evaluate", "export", "bench", "report", "card"):
        assert lines[name].startswith("done in "), name
    assert "evaluate: running (upstream changed: distill)" in result.stderr
    after = state(out)
    assert mtimes(out, "teacher", "start", "augment") == teacher
    assert after["teacher"]["fingerprint"] == before["teacher"]["fingerprint"]
    assert after["distill"]["fingerprint"] != before["distill"]["fingerprint"]
    assert yaml.safe_load((out / "student" / "config.yaml").read_text())["learning_rate"] == 1e-3


def test_a_run_killed_in_distill_resumes_there_and_never_redoes_the_teacher(job, tmp_path, monkeypatch):
    from tinydistill.training import loop

    out = job.copy(tmp_path)
    teacher = mtimes(out, "teacher")
    args = job.args(out, {"distill": {"save_every": 4}})
    record = loop._record

    def stop_at_step_6(run, st, *a, **kw):
        record(run, st, *a, **kw)
        if run.name == "intermediate" and st.result.steps == 6:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does: a checkpoint, then a stop

    monkeypatch.setattr(loop, "_record", stop_at_step_6)
    stopped = invoke(args)
    assert stopped.exit_code == 130, (stopped.stderr, stopped.exception)
    assert re.search(
        r"interrupted: distill: SIGINT: stopped intermediate at step \d+; checkpoint", stopped.stderr
    )
    assert "run the same command again to continue" in stopped.stderr
    assert state(out)["distill"]["status"] == "running"
    monkeypatch.setattr(loop, "_record", record)

    resumed = invoke(args)
    assert resumed.exit_code == 0, resumed.stderr
    lines = stage_lines(resumed.stderr)
    assert lines["teacher"] == "done (reused, 0.0 s)" and "distill: resuming (interrupted)" in resumed.stderr
    assert "resuming intermediate from" in (out / "pipeline.log").read_text()
    assert all(r["status"] == "done" for r in state(out).values())
    assert mtimes(out, "teacher") == teacher
    steps = [json.loads((o / "student" / "metrics.json").read_text())["stages"]["intermediate"]["steps"]
             for o in (job.out, out)]  # fmt: skip
    assert steps[0] == steps[1]  # the resumed stage ran to its end, not twice


def test_from_forces_that_stage_and_every_later_one(job, tmp_path):
    out = job.copy(tmp_path)
    result = invoke(job.args(out, None, "--from", "report"))
    assert result.exit_code == 0, result.stderr
    lines = stage_lines(result.stderr)
    assert all(lines[s] == "done (reused, 0.0 s)" for s in RAN[:7])
    assert "report: running (--from report)" in result.stderr and lines["card"].startswith("done in ")


def test_quiet_leaves_the_terminal_to_the_result_and_logs_everything(job, tmp_path):
    out = job.copy(tmp_path)
    result = invoke(job.args(out, None, "--from", "bench", "--quiet"))
    assert result.exit_code == 0 and result.stderr == ""
    assert result.stdout.startswith("### custom: teacher vs student")
    log = (out / "pipeline.log").read_text().split("== tinydistill pipeline")[-1]
    assert "bench: running (--from bench)" in log and "card: done in" in log and "\r" not in log


@pytest.mark.parametrize(
    ("extra", "options", "fragments"),
    [
        (["--from", "bogus"], None, ["--from bogus: no such stage", "teacher, start, augment"]),
        (["--from", "push"], None, ["--from push: the stage is off", "--push-to-hub"]),
        (
            ["--teacher-finetuned", "t", "--teacher-lr", "1e-3"],
            None,
            ["--teacher-finetuned skips", "--teacher-lr"],
        ),
        (["--no-augment"], None, ["--augment-n is given but --augment is off"]),
        ([], {"bogus": {"x": 1}}, ["options.bogus: no such stage"]),
        ([], {"distill": {"teacher": "x"}}, ["options.distill.teacher is set by the pipeline"]),
        ([], {"distill": {"tempreature": 2}}, ["options.distill.tempreature: not an option"]),
        (["--no-export"], {"export": {"atol": 1}}, ["options.export is given but --export is off"]),
        (["--start", "sideways"], None, ["start must be one of auto, pruned, random"]),
    ],
)
def test_bad_stage_names_and_conflicts_are_one_line_errors(job, tmp_path, extra, options, fragments):
    out = tmp_path / "never"
    result = invoke(job.args(out, options, *extra))
    assert result.exit_code == 2, (result.stderr, result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert all(f in lines[0] for f in fragments), lines[0]
    assert not out.exists()


# ----------------------------------------------------------------------------- the card and the Hub


class FakeHub:
    """``huggingface_hub.HfApi`` without a network: records the calls and what was uploaded."""

    calls: list = []

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", repo_id, kw))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, **kw):
        files = sorted(p.name for p in Path(kw["folder_path"]).iterdir())
        self.calls.append(("upload_folder", kw, files))


def test_push_to_hub_uploads_the_student_and_its_onnx_files(job, tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHub)
    FakeHub.calls = []
    out = job.copy(tmp_path)
    args = job.args(out, {"push": {"private": True}}, "--push-to-hub", "me/tiny-student")
    result = invoke(args)
    assert result.exit_code == 0, result.stderr
    lines = stage_lines(result.stderr)
    assert (
        lines["distill"] == "done (reused, 0.0 s)"
        and "card: running (options changed: repo_id)" in result.stderr
    )
    assert lines["push"].startswith("done in ") and lines["push"].endswith(
        "https://huggingface.co/me/tiny-student"
    )
    create, student, onnx = FakeHub.calls
    assert create == (
        "create_repo",
        "me/tiny-student",
        {"private": True, "exist_ok": True, "repo_type": "model"},
    )
    assert student[1]["repo_id"] == "me/tiny-student" and Path(student[1]["folder_path"]) == out / "student"
    assert {"README.md", "model.safetensors", "config.json", "card.json"} <= set(student[2])
    assert onnx[1]["path_in_repo"] == "onnx" and Path(onnx[1]["folder_path"]) == out / "export"
    assert {"model.onnx", "model.int8.onnx"} <= set(onnx[2])
    card = (out / "student" / "README.md").read_text()
    assert 'model="me/tiny-student"' in card and 'hf_hub_download("me/tiny-student"' in card
    assert stage_lines(invoke(args).stderr)["push"] == "done (reused, 0.0 s)" and len(FakeHub.calls) == 3


def test_a_failed_push_is_one_line(job, tmp_path, monkeypatch):
    class Offline(FakeHub):
        def create_repo(self, repo_id, **kw):
            raise OSError("Network is unreachable\nmore")

    monkeypatch.setattr(huggingface_hub, "HfApi", Offline)
    result = invoke(job.args(job.copy(tmp_path), None, "--push-to-hub", "me/x"))
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: push to the Hub repo me/x failed: OSError: Network is unreachable"]


def test_evaluate_refreshes_the_card_of_a_student_dir(job, tmp_path):
    from huggingface_hub import ModelCard

    out = job.copy(tmp_path)
    student = out / "student"
    dev = job.root / "dev.csv"
    args = ["evaluate", "--task", "custom", "--model", student, "--dev-file", dev, "--text-columns", "text"]
    result = invoke([str(a) for a in [*args, "--max-eval-samples", "5"]])
    assert result.exit_code == 0, result.stderr
    info = json.loads((student / "card.json").read_text())
    assert "5 rows" in info["metrics_source"]
    card = ModelCard.load(student / "README.md")
    got = {r.metric_type: r.metric_value for r in card.data.eval_results if r.dataset_split == "validation"}
    assert got == info["metrics"]["student"]["dev"]
    assert round(got["accuracy"] * 5) == pytest.approx(got["accuracy"] * 5)  # a share of 5 rows
    assert "5 rows" in card.text


def test_report_refreshes_the_latencies_in_the_card(job, tmp_path):
    out = job.copy(tmp_path)
    runs = [str(out / "teacher"), str(out / "student")]
    result = invoke(["report", *runs, "--output", str(tmp_path / "rep"), "--repeats", "3", "--seq-len", "32"])
    assert result.exit_code == 0, result.stderr
    rows = json.loads((tmp_path / "rep" / "report.json").read_text())["rows"]
    measured = {r["role"]: r["latency_ms"] for r in rows}
    latency = json.loads((out / "student" / "card.json").read_text())["latency"]
    assert {"teacher": latency["teacher"]["torch"], "student": latency["student"]["torch"]} == measured
    assert (
        f"| latency ms, PyTorch fp32 | {measured['teacher']:.2f} |"
        in (out / "student" / "README.md").read_text()
    )


def with_finetuned_teacher(job, args: list[str]) -> list[str]:
    """The job's arguments with its fine-tuned teacher given (no teacher stage)."""
    cut = args.index("--teacher")
    args[cut : cut + 2] = ["--teacher-finetuned", str(job.out / "teacher")]
    for flag in ("--teacher-epochs", "--teacher-lr"):
        cut = args.index(flag)
        del args[cut : cut + 2]
    return args


def test_a_given_finetuned_teacher_skips_the_teacher_stage(job, tmp_path):
    out = tmp_path / "given"
    args = with_finetuned_teacher(job, job.args(out, None, "--no-export"))
    result = invoke(args)
    assert result.exit_code == 0, result.stderr
    lines = stage_lines(result.stderr)
    assert lines["teacher"] == "off (--teacher-finetuned skips it)" and not (out / "teacher").exists()
    records = state(out)
    assert "teacher" not in records and "export" not in records
    assert {r["backend"] for r in records["bench"]["result"]["rows"]} == {"torch"}
    assert yaml.safe_load((out / "student" / "config.yaml").read_text())["teacher"] == str(
        job.out / "teacher"
    )
    assert "given fine-tuned" in (out / "student" / "README.md").read_text()


def test_a_pretrained_student_of_another_vocabulary_is_cut_and_distilled(job, tmp_path):
    """--start pretrained --student-shape: the start stage remaps the student onto the teacher's
    tokenizer and cuts it to the shape; distill starts from that cut, with TinyBERT's step 2 alone."""
    from test_remap import other_vocab_student

    pre = other_vocab_student(tmp_path / "pretrained", layers=2, hidden=32)
    out = tmp_path / "pre"
    args = with_finetuned_teacher(job, job.args(out, None, "--no-export"))
    cut = args.index("--student")
    args[cut : cut + 2] = ["--student", str(pre), "--start", "pretrained"]
    # a random tiny model cut to 1 layer, step 2 alone: the plumbing is under test, not what it learns
    args += ["--student-shape", str(job.root / "student-shape" / "config.json"), "--allow-degenerate"]
    result = invoke(args)
    assert result.exit_code == 0, result.stderr
    assert "vocabulary remap:" in result.stderr
    start = state(out)["start"]["result"]
    assert start["start"] == "pretrained-pruned" and start["vocab_remap"]["coverage"] < 1
    teacher_vocab = AutoTokenizer.from_pretrained(job.out / "teacher").get_vocab()
    assert AutoTokenizer.from_pretrained(out / "start").get_vocab() == teacher_vocab
    assert json.loads((out / "start" / "config.json").read_text())["hidden_size"] == 16
    metrics = json.loads((out / "student" / "metrics.json").read_text())
    assert metrics["start"] == "checkpoint"
    assert list(metrics["stages"]) == ["prediction"]  # a pre-trained start: TinyBERT's step 2 alone
    bad = invoke([*job.args(tmp_path / "bad"), "--student-shape", "tinybert-4l-312"])
    assert bad.exit_code == 2 and "needs --start pretrained" in bad.stderr


def test_trim_ratio_trims_the_distilled_student_and_later_stages_ship_the_trimmed_one(job, tmp_path):
    """--trim-ratio R: a trim stage after distill leaves the vocabulary that fits teacher params / R;
    evaluate, export, bench, the summary and the card are of the trimmed model."""
    distilled = state(job.out)["distill"]["result"]
    width = json.loads((job.out / "student" / "config.json").read_text())["hidden_size"]
    ratio = distilled["teacher_params"] / (distilled["params"] - 5 * width)  # 5 rows fewer at least
    out = tmp_path / "trimmed"
    args = with_finetuned_teacher(job, job.args(out, None, "--trim-ratio", f"{ratio:.6f}"))
    result = invoke(args)
    assert result.exit_code == 0, result.stderr
    trim = state(out)["trim"]["result"]
    assert trim["params"] <= distilled["teacher_params"] / ratio < trim["params_before"]
    assert len(AutoTokenizer.from_pretrained(out / "trim")) == trim["pieces_after"] < trim["pieces_before"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["student"]["params"] == trim["params"]
    student = BertForSequenceClassification.from_pretrained(out / "trim")
    assert student.get_input_embeddings().weight.shape[0] == trim["pieces_after"]
    assert "Vocabulary trimmed after distillation" in (out / "trim" / "README.md").read_text()
    onnx_vocab = AutoTokenizer.from_pretrained(out / "export")
    assert len(onnx_vocab) == trim["pieces_after"]
    off = invoke([*job.args(tmp_path / "off", {"trim": {"keep": 3}})])
    assert off.exit_code == 2 and "options.trim" in off.stderr


# ----------------------------------------------------------------------------- the decisions


def test_decide_reuse_resume_rerun():
    ident = Identity({"distill": {"temperature": 2.0}}, {}, {"teacher": "a"})
    done = {"status": "done", "fingerprint": ident.fingerprint, **ident.__dict__}
    assert decide(done, ident, None, [], []).action == "reuse"
    assert decide(done, ident, None, ["teacher"], []).reason == "teacher ran again"
    assert (
        decide(done, ident, None, [], ["student/metrics.json"]).reason
        == "output missing: student/metrics.json"
    )
    assert decide({**done, "status": "running"}, ident, None, [], []).action == "resume"
    assert decide(done, ident, "--from distill", [], []).fresh
    changed = Identity({"distill": {"temperature": 1.0}}, {"/d/train.csv": "x"}, {"teacher": "b"})
    why = decide(done, changed, None, [], []).reason
    assert why == "options changed: temperature; input changed: train.csv; upstream changed: teacher"
    assert decide(None, ident, None, [], []).reason == "first run"
    assert changed_keys({"mode": "auto", "prune": {"seed": 1}}, {"mode": "random", "prune": {"seed": 2}}) == [
        "mode",
        "seed",
    ]


def test_base_model_is_a_hub_id_or_nothing(tmp_path):
    from tinydistill.deploy.card import base_model

    assert base_model("all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"
    assert base_model("sentence-transformers/all-mpnet-base-v2") == "sentence-transformers/all-mpnet-base-v2"
    assert base_model("google-bert/bert-base-uncased") == "google-bert/bert-base-uncased"
    assert base_model(str(tmp_path)) is None and base_model(None) is None


def test_the_main_jobs_config_is_a_valid_pipeline_plan():
    """scripts/main.sh runs ``pipeline --config configs/main.yaml``: a typo there shows only at run time."""
    from tinydistill import config as C
    from tinydistill.pipeline.plan import make_plan

    configs = Path(__file__).parents[1] / "configs"
    for name, student, start, trim in [
        ("main.yaml", "all-MiniLM-L6-v2", "pretrained", 7.5),
        ("main-pruned.yaml", "tinybert-4l-312", "auto", None),
    ]:
        cfg = C.build(C.PipelineConfig, configs / name)
        plan = make_plan(cfg)
        assert (cfg.teacher, cfg.teacher_lr, cfg.teacher_epochs) == ("all-mpnet-base-v2", 3e-5, 1)
        assert (cfg.student, cfg.start, cfg.trim_ratio) == (student, start, trim)
        assert plan.section("distill") == {"prediction_lr": 2e-4}
        assert plan.section("teacher") == {"length_buckets": 50}
        assert plan.enabled("trim") == (trim is not None)
