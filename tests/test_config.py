"""Run configs (defaults < YAML < flags, validation) and the training loop's planning and NaN guard."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from torch import nn

from tinydistill.config import DistillConfig, FinetuneConfig, build, load_yaml, save
from tinydistill.data import Batches
from tinydistill.errors import TinyDistillError
from tinydistill.training import loop
from tinydistill.training.loop import plan_steps, train


def write(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ---------------------------------------------------------------- config


def test_defaults() -> None:
    cfg = build(DistillConfig, None, teacher="runs/teacher")
    assert cfg.teacher == "runs/teacher"
    assert cfg.student == "tinybert-4l-312" and cfg.stage == "all" and cfg.layer_map == "uniform"
    assert cfg.seed == 42 and cfg.epochs is None and cfg.learning_rate is None
    # the method is the tinybert4 recipe: its stages, with their learning rates
    assert cfg.recipe == "tinybert4" and cfg.method == "tinybert4"
    assert [st["name"] for st in cfg.stages] == ["intermediate", "prediction"]
    assert cfg.stages[0]["terms"] == {"embedding": 1.0, "hidden": 1.0, "attention": 1.0}
    assert [st["learning_rate"] for st in cfg.stages] == [1e-4, 5e-5]
    # the stages are not shared between instances
    cfg.stages[0]["terms"]["hidden"] = 5.0
    assert build(DistillConfig, None, teacher="t").stages[0]["terms"]["hidden"] == 1.0


def test_defaults_yaml_flags_precedence(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        (
            "teacher: from-yaml\n"
            "epochs: 3\n"
            "learning_rate: 0.0001\n"
            "stage: intermediate\n"
            "batch_size: 8\n"
            "term_options:\n  kd: {alpha: 0.3}\n"
        ),
    )
    cfg = build(DistillConfig, path, epochs=5.0, batch_size=None, learning_rate=None, seed=7)
    assert cfg.epochs == 5.0  # flag beats YAML
    assert cfg.seed == 7  # flag beats default
    assert cfg.batch_size == 8 and cfg.learning_rate == pytest.approx(1e-4)  # None flags do not override YAML
    assert cfg.stage == "intermediate" and cfg.teacher == "from-yaml"  # YAML beats defaults
    assert cfg.term_options == {"kd": {"alpha": 0.3}}
    # a run-wide learning rate set in the YAML file replaces the recipe's per-stage ones
    assert all("learning_rate" not in st for st in cfg.stages)
    assert cfg.max_seq_length is None and cfg.warmup_ratio == 0.1  # untouched defaults
    assert build(DistillConfig, path, teacher="flag").teacher == "flag"


def test_empty_yaml_is_defaults(tmp_path: Path) -> None:
    cfg = build(FinetuneConfig, write(tmp_path, ""))
    assert cfg == FinetuneConfig()
    assert build(FinetuneConfig, write(tmp_path, "# only a comment\n", "c.yaml")) == FinetuneConfig()


def test_unknown_yaml_key(tmp_path: Path) -> None:
    with pytest.raises(TinyDistillError, match="unknown config option.*lerning_rate"):
        build(DistillConfig, write(tmp_path, "teacher: t\nlerning_rate: 0.001\n"))
    with pytest.raises(TinyDistillError, match="unknown config option.*stage"):
        build(FinetuneConfig, write(tmp_path, "stage: all\n", "f.yaml"))  # distill-only option
    with pytest.raises(TinyDistillError, match="unknown config option.*bogus"):
        build(DistillConfig, None, teacher="t", bogus=1)


def test_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(TinyDistillError, match="invalid YAML"):
        build(DistillConfig, write(tmp_path, "teacher: [unclosed\nepochs: 3\n"))
    with pytest.raises(TinyDistillError, match="mapping"):
        build(DistillConfig, write(tmp_path, "- a\n- b\n", "list.yaml"))
    with pytest.raises(TinyDistillError, match="mapping"):
        load_yaml(write(tmp_path, "just a string\n", "str.yaml"))


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(TinyDistillError, match="config file not found"):
        build(DistillConfig, tmp_path / "nope.yaml", teacher="t")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"stage": "both"}, "stage"),
        ({"epochs": -1.0}, "epochs must be positive"),
        ({"epochs": 0}, "epochs must be positive"),
        ({"max_steps": -5}, "max_steps"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"intermediate_lr": -1e-4}, "intermediate_lr"),
        ({"prediction_max_steps": 0}, "prediction_max_steps"),
        ({"stages": [{"name": "a", "terms": {"hidden": 1.0, "hiddden": 1.0}}]}, "hiddden"),
        ({"weights": {"hidden": 1.0}}, "unknown config option.*weights"),
        ({"optimizer": "lion"}, "optimizer must be one of"),
        ({"scheduler": "step"}, "scheduler must be one of"),
        ({"logger": "csv"}, "logger must be one of"),
        ({"temperature": 0.0}, "temperature"),
        ({"warmup_ratio": 1.0}, "warmup_ratio"),
        ({"warmup_ratio": -0.1}, "warmup_ratio"),
        ({"mixed_precision": "fp8"}, "mixed_precision"),
        ({"teacher": ""}, "missing --teacher"),
    ],
)
def test_validation_errors(overrides: dict, message: str) -> None:
    values = {"teacher": "t", **overrides}
    with pytest.raises(TinyDistillError, match=message):
        build(DistillConfig, None, **values)


def test_validation_errors_from_yaml(tmp_path: Path) -> None:
    with pytest.raises(TinyDistillError, match="stage"):
        build(DistillConfig, write(tmp_path, "teacher: t\nstage: everything\n"))
    with pytest.raises(TinyDistillError, match="epochs must be positive"):
        build(DistillConfig, write(tmp_path, "teacher: t\nepochs: -2\n", "e.yaml"))
    with pytest.raises(TinyDistillError, match="unknown config option.*weights"):
        build(DistillConfig, write(tmp_path, "teacher: t\nweights: {kd: 1.0}\n", "w.yaml"))


def test_valid_edge_values() -> None:
    cfg = build(
        DistillConfig,
        None,
        teacher="t",
        stage="prediction",
        warmup_ratio=0.0,
        mixed_precision="bf16",
        epochs=0.5,
    )
    assert (cfg.stage, cfg.warmup_ratio, cfg.mixed_precision, cfg.epochs) == ("prediction", 0.0, "bf16", 0.5)


def test_save_roundtrip(tmp_path: Path) -> None:
    cfg = build(
        DistillConfig,
        None,
        teacher="t",
        epochs=2.5,
        recipe="kd",
        optimizer="adam",
        text_columns=["a", "b"],
    )
    path = tmp_path / "sub" / "config.yaml"
    save(cfg, path)
    again = build(DistillConfig, path)
    assert again == cfg
    assert set(load_yaml(path)) == {f.name for f in dataclasses.fields(DistillConfig)}


def test_yaml_exponent_learning_rate(tmp_path: Path) -> None:
    # PyYAML (YAML 1.1) reads 1e-4 as the string '1e-4': build() must coerce it to the field's type
    cfg = build(DistillConfig, write(tmp_path, "teacher: t\nlearning_rate: 1e-4\n"))
    assert isinstance(cfg.learning_rate, float) and cfg.learning_rate == pytest.approx(1e-4)


def test_wrongly_typed_value_is_a_clean_error(tmp_path: Path) -> None:
    with pytest.raises(TinyDistillError, match="epochs"):
        build(DistillConfig, write(tmp_path, "teacher: t\nepochs: three\n"))


# ---------------------------------------------------------------- training loop


@pytest.mark.parametrize(
    ("n_batches", "epochs", "max_steps", "expected"),
    [
        (10, 3, None, 30),
        (10, 2.5, None, 25),
        (10, 0.25, None, 3),  # ceil(2.5)
        (7, 0.1, None, 1),  # ceil(0.7)
        (0, 3, None, 1),  # at least one step
        (10, 3, 7, 7),  # capped
        (10, 3, 100, 30),  # cap above the plan does nothing
        (10, 3, 0, 30),  # 0 / None mean "no cap"
    ],
)
def test_plan_steps(n_batches: int, epochs: float, max_steps: int | None, expected: int) -> None:
    assert plan_steps(n_batches, epochs, max_steps) == expected


@pytest.fixture
def accelerator() -> Accelerator:
    AcceleratorState._reset_state()  # an earlier run in this process may have chosen bf16
    return Accelerator(cpu=True, mixed_precision="no")


def test_precision_given_then_launcher_then_bf16_where_native(monkeypatch) -> None:
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    monkeypatch.setattr(loop, "native_bf16", lambda device: device == "cpu")
    assert loop.resolve_precision(None, "cpu") == "bf16"
    assert loop.resolve_precision("no", "cpu") == "no"
    monkeypatch.setattr(loop, "native_bf16", lambda device: False)
    assert loop.resolve_precision(None, "cpu") == "no"
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp16")  # accelerate launch --mixed_precision fp16
    assert loop.resolve_precision(None, "cuda") == "fp16"
    assert loop.resolve_precision("bf16", "cuda") == "bf16"


def test_runs_in_one_process_each_get_their_precision(tmp_path, monkeypatch) -> None:
    """The Python API runs one run after another in a process: the second run's precision is its own,
    not the first one's (accelerate keeps one process-wide state)."""
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    cfg = SimpleNamespace(mixed_precision="bf16", logger="none")
    assert loop.make_accelerator(cfg, tmp_path, cpu=True).mixed_precision == "bf16"
    cfg.mixed_precision = "no"
    assert loop.make_accelerator(cfg, tmp_path, cpu=True).mixed_precision == "no"


