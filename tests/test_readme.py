"""The README is a newcomer's page whose figures come from the records, not retyped by hand."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path

import typer

from tinydistill.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
MAIN_JOB = ROOT / "benchmarks" / "results" / "main-job"


def headline(text: str) -> str:
    return next(line.removeprefix("> ") for line in text.splitlines() if "mean retention:" in line)


def table(text: str) -> list[str]:
    """The first markdown table's lines."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| model |"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def test_readme_headline_is_the_results_headline():
    results = headline((ROOT / "docs" / "results.md").read_text())
    assert results.startswith("mean retention: ")
    assert headline(README) == results
    date = re.search(r"\d{4}-\d\d-\d\d$", results)[0]
    assert f"headline of [docs/results.md](docs/results.md), {date}:" in README


def test_results_headline_is_what_the_ledger_gives(tmp_path):
    """docs/results.md is generated: the suite's report over the committed ledger gives its headline."""
    spec = importlib.util.spec_from_file_location("glue_suite", ROOT / "benchmarks" / "glue_suite.py")
    suite = importlib.util.module_from_spec(spec)
    sys.modules["glue_suite"] = suite  # dataclasses resolve their module by name
    try:
        spec.loader.exec_module(suite)
        ledger = tmp_path / "ledger"
        shutil.copytree(ROOT / "benchmarks" / "results" / "glue-suite", ledger)
        out = tmp_path / "results.md"
        args = ["--report-only", "--ledger", str(ledger), "--output", str(tmp_path / "runs")]
        assert suite.main([*args, "--results", str(out)]) == 0
    finally:
        sys.modules.pop("glue_suite", None)
    undated = re.compile(r", \d{4}-\d\d-\d\d$")  # the date is the day it was generated
    generated = undated.sub("", headline(out.read_text()))
    assert generated == undated.sub("", headline((ROOT / "docs" / "results.md").read_text()))


def test_readme_main_job_table_is_the_record():
    record = json.loads((MAIN_JOB / "record.json").read_text())
    assert table(README) == table((MAIN_JOB / "summary.md").read_text())
    assert f"(`./scripts/main.sh`, {record['date']}," in README
    int8 = record["onnx_int8_latency_ms"]
    assert f"ONNX int8: {int8['student']:.2f} ms vs {int8['teacher']:.2f} ms" in README


def test_readme_is_a_newcomers_page():
    lines = README.splitlines()
    assert len(lines) <= 250
    setup = README.split("## Set-up: two commands", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    assert [line.split()[0] for line in setup.splitlines()] == ["./scripts/main.sh", "./scripts/test.sh"]
    # one line per command of the CLI
    commands = typer.main.get_command(app).commands
    rows = [line for line in lines if re.match(r"^\| `[\w-]+` \|", line)]
    assert sorted(re.match(r"^\| `([\w-]+)`", r)[1] for r in rows) == sorted(commands)
    # every docs link resolves; no superseded history
    for link in re.findall(r"\]\(((?:docs|benchmarks)/[^)#]+)", README):
        assert (ROOT / link).exists(), link
    assert "Before 20" not in README


def test_readme_names_main_sh_extras():
    extras = re.search(r"^EXTRAS=([\w,]+)$", (ROOT / "scripts" / "main.sh").read_text(), re.M)[1]
    assert f"`{extras}`" in README
