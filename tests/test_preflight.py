"""The main job's install brings what every default stage imports; a missing package stops the
pipeline before any stage runs. (.ci/main-job proves the install itself from a fresh venv.)"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
import tomllib
from conftest import without_row_counts, write_sentiment_csv
from typer.testing import CliRunner

from tinydistill import config as C
from tinydistill.cli import app
from tinydistill.pipeline import preflight
from tinydistill.pipeline.plan import make_plan
from tinydistill.pipeline.stages import STAGES

ROOT = Path(__file__).resolve().parents[1]


def main_sh_extras() -> set[str]:
    found = re.search(r"^EXTRAS=([\w,]+)$", (ROOT / "scripts" / "main.sh").read_text(), re.M)
    assert found, "scripts/main.sh sets EXTRAS=..."
    return set(found[1].split(","))


def test_main_sh_installs_every_extra_a_default_stage_needs(monkeypatch, tmp_path):
    monkeypatch.setattr(preflight, "_installed", lambda module: False)  # as on a bare machine

    def absent(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(preflight.metadata, "distribution", absent)
    cfg = C.build(C.PipelineConfig, str(ROOT / "configs" / "main.yaml"), output=str(tmp_path / "out"))
    plan = make_plan(cfg)
    stages = {s.name: s.options(plan) for s in STAGES if plan.enabled(s.name)}
    assert {"teacher", "start", "distill", "evaluate", "export", "bench", "report", "card"} <= set(stages)
    needed = {extra for _, _, extra in preflight.missing_packages(plan.cfg, stages)}
    assert {"deploy", "mpnet"} <= needed  # export/bench/report; the config's teacher
    assert needed <= main_sh_extras()
    # and every extra the stages name exists, with the modules it is named for
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert main_sh_extras() <= set(extras)
    deploy = {re.split(r"[<>=]", d)[0] for d in extras["deploy"]}
    assert {"onnx", "onnxruntime", "onnxscript", "matplotlib"} <= deploy


def test_only_the_stages_that_run_are_checked(monkeypatch):
    monkeypatch.setattr(preflight, "_installed", lambda module: module != "onnxruntime")
    cfg = C.PipelineConfig(teacher="some/dir")
    assert preflight.missing_packages(cfg, {"bench": {"bench": {"backend": "torch"}}}) == []
    assert preflight.missing_packages(cfg, {"bench": {"bench": {"backend": "torch,onnx"}}}) == [
        ("bench", "onnxruntime", "deploy")
    ]
    parquet = C.PipelineConfig(teacher="some/dir", task="custom", train_file="t.parquet")
    monkeypatch.setattr(preflight, "_installed", lambda module: module != "pyarrow")
    assert preflight.missing_packages(parquet, {"teacher": {}}) == [("teacher", "pyarrow", "parquet")]


def test_a_missing_package_stops_the_pipeline_before_any_stage(monkeypatch, tmp_path, tiny_encoder):
    monkeypatch.setattr(preflight, "_installed", lambda module: module not in {"onnxscript", "matplotlib"})
    write_sentiment_csv(tmp_path / "train.csv", 16, seed=1)
    out = tmp_path / "out"
    args = ["pipeline", "--task", "custom", "--train-file", tmp_path / "train.csv", "--dev-file"]
    args += [tmp_path / "train.csv", "--teacher", tiny_encoder, "--output", out]
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 2, (result.stderr, result.exception)
    error = without_row_counts(result.stderr)
    assert error.count("\n") == 1 and error.startswith("error: not installed: "), error
    assert "export needs onnxscript" in error and "report needs matplotlib" in error
    assert "pip install 'tinydistill[deploy]'" in error
    assert not (out / "teacher").exists() and not (out / "pipeline.json").exists()


@pytest.mark.parametrize("script", ["run", "main-job"])
def test_ci_runs_the_readme_commands(script):
    """.ci/run calls the README's test command and the fresh-venv main job, which calls main.sh."""
    text = (ROOT / ".ci" / script).read_text()
    if script == "run":
        assert "./scripts/test.sh" in text and ".ci/main-job" in text
    else:
        assert 'VENV="$work/venv" ./scripts/main.sh' in text
