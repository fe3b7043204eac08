"""Load teachers and build students: presets, checkpoints, config-only shapes, teacher-layer init.

A student always runs on the teacher's tokenizer: a checkpoint with a vocabulary of its own is
remapped onto it (:mod:`tinydistill.models.remap`); a student without a tokenizer must have the
teacher's vocabulary size, refused up front rather than distilled meaninglessly.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from tinydistill.errors import TinyDistillError
from tinydistill.models.packaged import packaged_model
from tinydistill.tasks import TaskSpec

# TinyBERT student shapes (Jiao et al. 2020, Table 1 and Sec. 4.2).
PRESETS: dict[str, dict[str, int]] = {
    "tinybert-4l-312": dict(
        num_hidden_layers=4, hidden_size=312, intermediate_size=1200, num_attention_heads=12
    ),
    "tinybert-6l-768": dict(
        num_hidden_layers=6, hidden_size=768, intermediate_size=3072, num_attention_heads=12
    ),
}

DEFAULT_TEACHER = "all-MiniLM-L6-v2"


def native_bf16(device: str | torch.device) -> bool:
    """Does this device multiply bf16 natively (a bf16 GPU, or a CPU with AVX512-BF16 / AMX)?"""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # pragma: no cover - older torch
        return False


# what loading a damaged or foreign checkpoint raises (a truncated safetensors file, a bad config.json)
LOAD_ERRORS = (OSError, ValueError, RuntimeError, KeyError, SafetensorError)


def resolve_model_path(name: str | os.PathLike) -> str:
    """Map packaged-model aliases (all-MiniLM-L6-v2, all-mpnet-base-v2) to their dirs.

    Paths that look local but do not exist are refused here rather than sent to the hub.
    """
    name = str(name)
    local = packaged_model(name)
    if local is not None:
        return str(local)
    path = Path(name).expanduser()
    if path.exists():
        return str(path)
    first = Path(name).parts[0] if Path(name).parts else name
    looks_local = (
        name.startswith((".", "/", "~"))
        or name.count("/") > 1
        or os.sep + os.sep in name
        or (len(Path(name).parts) > 1 and Path(first).is_dir())  # runs/teacher, with ./runs here
    )
    if looks_local:
        raise TinyDistillError(f"model not found: {name} (no such directory)")
    return name  # a hub id; loading reports if it is unreachable


def _label_kwargs(task: TaskSpec) -> dict:
    """The config keys of the task's head: the size and, for classes, their names (``id2label``)."""
    if task.is_regression:
        return dict(num_labels=1, problem_type="regression")
    labels = list(task.class_names or [])
    return dict(
        num_labels=len(labels),
        id2label={i: lab for i, lab in enumerate(labels)},
        label2id={lab: i for i, lab in enumerate(labels)},
        problem_type="single_label_classification",
    )


def name_labels(model: PreTrainedModel, task: TaskSpec) -> None:
    """Give a classifier whose head fits ``task`` the task's label names (saved in its config.json)."""
    if not task.is_regression and model.config.num_labels == task.num_labels:
        for key, value in _label_kwargs(task).items():
            setattr(model.config, key, value)


def model_name(model: Any) -> str:
    """What a run's config records for a model given as an object: its source path or hub id."""
    return str(getattr(getattr(model, "config", None), "_name_or_path", "") or type(model).__name__)


def load_tokenizer(name: str) -> PreTrainedTokenizerBase:
    path = resolve_model_path(name)
    try:
        return AutoTokenizer.from_pretrained(path)
    except LOAD_ERRORS as exc:
        raise TinyDistillError(f"cannot load a tokenizer from '{name}': {str(exc).splitlines()[0]}") from exc


def load_classifier(name: str, task: TaskSpec) -> PreTrainedModel:
    """Any HF encoder (dir or hub id) as a sequence classifier for ``task``.

    Checkpoints already fine-tuned for the task keep their head; a head of another size is re-initialised.
    """
    path = resolve_model_path(name)
    try:
        config = AutoConfig.from_pretrained(path)
    except LOAD_ERRORS as exc:
        raise TinyDistillError(f"cannot load model '{name}': {str(exc).splitlines()[0]}") from exc
    check_shape(config, name)
    for key, value in _label_kwargs(task).items():
        setattr(config, key, value)
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            path, config=config, ignore_mismatched_sizes=True, output_loading_info=True
        )
    except LOAD_ERRORS as exc:
        raise TinyDistillError(f"cannot load model '{name}': {str(exc).splitlines()[0]}") from exc
    model.tinydistill_new_head = new_head(model, info)
    return model


def new_head(model: PreTrainedModel, info: dict) -> bool:
    """Whether ``from_pretrained(..., output_loading_info=True)`` drew a classification head at random."""
    fresh = list(info.get("missing_keys", [])) + [
        k[0] if isinstance(k, tuple) else k for k in info.get("mismatched_keys", [])
    ]
    return any(not k.startswith(model.base_model_prefix) for k in fresh)


