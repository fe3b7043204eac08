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
    """Task distillation. Without ``stages``: TinyBERT (step 1 intermediate layers, step 2 prediction
    layer, weighted by ``weights``). A recipe (``--recipe``) sets ``stages`` (see
    :mod:`tinydistill.training.schedule`), ``term_options`` and ``perturbation``."""

    teacher: str = ""
    output: str = "runs/student"
    student: str = "tinybert-4l-312"
    # where a student given as a shape starts: auto (= pruned from the teacher when it can be), pruned, random
    start: str = "auto"
    calibration_samples: int = 512  # task rows that rank the teacher's units when pruning
    stage: str = "all"  # all, or the name of one stage to run (intermediate | prediction by default)
    method: str = "tinybert"  # a label for the method (recipes set it)
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
    # recipe settings: stages (None = TinyBERT from `weights`), options per loss term, gradient perturbation
    stages: list[dict[str, Any]] | None = None
    term_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    perturbation: dict[str, Any] = field(default_factory=lambda: {"enabled": False, "epsilon": 1.0})


@dataclass
class GeneralConfig:
    """General distillation (TinyBERT stage 1) on a prepared corpus; see :mod:`tinydistill.general`."""

    teacher: str = "all-MiniLM-L6-v2"  # pre-trained, not fine-tuned
    student: str = "tinybert-4l-312"
    corpus: str = ""  # a dir written by `tinydistill corpus`
    output: str = "runs/general"
    max_steps: int | None = None  # or epochs (over the corpus); one of them is required
    epochs: float | None = None
    batch_size: int = 32
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    save_every: int = 500
    keep_checkpoints: int = 2
    logging_steps: int = 20
    seed: int = 42
    layer_map: str = "uniform"
    hidden_proj_shared: bool = True
    weights: dict[str, float] = field(
        default_factory=lambda: {"embedding": 1.0, "hidden": 1.0, "attention": 1.0}
    )
    # student AMP (accelerate): None = bf16 on a bf16-capable GPU, else no
    mixed_precision: str | None = None
    # teacher forward: auto = bf16 where the hardware computes it natively (CUDA, CPU with AVX512-BF16/AMX)
    teacher_precision: str = "auto"
    resume: bool = False


GENERAL_TERMS = ("embedding", "hidden", "attention")
# settings that must not change between a run and its --resume (the rest may)
GENERAL_RUN_KEYS = (
    "teacher",
    "student",
    "corpus",
    "max_steps",
    "epochs",
    "batch_size",
    "learning_rate",
    "weight_decay",
    "warmup_ratio",
    "max_grad_norm",
    "seed",
    "layer_map",
    "hidden_proj_shared",
    "weights",
    "mixed_precision",
    "teacher_precision",
)

STAGES = ("intermediate", "prediction", "all")
DEFAULT_WEIGHTS = {"embedding": 1.0, "hidden": 1.0, "attention": 1.0, "prediction": 1.0}
# mappings merged key by key across defaults < recipe < config file < flags (others are replaced)
DEEP_KEYS = ("perturbation", "term_options")
# a stage's own value in a recipe is a default: an explicit flag of the same name overrides it
STAGE_OVERRIDABLE = ("learning_rate", "epochs", "max_steps")
RECIPE_DIR = Path(__file__).resolve().parents[2] / "recipes"


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
            if annotation == "dict[str, float]":
                return {str(k): float(v) for k, v in value.items()}
    except (TypeError, ValueError):
        raise TinyDistillError(f"config option {name}: {value!r} is not a valid {annotation}") from None
    return value


def recipe_path(name: str | Path) -> Path:
    """A recipe file, or the name of a shipped one (``lrcbert4`` -> ``recipes/lrcbert4.yaml``)."""
    path = Path(name)
    if not path.exists() and path.suffix == "" and len(path.parts) == 1:
        shipped = RECIPE_DIR / f"{path.name}.yaml"
        if shipped.exists():
            return shipped
        known = ", ".join(sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))) or "none found"
        raise TinyDistillError(f"recipe not found: {name} (a YAML file, or one of: {known})")
    return path


