"""Task distillation, the recipe behind ``tinydistill distill``: a teacher, a student, a method.

The method is the config's recipe (default ``tinybert4``: stage ``intermediate`` then
``prediction``): stages of phases of weighted loss terms (:mod:`~tinydistill.training.schedule`),
term options and gradient perturbation. Each stage is one call of the training loop on the same
:class:`~tinydistill.training.terms.Distiller`; the last stage evaluates on dev and keeps the best.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import torch
from accelerate.utils import set_seed

from tinydistill import config as C
from tinydistill import ownership as own
from tinydistill import runs as R
from tinydistill.data import EncodedDataset, make_collate, subsample, train_batches
from tinydistill.errors import TinyDistillError
from tinydistill.evaluation import Evaluation, run_evaluation, warn_if_degenerate
from tinydistill.losses import HiddenProjection
from tinydistill.losses.common import parse_options
from tinydistill.mapping import layer_map, parse_layer_map
from tinydistill.models.capture import enable_capture
from tinydistill.models.load import (
    build_student,
    check_vocab,
    count_params,
    init_from_teacher,
    load_classifier,
    load_tokenizer,
    model_name,
    name_labels,
    save_model,
    student_config,
)
from tinydistill.models.prune import PrunePlan, init_projection
from tinydistill.models.remap import VocabRemap
from tinydistill.start import (
    checkpoint_plan,
    pretrained_student,
    pruned_student,
    resolve_start,
    student_shape,
    task_batches,
)
from tinydistill.tasks.resolve import TaskData
from tinydistill.training import loop
from tinydistill.training import schedule as S
from tinydistill.training.checkpoint import read_meta
from tinydistill.training.perturb import PerturbOptions
from tinydistill.training.state_cache import open_or_build
from tinydistill.training.teacher_cache import cached_reps, logits_only, stored_teacher_logits
from tinydistill.training.terms import Distiller, build_term_modules, parse_term_options, teacher_reps


@dataclasses.dataclass
class Models:
    teacher: Any
    student: Any
    start: str  # pruned | random | checkpoint | given
    plan: PrunePlan | None  # when the student was cut from the teacher (now or by `prune`)
    layers: list[int]  # teacher layer of each student layer
    remap: VocabRemap | None = None  # a pre-trained student put on the teacher's tokenizer


def with_method(cfg: C.DistillConfig) -> C.DistillConfig:
    """A config made by hand (no ``stages``): its recipe's method under the values set."""
    if cfg.stages is not None:
        return cfg
    base = type(cfg)()
    values = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    return C.build(type(cfg), None, **{k: v for k, v in values.items() if v != getattr(base, k)})


def load_teacher(cfg: C.DistillConfig, data: TaskData, given: Any = None):
    teacher = given if given is not None else load_classifier(cfg.teacher, data.spec)
    if getattr(teacher, "tinydistill_new_head", False):
        raise TinyDistillError(
            f"teacher {cfg.teacher} has no trained {data.spec.num_labels}-output head for task "
            f"{data.spec.name}: fine-tune it first (tinydistill finetune)"
        )
    return teacher.eval().requires_grad_(False)


def _pruned(cfg: C.DistillConfig, teacher, tokenizer, data: TaskData):
    """The student shape cut from the teacher, ranked on the task's own train rows."""
    check_vocab(teacher.config, student_config(cfg.student, teacher.config))
    shape = student_shape(cfg.student) or {}
    n_layers = shape.get("num_hidden_layers", teacher.config.num_hidden_layers)
    layers = layer_map(parse_layer_map(cfg.layer_map), n_layers, teacher.config.num_hidden_layers)
    length = min(
        cfg.max_seq_length or data.spec.max_seq_length, R.position_limit(teacher, tokenizer=tokenizer)
    )
    rows = subsample(data.train, cfg.max_train_samples, cfg.seed)
    batches = task_batches(rows, tokenizer, data.spec, length, cfg.calibration_samples, cfg.seed)
    return pruned_student(teacher, shape, batches, layers, cfg.teacher)


