"""What a pipeline run means before anything runs: caps, paths, per-stage sections, and the checks.

The stage options themselves are built in :mod:`tinydistill.pipeline.stages`; this module owns the
pipeline config once resolved (:class:`Plan`) and every one-line error about how it was given.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from tinydistill import config as C
from tinydistill.errors import TinyDistillError

STAGES = (
    "teacher",
    "start",
    "augment",
    "distill",
    "trim",
    "evaluate",
    "export",
    "bench",
    "report",
    "card",
    "push",
)
# the ``options:`` sections: the command whose options each takes (mlm_head belongs to augment)
SECTIONS: dict[str, type] = {
    "teacher": C.FinetuneConfig, "start": C.PruneConfig, "mlm_head": C.MLMHeadConfig,
    "augment": C.AugmentConfig, "distill": C.DistillConfig, "trim": C.TrimVocabConfig,
    "evaluate": C.EvaluateConfig, "export": C.ExportConfig, "bench": C.BenchConfig,
    "report": C.ReportConfig, "card": C.CardConfig, "push": C.PushConfig,
}  # fmt: skip
DATA_KEYS = tuple(f.name for f in dataclasses.fields(C.DataOptions))
# keys the pipeline sets itself (from its own flags or the stage before), besides the data options
OWNED = {
    "teacher": {"model", "output", "resume", "overwrite"},
    "start": {"teacher", "output", "shape"},
    "mlm_head": {"corpus", "output"},
    "augment": {"output", "mlm", "merge", "shard"},
    "distill": {
        "teacher",
        "student",
        "output",
        "recipe",
        "start",
        "calibration_samples",
        "resume",
        "overwrite",
    },
    "trim": {"model", "output", "keep", "target_params"},
    "evaluate": {"model", "json_file"},
    "export": {"model", "output"},
    "bench": {"models", "names", "json_file", "cache_dir"},
    "report": {"run_dirs", "output", "bench_files"},
    "card": set(),
    "push": {"repo_id"},
}
# data options a section may set after all: the bench scores each backend on dev with a task
FREE = {"bench": {"task"}}

OFF_HINT = {
    "teacher": "--teacher-finetuned skips it",
    "augment": "--augment turns it on",
    "trim": "--trim-ratio R turns it on",
    "export": "--no-export skips it",
    "push": "--push-to-hub REPO_ID turns it on",
}


def find_glue() -> str | None:
    """``../shared/data/glue`` (beside the working dir or the checkout) when it exists, else None (HF hub)."""
    candidates = [
        Path.cwd().parent / "shared" / "data" / "glue",
        Path(__file__).resolve().parents[4] / "shared" / "data" / "glue",
    ]
    return next((str(p) for p in candidates if p.is_dir()), None)


def with_caps(cfg: C.PipelineConfig) -> C.PipelineConfig:
    """Fill the QUICK caps (rows, epochs) left unset, unless ``full``; find the GLUE dir."""
    caps = {k: v for k, v in C.QUICK.items() if getattr(cfg, k) is None and not cfg.full}
    glue = None if cfg.task.lower() == "custom" else find_glue()
    return dataclasses.replace(cfg, data_dir=cfg.data_dir or glue, **caps)


@dataclasses.dataclass(frozen=True)
class Plan:
    """The pipeline config with its caps filled, and where each stage writes."""

    cfg: C.PipelineConfig

    @property
    def out(self) -> Path:
        return Path(self.cfg.output)

    def path(self, *parts: str) -> str:
        return str(self.out.joinpath(*parts))

    @property
    def teacher_dir(self) -> str:
        return self.cfg.teacher_finetuned or self.path("teacher")

    @property
    def model_dir(self) -> str:
        """The student the later stages evaluate, export, time and ship: trimmed when the trim stage runs."""
        return self.path("trim") if self.enabled("trim") else self.path("student")

    @property
    def is_custom(self) -> bool:
        return self.cfg.task.lower() == "custom"

    def section(self, name: str) -> dict[str, Any]:
        """The ``options: NAME:`` section of the config file."""
        return dict(self.cfg.options.get(name) or {})

    def data(self, cls: type) -> dict[str, Any]:
        """The pipeline's data options that ``cls`` takes."""
        names = {f.name for f in dataclasses.fields(cls)}
        return {k: getattr(self.cfg, k) for k in DATA_KEYS if k in names}

    def enabled(self, stage: str) -> bool:
        cfg = self.cfg
        return {
            "teacher": not cfg.teacher_finetuned,
            "augment": cfg.augment,
            "trim": cfg.trim_ratio is not None,
            "export": cfg.export,
            "push": bool(cfg.push_to_hub),
        }.get(stage, True)


