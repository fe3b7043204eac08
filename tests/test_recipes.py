"""Recipes: validation, flag precedence, the phase switch inside a run, every shipped recipe end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from conftest import tiny_bert_config, write_sst2_like, write_vocab
from transformers import BertForSequenceClassification, BertTokenizerFast
from typer.testing import CliRunner

import tinydistill
from tinydistill.cli import app
from tinydistill.config import RECIPE_DIR, DistillConfig, build, recipe_path
from tinydistill.errors import TinyDistillError
from tinydistill.losses import HiddenProjection
from tinydistill.training.schedule import Phase, Schedule, parse_stages, phase_starts
from tinydistill.training.terms import Distiller, build_term_modules, parse_term_options

SHIPPED = ["tinybert4", "tinybert6", "lrcbert4", "kd", "pkd", "crd"]
FAST = dict(learning_rate=2e-3, batch_size=16, logging_steps=1)


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> dict[str, Path]:
    """A toy SST-2, a tiny teacher fine-tuned on it for a few steps, a 2-layer config-only student."""
    root = tmp_path_factory.mktemp("recipes")
    glue = write_sst2_like(root / "glue", n_train=48, n_dev=16)
    tok_dir = root / "tok"
    tok_dir.mkdir()
    tok = BertTokenizerFast(vocab=str(write_vocab(tok_dir / "vocab.txt")), do_lower_case=True)
    torch.manual_seed(0)
    encoder = root / "encoder"
    BertForSequenceClassification(tiny_bert_config(len(tok), layers=2, hidden=32)).save_pretrained(encoder)
    tok.save_pretrained(encoder)
    teacher = root / "teacher"
    tinydistill.finetune(
        task="sst2", data_dir=str(glue), model=str(encoder), output=str(teacher), max_steps=6, **FAST
    )
    student = root / "student_cfg"
    student.mkdir()
    cfg = tiny_bert_config(len(tok), layers=2, hidden=16, heads=4)
    (student / "config.json").write_text(json.dumps(cfg.to_dict()))
    return {"root": root, "glue": glue, "teacher": teacher, "student": student}


# one stage of two phases: the terms change at 80% of the steps, under one optimizer and LR schedule
SWITCH = [
    {
        "name": "distill",
        "schedule": [
            {"terms": {"cos_nce": 1.0}, "fraction": 0.8},
            {"terms": {"cos_nce": 1.0, "soft_ce": 1.0, "hard_ce": 1.0}},
        ],
    }
]


def run(toy, out: str, **kw) -> tuple[dict, dict]:
    output = toy["root"] / out
    metrics = tinydistill.distill(
        task="sst2",
        data_dir=str(toy["glue"]),
        teacher=str(toy["teacher"]),
        student=str(toy["student"]),
        output=str(output),
        **{**FAST, **kw},
    )
    return metrics, yaml.safe_load((output / "config.yaml").read_text())


# --------------------------------------------------------------------------- recipes load and validate


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_recipes_validate(name: str) -> None:
    path = RECIPE_DIR / f"{name}.yaml"
    assert recipe_path(name) == path and path.is_file()
    cfg = build(DistillConfig, [path], teacher="t")
    assert cfg.method == name and cfg.stages
    stages = parse_stages(cfg.stages)
    parse_term_options(cfg.term_options)
    assert cfg.student == ("tinybert-6l-768" if name == "tinybert6" else "tinybert-4l-312")
    if name.startswith(("tinybert", "lrcbert")):
        assert [s.name for s in stages] == ["intermediate", "prediction"]
    else:
        assert len(stages) == 1
    assert cfg.perturbation["enabled"] is (name == "lrcbert4")


BAD = [
    ("stages: [{name: a, terms: {cos_nse: 1}}]", "unknown loss term.*cos_nse"),
    (
        "stages: [{name: a, schedule: [{terms: {kd: 1}, fraction: 1.2}, {terms: {kd: 1}}]}]",
        "fraction must be in",
    ),
    (
        "stages: [{name: a, schedule: [{terms: {kd: 1}, fraction: 0}, {terms: {kd: 1}}]}]",
        "fraction must be in",
    ),
    (
        "stages: [{name: a, schedule: [{terms: {kd: 1}, fraction: 0.6}, {terms: {kd: 1}, fraction: 0.5},"
        " {terms: {kd: 1}}]}]",
        "add up to 1.1",
    ),
    ("stages: [{name: a, schedule: [{terms: {kd: 1}}, {terms: {kd: 1}}]}]", "needs 'fraction' or 'steps'"),
    (
        "stages: [{name: a, schedule: [{terms: {kd: 1}, steps: 3}, {terms: {kd: 1}, fraction: 0.5}]}]",
        "last phase",
    ),
    (
        "stages: [{name: a, schedule: [{terms: {kd: 1}, steps: 0}, {terms: {kd: 1}}]}]",
        "steps must be a positive",
    ),
    ("stages: [{terms: {kd: 1}}]", "needs a 'name'"),
    ("stages: [{name: a, terms: {kd: 1}}, {name: a, terms: {kd: 1}}]", "unique"),
    ("stages: [{name: a, terms: {kd: 1}, lr: 0.1}]", "unknown key.*lr"),
    ("stages: [{name: a, terms: {kd: 0}}]", "no loss term has a non-zero weight"),
    ("stages: [{name: a, terms: {kd: -1}}]", "must be >= 0"),
    ("stages: [{name: a, terms: {kd: 1}, schedule: []}]", "either 'terms' or 'schedule'"),
    ("stages: []", "non-empty list"),
    ("stages: [{name: a, terms: {kd: 1}}]\nweights: {hidden: 2}", "unknown config option.*weights"),
    ("stages: [{name: a, terms: {kd: 1}}]\nstage: b", "one of the recipe's stages"),
    ("term_options: {cos_nce: {negatives: 0}}", "negatives must be >= 1"),
    ("term_options: {cos_nce: {k: 4}}", "unknown option.*cos_nce.*k"),
    ("term_options: {hidden: {x: 1}}", "take no options"),
    ("term_options: {nope: {}}", "unknown loss term.*nope"),
    ("perturbation: {enabled: true, epsilon: -1}", "epsilon must be positive"),
    ("perturbation: {enable: true}", "unknown option.*perturbation"),
    ("methd: kd", "unknown config option.*methd"),
]


@pytest.mark.parametrize(("content", "message"), BAD)
def test_recipe_validation_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(content + "\n")
    with pytest.raises(TinyDistillError, match=message):
        build(DistillConfig, [path], teacher="t")


def test_flags_override_the_recipe_and_mappings_merge(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "temperature: 2.0\n"
        "stages: [{name: a, terms: {kd: 1.0}, learning_rate: 0.01, epochs: 7, max_steps: 9}]\n"
        "term_options: {kd: {alpha: 0.3, temperature: 5.0}}\nperturbation: {enabled: true, epsilon: 0.5}\n"
    )
    cfg = build(DistillConfig, [recipe], teacher="t")
    assert cfg.stages[0]["learning_rate"] == 0.01 and cfg.temperature == 2.0
    cfg = build(DistillConfig, [recipe], teacher="t", temperature=3.0, learning_rate=1e-4, epochs=2.0)
    assert cfg.temperature == 3.0
    assert cfg.stages == [{"name": "a", "terms": {"kd": 1.0}, "max_steps": 9}]  # the flags win over the stage
    # a config file on top of the recipe changes single keys of the mappings
    extra = tmp_path / "c.yaml"
    extra.write_text("term_options: {kd: {alpha: 0.9}}\nperturbation: {epsilon: 0.1}\n")
    cfg = build(DistillConfig, [recipe, extra], teacher="t", perturbation={"enabled": False})
    assert cfg.term_options == {"kd": {"alpha": 0.9, "temperature": 5.0}}
    assert cfg.perturbation == {"enabled": False, "epsilon": 0.1}
    # defaults fill what a recipe leaves out
    assert (
        build(DistillConfig, None, teacher="t", perturbation={"enabled": True}).perturbation["epsilon"] == 1.0
    )


# --------------------------------------------------------------------------- the phase switch


def test_phase_starts_and_schedule() -> None:
    lrc = [Phase({"cos_nce": 1.0}, fraction=0.8), Phase({"cos_nce": 1.0, "soft_ce": 1.0, "hard_ce": 1.0})]
    assert phase_starts(lrc, 10) == [0, 8]
    assert phase_starts(lrc, 7) == [0, round(0.8 * 7)] == [0, 6]
    sched = Schedule(lrc, 10)
    assert set(sched.terms_at(7)) == {"cos_nce"} and set(sched.terms_at(8)) == {
        "cos_nce",
        "soft_ce",
        "hard_ce",
    }
    three = [Phase({"a": 1}, steps=3), Phase({"b": 1}, fraction=0.5), Phase({"c": 1})]
    assert phase_starts(three, 10) == [0, 3, 8]
    assert [Schedule(three, 10).index_at(k) for k in range(10)] == [0, 0, 0, 1, 1, 1, 1, 1, 2, 2]


def test_distiller_switches_terms_at_the_configured_step() -> None:
    torch.manual_seed(0)
    student = BertForSequenceClassification(tiny_bert_config(40, layers=1, hidden=16))
    options = parse_term_options({})
    d = Distiller(
        student,
        HiddenProjection(16, 32, 1),
        [2],
        modules=build_term_modules({"cos_nce"}, options, 16, 32, 1),
        options=options,
    )
    stages = parse_stages(SWITCH)
    total = 20
    d.set_schedule(Schedule(stages[0].phases, total))
    switch = round(0.8 * total)
    for step in range(total):
        d.set_step(step)
        want = {"cos_nce"} if step < switch else {"cos_nce", "soft_ce", "hard_ce"}
        assert set(d.weights) == want, step
    d.set_step(switch - 1)
    assert set(d.weights) == {"cos_nce"}
    d.set_step(switch)
    assert set(d.weights) == {"cos_nce", "soft_ce", "hard_ce"}


# --------------------------------------------------------------------------- end to end on the toy task


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_recipe_runs_a_tiny_step(toy, name: str) -> None:
    metrics, cfg = run(toy, f"run_{name}", recipe=name, max_steps=1)
    stages = parse_stages(yaml.safe_load((RECIPE_DIR / f"{name}.yaml").read_text())["stages"])
    assert list(metrics["stages"]) == [s.name for s in stages]
    assert all(st["steps"] == 1 for st in metrics["stages"].values())
    assert "accuracy" in metrics["dev"] and metrics["method"] == name
    first = metrics["stages"][stages[0].name]["history"][0]
    assert {k for k, w in stages[0].phases[0].terms.items() if w} <= set(first)
    assert all(v == v for v in first.values())  # finite, not NaN
    assert (toy["root"] / f"run_{name}" / "model.safetensors").is_file()
    # the run dir's config.yaml holds the resolved recipe
    assert cfg["method"] == name and cfg["student"] == str(toy["student"])
    assert all(st["learning_rate"] == pytest.approx(2e-3) and st["max_steps"] == 1 for st in cfg["stages"])
    again = build(DistillConfig, [toy["root"] / f"run_{name}" / "config.yaml"])
    assert again.stages == cfg["stages"]


def test_lrcbert4_trains_its_ce_stage_with_its_own_schedule(toy) -> None:
    """COS-NCE alone, then COS-NCE + soft CE + hard CE in a stage of its own (optimizer, warm-up, decay)."""
    stages = parse_stages(yaml.safe_load((RECIPE_DIR / "lrcbert4.yaml").read_text())["stages"])
    assert [(s.name, set(s.term_names)) for s in stages] == [
        ("intermediate", {"cos_nce"}),
        ("prediction", {"cos_nce", "soft_ce", "hard_ce"}),
    ]
    metrics, cfg = run(toy, "lrc_stages", recipe="lrcbert4", intermediate_max_steps=2, prediction_max_steps=3,
                       prediction_lr=5e-3)  # fmt: skip
    assert [(s["name"], s["learning_rate"], s["max_steps"]) for s in cfg["stages"]] == [
        ("intermediate", pytest.approx(2e-3), 2),
        ("prediction", pytest.approx(5e-3), 3),
    ]
    first, second = (metrics["stages"][n]["history"] for n in ("intermediate", "prediction"))
    assert all("soft_ce" not in h for h in first) and all({"soft_ce", "hard_ce"} <= set(h) for h in second)
    assert [h["step"] for h in second] == [1, 2, 3]  # a fresh schedule


def test_phases_switch_inside_one_run(toy) -> None:
    metrics, cfg = run(toy, "lrc_switch", recipe="lrcbert4", stages=SWITCH, max_steps=5)
    stage = metrics["stages"]["distill"]
    assert [p["first_step"] for p in stage["phases"]] == [1, 5]  # round(0.8 * 5) = 4 steps of phase 1
    history = stage["history"]
    assert [h["step"] for h in history] == [1, 2, 3, 4, 5]
    for h in history[:4]:
        assert "cos_nce" in h and "soft_ce" not in h and "hard_ce" not in h
    assert {"cos_nce", "soft_ce", "hard_ce"} <= set(history[4])
    assert {"clean", "perturbed"} <= set(history[0])  # gradient perturbation is on in this recipe
    assert history[0]["loss"] == pytest.approx(history[0]["clean"] + history[0]["perturbed"], rel=1e-5)
    off, _ = run(toy, "lrc_no_perturb", recipe="lrcbert4", max_steps=1, perturbation={"enabled": False})
    assert "perturbed" not in off["stages"]["intermediate"]["history"][0]


def test_default_distill_is_tinybert_and_unchanged(toy) -> None:
    default, cfg = run(toy, "default", max_steps=2)
    recipe, _ = run(toy, "recipe_tb4", recipe="tinybert4", max_steps=2)
    assert cfg["method"] == "tinybert4" and cfg["recipe"] == "tinybert4"
    # config.yaml records the stages as they ran (terms, learning rate, step cap)
    assert [st["name"] for st in cfg["stages"]] == ["intermediate", "prediction"]
    assert cfg["stages"][0]["terms"] == {"embedding": 1.0, "hidden": 1.0, "attention": 1.0}
    assert all(st["learning_rate"] == pytest.approx(2e-3) and st["max_steps"] == 2 for st in cfg["stages"])
    for name in ("intermediate", "prediction"):
        a, b = default["stages"][name], recipe["stages"][name]
        assert a["history"] == b["history"] and a["steps"] == b["steps"] == 2
    assert set(default["stages"]["intermediate"]["history"][0]) == {
        "step",
        "loss",
        "embedding",
        "hidden",
        "attention",
        "lr",
    }
    assert default["dev"] == recipe["dev"]
    # the default learning rates per step are kept when none is given
    _, cfg = run(toy, "default_lr", max_steps=1, learning_rate=None)
    assert [st["learning_rate"] for st in cfg["stages"]] == [1e-4, 5e-5]


def test_cli_recipe_flags_and_errors(toy, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli"
    common = [
        "distill",
        "--task",
        "sst2",
        "--data-dir",
        str(toy["glue"]),
        "--teacher",
        str(toy["teacher"]),
        "--student",
        str(toy["student"]),
        "--batch-size",
        "16",
    ]
    res = runner.invoke(
        app,
        [
            *common,
            "--recipe",
            "kd",
            "--output",
            str(out),
            "--max-steps",
            "1",
            "--temperature",
            "3",
            "--perturb",
            "--perturb-epsilon",
            "0.2",
        ],
    )
    assert res.exit_code == 0, res.output
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["method"] == "kd" and cfg["temperature"] == 3.0
    assert cfg["perturbation"] == {"enabled": True, "epsilon": 0.2}
    assert cfg["term_options"]["kd"] == {"alpha": 0.5}

    bad = tmp_path / "bad.yaml"
    bad.write_text("stages: [{name: x, terms: {cosnce: 1}}]\n")
    res = runner.invoke(app, [*common, "--recipe", str(bad), "--output", str(tmp_path / "bad")])
    assert res.exit_code == 2
    assert res.output.strip().startswith("error:") and "unknown loss term(s): cosnce" in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()
    res = runner.invoke(app, [*common, "--recipe", "nosuchrecipe", "--output", str(tmp_path / "x")])
    assert res.exit_code == 2 and "recipe not found: nosuchrecipe" in res.output and "lrcbert4" in res.output
