"""Every command's options, in one place: one dataclass per command, loaded from YAML, overridden by flags.

A field is declared once, with :func:`opt` (default, help, flag names); the ``tinydistill`` CLI
generates its flags from these fields (:mod:`tinydistill.cli`), ``--config FILE`` fills them from
YAML, and the Python API takes the same dataclasses (or their fields as keyword arguments).
Precedence: field default < recipe (``distill``) < config file < explicit flags / keyword arguments.

``None`` in a run config means "the task's default" (epochs, learning rate, length, batch size come
from the GLUE registry); the run writes its resolved config to ``config.yaml`` so it can be rerun.
This module imports nothing heavy: ``tinydistill --help`` reads it.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tinydistill.coerce import coerce
from tinydistill.errors import TinyDistillError

RECIPE_DIR = Path(__file__).resolve().parent / "recipes"
OPTIMIZERS = ("adamw", "adam", "sgd", "adafactor")
# names transformers.get_scheduler takes (warm-up from warmup_ratio, decay over the stage's steps)
# where a student starts (tinydistill.start): cut from the teacher, at random, or a pre-trained checkpoint
STARTS = ("auto", "pruned", "random", "pretrained")
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup")
# accelerate trackers ("none": no metric logger)
LOGGERS = ("tensorboard", "wandb", "mlflow", "comet_ml", "aim", "clearml", "dvclive", "none")
PRECISIONS = (None, "no", "fp16", "bf16")
# mappings merged key by key across defaults < recipe < config file < flags (others are replaced)
DEEP_KEYS = ("perturbation", "term_options")
# a stage's own value in a recipe is a default: an explicit flag of the same name overrides it
STAGE_OVERRIDABLE = ("learning_rate", "epochs", "max_steps")


@dataclass(frozen=True)
class Flag:
    """An extra command-line flag that sets one key of a mapping field (``--perturb`` -> perturbation)."""

    name: str
    decl: str
    type: type
    key: str
    help: str = ""


def opt(
    default: Any = MISSING,
    help: str = "",
    *,
    flags: tuple[str, ...] = (),
    factory: Any = MISSING,
    cli: bool = True,
    required: bool = False,
    positional: bool = False,
    repeat: bool = False,
    split: bool = True,
    extra: tuple[Flag, ...] = (),
) -> Any:
    """A config field and its command-line form.

    ``flags``: names (default ``--field-name``; for bools ``--x/--no-x``); ``cli=False``: config file
    only; ``required``: must come from a flag or the config file; ``positional``: also taken as
    arguments; ``repeat``: a list flag given several times (else a comma list); ``split``: list items
    are split on commas; ``extra``: flags that set keys of a mapping field.
    """
    meta = dict(
        help=help, flags=flags, cli=cli, required=required, positional=positional,
        repeat=repeat, split=split, extra=extra,
    )  # fmt: skip
    if factory is not MISSING:
        return field(default_factory=factory, metadata=meta)
    return field(default=None if default is MISSING else default, metadata=meta)


def _check_positive(cfg: Any, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if value is not None and value <= 0:
            raise TinyDistillError(f"{name} must be positive, got {value}")


def _check_choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        shown = ", ".join(str(c) for c in choices if c is not None)
        raise TinyDistillError(f"{name} must be one of {shown}, got {value!r}")


def _check_required(cfg: Any) -> None:
    for f in dataclasses.fields(cfg):
        if f.metadata.get("required") and getattr(cfg, f.name) in (None, "", []):
            flag = (f.metadata.get("flags") or (f"--{f.name.replace('_', '-')}",))[0].split("/")[0]
            raise TinyDistillError(f"missing {flag} (or '{f.name}:' in the --config file)")


class Checked:
    """Base of the command configs: ``check`` validates a built config (one-line errors)."""

    def check(self) -> None:
        _check_required(self)


# ----------------------------------------------------------------------------- training runs

TASK_HELP = "GLUE task (SST-2, sst2, MRPC, ...) or 'custom'."


@dataclass
class TrainOptions(Checked):
    """Optimisation settings every trainer shares (finetune, distill, general)."""

    learning_rate: float | None = opt(
        None, "Peak LR [the task's / the stage's].", flags=("--learning-rate", "--lr")
    )
    weight_decay: float = opt(0.01, "AdamW weight decay (not on biases and LayerNorm).")
    warmup_ratio: float = opt(0.1, "Share of the steps spent warming the LR up.")
    max_grad_norm: float = opt(1.0, "Gradient clipping norm.")
    logging_steps: int = opt(20, "Log the losses every N steps.")
    seed: int = opt(42, "Seed of the data order, subsets and new weights.")
    mixed_precision: str | None = opt(
        None, "no | bf16 | fp16 [bf16 where native: bf16 GPUs, CPUs with AVX512-BF16 or AMX]."
    )
    optimizer: str = opt("adamw", f"Optimizer: {' | '.join(OPTIMIZERS)}.")
    scheduler: str = opt("linear", f"LR schedule after warm-up: {' | '.join(SCHEDULERS)}.")
    logger: str = opt("tensorboard", f"Metric logger (under OUTPUT/logs): {' | '.join(LOGGERS)}.")
    grad_accum: int = opt(1, "Batches per optimizer step (gradient accumulation).")
    length_buckets: int = opt(
        0, "Batches of rows of similar length (less padding): sort windows of N batches by length; 0 = off."
    )
    save_every: int = opt(500, "Checkpoint every N optimizer steps (and at SIGINT/SIGTERM).")
    keep_checkpoints: int = opt(2, "Newest checkpoints kept.")
    resume: bool = opt(False, "Continue the run in --output from its newest checkpoint.", flags=("--resume",))

    def check(self) -> None:
        super().check()
        _check_positive(
            self, "learning_rate", "logging_steps", "grad_accum", "save_every", "keep_checkpoints"
        )
        if self.length_buckets < 0:
            raise TinyDistillError(f"--length-buckets must be 0 (off) or positive, got {self.length_buckets}")
        if not 0 <= self.warmup_ratio < 1:
            raise TinyDistillError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        _check_choice("mixed_precision", self.mixed_precision, PRECISIONS)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("scheduler", self.scheduler, SCHEDULERS)
        _check_choice("logger", self.logger, LOGGERS)


@dataclass
class TableOptions(Checked):
    """How user tables (.csv / .tsv) are laid out: a header row or not, the delimiter, the encoding."""

    header: bool = opt(
        True,
        "First row is a header; --no-header: columns are positions (--text-columns 1 --label-column 0).",
        flags=("--header/--no-header",),
    )
    delimiter: str | None = opt(None, "Of .csv/.tsv files: tab, ',', ';' or '|' [by suffix, else sniffed].")
    encoding: str | None = opt(
        None, "Of .csv/.tsv/.jsonl files, e.g. cp1252 [UTF-8, or UTF-16/UTF-8 by their byte-order mark]."
    )

    def check(self) -> None:
        super().check()
        from tinydistill.tasks.table import check_encoding, parse_delimiter

        parse_delimiter(self.delimiter)
        check_encoding(self.encoding)


@dataclass
class DataOptions(TableOptions):
    """Where a task's rows come from: GLUE layout (``--data-dir``), custom files, or the HF hub."""

    task: str = opt("SST-2", TASK_HELP, required=True)
    data_dir: str | None = opt(None, "GLUE root with <TASK>/{train,dev}.tsv; omit for HF datasets.")
    train_file: str | None = opt(None, "Train file replacing the task's train split.")
    dev_file: str | None = opt(None, "Dev file (custom tasks).")
    text_columns: list[str] | None = opt(None, "Comma-separated text column names (or positions).")
    label_column: str = opt("label", "Label column name (or position).")
    labels: list[str] | None = opt(
        None,
        "Label names of a custom task, comma-separated (their order = class ids); other values are errors.",
    )