def refuse_new_head(model: PreTrainedModel, name: str, allow: bool, what: str) -> None:
    """The one-line refusal to {evaluate, predict with, export} a randomly initialised head."""
    if getattr(model, "tinydistill_new_head", False) and not allow:
        raise TinyDistillError(
            f"{name} has no trained classification head{what} (its head would be random): fine-tune or "
            "distill it first, or pass --allow-new-head"
        )


def _config_only(path: Path) -> Path | None:
    """The config.json of a dir (or the file itself) when it carries no weights."""
    if path.is_file() and path.suffix == ".json":
        return path
    if path.is_dir() and (path / "config.json").exists():
        has_weights = any(path.glob("*.safetensors")) or any(path.glob("*.bin"))
        return None if has_weights else path / "config.json"
    return None


def student_config(student: str, teacher_config: PretrainedConfig) -> PretrainedConfig | None:
    """A config for a randomly initialised student, or None when ``student`` is a checkpoint."""
    if student in PRESETS:
        t = teacher_config
        return BertConfig(
            vocab_size=t.vocab_size,
            pad_token_id=t.pad_token_id if t.pad_token_id is not None else 0,
            max_position_embeddings=min(getattr(t, "max_position_embeddings", 512), 512),
            type_vocab_size=max(getattr(t, "type_vocab_size", 2) or 2, 2),
            **PRESETS[student],
        )
    try:
        path = Path(resolve_model_path(student)).expanduser()
    except TinyDistillError:
        raise TinyDistillError(
            f"student '{student}' is neither a preset ({', '.join(PRESETS)}) nor an existing path"
        ) from None
    if not path.exists():
        return None  # a hub id: a checkpoint, loaded (or reported unreachable) as such
    cfg_file = _config_only(path)
    if cfg_file is None:
        return None
    try:
        data = json.loads(cfg_file.read_text())
        config = AutoConfig.for_model(data.pop("model_type", "bert"), **data)
    except (ValueError, KeyError) as exc:
        raise TinyDistillError(f"{cfg_file}: invalid model config ({exc})") from exc
    check_shape(config, str(cfg_file))
    return config


def check_shape(config: PretrainedConfig, where: str) -> None:
    """Attention splits the hidden size into equal heads: refuse a config where it cannot."""
    hidden, heads = getattr(config, "hidden_size", None), getattr(config, "num_attention_heads", None)
    if hidden and heads and hidden % heads:
        raise TinyDistillError(
            f"{where}: hidden size {hidden} is not a multiple of the {heads} attention heads"
        )


def build_student(student: str, teacher: PreTrainedModel, task: TaskSpec, seed: int = 42) -> PreTrainedModel:
    """Preset name, weights dir, or config-only dir/file -> a classifier that shares the teacher's vocab."""
    cfg = student_config(student, teacher.config)
    if cfg is None:
        model = load_classifier(student, task)
    else:
        for key, value in _label_kwargs(task).items():
            setattr(cfg, key, value)
        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_config(cfg)
    check_vocab(teacher.config, model.config)
    return model


def check_vocab(teacher_config: PretrainedConfig, student_config: PretrainedConfig) -> None:
    if teacher_config.vocab_size != student_config.vocab_size:
        raise TinyDistillError(
            f"teacher/student vocab mismatch: teacher has {teacher_config.vocab_size} tokens, "
            f"student {student_config.vocab_size}; the student must use the teacher's tokenizer"
        )


def init_from_teacher(student: PreTrainedModel, teacher: PreTrainedModel, layers: list[int]) -> None:
    """Copy embeddings and teacher layer g(m) into student layer m (same architecture and width only)."""
    s_cfg, t_cfg = student.config, teacher.config
    if s_cfg.model_type != t_cfg.model_type or s_cfg.hidden_size != t_cfg.hidden_size:
        raise TinyDistillError(
            "init from teacher layers needs the same architecture and width "
            f"(teacher {t_cfg.model_type}/{t_cfg.hidden_size}, "
            f"student {s_cfg.model_type}/{s_cfg.hidden_size})"
        )
    s_base, t_base = student.base_model, teacher.base_model
    s_base.embeddings.load_state_dict(t_base.embeddings.state_dict())
    for m, n in enumerate(layers):
        s_base.encoder.layer[m].load_state_dict(t_base.encoder.layer[n - 1].state_dict())


def count_params(model: nn.Module, exclude_embeddings: bool = False) -> int:
    total = sum(p.numel() for p in model.parameters())
    if exclude_embeddings:
        emb = model.get_input_embeddings()
        total -= sum(p.numel() for p in emb.parameters())
    return total


def save_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, output: Path) -> None:
    """Save HF format into ``output`` (which may hold logs and configs) without a half-written state.

    Files are written to a temp dir first and then moved in one by one with ``os.replace``.
    """
    from tinydistill.models.capture import disable_capture

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    tmp = output / ".saving"
    shutil.rmtree(tmp, ignore_errors=True)
    impl = getattr(model.config, "_attn_implementation", None)
    disable_capture(model)
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    finally:
        if impl is not None and impl != model.config._attn_implementation:
            model.set_attn_implementation(impl)
    for item in tmp.iterdir():
        os.replace(item, output / item.name)
    tmp.rmdir()
