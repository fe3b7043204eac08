"""Load a model for inference: an HF dir (PyTorch), an export dir or a ``.onnx`` file (onnxruntime).

A :class:`Runner` hides the backend: it takes numpy token arrays and returns numpy logits, and knows
its tokenizer, labels, parameter count and size on disk. ONNX backends given an HF dir export it on
the fly into the ONNX cache (:func:`tinydistill.deploy.cache.onnx_cache`), keyed by the weights.
"""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinydistill.deploy.inputs import TOKEN_INPUTS, feed, model_input_names
from tinydistill.errors import TinyDistillError
from tinydistill.models.load import LOAD_ERRORS, new_head, resolve_model_path

BACKENDS = ("torch", "onnx", "onnx-int8")
ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
EXPORT_META = "export.json"


def require(module: str) -> Any:
    """Import an optional dependency or explain how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise TinyDistillError(
            f"'{module}' is not installed: pip install 'tinydistill[deploy]' "
            "(onnx, onnxruntime, onnxscript, matplotlib)"
        ) from None


def parse_backends(value: str | list[str] | tuple[str, ...]) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value)
    out = [b.strip().lower() for b in items if b.strip()]
    for b in out:
        if b not in BACKENDS:
            raise TinyDistillError(f"unknown backend {b!r} (expected one of: {', '.join(BACKENDS)})")
    if not out:
        raise TinyDistillError("no backend given")
    return out


def size_on_disk(path: str | Path) -> int:
    """Bytes of the weight files (safetensors, bin, onnx, onnx data) at ``path``, a file or a dir."""
    path = Path(path)
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files if p.suffix in {".safetensors", ".bin", ".onnx", ".data"})


def _has_weights(path: Path) -> bool:
    return any(path.glob("*.safetensors")) or any(path.glob("*.bin"))


def is_quantized(onnx_path: Path) -> bool:
    """True when the graph holds dynamic-quantization ops (an int8 export)."""
    onnx = require("onnx")
    model = onnx.load(str(onnx_path), load_external_data=False)
    ops = {n.op_type for n in model.graph.node}
    return bool(ops & {"DynamicQuantizeLinear", "MatMulInteger", "DynamicQuantizeMatMul", "QAttention"})


@dataclass
class Source:
    """What a user-given model path holds."""

    given: str
    meta_dir: Path  # tokenizer + config.json
    hf_dir: Path | None = None
    onnx: Path | None = None
    onnx_int8: Path | None = None


def _export_source(meta_dir: Path) -> Path | None:
    meta = meta_dir / EXPORT_META
    if not meta.is_file():
        return None
    src = json.loads(meta.read_text()).get("source")
    return Path(src) if src and Path(src).is_dir() and _has_weights(Path(src)) else None


def resolve_source(path: str | os.PathLike) -> Source:
    """Classify a model path: HF weights dir, export dir (model.onnx [+ model.int8.onnx]) or .onnx file."""
    given = str(path)
    p = Path(resolve_model_path(given))
    if not p.exists():
        raise TinyDistillError(f"model not found: {given}")
    if p.is_file():
        if p.suffix != ".onnx":
            raise TinyDistillError(f"{given}: expected a model dir or a .onnx file")
        src = Source(given, p.parent, hf_dir=_export_source(p.parent))
        if is_quantized(p):
            src.onnx_int8 = p
        else:
            src.onnx = p
        return src
    src = Source(given, p, hf_dir=p if _has_weights(p) else _export_source(p))
    if (p / ONNX_FILE).is_file():
        src.onnx = p / ONNX_FILE
    if (p / INT8_FILE).is_file():
        src.onnx_int8 = p / INT8_FILE
    if src.hf_dir is None and src.onnx is None and src.onnx_int8 is None:
        raise TinyDistillError(f"{given}: no model found (expected HF weights *.safetensors or {ONNX_FILE})")
    return src


def has_tokenizer(path: Path) -> bool:
    return any((path / f).exists() for f in ("tokenizer.json", "vocab.txt", "tokenizer_config.json"))


def load_tokenizer_from(meta_dir: Path):
    """The tokenizer saved in ``meta_dir``, or None when there is none."""
    from transformers import AutoTokenizer

    if not has_tokenizer(meta_dir):
        return None
    try:
        return AutoTokenizer.from_pretrained(str(meta_dir))
    except LOAD_ERRORS as exc:
        raise TinyDistillError(
            f"cannot load the tokenizer in {meta_dir}: {str(exc).splitlines()[0]}"
        ) from exc


def _labels(config: dict[str, Any], num_outputs: int) -> list[str]:
    id2label = config.get("id2label") or {}
    names = [str(id2label[k]) for k in sorted(id2label, key=int)] if id2label else []
    return names if len(names) == num_outputs else [f"LABEL_{i}" for i in range(num_outputs)]


class Runner:
    """One model on one backend and device: numpy token arrays in, numpy logits out."""

    name: str
    backend: str
    device: str
    path: str
    source: str | None
    input_names: list[str]
    config: dict[str, Any]
    params: int
    size_bytes: int

    def __init__(self, name: str, src: Source, backend: str, device: str) -> None:
        self.name, self.backend, self.device, self.path = name, backend, device, src.given
        self.source = str(src.hf_dir.resolve()) if src.hf_dir is not None else None  # the HF weights dir
        cfg_file = src.meta_dir / "config.json"
        self.config = json.loads(cfg_file.read_text()) if cfg_file.is_file() else {}
        self._tokenizer: Any = None
        # an export dir without tokenizer files may still point at its source HF dir
        use_hf = not has_tokenizer(src.meta_dir) and src.hf_dir is not None
        self._meta_dir = src.hf_dir if use_hf else src.meta_dir

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer_from(self._meta_dir)
            if self._tokenizer is None:
                raise TinyDistillError(f"{self.path}: no tokenizer files beside the model")
        return self._tokenizer

    @property
    def num_outputs(self) -> int:
        return int(self.config.get("num_labels") or len(self.config.get("id2label") or {}) or 2)

    @property
    def labels(self) -> list[str]:
        return _labels(self.config, self.num_outputs)

    @property
    def is_regression(self) -> bool:
        return self.num_outputs == 1 or self.config.get("problem_type") == "regression"

    @property
    def vocab_size(self) -> int:
        return int(self.config.get("vocab_size") or 1000)

    @property
    def max_length(self) -> int:
        """Longest sequence the position embeddings allow (512 when unknown)."""
        limit = int(self.config.get("max_position_embeddings") or 512)
        return limit - 2 if self.config.get("model_type") in ("roberta", "mpnet", "xlm-roberta") else limit

    def feed(self, batch: dict[str, Any]) -> dict[str, np.ndarray]:
        """The arrays this model takes, as int64."""
        return feed(batch, self.input_names)

    def __call__(self, batch: dict[str, Any]) -> np.ndarray:
        raise NotImplementedError


class TorchRunner(Runner):
    def __init__(self, name: str, src: Source, device: str = "cpu") -> None:
        from transformers import AutoModelForSequenceClassification

        super().__init__(name, src, "torch", device)
        if src.hf_dir is None:
            raise TinyDistillError(f"{src.given}: no PyTorch weights (*.safetensors) for the torch backend")
        try:
            model, info = AutoModelForSequenceClassification.from_pretrained(
                str(src.hf_dir), output_loading_info=True
            )
        except LOAD_ERRORS as exc:
            raise TinyDistillError(f"cannot load model '{src.given}': {str(exc).splitlines()[0]}") from exc
        model.tinydistill_new_head = new_head(model, info)
        self.model = model.to(device).eval()
        self.config = {**self.config, **model.config.to_dict()}
        self.input_names = model_input_names(model)
        self.params = sum(p.numel() for p in model.parameters())
        self.size_bytes = size_on_disk(src.hf_dir)

    @torch.inference_mode()
    def __call__(self, batch: dict[str, Any]) -> np.ndarray:
        inputs = {k: torch.from_numpy(v).to(self.device) for k, v in self.feed(batch).items()}
        logits = self.model(**inputs).logits.float()
        if self.device != "cpu":
            torch.cuda.synchronize()
        return logits.cpu().numpy()


def onnx_params(path: Path) -> int:
    """Number of weight values stored in an ONNX graph (initializers)."""
    onnx = require("onnx")
    model = onnx.load(str(path), load_external_data=False)
    return int(sum(int(np.prod(t.dims)) if t.dims else 1 for t in model.graph.initializer))


def ort_session(path: Path, threads: int | None = None, device: str = "cpu", spinning: bool = True):
    """An onnxruntime session. ``spinning=False`` makes idle worker threads sleep at once instead of
    busy-waiting, which interleaved benchmarks need (else one model's spinning threads slow the next)."""
    ort = require("onnxruntime")
    opts = ort.SessionOptions()
    if not spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise TinyDistillError("onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)")
        providers.insert(0, "CUDAExecutionProvider")
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        raise TinyDistillError(f"cannot load ONNX model {path}: {str(exc).splitlines()[0]}") from exc


class OnnxRunner(Runner):
    def __init__(
        self,
        name: str,
        src: Source,
        onnx_path: Path,
        backend: str,
        threads: int | None,
        device: str = "cpu",
        spinning: bool = True,
    ) -> None:
        super().__init__(name, src, backend, device)
        self.onnx_path = onnx_path
        self.session = ort_session(onnx_path, threads, device, spinning)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.params = onnx_params(onnx_path)
        data = onnx_path.with_name(onnx_path.name + ".data")
        self.size_bytes = onnx_path.stat().st_size + (data.stat().st_size if data.exists() else 0)
        if not self.config:
            self.config = {"num_labels": int(self.session.get_outputs()[0].shape[-1])}

    def __call__(self, batch: dict[str, Any]) -> np.ndarray:
        return self.session.run(None, self.feed(batch))[0]


def encode(
    tokenizer, texts_a: list[str], texts_b: list[str] | None, max_length: int
) -> dict[str, np.ndarray]:
    """Tokenize a batch, padded to its longest row, as numpy int64 arrays."""
    enc = tokenizer(
        texts_a, texts_b, truncation=True, max_length=max_length, padding="longest", return_tensors="np"
    )
    return {k: np.asarray(v, dtype=np.int64) for k, v in enc.items() if k in TOKEN_INPUTS}


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