@dataclass
class RunConfig(TrainOptions, DataOptions):
    """Data and optimisation settings of a task run (finetune, distill)."""

    output: str = opt("runs/out", "Run directory (model, config, metrics, logs).")
    max_train_samples: int | None = opt(None, "Use a seeded random subset of the train rows.")
    max_eval_samples: int | None = opt(None, "Use a seeded random subset of the dev rows.")
    max_seq_length: int | None = opt(None, "Token limit per row [the task's].")
    epochs: float | None = opt(None, "Passes over the train rows [the task's].")
    max_steps: int | None = opt(None, "Cap optimizer steps (per stage).")
    batch_size: int | None = opt(None, "Rows per step [the task's].")
    eval_batch_size: int = opt(64, "Rows per evaluation forward.")
    eval_every: int | None = opt(None, "Evaluate every N steps [once per epoch].")
    overwrite: bool = opt(
        False, "Replace a finished run in --output (kept until the new one is done).", flags=("--overwrite",)
    )

    def check(self) -> None:
        super().check()
        _check_positive(
            self, "max_train_samples", "max_eval_samples", "max_seq_length", "epochs", "max_steps",
            "batch_size", "eval_batch_size", "eval_every",
        )  # fmt: skip


@dataclass
class FinetuneConfig(RunConfig):
    """Fine-tune a teacher; keeps the best-on-dev checkpoint (HF format) in --output."""

    model: str = opt("all-MiniLM-L6-v2", "HF encoder dir or hub id.")
    output: str = opt("runs/teacher", "Run directory (model, config, metrics, logs).")


@dataclass
class TrimVocabConfig(TableOptions):
    """Keep the K pieces the given text uses most (plus every special and single-character piece, so
    every text still tokenizes); the word-embedding rows sliced to them, kept pieces keep their vectors."""

    model: str = opt("", "Model dir (a student, classifier or encoder) with its tokenizer.", required=True)
    output: str = opt("", "Directory of the trimmed model (HF format) and trim.json.", required=True)
    keep: int | None = opt(None, "Pieces kept besides the special and single-character ones.")
    target_params: int | None = opt(None, "Keep what fits this parameter count (embeddings counted).")
    task: str | None = opt(None, "Count pieces over this task's train rows.")
    data_dir: str | None = opt(None, "GLUE root with <TASK>/train.tsv; omit for HF datasets.")
    train_file: str | None = opt(None, "Train file replacing the task's train split.")
    text_columns: list[str] | None = opt(None, "Comma-separated text column names (or positions).")
    label_column: str = opt("label", "Label column name (or position).")
    corpus: str | None = opt(None, "Count pieces over a prepared corpus (tinydistill corpus) instead.")

    def check(self) -> None:
        super().check()
        if (self.keep is None) == (self.target_params is None):
            raise TinyDistillError("give one of --keep K or --target-params N")
        for name in ("keep", "target_params"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or value < 0):
                raise TinyDistillError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
        if (self.task is None) == (self.corpus is None):
            raise TinyDistillError(
                "give the text to count: --task (with --data-dir or --train-file) or --corpus"
            )


