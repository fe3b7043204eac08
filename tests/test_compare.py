"""benchmarks/compare_methods.py: same budget for every method, a table and JSON, on the toy task."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

import tinydistill

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "compare_methods.py"


@pytest.fixture(scope="module")
def compare():
    spec = importlib.util.spec_from_file_location("compare_methods", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_budget_split_and_commands(compare) -> None:
    base = ["--task", "mrpc", "--teacher", "t", "--epochs", "4", "--max-train-samples", "100"]
    args = compare.parse_args(base)
    tb = compare.method_kwargs(args, compare.recipe_file("tinybert4"))
    assert tb["intermediate_epochs"] == tb["prediction_epochs"] == 2.0  # TinyBERT's two runs share the budget
    lrc = compare.method_kwargs(args, compare.recipe_file("lrcbert4"))
    assert lrc["intermediate_epochs"] == lrc["prediction_epochs"] == 2.0  # so do LRC-BERT's two stages
    assert lrc["max_train_samples"] == 100
    kd = compare.method_kwargs(args, compare.recipe_file("kd"))
    assert kd["epochs"] == 4.0 and "intermediate_epochs" not in kd
    full = compare.method_kwargs(
        compare.parse_args([*base, "--tinybert-full-budget"]), compare.recipe_file("tinybert4")
    )
    assert "intermediate_epochs" not in full
    out = compare.main([*base, "--dry-run"])
    assert len(out["commands"]) == len(compare.DEFAULT_RECIPES)
    assert all(c.startswith("tinydistill distill --recipe ") and "--epochs 4.0" in c for c in out["commands"])


def test_runs_end_to_end_on_the_toy_task(compare, tmp_path, glue_dir, tiny_encoder, capsys) -> None:
    teacher = tmp_path / "teacher"
    tinydistill.finetune(
        task="sst2",
        data_dir=str(glue_dir),
        model=str(tiny_encoder),
        output=str(teacher),
        max_steps=2,
        batch_size=16,
    )
    out = tmp_path / "cmp"
    result = compare.main(
        [
            "--task",
            "sst2",
            "--data-dir",
            str(glue_dir),
            "--teacher",
            str(teacher),
            "--student",
            str(tiny_encoder),
            "--output",
            str(out),
            "--recipes",
            "kd,tinybert4",
            "--max-steps",
            "1",
            "--batch-size",
            "16",
            "--epochs",
            "2",
        ]
    )
    rows = {r["method"]: r for r in result["rows"]}
    assert list(rows) == ["teacher", "kd", "tinybert4"]
    assert rows["kd"]["steps"] == 1 and rows["tinybert4"]["steps"] == 2
    assert all("accuracy" in r["dev"] for r in rows.values())
    saved = json.loads((out / "compare.json").read_text())
    assert [r["method"] for r in saved["rows"]] == list(rows)
    md = (out / "compare.md").read_text()
    assert "| method | accuracy |" in md and "| kd |" in md and "--recipe" in md
    assert md in capsys.readouterr().out
