"""Export a saved classifier to ONNX (dynamic batch and sequence axes), check it, quantize it to int8.

Measured on an AVX-512 VNNI CPU (4-layer 312-wide student, batch 1, length 128): int8 weights
(QInt8) are ~1.6x faster than QUInt8, per-channel scales gain nothing, and onnxruntime's offline
transformer fusions (``optimize``) gain nothing over the fusions the session applies at load time
(int8 is even slightly slower after them), so all three default off / QInt8.

The graph is traced from the model loaded fresh with standard ("eager") attention, so a checkpoint
saved during attention capture exports like any HF model. The fp32 graph must reproduce the
PyTorch logits on real inputs within ``atol`` or the export fails; the int8 graph is compared by
prediction agreement and reported, not failed. Tokenizer, ``config.json`` and ``export.json`` (the
check results) are written beside ``model.onnx`` / ``model.int8.onnx``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tinydistill.deploy.inputs import feed, model_input_names
from tinydistill.deploy.runtime import (
    EXPORT_META,
    INT8_FILE,
    ONNX_FILE,
    encode,
    load_tokenizer_from,
    ort_session,
    require,
)
from tinydistill.deploy.timing import random_batch
from tinydistill.errors import TinyDistillError
from tinydistill.models.load import LOAD_ERRORS, new_head, refuse_new_head, resolve_model_path
from tinydistill.ownership import mark

DEFAULT_ATOL = 1e-3
WEIGHT_TYPES = ("qint8", "quint8")
SAMPLE_SENTENCES = [
    "A gripping, beautifully shot film with a cast that never puts a foot wrong.",
    "The plot is thin and the jokes fall flat.",
    "I did not expect much, but it surprised me.",
    "Two hours I will never get back.",
    "An instant classic.",
    "The soundtrack is lovely, although the second half drags on far longer than it should, and the "
    "ending, which the whole film builds toward, feels rushed and strangely weightless.",
    "Solid performances, forgettable script.",
    "Bad.",
    "The company said on Tuesday that quarterly revenue rose 12 percent to 3.4 billion dollars.",
    "Is this the kind of movie you can watch twice?",
    "It rains a lot in Seattle during the winter months.",
    "Nobody in the theater laughed once.",
]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence exporter / optimizer chatter (prints, warnings, library loggers)."""
    names = ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript", "onnx_ir", "onnxruntime")
    loggers = [logging.getLogger(n) for n in names] + [logging.getLogger()]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def sample_texts(task: str | None = None, data_dir: str | None = None, n: int = 32):
    """Texts to check the export on: the task's dev set when given, else built-in sentences."""
    if task:
        from tinydistill.tasks.resolve import load_task_data

        data = load_task_data(task, data_dir, need_train=False)
        dev = next(iter(data.dev.values()))[:n]
        b = [e.text_b or "" for e in dev] if dev[0].text_b is not None else None
        return [e.text_a for e in dev], b, f"{data.spec.name} dev"
    return list(SAMPLE_SENTENCES), None, "built-in sentences"


