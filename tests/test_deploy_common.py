"""The deploy helpers every caller shares, without onnx / onnxruntime: inputs, cache dir, timer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinydistill.deploy import timing
from tinydistill.deploy.cache import cache_home, onnx_cache
from tinydistill.deploy.inputs import feed
from tinydistill.models import packaged

SRC = Path(__file__).resolve().parents[1] / "src"


def test_torch_side_imports_without_onnx() -> None:
    """pipeline and the bench / report / table modules import with onnx and onnxruntime missing."""
    code = (
        "import sys\n"
        "for m in ('onnx', 'onnxruntime', 'onnxscript', 'matplotlib'): sys.modules[m] = None\n"
        "import tinydistill.pipeline, tinydistill.deploy.bench, tinydistill.deploy.report\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_feed_keeps_named_arrays_as_int64_and_zero_fills_token_types() -> None:
    batch = {"input_ids": [[5, 6, 7]], "attention_mask": np.ones((1, 3), dtype=np.int32), "labels": [1]}
    out = feed(batch, ["input_ids", "attention_mask", "token_type_ids"])
    assert list(out) == ["input_ids", "attention_mask", "token_type_ids"]
    assert all(v.dtype == np.int64 and v.shape == (1, 3) for v in out.values())
    assert out["token_type_ids"].sum() == 0 and out["input_ids"].tolist() == [[5, 6, 7]]
    assert list(feed(batch, ["input_ids", "attention_mask"])) == ["input_ids", "attention_mask"]


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("TINYDISTILL_CACHE", raising=False)
    return tmp_path


def test_cache_home_default_env_and_tilde(home, monkeypatch) -> None:
    assert cache_home() == home / ".cache" / "tinydistill"
    assert onnx_cache() == home / ".cache" / "tinydistill" / "onnx"
    assert onnx_cache(home / "mine") == home / "mine"
    monkeypatch.setenv("TINYDISTILL_CACHE", "~/elsewhere")
    assert cache_home() == home / "elsewhere" and onnx_cache() == home / "elsewhere" / "onnx"


def test_packaged_models_unpack_into_the_same_cache(home) -> None:
    target = home / ".cache" / "tinydistill" / "all-mpnet-base-v2"
    target.mkdir(parents=True)
    (target / "model.safetensors").write_bytes(b"")
    assert packaged.packaged_model("all-mpnet-base-v2") == target  # found, not unpacked again


class FakeRunner:
    """Records (name, sequence length) per call into a shared log."""

    def __init__(self, name: str, log: list, max_length: int = 512) -> None:
        self.name, self.log, self.vocab_size, self.max_length = name, log, 50, max_length

    def __call__(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        self.log.append((self.name, batch["input_ids"].shape))
        return np.zeros((len(batch["input_ids"]), 2))


def test_time_runners_interleaves_after_warmup_and_caps_the_length() -> None:
    log: list = []
    runners = [FakeRunner("a", log), FakeRunner("b", log, max_length=16)]
    times = timing.time_runners(runners, batch=2, seq_len=32, warmup=2, repeats=3, pause_s=0)
    assert [name for name, _ in log] == ["a", "b"] * 5  # 2 warm-up + 3 timed rounds, round-robin
    assert {shape for name, shape in log if name == "a"} == {(2, 32)}
    assert {shape for name, shape in log if name == "b"} == {(2, 16)}
    assert len(times) == 2 and all(len(t) == 3 and min(t) >= 0 for t in times)


def test_p50_p95_and_random_batch() -> None:
    assert timing.p50_p95([1.0, 2.0, 3.0, 4.0, 100.0]) == (3.0, pytest.approx(80.8))
    x = timing.random_batch(vocab_size=3000, batch=2, seq_len=7, seed=1)
    assert x["input_ids"].shape == (2, 7) and x["input_ids"].min() >= 1000  # past the special tokens
    assert x["attention_mask"].all() and not x["token_type_ids"].any()