def load_models(cfg: C.DistillConfig, data: TaskData, tokenizer, teacher: Any, student: Any) -> Models:
    """Teacher (given or loaded), student (given, pruned, random or a checkpoint), and the layer map."""
    teacher = load_teacher(cfg, data, teacher)
    remap = None
    if student is not None:
        check_vocab(teacher.config, student.config)
        start, plan = "given", None
    else:
        start = resolve_start("random" if cfg.init_from_teacher else cfg.start, cfg.student, teacher)
        if start == "pruned":
            student, plan = _pruned(cfg, teacher, tokenizer, data)
        elif start == "checkpoint":
            student, remap = pretrained_student(
                cfg.student, teacher, tokenizer, data.spec, remap=not cfg.own_tokenizer
            )
            plan = None if remap is not None else checkpoint_plan(cfg.student, teacher)
        else:
            student, plan = build_student(cfg.student, teacher, data.spec, seed=cfg.seed), None
    n_student, n_teacher = student.config.num_hidden_layers, teacher.config.num_hidden_layers
    use_plan = plan is not None and cfg.layer_map == "uniform"
    layers = plan.layers if use_plan else layer_map(parse_layer_map(cfg.layer_map), n_student, n_teacher)
    if cfg.init_from_teacher:
        init_from_teacher(student, teacher, layers)
    name_labels(student, data.spec)
    return Models(teacher, student, start, plan, layers, remap)


def build_distiller(cfg: C.DistillConfig, m: Models, used: set[str], regression: bool) -> Distiller:
    """The student, W_h (from the prune plan when there is one) and the modules of the terms in use."""
    options = parse_term_options(cfg.term_options)
    perturb = parse_options(PerturbOptions, cfg.perturbation, "perturbation")
    if "attention" in used:
        heads = (m.student.config.num_attention_heads, m.teacher.config.num_attention_heads)
        if heads[0] != heads[1]:
            raise TinyDistillError(
                f"the attention loss needs equal head counts: student has {heads[0]}, teacher {heads[1]} "
                "(use a student with the teacher's head count, or set the attention weight to 0)"
            )
        enable_capture(m.teacher)
        enable_capture(m.student)
    d_student, d_teacher = m.student.config.hidden_size, m.teacher.config.hidden_size
    n_layers = m.student.config.num_hidden_layers
    proj = HiddenProjection(d_student, d_teacher, n_layers, shared=cfg.hidden_proj_shared)
    if m.plan is not None:
        init_projection(proj, m.plan)
    return Distiller(
        m.student,
        proj,
        m.layers,
        cfg.temperature,
        regression,
        modules=build_term_modules(used, options, d_student, d_teacher, n_layers),
        options=options,
        perturb_epsilon=float(perturb.epsilon) if perturb.enabled else None,
    )


def plan(cfg: C.DistillConfig, data: TaskData, m: Models, tokenizer) -> tuple[C.DistillConfig, list[S.Stage]]:
    """Resolve the run (task defaults, length limits, each stage's settings) and pick the stages to run."""
    given = {"learning_rate": cfg.learning_rate, "epochs": cfg.epochs}
    # the run-wide lr/epochs stay what the user gave: each stage records its own
    limit = R.position_limit(m.teacher, m.student, tokenizer=tokenizer)
    cfg = dataclasses.replace(R.resolve(cfg, data, limit), **given)
    stages = S.plan_stages(cfg, data.spec.epochs)
    cfg = dataclasses.replace(cfg, stages=[st.to_dict() for st in stages])  # the record: what each ran
    run = stages if cfg.stage == "all" else [st for st in stages if st.name == cfg.stage]
    if not run:
        raise TinyDistillError(f"no stage named '{cfg.stage}' (stages: {', '.join(s.name for s in stages)})")
    return cfg, run


