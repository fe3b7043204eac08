"""The deploy helpers every caller shares, without onnx / onnxruntime: inputs, cache dir, timer, tables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinydistill.deploy import table, timing
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


def test_cells_ratios_marks_and_layout() -> None:
    assert table.ratio(2.06) == "2.1x" and table.ratio(None) == "-"
    assert table.num(3.14159) == "3.14" and table.num(None, ".1f") == "-"
    assert table.label("s", degenerate=True) == "s (DEGENERATE)" and table.label("t") == "t"
    assert table.human_count(14_400_000) == "14.4M" and table.human_count(312_000) == "312.0K"
    assert table.percents({"dev": {"accuracy": 0.5}}) == ["50.00"]
    assert table.percents({"m": {"accuracy": 0.5}, "mm": {"accuracy": 0.25}}) == ["50.00", "25.00"]
    assert table.markdown(["a", "b"], [["1", "2"]]) == "| a | b |\n|---|---|\n| 1 | 2 |\n"


def test_pipeline_table_ratios_against_the_teacher() -> None:
    rows = {
        "teacher": {"dev": {"dev": {"accuracy": 0.9}}, "params": 22_700_000, "size_mb": 86.7,
                    "latency_ms": 12.0},
        "student": {"dev": {"dev": {"accuracy": 0.85}}, "params": 4_400_000, "size_mb": 16.8,
                    "latency_ms": 1.5, "degenerate": False},
    }  # fmt: skip
    text = table.pipeline_table("SST-2", rows, seq_len=64)
    assert text.startswith("### SST-2: teacher vs student (dev metrics in %)\n\n| model | accuracy |")
    assert "CPU latency ms (b=1, len=64)" in text
    assert "| student | 85.00 | 4.4M | 16.8 | 1.50 | 5.2x | 8.0x |" in text


def test_bench_table() -> None:
    row = {"model": "s", "backend": "onnx-int8", "device": "cpu", "params": 400_000, "size_mb": 0.0,
           "latency_ms": {"1": {"p50": 1.0, "p95": 1.5}, "8": {"p50": 4.0, "p95": 5.0}},
           "throughput": {"1": 1000.0, "8": 2000.0},
           "ratios": {"speedup": 10.0, "throughput": 4.0, "params": 56.75, "size": None}}  # fmt: skip
    result = {"meta": {"batch_sizes": [1, 8], "seq_len": 128, "threads": 2}, "rows": [row]}
    text = table.bench_table(result)
    assert text.startswith("seq len 128, 2 CPU threads; ratios vs the first row\n\n| model | backend |")
    assert "| s | onnx-int8 | cpu | 400.0K | 0.0 | 1.00 | 1.50 | 2000.0 | 10.0x | 4.0x | 56.8x | - |" in text


def test_report_table_with_missing_values() -> None:
    row = {"task": "MRPC", "model": "s", "degenerate": True, "role": "student", "teacher": None,
           "metric": "f1", "score": 0.5, "retention": None, "params": None, "params_ratio": None,
           "latency_ms": 2.0, "speedup": 4.0}  # fmt: skip
    assert "| MRPC | s (DEGENERATE) | student of ? | f1 | 50.00 | - | - | - | 2.00 | 4.0x |" in (
        table.report_table([row])
    )
