"""The API behind every command: one function per command, each taking its config dataclass.

``finetune`` trains a teacher, ``distill`` (:mod:`tinydistill.distillation`) runs a method recipe,
``prune`` cuts a teacher to a student shape, ``evaluate`` scores a model on dev; the rest are thin
entries into their feature packages. What runs share (rows, resolved settings, the RunResult) is
in :mod:`tinydistill.runs`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from accelerate.utils import set_seed

from tinydistill import config as C
from tinydistill import ownership as own
from tinydistill import runs as R
from tinydistill.data import EncodedDataset, subsample, train_batches
from tinydistill.deploy.inputs import model_inputs
from tinydistill.distillation import distill
from tinydistill.errors import TinyDistillError
from tinydistill.evaluation import Evaluation, run_evaluation, warn_if_degenerate
from tinydistill.mapping import layer_map, parse_layer_map
from tinydistill.models.load import (
    LOAD_ERRORS,
    count_params,
    load_classifier,
    load_tokenizer,
    model_name,
    name_labels,
    refuse_new_head,
    resolve_model_path,
    save_model,
)
from tinydistill.models.prune import target_config
from tinydistill.start import (
    corpus_batches,
    load_shape,
    pruned_student,
    task_batches,
)
from tinydistill.tasks.resolve import as_examples, load_task_data
from tinydistill.training import loop


@own.guarded("finetune")
def finetune(
    cfg: C.FinetuneConfig, *, model: Any = None, tokenizer: Any = None, train: Any = None, dev: Any = None
) -> R.RunResult:
    """Fine-tune any HF encoder on a task; keeps the best-on-dev checkpoint in ``cfg.output``.

    ``model`` / ``tokenizer`` (objects) replace loading ``cfg.model``; ``train`` / ``dev`` rows replace
    the task's files. ``cfg.resume`` continues an interrupted run (or returns a finished one).
    """
    data = R.task_data(cfg, train=train, dev=dev)
    run = R.open_run(cfg, "finetune")
    if run.finished is not None:
        return R.RunResult(run.finished, run.output)
    if model is not None:
        cfg = dataclasses.replace(cfg, model=model_name(model))
    tokenizer = tokenizer or load_tokenizer(cfg.model)
    set_seed(cfg.seed)  # before the new head is initialised: same seed, same weights
    model = model if model is not None else load_classifier(cfg.model, data.spec)
    name_labels(model, data.spec)
    cfg = R.resolve(cfg, data, R.position_limit(model, tokenizer=tokenizer))
    train_set = EncodedDataset(
        subsample(data.train, cfg.max_train_samples, cfg.seed), tokenizer, cfg.max_seq_length, data.spec
    )
    rows = R.dev_rows(cfg, data)
    acc = loop.make_accelerator(cfg, run.work)
    if acc.is_main_process:
        C.save(cfg, run.work / "config.yaml")
    batches = train_batches(train_set, tokenizer, cfg.batch_size, cfg.seed, cfg.length_buckets)

    def step_loss(m, batch, step):
        out = m(**model_inputs(acc.unwrap_model(m), batch), labels=batch["labels"])
        return out.loss, {}

    def evaluate() -> Evaluation:
        return run_evaluation(
            acc.unwrap_model(model), tokenizer, data.spec, rows, cfg.max_seq_length, cfg.eval_batch_size, acc
        )

    n_batches = -(-batches.batches_per_epoch // cfg.grad_accum)
    result = loop.train(
        accelerator=acc, model=model, batches=batches, step_loss=step_loss,
        total_steps=loop.plan_steps(n_batches, cfg.epochs, cfg.max_steps), lr=cfg.learning_rate,
        evaluate=evaluate, save=lambda: save_model(acc.unwrap_model(model), tokenizer, run.work),
        name="finetune", checkpoint=R.checkpointing(cfg, run),
        restore_eval=lambda st: Evaluation(data.spec, **st),
        **R.loop_options(cfg, n_batches),
    )  # fmt: skip
    acc.end_training()
    verdict = result.best_eval
    metrics = {
        "task": data.spec.name,
        "model": cfg.model,
        "steps": result.steps,
        "train_examples": len(train_set),
        **R.scale(acc, cfg),
        "train_seconds": result.seconds,
        "params": count_params(model),
        "dev": result.best_metrics,
        **verdict.record(),
        "evals": result.evals,
        "history": result.history,
    }
    R.finish_run(run, metrics)
    warn_if_degenerate(verdict, f"the fine-tuned model in {run.output}")
    return R.RunResult(metrics, run.output, acc.unwrap_model(model))


@own.guarded("evaluate")
def evaluate(
    cfg: C.EvaluateConfig,
    *,
    model: Any = None,
    tokenizer: Any = None,
    dev: Any = None,
    update_card: bool = True,
) -> Evaluation:
    """Metrics of a model on the task's dev split(s), beside the trivial baseline.

    ``model`` (a loaded classifier, with ``tokenizer``) replaces loading ``cfg.model``; ``dev`` rows
    replace the task's dev files. Writes ``cfg.json_file`` when set. A model dir with a model card
    (``tinydistill pipeline``) gets its card's metrics refreshed, unless ``update_card`` is False.
    """
    given = model
    if cfg.json_file:  # find out now, not after the work
        R.check_writable(Path(cfg.json_file))
    data = load_task_data(
        cfg.task,
        cfg.data_dir,
        None,
        cfg.dev_file,
        cfg.text_columns,
        cfg.label_column,
        model_labels=R.model_labels(cfg.model) if cfg.task.lower() == "custom" and given is None else None,
        need_train=False,
        need_dev=dev is None,
        labels=cfg.labels,
        header=cfg.header,
        delimiter=cfg.delimiter,
        encoding=cfg.encoding,
    )
    if dev is not None:
        data.dev = {"dev": as_examples(dev, data.spec)}
    tokenizer = tokenizer or load_tokenizer(cfg.model)
    clf = given if given is not None else load_classifier(cfg.model, data.spec)
    refuse_new_head(clf, cfg.model, cfg.allow_new_head, f" for task {data.spec.name}")
    if clf.config.num_labels != data.spec.num_labels:
        raise TinyDistillError(
            f"model {cfg.model} has {clf.config.num_labels} outputs, task needs {data.spec.num_labels}"
        )
    rows = {s: subsample(ex, cfg.max_eval_samples, cfg.seed) for s, ex in data.dev.items()}
    length = cfg.max_seq_length or data.spec.max_seq_length
    result = run_evaluation(clf.eval(), tokenizer, data.spec, rows, length, cfg.batch_size)
    if cfg.json_file:
        Path(cfg.json_file).parent.mkdir(parents=True, exist_ok=True)
        R.write_json(Path(cfg.json_file), {**result.metrics, **result.record()})
    if update_card and given is None and dev is None:
        from tinydistill.deploy.card import refresh_card

        rows = f", {cfg.max_eval_samples} rows" if cfg.max_eval_samples else ""
        source = f"`tinydistill evaluate` ({time.strftime('%Y-%m-%d')}{rows})"
        refresh_card(resolve_model_path(cfg.model), metrics=result.metrics, source=source)
    return result


def _calibration(cfg: C.PruneConfig, teacher: Any, tokenizer: Any) -> tuple[Any, list]:
    """The model to prune and its calibration batches: task rows (as a classifier) or corpus text."""
    if cfg.task is not None:
        data = load_task_data(
            cfg.task, cfg.data_dir, cfg.train_file, None, cfg.text_columns, cfg.label_column, need_dev=False,
            header=cfg.header, delimiter=cfg.delimiter, encoding=cfg.encoding,
        )  # fmt: skip
        model = teacher if teacher is not None else load_classifier(cfg.teacher, data.spec)
        length = min(
            cfg.max_seq_length or data.spec.max_seq_length, R.position_limit(model, tokenizer=tokenizer)
        )
        return model, task_batches(
            data.train, tokenizer, data.spec, length, cfg.calibration_samples, cfg.seed
        )
    if teacher is None:
        from transformers import AutoModel

        try:
            teacher = AutoModel.from_pretrained(resolve_model_path(cfg.teacher))
        except LOAD_ERRORS as exc:
            raise TinyDistillError(f"cannot load model '{cfg.teacher}': {str(exc).splitlines()[0]}") from exc
    return teacher, list(corpus_batches(cfg.corpus, cfg.calibration_samples, cfg.seed))


def _teacher_config(name: str):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(resolve_model_path(name))
    except LOAD_ERRORS as exc:
        raise TinyDistillError(f"cannot load model '{name}': {str(exc).splitlines()[0]}") from exc


@own.guarded("prune")
def prune(cfg: C.PruneConfig, *, teacher: Any = None, tokenizer: Any = None) -> dict[str, Any]:
    """Cut the teacher down to ``cfg.shape`` (see :mod:`tinydistill.models.prune`) and save it to ``output``.

    Calibration rows: the task's train rows (``task``, ``data_dir``/``train_file``) or a prepared
    ``corpus``. With a task the teacher is loaded as its classifier (head kept and cut); with a corpus
    only as an encoder. ``teacher`` / ``tokenizer`` (objects) replace loading ``cfg.teacher``.
    """
    if teacher is not None:
        cfg = dataclasses.replace(cfg, teacher=model_name(teacher))
    R.check_writable(Path(cfg.output))
    target = load_shape(cfg.shape)
    target_config(teacher.config if teacher is not None else _teacher_config(cfg.teacher), target)
    tokenizer = tokenizer or load_tokenizer(cfg.vocab_from or cfg.teacher)  # impossible shapes failed first
    began = time.time()
    model, batches = _calibration(cfg, teacher, tokenizer)
    model.eval()
    remap = _onto_tokenizer(model, cfg, tokenizer) if cfg.vocab_from else None
    n_layers = target.get("num_hidden_layers", model.config.num_hidden_layers)
    layers = layer_map(parse_layer_map(cfg.layer_map), n_layers, model.config.num_hidden_layers)
    student, plan = pruned_student(model, target, batches, layers, cfg.teacher)
    plan.calibration.update(samples=cfg.calibration_samples, source=cfg.corpus or cfg.task, seed=cfg.seed)
    out = own.mark(cfg.output, "prune")
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
        **({"vocab_remap": remap.as_dict()} if remap else {}),
    }


def _onto_tokenizer(model: Any, cfg: C.PruneConfig, tokenizer: Any) -> Any:
    """``prune --vocab-from``: the model's vocabulary remapped onto ``tokenizer`` (None when they agree)."""
    from tinydistill.models.remap import remap_vocabulary, same_vocab
    from tinydistill.start import student_tokenizer

    own = student_tokenizer(cfg.teacher)
    if own is None:
        raise TinyDistillError(f"{cfg.teacher} has no tokenizer to remap from (--vocab-from)")
    if same_vocab(own, tokenizer):
        return None
    report = remap_vocabulary(model, own, tokenizer)
    print(report.line(), file=sys.stderr, flush=True)
    return report


