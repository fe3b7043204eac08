"""Python API: each function is a short recipe composed from tasks, models, losses and the loop.

``finetune`` trains a teacher, ``distill`` runs a distillation method (by default TinyBERT task
distillation: step 1 intermediate layers, step 2 prediction layer; recipes give LRC-BERT, KD,
BERT-PKD, CRD), ``evaluate`` scores a model on dev. Every run dir holds the
resolved ``config.yaml``, ``metrics.json``, TensorBoard logs under ``logs/`` and the model in
HF format (safetensors + tokenizer + config).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from accelerate.utils import set_seed

from tinydistill import config as C
from tinydistill.data import EncodedDataset, make_loader, subsample
from tinydistill.errors import TinyDistillError
from tinydistill.evaluation import evaluate_model, flatten, primary_score
from tinydistill.losses import HiddenProjection
from tinydistill.losses.common import parse_options
from tinydistill.mapping import layer_map, parse_layer_map
from tinydistill.models.capture import enable_capture, model_inputs
from tinydistill.models.load import (
    build_student,
    check_tokenizers,
    count_params,
    init_from_teacher,
    load_classifier,
    load_tokenizer,
    resolve_model_path,
    save_model,
)
from tinydistill.tasks.resolve import TaskData, load_task_data
from tinydistill.training import schedule as S
from tinydistill.training.loop import make_accelerator, plan_steps, train
from tinydistill.training.perturb import PerturbOptions
from tinydistill.training.terms import Distiller, build_term_modules, parse_term_options, teacher_reps

# Paper: 5e-5 / 3e-5 after general distillation; a randomly initialised student needs larger steps.
STEP_LR = {"intermediate": 1e-4, "prediction": 5e-5}
DEFAULT_STAGE_LR = 1e-4  # stages of other names (one-run methods: KD, PKD, CRD, LRC-BERT)


def _model_labels(model_dir: str) -> list[str] | None:
    """Named labels of a checkpoint's head (for custom tasks), None when it has only LABEL_i names."""
    path = Path(resolve_model_path(model_dir)) / "config.json"
    if not path.exists():
        return None
    id2label = json.loads(path.read_text()).get("id2label") or {}
    names = [id2label[k] for k in sorted(id2label, key=int)]
    return None if not names or all(n.startswith("LABEL_") for n in names) else names


def _data(cfg: C.RunConfig, labels_from: str | None = None) -> TaskData:
    return load_task_data(
        cfg.task,
        cfg.data_dir,
        cfg.train_file,
        cfg.dev_file,
        cfg.text_columns,
        cfg.label_column,
        model_labels=_model_labels(labels_from) if labels_from and cfg.task.lower() == "custom" else None,
    )


def _position_limit(*models: Any, tokenizer: Any = None) -> int:
    """Longest input every model (and the tokenizer) accepts."""
    limits = [m.config.max_position_embeddings for m in models]
    if tokenizer is not None and 0 < tokenizer.model_max_length < 100_000:
        limits.append(tokenizer.model_max_length)
    return min(limits)


def _resolve(cfg: C.RunConfig, data: TaskData, position_limit: int | None = None) -> C.RunConfig:
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


def _dev(cfg: C.RunConfig, data: TaskData) -> dict:
    return {s: subsample(ex, cfg.max_eval_samples, cfg.seed) for s, ex in data.dev.items()}


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    tmp.replace(path)


def _loop_options(cfg: C.RunConfig, n_batches: int) -> dict[str, Any]:
    """The training-loop settings every recipe takes from its run config."""
    return dict(
        weight_decay=cfg.weight_decay,
        warmup_ratio=cfg.warmup_ratio,
        max_grad_norm=cfg.max_grad_norm,
        eval_every=cfg.eval_every or n_batches,
        logging_steps=cfg.logging_steps,
    )


