"""The representations one forward pass exposes to distillation losses."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Reps:
    """What one forward pass exposes to distillation losses.

    ``hidden``: L+1 tensors (B, T, D); index 0 is the embedding-layer output, index i the output of layer i.
    ``attn_scores``: L tensors (B, H, T, T) of PRE-softmax scaled scores ``QK^T / sqrt(d)`` plus the additive
    mask (padded keys may hold huge negatives such as -3.4e38 or -inf); empty if not captured; ``None`` for
    layers left out of a selective capture (``forward_reps(..., layers=...)``).
    ``logits``: (B, C) for classification or (B, 1) for regression; None if the head was not run.
    ``attention_mask``: (B, T), 1 for real tokens and 0 for padding.
    """

    hidden: list[torch.Tensor]
    attn_scores: list[torch.Tensor | None]
    logits: torch.Tensor | None
    attention_mask: torch.Tensor

    @property
    def n_layers(self) -> int:
        """Number of transformer layers L (``len(hidden) - 1``)."""
        return len(self.hidden) - 1