@own.guarded("trim-vocab")
def trim_vocab(cfg: C.TrimVocabConfig) -> dict[str, Any]:
    """Trim ``cfg.model``'s vocabulary to the pieces the text uses most (:mod:`tinydistill.models.trim`)."""
    from tinydistill.models import trim

    R.check_writable(Path(cfg.output))
    tokenizer = load_tokenizer(cfg.model)
    texts, checked = _trim_texts(cfg, tokenizer)
    model = _any_model(cfg.model)
    keep = cfg.keep if cfg.keep is not None else trim.keep_for_params(model, tokenizer, cfg.target_params)
    before = count_params(model)
    if texts is None:
        counts = _corpus_counts(cfg.corpus, tokenizer)
    else:
        counts = trim.piece_counts(tokenizer, texts)
    kept = trim.kept_ids(tokenizer, counts, keep)
    small = trim.trim_tokenizer(tokenizer, kept)
    trim.trim_embeddings(model, kept, small.pad_token_id)
    out = own.mark(cfg.output, "trim-vocab")
    save_model(model.eval(), small, out)
    seen = sum(counts.values())
    report = {
        "output": str(out),
        "pieces_before": len(tokenizer),
        "pieces_after": len(small),
        "kept_by_frequency": len(kept) - len(trim.always_kept(tokenizer)),
        "always_kept": len(trim.always_kept(tokenizer)),
        "params_before": before,
        "params": count_params(model),
        "params_ratio": round(before / count_params(model), 2),
        "text_tokens_covered": round(sum(counts[i] for i in kept) / max(seen, 1), 4),
        **({"checked_on": trim.changed_share(tokenizer, small, checked)} if checked else {}),
    }
    (out / "trim.json").write_text(json.dumps({**report, "config": dataclasses.asdict(cfg)}, indent=1))
    return report