class _Logits(nn.Module):
    """forward(input_ids, attention_mask[, token_type_ids]) -> logits, the graph's only output."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        kw = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kw["token_type_ids"] = token_type_ids
        return self.model(**kw).logits


def load_for_export(model_dir: str | Path):
    """The HF classifier in ``model_dir`` with eager attention, in eval mode."""
    from transformers import AutoModelForSequenceClassification

    path = Path(resolve_model_path(str(model_dir)))
    if not path.is_dir():
        raise TinyDistillError(f"model not found: {model_dir}")
    if not (any(path.glob("*.safetensors")) or any(path.glob("*.bin"))):
        raise TinyDistillError(f"{model_dir}: no PyTorch weights (*.safetensors) to export")
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            str(path), attn_implementation="eager", output_loading_info=True
        )
    except LOAD_ERRORS as exc:
        raise TinyDistillError(f"cannot load model '{model_dir}': {str(exc).splitlines()[0]}") from exc
    model.tinydistill_new_head = new_head(model, info)
    return model.eval(), path


def to_onnx(model: nn.Module, example: dict[str, torch.Tensor], path: Path, opset: int | None = None) -> None:
    """Trace ``model`` with torch.export (dynamo) into ``path``; batch and sequence axes are dynamic."""
    require("onnxscript")
    names = model_input_names(model)
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    # a BERT student of an MPNet teacher takes token types its tokenizer never makes: zeros
    kwargs = {k: example[k] if k in example else torch.zeros_like(example["input_ids"]) for k in names}
    shapes = {k: {0: batch, 1: seq} for k in names}
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _quiet(), torch.no_grad():
            program = torch.onnx.export(
                _Logits(model).eval(),
                (),
                kwargs=kwargs,
                dynamo=True,
                dynamic_shapes=shapes,
                input_names=names,
                output_names=["logits"],
                opset_version=opset,
                external_data=False,
                verbose=False,
            )
            program.save(str(path))
    except TinyDistillError:
        raise
    except Exception as exc:  # exporter failures come in many types
        raise TinyDistillError(
            f"ONNX export failed: {type(exc).__name__}: {str(exc).splitlines()[0]}"
        ) from exc


def optimize_graph(path: Path, config: Any) -> dict[str, int]:
    """onnxruntime's transformer fusions (LayerNorm, Gelu, SkipLayerNorm, ...) in place; fused op counts."""
    require("onnxruntime")
    from onnxruntime.transformers import optimizer

    with _quiet():
        opt = optimizer.optimize_model(
            str(path),
            model_type="bert",
            num_heads=int(getattr(config, "num_attention_heads", 0) or 0),
            hidden_size=int(getattr(config, "hidden_size", 0) or 0),
            opt_level=0,
        )
        opt.save_model_to_file(str(path))
        stats = opt.get_fused_operator_statistics()
    return {k: int(v) for k, v in stats.items() if v}


def quantize_file(src: Path, dst: Path, weight_type: str = "qint8", per_channel: bool = False) -> None:
    """Dynamic int8 quantization (weights int8 offline, activations quantized at run time)."""
    require("onnxruntime")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if weight_type not in WEIGHT_TYPES:
        raise TinyDistillError(f"unknown weight type {weight_type!r} (expected {' or '.join(WEIGHT_TYPES)})")
    onnx = require("onnx")
    wtype = QuantType.QInt8 if weight_type == "qint8" else QuantType.QUInt8
    dst.parent.mkdir(parents=True, exist_ok=True)
    # The exporter's intermediate shape annotations trip the quantizer's shape inference: drop them.
    model = onnx.load(str(src))
    del model.graph.value_info[:]
    tmp = dst.with_name(dst.stem + ".noshape.onnx")
    onnx.save(model, str(tmp))
    try:
        with _quiet():
            quantize_dynamic(
                str(tmp),
                str(dst),
                weight_type=wtype,
                per_channel=per_channel,
                extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT},
            )
    finally:
        tmp.unlink(missing_ok=True)


def check_batches(model: nn.Module, tokenizer, texts_a, texts_b, max_length: int = 128):
    """Inputs to compare on: all samples padded together, then the first alone (another length)."""
    if tokenizer is None:
        vocab = int(model.config.vocab_size)
        return [random_batch(vocab, 3, 17, seed=1), random_batch(vocab, 1, 40, seed=2)]
    one_b = texts_b[:1] if texts_b is not None else None
    return [
        encode(tokenizer, texts_a, texts_b, max_length),
        encode(tokenizer, texts_a[:1], one_b, max_length),
    ]


