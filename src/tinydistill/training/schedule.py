"""A distillation method = a list of stages; a stage = one training run made of phases of weighted terms.

* A **stage** is one call of the training loop: its own optimizer, learning-rate schedule, epochs,
  and (for the last stage, by default) evaluation on dev with best-checkpoint saving. TinyBERT has
  two stages, ``intermediate`` {embedding, hidden, attention} and ``prediction`` {prediction}.
* A **phase** is a set of weighted loss terms active for part of a stage. Phase i ends after
  ``round(fraction_i * N)`` (or ``steps_i``) of the stage's N optimizer steps; the last phase runs to
  the end. LRC-BERT is one stage with two phases: {cos_nce} for the first ``round(0.8 N)`` steps,
  then {cos_nce, soft_ce, hard_ce}: same optimizer and schedule, only the active terms change.

In a recipe::

    stages:
      - name: distill
        schedule:
          - {terms: {cos_nce: 1.0}, fraction: 0.8}
          - {terms: {cos_nce: 1.0, soft_ce: 1.0, hard_ce: 1.0}}

``terms: {...}`` in place of ``schedule`` is a single phase. A stage may also set ``learning_rate``,
``epochs``, ``max_steps`` (defaults for that stage; explicit flags override them) and ``evaluate``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tinydistill.coerce import to_number
from tinydistill.errors import TinyDistillError

DEFAULT_STAGE_LR = 1e-4  # a stage whose recipe, flags and config name no learning rate
STAGE_KEYS = ("name", "terms", "schedule", "learning_rate", "epochs", "max_steps", "evaluate")
PHASE_KEYS = ("terms", "fraction", "steps")


@dataclass
class Phase:
    terms: dict[str, float]
    fraction: float | None = None
    steps: int | None = None


@dataclass
class Stage:
    name: str
    phases: list[Phase]
    learning_rate: float | None = None
    epochs: float | None = None
    max_steps: int | None = None
    evaluate: bool | None = None

    @property
    def term_names(self) -> set[str]:
        """Terms with a non-zero weight in any phase."""
        return {k for p in self.phases for k, w in p.terms.items() if w}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if len(self.phases) == 1:
            out["terms"] = dict(self.phases[0].terms)
        else:
            out["schedule"] = [
                {
                    "terms": dict(p.terms),
                    **({"fraction": p.fraction} if p.fraction is not None else {}),
                    **({"steps": p.steps} if p.steps is not None else {}),
                }
                for p in self.phases
            ]
        for key in ("learning_rate", "epochs", "max_steps", "evaluate"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


def _terms(raw: Any, where: str) -> dict[str, float]:
    if not isinstance(raw, Mapping) or not raw:
        raise TinyDistillError(f"{where}: 'terms' must be a non-empty mapping of term: weight")
    out = {}
    for name, weight in raw.items():
        w = to_number(weight, f"{where}: weight of '{name}'")
        if w < 0:
            raise TinyDistillError(f"{where}: weight of '{name}' must be >= 0, got {w}")
        out[str(name)] = w
    if not any(out.values()):
        raise TinyDistillError(f"{where}: no loss term has a non-zero weight")
    return out


def _phase(raw: Any, where: str, last: bool) -> Phase:
    if not isinstance(raw, Mapping):
        raise TinyDistillError(f"{where}: a phase must be a mapping with 'terms'")
    unknown = sorted(set(raw) - set(PHASE_KEYS))
    if unknown:
        raise TinyDistillError(
            f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(PHASE_KEYS)})"
        )
    phase = Phase(_terms(raw.get("terms"), where))
    if "fraction" in raw and "steps" in raw:
        raise TinyDistillError(f"{where}: give 'fraction' or 'steps', not both")
    if last and ("fraction" in raw or "steps" in raw):
        raise TinyDistillError(
            f"{where}: the last phase runs to the end of the stage; drop its fraction/steps"
        )
    if not last and "fraction" not in raw and "steps" not in raw:
        raise TinyDistillError(f"{where}: every phase but the last needs 'fraction' or 'steps'")
    if "fraction" in raw:
        phase.fraction = to_number(raw["fraction"], f"{where}: fraction")
        if not 0 < phase.fraction < 1:
            raise TinyDistillError(f"{where}: fraction must be in (0, 1), got {phase.fraction}")
    if "steps" in raw:
        steps = raw["steps"]
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise TinyDistillError(f"{where}: steps must be a positive integer, got {steps!r}")
        phase.steps = steps
    return phase


def parse_stages(raw: Any) -> list[Stage]:
    """Validate a recipe's ``stages`` list (structure and numbers; term names are checked elsewhere)."""
    if not isinstance(raw, list) or not raw:
        raise TinyDistillError("'stages' must be a non-empty list of stages")
    stages: list[Stage] = []
    for i, item in enumerate(raw, start=1):
        where = f"stage {i}"
        if not isinstance(item, Mapping):
            raise TinyDistillError(
                f"{where}: a stage must be a mapping with 'name' and 'terms' or 'schedule'"
            )
        unknown = sorted(set(item) - set(STAGE_KEYS))
        if unknown:
            raise TinyDistillError(
                f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(STAGE_KEYS)})"
            )
        name = item.get("name")
        if not isinstance(name, str) or not name or name == "all":
            raise TinyDistillError(f"{where}: needs a 'name' (a string other than 'all')")
        where = f"stage '{name}'"
        if ("terms" in item) == ("schedule" in item):
            raise TinyDistillError(f"{where}: give either 'terms' or 'schedule'")
        if "terms" in item:
            phases = [Phase(_terms(item["terms"], where))]
        else:
            sched = item["schedule"]
            if not isinstance(sched, list) or not sched:
                raise TinyDistillError(f"{where}: 'schedule' must be a non-empty list of phases")
            phases = [
                _phase(p, f"{where}, phase {j}", last=j == len(sched)) for j, p in enumerate(sched, start=1)
            ]
            total = sum(p.fraction for p in phases if p.fraction is not None)
            if total >= 1:
                raise TinyDistillError(
                    f"{where}: phase fractions add up to {total:g}; they must stay below 1"
                )
        stage = Stage(name, phases)
        for key, kind in (("learning_rate", float), ("epochs", float)):
            if item.get(key) is not None:
                value = to_number(item[key], f"{where}: {key}")
                if value <= 0:
                    raise TinyDistillError(f"{where}: {key} must be positive, got {value}")
                setattr(stage, key, kind(value))
        if item.get("max_steps") is not None:
            steps = item["max_steps"]
            if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
                raise TinyDistillError(f"{where}: max_steps must be a positive integer, got {steps!r}")
            stage.max_steps = steps
        if item.get("evaluate") is not None:
            if not isinstance(item["evaluate"], bool):
                raise TinyDistillError(f"{where}: evaluate must be true or false")
            stage.evaluate = item["evaluate"]
        stages.append(stage)
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise TinyDistillError(f"stage names must be unique, got {names}")
    return stages