def finetune(cfg: C.FinetuneConfig) -> dict[str, Any]:
    """Fine-tune any HF encoder on a task; keeps the best-on-dev checkpoint in ``cfg.output``."""
    data = _data(cfg)
    tokenizer = load_tokenizer(cfg.model)
    model = load_classifier(cfg.model, data.spec)
    cfg = _resolve(cfg, data, _position_limit(model, tokenizer=tokenizer))
    set_seed(cfg.seed)
    output = Path(cfg.output)
    output.mkdir(parents=True, exist_ok=True)
    C.save(cfg, output / "config.yaml")
    train_set = EncodedDataset(
        subsample(data.train, cfg.max_train_samples, cfg.seed), tokenizer, cfg.max_seq_length, data.spec
    )
    dev = _dev(cfg, data)
    acc = make_accelerator(cfg, output)
    loader = make_loader(train_set, tokenizer, cfg.batch_size, shuffle=True, seed=cfg.seed)

    def step_loss(m, batch):
        out = m(**model_inputs(acc.unwrap_model(m), batch), labels=batch["labels"])
        return out.loss, {}

    def evaluate():
        res = evaluate_model(
            acc.unwrap_model(model), tokenizer, data.spec, dev, cfg.max_seq_length, cfg.eval_batch_size, acc
        )
        return primary_score(data.spec, res), flatten(res)

    total = plan_steps(len(loader), cfg.epochs, cfg.max_steps)
    start = time.time()
    result = train(
        accelerator=acc,
        model=model,
        loader=loader,
        step_loss=step_loss,
        total_steps=total,
        lr=cfg.learning_rate,
        evaluate=evaluate,
        save=lambda: save_model(acc.unwrap_model(model), tokenizer, output),
        name="finetune",
        **_loop_options(cfg, len(loader)),
    )
    acc.end_training()
    metrics = {
        "task": data.spec.name,
        "model": cfg.model,
        "steps": result.steps,
        "train_examples": len(train_set),
        "train_seconds": round(time.time() - start, 1),
        "params": count_params(model),
        "dev": result.best_metrics,
        "evals": result.evals,
        "history": result.history,
    }
    _write_json(output / "metrics.json", metrics)
    return metrics


def _teacher(cfg: C.DistillConfig, data: TaskData):
    teacher = load_classifier(cfg.teacher, data.spec)
    if teacher.tinydistill_new_head:
        raise TinyDistillError(
            f"teacher {cfg.teacher} has no trained {data.spec.num_labels}-output head for task "
            f"{data.spec.name}: fine-tune it first (tinydistill finetune)"
        )
    return teacher.eval().requires_grad_(False)


def _plan_stages(cfg: C.DistillConfig, user_lr: float | None) -> list[S.Stage]:
    """The method's stages with learning rate, epochs and max_steps resolved.

    Per-step flag (``intermediate_lr``, ... for stages of those names) > the stage's recipe value >
    the run-wide value (flag or config; the task default for epochs) > ``STEP_LR`` / ``DEFAULT_STAGE_LR``.
    """
    stages = S.tinybert_stages(cfg.weights) if cfg.stages is None else S.parse_stages(cfg.stages)
    for st in stages:
        named = st.name if st.name in STEP_LR else None
        flag = {k: getattr(cfg, f"{named}_{k}") if named else None for k in ("lr", "epochs", "max_steps")}
        st.learning_rate = flag["lr"] or st.learning_rate or user_lr or STEP_LR.get(st.name, DEFAULT_STAGE_LR)
        st.epochs = flag["epochs"] or st.epochs or cfg.epochs
        st.max_steps = flag["max_steps"] or st.max_steps or cfg.max_steps
        if st.evaluate is None:
            st.evaluate = st is stages[-1]
        if named:
            setattr(cfg, f"{named}_lr", st.learning_rate)
            setattr(cfg, f"{named}_epochs", st.epochs)
    if cfg.stages is not None:
        cfg.stages = [st.to_dict() for st in stages]
    return stages