def _use_cache(cfg, stage, cache, acc, teacher, train_set, tokenizer, layers, distiller) -> str | None:
    """Which teacher cache a stage trains on (building it once): ``logits`` when the stage needs nothing
    else of the teacher, ``states`` (on disk) when the mapped states fit the budget, else None."""
    if not cfg.teacher_cache:
        return None
    collate = make_collate(tokenizer)
    if logits_only(stage.term_names):
        if cache["logits"] is None:
            with acc.main_process_first():  # one process computes and stores them, the others read
                cache["logits"], why = stored_teacher_logits(
                    teacher,
                    train_set,
                    collate,
                    acc.device,
                    cfg.eval_batch_size,
                    f"{acc.mixed_precision}/{acc.device.type}",
                )
            if acc.is_main_process:
                print(f"{stage.name}: teacher logits {why}", file=sys.stderr)
        return "logits"
    if cfg.teacher_state_cache <= 0:
        return None
    if cache["states"] is None:
        dtype = torch.bfloat16 if acc.mixed_precision == "bf16" else torch.float32
        needs_attention = acc.unwrap_model(distiller).needs_attention
        with acc.main_process_first():  # one process writes the entry, the others open it
            cache["states"], why = open_or_build(
                teacher, train_set, collate, acc.device, layers, needs_attention, dtype,
                cfg.teacher_state_cache, cfg.batch_size,
            )  # fmt: skip
        if acc.is_main_process:
            print(f"{stage.name}: teacher state cache: {why}", file=sys.stderr)
        cache["states"] = cache["states"] or False  # False: decided, not usable
    return "states" if cache["states"] else None


def _own_tokenizer(cfg: C.DistillConfig, stages: list[S.Stage], start: str) -> Any:
    """``--own-tokenizer``: the student checkpoint's tokenizer, for stages that read only teacher logits."""
    from tinydistill.start import student_tokenizer

    if start != "checkpoint":
        raise TinyDistillError("--own-tokenizer needs a student checkpoint that ships its tokenizer")
    reads_more = [st.name for st in stages if not logits_only(st.term_names)]
    if reads_more or not cfg.teacher_cache:
        why = f"{', '.join(reads_more)} read the teacher's states" if reads_more else "--no-teacher-cache"
        raise TinyDistillError(
            "--own-tokenizer needs stages that read only the teacher's logits, from its cache "
            f"(e.g. --recipe kd or --stage prediction): {why}"
        )
    own = student_tokenizer(cfg.student)
    if own is None:
        raise TinyDistillError(f"--own-tokenizer: {cfg.student} has no tokenizer")
    return own


def _stage_record(stage: S.Stage, schedule: S.Schedule, result: loop.LoopResult) -> dict[str, Any]:
    return {
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
        "seconds": result.seconds,
    }


def _resume_meta(run: R.RunDir) -> dict[str, Any]:
    """The caller's part of the checkpoint to resume from: its stage and the stages already done."""
    return {} if run.resume is None else read_meta(run.resume)


