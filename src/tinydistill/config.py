"""Run configurations: dataclasses, loaded from YAML, overridden by flags, resolved per task.

``None`` means "use the task's default" (epochs, learning rate, sequence length, batch size
come from the GLUE registry); :func:`resolve` fills them in so the config written to a run dir
is complete and repeatable.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tinydistill.errors import TinyDistillError


@dataclass
class RunConfig:
    """Data and optimisation settings shared by every command."""

    task: str = "SST-2"
    data_dir: str | None = None
    output: str = "runs/out"
    train_file: str | None = None
    dev_file: str | None = None
    text_columns: list[str] | None = None
    label_column: str = "label"
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    max_seq_length: int | None = None
    epochs: float | None = None
    max_steps: int | None = None
    batch_size: int | None = None
    eval_batch_size: int = 64
    learning_rate: float | None = None
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    eval_every: int | None = None
    logging_steps: int = 20
    seed: int = 42
    mixed_precision: str | None = None


@dataclass
class FinetuneConfig(RunConfig):
    model: str = "all-MiniLM-L6-v2"
    output: str = "runs/teacher"


@dataclass
class DistillConfig(RunConfig):
    """TinyBERT task distillation (step 1 intermediate layers, step 2 prediction layer)."""

    teacher: str = ""
    output: str = "runs/student"
    student: str = "tinybert-4l-312"
    stage: str = "all"
    layer_map: str = "uniform"
    init_from_teacher: bool = False
    temperature: float = 1.0
    hidden_proj_shared: bool = True
    # weights of the loss terms of step 1 and step 2
    weights: dict[str, float] = field(
        default_factory=lambda: {"embedding": 1.0, "hidden": 1.0, "attention": 1.0, "prediction": 1.0}
    )
    # per-step settings; epochs/max_steps None fall back to --epochs/--max-steps (task default).
    # Learning rates: the paper uses 5e-5 / 3e-5 after general distillation; a randomly
    # initialised student needs a larger step, so the defaults are 1e-4 / 5e-5.
    intermediate_epochs: float | None = None
    prediction_epochs: float | None = None
    intermediate_lr: float | None = None
    prediction_lr: float | None = None
    intermediate_max_steps: int | None = None
    prediction_max_steps: int | None = None


STAGES = ("intermediate", "prediction", "all")


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise TinyDistillError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise TinyDistillError(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(data, dict):
        raise TinyDistillError(f"{path}: a config must be a mapping of option: value")
    return data


def _coerce(name: str, value: Any, annotation: str) -> Any:
    """Convert YAML/CLI values to the field's type (YAML 1.1 reads ``1e-4`` as a string)."""
    if value is None:
        return None
    kinds = [k.strip() for k in annotation.split("|")]
    try:
        if "float" in kinds and not isinstance(value, bool):
            return float(value)
        if "int" in kinds and not isinstance(value, bool):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if "bool" in kinds:
            if isinstance(value, bool):
                return value
            if str(value).lower() in {"true", "yes", "1", "on"}:
                return True
            if str(value).lower() in {"false", "no", "0", "off"}:
                return False
            raise ValueError(value)
        if "str" in kinds:
            if isinstance(value, (dict, list)):
                raise ValueError(value)
            return str(value)
        if annotation.startswith("list") and not isinstance(value, list):
            return [str(v).strip() for v in str(value).split(",") if str(v).strip()]
        if annotation.startswith("dict"):
            if not isinstance(value, dict):
                raise ValueError(value)
            return {str(k): float(v) for k, v in value.items()}
    except (TypeError, ValueError):
        raise TinyDistillError(f"config option {name}: {value!r} is not a valid {annotation}") from None
    return value


def build(cls: type[RunConfig], yaml_path: str | Path | None = None, **overrides: Any) -> RunConfig:
    """Defaults < YAML file < explicit (non-None) overrides; unknown keys are an error.

    ``weights`` from YAML/flags update the default weights rather than replacing them all.
    """
    values: dict[str, Any] = {}
    if yaml_path:
        values.update(load_yaml(yaml_path))
    values.update({k: v for k, v in overrides.items() if v is not None})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise TinyDistillError(f"unknown config option(s): {', '.join(unknown)}")
    values = {k: _coerce(k, v, str(fields[k].type)) for k, v in values.items()}
    if "weights" in values and "weights" in fields:
        values["weights"] = {**fields["weights"].default_factory(), **values["weights"]}
    cfg = cls(**values)
    validate(cfg)
    return cfg


def validate(cfg: RunConfig) -> None:
    def positive(name: str) -> None:
        value = getattr(cfg, name)
        if value is not None and value <= 0:
            raise TinyDistillError(f"{name} must be positive, got {value}")

    for name in (
        "max_train_samples",
        "max_eval_samples",
        "max_seq_length",
        "epochs",
        "max_steps",
        "batch_size",
        "eval_batch_size",
        "learning_rate",
        "eval_every",
        "logging_steps",
    ):
        positive(name)
    if not 0 <= cfg.warmup_ratio < 1:
        raise TinyDistillError(f"warmup_ratio must be in [0, 1), got {cfg.warmup_ratio}")
    if cfg.mixed_precision not in (None, "no", "fp16", "bf16"):
        raise TinyDistillError(f"mixed_precision must be no, fp16 or bf16, got {cfg.mixed_precision}")
    if isinstance(cfg, DistillConfig):
        if cfg.stage not in STAGES:
            raise TinyDistillError(f"--stage must be one of {', '.join(STAGES)}, got '{cfg.stage}'")
        if not cfg.teacher:
            raise TinyDistillError("a teacher model is required (--teacher DIR)")
        if cfg.temperature <= 0:
            raise TinyDistillError(f"temperature must be positive, got {cfg.temperature}")
        bad = sorted(set(cfg.weights) - {"embedding", "hidden", "attention", "prediction"})
        if bad:
            raise TinyDistillError(f"unknown loss weight(s): {', '.join(bad)}")
        for name in (
            "intermediate_epochs",
            "prediction_epochs",
            "intermediate_lr",
            "prediction_lr",
            "intermediate_max_steps",
            "prediction_max_steps",
        ):
            positive(name)


def save(cfg: RunConfig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))