def distill(cfg: C.DistillConfig) -> dict[str, Any]:
    """Distill ``cfg.student`` from the fine-tuned ``cfg.teacher`` with the configured method.

    The default method is TinyBERT task distillation (stage ``intermediate`` then ``prediction``);
    a recipe gives other stages, phases of weighted terms, term options and gradient perturbation.
    """
    data = _data(cfg, labels_from=cfg.teacher)
    tokenizer = load_tokenizer(cfg.teacher)
    teacher = _teacher(cfg, data)
    if Path(cfg.student).is_dir():
        check_tokenizers(tokenizer, cfg.student)
    student = build_student(cfg.student, teacher, data.spec, seed=cfg.seed)
    layers = layer_map(
        parse_layer_map(cfg.layer_map), student.config.num_hidden_layers, teacher.config.num_hidden_layers
    )
    if cfg.init_from_teacher:
        init_from_teacher(student, teacher, layers)
    user_lr = cfg.learning_rate
    cfg = _resolve(cfg, data, _position_limit(teacher, student, tokenizer=tokenizer))
    stages = _plan_stages(cfg, user_lr)
    run = stages if cfg.stage == "all" else [st for st in stages if st.name == cfg.stage]
    if not run:
        raise TinyDistillError(f"no stage named '{cfg.stage}' (stages: {', '.join(s.name for s in stages)})")
    used = set().union(*(st.term_names for st in run))
    options = parse_term_options(cfg.term_options)
    perturb = parse_options(PerturbOptions, cfg.perturbation, "perturbation")
    set_seed(cfg.seed)
    if "attention" in used:
        heads = (student.config.num_attention_heads, teacher.config.num_attention_heads)
        if heads[0] != heads[1]:
            raise TinyDistillError(
                f"the attention loss needs equal head counts: student has {heads[0]}, teacher {heads[1]} "
                "(use a student with the teacher's head count, or set the attention weight to 0)"
            )
        enable_capture(teacher)
        enable_capture(student)
    d_student, d_teacher = student.config.hidden_size, teacher.config.hidden_size
    n_layers = student.config.num_hidden_layers
    proj = HiddenProjection(d_student, d_teacher, n_layers, shared=cfg.hidden_proj_shared)
    distiller = Distiller(
        student,
        proj,
        layers,
        cfg.temperature,
        data.spec.is_regression,
        modules=build_term_modules(used, options, d_student, d_teacher, n_layers),
        options=options,
        perturb_epsilon=float(perturb.epsilon) if perturb.enabled else None,
    )

    output = Path(cfg.output)
    output.mkdir(parents=True, exist_ok=True)
    C.save(cfg, output / "config.yaml")
    train_set = EncodedDataset(
        subsample(data.train, cfg.max_train_samples, cfg.seed), tokenizer, cfg.max_seq_length, data.spec
    )
    dev = _dev(cfg, data)
    acc = make_accelerator(cfg, output)
    teacher = acc.prepare_model(teacher, evaluation_mode=True)
    loader = make_loader(train_set, tokenizer, cfg.batch_size, shuffle=True, seed=cfg.seed)
    save = lambda: save_model(acc.unwrap_model(distiller).student, tokenizer, output)  # noqa: E731
    clock = {"step": 0}

    def step_loss(m, batch):
        inner = acc.unwrap_model(m)
        inner.set_step(clock["step"])  # switches phases inside a stage
        clock["step"] += 1
        return m(batch, teacher_reps(teacher, batch, attentions=inner.needs_attention))

    def evaluate():
        res = evaluate_model(
            acc.unwrap_model(distiller).student,
            tokenizer,
            data.spec,
            dev,
            cfg.max_seq_length,
            cfg.eval_batch_size,
            acc,
        )
        return primary_score(data.spec, res), flatten(res)

    summary: dict[str, Any] = {
        "task": data.spec.name,
        "method": cfg.method,
        "teacher": cfg.teacher,
        "student": cfg.student,
        "layer_map": layers,
        "train_examples": len(train_set),
        "stages": {},
    }
    start = time.time()
    for stage in run:
        total = plan_steps(len(loader), stage.epochs, stage.max_steps)
        schedule = S.Schedule(stage.phases, total)
        acc.unwrap_model(distiller).set_schedule(schedule)
        clock["step"] = 0
        result = train(
            accelerator=acc,
            model=distiller,
            loader=loader,
            step_loss=step_loss,
            total_steps=total,
            lr=stage.learning_rate,
            evaluate=evaluate if stage.evaluate else None,
            save=save,
            name=stage.name,
            **_loop_options(cfg, len(loader)),
        )
        summary["stages"][stage.name] = {
            "steps": result.steps,
            "phases": [
                {"first_step": first + 1, "terms": dict(p.terms)}
                for first, p in zip(schedule.starts, stage.phases, strict=True)
            ],
            "history": result.history,
            "evals": result.evals,
            "best": result.best_metrics,
        }
    acc.end_training()
    final = acc.unwrap_model(distiller).student
    if not run[-1].evaluate:
        summary["dev"] = flatten(
            evaluate_model(final, tokenizer, data.spec, dev, cfg.max_seq_length, cfg.eval_batch_size, acc)
        )
    else:
        summary["dev"] = summary["stages"][run[-1].name]["best"]
    summary.update(
        train_seconds=round(time.time() - start, 1),
        params=count_params(final),
        teacher_params=count_params(teacher),
    )
    _write_json(output / "metrics.json", summary)
    return summary


def evaluate(
    task: str,
    model: str,
    data_dir: str | None = None,
    dev_file: str | None = None,
    text_columns: list[str] | None = None,
    label_column: str = "label",
    max_seq_length: int | None = None,
    batch_size: int = 64,
    max_eval_samples: int | None = None,
    seed: int = 42,
) -> dict[str, dict[str, float]]:
    """Metrics of a saved model on the task's dev split(s)."""
    data = load_task_data(
        task,
        data_dir,
        None,
        dev_file,
        text_columns,
        label_column,
        model_labels=_model_labels(model) if task.lower() == "custom" else None,
        need_train=False,
    )
    tokenizer = load_tokenizer(model)
    clf = load_classifier(model, data.spec)
    if clf.config.num_labels != data.spec.num_labels:
        raise TinyDistillError(
            f"model {model} has {clf.config.num_labels} outputs, task needs {data.spec.num_labels}"
        )
    dev = {s: subsample(ex, max_eval_samples, seed) for s, ex in data.dev.items()}
    return evaluate_model(
        clf, tokenizer, data.spec, dev, max_seq_length or data.spec.max_seq_length, batch_size
    )
