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
from tinydistill.deploy.inputs import model_inputs
from tinydistill.errors import TinyDistillError
from tinydistill.evaluation import Evaluation, run_evaluation, warn_if_degenerate
from tinydistill.losses import HiddenProjection
from tinydistill.losses.common import parse_options
from tinydistill.mapping import layer_map, parse_layer_map
from tinydistill.models.capture import enable_capture
from tinydistill.models.load import (
    build_student,
    check_tokenizers,
    check_vocab,
    count_params,
    init_from_teacher,
    load_classifier,
    load_tokenizer,
    model_name,
    resolve_model_path,
    save_model,
    student_config,
)
from tinydistill.models.prune import init_projection, target_config
from tinydistill.start import (
    checkpoint_plan,
    corpus_batches,
    load_shape,
    pruned_student,
    resolve_start,
    student_shape,
    task_batches,
)
from tinydistill.tasks.resolve import TaskData, as_examples, load_task_data
from tinydistill.training import loop
from tinydistill.training import schedule as S
from tinydistill.training.perturb import PerturbOptions
from tinydistill.training.terms import Distiller, build_term_modules, parse_term_options, teacher_reps


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


def _model_labels(model_dir: str) -> list[str] | None:
    """Named labels of a checkpoint's head (for custom tasks), None when it has only LABEL_i names."""
    path = Path(resolve_model_path(model_dir)) / "config.json"
    if not path.exists():
        return None
    id2label = json.loads(path.read_text()).get("id2label") or {}
    names = [id2label[k] for k in sorted(id2label, key=int)]
    return None if not names or all(n.startswith("LABEL_") for n in names) else names


def _data(cfg: C.RunConfig, labels_from: str | None = None, train: Any = None, dev: Any = None) -> TaskData:
    """The task's rows from files, or ``train`` / ``dev`` rows given as objects (see ``as_examples``)."""
    data = load_task_data(
        cfg.task,
        cfg.data_dir,
        cfg.train_file,
        cfg.dev_file,
        cfg.text_columns,
        cfg.label_column,
        model_labels=_model_labels(labels_from) if labels_from and cfg.task.lower() == "custom" else None,
        need_train=train is None,
        need_dev=dev is None,
    )
    if train is not None:
        data.train = as_examples(train, data.spec)
    if dev is not None:
        splits = dev if isinstance(dev, dict) else {"dev": dev}
        data.dev = {split: as_examples(rows, data.spec) for split, rows in splits.items()}
    return data


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
        optimizer_name=cfg.optimizer,
        scheduler_name=cfg.scheduler,
        weight_decay=cfg.weight_decay,
        warmup_ratio=cfg.warmup_ratio,
        max_grad_norm=cfg.max_grad_norm,
        eval_every=cfg.eval_every or n_batches,
        logging_steps=cfg.logging_steps,
    )