@dataclass
class DistillConfig(RunConfig):
    """Task distillation with a method recipe: TinyBERT (tinybert4: step 1 intermediate layers, step 2
    prediction layer) by default; LRC-BERT, Hinton KD, BERT-PKD, CRD, TinyBERT-6 by --recipe."""

    teacher: str = opt("", "Fine-tuned teacher dir.", required=True)
    student: str = opt(
        "tinybert-4l-312", "Preset, config.json, or a checkpoint (dir or hub id, any tokenizer: remapped)."
    )
    output: str = opt("runs/student", "Run directory (model, config, metrics, logs).")
    recipe: str = opt("tinybert4", "Method recipe: a shipped name (tinydistill recipes) or a YAML file.")
    stage: str = opt("all", "all, or one stage of the recipe (tinybert4: intermediate | prediction).")
    start: str = opt(
        "auto",
        "auto (a shape: pruned from the teacher when it fits; a checkpoint: as it is), pruned, random, "
        "pretrained (a checkpoint dir or hub id of any vocabulary: remapped onto the teacher's tokenizer).",
    )
    calibration_samples: int = opt(512, "Task rows that rank the teacher's units when pruning.")
    own_tokenizer: bool = opt(
        False, "The student checkpoint keeps its own tokenizer (a trimmed vocabulary, tinydistill "
        "trim-vocab): only for stages that read the teacher's logits alone (kd, --stage prediction).",
        flags=("--own-tokenizer",),
    )  # fmt: skip
    teacher_cache: bool = opt(
        True, "Compute the teacher's outputs once: its logits for stages that need nothing else of it "
        "(prediction, KD), its mapped states on disk for the others (--teacher-state-cache).",
    )  # fmt: skip
    teacher_state_cache: float = opt(
        8.0, "Disk budget in GB of the teacher's mapped states (hidden + attention scores) kept in the "
        "cache dir for stages that need them; 0 = run the teacher every step.",
    )  # fmt: skip
    method: str = opt("tinybert4", "A label for the method (recipes set it).", cli=False)
    layer_map: str = opt("uniform", "Student layer -> teacher layer: uniform | top | bottom | '3,6,9,12'.")
    init_from_teacher: bool = opt(False, "Copy the mapped teacher layers into the student.")
    temperature: float = opt(1.0, "Softmax temperature of the prediction losses.")
    hidden_proj_shared: bool = opt(
        True,
        "One W_h for all layers, or one per layer.",
        flags=("--shared-projection/--per-layer-projection",),
    )
    # per-stage settings for the stages named intermediate / prediction (TinyBERT's steps)
    intermediate_epochs: float | None = opt(None, "Epochs of the stage 'intermediate'.")
    prediction_epochs: float | None = opt(None, "Epochs of the stage 'prediction'.")
    intermediate_lr: float | None = opt(None, "LR of the stage 'intermediate' [recipe: 1e-4].")
    prediction_lr: float | None = opt(None, "LR of the stage 'prediction' [recipe: 5e-5].")
    intermediate_max_steps: int | None = opt(None, "Step cap of the stage 'intermediate'.")
    prediction_max_steps: int | None = opt(None, "Step cap of the stage 'prediction'.")
    # the method: stages of weighted loss terms (from the recipe), options per term, gradient perturbation
    stages: list[dict[str, Any]] | None = opt(None, cli=False)
    term_options: dict[str, dict[str, Any]] = opt(factory=dict, cli=False)
    perturbation: dict[str, Any] = opt(
        factory=lambda: {"enabled": False, "epsilon": 1.0},
        cli=False,
        extra=(
            Flag(
                "perturb",
                "--perturb/--no-perturb",
                bool,
                "enabled",
                "Gradient perturbation of the embeddings.",
            ),
            Flag("perturb_epsilon", "--perturb-epsilon", float, "epsilon", "Size of the perturbation."),
        ),
    )

    def check(self) -> None:
        super().check()
        _check_choice("start", self.start, STARTS)
        if self.start == "pruned" and self.init_from_teacher:
            raise TinyDistillError("--start pruned and --init-from-teacher exclude each other")
        _check_positive(
            self, "calibration_samples", "intermediate_epochs", "prediction_epochs", "intermediate_lr",
            "prediction_lr", "intermediate_max_steps", "prediction_max_steps",
        )  # fmt: skip
        if self.temperature <= 0:
            raise TinyDistillError(f"temperature must be positive, got {self.temperature}")
        if self.teacher_state_cache < 0:
            raise TinyDistillError(
                f"--teacher-state-cache is a size in GB (0 = off), got {self.teacher_state_cache}"
            )
        check_method(self)


def check_method(cfg: DistillConfig) -> None:
    """Stages, term names, term options and perturbation settings (imports the loss registry)."""
    from tinydistill.losses.common import parse_options
    from tinydistill.training.perturb import PerturbOptions
    from tinydistill.training.schedule import parse_stages
    from tinydistill.training.terms import check_term_names, parse_term_options

    if cfg.stages is None:
        raise TinyDistillError(f"recipe {cfg.recipe} has no 'stages'")
    stages = parse_stages(cfg.stages)
    for stage in stages:
        for phase in stage.phases:
            check_term_names(phase.terms, f"stage '{stage.name}'")
    names = [s.name for s in stages]
    if cfg.stage != "all" and cfg.stage not in names:
        raise TinyDistillError(
            f"--stage must be 'all' or one of the recipe's stages {names}, got '{cfg.stage}'"
        )
    if not isinstance(cfg.term_options, dict):
        raise TinyDistillError("term_options must be a mapping of term: {option: value}")
    parse_term_options(cfg.term_options)
    if not isinstance(cfg.perturbation, dict):
        raise TinyDistillError("perturbation must be a mapping {enabled: bool, epsilon: float}")
    parse_options(PerturbOptions, cfg.perturbation, "perturbation")


