"""Dev-set evaluation: batched predictions -> the task's official metrics, beside a trivial baseline.

Every evaluation also scores the trivial predictor of the same rows (the majority class for
classification, a constant for regression) and checks whether the model's predictions depend on
its input at all, so that a student that learned nothing is never reported as a result.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

import numpy as np
import torch
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from tinydistill.data import EncodedDataset, make_loader
from tinydistill.deploy.inputs import model_inputs
from tinydistill.progress import progress
from tinydistill.tasks import Example, TaskSpec, compute_metrics


@torch.no_grad()
def predict_logits(
    model: nn.Module, loader: DataLoader, accelerator: Accelerator | None = None, desc: str = "eval"
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels over every example of ``loader`` (a progress bar on a terminal: ``desc``).

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
    for batch in progress(loader, len(loader), desc):
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


# A model is "degenerate" when no metric beats the trivial predictor by more than this (1 point).
DEGENERATE_MARGIN = 0.01


def trivial_baseline(spec: TaskSpec, labels: np.ndarray) -> dict[str, float]:
    """Metrics of the best input-independent predictor of these rows.

    Classification: always the most frequent label of the rows (ties: the smaller label id).
    Regression: always the mean label, whose correlations are 0 by definition.
    """
    labels = np.asarray(labels)
    if spec.is_regression:
        constant = np.full(labels.shape, float(labels.mean()) if len(labels) else 0.0)
    else:
        counts = np.bincount(labels.astype(np.int64).reshape(-1), minlength=spec.num_labels)
        constant = np.full(labels.shape, int(counts.argmax()), dtype=np.int64)
    return compute_metrics(spec, constant, labels)


def constant_predictions(spec: TaskSpec, logits: np.ndarray) -> bool:
    """Whether the predictions ignore the input: one class for every row, or a flat regression output."""
    if len(logits) < 2:
        return False
    preds = to_predictions(spec, logits)
    if spec.is_regression:
        return bool(np.ptp(preds) <= 1e-6 * max(1.0, float(np.abs(preds).max())))
    return len(np.unique(preds)) == 1


@dataclass
class Evaluation:
    """Metrics per split, the trivial baseline per split and the degenerate-model verdict."""

    spec: TaskSpec
    metrics: dict[str, dict[str, float]]
    baseline: dict[str, dict[str, float]]
    constant: dict[str, bool] = field(default_factory=dict)

    @property
    def baseline_key(self) -> str:
        """The metrics.json key of the baseline: the task decides what 'trivial' means."""
        return "constant_baseline" if self.spec.is_regression else "majority_baseline"

    @property
    def score(self) -> float:
        return primary_score(self.spec, self.metrics)

    @property
    def flat(self) -> dict[str, float]:
        return flatten(self.metrics)

    @property
    def reason(self) -> str | None:
        """Why the model is useless on the first split, or None when it is not."""
        split = next(iter(self.metrics))
        got, base = self.metrics[split], self.baseline[split]
        if self.constant.get(split):
            what = "the same value" if self.spec.is_regression else "the same class"
            return f"it predicts {what} for every {split} row"
        if all(got[k] <= base[k] + DEGENERATE_MARGIN for k in got):
            trivial = "a constant prediction" if self.spec.is_regression else "the majority class"
            shown = ", ".join(f"{k} {100 * got[k]:.2f} vs {100 * base[k]:.2f}" for k in got)
            return f"it does not beat {trivial} by more than 1 point on {split} ({shown})"
        return None

    @property
    def degenerate(self) -> bool:
        return self.reason is not None

    def state(self) -> dict:
        """JSON-able: ``Evaluation(spec, **state)`` is this evaluation again (kept in checkpoints)."""
        return {"metrics": self.metrics, "baseline": self.baseline, "constant": self.constant}

    def record(self) -> dict:
        """The keys every metrics.json carries next to ``dev``."""
        return {
            self.baseline_key: flatten(self.baseline),
            "degenerate": self.degenerate,
            **({"degenerate_reason": self.reason} if self.degenerate else {}),
        }

    def line(self) -> str:
        """One line for the log: the score next to the baseline."""
        first = next(iter(self.metrics))
        trivial = "constant" if self.spec.is_regression else "majority"
        base = self.baseline[first]
        text = ", ".join(f"{k}={v:.4f}" for k, v in flatten(self.metrics).items())
        text += f" ({trivial}: " + ", ".join(f"{k}={v:.4f}" for k, v in base.items()) + ")"
        return text + (" DEGENERATE" if self.degenerate else "")


def run_evaluation(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    spec: TaskSpec,
    dev: dict[str, list[Example]],
    max_seq_length: int,
    batch_size: int = 64,
    accelerator: Accelerator | None = None,
) -> Evaluation:
    """Metrics, trivial baseline and constant-prediction check for every dev split."""
    metrics, baseline, constant = {}, {}, {}
    for split, examples in dev.items():
        loader = make_loader(EncodedDataset(examples, tokenizer, max_seq_length, spec), tokenizer, batch_size)
        logits, labels = predict_logits(model, loader, accelerator, desc=f"eval {split}")
        metrics[split] = compute_metrics(spec, to_predictions(spec, logits), labels)
        baseline[split] = trivial_baseline(spec, labels)
        constant[split] = constant_predictions(spec, logits)
    return Evaluation(spec, metrics, baseline, constant)


def warn_if_degenerate(evaluation: Evaluation, what: str) -> None:
    """The one-line stderr warning for a useless final model (from the main process only)."""
    if evaluation.degenerate and os.environ.get("RANK", "0") == "0":
        print(f"warning: {what} is degenerate: {evaluation.reason}", file=sys.stderr, flush=True)


def primary_score(spec: TaskSpec, results: dict[str, dict[str, float]]) -> float:
    """The selection score: the primary metric on the first dev split."""
    first = next(iter(results.values()))
    return first[spec.primary_metric]


def flatten(results: dict[str, dict[str, float]]) -> dict[str, float]:
    if len(results) == 1:
        return dict(next(iter(results.values())))
    return {f"{split}/{k}": v for split, metrics in results.items() for k, v in metrics.items()}
