"""One of each: the CLI is generated from the config dataclasses, recipes ship in the package,
the package has no import cycles, start-up loads no heavy library, and the Python API takes objects."""

from __future__ import annotations

import ast
import dataclasses
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
import typer
from conftest import tiny_bert_config, write_sst2_like
from safetensors.torch import load_file
from transformers import BertForSequenceClassification, BertModel, BertTokenizerFast
from typer.testing import CliRunner

import tinydistill
from tinydistill import config as C
from tinydistill.cli import COMMANDS, app

SRC = Path(__file__).resolve().parents[1] / "src" / "tinydistill"
ROOT = SRC.parents[1]


def run_cli(*args: str):
    return CliRunner().invoke(app, list(args))


# ----------------------------------------------------------------------------- the CLI


def test_version_and_every_command_takes_config() -> None:
    result = run_cli("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"tinydistill {tinydistill.__version__}"
    commands = typer.main.get_command(app).commands
    assert set(commands) == {name for name, *_ in COMMANDS}
    for name, command in commands.items():
        opts = {o for p in command.params for o in p.opts}
        assert "--config" in opts, name
        help_text = run_cli(name, "--help").stdout
        assert "--config" in help_text, name


def test_every_cli_field_has_one_flag_and_help() -> None:
    """Each option is declared once (the config field); the CLI flag, type and help come from it."""
    for name, cls, *_ in COMMANDS:
        opts = {p.name: p for p in typer.main.get_command(app).commands[name].params if p.name != "config"}
        for f in dataclasses.fields(cls):
            if not f.metadata.get("cli", True):
                continue
            assert f.name in opts or f"{f.name}__args" in opts, (name, f.name)
            assert f.metadata.get("help"), f"{name}: {f.name} has no help text"


def test_help_loads_no_heavy_library() -> None:
    """`tinydistill --help` imports typer and the config module only (torch & co. load in commands)."""
    code = (
        "import sys, tinydistill.cli; "
        "heavy = [m for m in ('torch', 'transformers', 'sklearn', 'accelerate', 'onnxruntime') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    help_out = subprocess.run(
        [sys.executable, "-m", "tinydistill", "--help"], capture_output=True, text=True, timeout=60
    )
    assert help_out.returncode == 0 and "distill" in help_out.stdout and "recipes" in help_out.stdout


def test_config_file_for_a_command_without_a_dataclass_before(tmp_path: Path) -> None:
    """`prune --config` (and every other command) reads the same YAML options as its flags."""
    cfg = tmp_path / "prune.yaml"
    cfg.write_text("teacher: t\noutput: o\ntask: sst2\ncalibration_samples: 0\n")
    result = run_cli("prune", "--config", str(cfg))
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: calibration_samples must be positive, got 0"
    cfg.write_text("teacher: t\noutput: o\nbogus: 1\n")
    result = run_cli("prune", "--config", str(cfg))
    assert result.exit_code == 2 and "unknown config option(s): bogus" in result.stderr
    result = run_cli("prune", "--output", "o")
    assert (
        result.exit_code == 2
        and result.stderr.strip() == "error: missing --teacher (or 'teacher:' in the --config file)"
    )


# ----------------------------------------------------------------------------- recipes


def test_recipes_list_show_copy(tmp_path: Path) -> None:
    listed = run_cli("recipes")
    assert listed.exit_code == 0
    names = [line.split()[0] for line in listed.stdout.splitlines()]
    assert {"tinybert4", "tinybert6", "lrcbert4", "kd", "pkd", "crd"} <= set(names)
    assert all(len(line.split(None, 1)) == 2 for line in listed.stdout.splitlines())  # with descriptions
    shown = run_cli("recipes", "show", "lrcbert4")
    assert shown.exit_code == 0 and "cos_nce" in shown.stdout
    mine = tmp_path / "mine" / "my-kd.yaml"
    copied = run_cli("recipes", "copy", "kd", str(mine))
    assert copied.exit_code == 0 and mine.read_text() == C.recipe_path("kd").read_text()
    again = run_cli("recipes", "copy", "kd", str(mine))
    assert again.exit_code == 2 and "exists" in again.stderr
    # a folder of your own recipes is listed beside the shipped ones
    listed = run_cli("recipes", "--dir", str(mine.parent))
    assert "my-kd" in listed.stdout
    missing = run_cli("recipes", "show", "nope")
    assert missing.exit_code == 2 and "recipe not found: nope" in missing.stderr
    # a copied recipe is a method: edit it and distill with it
    cfg = C.build(C.DistillConfig, None, teacher="t", recipe=str(mine))
    assert cfg.method == "kd" and cfg.stages == [{"name": "distill", "terms": {"kd": 1.0}}]


def test_recipes_are_package_data(tmp_path: Path) -> None:
    """A wheel built from the sources carries the recipe files (built from a copy: no build/ here)."""
    source = tmp_path / "source"
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    wheels = tmp_path / "wheels"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(source),
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    wheel = next(wheels.glob("tinydistill-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for recipe in ("tinybert4", "tinybert6", "lrcbert4", "kd", "pkd", "crd"):
        assert f"tinydistill/recipes/{recipe}.yaml" in names


def test_recipe_names_optimizer_scheduler_logger() -> None:
    cfg = C.build(C.DistillConfig, None, teacher="t", recipe="kd")
    assert (cfg.optimizer, cfg.scheduler, cfg.logger) == ("adamw", "linear", "tensorboard")
    cfg = C.build(C.DistillConfig, None, teacher="t", optimizer="sgd", scheduler="cosine", logger="none")
    assert (cfg.optimizer, cfg.scheduler, cfg.logger) == ("sgd", "cosine", "none")


def test_named_optimizer_and_schedule_are_used() -> None:
    from tinydistill.training.optim import make_optimizer, make_scheduler

    model = torch.nn.ModuleDict({"dense": torch.nn.Linear(3, 3), "LayerNorm": torch.nn.LayerNorm(3)})
    sgd = make_optimizer("sgd", model, 0.1, 0.01)
    assert isinstance(sgd, torch.optim.SGD)
    decays = sorted(g["weight_decay"] for g in sgd.param_groups)
    assert decays == [0.0, 0.01] and len(sgd.param_groups[0]["params"]) == 1  # only dense.weight decays
    sched = make_scheduler("cosine", sgd, 0, 10)
    for _ in range(5):
        sgd.step()
        sched.step()
    assert sgd.param_groups[0]["lr"] == pytest.approx(0.05)  # half-way down a cosine from 0.1
    assert isinstance(make_optimizer("adamw", model, 1e-3, 0.0), torch.optim.AdamW)


# ----------------------------------------------------------------------------- the import graph


def _imports(path: Path, package: str) -> set[str]:
    """tinydistill modules a file imports anywhere (top level and inside functions)."""
    tree = ast.parse(path.read_text())
    module = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(module.split(".")[: -node.level] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if m == package or m.startswith(package + ".")}


def test_no_import_cycles_and_features_never_import_the_cli() -> None:
    modules = {
        ".".join(p.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__"): p
        for p in SRC.rglob("*.py")
    }
    graph = {
        m: {i for i in _imports(p, "tinydistill") if i in modules and i != m} for m, p in modules.items()
    }
    for name, deps in graph.items():
        if name not in ("tinydistill.cli", "tinydistill.__main__"):
            assert "tinydistill.cli" not in deps, f"{name} imports the CLI"
    # the package's own __init__ is where everything starts: leave it out of the cycle search
    graph = {m: d - {"tinydistill"} for m, d in graph.items() if m != "tinydistill"}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in graph.get(node, ()):
            if state.get(dep) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*path[path.index(dep) :], dep]))
            if dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])