GENERAL_TERMS = ("embedding", "hidden", "attention")


@dataclass
class GeneralConfig(TrainOptions):
    """General distillation (TinyBERT stage 1): embedding + hidden + attention losses on a prepared corpus."""

    teacher: str = opt("all-MiniLM-L6-v2", "Pre-trained (not fine-tuned) encoder.")
    student: str = opt("tinybert-4l-312", "Preset or config-only dir.")
    corpus: str = opt("", "Dir prepared by tinydistill corpus.", required=True)
    output: str = opt("runs/general", "Run directory (checkpoints, model, metrics).")
    max_steps: int | None = opt(None, "Optimizer steps (or --epochs).")
    epochs: float | None = opt(None, "Passes over the corpus (or --max-steps).")
    batch_size: int = opt(32, "Sequences per step.")
    learning_rate: float = opt(1e-4, "Peak LR.", flags=("--learning-rate", "--lr"))
    layer_map: str = opt("uniform", "Student layer -> teacher layer: uniform | top | bottom | '2,4,6'.")
    hidden_proj_shared: bool = opt(
        True,
        "One W_h for all layers, or one per layer.",
        flags=("--shared-projection/--per-layer-projection",),
    )
    weights: dict[str, float] = opt(factory=lambda: dict.fromkeys(GENERAL_TERMS, 1.0), cli=False)
    teacher_precision: str = opt("auto", "Teacher forward: auto (bf16 where native) | fp32 | bf16.")

    def check(self) -> None:
        super().check()
        if not self.teacher:
            raise TinyDistillError("a teacher model is required (--teacher MODEL)")
        if self.max_steps is None and self.epochs is None:
            raise TinyDistillError("give --max-steps or --epochs")
        _check_positive(self, "max_steps", "epochs", "batch_size")
        _check_choice("teacher_precision", self.teacher_precision, ("auto", "fp32", "bf16"))
        bad = sorted(set(self.weights) - set(GENERAL_TERMS))
        if bad:
            raise TinyDistillError(
                f"general distillation uses only {', '.join(GENERAL_TERMS)} losses; "
                f"unknown weight(s): {', '.join(bad)}"
            )
        if not any(self.weights.get(k) for k in GENERAL_TERMS):
            raise TinyDistillError("no loss term has a non-zero weight")


# settings that must not change between a general run and its --resume (the rest may)
GENERAL_RUN_KEYS = (
    "teacher", "student", "corpus", "max_steps", "epochs", "batch_size", "learning_rate", "weight_decay",
    "warmup_ratio", "max_grad_norm", "seed", "layer_map", "hidden_proj_shared", "weights", "mixed_precision",
    "teacher_precision", "optimizer", "scheduler",
)  # fmt: skip


# ----------------------------------------------------------------------------- other commands


@dataclass
class PruneConfig(TableOptions):
    """Structured pruning of a teacher to a student shape (depth, heads, head size, FFN, hidden width),
    ranked by activation importance on calibration rows: the cheap start for `distill --student DIR`."""

    teacher: str = opt("", "Trained encoder (fine-tuned or pre-trained).", required=True)
    output: str = opt("", "Directory of the pruned student (HF format).", required=True)
    shape: str = opt("tinybert-4l-312", "Preset (tinybert-4l-312, ...) or a JSON file of HF config keys.")
    task: str | None = opt(None, "Calibrate on this task's train rows.")
    data_dir: str | None = opt(None, "GLUE root with <TASK>/train.tsv; omit for HF datasets.")
    train_file: str | None = opt(None, "Train file replacing the task's train split.")
    text_columns: list[str] | None = opt(None, "Comma-separated text column names (or positions).")
    label_column: str = opt("label", "Label column name (or position).")
    corpus: str | None = opt(None, "Calibrate on a prepared corpus (tinydistill corpus).")
    calibration_samples: int = opt(512, "Rows (or corpus sequences) that rank the units.")
    layer_map: str = opt("uniform", "Kept teacher layers: uniform | top | bottom | '2,4,6'.")
    max_seq_length: int | None = opt(None, "Token limit per row [the task's].")
    seed: int = opt(42, "Seed of the calibration sample.")
    vocab_from: str | None = opt(
        None, "Put the model on this model's tokenizer first (the teacher you will distill from): "
        "a pre-trained 6L-384 of another vocabulary cut to the TinyBERT4 shape for an MPNet teacher.",
    )  # fmt: skip

    def check(self) -> None:
        super().check()
        _check_positive(self, "calibration_samples", "max_seq_length")
        if (self.task is None) == (self.corpus is None):
            raise TinyDistillError(
                "give calibration data: --task (with --data-dir or --train-file) or --corpus"
            )


@dataclass
class EvaluateConfig(DataOptions):
    """Print the task's metric(s) on dev, beside the trivial baseline."""

    model: str = opt("", "Saved model dir.", required=True)
    max_seq_length: int | None = opt(None, "Token limit per row [the task's].")
    batch_size: int = opt(64, "Rows per forward.")
    max_eval_samples: int | None = opt(None, "Use a seeded random subset of the dev rows.")
    seed: int = opt(42, "Seed of the dev subset.")
    json_file: str | None = opt(None, "Also write the metrics as JSON.", flags=("--json",))
    allow_new_head: bool = opt(
        False,
        "Go on with a model whose classification head is untrained (random).",
        flags=("--allow-new-head",),
    )

    def check(self) -> None:
        super().check()
        _check_positive(self, "max_seq_length", "batch_size", "max_eval_samples")


