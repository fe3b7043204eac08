"""Dev-set evaluation: batched predictions -> the task's official metrics."""

from __future__ import annotations

import numpy as np
import torch
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from tinydistill.data import EncodedDataset, make_loader
from tinydistill.models.capture import model_inputs
from tinydistill.tasks import Example, TaskSpec, compute_metrics


@torch.no_grad()
def predict_logits(
    model: nn.Module, loader: DataLoader, accelerator: Accelerator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels over every example of ``loader``.

    With several processes the loader is sharded by accelerate and the results gathered
    (``gather_for_metrics`` drops the padding duplicates). In one process the loader is used as it is:
    ``gather_for_metrics`` on a loader accelerate did not prepare would trim its last batch using the
    *training* loader's remainder.
    """
    model.eval()
    distributed = accelerator is not None and accelerator.num_processes > 1
    if distributed:
        loader = accelerator.prepare_data_loader(loader)
    device = accelerator.device if accelerator is not None else next(model.parameters()).device
    all_logits, all_labels = [], []
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        logits = model(**model_inputs(model, batch)).logits.float()
        labels = batch["labels"]
        if distributed:
            logits, labels = accelerator.gather_for_metrics((logits, labels))
        all_logits.append(logits.cpu())
        all_labels.append(labels.cpu())
    return torch.cat(all_logits).numpy(), torch.cat(all_labels).numpy()


def to_predictions(spec: TaskSpec, logits: np.ndarray) -> np.ndarray:
    return logits.reshape(-1) if spec.is_regression else logits.argmax(-1)


def evaluate_model(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    spec: TaskSpec,
    dev: dict[str, list[Example]],
    max_seq_length: int,
    batch_size: int = 64,
    accelerator: Accelerator | None = None,
) -> dict[str, dict[str, float]]:
    """Metrics per dev split, e.g. ``{"dev": {"accuracy": 0.91}}``."""
    results = {}
    for split, examples in dev.items():
        loader = make_loader(
            EncodedDataset(examples, tokenizer, max_seq_length, spec), tokenizer, batch_size, False
        )
        logits, labels = predict_logits(model, loader, accelerator)
        results[split] = compute_metrics(spec, to_predictions(spec, logits), labels)
    return results


def primary_score(spec: TaskSpec, results: dict[str, dict[str, float]]) -> float:
    """The selection score: the primary metric on the first dev split."""
    first = next(iter(results.values()))
    return first[spec.primary_metric]


def flatten(results: dict[str, dict[str, float]]) -> dict[str, float]:
    if len(results) == 1:
        return dict(next(iter(results.values())))
    return {f"{split}/{k}": v for split, metrics in results.items() for k, v in metrics.items()}
