"""What every run recipe shares: its rows, resolved settings, loop options and result.

A run dir holds the resolved ``config.yaml``, ``metrics.json``, metric logs under ``logs/`` and the
model in HF format (safetensors + tokenizer + config).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

from tinydistill import config as C
from tinydistill import ownership as own
from tinydistill.data import subsample
from tinydistill.errors import TinyDistillError
from tinydistill.models.load import resolve_model_path
from tinydistill.tasks.resolve import TaskData, as_examples, load_task_data
from tinydistill.training.checkpoint import latest_readable


class RunResult(dict):
    """A run's metrics (this dict, as in ``metrics.json``), plus ``output`` (the run dir), ``model`` (the
    trained model object) and ``paths`` (model dir, config.yaml, metrics.json, logs)."""

    def __init__(self, metrics: dict[str, Any], output: Path, model: Any = None) -> None:
        super().__init__(metrics)
        self.output = Path(output)
        self.model = model
        self.paths = {
            "model": self.output,
            "config": self.output / "config.yaml",
            "metrics": self.output / "metrics.json",
            "logs": self.output / "logs",
        }


def model_labels(model_dir: str) -> list[str] | None:
    """Named labels of a checkpoint's head (for custom tasks), None when it has only LABEL_i names."""
    path = Path(resolve_model_path(model_dir)) / "config.json"
    if not path.exists():
        return None
    id2label = json.loads(path.read_text()).get("id2label") or {}
    names = [id2label[k] for k in sorted(id2label, key=int)]
    return None if not names or all(n.startswith("LABEL_") for n in names) else names


def task_data(
    cfg: C.RunConfig, labels_from: str | None = None, train: Any = None, dev: Any = None
) -> TaskData:
    """The task's rows from files, or ``train`` / ``dev`` rows given as objects (see ``as_examples``)."""
    data = load_task_data(
        cfg.task,
        cfg.data_dir,
        cfg.train_file,
        cfg.dev_file,
        cfg.text_columns,
        cfg.label_column,
        model_labels=model_labels(labels_from) if labels_from and cfg.task.lower() == "custom" else None,
        need_train=train is None,
        need_dev=dev is None,
        labels=cfg.labels,
        header=cfg.header,
        delimiter=cfg.delimiter,
        encoding=cfg.encoding,
    )
    if train is not None:
        data.train = as_examples(train, data.spec)
    if dev is not None:
        splits = dev if isinstance(dev, dict) else {"dev": dev}
        data.dev = {split: as_examples(rows, data.spec) for split, rows in splits.items()}
    return data


def position_limit(*models: Any, tokenizer: Any = None) -> int:
    """Longest input every model (and the tokenizer) accepts."""
    limits = [m.config.max_position_embeddings for m in models]
    if tokenizer is not None and 0 < tokenizer.model_max_length < 100_000:
        limits.append(tokenizer.model_max_length)
    return min(limits)


def resolve(cfg: C.RunConfig, data: TaskData, position_limit: int | None = None) -> C.RunConfig:
    """Fill unset values from the task's defaults; cap the length at what the models accept."""
    spec = data.spec
    length = cfg.max_seq_length or spec.max_seq_length
    if position_limit:
        length = min(length, position_limit)
    return dataclasses.replace(
        cfg,
        epochs=cfg.epochs or spec.epochs,
        learning_rate=cfg.learning_rate or spec.learning_rate,
        max_seq_length=length,
        batch_size=cfg.batch_size or spec.batch_size,
    )


def dev_rows(cfg: C.RunConfig, data: TaskData) -> dict:
    return {s: subsample(ex, cfg.max_eval_samples, cfg.seed) for s, ex in data.dev.items()}


def write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    tmp.replace(path)


def loop_options(cfg: C.RunConfig, n_batches: int) -> dict[str, Any]:
    """The training-loop settings every recipe takes from its run config."""
    return dict(
        grad_accum=cfg.grad_accum,
        optimizer_name=cfg.optimizer,
        scheduler_name=cfg.scheduler,
        weight_decay=cfg.weight_decay,
        warmup_ratio=cfg.warmup_ratio,
        max_grad_norm=cfg.max_grad_norm,
        eval_every=cfg.eval_every or n_batches,
        logging_steps=cfg.logging_steps,
    )


# ----------------------------------------------------------------------------- run dirs
# A run is written into ``.<name>.partial/`` beside ``--output`` and renamed into place when it is
# finished (``metrics.json`` is written last), so ``--output`` only ever holds a finished run.

MIN_FREE_BYTES = 200 * 2**20
# settings a --resume may not change (unset values are not compared)
RESUME_KEYS = (
    "task", "model", "teacher", "student", "recipe", "seed", "batch_size", "grad_accum", "epochs",
    "max_steps", "learning_rate", "max_train_samples", "max_seq_length", "train_file", "optimizer",
    "scheduler", "length_buckets",
)  # fmt: skip


