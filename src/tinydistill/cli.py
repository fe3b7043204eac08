"""``tinydistill`` command line: parse flags, call the Python API, print results.

User-input problems (TinyDistillError) become one line on stderr and exit code 2.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from tinydistill.errors import TinyDistillError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Distill BERT-family encoders into small, fast students (TinyBERT, LRC-BERT, KD).",
)

Task = Annotated[str, typer.Option("--task", help="GLUE task (SST-2, sst2, MRPC, ...) or 'custom'.")]
DataDir = Annotated[
    str | None,
    typer.Option("--data-dir", help="GLUE root with <TASK>/{train,dev}.tsv; omit for HF datasets."),
]
Output = Annotated[str | None, typer.Option("--output", help="Run directory (model, config, metrics, logs).")]
TrainFile = Annotated[
    str | None, typer.Option("--train-file", help="Train file replacing the task's train split.")
]
DevFile = Annotated[str | None, typer.Option("--dev-file", help="Dev file (custom tasks).")]
TextCols = Annotated[str | None, typer.Option("--text-columns", help="Comma-separated text column names.")]
LabelCol = Annotated[str | None, typer.Option("--label-column", help="Label column name (default: label).")]
MaxTrain = Annotated[int | None, typer.Option("--max-train-samples", help="Use a seeded random subset.")]
MaxEval = Annotated[int | None, typer.Option("--max-eval-samples")]
MaxSteps = Annotated[int | None, typer.Option("--max-steps", help="Cap optimizer steps (per stage).")]
Epochs = Annotated[float | None, typer.Option("--epochs", help="Default: the task's.")]
Batch = Annotated[int | None, typer.Option("--batch-size")]
SeqLen = Annotated[int | None, typer.Option("--max-seq-length")]
LR = Annotated[float | None, typer.Option("--learning-rate", "--lr")]
Seed = Annotated[int | None, typer.Option("--seed")]
ConfigFile = Annotated[str | None, typer.Option("--config", help="YAML file of options; flags override it.")]


def _quiet_hf() -> None:
    """Keep the terminal for our progress bars: no HF load reports or per-shard bars."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _fail_cleanly(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _quiet_hf()
        try:
            return fn(*args, **kwargs)
        except TinyDistillError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper


def _columns(value: str | None) -> list[str] | None:
    return [c.strip() for c in value.split(",") if c.strip()] if value else None


def _common(**kw: Any) -> dict[str, Any]:
    kw["text_columns"] = _columns(kw.get("text_columns"))
    return kw


@app.command()
@_fail_cleanly
def finetune(
    task: Task,
    model: Annotated[
        str | None, typer.Option("--model", help="HF encoder dir or hub id [default: all-MiniLM-L6-v2].")
    ] = None,
    output: Output = None,
    data_dir: DataDir = None,
    train_file: TrainFile = None,
    dev_file: DevFile = None,
    text_columns: TextCols = None,
    label_column: LabelCol = None,
    max_train_samples: MaxTrain = None,
    max_eval_samples: MaxEval = None,
    max_steps: MaxSteps = None,
    epochs: Epochs = None,
    batch_size: Batch = None,
    max_seq_length: SeqLen = None,
    learning_rate: LR = None,
    seed: Seed = None,
    config: ConfigFile = None,
) -> None:
    """Fine-tune a teacher; keeps the best-on-dev checkpoint (HF format) in --output."""
    from tinydistill import api
    from tinydistill.config import FinetuneConfig, build

    cfg = build(
        FinetuneConfig,
        config,
        **_common(
            task=task,
            model=model,
            output=output,
            data_dir=data_dir,
            train_file=train_file,
            dev_file=dev_file,
            text_columns=text_columns,
            label_column=label_column,
            max_train_samples=max_train_samples,
            max_eval_samples=max_eval_samples,
            max_steps=max_steps,
            epochs=epochs,
            batch_size=batch_size,
            max_seq_length=max_seq_length,
            learning_rate=learning_rate,
            seed=seed,
        ),
    )
    metrics = api.finetune(cfg)
    typer.echo(json.dumps({"output": cfg.output, "dev": metrics["dev"], "degenerate": metrics["degenerate"]}))


