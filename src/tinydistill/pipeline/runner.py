"""Run the stages in order: decide for each (reuse, resume, run, off), say why, record what happened."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from tinydistill import config as C
from tinydistill.errors import Interrupted
from tinydistill.ownership import guard, mark
from tinydistill.pipeline.log import Log
from tinydistill.pipeline.plan import OFF_HINT, Plan, make_plan
from tinydistill.pipeline.preflight import check_packages
from tinydistill.pipeline.stages import STAGES, Context, Stage
from tinydistill.pipeline.state import Decision, Identity, State, decide, external_inputs, portable


@dataclasses.dataclass
class Step:
    """One stage of this run: its options (None: off), identity and decision."""

    stage: Stage
    options: dict[str, Any] | None
    ident: Identity | None = None
    decision: Decision | None = None


def plan_steps(plan: Plan, state: State) -> list[Step]:
    """Every stage's options, fingerprint and decision, in order (upstream decisions first)."""
    steps: dict[str, Step] = {}
    cfg = plan.cfg
    forcing = False
    for stage in STAGES:
        options = stage.options(plan) if plan.enabled(stage.name) else None
        step = steps[stage.name] = Step(stage, options)
        if options is None:
            continue
        forcing = forcing or cfg.overwrite or stage.name == cfg.from_stage
        shown = portable(options, plan.out)
        live = [d for d in stage.needs if steps[d].ident is not None]
        step.ident = Identity(shown, external_inputs(shown), {d: steps[d].ident.fingerprint for d in live})
        record = state.record(stage.name)
        missing = [p for p in _outputs(record) if not (plan.out / p).exists()]
        reran = [d for d in live if steps[d].decision.action != "reuse"]
        why = ("--overwrite" if cfg.overwrite else f"--from {cfg.from_stage}") if forcing else None
        step.decision = decide(record, step.ident, why, reran, missing)
    return list(steps.values())


def _outputs(record: dict[str, Any] | None) -> list[str]:
    """The files (relative to the run dir) a recorded run of a stage left."""
    return ((record or {}).get("result") or {}).get("outputs", [])


def check_options(steps: list[Step]) -> None:
    """Build every config a stage that runs will use: option errors before any work."""
    for step in steps:
        if step.options is None or step.decision.action == "reuse":
            continue
        for key, cls in step.stage.configs.items():
            if step.options.get(key) is not None:
                C.build(cls, None, **step.options[key])


def machine() -> str:
    """CPU model, cores, GPU and torch version: where a stage ran."""
    import torch

    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.is_file() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    cpu = names[0] if names else platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{cpu}, {os.cpu_count()} cores ({torch.get_num_threads()} threads), {gpu}; torch {torch.__version__}"
    )


def run_step(plan: Plan, state: State, log: Log, step: Step) -> None:
    """Run one stage and record it: done, or interrupted / failed with the reason."""
    name, decision = step.stage.name, step.decision
    log.line(f"{name}: {'resuming' if decision.action == 'resume' else 'running'} ({decision.reason})")
    old = state.record(name) or {}
    replace = decision.fresh or (decision.action == "resume" and bool(old.get("replace")))
    state.begin(name, step.ident, machine(), replace)
    if decision.fresh and step.stage.clean:
        shutil.rmtree(plan.out / step.stage.clean, ignore_errors=True)
    if step.stage.clean:  # the stage's own folder: its command may write into it (see ownership)
        mark(plan.out / step.stage.clean, f"pipeline {name}")
    began = time.time()
    try:
        with log.capture():
            result = step.stage.run(Context(plan, state, name, decision.fresh), copy.deepcopy(step.options))
    except (Interrupted, KeyboardInterrupt) as exc:
        text = (
            str(exc).replace("rerun with --resume", "run the same command again to continue") or "interrupted"
        )
        state.fail(name, text, interrupted=True)
        log.line(f"{name}: interrupted after {time.time() - began:.1f} s: {text}", terminal=False)
        raise Interrupted(f"{name}: {text}") from None
    except Exception as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        state.fail(name, text, interrupted=False)
        log.line(f"{name}: failed after {time.time() - began:.1f} s: {text}", terminal=False)
        raise
    seconds = time.time() - began
    state.finish(name, result, seconds)
    summary = result.get("summary")
    log.line(f"{name}: done in {seconds:.1f} s" + (f"; {summary}" if summary else ""))


def write_summary(plan: Plan, state: State, ran: bool) -> dict[str, Any]:
    """summary.md / summary.json: the teacher-vs-student table (reused as it is when nothing ran)."""
    md, js = plan.out / "summary.md", plan.out / "summary.json"
    if not ran and md.is_file() and js.is_file():
        return {"rows": json.loads(js.read_text()), "table": md.read_text()}
    from tinydistill.deploy.table import pipeline_table
    from tinydistill.pipeline.results import summary_rows

    rows = summary_rows(plan, state)
    ev, bench = state.record("evaluate")["result"], state.record("bench")["result"]
    table = pipeline_table(ev["task"]["name"], rows, seq_len=bench["seq_len"])
    md.write_text(table)
    js.write_text(json.dumps(rows, indent=2))
    return {"rows": rows, "table": table}


def run(cfg: C.PipelineConfig) -> dict[str, Any]:
    """Run the pipeline in ``cfg.output``; returns the summary rows, table and where things are."""
    plan = make_plan(cfg)
    with guard("pipeline", cfg):  # one lock on --output for all the stages
        return _run(cfg, plan)


def _run(cfg: C.PipelineConfig, plan: Plan) -> dict[str, Any]:
    state = State(plan.out)
    steps = plan_steps(plan, state)
    check_options(steps)
    running = {
        s.stage.name: s.options for s in steps if s.options is not None and s.decision.action != "reuse"
    }
    check_packages(cfg, running)
    mark(plan.out, "pipeline")
    log = Log(plan.out, cfg.quiet)
    log.line(f"tinydistill pipeline in {plan.out} ({' '.join(sys.argv[1:]) or 'Python API'})", terminal=False)
    began = time.time()
    try:
        for step in steps:
            name = step.stage.name
            if step.options is None:
                log.line(f"{name}: off ({OFF_HINT[name]})")
            elif step.decision.action == "reuse":
                log.line(f"{name}: done (reused, {time.time() - began:.1f} s)")
            else:
                run_step(plan, state, log, step)
            began = time.time()
        ran = any(s.decision is not None and s.decision.action != "reuse" for s in steps)
        summary = write_summary(plan, state, ran)
    finally:
        log.close()
    card = (state.record("card") or {}).get("result", {}).get("path")
    return {**summary, "card": card, "report": plan.path("report", "report.md"), "state": str(state.path)}