@torch.no_grad()
def compare(model: nn.Module, onnx_path: Path, batches: list[dict[str, np.ndarray]], threads: int | None):
    """Max |onnx - torch| over all logits and the share of rows whose argmax agrees."""
    session = ort_session(onnx_path, threads)
    names = [i.name for i in session.get_inputs()]
    diff, agree, total = 0.0, 0, 0
    for batch in batches:
        arrays = feed(batch, names)
        got = session.run(None, arrays)[0]
        ref = model(**{k: torch.from_numpy(v) for k, v in arrays.items()}).logits.float().numpy()
        diff = max(diff, float(np.abs(got - ref).max()))
        agree += int((got.argmax(-1) == ref.argmax(-1)).sum()) if ref.shape[-1] > 1 else len(ref)
        total += len(ref)
    return diff, agree / max(total, 1), total


def _size_mb(path: Path) -> float:
    return round(path.stat().st_size / 2**20, 2)


def export_model(
    model_dir: str | Path,
    output: str | Path,
    quantize: str | None = None,
    optimize: bool = False,
    task: str | None = None,
    data_dir: str | None = None,
    atol: float = DEFAULT_ATOL,
    threads: int | None = None,
    weight_type: str = "qint8",
    per_channel: bool = False,
    opset: int | None = None,
    fmt: str = "onnx",
    allow_new_head: bool = False,
) -> dict[str, Any]:
    """Export ``model_dir`` into ``output`` (model.onnx [+ model.int8.onnx]); returns the check results."""
    if fmt != "onnx":
        raise TinyDistillError(f"unsupported export format {fmt!r} (only 'onnx')")
    if quantize not in (None, "int8"):
        raise TinyDistillError(f"unsupported quantization {quantize!r} (only 'int8')")
    model, path = load_for_export(model_dir)
    refuse_new_head(model, str(model_dir), allow_new_head, "")
    tokenizer = load_tokenizer_from(path)
    texts_a, texts_b, inputs_from = sample_texts(task, data_dir)
    if tokenizer is None:
        inputs_from = "random token ids (no tokenizer in the model dir)"
    batches = check_batches(model, tokenizer, texts_a, texts_b)
    example = {k: torch.from_numpy(v) for k, v in batches[0].items()}
    out = mark(output, "export")
    onnx_path = out / ONNX_FILE
    to_onnx(model, example, onnx_path, opset)
    report: dict[str, Any] = {"source": str(path.resolve()), "inputs_from": inputs_from, "atol": atol}
    fused: dict[str, int] = {}
    if optimize:
        try:
            fused = optimize_graph(onnx_path, model.config)
        except Exception as exc:  # fusions are an optimisation only: keep the plain graph
            warnings.warn(f"onnxruntime transformer optimizer skipped: {exc}", stacklevel=2)
            to_onnx(model, example, onnx_path, opset)
    diff, agree, n = compare(model, onnx_path, batches, threads)
    report["onnx"] = {
        "file": ONNX_FILE,
        "size_mb": _size_mb(onnx_path),
        "max_abs_diff": diff,
        "agreement": agree,
        "n_inputs": n,
        "fused_ops": fused,
    }
    if not np.isfinite(diff) or diff > atol:
        bad = onnx_path.with_suffix(".mismatch.onnx")
        onnx_path.replace(bad)
        raise TinyDistillError(
            f"ONNX export does not match PyTorch: max abs logit difference {diff:.3g} > tolerance {atol:g} "
            f"(on {n} inputs from {inputs_from}; graph kept as {bad} for inspection)"
        )
    if quantize == "int8":
        int8_path = out / INT8_FILE
        quantize_file(onnx_path, int8_path, weight_type, per_channel)
        diff8, agree8, _ = compare(model, int8_path, batches, threads)
        report["onnx_int8"] = {
            "file": INT8_FILE,
            "size_mb": _size_mb(int8_path),
            "max_abs_diff": diff8,
            "agreement": agree8,
            "n_inputs": n,
            "weight_type": weight_type,
            "per_channel": per_channel,
        }
    if out.resolve() != path.resolve():
        if tokenizer is not None:
            tokenizer.save_pretrained(str(out))
        model.config.save_pretrained(str(out))
    (out / EXPORT_META).write_text(json.dumps(report, indent=2))
    return report