@app.command()
@_fail_cleanly
def distill(
    task: Task,
    teacher: Annotated[str, typer.Option("--teacher", help="Fine-tuned teacher dir.")],
    student: Annotated[
        str | None,
        typer.Option("--student", help="Preset, checkpoint dir, or config.json. [default: tinybert-4l-312]"),
    ] = None,
    output: Output = None,
    stage: Annotated[
        str | None,
        typer.Option(
            "--stage", help="all (default) or one stage: intermediate | prediction | a recipe's stage"
        ),
    ] = None,
    recipe: Annotated[
        str | None,
        typer.Option(
            "--recipe",
            help="Method recipe YAML (or a shipped name: tinybert4, tinybert6, lrcbert4, kd, pkd, crd); "
            "--config and flags override it.",
        ),
    ] = None,
    data_dir: DataDir = None,
    train_file: TrainFile = None,
    dev_file: DevFile = None,
    text_columns: TextCols = None,
    label_column: LabelCol = None,
    max_train_samples: MaxTrain = None,
    max_eval_samples: MaxEval = None,
    max_steps: MaxSteps = None,
    epochs: Epochs = None,
    batch_size: Batch = None,
    max_seq_length: SeqLen = None,
    learning_rate: LR = None,
    seed: Seed = None,
    config: ConfigFile = None,
    layer_map: Annotated[
        str | None, typer.Option("--layer-map", help="uniform|top|bottom|'3,6,9,12'")
    ] = None,
    init_from_teacher: Annotated[
        bool | None, typer.Option("--init-from-teacher/--no-init-from-teacher")
    ] = None,
    temperature: Annotated[float | None, typer.Option("--temperature")] = None,
    intermediate_epochs: Annotated[float | None, typer.Option("--intermediate-epochs")] = None,
    prediction_epochs: Annotated[float | None, typer.Option("--prediction-epochs")] = None,
    intermediate_lr: Annotated[float | None, typer.Option("--intermediate-lr")] = None,
    prediction_lr: Annotated[float | None, typer.Option("--prediction-lr")] = None,
    per_layer_projection: Annotated[bool, typer.Option("--per-layer-projection")] = False,
    perturb: Annotated[
        bool | None,
        typer.Option("--perturb/--no-perturb", help="Gradient perturbation of the embeddings (LRC-BERT)."),
    ] = None,
    perturb_epsilon: Annotated[float | None, typer.Option("--perturb-epsilon")] = None,
    start: Annotated[
        str | None,
        typer.Option(
            "--start",
            help="Start of a student given as a shape: auto (pruned from the teacher when it fits), "
            "pruned, random. [default: auto]",
        ),
    ] = None,
    calibration_samples: Annotated[
        int | None, typer.Option("--calibration-samples", help="Rows that rank units when pruning [512].")
    ] = None,
) -> None:
    """Task distillation: TinyBERT by default (step 1 intermediate layers, step 2 prediction layer),
    or the method of a --recipe (LRC-BERT, Hinton KD, BERT-PKD, CRD, TinyBERT 4L/6L)."""
    from tinydistill import api
    from tinydistill.config import DistillConfig, build, recipe_path

    perturbation = {
        k: v for k, v in (("enabled", perturb), ("epsilon", perturb_epsilon)) if v is not None
    } or None
    cfg = build(
        DistillConfig,
        [recipe_path(recipe) if recipe else None, config],
        **_common(
            task=task,
            teacher=teacher,
            student=student,
            output=output,
            stage=stage,
            data_dir=data_dir,
            train_file=train_file,
            dev_file=dev_file,
            text_columns=text_columns,
            label_column=label_column,
            max_train_samples=max_train_samples,
            max_eval_samples=max_eval_samples,
            max_steps=max_steps,
            epochs=epochs,
            batch_size=batch_size,
            max_seq_length=max_seq_length,
            learning_rate=learning_rate,
            seed=seed,
            layer_map=layer_map,
            init_from_teacher=init_from_teacher,
            temperature=temperature,
            intermediate_epochs=intermediate_epochs,
            prediction_epochs=prediction_epochs,
            intermediate_lr=intermediate_lr,
            prediction_lr=prediction_lr,
            hidden_proj_shared=False if per_layer_projection else None,
            perturbation=perturbation,
            start=start,
            calibration_samples=calibration_samples,
        ),
    )
    metrics = api.distill(cfg)
    typer.echo(json.dumps({"output": cfg.output, "dev": metrics["dev"], "degenerate": metrics["degenerate"]}))


