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
from tinydistill.evaluation import Evaluation, run_evaluation, warn_if_degenerate
from tinydistill.losses import HiddenProjection
from tinydistill.losses.common import parse_options
from tinydistill.mapping import layer_map, parse_layer_map
from tinydistill.models.capture import enable_capture, model_inputs
from tinydistill.models.load import (
    build_student,
    check_tokenizers,
    check_vocab,
    count_params,
    init_from_teacher,
    load_classifier,
    load_tokenizer,
    resolve_model_path,
    save_model,
    student_config,
)
from tinydistill.models.prune import init_projection, target_config
from tinydistill.start import (
    DEFAULT_CALIBRATION_SAMPLES,
    checkpoint_plan,
    corpus_batches,
    load_shape,
    pruned_student,
    resolve_start,
    student_shape,
    task_batches,
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

    def evaluate() -> Evaluation:
        return run_evaluation(
            acc.unwrap_model(model), tokenizer, data.spec, dev, cfg.max_seq_length, cfg.eval_batch_size, acc
        )

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
        **result.best_eval.record(),
        "evals": result.evals,
        "history": result.history,
    }
    _write_json(output / "metrics.json", metrics)
    warn_if_degenerate(result.best_eval, f"the fine-tuned model in {output}")
    return metrics


def _teacher(cfg: C.DistillConfig, data: TaskData):
    teacher = load_classifier(cfg.teacher, data.spec)
    if teacher.tinydistill_new_head:
        raise TinyDistillError(
            f"teacher {cfg.teacher} has no trained {data.spec.num_labels}-output head for task "
            f"{data.spec.name}: fine-tune it first (tinydistill finetune)"
        )
    return teacher.eval().requires_grad_(False)


def _student(cfg: C.DistillConfig, start: str, teacher, tokenizer, data: TaskData):
    """The student model and, when it was cut from the teacher (now or by ``prune``), its prune plan."""
    if start != "pruned":
        return build_student(cfg.student, teacher, data.spec, seed=cfg.seed), checkpoint_plan(cfg.student)
    check_vocab(teacher.config, student_config(cfg.student, teacher.config))
    shape = student_shape(cfg.student) or {}
    n_layers = shape.get("num_hidden_layers", teacher.config.num_hidden_layers)
    layers = layer_map(parse_layer_map(cfg.layer_map), n_layers, teacher.config.num_hidden_layers)
    length = min(
        cfg.max_seq_length or data.spec.max_seq_length, _position_limit(teacher, tokenizer=tokenizer)
    )
    rows = subsample(data.train, cfg.max_train_samples, cfg.seed)
    batches = task_batches(rows, tokenizer, data.spec, length, cfg.calibration_samples, cfg.seed)
    return pruned_student(teacher, shape, batches, layers, cfg.teacher)


