"""General distillation (TinyBERT stage 1): a pre-trained teacher -> a general student on unlabeled text.

The student learns the teacher's embedding output, hidden states (through the projection ``W_h``) and
pre-softmax attention scores of the mapped layers (``embedding``, ``hidden``, ``attention`` terms of
:mod:`tinydistill.training.terms`; no prediction loss) on a corpus prepared by ``tinydistill corpus``.

It runs in the one training loop (:mod:`tinydistill.training.loop`): every ``save_every`` steps (and
at the end) ``DIR/checkpoints/step-N/`` gets the student and projection weights, optimizer,
scheduler, every process's RNG states and the loop's state; ``resume=True`` continues from the
newest one with the same batches (the corpus position is the step count) and the same random
numbers as an uninterrupted run. SIGINT/SIGTERM finish the current step, write a checkpoint and stop.
Under ``torchrun`` every process takes its share of each corpus batch. The output dir ends up a
plain HF encoder (weights, config, the teacher's tokenizer) that ``tinydistill distill --student DIR``
starts task distillation from.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import torch
import yaml
from accelerate.utils import set_seed
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from tinydistill import config as C
from tinydistill.corpus.dataset import BatchStream, PackedCorpus
from tinydistill.corpus.pack import vocab_fingerprint
from tinydistill.errors import Interrupted, TinyDistillError
from tinydistill.losses import HiddenProjection
from tinydistill.mapping import layer_map, parse_layer_map
from tinydistill.models.capture import enable_capture
from tinydistill.models.load import count_params, load_tokenizer, save_model
from tinydistill.models.prune import init_projection
from tinydistill.ownership import is_main, mark
from tinydistill.start import checkpoint_plan
from tinydistill.training.checkpoint import latest_readable
from tinydistill.training.general_step import (
    GeneralLoss,
    build_encoder_student,
    load_encoder,
    prepare_teacher,
    teacher_dtype,
)
from tinydistill.training.loop import Checkpointing, make_accelerator, train
from tinydistill.training.terms import Distiller

__all__ = ["Interrupted", "general"]


def _check_resume(cfg: C.GeneralConfig, output: Path) -> None:
    saved = output / "config.yaml"
    if not saved.exists():
        return
    old = yaml.safe_load(saved.read_text()) or {}
    new = dataclasses.asdict(cfg)
    changed = [k for k in C.GENERAL_RUN_KEYS if k in old and old[k] != new[k]]
    if changed:
        raise TinyDistillError(
            f"--resume with different settings than the run in {output}: {', '.join(changed)} "
            "(use the same values, or a new --output)"
        )


def general(cfg: C.GeneralConfig) -> dict[str, Any]:
    """Run (or resume) general distillation; returns the summary also written to ``metrics.json``."""
    corpus, tokenizer = _open_corpus(cfg)
    output = Path(cfg.output)
    latest = _checkpoint_to_resume(cfg, output)
    teacher = load_encoder(cfg.teacher)
    set_seed(cfg.seed)  # then the student and W_h, in this order: the weights depend on the seed alone
    student = build_encoder_student(cfg.student, teacher)
    distiller, layers = _make_distiller(cfg, student, teacher, corpus)
    stream = BatchStream(corpus, cfg.batch_size, cfg.seed)
    total = cfg.max_steps or max(1, math.ceil(cfg.epochs * stream.batches_per_epoch / cfg.grad_accum))
    if is_main():  # the marker first: the accelerator's logs go into the folder
        mark(output, "general")
    acc = make_accelerator(cfg, output, find_unused=True)
    if acc.is_main_process:
        C.save(cfg, output / "config.yaml")
    dtype = teacher_dtype(cfg.teacher_precision, acc.device)
    teacher = prepare_teacher(teacher, acc.device, dtype)
    step_loss = GeneralLoss(acc.device, teacher, layers, distiller.needs_attention, dtype)
    checkpoint = Checkpointing(output / "checkpoints", cfg.save_every, cfg.keep_checkpoints, resume=latest,
                               at_end=True)  # fmt: skip
    result = train(
        accelerator=acc, model=distiller, batches=stream, step_loss=step_loss, total_steps=total,
        lr=cfg.learning_rate, weight_decay=cfg.weight_decay, warmup_ratio=cfg.warmup_ratio,
        max_grad_norm=cfg.max_grad_norm, logging_steps=cfg.logging_steps, name="general",
        optimizer_name=cfg.optimizer, scheduler_name=cfg.scheduler, grad_accum=cfg.grad_accum,
        checkpoint=checkpoint,
    )  # fmt: skip
    final = acc.unwrap_model(distiller).student
    acc.end_training()
    summary = _summary(cfg, result, total, len(corpus), layers, dtype, final, teacher)
    if acc.is_main_process:
        save_model(final, tokenizer, output)
        plan = checkpoint_plan(cfg.student)
        if plan is not None:  # task distillation from DIR keeps the layer map and W_h's start
            plan.save(output)
        tmp = output / "metrics.json.tmp"
        run_scale = {"world_size": acc.num_processes, "mixed_precision": acc.mixed_precision}
        tmp.write_text(json.dumps({**summary, **run_scale}, indent=2))
        tmp.replace(output / "metrics.json")
    return summary


def _open_corpus(cfg: C.GeneralConfig) -> tuple[PackedCorpus, PreTrainedTokenizerBase]:
    """The packed corpus and the teacher's tokenizer, refused unless the corpus used that vocab."""
    corpus = PackedCorpus(cfg.corpus)
    tokenizer = load_tokenizer(cfg.teacher)
    if corpus.manifest.get("vocab_sha256") != vocab_fingerprint(tokenizer):
        raise TinyDistillError(
            f"corpus/teacher vocab mismatch: {cfg.corpus} was tokenized with "
            f"'{corpus.manifest.get('tokenizer')}', not the tokenizer of teacher '{cfg.teacher}'"
        )
    return corpus, tokenizer


