"""Size and CPU/GPU latency of a classifier, measured interleaved so models see the same machine state."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tinydistill.models.capture import model_inputs


def size_on_disk(path: str | Path) -> int:
    path = Path(path)
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files if p.suffix in {".safetensors", ".bin", ".onnx", ".data"})


def random_batch(vocab_size: int, batch: int, seq_len: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Token ids drawn from the upper vocabulary (past the special tokens), full attention mask."""
    rng = np.random.default_rng(seed)
    low = min(1000, vocab_size // 2)
    ids = rng.integers(low, max(low + 1, vocab_size), size=(batch, seq_len), dtype=np.int64)
    return {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}


@torch.inference_mode()
def latency_ms(
    models: dict[str, nn.Module],
    batch: int = 1,
    seq_len: int = 128,
    warmup: int = 3,
    repeats: int = 20,
) -> dict[str, dict[str, float]]:
    """p50/p95 milliseconds per forward for each model, runs interleaved round-robin after warm-up."""
    inputs = {}
    for name, model in models.items():
        model.eval()
        device = next(model.parameters()).device
        length = min(seq_len, model.config.max_position_embeddings)
        raw = {
            k: torch.from_numpy(v) for k, v in random_batch(model.config.vocab_size, batch, length).items()
        }
        inputs[name] = {k: v.to(device) for k, v in model_inputs(model, raw).items()}
    for _ in range(warmup):
        for name, model in models.items():
            model(**inputs[name])
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(repeats):
        for name, model in models.items():
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(**inputs[name])
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times[name].append((time.perf_counter() - start) * 1000)
    return {
        name: {"p50_ms": float(np.percentile(t, 50)), "p95_ms": float(np.percentile(t, 95))}
        for name, t in times.items()
    }