# Caps that keep the default main job under ~20 minutes on 2 CPU cores; --full lifts them.
QUICK = {
    "max_train_samples": 8000,
    "teacher_epochs": 2.0,
    "intermediate_epochs": 2.0,
    "prediction_epochs": 2.0,
}


@dataclass
class PipelineConfig(DataOptions):
    """Main job: the whole method as resumable stages, each in its own subdirectory of --output:
    teacher, start, augment (--augment), distill, trim (--trim-ratio), evaluate, export, bench, report,
    card (and push).

    OUTPUT/pipeline.json records each finished stage with a fingerprint of its options and inputs: a
    rerun skips finished stages, resumes an interrupted one and reruns what changed (and what follows).
    Without --full, the train set and epochs are capped (QUICK) so it finishes in minutes on a CPU.
    Options of the single commands go in the --config file under 'options: STAGE:'."""

    data_dir: str | None = opt(None, "GLUE root [../shared/data/glue when it exists; else the HF hub].")
    test_file: str | None = opt(None, "Labelled test file: the evaluate stage also scores it.")
    output: str = opt("runs/main", "Run directory (a subdirectory per stage, pipeline.json, summary.md).")
    teacher: str = opt("all-MiniLM-L6-v2", "Pre-trained encoder to fine-tune.")
    teacher_finetuned: str | None = opt(None, "A fine-tuned teacher dir: no teacher stage.")
    student: str = opt(
        "tinybert-4l-312", "Student preset, config.json, or a checkpoint (dir or hub id, any tokenizer)."
    )
    start: str = opt(
        "auto", "Student start: auto (pruned from the teacher when it fits), pruned, random, pretrained "
        "(--student is a pre-trained checkpoint, remapped onto the teacher's tokenizer).",
    )  # fmt: skip
    student_shape: str | None = opt(
        None, "With --start pretrained: cut the pre-trained student to this shape first (a preset or JSON).",
    )  # fmt: skip
    # not named 'recipe': config.build would load a field of that name as the config's own recipe
    distill_recipe: str = opt(
        "tinybert4", "Distillation method: a shipped recipe (tinydistill recipes) or a YAML file.",
        flags=("--recipe",),
    )  # fmt: skip
    augment: bool = opt(False, "Augment the train set (TinyBERT) and distill on it.")
    augment_mlm: str | None = opt(
        None, "Masked LM of --augment [a head trained on the teacher's encoder over the train text]."
    )
    augment_n: int | None = opt(None, "Variants per example of --augment (N_a) [20].")
    trim_ratio: float | None = opt(
        None, "After distillation, trim the student's vocabulary to the train text's most frequent pieces"
        " until it has this many times fewer parameters than the teacher (a trim stage; off by default).",
    )  # fmt: skip
    full: bool = opt(False, "Whole train set, the task's epochs (no caps).", flags=("--full",))
    max_train_samples: int | None = opt(None, "Train rows [8000 without --full].")
    teacher_epochs: float | None = opt(None, "Teacher epochs [2 without --full].")
    teacher_lr: float | None = opt(1e-4, "Teacher fine-tuning LR (1e-4 suits MiniLM).")
    student_lr: float | None = opt(None, "Distillation LR of every step [the recipe's: 1e-4 then 5e-5].")
    student_epochs: float | None = opt(None, "Distillation epochs of a step the step flags leave unset.")
    intermediate_epochs: float | None = opt(None, "Epochs of the intermediate step [2 without --full].")
    prediction_epochs: float | None = opt(None, "Epochs of the prediction step [2 without --full].")
    max_steps: int | None = opt(None, "Cap optimizer steps (per stage).")
    batch_size: int | None = opt(None, "Rows per step [the task's].")
    max_seq_length: int | None = opt(None, "Token limit per row [the task's].")
    seed: int = opt(42, "Seed of everything.")
    allow_degenerate: bool = opt(
        False, "Go on when the student is no better than the trivial baseline.", flags=("--allow-degenerate",)
    )
    export: bool = opt(True, "Export the student to ONNX + int8 (--no-export: no export stage).")
    push_to_hub: str | None = opt(None, "Upload the student dir and its card to this Hub repo (user/name).")
    from_stage: str | None = opt(
        None, "Rerun this stage and every later one: teacher, start, augment, distill, trim, evaluate, "
        "export, bench, report, card, push.", flags=("--from",),
    )  # fmt: skip
    overwrite: bool = opt(
        False, "Run every stage again (by default finished stages with the same options are reused and "
        "an interrupted one resumes).", flags=("--overwrite",),
    )  # fmt: skip
    quiet: bool = opt(False, "No progress bars or stage lines (pipeline.log keeps them).", flags=("--quiet",))
    # per stage: options of the command it runs ({distill: {temperature: 2}}), see tinydistill.pipeline
    options: dict[str, dict[str, Any]] = opt(factory=dict, cli=False)

    def check(self) -> None:
        super().check()
        _check_choice("start", self.start, STARTS)
        if self.student_shape and self.start != "pretrained":
            raise TinyDistillError("--student-shape cuts a pre-trained student: it needs --start pretrained")
        _check_positive(
            self, "max_train_samples", "teacher_epochs", "teacher_lr", "student_lr", "student_epochs",
            "intermediate_epochs", "prediction_epochs", "max_steps", "batch_size", "max_seq_length",
            "trim_ratio",
        )  # fmt: skip
        if self.augment_n is not None and self.augment_n < 0:
            raise TinyDistillError(f"--augment-n must be >= 0, got {self.augment_n}")
        bad = [k for k, v in self.options.items() if not isinstance(v, dict)]
        if bad:
            raise TinyDistillError(f"options.{bad[0]} must be a mapping of option: value")


