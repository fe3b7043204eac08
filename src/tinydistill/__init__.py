"""tinydistill: compress BERT-family encoders into small, fast students by knowledge distillation.

The Python API: one function per command, each taking its config (a dataclass from
:mod:`tinydistill.config`), or the config's fields as keyword arguments (plus ``config_file=`` for
a YAML file under them). Models and rows may be given as objects as well as paths::

    import tinydistill
    result = tinydistill.distill(teacher="runs/sst2-teacher", task="SST-2", data_dir="glue",
                                 recipe="lrcbert4", output="runs/sst2-lrc")
    result["dev"], result.model, result.paths["metrics"]

    tinydistill.distill(teacher=model, tokenizer=tok, train=[("great film", 1), ("dull", 0)],
                        dev=rows, task="SST-2", output="runs/x")

Heavy libraries (torch, transformers) load on the first call, not on import.
"""

from __future__ import annotations

import os
from typing import Any

from tinydistill.errors import TinyDistillError

__version__ = "0.1.0"


def _config(cls_name: str, cfg: Any, config_file: Any, fields: dict[str, Any]) -> Any:
    from tinydistill import config

    if cfg is not None:
        if fields or config_file:
            raise TypeError("give a config object or fields / config_file, not both")
        return cfg
    return config.build(getattr(config, cls_name), config_file, **fields)


def _split_objects(fields: dict[str, Any], *names: str) -> dict[str, Any]:
    """Pull out what is given as objects: rows and tokenizers always, models unless given as paths
    (their config field then records the model's name)."""
    from tinydistill.models.load import model_name

    objects = {}
    for name in names:
        value = fields.get(name)
        if value is None:
            fields.pop(name, None)
        elif name in ("train", "dev", "tokenizer"):
            objects[name] = fields.pop(name)
        elif not isinstance(value, (str, os.PathLike)):
            objects[name] = fields.pop(name)
            fields[name] = model_name(value)
    return objects


def finetune(cfg=None, *, config_file=None, **fields):
    """Fine-tune a teacher (:func:`tinydistill.api.finetune`); ``model`` may be a path or a model object,
    ``train`` / ``dev`` rows replace the task's files. Returns a RunResult (metrics dict + paths)."""
    from tinydistill import api

    objects = _split_objects(fields, "model", "tokenizer", "train", "dev")
    return api.finetune(_config("FinetuneConfig", cfg, config_file, fields), **objects)


def distill(cfg=None, *, recipe=None, config_file=None, **fields):
    """Task distillation (:func:`tinydistill.api.distill`) with a method ``recipe`` (name or file; default
    tinybert4). ``teacher`` / ``student`` may be paths or model objects. Returns a RunResult."""
    from tinydistill import api

    objects = _split_objects(fields, "teacher", "student", "tokenizer", "train", "dev")
    if recipe is not None:
        fields["recipe"] = str(recipe)
    return api.distill(_config("DistillConfig", cfg, config_file, fields), **objects)


def evaluate(task=None, model=None, *, cfg=None, config_file=None, **fields):
    """Dev metrics of a model (path or object) beside the trivial baseline; returns an Evaluation."""
    from tinydistill import api

    fields.update({k: v for k, v in (("task", task), ("model", model)) if v is not None})
    objects = _split_objects(fields, "model", "tokenizer", "dev")
    return api.evaluate(_config("EvaluateConfig", cfg, config_file, fields), **objects)


def prune(cfg=None, *, config_file=None, **fields):
    """Structured pruning of a teacher (path or object) to a student shape (:func:`tinydistill.api.prune`)."""
    from tinydistill import api

    objects = _split_objects(fields, "teacher", "tokenizer")
    return api.prune(_config("PruneConfig", cfg, config_file, fields), **objects)


def trim_vocab(cfg=None, *, config_file=None, **fields):
    """Trim a model's vocabulary to the pieces a text uses most (:func:`tinydistill.api.trim_vocab`)."""
    from tinydistill import api

    return api.trim_vocab(_config("TrimVocabConfig", cfg, config_file, fields))


def general(cfg=None, *, config_file=None, **fields):
    """General distillation on a prepared corpus (:func:`tinydistill.training.general.general`)."""
    from tinydistill import api

    return api.general(_config("GeneralConfig", cfg, config_file, fields))


def prepare_corpus(input=None, tokenizer=None, output=None, *, cfg=None, config_file=None, **fields):
    """Raw text files/dirs -> packed, memory-mapped shards for general distillation; returns the manifest."""
    from tinydistill import api

    if isinstance(input, (str, os.PathLike)):
        input = [input]
    given = (("input", input), ("tokenizer", tokenizer), ("output", output))
    fields.update({k: [str(p) for p in v] if k == "input" else str(v) for k, v in given if v is not None})
    return api.prepare_corpus(_config("CorpusConfig", cfg, config_file, fields))


def augment(cfg=None, *, config_file=None, **fields):
    """TinyBERT data augmentation of a task's train file (or ``merge`` of shard files); returns counts."""
    from tinydistill import api

    return api.augment(_config("AugmentConfig", cfg, config_file, fields))


def mlm_head(cfg=None, *, config_file=None, **fields):
    """Train a masked-LM head on an encoder (for ``augment``); returns its report."""
    from tinydistill import api

    return api.mlm_head(_config("MLMHeadConfig", cfg, config_file, fields))


def export(cfg=None, *, config_file=None, **fields):
    """ONNX (+ int8) export checked against PyTorch; returns the export report."""
    from tinydistill import api

    return api.export(_config("ExportConfig", cfg, config_file, fields))


def bench(cfg=None, *, config_file=None, **fields):
    """Size, latency and throughput of models side by side; returns the results."""
    from tinydistill import api

    return api.bench(_config("BenchConfig", cfg, config_file, fields))


def predict(cfg=None, *, config_file=None, **fields):
    """Batched inference over a file; returns counts and the output path."""
    from tinydistill import api

    return api.predict(_config("PredictConfig", cfg, config_file, fields))


def report(cfg=None, *, config_file=None, **fields):
    """Markdown teacher-vs-student report with plots; returns rows, table and points."""
    from tinydistill import api

    return api.report(_config("ReportConfig", cfg, config_file, fields))


def recipes(extra_dir=None) -> dict[str, str]:
    """Method recipes: name -> one-line description (shipped ones, then those in ``extra_dir``)."""
    from tinydistill.config import recipe_description, shipped_recipes

    return {name: recipe_description(path) for name, path in shipped_recipes(extra_dir).items()}


__all__ = [
    "TinyDistillError",
    "__version__",
    "augment",
    "bench",
    "distill",
    "evaluate",
    "export",
    "finetune",
    "general",
    "mlm_head",
    "predict",
    "prepare_corpus",
    "prune",
    "recipes",
    "report",
    "trim_vocab",
]
