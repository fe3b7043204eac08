"""tinydistill: compress BERT-family encoders into small, fast students by knowledge distillation."""

from tinydistill.errors import TinyDistillError

__version__ = "0.1.0"


def finetune(cfg=None, **kwargs):
    """Fine-tune a teacher (see :func:`tinydistill.api.finetune`); kwargs are FinetuneConfig fields."""
    from tinydistill import api, config

    return api.finetune(cfg or config.build(config.FinetuneConfig, **kwargs))


def distill(cfg=None, recipe=None, config_file=None, **kwargs):
    """Task distillation (see :func:`tinydistill.api.distill`); kwargs are DistillConfig fields.

    ``recipe``: a method recipe (path or shipped name, e.g. ``"lrcbert4"``); ``config_file``: a YAML
    config on top of it; kwargs override both. Without a recipe the method is TinyBERT.
    """
    from tinydistill import api, config

    paths = [config.recipe_path(recipe) if recipe else None, config_file]
    return api.distill(cfg or config.build(config.DistillConfig, paths, **kwargs))


def evaluate(task: str, model: str, **kwargs):
    """Dev metrics of a saved model (see :func:`tinydistill.api.evaluate`)."""
    from tinydistill import api

    return api.evaluate(task, model, **kwargs)


__all__ = ["TinyDistillError", "distill", "evaluate", "finetune", "__version__"]