@dataclass
class CardConfig(Checked):
    """The pipeline's model card (``options: card:``): what it cannot find out by itself."""

    model_name: str | None = opt(None, "Name in the card [student name + task].")
    license: str | None = opt(None, "License id for the metadata, e.g. apache-2.0 [none].")
    language: list[str] | None = opt(None, "Language codes [en for GLUE tasks].")
    tags: list[str] | None = opt(None, "Extra tags.")


@dataclass
class PushConfig(Checked):
    """Uploading the student to the Hugging Face Hub (``--push-to-hub REPO_ID``; ``options: push:``)."""

    repo_id: str = opt("", "Hub repo id (user/name).", required=True)
    private: bool = opt(False, "Create the repo as private.")
    commit_message: str = opt("Upload a tinydistill student", "Commit message.")


@dataclass
class CorpusConfig(Checked):
    """Prepare a general-distillation corpus: split sentences, tokenize, pack, write memory-mapped shards."""

    input: list[str] = opt(
        factory=list, help="Text file or dir (repeatable): plain, WikiExtractor, WikiText.", repeat=True,
        split=False, required=True,
    )  # fmt: skip
    tokenizer: str = opt("", "The teacher (its fast tokenizer is used).", required=True)
    output: str = opt("", "Dir for the shards and manifest.json.", required=True)
    max_seq_length: int = opt(128, "Tokens per packed sequence.")
    shard_size: int = opt(16384, "Sequences per shard file.")
    workers: int = opt(0, "Tokenizer processes (0/1: in-process).")
    fmt: str = opt("auto", "auto | plain | wikiextractor | wikitext", flags=("--format",))
    max_files: int | None = opt(None, "Only the first N files.")
    max_docs: int | None = opt(None, "Stop after N documents.")
    overwrite: bool = opt(False, "Replace a corpus already in --output.", flags=("--overwrite",))

    def check(self) -> None:
        super().check()
        _check_positive(self, "max_seq_length", "shard_size", "max_files", "max_docs")
        _check_choice("format", self.fmt, ("auto", "plain", "wikiextractor", "wikitext"))


@dataclass
class AugmentConfig(TableOptions):
    """TinyBERT data augmentation: write the task's train set plus N_a variants per example."""

    task: str = opt("", TASK_HELP, required=True)
    output: str = opt("", "Augmented train file (.tsv, the task's format).", required=True)
    mlm: str | None = opt(None, "Masked LM dir or hub id (e.g. bert-base-uncased).")
    data_dir: str | None = opt(None, "GLUE root with <TASK>/train.tsv; omit for HF datasets.")
    train_file: str | None = opt(None, "Train file replacing the task's train split.")
    text_columns: list[str] | None = opt(None, "Comma-separated text column names (or positions).")
    label_column: str = opt("label", "Label column name (or position).")
    vectors: str | None = opt(
        None, "GloVe/word2vec text file for multi-piece words (default: the MLM input embeddings)."
    )
    vocab_limit: int | None = opt(100_000, "Words read from --vectors.")
    n_aug: int = opt(20, "Draws per sentence (N_a).")
    candidates: int = opt(15, "Candidates per word (K).")
    p: float = opt(0.4, "Replacement probability per word (p_t).")
    stopwords: str | None = opt(
        None, "File of stop words (never replaced), one per line [NLTK's English list]."
    )
    seed: int = opt(42, "Seed of the draws.")
    max_train_samples: int | None = opt(None, "Use a seeded random subset of the train rows.")
    shard: str | None = opt(None, "i/n: augment the i-th of n slices (multi-process runs).")
    merge: list[str] | None = opt(None, "Comma-separated shard files to concatenate into --output (no MLM).")
    batch_rows: int = opt(256, "Masked rows per MLM forward.")
    masks_per_row: str = opt(
        "1",
        "1 = the paper (one masked word per row); N, 'all' or e.g. 15% (of the row's tokens) mask several "
        "words per row: fewer forwards, slightly different candidates.",
    )
    pair_context: bool = opt(
        False, "MLM input '[CLS] masked [SEP] original [SEP]' (original script).", flags=("--pair-context",)
    )
    device: str | None = opt(None, "cpu, cuda, ... [cuda if present]")
    dtype: str = opt("auto", "auto (bf16 where native: GPU, AVX512-BF16 CPU), float32, bfloat16")
    progress: bool = opt(True, "Show a progress bar.")

    def check(self) -> None:
        super().check()
        if not 0.0 <= self.p <= 1.0:
            raise TinyDistillError(f"--p must be a probability in [0, 1], got {self.p}")
        if self.n_aug < 0:
            raise TinyDistillError(f"--n-aug must be >= 0, got {self.n_aug}")
        if self.candidates < 1:
            raise TinyDistillError(f"--candidates must be at least 1, got {self.candidates}")
        if self.vocab_limit is not None and self.vocab_limit < 1:
            raise TinyDistillError(f"--vocab-limit must be at least 1, got {self.vocab_limit}")
        _check_positive(self, "batch_rows", "max_train_samples")
        if Path(self.output).suffix.lower() != ".tsv":
            raise TinyDistillError(f"--output must be a .tsv file (the task's format), got {self.output}")
        if self.merge:
            return
        from tinydistill.augmentation.mlm_candidates import parse_masks_per_row

        parse_masks_per_row(self.masks_per_row)
        if not self.mlm:
            raise TinyDistillError(
                "augment needs --mlm MODEL: a masked LM dir or hub id (tinydistill mlm-head makes one)"
            )