def tiny_setup():
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    loader = Batches(
        8, 2, lambda rows, x=torch.randn(8, 2): {"x": x[torch.as_tensor(rows)]}, shuffle=False
    )  # 4 batches
    return model, loader


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_train_stops_on_non_finite_loss(accelerator: Accelerator, bad: float) -> None:
    model, loader = tiny_setup()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    saves = []
    calls = []

    def step_loss(m, batch, step):
        calls.append(1)
        if len(calls) < 3:
            return m(batch["x"]).pow(2).mean(), {}
        return torch.tensor(bad, requires_grad=True), {}

    with pytest.raises(TinyDistillError, match="loss is (nan|inf) at step 3"):
        train(
            accelerator=accelerator,
            model=model,
            batches=loader,
            step_loss=step_loss,
            total_steps=6,
            lr=0.1,
            save=lambda: saves.append(1),
            logging_steps=1,
        )
    assert saves == []
    assert len(calls) == 3
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())  # 2 good steps ran


def test_train_nan_on_first_step_changes_nothing(accelerator: Accelerator) -> None:
    model, loader = tiny_setup()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    saves = []
    with pytest.raises(TinyDistillError, match="nan"):
        train(
            accelerator=accelerator,
            model=model,
            batches=loader,
            step_loss=lambda m, b, step: (torch.tensor(float("nan"), requires_grad=True), {}),
            total_steps=4,
            lr=0.1,
            save=lambda: saves.append(1),
            evaluate=lambda: (1.0, {"acc": 1.0}),
        )
    assert saves == []
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_train_runs_total_steps_and_saves_at_end(accelerator: Accelerator) -> None:
    model, loader = tiny_setup()
    before = model.weight.detach().clone()
    saves = []
    result = train(
        accelerator=accelerator,
        model=model,
        batches=loader,
        step_loss=lambda m, b, step: (m(b["x"]).pow(2).mean(), {"part": 1.0}),
        total_steps=6,
        lr=0.05,
        warmup_ratio=0.0,
        save=lambda: saves.append(1),
        logging_steps=4,
    )
    assert result.steps == 6  # more than one pass over the 4 batches
    assert saves == [1]
    assert [h["step"] for h in result.history] == [4, 6]
    assert all(h["part"] == 1.0 and "loss" in h and "lr" in h for h in result.history)
    assert not torch.equal(model.weight.detach(), before)


