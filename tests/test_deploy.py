"""Deploy commands on tiny models: ONNX / int8 export, bench, predict, report (no timing assertions).

One tiny teacher + student are trained on the toy SST-2 task and the teacher exported once per
module; the other tests reuse them.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_bert_config, write_sst2_like, write_vocab
from transformers import (
    BertForSequenceClassification,
    BertTokenizerFast,
    MPNetConfig,
    MPNetForSequenceClassification,
)
from typer.testing import CliRunner

import tinydistill
from tinydistill import TinyDistillError

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from tinydistill.cli import app  # noqa: E402
from tinydistill.deploy import export as export_mod  # noqa: E402
from tinydistill.deploy.bench import bench  # noqa: E402
from tinydistill.deploy.export import export_model  # noqa: E402
from tinydistill.deploy.predict import evaluate_runner, predict_file  # noqa: E402
from tinydistill.deploy.report import build_report  # noqa: E402
from tinydistill.deploy.runners import load_runner  # noqa: E402
from tinydistill.deploy.table import bench_table  # noqa: E402
from tinydistill.deploy.timing import random_batch  # noqa: E402

RECIPE = dict(learning_rate=2e-3, batch_size=16, logging_steps=5, epochs=20)


@dataclass
class Trained:
    root: Path
    glue: Path
    teacher: Path
    student: Path
    export: Path
    export_report: dict


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Trained:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("deploy")
    glue = write_sst2_like(root / "glue")
    tok = BertTokenizerFast(vocab=str(write_vocab(root / "vocab.txt")), do_lower_case=True)
    torch.manual_seed(0)
    encoder = root / "encoder"
    BertForSequenceClassification(tiny_bert_config(len(tok))).save_pretrained(encoder)
    tok.save_pretrained(encoder)
    teacher, student, student_cfg = root / "teacher", root / "student", root / "student_cfg"
    tinydistill.finetune(task="sst2", data_dir=str(glue), model=str(encoder), output=str(teacher), **RECIPE)
    student_cfg.mkdir()
    cfg = tiny_bert_config(len(tok), layers=1, hidden=16, heads=4)
    (student_cfg / "config.json").write_text(json.dumps(cfg.to_dict()))
    tinydistill.distill(
        task="sst2",
        data_dir=str(glue),
        teacher=str(teacher),
        student=str(student_cfg),
        output=str(student),
        **RECIPE,
    )
    exp = root / "export"
    rep = export_model(teacher, exp, quantize="int8", task="sst2", data_dir=str(glue), threads=1)
    yield Trained(root, glue, teacher, student, exp, rep)
    torch.set_num_threads(before)


def torch_logits(model_dir: Path, batch: dict[str, np.ndarray]) -> np.ndarray:
    model = BertForSequenceClassification.from_pretrained(model_dir).eval()
    with torch.no_grad():
        return model(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits.numpy()


# --------------------------------------------------------------------------- export


def test_export_matches_torch_and_writes_a_deployable_dir(trained):
    rep, exp = trained.export_report, trained.export
    for name in ("model.onnx", "model.int8.onnx", "config.json", "tokenizer.json", "export.json"):
        assert (exp / name).is_file(), name
    assert rep["onnx"]["max_abs_diff"] < 1e-4
    assert rep["inputs_from"] == "SST-2 dev" and rep["onnx"]["n_inputs"] == 33
    assert rep["onnx_int8"]["agreement"] >= 0.9
    assert rep["onnx_int8"]["size_mb"] < rep["onnx"]["size_mb"]
    assert json.loads((exp / "export.json").read_text())["source"] == str(trained.teacher.resolve())


@pytest.mark.parametrize("batch,seq_len", [(3, 5), (3, 23), (1, 40)])
def test_dynamic_batch_and_sequence_axes(trained, batch, seq_len):
    runner = load_runner(trained.export, "onnx", threads=1)
    assert runner.input_names == ["input_ids", "attention_mask", "token_type_ids"]
    x = random_batch(runner.vocab_size, batch, seq_len, seed=seq_len)
    x["attention_mask"][0, seq_len // 2 :] = 0  # padding inside the batch
    got = runner(x)
    assert got.shape == (batch, 2)
    np.testing.assert_allclose(got, torch_logits(trained.teacher, x), atol=1e-4)


def test_int8_keeps_the_dev_metric(trained):
    fp32 = evaluate_runner(load_runner(trained.teacher, "torch"), "sst2", str(trained.glue))
    int8 = evaluate_runner(load_runner(trained.export, "onnx-int8", threads=1), "sst2", str(trained.glue))
    assert fp32["dev"]["accuracy"] >= 0.9
    assert abs(int8["dev"]["accuracy"] - fp32["dev"]["accuracy"]) <= 0.07


def test_export_mismatch_beyond_tolerance_is_an_error(trained, tmp_path, monkeypatch):
    monkeypatch.setattr(
        export_mod, "to_onnx", lambda model, example, path, opset=None: path.write_bytes(b"x")
    )
    monkeypatch.setattr(export_mod, "compare", lambda *a, **k: (0.5, 1.0, 3))
    with pytest.raises(TinyDistillError, match="does not match PyTorch"):
        export_model(trained.teacher, tmp_path / "bad", optimize=False)
    assert not (tmp_path / "bad" / "model.onnx").exists()


def test_export_without_token_type_ids_mpnet(tmp_path, tokenizer_dir):
    torch.manual_seed(0)
    cfg = MPNetConfig(vocab_size=60, hidden_size=16, num_hidden_layers=1, num_attention_heads=4,
                      intermediate_size=32, max_position_embeddings=66)  # fmt: skip
    MPNetForSequenceClassification(cfg).save_pretrained(tmp_path / "mpnet")
    rep = export_model(tmp_path / "mpnet", tmp_path / "out", optimize=False, threads=1)
    assert rep["onnx"]["max_abs_diff"] < 1e-4
    assert "random token ids" in rep["inputs_from"]
    assert load_runner(tmp_path / "out", threads=1).input_names == ["input_ids", "attention_mask"]


def test_cli_export_prints_the_checks(tmp_path, monkeypatch):
    rep = {"inputs_from": "SST-2 dev", "atol": 1e-3}
    rep["onnx"] = {"file": "model.onnx", "size_mb": 1.5, "max_abs_diff": 2e-6, "n_inputs": 33}
    rep["onnx_int8"] = {
        "file": "model.int8.onnx",
        "size_mb": 0.5,
        "max_abs_diff": 0.04,
        "agreement": 0.97,
        "n_inputs": 33,
    }
    seen = {}
    monkeypatch.setattr(export_mod, "export_model", lambda *a, **kw: seen.update(kw) or rep)
    res = CliRunner().invoke(
        app, ["export", "--model", "m", "--output", "o", "--quantize", "int8", "--threads", "1"]
    )
    assert res.exit_code == 0, res.output
    assert "max |onnx - torch| = 2.00e-06 over 33 inputs" in res.output and "agree on 97.0%" in res.output
    assert seen["quantize"] == "int8" and seen["threads"] == 1 and seen["optimize"] is False


def test_export_bad_inputs(tmp_path, tiny_encoder):
    with pytest.raises(TinyDistillError, match="model not found"):
        export_model(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TinyDistillError, match="no PyTorch weights"):
        export_model(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(TinyDistillError, match="unsupported export format"):
        export_model(tiny_encoder, tmp_path / "out", fmt="tflite")


# --------------------------------------------------------------------------- bench


def test_bench_rows_backends_ratios_and_metric(trained, tmp_path):
    res = bench(
        [str(trained.export), str(trained.student)],
        "torch,onnx,onnx-int8",
        "1,4",
        seq_len=16,
        threads=1,
        warmup=1,
        repeats=3,
        device="cpu",
        names=["teacher", "student"],
        task="sst2",
        data_dir=str(trained.glue),
        cache_dir=str(tmp_path / "cache"),
    )
    rows = res["rows"]
    assert [(r["model"], r["backend"]) for r in rows] == [
        (m, b) for m in ("teacher", "student") for b in ("torch", "onnx", "onnx-int8")
    ]
    assert rows[0]["ratios"]["speedup"] == 1.0 and rows[0]["ratios"]["params"] == 1.0
    for r in rows:
        assert set(r["latency_ms"]) == {"1", "4"} and r["throughput"]["4"] > 0
        assert {"speedup", "throughput", "params", "size"} <= set(r["ratios"])
        assert 0 <= r["dev"]["dev"]["accuracy"] <= 1
    assert rows[3]["ratios"]["params"] > 1  # the student is smaller
    assert list((tmp_path / "cache").rglob("model.int8.onnx"))  # the student was exported on the fly
    table = bench_table(res)
    assert "| teacher | onnx-int8 | cpu |" in table and "accuracy" in table


def test_bench_bad_inputs(trained, tmp_path):
    with pytest.raises(TinyDistillError, match="model not found"):
        bench([str(tmp_path / "nope")], "torch")
    with pytest.raises(TinyDistillError, match="unknown backend"):
        bench([str(trained.teacher)], "tensorrt")
    with pytest.raises(TinyDistillError, match="longer than"):
        bench([str(trained.teacher)], "torch", "1", seq_len=4096, device="cpu")


def test_cli_bench_models_a_b_json(trained, tmp_path):
    out = tmp_path / "b.json"
    args = ["bench", "--models", str(trained.teacher), str(trained.student), "--batch-sizes", "1,2"]
    args += ["--seq-len", "8", "--repeats", "2", "--warmup", "1", "--threads", "1", "--device", "cpu"]
    res = CliRunner().invoke(app, [*args, "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "| teacher | torch | cpu |" in res.output and "| student | torch | cpu |" in res.output
    assert len(json.loads(out.read_text())["rows"]) == 2


# --------------------------------------------------------------------------- predict


def _write_input(path: Path, rows: list[dict]) -> None:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t" if path.suffix == ".tsv" else ",")
            w.writeheader()
            w.writerows(rows)


def _read_output(path: Path) -> list[dict]:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t" if path.suffix == ".tsv" else ","))


@pytest.mark.parametrize("fmt", [".tsv", ".csv", ".jsonl"])
@pytest.mark.parametrize("which", ["torch", "onnx"])
def test_predict_labels_and_probabilities(trained, tmp_path, fmt, which):
    lines = (trained.glue / "SST-2" / "dev.tsv").read_text().splitlines()[1:]
    rows = [{"id": i, "sentence": s.split("\t")[0], "label": s.split("\t")[1]} for i, s in enumerate(lines)]
    src = tmp_path / f"in{fmt}"
    _write_input(src, rows)
    model = trained.teacher if which == "torch" else trained.export
    out = tmp_path / f"out{'.csv' if fmt == '.jsonl' else '.jsonl'}"
    info = predict_file(str(model), src, out, batch_size=8, threads=1)
    assert info["backend"] == which and info["text_columns"] == ["sentence"] and info["rows"] == len(rows)
    got = _read_output(out)
    assert [str(g["sentence"]) for g in got] == [r["sentence"] for r in rows]  # input order kept
    names = ["negative", "positive"]  # SST-2's 0 and 1
    for g in got:
        assert g["prediction"] in names
        assert float(g["prob_negative"]) + float(g["prob_positive"]) == pytest.approx(1.0, abs=1e-5)
    correct = sum(g["prediction"] == names[int(r["label"])] for g, r in zip(got, rows, strict=True))
    assert correct / len(rows) >= 0.9


def test_predict_without_a_header(trained, tmp_path):
    """--no-header names columns by position; a headerless file is never read with its first row eaten."""
    texts = ["the movie was good", 'a "great"\tfilm', "awful and dull\nplot", "the story was bad"]
    src = tmp_path / "plain.tsv"
    with open(src, "w", newline="") as f:
        csv.writer(f, delimiter="\t").writerows([[i % 2, t] for i, t in enumerate(texts)])
    out = tmp_path / "o.tsv"
    args = ["predict", "--model", str(trained.teacher), "--input", str(src), "--output", str(out)]
    res = CliRunner().invoke(app, [*args, "--no-header", "--text-columns", "1"])
    assert res.exit_code == 0, res.output
    assert res.stderr == f"predict: 4 rows read from {src} (0 skipped)\n"
    got = _read_output(out)
    assert [g["1"] for g in got] == texts and [g["0"] for g in got] == ["0", "1", "0", "1"]
    assert [g["prediction"] for g in got] == ["positive", "positive", "negative", "negative"]
    # without --text-columns the longest column is the text
    assert predict_file(str(trained.teacher), src, out, header=False)["text_columns"] == ["1"]
    # without --no-header, a first row that is data is refused rather than taken for the header
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2 and "looks like data, not a header: pass --no-header" in refused.stderr
    semi = tmp_path / "semi.csv"
    semi.write_text("sentence;label\nthe movie was good;1\n")
    info = predict_file(str(trained.teacher), semi, tmp_path / "s.jsonl", delimiter=";")
    assert info["rows"] == 1 and _read_output(tmp_path / "s.jsonl")[0]["prediction"] == "positive"


def test_progress_bar_on_a_terminal_only(monkeypatch):
    import io

    from tinydistill.progress import MIN_STEPS, progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    for stream, total, shown in (
        (Terminal(), 20, True),
        (Terminal(), MIN_STEPS - 1, False),
        (io.StringIO(), 20, False),
    ):
        monkeypatch.setattr("sys.stderr", stream)
        assert list(progress(range(total), total, "predict")) == list(range(total))
        assert ("predict" in stream.getvalue()) == shown, (type(stream), total)


def test_saved_models_carry_label_names(trained, tmp_path):
    """config.json of every saved model names the classes, so a plain HF pipeline answers with names."""
    from transformers import pipeline

    pruned = tmp_path / "pruned"
    shape = tmp_path / "shape.json"
    shape.write_text(json.dumps({"num_hidden_layers": 1, "intermediate_size": 32}))
    tinydistill.prune(teacher=str(trained.teacher), output=str(pruned), shape=str(shape), task="sst2",
                      data_dir=str(trained.glue), calibration_samples=8)  # fmt: skip
    names = {"0": "negative", "1": "positive"}
    for model in (trained.teacher, trained.student, pruned, trained.export):
        config = json.loads((model / "config.json").read_text())
        assert config["id2label"] == names and config["label2id"] == {"negative": 0, "positive": 1}, model
    for model in (trained.teacher, trained.student, pruned):
        clf = pipeline("text-classification", model=str(model), device="cpu")
        got = [g["label"] for g in clf(["the movie was good", "the plot was awful"])]
        assert set(got) <= {"negative", "positive"}, (model, got)
        if model == trained.teacher:  # a trained model: the names are the right ones
            assert got == ["positive", "negative"]


def test_predict_sentence_pairs_from_an_onnx_file(trained, tmp_path):
    src = tmp_path / "pairs.jsonl"
    _write_input(src, [{"sentence1": "the movie was good", "sentence2": "the plot was dull"}] * 3)
    info = predict_file(str(trained.export / "model.int8.onnx"), src, tmp_path / "o.tsv", threads=1)
    assert info["backend"] == "onnx-int8" and info["text_columns"] == ["sentence1", "sentence2"]
    assert len(_read_output(tmp_path / "o.tsv")) == 3


def test_predict_bad_inputs(trained, tmp_path):
    good = tmp_path / "in.tsv"
    good.write_text("sentence\tlabel\nthe movie was good\t1\n")
    with pytest.raises(TinyDistillError, match="model not found"):
        predict_file(str(tmp_path / "missing"), good, tmp_path / "o.tsv")
    bad = tmp_path / "bad.tsv"
    bad.write_text("sentence\tlabel\nthe movie\t1\textra\n")
    with pytest.raises(TinyDistillError, match="expected 2 columns"):
        predict_file(str(trained.teacher), bad, tmp_path / "o.tsv")
    broken = tmp_path / "bad.jsonl"
    broken.write_text('{"sentence": "ok"}\n{"sentence": \n')
    with pytest.raises(TinyDistillError, match="invalid JSON"):
        predict_file(str(trained.teacher), broken, tmp_path / "o.tsv")
    with pytest.raises(TinyDistillError, match="not found"):
        predict_file(str(trained.teacher), good, tmp_path / "o.tsv", text_columns=["review"])
    with pytest.raises(TinyDistillError, match="unsupported file type"):
        predict_file(str(trained.teacher), good, tmp_path / "o.xlsx")
    res = CliRunner().invoke(app, ["predict", "--model", str(tmp_path / "missing"), "--input", str(good),
                                   "--output", str(tmp_path / "o.tsv")])  # fmt: skip
    assert res.exit_code == 2 and "error: model not found" in res.output


# --------------------------------------------------------------------------- report


def _is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_report_from_real_runs(trained, tmp_path):
    res = build_report(
        [str(trained.teacher), str(trained.student)], tmp_path / "rep", seq_len=16, threads=1, repeats=3
    )
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| SST-2 | teacher | teacher | accuracy |" in md and "student of teacher" in md
    assert _is_png(tmp_path / "rep" / "loss_curves.png") and _is_png(
        tmp_path / "rep" / "accuracy_vs_latency.png"
    )
    student = next(r for r in res["rows"] if r["role"] == "student")
    assert student["retention"] > 80 and student["params_ratio"] > 1 and student["speedup"] > 0


def _fake_run(root: Path, name: str, task: str, dev: dict, teacher: str | None = None) -> Path:
    d = root / name
    d.mkdir(parents=True)
    hist = [{"step": s, "loss": 2.0 / s, "lr": 1e-4} for s in range(1, 30)]
    if teacher is None:
        metrics = {"task": task, "model": "m", "steps": 29, "params": 22_700_000, "dev": dev, "evals": [],
                   "history": hist}  # fmt: skip
    else:
        inter = [{**h, "embedding": 0.1 / h["step"], "hidden": 1.0 / h["step"], "attention": 0.9 / h["step"]}
                 for h in hist]  # fmt: skip
        stages = {"intermediate": {"steps": 29, "history": inter, "evals": [], "best": None},
                  "prediction": {"steps": 29, "history": [{**h, "prediction": h["loss"]} for h in hist],
                                 "evals": [{"step": 29, **dev}], "best": dev}}  # fmt: skip
        metrics = {"task": task, "teacher": teacher, "student": "tinybert-4l-312", "layer_map": [3, 6],
                   "train_examples": 10, "stages": stages, "dev": dev, "train_seconds": 1.0,
                   "params": 14_400_000, "teacher_params": 22_700_000}  # fmt: skip
    (d / "metrics.json").write_text(json.dumps(metrics))
    return d


def test_report_from_fabricated_runs_with_bench_json(tmp_path):
    t = _fake_run(tmp_path, "mrpc-teacher", "MRPC", {"f1": 0.88, "accuracy": 0.83})
    s = _fake_run(tmp_path, "mrpc-student", "MRPC", {"f1": 0.81, "accuracy": 0.72}, teacher=str(t))
    rows = [
        {"path": str(t), "backend": "torch", "device": "cpu", "latency_ms": {"1": {"p50": 40.0}},
         "dev": {"dev": {"f1": 0.90, "accuracy": 0.85}}},  # re-evaluated: replaces metrics.json's 0.88
        {"path": str(s), "backend": "torch", "device": "cpu", "latency_ms": {"1": {"p50": 5.0}}},
        {"path": str(s), "backend": "onnx-int8", "device": "cpu", "latency_ms": {"1": {"p50": 1.0}},
         "dev": {"dev": {"f1": 0.80, "accuracy": 0.71}}},
    ]  # fmt: skip
    bench_file = tmp_path / "bench.json"
    bench_file.write_text(json.dumps({"meta": {}, "rows": rows}))
    # only the student is listed: its teacher is found through metrics.json
    res = build_report([str(s)], tmp_path / "rep", bench_files=[str(bench_file)])
    student = next(r for r in res["rows"] if r["role"] == "student")
    assert student["retention"] == pytest.approx(100 * 0.81 / 0.90)
    assert student["speedup"] == pytest.approx(8.0) and student["params_ratio"] == pytest.approx(22.7 / 14.4)
    assert {p["name"] for p in res["points"]} == {"mrpc-teacher", "mrpc-student", "mrpc-student (onnx-int8)"}
    assert (
        "| mrpc-student (onnx-int8) | MRPC | onnx-int8 | f1 | 80.00 | 1.00 | 40.0x |"
        in (tmp_path / "rep" / "report.md").read_text()
    )
    assert _is_png(tmp_path / "rep" / "loss_curves.png") and _is_png(
        tmp_path / "rep" / "accuracy_vs_latency.png"
    )


def test_report_bad_run_dirs(tmp_path):
    (tmp_path / "norun").mkdir()
    with pytest.raises(TinyDistillError, match="no metrics.json"):
        build_report([str(tmp_path / "norun")], tmp_path / "rep")
    res = CliRunner().invoke(app, ["report", str(tmp_path / "missing"), "--output", str(tmp_path / "rep")])
    assert res.exit_code == 2 and "error: run dir not found" in res.output


def test_export_bert_student_of_a_tokenizer_without_token_types(tmp_path, tiny_encoder):
    """A BERT student distilled from an MPNet teacher keeps the teacher's tokenizer, which makes no
    token_type_ids: the export feeds zeros for them."""
    tok = BertTokenizerFast.from_pretrained(tiny_encoder, model_input_names=["input_ids", "attention_mask"])
    assert "token_type_ids" not in tok("a b")
    tok.save_pretrained(tiny_encoder)
    rep = export_model(tiny_encoder, tmp_path / "out", optimize=False, threads=1)
    assert rep["onnx"]["max_abs_diff"] < 1e-4
    assert "token_type_ids" in load_runner(tmp_path / "out", threads=1).input_names