@app.command()
@_fail_cleanly
def prune(
    teacher: Annotated[str, typer.Option("--teacher", help="Trained encoder (fine-tuned or pre-trained).")],
    output: Annotated[str, typer.Option("--output", help="Directory of the pruned student (HF format).")],
    shape: Annotated[
        str, typer.Option("--shape", help="Preset (tinybert-4l-312, ...) or a JSON file of HF config keys.")
    ] = "tinybert-4l-312",
    task: Annotated[str | None, typer.Option("--task", help="Calibrate on this task's train rows.")] = None,
    data_dir: DataDir = None,
    train_file: TrainFile = None,
    text_columns: TextCols = None,
    label_column: LabelCol = None,
    corpus: Annotated[
        str | None, typer.Option("--corpus", help="Calibrate on a prepared corpus (tinydistill corpus).")
    ] = None,
    calibration_samples: Annotated[int, typer.Option("--calibration-samples", min=1)] = 512,
    layer_map: Annotated[str, typer.Option("--layer-map", help="uniform|top|bottom|'2,4,6'")] = "uniform",
    max_seq_length: SeqLen = None,
    seed: Annotated[int, typer.Option("--seed")] = 42,
    config: ConfigFile = None,
) -> None:
    """Structured pruning of a teacher to a student shape (depth, heads, head size, FFN, hidden width),
    ranked by activation importance on calibration rows: the cheap start for `distill --student DIR`."""
    from tinydistill import api
    from tinydistill.config import load_yaml

    given = dict(
        teacher=teacher, output=output, shape=shape, task=task, data_dir=data_dir, train_file=train_file,
        text_columns=_columns(text_columns), label_column=label_column or "label", corpus=corpus,
        calibration_samples=calibration_samples, layer_map_spec=layer_map, max_seq_length=max_seq_length,
        seed=seed,
    )  # fmt: skip
    if config:
        ctx = typer.get_current_context()
        from_file = load_yaml(config)
        unknown = sorted(set(from_file) - set(given) - {"layer_map"})
        if unknown:
            raise TinyDistillError(f"{config}: unknown option(s) for prune: {', '.join(unknown)}")
        for key, value in from_file.items():  # flags given on the command line win
            source = ctx.get_parameter_source(key)
            if source is None or source.name == "DEFAULT":
                given["layer_map_spec" if key == "layer_map" else key] = value
    typer.echo(json.dumps(api.prune(**given)))


@app.command()
@_fail_cleanly
def evaluate(
    task: Task,
    model: Annotated[str, typer.Option("--model", help="Saved model dir.")],
    data_dir: DataDir = None,
    dev_file: DevFile = None,
    text_columns: TextCols = None,
    label_column: LabelCol = None,
    max_seq_length: SeqLen = None,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 64,
    max_eval_samples: MaxEval = None,
    json_file: Annotated[str | None, typer.Option("--json", help="Also write the metrics as JSON.")] = None,
) -> None:
    """Print the task's metric(s) on dev."""
    from tinydistill import api
    from tinydistill.evaluation import warn_if_degenerate

    result = api.evaluate(
        task,
        model,
        data_dir=data_dir,
        dev_file=dev_file,
        text_columns=_columns(text_columns),
        label_column=label_column or "label",
        max_seq_length=max_seq_length,
        batch_size=batch_size,
        max_eval_samples=max_eval_samples,
    )
    trivial = "constant" if result.spec.is_regression else "majority"
    for split, metrics in result.metrics.items():
        base = result.baseline[split]
        typer.echo(
            f"{split}: "
            + ", ".join(f"{k}={100 * v:.2f}" for k, v in metrics.items())
            + f" ({trivial}: "
            + ", ".join(f"{k}={100 * v:.2f}" for k, v in base.items())
            + ")"
        )
    if json_file:
        Path(json_file).parent.mkdir(parents=True, exist_ok=True)
        Path(json_file).write_text(json.dumps({**result.metrics, **result.record()}, indent=2))
    warn_if_degenerate(result, f"model {model}")


