"""Side-by-side benchmark: size, batch-1 latency and batched throughput of models x backends x devices.

All runners are loaded first; then, per batch size, they are timed interleaved by
:func:`~tinydistill.deploy.timing.time_runners` (onnxruntime sessions run without thread spinning).
Ratios are taken against the first row (the first model on the first backend).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from tinydistill.deploy.runners import load_runner
from tinydistill.deploy.runtime import Runner, parse_backends
from tinydistill.deploy.timing import p50_p95, time_runners
from tinydistill.errors import TinyDistillError


def parse_ints(value: str | list[int] | tuple[int, ...], flag: str = "--batch-sizes") -> list[int]:
    items = value.split(",") if isinstance(value, str) else list(value)
    try:
        out = [int(str(v).strip()) for v in items if str(v).strip()]
    except ValueError:
        raise TinyDistillError(f"{flag}: expected comma-separated integers, got {value!r}") from None
    if not out or any(v <= 0 for v in out):
        raise TinyDistillError(f"{flag}: expected positive integers, got {value!r}")
    return out


def pick_devices(device: str = "auto") -> list[str]:
    """``auto``: CPU, plus CUDA when present; else a comma list of cpu / cuda."""
    if device == "auto":
        return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    out = [d.strip() for d in device.split(",") if d.strip()]
    for d in out:
        if d not in ("cpu", "cuda"):
            raise TinyDistillError(f"unknown device {d!r} (expected auto, cpu or cuda)")
        if d == "cuda" and not torch.cuda.is_available():
            raise TinyDistillError("--device cuda: no CUDA device is available")
    return out


def _names(models: list[str], names: list[str] | None) -> list[str]:
    if names:
        if len(names) != len(models):
            raise TinyDistillError(f"--names: {len(names)} names for {len(models)} models")
        return names
    base = [Path(m).name or m for m in models]
    if len(set(base)) == len(base):
        return base
    return ["/".join(Path(m).parts[-2:]) for m in models]


def _repeats(repeats: int, batch: int) -> int:
    """Fewer timed repeats for big batches (each takes longer), never fewer than 3."""
    return max(3, math.ceil(repeats / math.sqrt(batch)))


def bench(
    models: list[str],
    backends: str | list[str] = "torch",
    batch_sizes: str | list[int] = (1, 32),
    seq_len: int = 128,
    threads: int | None = None,
    warmup: int = 3,
    repeats: int = 20,
    device: str = "auto",
    names: list[str] | None = None,
    task: str | None = None,
    data_dir: str | None = None,
    max_eval_samples: int | None = None,
    cache_dir: str | None = None,
) -> dict[str, Any]:
    """Rows of parameters, size, latency and throughput (+ dev metric with ``task``) with ratios."""
    if not models:
        raise TinyDistillError("no models to benchmark (--models A B ...)")
    backend_list = parse_backends(backends)
    sizes = parse_ints(batch_sizes)
    if seq_len <= 0:
        raise TinyDistillError(f"--seq-len must be positive, got {seq_len}")
    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    runners: list[Runner] = []
    for dev in pick_devices(device):
        for path, name in zip(models, _names(models, names), strict=True):
            for backend in backend_list:
                if dev == "cuda" and backend != "torch":
                    import onnxruntime as ort

                    if "CUDAExecutionProvider" not in ort.get_available_providers():
                        continue  # CPU-only onnxruntime: no ONNX rows on CUDA
                runners.append(load_runner(path, backend, name, threads, dev, cache_dir, spinning=False))
    for r in runners:
        if seq_len > r.max_length:
            raise TinyDistillError(f"--seq-len {seq_len} is longer than {r.name} supports ({r.max_length})")
    rows = [
        {
            "model": r.name,
            "path": str(r.path),
            "source": r.source,
            "backend": r.backend,
            "device": r.device,
            "params": int(r.params),
            "size_mb": round(r.size_bytes / 2**20, 2),
            "latency_ms": {},
            "throughput": {},
        }
        for r in runners
    ]
    for bs in sizes:
        times = time_runners(runners, bs, seq_len, warmup, _repeats(repeats, bs))
        for row, t in zip(rows, times, strict=True):
            p50, p95 = p50_p95(t)
            row["latency_ms"][str(bs)] = {"p50": round(p50, 3), "p95": round(p95, 3)}
            row["throughput"][str(bs)] = round(bs * 1000 / p50, 1)
    if task:
        from tinydistill.deploy.predict import evaluate_runner

        for row, r in zip(rows, runners, strict=True):
            row["dev"] = evaluate_runner(r, task, data_dir, max_eval_samples=max_eval_samples)
    add_ratios(rows, sizes)
    meta = {
        "seq_len": seq_len,
        "batch_sizes": sizes,
        "threads": threads,
        "warmup": warmup,
        "repeats": {str(bs): _repeats(repeats, bs) for bs in sizes},
        "task": task,
        "torch": torch.__version__,
        "onnxruntime": _ort_version(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return {"meta": meta, "rows": rows}


def _ort_version() -> str | None:
    try:
        import onnxruntime

        return onnxruntime.__version__
    except ImportError:
        return None


def add_ratios(rows: list[dict[str, Any]], sizes: list[int]) -> None:
    """Speed-up, throughput, params and size ratios of every row against the first one."""
    base = rows[0]
    lat_bs, thr_bs = str(sizes[0]), str(sizes[-1])
    for row in rows:
        row["ratios"] = {
            "speedup": round(base["latency_ms"][lat_bs]["p50"] / row["latency_ms"][lat_bs]["p50"], 2),
            "throughput": round(row["throughput"][thr_bs] / base["throughput"][thr_bs], 2),
            "params": round(base["params"] / row["params"], 2),
            "size": round(base["size_mb"] / row["size_mb"], 2) if row["size_mb"] else None,
        }


def write_json(result: dict[str, Any], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
