"""The one latency timer: runners timed interleaved, so every model sees the same machine state.

Every runner is warmed up, then timed round-robin (repeat r runs each model once before repeat r+1
starts). Calls are separated by a short untimed pause, so that one model's busy-waiting worker
threads (onnxruntime) do not steal the cores of the next one. Runners synchronise CUDA themselves.
A progress bar counts the rounds (updated between rounds, outside the timed calls).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from tinydistill.deploy.runtime import Runner

PAUSE_S = 0.01  # between interleaved calls (untimed)


def random_batch(vocab_size: int, batch: int, seq_len: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Token ids drawn from the upper vocabulary (past the special tokens), full attention mask."""
    rng = np.random.default_rng(seed)
    low = min(1000, vocab_size // 2)
    ids = rng.integers(low, max(low + 1, vocab_size), size=(batch, seq_len), dtype=np.int64)
    return {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}


def time_runners(
    runners: Sequence[Runner],
    batch: int,
    seq_len: int,
    warmup: int = 3,
    repeats: int = 20,
    pause_s: float = PAUSE_S,
) -> list[list[float]]:
    """Milliseconds per forward of each runner on random tokens, ``seq_len`` capped at its longest."""
    from tinydistill.progress import progress_bar

    inputs = [random_batch(r.vocab_size, batch, min(seq_len, r.max_length)) for r in runners]
    bar = progress_bar(warmup + repeats, f"latency b={batch}", unit="round")
    for _ in range(warmup):
        for r, x in zip(runners, inputs, strict=True):
            r(x)
        bar.update()
    times: list[list[float]] = [[] for _ in runners]
    for _ in range(repeats):
        for i, (r, x) in enumerate(zip(runners, inputs, strict=True)):
            if pause_s and len(runners) > 1:
                time.sleep(pause_s)
            start = time.perf_counter()
            r(x)
            times[i].append((time.perf_counter() - start) * 1000)
        bar.update()  # between rounds: never inside a timed call
    bar.close()
    return times


def p50_p95(times: Sequence[float]) -> tuple[float, float]:
    """Median and 95th percentile of a list of timings."""
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))