def finetune(
    cfg: C.FinetuneConfig, *, model: Any = None, tokenizer: Any = None, train: Any = None, dev: Any = None
) -> RunResult:
    """Fine-tune any HF encoder on a task; keeps the best-on-dev checkpoint in ``cfg.output``.

    ``model`` / ``tokenizer`` (objects) replace loading ``cfg.model``; ``train`` / ``dev`` rows replace
    the task's files.
    """
    data = _data(cfg, train=train, dev=dev)
    if model is not None:
        cfg = dataclasses.replace(cfg, model=model_name(model))
    tokenizer = tokenizer or load_tokenizer(cfg.model)
    set_seed(cfg.seed)  # before the new head is initialised: same seed, same weights
    model = model if model is not None else load_classifier(cfg.model, data.spec)
    cfg = _resolve(cfg, data, _position_limit(model, tokenizer=tokenizer))
    output = Path(cfg.output)
    output.mkdir(parents=True, exist_ok=True)
    C.save(cfg, output / "config.yaml")
    train_set = EncodedDataset(
        subsample(data.train, cfg.max_train_samples, cfg.seed), tokenizer, cfg.max_seq_length, data.spec
    )
    dev = _dev(cfg, data)
    acc = loop.make_accelerator(cfg, output)
    loader = make_loader(train_set, tokenizer, cfg.batch_size, shuffle=True, seed=cfg.seed)

    def step_loss(m, batch):
        out = m(**model_inputs(acc.unwrap_model(m), batch), labels=batch["labels"])
        return out.loss, {}

    def evaluate() -> Evaluation:
        return run_evaluation(
            acc.unwrap_model(model), tokenizer, data.spec, dev, cfg.max_seq_length, cfg.eval_batch_size, acc
        )

    total = loop.plan_steps(len(loader), cfg.epochs, cfg.max_steps)
    start = time.time()
    result = loop.train(
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
    return RunResult(metrics, output, acc.unwrap_model(model))


def _teacher(cfg: C.DistillConfig, data: TaskData, given: Any = None):
    teacher = given if given is not None else load_classifier(cfg.teacher, data.spec)
    if getattr(teacher, "tinydistill_new_head", False):
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


def _with_method(cfg: C.DistillConfig) -> C.DistillConfig:
    """A config made by hand (no ``stages``): its recipe's method under the values set."""
    if cfg.stages is not None:
        return cfg
    base = type(cfg)()
    values = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    return C.build(type(cfg), None, **{k: v for k, v in values.items() if v != getattr(base, k)})


def distill(
    cfg: C.DistillConfig,
    *,
    teacher: Any = None,
    student: Any = None,
    tokenizer: Any = None,
    train: Any = None,
    dev: Any = None,
) -> RunResult:
    """Distill ``cfg.student`` from the fine-tuned ``cfg.teacher`` with the configured method.

    The method is the config's recipe (default ``tinybert4``: stage ``intermediate`` then
    ``prediction``): stages of weighted terms, term options and gradient perturbation. ``teacher`` /
    ``student`` / ``tokenizer`` (objects) replace loading them; ``train`` / ``dev`` rows replace the
    task's files.
    """
    cfg = _with_method(cfg)
    if teacher is not None:
        cfg = dataclasses.replace(cfg, teacher=model_name(teacher))
    data = _data(cfg, labels_from=None if teacher is not None else cfg.teacher, train=train, dev=dev)
    tokenizer = tokenizer or load_tokenizer(cfg.teacher)
    teacher = _teacher(cfg, data, teacher)
    if student is not None:
        cfg = dataclasses.replace(cfg, student=model_name(student))
        check_vocab(teacher.config, student.config)
        start, plan = "given", None
    else:
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
    stages = S.plan_stages(cfg, data.spec.epochs)
    cfg = dataclasses.replace(cfg, stages=[st.to_dict() for st in stages])  # the record: what each ran
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
    acc = loop.make_accelerator(cfg, output)
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
        total = loop.plan_steps(len(loader), stage.epochs, stage.max_steps)
        schedule = S.Schedule(stage.phases, total)
        acc.unwrap_model(distiller).set_schedule(schedule)
        clock["step"] = 0
        result = loop.train(
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
    return RunResult(summary, output, final)


def evaluate(
    cfg: C.EvaluateConfig | str, model: Any = None, *, tokenizer: Any = None, dev: Any = None, **fields: Any
) -> Evaluation:
    """Metrics of a model on the task's dev split(s), beside the trivial baseline.

    ``evaluate(EvaluateConfig(...))`` or ``evaluate("SST-2", "runs/student", data_dir=...)``; ``model``
    may be a loaded classifier (then give ``tokenizer``); ``dev`` rows replace the task's dev files.
    Writes ``cfg.json_file`` when set.
    """
    given = model if model is not None and not isinstance(model, (str, Path)) else None
    if isinstance(cfg, str):
        name = model_name(given) if given is not None else str(model)
        cfg = C.build(C.EvaluateConfig, None, task=cfg, model=name, **fields)
    data = load_task_data(
        cfg.task,
        cfg.data_dir,
        None,
        cfg.dev_file,
        cfg.text_columns,
        cfg.label_column,
        model_labels=_model_labels(cfg.model) if cfg.task.lower() == "custom" and given is None else None,
        need_train=False,
        need_dev=dev is None,
    )
    if dev is not None:
        data.dev = {"dev": as_examples(dev, data.spec)}
    tokenizer = tokenizer or load_tokenizer(cfg.model)
    clf = given if given is not None else load_classifier(cfg.model, data.spec)
    if clf.config.num_labels != data.spec.num_labels:
        raise TinyDistillError(
            f"model {cfg.model} has {clf.config.num_labels} outputs, task needs {data.spec.num_labels}"
        )
    rows = {s: subsample(ex, cfg.max_eval_samples, cfg.seed) for s, ex in data.dev.items()}
    length = cfg.max_seq_length or data.spec.max_seq_length
    result = run_evaluation(clf.eval(), tokenizer, data.spec, rows, length, cfg.batch_size)
    if cfg.json_file:
        Path(cfg.json_file).parent.mkdir(parents=True, exist_ok=True)
        _write_json(Path(cfg.json_file), {**result.metrics, **result.record()})
    return result


def _calibration(cfg: C.PruneConfig, teacher: Any, tokenizer: Any) -> tuple[Any, list]:
    """The model to prune and its calibration batches: task rows (as a classifier) or corpus text."""
    if cfg.task is not None:
        data = load_task_data(
            cfg.task, cfg.data_dir, cfg.train_file, None, cfg.text_columns, cfg.label_column, need_dev=False
        )
        model = teacher if teacher is not None else load_classifier(cfg.teacher, data.spec)
        length = min(
            cfg.max_seq_length or data.spec.max_seq_length, _position_limit(model, tokenizer=tokenizer)
        )
        return model, task_batches(
            data.train, tokenizer, data.spec, length, cfg.calibration_samples, cfg.seed
        )
    if teacher is None:
        from transformers import AutoModel

        try:
            teacher = AutoModel.from_pretrained(resolve_model_path(cfg.teacher))
        except (OSError, ValueError) as exc:
            raise TinyDistillError(f"cannot load model '{cfg.teacher}': {str(exc).splitlines()[0]}") from exc
    return teacher, list(corpus_batches(cfg.corpus, cfg.calibration_samples, cfg.seed))


def prune(cfg: C.PruneConfig, *, teacher: Any = None, tokenizer: Any = None) -> dict[str, Any]:
    """Cut the teacher down to ``cfg.shape`` (see :mod:`tinydistill.models.prune`) and save it to ``output``.

    Calibration rows: the task's train rows (``task``, ``data_dir``/``train_file``) or a prepared
    ``corpus``. With a task the teacher is loaded as its classifier (head kept and cut); with a corpus
    only as an encoder. ``teacher`` / ``tokenizer`` (objects) replace loading ``cfg.teacher``.
    """
    if teacher is not None:
        cfg = dataclasses.replace(cfg, teacher=model_name(teacher))
    target = load_shape(cfg.shape)
    tokenizer = tokenizer or load_tokenizer(cfg.teacher)
    began = time.time()
    model, batches = _calibration(cfg, teacher, tokenizer)
    model.eval()
    target_config(model.config, target)  # impossible shapes fail before any work
    n_layers = target.get("num_hidden_layers", model.config.num_hidden_layers)
    layers = layer_map(parse_layer_map(cfg.layer_map), n_layers, model.config.num_hidden_layers)
    student, plan = pruned_student(model, target, batches, layers, cfg.teacher)
    plan.calibration.update(samples=cfg.calibration_samples, source=cfg.corpus or cfg.task, seed=cfg.seed)
    out = Path(cfg.output)
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


# ----------------------------------------------------------------------------- the other commands
# Each takes its config from :mod:`tinydistill.config`; the feature modules load on first use.


def general(cfg: C.GeneralConfig) -> dict[str, Any]:
    """General distillation on a prepared corpus (:func:`tinydistill.training.general.general`)."""
    from tinydistill.training.general import general as run

    return run(cfg)


def prepare_corpus(cfg: C.CorpusConfig) -> dict[str, Any]:
    """Raw text -> packed shards + manifest (:func:`tinydistill.corpus.prepare_corpus`)."""
    from tinydistill.corpus import prepare

    return prepare(cfg)


def augment(cfg: C.AugmentConfig) -> dict[str, Any]:
    """An augmented train file (or ``merge`` of shard files); returns counts and timings."""
    from tinydistill.augmentation.runner import augment_task, merge_shards

    if cfg.merge:
        rows = (cfg.train_file, cfg.text_columns, cfg.label_column)
        return merge_shards(cfg.task, cfg.merge, cfg.output, *rows)
    return augment_task(cfg)


def mlm_head(cfg: C.MLMHeadConfig) -> dict[str, Any]:
    """A masked-LM head trained on an encoder (:func:`tinydistill.augmentation.mlm_head.train_mlm_head`)."""
    from tinydistill.augmentation.mlm_head import train_mlm_head

    return train_mlm_head(cfg)


def export(cfg: C.ExportConfig) -> dict[str, Any]:
    """ONNX (+ int8) export checked against PyTorch (:func:`tinydistill.deploy.export.export_model`)."""
    from tinydistill.deploy.export import export_model

    return export_model(
        cfg.model, cfg.output, quantize=cfg.quantize, optimize=cfg.optimize, task=cfg.task,
        data_dir=cfg.data_dir, atol=cfg.atol, threads=cfg.threads, weight_type=cfg.weight_type,
        per_channel=cfg.per_channel, fmt=cfg.fmt,
    )  # fmt: skip


def bench(cfg: C.BenchConfig) -> dict[str, Any]:
    """Size, latency and throughput side by side (:func:`tinydistill.deploy.bench.bench`)."""
    from tinydistill.deploy.bench import bench as run
    from tinydistill.deploy.bench import write_json

    result = run(
        cfg.models, cfg.backend, cfg.batch_sizes, seq_len=cfg.seq_len, threads=cfg.threads,
        warmup=cfg.warmup, repeats=cfg.repeats, device=cfg.device, names=cfg.names, task=cfg.task,
        data_dir=cfg.data_dir, max_eval_samples=cfg.max_eval_samples, cache_dir=cfg.cache_dir,
    )  # fmt: skip
    if cfg.json_file:
        write_json(result, cfg.json_file)
    return result


def predict(cfg: C.PredictConfig) -> dict[str, Any]:
    """Batched inference over a file (:func:`tinydistill.deploy.predict.predict_file`)."""
    from tinydistill.deploy.predict import predict_file

    return predict_file(
        cfg.model, cfg.input_file, cfg.output_file, text_columns=cfg.text_columns, batch_size=cfg.batch_size,
        max_seq_length=cfg.max_seq_length, backend=cfg.backend, threads=cfg.threads, cache_dir=cfg.cache_dir,
    )  # fmt: skip


def report(cfg: C.ReportConfig) -> dict[str, Any]:
    """Markdown teacher-vs-student report with plots (:func:`tinydistill.deploy.report.build_report`)."""
    from tinydistill.deploy.report import build_report

    return build_report(
        cfg.run_dirs, cfg.output, bench_files=cfg.bench_files, seq_len=cfg.seq_len, threads=cfg.threads,
        repeats=cfg.repeats,
    )  # fmt: skip
