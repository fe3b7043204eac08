"""The deploy helpers every caller shares, without onnx / onnxruntime: inputs and the cache dir."""

from __future__ import annotations

import numpy as np
import pytest

from tinydistill.deploy.cache import cache_home, onnx_cache
from tinydistill.deploy.inputs import feed
from tinydistill.models import packaged


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