def plan_stages(cfg: Any, default_epochs: float) -> list[Stage]:
    """A distill config's stages with learning rate, epochs and max_steps resolved.

    For a stage named N: the flag ``N_lr`` / ``N_epochs`` / ``N_max_steps`` (TinyBERT's
    ``intermediate_*`` and ``prediction_*``) > the stage's recipe value > the run-wide value
    (``learning_rate`` / ``epochs`` / ``max_steps``; the task's epochs) > ``DEFAULT_STAGE_LR``.
    The last stage evaluates on dev unless the recipe says otherwise.
    """
    stages = parse_stages(cfg.stages)
    for st in stages:

        def own(key: str, st: Stage = st) -> Any:
            return getattr(cfg, f"{st.name}_{key}", None)

        st.learning_rate = own("lr") or st.learning_rate or cfg.learning_rate or DEFAULT_STAGE_LR
        st.epochs = own("epochs") or st.epochs or cfg.epochs or default_epochs
        st.max_steps = own("max_steps") or st.max_steps or cfg.max_steps
        if st.evaluate is None:
            st.evaluate = st is stages[-1]
    return stages


def phase_starts(phases: list[Phase], total_steps: int) -> list[int]:
    """0-based optimizer step at which each phase starts (phase i+1 starts where phase i ends)."""
    starts, at = [], 0
    for phase in phases:
        starts.append(min(at, total_steps))
        if phase.fraction is not None:
            at += round(phase.fraction * total_steps)
        elif phase.steps is not None:
            at += phase.steps
    return starts


class Schedule:
    """Which phase (and so which weighted terms) is active at each 0-based step of a stage."""

    def __init__(self, phases: list[Phase], total_steps: int) -> None:
        self.phases = phases
        self.total_steps = total_steps
        self.starts = phase_starts(phases, total_steps)

    def index_at(self, step: int) -> int:
        index = 0
        for i, start in enumerate(self.starts):
            if step >= start:
                index = i
        return index

    def terms_at(self, step: int) -> dict[str, float]:
        return self.phases[self.index_at(step)].terms