@own.guarded("distill")
def distill(
    cfg: C.DistillConfig,
    *,
    teacher: Any = None,
    student: Any = None,
    tokenizer: Any = None,
    train: Any = None,
    dev: Any = None,
) -> R.RunResult:
    """Distill ``cfg.student`` from the fine-tuned ``cfg.teacher`` with the config's method.

    ``teacher`` / ``student`` / ``tokenizer`` (objects) replace loading them; ``train`` / ``dev``
    rows replace the task's files. ``cfg.resume`` continues an interrupted run from its newest
    checkpoint (finished stages are not run again). Returns the run's metrics (a RunResult).
    """
    cfg = with_method(cfg)
    cfg = dataclasses.replace(
        cfg,
        teacher=model_name(teacher) if teacher is not None else cfg.teacher,
        student=model_name(student) if student is not None else cfg.student,
    )
    data = R.task_data(cfg, labels_from=None if teacher is not None else cfg.teacher, train=train, dev=dev)
    run = R.open_run(cfg, "distill")
    if run.finished is not None:
        return R.RunResult(run.finished, run.output)
    tokenizer = tokenizer or load_tokenizer(cfg.teacher)
    set_seed(cfg.seed)  # before a pre-trained student's new head is drawn: the seed, not what ran before
    m = load_models(cfg, data, tokenizer, teacher, student)
    cfg, stages = plan(cfg, data, m, tokenizer)
    # the student reads its own tokenizer (a trimmed vocabulary) where it trains on teacher logits only
    s_tok = _own_tokenizer(cfg, stages, m.start) if cfg.own_tokenizer else tokenizer
    set_seed(cfg.seed)  # again: the modules below draw the same whatever loading the start drew
    distiller = build_distiller(
        cfg, m, set().union(*(st.term_names for st in stages)), data.spec.is_regression
    )
    acc = loop.make_accelerator(cfg, run.work, find_unused=True)
    if acc.is_main_process:
        C.save(cfg, run.work / "config.yaml")
        if m.plan is not None:
            m.plan.save(run.work)
    train_rows = subsample(data.train, cfg.max_train_samples, cfg.seed)
    train_set = EncodedDataset(train_rows, s_tok, cfg.max_seq_length, data.spec)
    teacher_set = train_set  # the same rows in the same order: the logit cache is looked up by row
    if s_tok is not tokenizer:
        teacher_set = EncodedDataset(train_rows, tokenizer, cfg.max_seq_length, data.spec)
    rows = R.dev_rows(cfg, data)
    teacher = acc.prepare_model(m.teacher, evaluation_mode=True)
    batches = train_batches(train_set, s_tok, cfg.batch_size, cfg.seed, cfg.length_buckets)

    # "logits": teacher logits per row (stages that need nothing else); "states": its mapped states on disk
    cache: dict[str, Any] = {"logits": None, "states": None, "use": None}

    def step_loss(model, batch, step):
        inner = acc.unwrap_model(model)
        inner.set_step(step)  # switches phases inside a stage
        if cache["use"] == "logits":
            return model(batch, cached_reps(cache["logits"], batch))
        if cache["use"] == "states":
            return model(batch, cache["states"].reps(batch))
        return model(batch, teacher_reps(teacher, batch, inner.needs_attention, m.layers))

    def evaluate() -> Evaluation:
        student = acc.unwrap_model(distiller).student
        return run_evaluation(student, s_tok, data.spec, rows, cfg.max_seq_length, cfg.eval_batch_size, acc)

    summary: dict[str, Any] = {
        "task": data.spec.name, "method": cfg.method, "teacher": cfg.teacher, "student": cfg.student,
        "start": m.start, "layer_map": m.layers, "vocab_remap": m.remap.as_dict() if m.remap else None,
        "train_examples": len(train_set), **R.scale(acc, cfg),
        "stages": {},
    }  # fmt: skip
    resumed, offset, seconds = _resume_meta(run), 0, 0.0
    n_batches = -(-batches.batches_per_epoch // cfg.grad_accum)
    for stage in stages:
        total = loop.plan_steps(n_batches, stage.epochs, stage.max_steps)
        if stage.name in resumed.get("done", {}):  # finished before the interruption
            summary["stages"][stage.name] = resumed["done"][stage.name]
            offset, seconds = offset + total, seconds + resumed["done"][stage.name]["seconds"]
            continue
        schedule = S.Schedule(stage.phases, total)
        acc.unwrap_model(distiller).set_schedule(schedule)
        cache["use"] = _use_cache(
            cfg, stage, cache, acc, teacher, teacher_set, tokenizer, m.layers, distiller
        )
        here = run.resume if resumed.get("name") == stage.name else None
        meta = {"stage": stage.name, "done": dict(summary["stages"])}
        result = loop.train(
            accelerator=acc, model=distiller, batches=batches, step_loss=step_loss, total_steps=total,
            lr=stage.learning_rate, evaluate=evaluate if stage.evaluate else None,
            save=lambda: save_model(acc.unwrap_model(distiller).student, s_tok, run.work),
            name=stage.name,
            checkpoint=dataclasses.replace(R.checkpointing(cfg, run, offset, meta), resume=here),
            restore_eval=lambda st: Evaluation(data.spec, **st), **R.loop_options(cfg, n_batches),
        )  # fmt: skip
        summary["stages"][stage.name] = {
            **_stage_record(stage, schedule, result),
            "teacher_cache": cache["use"],  # logits | states | None (the teacher ran every step)
        }
        offset, seconds = offset + total, seconds + result.seconds
    final = acc.unwrap_model(distiller).student
    verdict = result.best_eval if stages[-1].evaluate else evaluate()  # before the process group goes
    acc.end_training()
    summary.update(
        dev=verdict.flat,
        **verdict.record(),
        train_seconds=round(seconds, 1),
        params=count_params(final),
        teacher_params=count_params(teacher),
    )
    R.finish_run(run, summary)
    warn_if_degenerate(verdict, f"the student in {run.output}")
    return R.RunResult(summary, run.output, final)
