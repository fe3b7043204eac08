"""Teacher logits computed once per training row, so a stage that only needs them runs the student alone.

A stage whose active terms read nothing of the teacher but its logits (TinyBERT's prediction step,
Hinton KD, soft/hard cross-entropy) does not need a teacher forward per step: the teacher is frozen
and the rows are fixed, so its logits are the same every epoch. They are computed before the loop in
large length-sorted batches (little padding) in inference mode, and the loop looks them up by the
row index the batch carries. In fp32 the cached logits equal the per-step ones up to float
summation order (batches of other shapes).

They are also kept on disk, ``<cache home>/teacher-logits/<key>.safetensors`` (a few bytes per row),
the key hashing the teacher's weights, every row's token ids and the precision: another run on the
same teacher and rows (seeds, starts, a second recipe on augmented rows, where the teacher pass is
the larger part of the run) reads them instead of running the teacher again.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tinydistill.deploy.cache import cache_home
from tinydistill.deploy.inputs import model_inputs
from tinydistill.losses.reps import Reps
from tinydistill.progress import progress
from tinydistill.training.state_cache import fingerprint

# terms that read the teacher's logits and nothing else of it (hard_ce reads none)
LOGIT_TERMS = frozenset({"prediction", "soft_ce", "kd", "hard_ce"})


def logits_only(terms: Collection[str]) -> bool:
    """Whether a stage with these active terms can train on cached teacher logits."""
    return bool(terms) and set(terms) <= LOGIT_TERMS


@torch.inference_mode()
def teacher_logits(
    teacher: nn.Module,
    dataset: Any,
    collate: Callable[[list], dict],
    device: torch.device,
    batch_size: int = 128,
) -> torch.Tensor:
    """(N, C) float32 logits of every row of ``dataset``, computed in length-sorted batches."""
    order = sorted(range(len(dataset)), key=lambda i: len(dataset[i]["input_ids"]))
    out = torch.empty(len(dataset), teacher.config.num_labels)
    teacher.eval()
    starts = range(0, len(order), batch_size)
    for start in progress(starts, len(starts), "teacher logits"):
        rows = order[start : start + batch_size]
        batch = {k: v.to(device) for k, v in collate([dataset[i] for i in rows]).items()}
        out[rows] = teacher(**model_inputs(teacher, batch)).logits.float().cpu()
    return out


def stored_teacher_logits(
    teacher: nn.Module,
    dataset: Any,
    collate: Callable[[list], dict],
    device: torch.device,
    batch_size: int = 128,
    precision: str = "no",
    home: Path | None = None,
) -> tuple[torch.Tensor, str]:
    """:func:`teacher_logits`, read from the on-disk entry of this teacher and these rows when there
    is one, else computed and written (atomically); returns them and what was done."""
    from safetensors.torch import load_file, save_file

    home = home or cache_home() / "teacher-logits"
    path = home / f"{fingerprint(teacher, dataset, ['logits', 1, precision])}.safetensors"
    if path.is_file():
        return load_file(path)["logits"], f"reused {path}"
    logits = teacher_logits(teacher, dataset, collate, device, batch_size)
    home.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.partial")
    save_file({"logits": logits.contiguous()}, tmp)
    os.replace(tmp, path)
    return logits, f"stored in {path}"


def cached_reps(cache: torch.Tensor, batch: dict[str, torch.Tensor]) -> Reps:
    """The teacher's Reps of ``batch`` from the cache: logits only."""
    logits = cache[batch["row"].cpu()].to(batch["input_ids"].device)
    return Reps(hidden=[], attn_scores=[], logits=logits, attention_mask=batch["attention_mask"])