def test_train_saves_only_on_improvement(accelerator: Accelerator) -> None:
    model, loader = tiny_setup()
    scores = iter([0.5, 0.7, 0.6])
    saves = []

    def evaluate():
        s = next(scores)
        return s, {"acc": s}

    result = train(
        accelerator=accelerator,
        model=model,
        batches=loader,
        step_loss=lambda m, b, step: (m(b["x"]).pow(2).mean(), {}),
        total_steps=5,
        lr=0.01,
        eval_every=2,
        evaluate=evaluate,
        save=lambda: saves.append(1),
        logging_steps=100,
    )
    assert [e["step"] for e in result.evals] == [2, 4, 5]
    assert result.best_score == 0.7 and result.best_metrics == {"acc": 0.7}
    assert len(saves) == 2  # at steps 2 and 4, not at 5 (0.6 < 0.7) nor at the end


def test_grad_accumulation_equals_the_larger_batch(accelerator: Accelerator) -> None:
    """Batches of 2 accumulated twice = batches of 4: the same rows (one seeded order) and the same
    mean gradient per optimizer step."""
    x, y = torch.randn(8, 3), torch.randn(8, 1)

    def run(batch_size: int, accum: int) -> torch.Tensor:
        torch.manual_seed(0)
        model = nn.Linear(3, 1)
        batches = Batches(
            8, batch_size, lambda rows: {"x": x[torch.as_tensor(rows)], "y": y[torch.as_tensor(rows)]}
        )
        result = train(
            accelerator=accelerator, model=model, batches=batches, total_steps=4, lr=0.1, warmup_ratio=0.0,
            step_loss=lambda m, b, step: ((m(b["x"]) - b["y"]).pow(2).mean(), {}), grad_accum=accum,
            max_grad_norm=0.0,
        )  # fmt: skip
        assert result.steps == 4
        return model.weight.detach().clone()

    torch.testing.assert_close(run(2, 2), run(4, 1), atol=1e-6, rtol=1e-6)
    assert not torch.allclose(run(2, 1), run(4, 1))  # without accumulation the steps differ