def _checkpoint_to_resume(cfg: C.GeneralConfig, output: Path) -> Path | None:
    """The newest checkpoint in ``output``: an error without ``resume`` or with changed settings."""
    latest = latest_readable(output / "checkpoints")
    if latest is not None and not cfg.resume:
        raise TinyDistillError(
            f"{output} already has checkpoints: pass --resume to continue, or a new --output"
        )
    if latest is not None:
        _check_resume(cfg, output)
    return latest


def _make_distiller(
    cfg: C.GeneralConfig, student: PreTrainedModel, teacher: PreTrainedModel, corpus: PackedCorpus
) -> tuple[Distiller, list[int]]:
    """The student, ``W_h`` and the weighted terms; also the layer map. A student pruned from the teacher
    (``tinydistill prune``) keeps its plan's layer map and starts ``W_h`` at its channel selection, as
    task distillation does; otherwise ``W_h`` starts at random and the map is ``cfg.layer_map``."""
    n_s, n_t = student.config.num_hidden_layers, teacher.config.num_hidden_layers
    plan = checkpoint_plan(cfg.student)
    fits = plan is not None and len(plan.layers) == n_s and max(plan.layers) <= n_t
    use_plan = fits and cfg.layer_map == "uniform"
    layers = plan.layers if use_plan else layer_map(parse_layer_map(cfg.layer_map), n_s, n_t)
    weights = {k: float(v) for k, v in cfg.weights.items() if v}
    limit = min(student.config.max_position_embeddings, teacher.config.max_position_embeddings)
    if corpus.max_seq_length > limit:
        raise TinyDistillError(
            f"corpus sequences have {corpus.max_seq_length} tokens; the models accept {limit}"
        )
    if "attention" in weights:
        heads = (student.config.num_attention_heads, teacher.config.num_attention_heads)
        if heads[0] != heads[1]:
            raise TinyDistillError(
                f"the attention loss needs equal head counts: student has {heads[0]}, teacher {heads[1]}"
            )
        enable_capture(student)
    proj = HiddenProjection(
        student.config.hidden_size, teacher.config.hidden_size, n_s, shared=cfg.hidden_proj_shared
    )
    if plan is not None and teacher.config.hidden_size == len(plan.channel_mean):
        init_projection(proj, plan)
    distiller = Distiller(student, proj, layers)
    distiller.set_terms(weights)
    return distiller, layers


def _summary(cfg, result, total, n_corpus, layers, dtype, final, teacher) -> dict[str, Any]:
    seen = result.steps * cfg.batch_size * cfg.grad_accum
    return {
        "teacher": cfg.teacher,
        "student": cfg.student,
        "corpus": cfg.corpus,
        "layer_map": layers,
        "steps": result.steps,
        "total_steps": total,
        "batch_size": cfg.batch_size,
        "global_batch_size": cfg.batch_size * cfg.grad_accum,
        "sequences_seen": seen,
        "corpus_sequences": n_corpus,
        "epochs_seen": round(seen / n_corpus, 4),
        "teacher_precision": str(dtype or torch.float32).replace("torch.", ""),
        "train_seconds": result.seconds,
        "params": count_params(final),
        "teacher_params": count_params(teacher),
        "history": result.history,
        "losses": result.losses,
    }