def _plan_stages(cfg: C.DistillConfig, default_epochs: float) -> list[S.Stage]:
    """The method's stages with learning rate, epochs and max_steps resolved, written back to ``cfg``.

    Per-step flag (``intermediate_lr``, ... for stages of those names) > the stage's recipe value >
    the run-wide value (``--learning-rate`` / ``--epochs`` / ``--max-steps``; the task's epochs) >
    ``STEP_LR`` / ``DEFAULT_STAGE_LR``. ``cfg.stages`` then holds exactly what each stage runs with,
    so the run's ``config.yaml`` records it (and reruns it with ``--config``).
    """
    stages = S.tinybert_stages(cfg.weights) if cfg.stages is None else S.parse_stages(cfg.stages)
    for st in stages:
        named = st.name if st.name in STEP_LR else None
        flag = {k: getattr(cfg, f"{named}_{k}") if named else None for k in ("lr", "epochs", "max_steps")}
        st.learning_rate = (
            flag["lr"] or st.learning_rate or cfg.learning_rate or STEP_LR.get(st.name, DEFAULT_STAGE_LR)
        )
        st.epochs = flag["epochs"] or st.epochs or cfg.epochs or default_epochs
        st.max_steps = flag["max_steps"] or st.max_steps or cfg.max_steps
        if st.evaluate is None:
            st.evaluate = st is stages[-1]
        if named:
            setattr(cfg, f"{named}_lr", st.learning_rate)
            setattr(cfg, f"{named}_epochs", st.epochs)
    cfg.stages = [st.to_dict() for st in stages]
    cfg.weights = dict(C.DEFAULT_WEIGHTS)  # folded into the stages above
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
    start = resolve_start("random" if cfg.init_from_teacher else cfg.start, cfg.student, teacher)
    student, plan = _student(cfg, start, teacher, tokenizer, data)
    layers = (
        plan.layers
        if plan and cfg.layer_map == "uniform"
        else layer_map(
            parse_layer_map(cfg.layer_map), student.config.num_hidden_layers, teacher.config.num_hidden_layers
        )
    )
    if cfg.init_from_teacher:
        init_from_teacher(student, teacher, layers)
    given = {"learning_rate": cfg.learning_rate, "epochs": cfg.epochs}
    # the run-wide lr/epochs stay what the user gave: each stage records its own below
    cfg = dataclasses.replace(
        _resolve(cfg, data, _position_limit(teacher, student, tokenizer=tokenizer)), **given
    )
    stages = _plan_stages(cfg, data.spec.epochs)
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
    if plan is not None:
        init_projection(proj, plan)
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
    if plan is not None:
        plan.save(output)
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

    def evaluate() -> Evaluation:
        student = acc.unwrap_model(distiller).student
        return run_evaluation(
            student, tokenizer, data.spec, dev, cfg.max_seq_length, cfg.eval_batch_size, acc
        )

    summary: dict[str, Any] = {
        "task": data.spec.name,
        "method": cfg.method,
        "teacher": cfg.teacher,
        "student": cfg.student,
        "start": start,
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
            "learning_rate": stage.learning_rate,
            "epochs": stage.epochs,
            "max_steps": stage.max_steps,
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
        verdict = run_evaluation(final, tokenizer, data.spec, dev, cfg.max_seq_length, cfg.eval_batch_size)
    else:
        verdict = result.best_eval
    summary.update(
        dev=verdict.flat,
        **verdict.record(),
        train_seconds=round(time.time() - start, 1),
        params=count_params(final),
        teacher_params=count_params(teacher),
    )
    _write_json(output / "metrics.json", summary)
    warn_if_degenerate(verdict, f"the student in {output}")
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
) -> Evaluation:
    """Metrics of a saved model on the task's dev split(s), beside the trivial baseline."""
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
    return run_evaluation(
        clf, tokenizer, data.spec, dev, max_seq_length or data.spec.max_seq_length, batch_size
    )


def prune(
    teacher: str,
    output: str,
    shape: str = "tinybert-4l-312",
    task: str | None = None,
    data_dir: str | None = None,
    train_file: str | None = None,
    text_columns: list[str] | None = None,
    label_column: str = "label",
    corpus: str | None = None,
    calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES,
    layer_map_spec: str = "uniform",
    max_seq_length: int | None = None,
    seed: int = 42,
) -> dict[str, Any]:
    """Cut ``teacher`` down to ``shape`` (see :mod:`tinydistill.models.prune`) and save it to ``output``.

    Calibration rows: the task's train rows (``task``, ``data_dir``/``train_file``) or a prepared
    ``corpus``. With a task the teacher is loaded as its classifier (head kept and cut); with a corpus
    only as an encoder.
    """
    from transformers import AutoModel

    if (task is None) == (corpus is None):
        raise TinyDistillError("give calibration data: --task (with --data-dir or --train-file) or --corpus")
    target = load_shape(shape)
    tokenizer = load_tokenizer(teacher)
    began = time.time()
    if task is not None:
        data = load_task_data(task, data_dir, train_file, None, text_columns, label_column, need_dev=False)
        model = load_classifier(teacher, data.spec)
        length = min(max_seq_length or data.spec.max_seq_length, _position_limit(model, tokenizer=tokenizer))
        batches = task_batches(data.train, tokenizer, data.spec, length, calibration_samples, seed)
    else:
        try:
            model = AutoModel.from_pretrained(resolve_model_path(teacher))
        except (OSError, ValueError) as exc:
            raise TinyDistillError(f"cannot load model '{teacher}': {str(exc).splitlines()[0]}") from exc
        batches = list(corpus_batches(corpus, calibration_samples, seed))
    model.eval()
    target_config(model.config, target)  # impossible shapes fail before any work
    n_layers = target.get("num_hidden_layers", model.config.num_hidden_layers)
    layers = layer_map(parse_layer_map(layer_map_spec), n_layers, model.config.num_hidden_layers)
    student, plan = pruned_student(model, target, batches, layers, teacher)
    plan.calibration.update(samples=calibration_samples, source=corpus or task, seed=seed)
    out = Path(output)
    save_model(student.eval(), tokenizer, out)
    plan.save(out)
    t_params, s_params = count_params(model), count_params(student)
    return {
        "output": str(out),
        "teacher_params": t_params,
        "params": s_params,
        "params_ratio": round(t_params / s_params, 2),
        "layers": plan.layers,
        "heads": len(plan.heads),
        "hidden_size": len(plan.hidden),
        "seconds": round(time.time() - began, 1),
    }