@dataclasses.dataclass
class RunDir:
    output: Path  # where the finished run lands
    work: Path  # where it is written meanwhile
    resume: Path | None  # the checkpoint to continue from
    finished: dict[str, Any] | None  # the metrics of a run that is already complete (--resume)


is_main = own.is_main


def check_writable(output: Path) -> None:
    """A one-line error, before any work, when ``output`` cannot be written or its disk is full."""
    parent = output.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe = parent / f".{output.name}.probe-{os.getpid()}"
        probe.write_bytes(b"0")
        probe.unlink()
    except OSError as exc:
        raise TinyDistillError(f"cannot write the run to {output}: {exc.strerror or exc}") from None
    free = shutil.disk_usage(parent).free
    if free < MIN_FREE_BYTES:
        raise TinyDistillError(f"only {free / 2**20:.0f} MB free under {parent}; a run needs at least 200 MB")


def open_run(cfg: Any, command: str = "run") -> RunDir:
    """Where a run writes, refusing to replace a finished run without ``--overwrite``.

    A finished ``--output`` with ``--resume`` is returned as done; an unfinished run (checkpoints in
    the partial dir) continues with ``--resume`` (same settings) or starts again with ``--overwrite``.
    Only a folder tinydistill wrote is replaced (see :mod:`tinydistill.ownership`); the command holds
    the output's lock meanwhile (``ownership.guarded``).
    """
    output = Path(cfg.output)
    work = output.parent / f".{output.name}.partial"
    check_writable(output)
    own.check_folder(output)
    finished = output / "metrics.json"
    if finished.is_file() and not cfg.overwrite:
        if cfg.resume:  # kept as it is, when it was made with these settings
            _check_same(output / "config.yaml", cfg)
            return RunDir(output, work, None, json.loads(finished.read_text()))
        raise TinyDistillError(
            f"{output} holds a finished run: --overwrite to replace it (kept until the new run is done), "
            "--resume to keep it, or another --output"
        )
    if output.exists() and not finished.is_file() and any(output.iterdir()) and not cfg.overwrite:
        raise TinyDistillError(f"{output} exists and is not a finished run: --overwrite to replace it")
    latest = latest_readable(work / "checkpoints") if work.is_dir() else None
    if latest is not None and not cfg.resume and not cfg.overwrite:
        raise TinyDistillError(
            f"{work} holds an unfinished run ({latest.name}): --resume to continue it, "
            "--overwrite to start again"
        )
    if latest is not None and cfg.resume:
        _check_same(work / "config.yaml", cfg)
        if is_main():
            own.mark(work, command)  # an unfinished run of an older version: ours from now on
        return RunDir(output, work, latest, None)
    if is_main():
        own.fresh_work(work, command)
    return RunDir(output, work, None, None)


def _check_same(saved: Path, cfg: Any) -> None:
    if not saved.is_file():
        return
    import yaml

    old = yaml.safe_load(saved.read_text()) or {}
    new = dataclasses.asdict(cfg)
    changed = [k for k in RESUME_KEYS if k in old and k in new and new[k] is not None and old[k] != new[k]]
    if changed:
        raise TinyDistillError(
            f"--resume with other settings than the run in {saved.parent}: {', '.join(changed)} "
            "(use the same values, or --overwrite to start again)"
        )


def finish_run(run: RunDir, metrics: dict[str, Any]) -> None:
    """``metrics.json`` last, checkpoints dropped, then the finished dir takes the place of ``--output``."""
    if not is_main():
        return
    write_json(run.work / "metrics.json", metrics)
    shutil.rmtree(run.work / "checkpoints", ignore_errors=True)
    old = run.output.parent / f".{run.output.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if run.output.exists():
        os.replace(run.output, old)
    os.replace(run.work, run.output)
    shutil.rmtree(old, ignore_errors=True)


def checkpointing(cfg: Any, run: RunDir, offset: int = 0, meta: dict[str, Any] | None = None) -> Any:
    """The loop's checkpoint settings for a run dir (resuming from ``run.resume`` when set)."""
    from tinydistill.training.loop import Checkpointing

    return Checkpointing(
        run.work / "checkpoints", cfg.save_every, cfg.keep_checkpoints, offset, meta or {}, run.resume
    )


def scale(acc: Any, cfg: Any) -> dict[str, Any]:
    """How many processes trained, the rows per optimizer step across all of them, and the precision."""
    return {
        "world_size": acc.num_processes,
        "global_batch_size": cfg.batch_size * cfg.grad_accum,
        "mixed_precision": acc.mixed_precision,
    }