def make_plan(cfg: C.PipelineConfig) -> Plan:
    """Check how the pipeline was asked for (one-line errors), then fill its caps."""
    check_sections(cfg)
    check_conflicts(cfg)
    return Plan(with_caps(cfg))


def check_sections(cfg: C.PipelineConfig) -> None:
    """``options:`` names known sections, options their commands have, none the pipeline sets itself."""
    for name, values in cfg.options.items():
        if name not in SECTIONS:
            raise TinyDistillError(f"options.{name}: no such stage (sections: {', '.join(SECTIONS)})")
        fields = {f.name for f in dataclasses.fields(SECTIONS[name])}
        for key in values:
            if key not in fields:
                raise TinyDistillError(f"options.{name}.{key}: not an option of this stage's command")
            if key in OWNED[name] or (key in DATA_KEYS and key not in FREE.get(name, ())):
                raise TinyDistillError(
                    f"options.{name}.{key} is set by the pipeline itself (see tinydistill pipeline --help)"
                )


def check_conflicts(cfg: C.PipelineConfig) -> None:
    """Options that contradict each other, and ``--from`` a stage that is unknown or off."""
    defaults = C.PipelineConfig()
    if cfg.teacher_finetuned:
        given = [
            flag
            for flag, key in (("--teacher", "teacher"), ("--teacher-epochs", "teacher_epochs"),
                              ("--teacher-lr", "teacher_lr"))
            if getattr(cfg, key) != getattr(defaults, key)
        ] + (["options.teacher"] if cfg.options.get("teacher") else [])  # fmt: skip
        if given:
            raise TinyDistillError(
                f"--teacher-finetuned skips fine-tuning the teacher: drop {', '.join(given)}"
            )
    off = {
        "--augment": (not cfg.augment, [("--augment-mlm", cfg.augment_mlm), ("--augment-n", cfg.augment_n),
                                        ("options.augment", cfg.options.get("augment")),
                                        ("options.mlm_head", cfg.options.get("mlm_head"))]),
        "--export": (not cfg.export, [("options.export", cfg.options.get("export"))]),
        "--trim-ratio": (cfg.trim_ratio is None, [("options.trim", cfg.options.get("trim"))]),
        "--push-to-hub": (not cfg.push_to_hub, [("options.push", cfg.options.get("push"))]),
    }  # fmt: skip
    for switch, (is_off, given) in off.items():
        named = [name for name, value in given if value]
        if is_off and named:
            raise TinyDistillError(f"{named[0]} is given but {switch} is off")
    if cfg.augment_mlm and cfg.options.get("mlm_head"):
        raise TinyDistillError("options.mlm_head trains a masked LM, but --augment-mlm gives one")
    if cfg.start == "pruned" and (cfg.options.get("distill") or {}).get("init_from_teacher"):
        raise TinyDistillError("--start pruned and options.distill.init_from_teacher exclude each other")
    if cfg.from_stage is not None:
        if cfg.from_stage not in STAGES:
            raise TinyDistillError(f"--from {cfg.from_stage}: no such stage (stages: {', '.join(STAGES)})")
        if not Plan(cfg).enabled(cfg.from_stage):
            raise TinyDistillError(f"--from {cfg.from_stage}: the stage is off ({OFF_HINT[cfg.from_stage]})")