@dataclass
class MLMHeadConfig(Checked):
    """Train a masked-LM head (tied to the input embeddings) on an encoder, for `tinydistill augment`."""

    encoder: str = opt("", "Encoder dir, alias or hub id (no MLM head needed).", required=True)
    corpus: list[str] = opt(
        factory=list, help="Text files or dirs (plain, WikiText, WikiExtractor); repeatable.", repeat=True,
        required=True,
    )  # fmt: skip
    output: str = opt("", "Masked LM dir to write.", required=True)
    max_steps: int = opt(300, "Optimizer steps.")
    batch_size: int = opt(32, "Chunks per step.")
    max_seq_length: int = opt(128, "Tokens per chunk.")
    learning_rate: float | None = opt(
        None, "Default 1e-3 (head only), 1e-4 with --train-encoder.", flags=("--learning-rate", "--lr")
    )
    train_encoder: bool = opt(False, "Also train the encoder.", flags=("--train-encoder",))
    eval_chunks: int = opt(64, "Held-out chunks for MLM accuracy.")
    mlm_probability: float = opt(0.15, "Share of tokens masked.")
    seed: int = opt(42, "Seed of the masks and the split.")
    device: str | None = opt(None, "cpu, cuda, ... [cuda if present]")
    progress: bool = opt(True, "Show a progress bar.")

    def check(self) -> None:
        super().check()
        _check_positive(self, "max_steps", "batch_size", "max_seq_length", "learning_rate", "eval_chunks")


THREADS_HELP = "CPU threads (torch and onnxruntime intra-op); default: all."
CACHE_HELP = "Where on-the-fly ONNX exports go (default ~/.cache/tinydistill)."


@dataclass
class ExportConfig(Checked):
    """Export to ONNX (dynamic batch/sequence axes), check it against PyTorch, optionally quantize."""

    model: str = opt("", "Saved model dir (HF format).", required=True)
    output: str = opt("", "Export dir (model.onnx, tokenizer, config).", required=True)
    fmt: str = opt("onnx", "Export format.", flags=("--format",))
    quantize: str | None = opt(None, "'int8': also write model.int8.onnx (dynamic quantization).")
    optimize: bool = opt(False, "Offline onnxruntime transformer fusions.")
    weight_type: str = opt("qint8", "int8 weights: qint8 or quint8.")
    per_channel: bool = opt(False, "Per-channel int8 weight scales.", flags=("--per-channel",))
    atol: float = opt(1e-3, "Max |onnx - torch| logit difference allowed.")
    task: str | None = opt(None, "GLUE task whose dev rows check the export (e.g. SST-2).")
    data_dir: str | None = opt(None, "GLUE root with <TASK>/dev.tsv.")
    threads: int | None = opt(None, THREADS_HELP)
    allow_new_head: bool = opt(
        False,
        "Go on with a model whose classification head is untrained (random).",
        flags=("--allow-new-head",),
    )


@dataclass
class BenchConfig(Checked):
    """Size, latency and throughput of models side by side (+ dev metric per backend with --task)."""

    models: list[str] = opt(
        factory=list, help="Model dirs / export dirs / .onnx files: --models A B ...", repeat=True,
        split=False, positional=True,
    )  # fmt: skip
    backend: str = opt("torch", "torch, onnx, onnx-int8, or a comma list of them.")
    batch_sizes: str = opt("1,32", "Latency at the first, throughput at the last.")
    seq_len: int = opt(128, "Tokens per row.")
    threads: int | None = opt(None, THREADS_HELP)
    device: str = opt("auto", "auto (CPU + CUDA when present), cpu, cuda.")
    warmup: int = opt(3, "Untimed runs first.")
    repeats: int = opt(20, "Timed runs at batch 1 (fewer for big batches).")
    names: list[str] | None = opt(None, "Comma-separated display names.")
    task: str | None = opt(None, "GLUE task whose dev set is scored per backend (e.g. SST-2).")
    data_dir: str | None = opt(None, "GLUE root with <TASK>/dev.tsv.")
    max_eval_samples: int | None = opt(None, "Use a seeded random subset of the dev rows.")
    json_file: str | None = opt(None, "Also write the results as JSON.", flags=("--json",))
    cache_dir: str | None = opt(None, CACHE_HELP)


@dataclass
class PredictConfig(TableOptions):
    """Batched inference over a file: a label and class probabilities per row."""

    model: str = opt("", "HF model dir, export dir or .onnx file.", required=True)
    input_file: str = opt("", "TSV / CSV / JSONL file.", flags=("--input",), required=True)
    output_file: str = opt("", "Predictions (.tsv / .csv / .jsonl).", flags=("--output",), required=True)
    text_columns: list[str] | None = opt(
        None, "e.g. sentence or sentence1,sentence2, or positions (default: guess)."
    )
    backend: str = opt("auto", "auto, torch, onnx or onnx-int8.")
    batch_size: int = opt(32, "Rows per forward.")
    max_seq_length: int = opt(128, "Token limit per row.")
    threads: int | None = opt(None, THREADS_HELP)
    cache_dir: str | None = opt(None, CACHE_HELP)
    allow_new_head: bool = opt(
        False,
        "Go on with a model whose classification head is untrained (random).",
        flags=("--allow-new-head",),
    )