def _trim_texts(cfg: C.TrimVocabConfig, tokenizer: Any) -> tuple[list[str] | None, list[str]]:
    """The texts whose pieces are counted (None: a corpus) and those the result is checked on (dev rows)."""
    if cfg.task is None:
        return None, []
    args = (cfg.task, cfg.data_dir, cfg.train_file, None, cfg.text_columns, cfg.label_column)
    table = dict(header=cfg.header, delimiter=cfg.delimiter)
    try:  # the task's dev rows, where it has them, show what trimming changes on unseen text
        data = load_task_data(*args, need_dev=cfg.task.lower() != "custom", **table)
    except TinyDistillError:
        data = load_task_data(*args, need_dev=False, **table)
    texts = [t for e in data.train for t in (e.text_a, e.text_b) if t]
    dev = [t for rows in (data.dev or {}).values() for e in rows for t in (e.text_a, e.text_b) if t]
    return texts, dev or texts


def _corpus_counts(corpus: str, tokenizer: Any) -> Any:
    from collections import Counter

    import numpy as np

    from tinydistill.corpus.dataset import PackedCorpus
    from tinydistill.corpus.pack import vocab_fingerprint

    data = PackedCorpus(corpus)
    if data.manifest.get("vocab_sha256") != vocab_fingerprint(tokenizer):
        raise TinyDistillError(f"{corpus} was tokenized with another vocabulary than the model's")
    counts: Counter = Counter()
    for start in range(0, len(data), 4096):
        ids, lengths = data.rows_of(np.arange(start, min(start + 4096, len(data))))
        for row, n in zip(ids, lengths, strict=True):
            counts.update(row[:n].tolist())
    for special in tokenizer.all_special_ids:
        counts.pop(special, None)
    return counts


