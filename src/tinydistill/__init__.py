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


def prepare_corpus(inputs, tokenizer, output, **kwargs):
    """Raw text -> packed, memory-mapped shards for general distillation (see :mod:`tinydistill.corpus`)."""
    from tinydistill.corpus import prepare_corpus as _prepare

    return _prepare(inputs if isinstance(inputs, (list, tuple)) else [inputs], tokenizer, output, **kwargs)


def general(cfg=None, config_file=None, **kwargs):
    """General distillation on a prepared corpus (see :func:`tinydistill.training.general.general`);
    kwargs are GeneralConfig fields (``teacher``, ``student``, ``corpus``, ``output``, ``max_steps``, ...)."""
    from tinydistill import config
    from tinydistill.training.general import general as _general

    return _general(cfg or config.build(config.GeneralConfig, config_file, **kwargs))


def evaluate(task: str, model: str, **kwargs):
    """Dev metrics of a saved model (see :func:`tinydistill.api.evaluate`)."""
    from tinydistill import api

    return api.evaluate(task, model, **kwargs)


__all__ = ["TinyDistillError", "distill", "evaluate", "finetune", "general", "prepare_corpus", "__version__"]