def _merge(values: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        old = values.get(key)
        if key in DEEP_KEYS and isinstance(old, dict) and isinstance(value, dict):
            merged = {k: dict(v) if isinstance(v, dict) else v for k, v in old.items()}
            for k, v in value.items():
                both = isinstance(merged.get(k), dict) and isinstance(v, dict)
                merged[k] = {**merged[k], **v} if both else v
            values[key] = merged
        else:
            values[key] = value


def build(
    cls: type[RunConfig] | type[GeneralConfig],
    yaml_path: str | Path | list[str | Path | None] | None = None,
    **overrides: Any,
) -> RunConfig:
    """Defaults < YAML file(s), in order (e.g. recipe, then config) < explicit (non-None) overrides.

    Unknown keys are an error; values are converted to the fields' types (YAML 1.1 reads ``1e-4`` as a
    string). ``weights`` update the default weights; ``perturbation`` and ``term_options`` merge key
    by key; an explicit ``learning_rate`` / ``epochs`` / ``max_steps`` override also replaces the
    per-stage values of a YAML file's ``stages``.
    """
    defaults = cls()
    values: dict[str, Any] = {k: getattr(defaults, k) for k in DEEP_KEYS if hasattr(defaults, k)}
    paths = yaml_path if isinstance(yaml_path, (list, tuple)) else [yaml_path]
    for path in paths:
        if path:
            _merge(values, load_yaml(path))
    given = {k: v for k, v in overrides.items() if v is not None}
    stages = values.get("stages")
    if isinstance(stages, list) and "stages" not in given:
        strip = [k for k in STAGE_OVERRIDABLE if k in given]
        values["stages"] = [
            {k: v for k, v in st.items() if k not in strip} if isinstance(st, dict) else st for st in stages
        ]
    _merge(values, given)
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


def validate_general(cfg: GeneralConfig) -> None:
    if not cfg.teacher:
        raise TinyDistillError("a teacher model is required (--teacher MODEL)")
    if not cfg.corpus:
        raise TinyDistillError("a prepared corpus is required (--corpus DIR, from tinydistill corpus)")
    if cfg.max_steps is None and cfg.epochs is None:
        raise TinyDistillError("give --max-steps or --epochs")
    for name in (
        "max_steps",
        "epochs",
        "batch_size",
        "learning_rate",
        "save_every",
        "keep_checkpoints",
        "logging_steps",
    ):
        value = getattr(cfg, name)
        if value is not None and value <= 0:
            raise TinyDistillError(f"{name} must be positive, got {value}")
    if not 0 <= cfg.warmup_ratio < 1:
        raise TinyDistillError(f"warmup_ratio must be in [0, 1), got {cfg.warmup_ratio}")
    if cfg.mixed_precision not in (None, "no", "fp16", "bf16"):
        raise TinyDistillError(f"mixed_precision must be no, fp16 or bf16, got {cfg.mixed_precision}")
    if cfg.teacher_precision not in ("auto", "fp32", "bf16"):
        raise TinyDistillError(f"teacher_precision must be auto, fp32 or bf16, got {cfg.teacher_precision}")
    bad = sorted(set(cfg.weights) - set(GENERAL_TERMS))
    if bad:
        raise TinyDistillError(
            f"general distillation uses only {', '.join(GENERAL_TERMS)} losses; "
            f"unknown weight(s): {', '.join(bad)}"
        )
    if not any(cfg.weights.get(k) for k in GENERAL_TERMS):
        raise TinyDistillError("no loss term has a non-zero weight")


def validate(cfg: RunConfig | GeneralConfig) -> None:
    if isinstance(cfg, GeneralConfig):
        validate_general(cfg)
        return

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
        if cfg.stages is None and cfg.stage not in STAGES:
            raise TinyDistillError(f"--stage must be one of {', '.join(STAGES)}, got '{cfg.stage}'")
        if not cfg.teacher:
            raise TinyDistillError("a teacher model is required (--teacher DIR)")
        if cfg.start not in ("auto", "pruned", "random"):
            raise TinyDistillError(f"start must be auto, pruned or random, got '{cfg.start}'")
        if cfg.start == "pruned" and cfg.init_from_teacher:
            raise TinyDistillError("--start pruned and --init-from-teacher exclude each other")
        positive("calibration_samples")
        if cfg.temperature <= 0:
            raise TinyDistillError(f"temperature must be positive, got {cfg.temperature}")
        bad = sorted(set(cfg.weights) - set(DEFAULT_WEIGHTS))
        if bad:
            raise TinyDistillError(f"unknown loss weight(s): {', '.join(bad)}")
        validate_method(cfg)
        for name in (
            "intermediate_epochs",
            "prediction_epochs",
            "intermediate_lr",
            "prediction_lr",
            "intermediate_max_steps",
            "prediction_max_steps",
        ):
            positive(name)


def validate_method(cfg: DistillConfig) -> None:
    """Stages, term names, term options and perturbation settings (imports the loss registry)."""
    from tinydistill.losses.common import parse_options
    from tinydistill.training.perturb import PerturbOptions
    from tinydistill.training.schedule import parse_stages
    from tinydistill.training.terms import check_term_names, parse_term_options

    if cfg.stages is not None:
        stages = parse_stages(cfg.stages)
        for stage in stages:
            for phase in stage.phases:
                check_term_names(phase.terms, f"stage '{stage.name}'")
        names = [s.name for s in stages]
        if cfg.stage != "all" and cfg.stage not in names:
            raise TinyDistillError(
                f"--stage must be 'all' or one of the recipe's stages {names}, got '{cfg.stage}'"
            )
        if cfg.weights != DEFAULT_WEIGHTS:
            raise TinyDistillError(
                "'weights' apply to the default TinyBERT method only; with 'stages' put weights there"
            )
    if not isinstance(cfg.term_options, dict):
        raise TinyDistillError("term_options must be a mapping of term: {option: value}")
    parse_term_options(cfg.term_options)
    if not isinstance(cfg.perturbation, dict):
        raise TinyDistillError("perturbation must be a mapping {enabled: bool, epsilon: float}")
    parse_options(PerturbOptions, cfg.perturbation, "perturbation")


def save(cfg: RunConfig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))