def _any_model(name: str) -> Any:
    """A checkpoint as the class it was saved as (a classifier keeps its head)."""
    import transformers

    path = resolve_model_path(name)
    try:
        config = transformers.AutoConfig.from_pretrained(path)
        arch = (config.architectures or [""])[0]
        cls = transformers.AutoModelForSequenceClassification if "SequenceClassification" in arch else None
        return (cls or transformers.AutoModel).from_pretrained(path)
    except LOAD_ERRORS as exc:
        raise TinyDistillError(f"cannot load model '{name}': {str(exc).splitlines()[0]}") from exc


# ----------------------------------------------------------------------------- the other commands
# Each takes its config from :mod:`tinydistill.config`; the feature modules load on first use.


def _one_process(command: str, hint: str) -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise TinyDistillError(f"{command} runs in one process; {hint}")


@own.guarded("general")
def general(cfg: C.GeneralConfig) -> dict[str, Any]:
    """General distillation on a prepared corpus (:func:`tinydistill.training.general.general`)."""
    from tinydistill.training.general import general as run

    R.check_writable(Path(cfg.output))
    return run(cfg)


@own.guarded("corpus")
def prepare_corpus(cfg: C.CorpusConfig) -> dict[str, Any]:
    """Raw text -> packed shards + manifest (:func:`tinydistill.corpus.prepare_corpus`)."""
    from tinydistill.corpus import prepare

    _one_process("corpus", "use --workers N for parallel tokenization")
    R.check_writable(Path(cfg.output))
    return prepare(cfg)