def test_length_buckets_keep_every_row_once_and_pad_less() -> None:
    """Bucketed batches: each epoch still visits every row once, in batches of similar length (so less
    padding than random batches), seeded (same order again, another per epoch)."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 120, size=1000)
    plain = Batches(1000, 32, lambda rows: rows, seed=1)
    bucketed = Batches(1000, 32, lambda rows: rows, seed=1, lengths=lengths, buckets=10)
    assert bucketed.batches_per_epoch == plain.batches_per_epoch == 32

    def padded(batches: Batches, epoch: int) -> int:
        it = batches.rows(epoch * batches.batches_per_epoch)
        return sum(
            int(lengths[b].max()) * len(b) for b in (next(it) for _ in range(batches.batches_per_epoch))
        )

    for epoch in (0, 1):
        order = bucketed.order(epoch)
        assert sorted(order.tolist()) == list(range(1000))
        assert padded(bucketed, epoch) < 0.75 * padded(plain, epoch)
        assert len(list(order[31 * 32 :])) == 1000 - 31 * 32  # the short batch is the last one
    assert np.array_equal(
        bucketed.order(0), Batches(1000, 32, None, seed=1, lengths=lengths, buckets=10).order(0)
    )
    assert not np.array_equal(bucketed.order(0), bucketed.order(1))
    # rows of similar length share a batch (the last window, 40 rows here, is as mixed as its rows)
    spans = [np.ptp(lengths[b]) for b in (bucketed.order(0)[i : i + 32] for i in range(0, 1000, 32))]
    assert np.median(spans) < 0.1 * np.ptp(lengths)


def test_length_buckets_reach_the_training_batches(tmp_path, monkeypatch) -> None:
    """--length-buckets N is what the run's batches are built with (and what a resume must keep)."""
    from conftest import tiny_bert_config, write_sst2_like, write_vocab
    from transformers import BertForSequenceClassification, BertTokenizerFast

    import tinydistill
    from tinydistill import data

    tok = BertTokenizerFast(vocab=str(write_vocab(tmp_path / "vocab.txt")), do_lower_case=True)
    encoder = tmp_path / "encoder"
    BertForSequenceClassification(tiny_bert_config(len(tok), layers=1, hidden=16)).save_pretrained(encoder)
    tok.save_pretrained(encoder)
    seen = []
    original = data.Batches.__init__

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("buckets", 0))
        original(self, *args, **kwargs)

    monkeypatch.setattr(data.Batches, "__init__", spy)
    glue = write_sst2_like(tmp_path / "glue", n_train=32, n_dev=8)
    out = tmp_path / "t"
    run = tinydistill.finetune(task="sst2", data_dir=str(glue), model=str(encoder), output=str(out),
                               max_steps=2, length_buckets=3)  # fmt: skip
    assert seen == [3] and run["steps"] == 2
    assert load_yaml(out / "config.yaml")["length_buckets"] == 3
