"""Where a student starts: pruned from the teacher (``tinydistill prune``, and distill's default
for a student given as a shape), at random, or from a checkpoint (general distillation, a pruned dir,
or a pre-trained model of its own vocabulary: remapped onto the teacher's tokenizer, see
:mod:`tinydistill.models.remap`).

Why pruned by default: from a random start on a few thousand rows the student sits on a loss
plateau at the majority class for longer than the default budget (see docs/small-data.md); a
student cut from the fine-tuned teacher starts near the teacher's predictions instead.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from tinydistill.data import EncodedDataset, make_loader, subsample
from tinydistill.errors import TinyDistillError
from tinydistill.models.load import PRESETS, check_vocab, load_classifier, load_tokenizer, resolve_model_path
from tinydistill.models.prune import SHAPE_KEYS, PrunePlan, prune_model
from tinydistill.models.remap import VocabRemap, remap_vocabulary, same_vocab
from tinydistill.tasks import Example, TaskSpec

TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json")
STARTS = ("auto", "pruned", "random", "pretrained")
DEFAULT_CALIBRATION_SAMPLES = 512


def student_shape(student: str) -> dict[str, int] | None:
    """The shape keys of a preset name, a config-only dir or a config.json; None for a checkpoint."""
    if student in PRESETS:
        return dict(PRESETS[student])
    path = Path(student).expanduser()
    cfg_file = path if path.is_file() and path.suffix == ".json" else path / "config.json"
    if path.is_dir() and (any(path.glob("*.safetensors")) or any(path.glob("*.bin"))):
        return None
    if path.suffix == ".json" and path.is_file() or (path.is_dir() and cfg_file.is_file()):
        data = _json_object(cfg_file)
        return {k: data[k] for k in SHAPE_KEYS if k in data}
    return None


def _json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise TinyDistillError(f"{path}: invalid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise TinyDistillError(f"{path}: a shape must be a JSON object of config keys")
    return data


def resolve_start(start: str, student: str, teacher: PreTrainedModel) -> str:
    """``auto`` -> ``pruned`` for a shape (preset/config) when the teacher can be pruned to it;
    a checkpoint (dir or hub id) -> ``checkpoint``, also asked for as ``pretrained``."""
    if start not in STARTS:
        raise TinyDistillError(f"start must be one of {', '.join(STARTS)}, got '{start}'")
    shape = student_shape(student)
    if start == "pretrained":
        if shape is not None:
            raise TinyDistillError(
                "--start pretrained needs a pre-trained checkpoint (a model dir or hub id), "
                f"not the shape {student}"
            )
        return "checkpoint"
    if start == "random" or shape is None:
        if start == "pruned" and shape is None:
            raise TinyDistillError(
                f"--start pruned needs a student shape (a preset or a config), not the checkpoint {student}"
            )
        return "random" if shape is not None else "checkpoint"
    if start == "pruned":
        return "pruned"
    t = teacher.config
    fits = t.model_type in ("bert", "mpnet") and all(
        shape.get(k, getattr(t, k)) <= getattr(t, k) for k in SHAPE_KEYS
    )
    return "pruned" if fits else "random"


def task_batches(
    examples: list[Example], tokenizer: PreTrainedTokenizerBase, spec: TaskSpec, max_seq_length: int,
    samples: int, seed: int, batch_size: int = 32,
) -> list[dict[str, torch.Tensor]]:  # fmt: skip
    """A seeded calibration sample of task rows, as model-input batches."""
    rows = subsample(examples, samples, seed)
    loader = make_loader(EncodedDataset(rows, tokenizer, max_seq_length, spec), tokenizer, batch_size)
    return list(loader)


def corpus_batches(
    corpus: str, samples: int, seed: int, batch_size: int = 32
) -> Iterator[dict[str, torch.Tensor]]:
    """A seeded calibration sample of a prepared corpus (``tinydistill corpus``)."""
    import numpy as np

    from tinydistill.corpus.dataset import PackedCorpus

    data = PackedCorpus(corpus)
    order = np.random.default_rng(seed).permutation(len(data))[:samples]
    for i in range(0, len(order), batch_size):
        yield data.batch(np.sort(order[i : i + batch_size]))


def pruned_student(
    teacher: PreTrainedModel, shape: Mapping[str, Any], batches: Any, layers: list[int], teacher_name: str
) -> tuple[PreTrainedModel, PrunePlan]:
    """The teacher cut to ``shape`` (see :mod:`tinydistill.models.prune`), in training mode."""
    student, plan = prune_model(teacher, shape, batches, layers, teacher_name)
    student.tinydistill_new_head = False
    return student.train(), plan


def checkpoint_plan(student: str, teacher: PreTrainedModel | None = None) -> PrunePlan | None:
    """The prune plan saved beside a pruned checkpoint, if any, and if it was cut from a model of
    ``teacher``'s shape (a student pruned from another model takes the default layer map and W_h)."""
    path = Path(student)
    plan = PrunePlan.load(path) if path.is_dir() else None
    if plan is None or teacher is None:
        return plan
    t = teacher.config
    fits = len(plan.channel_mean) == t.hidden_size and plan.teacher_layers in (None, t.num_hidden_layers)
    return plan if fits else None


def load_shape(shape: str) -> dict[str, Any]:
    """``--shape``: a preset name or a JSON file of Hugging Face config keys."""
    if shape in PRESETS:
        return dict(PRESETS[shape])
    path = Path(shape)
    if not path.is_file():
        raise TinyDistillError(
            f"shape '{shape}' is neither a preset ({', '.join(PRESETS)}) nor an existing JSON file"
        )
    return _json_object(path)


def pretrained_student(
    student: str,
    teacher: PreTrainedModel,
    teacher_tok: PreTrainedTokenizerBase,
    task: TaskSpec,
    remap: bool = True,
) -> tuple[PreTrainedModel, VocabRemap | None]:
    """A checkpoint (dir, packaged alias or hub id) as the task's classifier on the teacher's tokenizer.

    A checkpoint with a tokenizer of another vocabulary is remapped onto the teacher's (the line that
    says how much of it was found goes to stderr); one without a tokenizer must match the teacher's size.
    """
    model = load_classifier(student, task)
    if not remap:  # it keeps its own tokenizer (--own-tokenizer)
        return model, None
    own = student_tokenizer(student)
    if own is None or same_vocab(own, teacher_tok):
        check_vocab(teacher.config, model.config)
        return model, None
    report = remap_vocabulary(model, own, teacher_tok)
    print(report.line(), file=sys.stderr, flush=True)
    return model, report


def student_tokenizer(student: str) -> PreTrainedTokenizerBase | None:
    """The tokenizer a checkpoint ships, None when it has none (a bare weights dir)."""
    path = Path(resolve_model_path(student))
    if path.is_dir() and not any((path / f).exists() for f in TOKENIZER_FILES):
        return None
    return load_tokenizer(student)
