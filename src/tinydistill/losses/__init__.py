"""Distillation losses and the representation container they consume."""

from tinydistill.losses.reps import Reps
from tinydistill.losses.tinybert import (
    HiddenProjection,
    attention_loss,
    embedding_loss,
    hidden_loss,
    prediction_loss,
    regression_prediction_loss,
    soft_cross_entropy,
)

__all__ = [
    "HiddenProjection",
    "Reps",
    "attention_loss",
    "embedding_loss",
    "hidden_loss",
    "prediction_loss",
    "regression_prediction_loss",
    "soft_cross_entropy",
]
