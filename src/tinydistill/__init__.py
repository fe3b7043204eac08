"""tinydistill: compress BERT-family encoders into small, fast students by knowledge distillation."""

from tinydistill.errors import TinyDistillError

__version__ = "0.1.0"


def finetune(cfg=None, **kwargs):
    """Fine-tune a teacher (see :func:`tinydistill.api.finetune`); kwargs are FinetuneConfig fields."""
    from tinydistill import api, config

    return api.finetune(cfg or config.build(config.FinetuneConfig, **kwargs))


def distill(cfg=None, **kwargs):
    """TinyBERT task distillation (see :func:`tinydistill.api.distill`); kwargs are DistillConfig fields."""
    from tinydistill import api, config

    return api.distill(cfg or config.build(config.DistillConfig, **kwargs))


def evaluate(task: str, model: str, **kwargs):
    """Dev metrics of a saved model (see :func:`tinydistill.api.evaluate`)."""
    from tinydistill import api

    return api.evaluate(task, model, **kwargs)


__all__ = ["TinyDistillError", "distill", "evaluate", "finetune", "__version__"]
