"""A runner for any model path, exporting an HF dir to the ONNX cache when an ONNX backend wants it.

Above both :mod:`tinydistill.deploy.runtime` (runners) and :mod:`tinydistill.deploy.export`
(export, quantization), so neither imports the other's caller.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from tinydistill.deploy.cache import onnx_cache
from tinydistill.deploy.export import export_model, quantize_file
from tinydistill.deploy.runtime import (
    BACKENDS,
    INT8_FILE,
    ONNX_FILE,
    OnnxRunner,
    Runner,
    Source,
    TorchRunner,
    resolve_source,
)
from tinydistill.errors import TinyDistillError


def _cache_key(hf_dir: Path) -> str:
    files = sorted(
        f for f in hf_dir.iterdir() if f.is_file() and f.suffix in {".safetensors", ".bin", ".json"}
    )
    stamp = [str(hf_dir.resolve())] + [f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files]
    return hashlib.sha1("|".join(stamp).encode()).hexdigest()[:16]


def ensure_onnx(
    src: Source, int8: bool, cache_dir: str | os.PathLike | None = None, **export_kw: Any
) -> Path:
    """The fp32 or int8 ONNX file of a source, exporting / quantizing into the cache when missing."""
    have = src.onnx_int8 if int8 else src.onnx
    if have is not None:
        return have
    if int8 and src.onnx is not None:
        st = src.onnx.stat()
        stamp = f"{src.onnx.resolve()}:{st.st_size}:{st.st_mtime_ns}"
        out = onnx_cache(cache_dir) / hashlib.sha1(stamp.encode()).hexdigest()[:16]
        target = out / INT8_FILE
        if not target.is_file():
            out.mkdir(parents=True, exist_ok=True)
            quantize_file(src.onnx, target)
        return target
    if src.hf_dir is None:
        raise TinyDistillError(f"{src.given}: no PyTorch weights to export an ONNX model from")
    out = onnx_cache(cache_dir) / _cache_key(src.hf_dir)
    if not (out / ONNX_FILE).is_file():
        export_model(src.hf_dir, out, quantize="int8" if int8 else None, **export_kw)
    if int8 and not (out / INT8_FILE).is_file():
        quantize_file(out / ONNX_FILE, out / INT8_FILE)
    return out / (INT8_FILE if int8 else ONNX_FILE)


def load_runner(
    path: str | os.PathLike,
    backend: str = "auto",
    name: str | None = None,
    threads: int | None = None,
    device: str = "cpu",
    cache_dir: str | os.PathLike | None = None,
    spinning: bool = True,
) -> Runner:
    """A runner for ``path``; ``auto`` picks torch for HF dirs, else the export's fp32 (or int8) graph."""
    src = resolve_source(path)
    name = name or Path(src.given).name
    if backend == "auto":
        backend = "torch" if src.hf_dir is not None and src.hf_dir == src.meta_dir else "onnx"
        if backend == "onnx" and src.onnx is None:
            backend = "onnx-int8" if src.onnx_int8 is not None else "torch"
    if backend == "torch":
        return TorchRunner(name, src, device)
    if backend not in BACKENDS:
        raise TinyDistillError(
            f"unknown backend {backend!r} (expected auto or one of: {', '.join(BACKENDS)})"
        )
    onnx_path = ensure_onnx(src, backend == "onnx-int8", cache_dir, threads=threads)
    return OnnxRunner(name, src, onnx_path, backend, threads, device, spinning)