# ----------------------------------------------------------------------------- the Python API


def test_api_names_survive_submodule_imports() -> None:
    """A submodule named like an API function (tinydistill.augment, .pipeline, .bench) would replace it."""
    import importlib

    for path in SRC.rglob("*.py"):
        name = ".".join(path.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__")
        if name != "tinydistill.__main__":
            try:
                importlib.import_module(name)
            except ImportError:  # an optional extra that is not installed
                continue
    assert all(callable(getattr(tinydistill, n)) for n in tinydistill.__all__ if n != "__version__")


@pytest.fixture(scope="module")
def objects(tmp_path_factory):
    from conftest import write_vocab

    root = tmp_path_factory.mktemp("objects")
    tok = BertTokenizerFast(vocab=str(write_vocab(root / "vocab.txt")), do_lower_case=True)
    glue = write_sst2_like(root / "glue", n_train=64, n_dev=16)
    torch.manual_seed(0)
    teacher = BertForSequenceClassification(tiny_bert_config(len(tok), layers=2, hidden=32, num_labels=2))
    return {"root": root, "tok": tok, "glue": glue, "teacher": teacher}


def _rows(path: Path) -> list[tuple[str, int]]:
    lines = path.read_text().splitlines()[1:]
    return [(text, int(label)) for text, label in (line.split("\t") for line in lines)]


def test_api_takes_model_objects_and_rows(objects) -> None:
    root, tok, glue = objects["root"], objects["tok"], objects["glue"]
    train, dev = _rows(glue / "SST-2" / "train.tsv"), _rows(glue / "SST-2" / "dev.tsv")
    fast = dict(max_steps=4, batch_size=16, learning_rate=2e-3, logging_steps=1)
    teacher = tinydistill.finetune(
        model=objects["teacher"],
        tokenizer=tok,
        train=train,
        dev=dev,
        task="sst2",
        output=str(root / "t"),
        **fast,
    )
    assert isinstance(teacher.model, torch.nn.Module) and teacher.paths["metrics"].is_file()
    assert json.loads(teacher.paths["metrics"].read_text())["dev"] == teacher["dev"]
    torch.manual_seed(1)
    student = BertForSequenceClassification(tiny_bert_config(len(tok), layers=1, hidden=32, num_labels=2))
    result = tinydistill.distill(
        teacher=teacher.model, student=student, tokenizer=tok, train=train, dev=dev, task="sst2",
        recipe="kd", output=str(root / "s"), **fast,
    )  # fmt: skip
    assert result["method"] == "kd" and result["stages"]["distill"]["steps"] == 4
    assert result.model is not None and (result.output / "model.safetensors").is_file()
    # the same rows from files give the same run
    from_files = tinydistill.distill(
        teacher=str(root / "t"), student=student.__class__(student.config), task="sst2",
        data_dir=str(glue), recipe="kd", output=str(root / "s2"), **fast,
    )  # fmt: skip
    assert from_files["train_examples"] == result["train_examples"] == len(train)
    # evaluate an object on rows
    verdict = tinydistill.evaluate("sst2", result.model, tokenizer=tok, dev=dev)
    assert verdict.metrics["dev"] == result["dev"]
    with pytest.raises(tinydistill.TinyDistillError, match="label 'maybe'"):
        tinydistill.evaluate("sst2", result.model, tokenizer=tok, dev=[("a film", "maybe")])


def test_finetune_same_seed_same_weights(objects) -> None:
    """A base encoder's new classification head is drawn after seeding: two runs write identical weights."""
    encoder = objects["root"] / "base-encoder"
    torch.manual_seed(123)
    BertModel(tiny_bert_config(len(objects["tok"]), layers=1, hidden=32)).save_pretrained(encoder)
    objects["tok"].save_pretrained(encoder)
    runs = []
    for name in ("a", "b"):
        torch.manual_seed(len(runs))  # the global RNG state must not matter
        out = objects["root"] / f"seed-{name}"
        tinydistill.finetune(
            model=str(encoder), task="sst2", data_dir=str(objects["glue"]), output=str(out), max_steps=3,
            batch_size=16, logging_steps=1,
        )  # fmt: skip
        runs.append(load_file(out / "model.safetensors"))
    assert runs[0].keys() == runs[1].keys()
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