# Caps that keep the default main job under ~20 minutes on 2 CPU cores; --full lifts them.
QUICK = {
    "max_train_samples": 8000,
    "teacher_epochs": 2.0,
    "intermediate_epochs": 2.0,
    "prediction_epochs": 2.0,
}


@app.command()
@_fail_cleanly
def pipeline(
    task: Task = "SST-2",
    data_dir: DataDir = None,
    output: Output = "runs/main",
    teacher: Annotated[str, typer.Option("--teacher", help="Pre-trained encoder to fine-tune.")] = (
        "all-MiniLM-L6-v2"
    ),
    student: Annotated[str, typer.Option("--student")] = "tinybert-4l-312",
    full: Annotated[
        bool, typer.Option("--full", help="Whole train set, the task's epochs (no caps).")
    ] = False,
    max_train_samples: MaxTrain = None,
    teacher_epochs: Annotated[float | None, typer.Option("--teacher-epochs")] = None,
    teacher_lr: Annotated[
        float | None, typer.Option("--teacher-lr", help="Teacher fine-tuning LR [1e-4, suits MiniLM].")
    ] = 1e-4,
    student_lr: Annotated[
        float | None,
        typer.Option("--student-lr", help="Distillation LR of both steps [1e-4 then 5e-5]."),
    ] = None,
    intermediate_epochs: Annotated[float | None, typer.Option("--intermediate-epochs")] = None,
    prediction_epochs: Annotated[float | None, typer.Option("--prediction-epochs")] = None,
    max_steps: MaxSteps = None,
    batch_size: Batch = None,
    max_seq_length: SeqLen = None,
    seed: Annotated[int, typer.Option("--seed")] = 42,
    allow_degenerate: Annotated[
        bool,
        typer.Option(
            "--allow-degenerate", help="Go on when the student is no better than the trivial baseline."
        ),
    ] = False,
) -> None:
    """Main job: fine-tune the teacher, distill a student, print the teacher-vs-student table.

    Without --full, the train set and epochs are capped (see QUICK) so it finishes in minutes on a CPU.
    """
    from tinydistill.pipeline import run

    if data_dir is None:
        candidates = [
            Path.cwd().parent / "shared" / "data" / "glue",
            Path(__file__).resolve().parents[3] / "shared" / "data" / "glue",
        ]
        data_dir = next((str(p) for p in candidates if p.is_dir()), None)
    given = {
        "max_train_samples": max_train_samples,
        "teacher_epochs": teacher_epochs,
        "intermediate_epochs": intermediate_epochs,
        "prediction_epochs": prediction_epochs,
    }
    caps = {k: v if v is not None or full else QUICK[k] for k, v in given.items()}
    result = run(
        teacher_lr=teacher_lr,
        student_lr=student_lr,
        task=task,
        data_dir=data_dir,
        output=output,
        teacher=teacher,
        student=student,
        max_steps=max_steps,
        batch_size=batch_size,
        max_seq_length=max_seq_length,
        seed=seed,
        allow_degenerate=allow_degenerate,
        **caps,
    )
    typer.echo(result["table"])


def main() -> None:  # pragma: no cover - console entry
    sys.exit(app())


def _register_commands() -> None:
    """Commands that live beside their feature: corpus/general, augment/mlm-head, export/bench/..."""
    import importlib

    for module in ("corpus.commands", "augment.commands", "deploy.commands"):
        try:
            mod = importlib.import_module(f"tinydistill.{module}")
        except ModuleNotFoundError as exc:  # only a feature package absent from this build is skipped
            package = f"tinydistill.{module.split('.')[0]}"
            if exc.name not in (package, f"tinydistill.{module}"):
                raise
            continue
        mod.register(app, _fail_cleanly)


if __name__ == "tinydistill.cli":
    _register_commands()
elif __name__ == "__main__":  # python -m tinydistill.cli / accelerate launch -m tinydistill.cli
    # Run the importable module, not this __main__ copy: the feature commands import
    # tinydistill.cli, and registering them from here would import it a second time. (Spawned
    # worker processes re-import this file as __mp_main__ and need no commands at all.)
    from tinydistill.cli import main as _main

    _main()