@own.guarded("augment")
def augment(cfg: C.AugmentConfig) -> dict[str, Any]:
    """An augmented train file (or ``merge`` of shard files); returns counts and timings."""
    from tinydistill.augmentation.runner import augment_task, merge_shards

    _one_process("augment", "start one process per slice with --shard i/n, then --merge the files")
    R.check_writable(Path(cfg.output))

    if cfg.merge:
        rows = (cfg.train_file, cfg.text_columns, cfg.label_column)
        table = dict(header=cfg.header, delimiter=cfg.delimiter, encoding=cfg.encoding)
        return merge_shards(cfg.task, cfg.merge, cfg.output, *rows, **table)
    return augment_task(cfg)


@own.guarded("mlm-head")
def mlm_head(cfg: C.MLMHeadConfig) -> dict[str, Any]:
    """A masked-LM head trained on an encoder (:func:`tinydistill.augmentation.mlm_head.train_mlm_head`)."""
    from tinydistill.augmentation.mlm_head import train_mlm_head

    _one_process("mlm-head", "launch it without torchrun / accelerate launch")
    R.check_writable(Path(cfg.output))
    return train_mlm_head(cfg)


@own.guarded("export")
def export(cfg: C.ExportConfig) -> dict[str, Any]:
    """ONNX (+ int8) export checked against PyTorch (:func:`tinydistill.deploy.export.export_model`)."""
    from tinydistill.deploy.export import export_model

    R.check_writable(Path(cfg.output))
    return export_model(
        cfg.model, cfg.output, quantize=cfg.quantize, optimize=cfg.optimize, task=cfg.task,
        data_dir=cfg.data_dir, atol=cfg.atol, threads=cfg.threads, weight_type=cfg.weight_type,
        per_channel=cfg.per_channel, fmt=cfg.fmt, allow_new_head=cfg.allow_new_head,
    )  # fmt: skip


@own.guarded("bench")
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


@own.guarded("predict")
def predict(cfg: C.PredictConfig) -> dict[str, Any]:
    """Batched inference over a file (:func:`tinydistill.deploy.predict.predict_file`)."""
    from tinydistill.deploy.predict import predict_file

    R.check_writable(Path(cfg.output_file))
    return predict_file(
        cfg.model, cfg.input_file, cfg.output_file, text_columns=cfg.text_columns, batch_size=cfg.batch_size,
        max_seq_length=cfg.max_seq_length, backend=cfg.backend, threads=cfg.threads, cache_dir=cfg.cache_dir,
        allow_new_head=cfg.allow_new_head, header=cfg.header, delimiter=cfg.delimiter, encoding=cfg.encoding,
    )  # fmt: skip


@own.guarded("report")
def report(cfg: C.ReportConfig) -> dict[str, Any]:
    """Markdown teacher-vs-student report with plots (:func:`tinydistill.deploy.report.build_report`)."""
    from tinydistill.deploy.card import refresh_card
    from tinydistill.deploy.report import build_report

    result = build_report(
        cfg.run_dirs, cfg.output, bench_files=cfg.bench_files, seq_len=cfg.seq_len, threads=cfg.threads,
        repeats=cfg.repeats,
    )  # fmt: skip
    by_name = {row["model"]: row for row in result["rows"]}
    for row in result["rows"]:  # a student with a model card: its latencies as measured here
        teacher = by_name.get(row["teacher"] or "", {})
        if row["role"] == "student":
            refresh_card(
                row["path"], latency={"student": row["latency_ms"], "teacher": teacher.get("latency_ms")}
            )
    return result


__all__ = [
    "augment", "bench", "distill", "evaluate", "export", "finetune", "general", "mlm_head", "predict",
    "prepare_corpus", "prune", "report",
]  # fmt: skip