@dataclass
class ReportConfig(Checked):
    """Markdown teacher-vs-student table with loss curves and an accuracy-vs-latency plot."""

    run_dirs: list[str] = opt(
        factory=list, help="finetune / distill run dirs.", positional=True, split=False, required=True
    )
    output: str = opt("", "Report dir (report.md + PNGs).", required=True)
    bench_files: list[str] | None = opt(
        None, "Latencies (+ ONNX points) from 'tinydistill bench --json' files.", flags=("--bench",),
        repeat=True, split=False,
    )  # fmt: skip
    seq_len: int = opt(128, "Tokens per row of the latency runs.")
    threads: int | None = opt(None, THREADS_HELP)
    repeats: int = opt(10, "Timed runs per model.")


@dataclass
class RecipesConfig(Checked):
    """List the method recipes; `recipes show NAME` prints one, `recipes copy NAME FILE` starts your own."""

    action: str = opt("list", "list | show | copy", positional=True)
    name: str | None = opt(None, "Recipe name (show, copy).", positional=True)
    file: str | None = opt(None, "Where `copy` writes the recipe.", positional=True)
    dir: str | None = opt(None, "Also list the recipes (*.yaml) in this folder.")

    def check(self) -> None:
        super().check()
        _check_choice("action", self.action, ("list", "show", "copy"))
        if self.action != "list" and not self.name:
            raise TinyDistillError(f"recipes {self.action} needs a recipe NAME (see: tinydistill recipes)")
        if self.action == "copy" and not self.file:
            raise TinyDistillError("recipes copy needs a target FILE: tinydistill recipes copy NAME FILE")


# ----------------------------------------------------------------------------- loading


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


def shipped_recipes(extra_dir: str | Path | None = None) -> dict[str, Path]:
    """Recipe name -> file: the ones in the package, then those of ``extra_dir``."""
    found = {p.stem: p for p in sorted(RECIPE_DIR.glob("*.yaml"))}
    if extra_dir:
        found.update({p.stem: p for p in sorted(Path(extra_dir).glob("*.yaml"))})
    return found


def recipe_description(path: Path) -> str:
    """The first comment line of a recipe file."""
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip().rstrip(":.") + "."
    return ""


def recipe_path(name: str | Path) -> Path:
    """A recipe file, or the name of a shipped one (``lrcbert4`` -> ``<package>/recipes/lrcbert4.yaml``)."""
    path = Path(name)
    if not path.exists() and path.suffix == "" and len(path.parts) == 1:
        shipped = shipped_recipes()
        if path.name in shipped:
            return shipped[path.name]
        known = ", ".join(shipped) or "none found"
        raise TinyDistillError(f"recipe not found: {name} (a YAML file, or one of: {known})")
    if not path.exists():
        raise TinyDistillError(f"recipe not found: {name}")
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


def _layers(cls: type, paths: list[str | Path | None], given: dict[str, Any]) -> list[dict[str, Any]]:
    """The YAML layers under the flags: the recipe (for configs that have one), then the config files."""
    files = [load_yaml(p) for p in paths if p]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if "recipe" not in fields:
        return files
    name = given.get("recipe") or next((f["recipe"] for f in reversed(files) if f.get("recipe")), None)
    name = str(name or fields["recipe"].default)
    path = recipe_path(name)
    recipe = load_yaml(path)
    recipe["recipe"] = name if path.parent == RECIPE_DIR else str(path.resolve())
    return [recipe, *files]


def build(cls: type, yaml_path: str | Path | list[str | Path | None] | None = None, **overrides: Any) -> Any:
    """Defaults < recipe < YAML file(s), in order < explicit (non-None) overrides; validated.

    Unknown keys are an error; values are converted to the fields' types. ``perturbation`` and
    ``term_options`` merge key by key; an explicit ``learning_rate`` / ``epochs`` / ``max_steps``
    override also replaces the per-stage values of the recipe's ``stages``.
    """
    defaults = cls()
    values: dict[str, Any] = {k: getattr(defaults, k) for k in DEEP_KEYS if hasattr(defaults, k)}
    paths = list(yaml_path) if isinstance(yaml_path, (list, tuple)) else [yaml_path]
    given = {k: v for k, v in overrides.items() if v is not None}
    for layer in [*_layers(cls, paths, given), given]:
        stages = values.get("stages")
        if isinstance(stages, list) and "stages" not in layer:
            # a run-wide value set above the recipe replaces the per-stage values below it
            strip = [k for k in STAGE_OVERRIDABLE if layer.get(k) is not None]
            values["stages"] = [
                {k: v for k, v in st.items() if k not in strip} if isinstance(st, dict) else st
                for st in stages
            ]
        _merge(values, layer)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise TinyDistillError(f"unknown config option(s): {', '.join(unknown)}")
    values = {
        k: coerce(k, v, str(fields[k].type), fields[k].metadata.get("split", True)) for k, v in values.items()
    }
    cfg = cls(**values)
    cfg.check()
    return cfg


def save(cfg: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))


def field_types(cls: type) -> dict[str, Any]:
    """The fields' real types (the annotations are strings here)."""
    return typing.get_type_hints(cls)
