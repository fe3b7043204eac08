"""Teacher logits computed once per training row, so a stage that only needs them runs the student alone.

A stage whose active terms read nothing of the teacher but its logits (TinyBERT's prediction step,
Hinton KD, soft/hard cross-entropy) does not need a teacher forward per step: the teacher is frozen
and the rows are fixed, so its logits are the same every epoch. They are computed before the loop in
large length-sorted batches (little padding) in inference mode, and the loop looks them up by the
row index the batch carries. In fp32 the cached logits equal the per-step ones up to float
summation order (batches of other shapes).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import torch
from torch import nn

from tinydistill.deploy.inputs import model_inputs
from tinydistill.losses.reps import Reps
from tinydistill.progress import progress

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


def cached_reps(cache: torch.Tensor, batch: dict[str, torch.Tensor]) -> Reps:
    """The teacher's Reps of ``batch`` from the cache: logits only."""
    logits = cache[batch["row"].cpu()].to(batch["input_ids"].device)
    return Reps(hidden=[], attn_scores=[], logits=logits, attention_mask=batch["attention_mask"])
