"""The GLUE suite: a BERT-base-size teacher and >= 7.5x smaller students on five GLUE tasks.

Cells (each one ``tinydistill`` run in its own directory, run as a separate process):

* ``teacher``: the pre-trained teacher (all-mpnet-base-v2, 109.5M; or ``--teacher minilm``) fine-tuned
  on CoLA, SST-2, MRPC, STS-B and RTE;
* students of the TinyBERT4 shape (4 layers, 312 hidden, 12 heads, FFN 1200) with TinyBERT task
  distillation from three starts: ``pruned`` from the fine-tuned teacher, ``random``, and ``general``
  (a general-distillation checkpoint given with ``--general DIR``, when the budget allowed one);
  LRC-BERT (``lrcbert4``) on the pruned start, and TinyBERT's prediction step alone
  (``tinybert4-prediction``, the same total epochs) on the pruned start: does a student that starts
  from the teacher need step 1? The four small tasks run ``--seeds`` seeds of the headline cell
  (pruned start, TinyBERT).

The suite is resumable cell by cell, across machines: a finished cell leaves a small record (scores,
parameters, times, its command) in the ledger ``benchmarks/results/glue-suite/<tier>/<teacher>/``
(committed; ``cells.json``, ``latency.json``, ``general.json``), and a recorded cell is not run again;
an interrupted one continues from its checkpoint under ``--output``. Model weights stay under
``--output``: a student cell whose task's teacher model is absent (a new machine) fine-tunes the
teacher again first, and that rerun replaces the teacher's record (the earlier score is kept in the
record and shown in the notes). After every cell it rewrites ``docs/results.md`` from the ledger;
the headline line is the mean over the tasks done of student / teacher on the paper's metric
(CoLA MCC, SST-2 accuracy, MRPC F1, STS-B Spearman, RTE accuracy), with the student's *last* dev
evaluation (its best one is printed beside it) against the teacher kept for its best dev score
(both choices lower the retention rather than raise it).

    PYTHONPATH=src python benchmarks/glue_suite.py --tier cpu                 # the core cells, resumable
    PYTHONPATH=src python benchmarks/glue_suite.py --tier cpu --all-cells     # every cell of the plan
    PYTHONPATH=src python benchmarks/glue_suite.py --tier cpu --stop-after 150  # start no cell after 150 min
    PYTHONPATH=src python benchmarks/glue_suite.py --report-only              # rewrite docs/results.md
    PYTHONPATH=src python benchmarks/glue_suite.py --tier gpu                 # full train sets, paper epochs
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GLUE = ROOT.parent / "shared" / "data" / "glue"
TASKS = ["RTE", "MRPC", "STS-B", "CoLA", "SST-2"]
SMALL = {"RTE", "MRPC", "STS-B", "CoLA"}
METRIC = {"CoLA": "mcc", "SST-2": "accuracy", "MRPC": "f1", "STS-B": "spearman", "RTE": "accuracy"}
# BERT-base dev scores as commonly reported (the ranges; STS-B is Pearson there), and the
# TinyBERT paper's GLUE test scores of BERT-base and TinyBERT4 (x100).
BERT_BASE_DEV = {"CoLA": (55, 60), "SST-2": (92, 93), "MRPC": (88, 90), "STS-B": (88, 89), "RTE": (66, 70)}
PAPER_TEACHER = {"CoLA": 52.8, "SST-2": 93.4, "MRPC": 87.5, "STS-B": 85.8, "RTE": 67.0}
PAPER_TINYBERT4 = {"CoLA": 44.1, "SST-2": 92.6, "MRPC": 86.4, "STS-B": 80.4, "RTE": 66.6}
TEACHERS = {"mpnet": "all-mpnet-base-v2", "minilm": "all-MiniLM-L6-v2"}
# Train rows of ../shared/data/glue (what `tinydistill` prints as "train: N rows read"), for the
# step floor below without reading the files; every cell trains with batches of BATCH rows.
TRAIN_ROWS = {"CoLA": 8551, "SST-2": 67349, "MRPC": 3668, "STS-B": 5749, "RTE": 2490}
BATCH = 32


@dataclass(frozen=True)
class Tier:
    """Budgets of one tier: caps, epochs and learning rates for every cell of a task."""

    name: str
    teacher_epochs: float | None  # None: the task's own (registry) epochs
    teacher_lr: float | None
    intermediate_epochs: float
    prediction_epochs: float
    max_train_samples: dict[str, int] = field(default_factory=dict)
    precision: str = "bf16"
    seeds: tuple[int, ...] = (42, 43, 44)
    teacher_length_buckets: int = 0  # windows of N batches sorted by length (0: random batches)
    min_stage_steps: int = 0  # each student stage runs at least this many steps (more epochs on small sets)
    intermediate_lr: float | None = None  # None: the recipe's (tinybert4: 1e-4)
    prediction_lr: float | None = None  # None: the recipe's (tinybert4: 5e-5)
    min_prediction_steps: int = 0  # the prediction stage's own floor (0: min_stage_steps)

    def rows(self, task: str) -> int:
        """Train rows of a task under the tier's cap."""
        return min(TRAIN_ROWS[task], self.max_train_samples.get(task, TRAIN_ROWS[task]))

    def student_epochs(self, task: str) -> tuple[float, float]:
        """(intermediate, prediction) epochs of a task: the tier's, raised to the step floors."""
        batches = math.ceil(self.rows(task) / BATCH)
        floor = math.ceil(self.min_stage_steps / batches)
        prediction_floor = math.ceil((self.min_prediction_steps or self.min_stage_steps) / batches)
        return float(max(self.intermediate_epochs, floor)), float(
            max(self.prediction_epochs, prediction_floor)
        )


TIERS = {
    # 2 CPU cores: SST-2 capped to 8,000 rows; 3 teacher epochs; 2 + 3 student epochs.
    # Teachers use length-bucketed batches (1.5-2.9x fewer padded tokens on GLUE).
    # The prediction stage (teacher logits cached: ~0.4 s per step) runs at lr 2e-4 and at least 1,000
    # steps: with the recipe's 5e-5 over 540 steps an STS-B student reached Spearman 9.2 on dev, at
    # 2e-4 43.1, at 5e-4 worse than at 2e-4 (tuned on STS-B dev, 2026-12-04; see docs/glue-suite.md).
    "cpu": Tier(
        "cpu",
        3.0,
        3e-5,
        2.0,
        3.0,
        {"SST-2": 8000},
        teacher_length_buckets=50,
        min_stage_steps=500,
        prediction_lr=2e-4,
        min_prediction_steps=1000,
    ),
    # A GPU: full train sets; the task's teacher epochs (3-5); TinyBERT's 10 (large) / 20 (small)
    # intermediate epochs become 10 here without augmentation, 3 prediction epochs.
    "gpu": Tier("gpu", None, 2e-5, 10.0, 3.0),
}


@dataclass(frozen=True)
class Cell:
    task: str
    kind: str  # teacher | student
    # pruned | random | general | minilm (all-MiniLM-L6-v2 remapped, cut to the shape) | minilm6-trim
    # (all-MiniLM-L6-v2 remapped, whole 6L-384; its vocabulary trimmed after distillation to TRIM_RATIO)
    start: str = ""
    # tinybert4 | tinybert4-prediction (step 2 alone) | lrcbert4 (COS-NCE, then + CE); a suffix -aug<N>:
    # on the train rows plus N augmented variants of each (TinyBERT's augmentation), the same steps;
    # -aug<N>-e<E>: E epochs over those rows (TinyBERT's schedule: its prediction epochs on augmented data);
    # tinybert4-aug<N>-e<E>: both steps on those rows, step 1 for AUG_STEP1_EPOCHS
    recipe: str = ""
    seed: int = 42

    @property
    def aug(self) -> int:
        """N_a of the cell's augmented train rows (0: the task's rows as they are)."""
        found = re.search(r"-aug(\d+)", self.recipe)
        return int(found[1]) if found else 0

    @property
    def aug_epochs(self) -> int | None:
        """Epochs over the augmented rows (None: as many steps as the cell without augmentation)."""
        found = re.search(r"-aug\d+-e(\d+)$", self.recipe)
        return int(found[1]) if found else None

    @property
    def config(self) -> tuple[str, str]:
        return (self.start, self.recipe)

    @property
    def trimmed(self) -> bool:
        return self.start.endswith("-trim")

    @property
    def name(self) -> str:
        if self.kind == "teacher":
            return f"{self.task}/teacher"
        return f"{self.task}/{self.recipe}-{self.start}-s{self.seed}"


def plan(tier: Tier, tasks: list[str], general: str | None, lrc: bool) -> list[Cell]:
    """Every cell, in the order that fills the headline first: per task its teacher and the pruned
    TinyBERT student, then the extra seeds, the other starts (general, when given, before random),
    TinyBERT's prediction step alone and LRC-BERT."""
    cells = [c for t in tasks for c in (Cell(t, "teacher"), Cell(t, "student", "pruned", "tinybert4"))]
    seeds = tier.seeds[1:]
    cells += [Cell(t, "student", "pruned", "tinybert4", s) for t in tasks if t in SMALL for s in seeds]
    if general:
        cells += [Cell(t, "student", "general", "tinybert4") for t in tasks]
    cells += [Cell(t, "student", "random", "tinybert4") for t in tasks]
    cells += [Cell(t, "student", "pruned", "tinybert4-prediction") for t in tasks]
    cells += [Cell(t, "student", "minilm", r) for t in tasks for r in ("tinybert4-prediction", "tinybert4")]
    cells += [Cell(t, "student", "minilm6-trim", "tinybert4-prediction") for t in tasks]
    # the best configuration so far gets the headline cell's seeds on the small tasks
    cells += [
        Cell(t, "student", "minilm6-trim", "tinybert4-prediction", s)
        for t in tasks
        if t in SMALL
        for s in seeds
    ]
    # TinyBERT's augmentation on the small tasks: the same configuration and steps on teacher-labelled rows
    cells += [
        Cell(t, "student", "minilm6-trim", f"tinybert4-prediction-aug{AUG}", s)
        for t in tasks
        if t in SMALL
        for s in tier.seeds
    ]
    # ... and TinyBERT's schedule on them: the prediction step's epochs over the augmented rows (more steps),
    # on every task (one seed on SST-2) so that it can make the headline
    cells += [
        Cell(t, "student", "minilm6-trim", f"tinybert4-prediction-aug{AUG}-e{AUG_EPOCHS}", s)
        for t in tasks
        for s in (tier.seeds if t in SMALL else tier.seeds[:1])
    ]
    # ... with TinyBERT's step 1 before it on the same rows (the paper's setting for the intermediate step)
    cells += [
        Cell(t, "student", "minilm6-trim", f"tinybert4-aug{AUG}-e{AUG_EPOCHS}", tier.seeds[0])
        for t in tasks
        if t in SMALL
    ]
    if lrc:
        cells += [Cell(t, "student", "pruned", "lrcbert4") for t in tasks]
    return cells


# N_a of the augmented cells: the teacher labels every row once (its logit pass grows with N_a) and the
# cell trains as many steps as without augmentation, so with N_a = 4 each row is seen about once and the
# paper's 20 would leave most variants unseen.
AUG = 4
AUG_EPOCHS = 3  # TinyBERT's prediction-step epochs on augmented data
# Step 1's epochs over the augmented rows in the cells that run both steps on them: the paper's 20 (small
# tasks) is 20x CoLA's plain budget; one epoch is a third of step 2's steps there.
AUG_STEP1_EPOCHS = 1
MLM_STEPS = 300  # the masked-LM head trained on all-MiniLM-L6-v2 (no English masked LM exists offline)

# What a run without --only or --all-cells runs (about 7.5 h on 2 cores): the teachers, the configuration
# the headline reports (TinyBERT's schedule on the augmented rows), the same start without augmentation
# and the paper's recipe on the pruned start, one seed each, as the references. The other cells answered
# their question (random start, step 2 alone from the pruned start, the cut MiniLM, LRC-BERT, step 1 on
# the augmented rows) or add seeds beyond the budget; their records stay in the report, and --only or
# --all-cells runs them.
CORE = {
    ("minilm6-trim", f"tinybert4-prediction-aug{AUG}-e{AUG_EPOCHS}"): "first seed",
    ("minilm6-trim", "tinybert4-prediction"): "first seed",
    ("pruned", "tinybert4"): "first seed",
}


def core(cells: list[Cell], tier: Tier) -> list[Cell]:
    """The cells of ``CORE`` in plan order."""
    return [
        c
        for c in cells
        if c.kind == "teacher"
        or CORE.get(c.config) == "all seeds"
        or (CORE.get(c.config) == "first seed" and c.seed == tier.seeds[0])
    ]


def common_options(task: str, tier: Tier, data_dir: Path, capped: bool = True) -> list[str]:
    """The options every run of a task shares: its data, precision, batch, checkpoints, resume and, with
    ``capped``, the tier's train-row cap."""
    common = [
        "--task", task, "--data-dir", str(data_dir), "--mixed-precision", tier.precision,
        "--batch-size", str(BATCH),
        "--save-every", "100", "--keep-checkpoints", "1", "--resume", "--logger", "none",
    ]  # fmt: skip
    if capped and task in tier.max_train_samples:
        common += ["--max-train-samples", str(tier.max_train_samples[task])]
    return common


def command(cell: Cell, tier: Tier, args: argparse.Namespace, out: Path) -> list[str]:
    """The ``tinydistill`` command line of a cell (resumable: ``--resume``)."""
    # an augmented file is made of the capped rows: its cells read it whole
    common = common_options(cell.task, tier, args.data_dir, capped=not cell.aug)
    if cell.kind == "teacher":
        cmd = ["finetune", "--model", TEACHERS[args.teacher], "--output", str(out / cell.name), *common]
        cmd += ["--epochs", str(tier.teacher_epochs)] if tier.teacher_epochs else []
        cmd += ["--length-buckets", str(tier.teacher_length_buckets)] if tier.teacher_length_buckets else []
        return cmd + (["--learning-rate", str(tier.teacher_lr)] if tier.teacher_lr else [])
    teacher = out / cell.task / "teacher"
    recipe = cell.recipe.split("-")[0]
    cmd = ["distill", "--teacher", str(teacher), "--output", str(out / cell.name), "--recipe", recipe]
    cmd += [*common, "--seed", str(cell.seed), "--teacher-state-cache", "20"]  # all tasks' states stay
    if cell.start == "general":
        cmd += ["--student", args.general]
    elif cell.start == "minilm":
        cmd += ["--student", str(minilm_cut(cell, out))]
    elif cell.start == "minilm6-trim":
        cmd += ["--student", TEACHERS["minilm"], "--start", "pretrained"]
    else:
        cmd += ["--student", "tinybert-4l-312", "--start", cell.start]
    intermediate, prediction = tier.student_epochs(cell.task)
    if cell.recipe in ("tinybert4", "lrcbert4"):  # two stages: LRC-BERT's CE stage has its own schedule
        cmd += ["--intermediate-epochs", str(intermediate), "--prediction-epochs", str(prediction)]
        cmd += ["--intermediate-lr", str(tier.intermediate_lr)] if tier.intermediate_lr else []
    elif cell.recipe.startswith("tinybert4-aug"):  # both steps on the augmented rows, as in the paper
        cmd += ["--train-file", str(augmented(cell, out)), "--intermediate-epochs", str(AUG_STEP1_EPOCHS)]
        cmd += ["--prediction-epochs", str(cell.aug_epochs)]
    elif cell.aug:  # step 2 alone on the augmented rows, as many steps as on the task's rows or E epochs
        cmd += ["--stage", "prediction", "--train-file", str(augmented(cell, out))]
        if cell.aug_epochs:
            cmd += ["--prediction-epochs", str(cell.aug_epochs)]
        else:
            steps = math.ceil(tier.rows(cell.task) / BATCH) * (intermediate + prediction)
            cmd += ["--prediction-epochs", "100", "--prediction-max-steps", str(int(steps))]
    elif cell.recipe == "tinybert4-prediction":  # step 2 alone, the same total epochs
        cmd += ["--stage", "prediction", "--prediction-epochs", str(intermediate + prediction)]
    else:  # one stage with the same total budget
        return cmd + ["--epochs", str(intermediate + prediction)]
    return cmd + (["--prediction-lr", str(tier.prediction_lr)] if tier.prediction_lr else [])


# A trimmed start's students lose vocabulary rows until they are this many times smaller than the teacher.
TRIM_RATIO = 7.5


def trimmed_dir(cell: Cell, out: Path) -> Path:
    """Where a trimmed cell's model goes: beside the distilled one, which keeps its whole vocabulary."""
    return out / cell.task / f"{Path(cell.name).name}-trimmed"


def settings_line(cell: Cell, cmd: list[str]) -> str:
    """A cell's command as recorded: a trimmed cell's distillation followed by its trim."""
    line = " ".join(_relative(a) for a in cmd)
    return line + f" + trim-vocab --params-ratio {TRIM_RATIO:g}" if cell.trimmed else line


def trimmed_eval(cell: Cell, out: Path) -> Path:
    return trimmed_dir(cell, out).with_name(trimmed_dir(cell, out).name + ".eval.json")


def trim_and_evaluate(cell: Cell, args: argparse.Namespace, out: Path, threads: int | None) -> bool:
    """Trim a distilled student's vocabulary to the pieces of the task's train text that fit
    teacher params / TRIM_RATIO (every single character and special token kept), then evaluate the
    trimmed model on dev (``<folder>.eval.json`` beside it); False if a step failed."""
    trimmed = trimmed_dir(cell, out)
    if trimmed_eval(cell, out).is_file():
        return True
    teacher = read_metrics(out / cell.task / "teacher")
    target = int(teacher["params"] / TRIM_RATIO)  # type: ignore[index]
    data = ["--task", cell.task, "--data-dir", str(args.data_dir)]
    steps = [
        ["trim-vocab", "--model", str(out / cell.name), "--output", str(trimmed), "--target-params",
         str(target), *data],
        ["evaluate", "--model", str(trimmed), *data, "--json", str(trimmed_eval(cell, out))],
    ]  # fmt: skip
    if (trimmed / "trim.json").is_file():
        steps = steps[1:]
    else:
        shutil.rmtree(trimmed, ignore_errors=True)  # an interrupted trim of ours: made again
    log = out / cell.task / f"{trimmed.name}.log"
    for cmd in steps:
        rc = tinydistill(cmd, trimmed.name, log, threads)
        if rc != 0:
            print(f"  failed (exit {rc}): see {log}", flush=True)
            return False
    return True


def augmented(cell: Cell, out: Path) -> Path:
    """A task's augmented train file (the train rows, then N_a variants of each), shared by its seeds."""
    return out / cell.task / f"aug{cell.aug}.tsv"


def mlm_dir(out: Path) -> Path:
    return out / "mlm-head"


def minilm_cut(cell: Cell, out: Path) -> Path:
    """The 'minilm' start of a task: all-MiniLM-L6-v2 on the teacher's tokenizer, cut to TinyBERT4."""
    return out / cell.task / "minilm-cut"


def prepare_start(cell: Cell, args: argparse.Namespace, out: Path, threads: int | None, tier: Tier) -> bool:
    """Make what the cell needs and no cell writes (the 'minilm' cut: ~20 s; the masked-LM head, ~10 min,
    and the task's augmented rows, a few minutes); False if it failed."""
    if cell.aug and not prepare_augmented(cell, args, out, threads, tier):
        return False
    if cell.start != "minilm" or (minilm_cut(cell, out) / "config.json").is_file():
        return True
    cmd = [
        "prune", "--teacher", TEACHERS["minilm"], "--vocab-from", str(out / cell.task / "teacher"),
        "--shape", "tinybert-4l-312", "--task", cell.task, "--data-dir", str(args.data_dir),
        "--output", str(minilm_cut(cell, out)),
    ]  # fmt: skip
    log = out / cell.task / "minilm-cut.log"
    rc = tinydistill(cmd, f"{cell.task}/minilm-cut", log, threads)
    if rc != 0:
        print(f"  failed (exit {rc}): see {log}", flush=True)
    return rc == 0


def prepare_augmented(
    cell: Cell, args: argparse.Namespace, out: Path, threads: int | None, tier: Tier
) -> bool:
    """The masked-LM head (once) and the task's augmented file (written under another name, then renamed:
    an interrupted augmentation is made again, never read)."""
    target = augmented(cell, out)
    partial = target.with_name(f"{target.stem}.partial.tsv")
    steps = []
    if not (mlm_dir(out) / "mlm_head.json").is_file():
        corpus = args.data_dir.parent / "corpus" / "wikitext-2"
        steps.append(["mlm-head", "--encoder", TEACHERS["minilm"], "--corpus", str(corpus), "--output",
                      str(mlm_dir(out)), "--max-steps", str(MLM_STEPS)])  # fmt: skip
    if not target.is_file():
        cmd = ["augment", "--task", cell.task, "--data-dir", str(args.data_dir), "--mlm", str(mlm_dir(out)),
               "--n-aug", str(cell.aug), "--output", str(partial), "--no-progress"]  # fmt: skip
        if cell.task in tier.max_train_samples:
            cmd += ["--max-train-samples", str(tier.max_train_samples[cell.task])]
        steps.append(cmd)
    log = out / cell.task / f"{target.stem}.log"
    for cmd in steps:
        rc = tinydistill(cmd, f"{cell.task}/{cmd[0]}", log, threads)
        if rc != 0:
            print(f"  failed (exit {rc}): see {log}", flush=True)
            return False
    if not target.is_file():
        if not partial.is_file():
            print(f"  augment wrote no {partial}: see {log}", flush=True)
            return False
        partial.rename(target)
    return True


def tinydistill(cmd: list[str], name: str, log: Path, threads: int | None) -> int:
    """Run one ``tinydistill`` command as a process (this checkout's ``src``), its output appended to
    ``log``; returns its exit status."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    print(f"[{time.strftime('%H:%M:%S')}] {name}: tinydistill {' '.join(cmd)}", flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as f:
        return subprocess.call(
            [sys.executable, "-m", "tinydistill", *cmd], stdout=f, stderr=subprocess.STDOUT, env=env
        )


def read_metrics(run: Path) -> dict[str, Any] | None:
    path = run / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _made_by(run: Path) -> Path:
    """Where the command that made a run directory is written (beside its log)."""
    return run.parent / f"{run.name}.cmd"


def set_aside_if_stale(run: Path, line: str) -> None:
    """A run directory made with other settings is renamed ``<name>.earlier``: not resumed, not lost."""
    made_by = _made_by(run)
    if run.is_dir() and made_by.is_file() and _settings_of(made_by.read_text()) != _settings_of(line):
        aside = run.with_name(run.name + ".earlier")
        shutil.rmtree(aside, ignore_errors=True)
        run.rename(aside)


def run_cell(cell: Cell, cmd: list[str], out: Path, threads: int | None) -> dict[str, Any]:
    """Run one cell as a separate process (its log beside it); returns its metrics or an error."""
    run = out / cell.name
    line = " ".join(_relative(a) for a in cmd)
    set_aside_if_stale(run, line)
    if (done := read_metrics(run)) is not None:
        return done
    log = out / cell.task / f"{run.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    _made_by(run).write_text(line + "\n")
    start = time.perf_counter()
    rc = tinydistill(cmd, cell.name, log, threads)
    wall = time.perf_counter() - start
    metrics = read_metrics(run)
    if rc != 0 or metrics is None:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
        print(f"  failed (exit {rc}) after {wall / 60:.1f} min: {tail[0][-300:]}", flush=True)
        return {"error": tail[0][-300:]}
    print(f"  done in {wall / 60:.1f} min", flush=True)
    (run / "wall.json").write_text(json.dumps({"wall_seconds": round(wall, 1)}))
    return metrics


# ---------------------------------------------------------------------------------------- scores


def score(evaluation: dict[str, Any], task: str) -> float:
    return 100 * float(evaluation[METRIC[task]])


def _last_best(metrics: dict[str, Any], task: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The last and the best dev evaluation of a run's last stage (its final ``dev`` when it has none)."""
    last_stage = list(metrics["stages"].values())[-1]
    evals = last_stage.get("evals") or [metrics["dev"]]
    return evals[-1], max(evals, key=lambda e: score(e, task))


def student_scores(record: dict[str, Any], task: str) -> tuple[float, float]:
    """(last, best) dev score of a student record."""
    return score(record["last"], task), score(record["best"], task)


def teacher_score(metrics: dict[str, Any], task: str) -> float:
    return score(metrics["dev"], task)


def teacher_of(student: dict[str, Any], teacher: dict[str, Any], task: str) -> float:
    """The dev score of the teacher run a student was distilled from: the one recorded with the student,
    else the latest run of the teacher finished on or before it (a teacher fine-tuned again later, on
    another machine, did not teach it)."""
    if "teacher_dev" in student:
        return score(student["teacher_dev"], task)
    runs = [*teacher.get("previous", []), teacher]
    before = [r for r in runs if "dev" in r and r.get("finished", "") <= student.get("finished", "")]
    return score((before[-1] if before else teacher)["dev"], task)


def _mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def latency(models: dict[str, Path], ledger: Path, seq_len: int = 128) -> dict[str, dict[str, float]]:
    """Batch-1 CPU latency (ms, median) of each model, PyTorch and ONNX int8, timed interleaved in one
    sitting (ratios are only fair side by side) and kept in ``latency.json``: it depends on the shape,
    not on the weights, so one model stands for the teacher and one for each start's students."""
    from tinydistill.deploy.runners import load_runner
    from tinydistill.deploy.timing import p50_p95, time_runners

    known = read_ledger(ledger, "latency.json")
    for backend in ("torch", "onnx-int8"):
        runners = [load_runner(p, backend, k) for k, p in models.items()]
        for key, times in zip(models, time_runners(runners, 1, seq_len, repeats=30), strict=True):
            known.setdefault(key, {})[backend] = round(p50_p95(times)[0], 2)
            known[key]["params"] = int(runners[list(models).index(key)].params)
    ledger.mkdir(parents=True, exist_ok=True)
    (ledger / "latency.json").write_text(json.dumps(known, indent=2) + "\n")
    return known


# ---------------------------------------------------------------------------------------- report


def record(cell: Cell, metrics: dict[str, Any], run: Path, cmd: list[str]) -> dict[str, Any]:
    """What the report needs of a finished run, small enough to commit: scores, size, times, shape
    (for latency), the command (its settings) and the date."""
    out = run.parents[1]
    rec: dict[str, Any] = {k: metrics[k] for k in ("dev", "params", "train_seconds") if k in metrics}
    if cell.kind == "student":
        rec["last"], rec["best"] = _last_best(metrics, cell.task)
        rec["degenerate"] = bool(metrics.get("degenerate"))
        if (teacher := read_metrics(out / cell.task / "teacher")) is not None:  # the one it learnt from
            rec["teacher_dev"] = teacher["dev"]
    wall = run / "wall.json"
    if wall.is_file():
        rec.update(json.loads(wall.read_text()))
    if cell.trimmed:  # scored, counted and timed as trimmed; the whole-vocabulary run kept beside
        rec["untrimmed"] = {k: rec[k] for k in ("last", "best", "params")}
        trim = json.loads((trimmed_dir(cell, out) / "trim.json").read_text())
        evaluation = json.loads(trimmed_eval(cell, out).read_text())
        rec["last"] = rec["best"] = evaluation["dev"]
        rec["degenerate"] = bool(evaluation.get("degenerate"))
        rec["params"] = trim["params"]
        rec["trim"] = {k: trim[k] for k in ("pieces_before", "pieces_after", "checked_on") if k in trim}
        run = trimmed_dir(cell, out)
    if (run / "config.json").is_file():
        rec["shape"] = list(_shape(run))
    rec["command"] = settings_line(cell, cmd)
    done = trimmed_eval(cell, out) if cell.trimmed else run / "metrics.json"
    rec["finished"] = dt.datetime.fromtimestamp(done.stat().st_mtime).date().isoformat()
    return rec


def _relative(arg: str) -> str:
    """A path under the checkout's parent written relative to the checkout (as the README does)."""
    return os.path.relpath(arg, ROOT) if str(arg).startswith(str(ROOT.parent)) else str(arg)


def read_ledger(ledger: Path, name: str = "cells.json") -> dict[str, Any]:
    path = ledger / name
    return json.loads(path.read_text()) if path.is_file() else {}


def sync(cells: list[Cell], tier: Tier, args: argparse.Namespace, out: Path, ledger: Path) -> None:
    """Record every cell finished under ``out`` that the ledger lacks or holds from another run; a
    teacher run again (its model was on another machine) keeps its earlier scores under ``previous``."""
    records = read_ledger(ledger)
    changed = False
    for c in cells:
        run = out / c.name
        if (m := read_metrics(run)) is None or (c.trimmed and not trimmed_eval(c, out).is_file()):
            continue
        made_by = _made_by(run)
        new = record(
            c, m, run, made_by.read_text().split() if made_by.is_file() else command(c, tier, args, out)
        )
        old = records.get(c.name)
        # the same run, perhaps with fields recorded since (teacher_dev): updated, not a new run
        same = old is not None and all(old[k] == new[k] for k in new if k in old)
        if same and set(new) <= set(old):
            continue
        if old is not None and not same:
            keep = ("dev", "last", "best", "train_seconds", "finished", "source", "note", "command")
            earlier = {k: old[k] for k in keep if k in old}
            new["previous"] = [*old.get("previous", []), earlier]
        records[c.name] = {**old, **new} if same else new
        changed = True
    if changed:
        ledger.mkdir(parents=True, exist_ok=True)
        (ledger / "cells.json").write_text(json.dumps(records, indent=1, sort_keys=True) + "\n")


PATH_OPTIONS = {"--output", "--data-dir", "--teacher"}  # where things are, not how the cell runs
# files the suite makes under its output (a task's augmented rows, the cut MiniLM): named by their last
# two parts (task and file), wherever the output is
MADE_OPTIONS = {"--train-file", "--student"}


def _settings_of(cmd: str) -> list[str]:
    """A cell's command without the options that only say where things are."""
    words = cmd.split()
    return [
        "/".join(Path(w).parts[-2:]) if i and words[i - 1] in MADE_OPTIONS else w
        for i, w in enumerate(words)
        if w not in PATH_OPTIONS and (i == 0 or words[i - 1] not in PATH_OPTIONS)
    ]


def current(cell: Cell, tier: Tier, args: argparse.Namespace) -> str:
    """The cell's command under the tier's present settings (paths as the README writes them)."""
    return settings_line(cell, command(cell, tier, args, args.output / tier.name / args.teacher))


def collect(
    cells: list[Cell], ledger: Path, tier: Tier, args: argparse.Namespace, stale: bool = False
) -> dict[Cell, dict[str, Any]]:
    """The recorded cells of the plan, in plan order, that ran with the tier's present settings (with
    ``stale``: those that ran with other settings; they are run again and kept out of the tables)."""
    records = read_ledger(ledger)
    return {
        c: records[c.name]
        for c in cells
        if c.name in records
        and (_settings_of(records[c.name]["command"]) != _settings_of(current(c, tier, args))) == stale
    }


def _minutes(runs: list[dict[str, Any]]) -> str:
    """Mean train minutes (and cell wall minutes where known) of a group of runs."""
    train = f"{statistics.mean(m['train_seconds'] for m in runs) / 60:.0f}"
    walls = [m["wall_seconds"] for m in runs if "wall_seconds" in m]
    return f"{train} / {statistics.mean(walls) / 60:.0f}" if walls else f"{train} / -"


def _notes(done: dict[Cell, dict[str, Any]], ledger: Path) -> list[str]:
    """The ledger's ``notes.json`` (notes on the suite as a whole), each recorded run's own ``note``
    (what was unusual about it), where a record came from, and the teachers fine-tuned again."""
    notes = [f"- `{name}`: {text}" for name, text in read_ledger(ledger, "notes.json").items()]
    sources: dict[str, list[str]] = {}
    for c, m in done.items():
        if "note" in m:
            notes.append(f"- `{c.name}`: {m['note']}")
        if "source" in m:
            sources.setdefault(m["source"], []).append(c.name)
        for p in m.get("previous", []):
            if c.kind == "student" and "last" in p:
                was = "last {:.2f}, best {:.2f}".format(score(p["last"], c.task), score(p["best"], c.task))
                diff = _diff(p.get("command", ""), m["command"]) or "the same settings"
                notes.append(
                    f"- `{c.name}`: the run of {p.get('finished')} scored {was}; it ran with {diff}."
                )
            if c.kind == "teacher" and "dev" in p:
                same = (
                    "the same"
                    if _settings_of(p.get("command", "")) == _settings_of(m["command"])
                    else "the present"
                )
                notes.append(
                    f"- `{c.name}`: fine-tuned again on {m['finished']} (its model stays on the machine that"
                    f" trains it; its students need it) with {same} settings;"
                    f" the run of {p.get('finished')} scored {score(p['dev'], c.task):.2f}."
                )
    notes += [f"- {', '.join(f'`{n}`' for n in names)}: {text}." for text, names in sources.items()]
    return ["## Notes on cells", "", *notes, ""] if notes else []


def report(cells: list[Cell], tier: Tier, args: argparse.Namespace, ledger: Path, lat: dict[str, Any]) -> str:
    done = collect(cells, ledger, tier, args)
    tasks = [t for t in TASKS if any(c.task == t for c in cells)]
    teachers = {c.task: m for c, m in done.items() if c.kind == "teacher"}
    lines = [
        "# GLUE suite results",
        "",
        "Generated by `benchmarks/glue_suite.py` from the cells finished so far; rerun it to complete"
        " or refresh (`--report-only` only rewrites this file).",
        "",
    ]
    configs = {
        c.config: _config_summary(c.config, done, teachers, tasks) for c in done if c.kind == "student"
    }
    config = headline_config(configs)
    if config is not None:
        retention, ratio, tasks_done, t_abs, s_abs = configs[config]
        lines.append(
            f"mean retention: {retention:.1f}% at {ratio:.1f}x fewer "
            f"parameters — tier {tier.name}, {len(tasks_done)} of {len(tasks)} tasks "
            f"({', '.join(tasks_done)}), teacher {TEACHERS[args.teacher]}, "
            f"{CONFIGS.get(config, ' '.join(config))}, last dev evaluation, {dt.date.today().isoformat()}"
        )
        lines += [
            "",
            f"Absolute means over those tasks: teacher {t_abs:.2f}, student "
            f"{s_abs:.2f} (paper, GLUE test, same five tasks: BERT-base 77.3, "
            "TinyBERT4 74.0, retention 94.9%).",
        ]
    else:
        lines.append("mean retention: n/a — no task has a teacher and a headline student yet")
    lines += ["", f"Machine: {platform.machine()}, {os.cpu_count()} CPU threads, {platform.platform()}.", ""]
    lines += _config_table(configs, config, done, teachers, tasks)
    lines += _settings(tier, args, ledger, tasks)
    lines += _teacher_table(teachers, tasks)
    lines += _student_table(done, teachers, lat, tasks)
    lines += _notes(done, ledger)
    lines += _earlier(collect(cells, ledger, tier, args, stale=True), tier, args)
    return "\n".join(lines) + "\n"


# What the headline line says of a configuration (start, recipe); others by their names.
CONFIGS = {
    ("pruned", "tinybert4"): "TinyBERT4-shape student pruned from it + TinyBERT task distillation",
    ("minilm6-trim", "tinybert4-prediction"): "all-MiniLM-L6-v2 (6L-384) remapped onto its tokenizer +"
    " TinyBERT's prediction step, vocabulary trimmed to the task's pieces after it",
    ("minilm6-trim", f"tinybert4-prediction-aug{AUG}"): "all-MiniLM-L6-v2 (6L-384) remapped onto its"
    f" tokenizer + TinyBERT's prediction step on augmented rows (N_a = {AUG}), vocabulary trimmed after it",
    ("minilm6-trim", f"tinybert4-prediction-aug{AUG}-e{AUG_EPOCHS}"): "all-MiniLM-L6-v2 (6L-384) remapped"
    f" onto its tokenizer + TinyBERT's prediction step, {AUG_EPOCHS} epochs over augmented rows"
    f" (N_a = {AUG}), vocabulary trimmed after it",
    ("minilm6-trim", f"tinybert4-aug{AUG}-e{AUG_EPOCHS}"): "all-MiniLM-L6-v2 (6L-384) remapped onto its"
    f" tokenizer + TinyBERT's both steps on augmented rows (N_a = {AUG}; {AUG_STEP1_EPOCHS} + {AUG_EPOCHS}"
    " epochs), vocabulary trimmed after it",
}


def _config_summary(
    config: tuple[str, str], done: dict[Cell, dict[str, Any]], teachers: dict[str, Any], tasks: list[str]
) -> tuple[float, float, list[str], float, float]:
    """(mean retention, mean params ratio, tasks, teacher mean, student mean) of one configuration over the
    tasks where it has runs (the mean over seeds of the last evaluation)."""
    retention, ratios, names, t_abs, s_abs = [], [], [], [], []
    for task in tasks:
        runs = [m for c, m in done.items() if c.kind == "student" and c.task == task and c.config == config]
        if task not in teachers or not runs:
            continue
        t = statistics.mean(teacher_of(m, teachers[task], task) for m in runs)
        last = statistics.mean(student_scores(m, task)[0] for m in runs)
        retention.append(100 * last / t)
        ratios.append(teachers[task]["params"] / runs[0]["params"])
        names.append(task)
        t_abs.append(t)
        s_abs.append(last)
    mean = statistics.mean
    return mean(retention), mean(ratios), names, mean(t_abs), mean(s_abs)


def headline_config(configs: dict[tuple[str, str], tuple[float, float, list[str], float, float]]) -> Any:
    """The one configuration the headline reports: of those run on the most tasks at >= TRIM_RATIO fewer
    parameters, the one with the highest mean retention (never a per-task pick)."""
    small = {k: v for k, v in configs.items() if v[1] >= TRIM_RATIO}
    if not small:
        return None
    most = max(len(v[2]) for v in small.values())
    return max((k for k, v in small.items() if len(v[2]) == most), key=lambda k: small[k][0])


def _config_table(
    configs: dict[tuple[str, str], tuple[float, float, list[str], float, float]],
    headline: Any,
    done: dict[Cell, dict[str, Any]],
    teachers: dict[str, Any],
    tasks: list[str],
) -> list[str]:
    """Every configuration's mean retention, and each task's best student (the headline's is one config)."""
    lines = [
        "## Configurations",
        "",
        "Mean retention (last evaluation, mean over seeds) of each start and recipe over the tasks it ran,"
        " and the headline configuration's over the same tasks; the headline is the one run on the most"
        f" tasks with the highest mean at >= {TRIM_RATIO:g}x. Per task, the best student of any"
        " configuration beside it.",
        "",
        "| start | recipe | tasks | mean retention | headline's on those tasks | params ratio | headline |",
        "|---|---|---|---|---|---|---|",
    ]
    for (start, recipe), (ret, ratio, names, _, _) in sorted(configs.items(), key=lambda kv: -kv[1][0]):
        mark = "yes" if (start, recipe) == headline else ""
        same = (
            _config_summary(headline, done, teachers, names)
            if headline and set(names) <= set(configs[headline][2])
            else None
        )
        shown = f"{same[0]:.1f}%" if same else "-"
        lines.append(
            f"| {start} | {recipe} | {len(names)} ({', '.join(names)}) | {ret:.1f}% | {shown} |"
            f" {ratio:.1f}x | {mark} |"
        )
    lines += [
        "",
        "| task | best student | start, recipe | retention | params ratio |",
        "|---|---|---|---|---|",
    ]
    for task in tasks:
        runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for c, m in done.items():
            if c.kind == "student" and c.task == task:
                runs.setdefault(c.config, []).append(m)
        if task not in teachers or not runs:
            continue
        key, group = max(
            runs.items(), key=lambda kv: statistics.mean(student_scores(m, task)[0] for m in kv[1])
        )
        t = statistics.mean(teacher_of(m, teachers[task], task) for m in group)
        last = statistics.mean(student_scores(m, task)[0] for m in group)
        lines.append(
            f"| {task} | {last:.2f} | {key[0]}, {key[1]} | {100 * last / t:.1f}% |"
            f" {teachers[task]['params'] / group[0]['params']:.1f}x |"
        )
    return [*lines, ""]


def _options(cmd: str) -> dict[str, str]:
    words = _settings_of(cmd)
    return {w: (words[i + 1] if i + 1 < len(words) and not words[i + 1].startswith("--") else "")
            for i, w in enumerate(words) if w.startswith("--")}  # fmt: skip


def _shown(options: dict[str, str], key: str) -> str:
    return f"`{key} {options[key]}`".replace(" `", "`") if key in options else "unset"


def _diff(before: str, after: str) -> str:
    """The options in which two cell commands differ: ``--x 1`` (now ``--x 2``), ..."""
    was, now = _options(before), _options(after)
    keys = sorted(k for k in set(was) | set(now) if was.get(k) != now.get(k))
    return ", ".join(f"{_shown(was, k)} (now {_shown(now, k)})" for k in keys)


def _earlier(stale: dict[Cell, dict[str, Any]], tier: Tier, args: argparse.Namespace) -> list[str]:
    """Recorded cells whose settings are not the tier's present ones: their scores and what differed."""
    if not stale:
        return []
    lines = ["## Cells recorded with other settings", "",
             "Not in the tables above; the suite runs them again with the present settings.", ""]  # fmt: skip
    for c, m in stale.items():
        diff = _diff(m["command"], current(c, tier, args))
        scores = (
            f"{score(m['dev'], c.task):.2f}"
            if c.kind == "teacher"
            else "last {:.2f}, best {:.2f}".format(*student_scores(m, c.task))
        )
        note = f" Note: {m['note']}" if "note" in m else ""
        lines.append(
            f"- `{c.name}` ({m.get('finished', '?')}): {METRIC[c.task]} {scores}; ran with {diff}.{note}"
        )
    return [*lines, ""]


def _settings(tier: Tier, args: argparse.Namespace, ledger: Path, tasks: list[str]) -> list[str]:
    caps = ", ".join(f"{k} {v:,} rows" for k, v in tier.max_train_samples.items()) or "none (full train sets)"
    teacher_epochs = tier.teacher_epochs or "the task's"
    return [
        "## Settings",
        "",
        f"- Tier `{tier.name}`; precision {tier.precision} autocast (fp32 master weights); batch 32; the"
        " task's max length (128 for pairs, 64 for single sentences).",
        f"- Train-set caps: {caps}. Dev sets whole.",
        f"- Teacher: {TEACHERS[args.teacher]}, {teacher_epochs} epochs at lr {tier.teacher_lr},"
        " best dev kept"
        + (
            f"; length-bucketed batches (windows of {tier.teacher_length_buckets} batches sorted by length)."
            if tier.teacher_length_buckets
            else "."
        ),
        f"- Students: TinyBERT4 shape; TinyBERT {tier.intermediate_epochs:g} intermediate +"
        f" {tier.prediction_epochs:g} prediction epochs at lr {tier.intermediate_lr or 1e-4:g} /"
        f" {tier.prediction_lr or 5e-5:g}"
        + (" (the tinybert4 recipe's)" if not (tier.intermediate_lr or tier.prediction_lr) else "")
        + (
            f", raised on small train sets so that each stage runs at least {tier.min_stage_steps} steps"
            + (
                f" (the prediction stage {tier.min_prediction_steps})"
                if tier.min_prediction_steps and tier.min_prediction_steps != tier.min_stage_steps
                else ""
            )
            + f" of {BATCH} rows: "
            + ", ".join("{} {:g} + {:g}".format(t, *tier.student_epochs(t)) for t in tasks)
            if tier.min_stage_steps
            else ""
        )
        + "; TinyBERT's prediction step alone (`tinybert4-prediction`) the same total epochs in its one"
        " stage; LRC-BERT the same two stages (COS-NCE, then COS-NCE + soft/hard CE with its own"
        " schedule); the `minilm` start is all-MiniLM-L6-v2 remapped onto the teacher's tokenizer and cut"
        " to the same shape (`prune --vocab-from`); `-aug4` cells: TinyBERT's augmentation (N_a ="
        f" {AUG}, p_t 0.4, K 15; masked-LM candidates from a head trained {MLM_STEPS} steps on"
        " all-MiniLM-L6-v2 over WikiText-2) of the train rows, teacher-labelled (its logits, computed once"
        " and kept on disk), as many steps as the same cell without augmentation (N_a = 20 would leave"
        f" most variants unseen in those steps and cost 5x the teacher pass); `-aug{AUG}-e{AUG_EPOCHS}`"
        f" cells: the same rows, {AUG_EPOCHS} epochs over them (TinyBERT's prediction epochs on augmented"
        " data: 2.1x the plain cell's steps on CoLA, 1.9x on MRPC, 2.8x on STS-B); `tinybert4-aug"
        f"{AUG}-e{AUG_EPOCHS}` cells: TinyBERT's step 1 ({AUG_STEP1_EPOCHS} epoch, the teacher's states"
        " online when they exceed the state cache) on those rows, then the same step 2.",
        f"- Seeds: {', '.join(map(str, tier.seeds))} on the four small tasks for the pruned TinyBERT student,"
        " the minilm6-trim student and its augmented cells (where run); one seed (42) otherwise.",
        "- A run without `--only` runs the core cells: the teachers, "
        + " and ".join(f"{start} + {recipe} ({seeds})" for (start, recipe), seeds in CORE.items())
        + "; `--all-cells` or `--only PATTERN` runs the others.",
        *_general_line(args.general, ledger),
        "",
    ]


def record_general(general: str | None, ledger: Path) -> None:
    """Keep what the ``general`` start is (its run's teacher, corpus, steps, time, prune plan) in the
    ledger's ``general.json``, read from its directory when present, for machines without it."""
    path, kept = Path(general or ""), read_ledger(ledger, "general.json")
    if not general or (m := read_metrics(path)) is None:
        return
    keys = (
        "teacher",
        "corpus",
        "steps",
        "global_batch_size",
        "sequences_seen",
        "epochs_seen",
        "train_seconds",
    )
    info: dict[str, Any] = {k: m.get(k) for k in keys}
    if (path / "prune.json").is_file():
        plan = json.loads((path / "prune.json").read_text())
        info["prune"] = {
            "teacher": plan["teacher"],
            "layers": plan["layers"],
            "source": plan["calibration"].get("source"),
        }
    if kept.get(general) != info:
        ledger.mkdir(parents=True, exist_ok=True)
        (ledger / "general.json").write_text(json.dumps({**kept, general: info}, indent=1) + "\n")


def _general_line(general: str | None, ledger: Path) -> list[str]:
    if not general:
        return []
    info = read_ledger(ledger, "general.json").get(general)
    if info is None:
        return [f"- General start: `{general}` (not on this machine and not in the ledger)."]
    start = "random init"
    if plan := info.get("prune"):
        source = plan.get("source") or "calibration rows"
        start = f"pruned from {plan['teacher']} (layers {plan['layers']}, calibrated on `{source}`)"
    return [
        f"- General start: `{general}`: {start}, then general distillation from the pre-trained"
        f" {info.get('teacher')} on `{info.get('corpus')}`: {info.get('steps')} steps of"
        f" {info.get('global_batch_size')} sequences ({info.get('sequences_seen') or 0:,} sequences,"
        f" {info.get('epochs_seen')} passes over the corpus),"
        f" {(info.get('train_seconds') or 0) / 60:.0f} min;"
        " the same task distillation as the other starts."
    ]


def _teacher_table(teachers: dict[str, dict[str, Any]], tasks: list[str]) -> list[str]:
    lines = [
        "## Teachers",
        "",
        "| task | metric | teacher dev | BERT-base dev (published) | BERT-base test (TinyBERT paper) |"
        " flag | train / cell min |",
        "|---|---|---|---|---|---|---|",
    ]
    for task in tasks:
        if task not in teachers:
            continue
        m = teachers[task]
        t = teacher_score(m, task)
        low, high = BERT_BASE_DEV[task]
        extra = f" (Pearson {100 * m['dev']['pearson']:.2f})" if task == "STS-B" else ""
        flag = f"{low - t:.1f} below" if t < low - 3 else ""
        lines.append(
            f"| {task} | {METRIC[task]} | {t:.2f}{extra} | {low}-{high} | {PAPER_TEACHER[task]} | {flag} | "
            f"{_minutes([m])} |"
        )
    return [*lines, ""]


def _student_table(
    done: dict[Cell, dict[str, Any]],
    teachers: dict[str, dict[str, Any]],
    lat: dict[str, Any],
    tasks: list[str],
) -> list[str]:
    lines = [
        "## Students",
        "",
        "Scores x100 on the paper's metric; last / best = the last and the best dev evaluation of the"
        " run's last stage (mean ± sd over seeds where there are several). Latency: batch 1, length 128,"
        " median ms on this CPU, ratios teacher / student.",
        "",
        "| task | method | start | seeds | teacher | student last | student best | retention (last) |"
        " TinyBERT4 paper (test) | params ratio | speed-up torch | speed-up ONNX int8 | train / cell min |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for c, m in done.items():
        if c.kind == "student":
            groups.setdefault((c.task, c.recipe, c.start), []).append(m)
    for (task, recipe, start), runs in sorted(
        groups.items(), key=lambda kv: (tasks.index(kv[0][0]), kv[0][1:])
    ):
        if task not in teachers:
            continue
        t = statistics.mean(teacher_of(m, teachers[task], task) for m in runs)
        last = [student_scores(m, task)[0] for m in runs]
        best = [student_scores(m, task)[1] for m in runs]
        tl, sl = lat.get("teacher", {}), lat.get(f"student-{start}", {})
        speed = [f"{tl[b] / sl[b]:.1f}x" if b in tl and b in sl else "-" for b in ("torch", "onnx-int8")]
        stuck = sum(bool(m.get("degenerate")) for m in runs)
        flag = f" ({stuck} of {len(runs)} not beating the majority class by 1 point)" if stuck else ""
        lines.append(
            f"| {task} | {recipe} | {start} | {len(runs)} | {t:.2f} | {_mean_sd(last)}{flag} | "
            f"{_mean_sd(best)} | "
            f"{100 * statistics.mean(last) / t:.1f}% | {PAPER_TINYBERT4[task]} | "
            f"{teachers[task]['params'] / runs[0]['params']:.1f}x | {speed[0]} | {speed[1]} | "
            f"{_minutes(runs)} |"
        )
    return [*lines, ""]


# ---------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tier", choices=sorted(TIERS), default="cpu")
    p.add_argument("--teacher", choices=sorted(TEACHERS), default="mpnet")
    p.add_argument("--tasks", default=",".join(TASKS), help="Comma-separated subset of " + ",".join(TASKS))
    p.add_argument("--data-dir", type=Path, default=GLUE)
    p.add_argument("--output", type=Path, default=ROOT / "runs" / "glue-suite")
    p.add_argument("--results", type=Path, default=ROOT / "docs" / "results.md")
    p.add_argument(
        "--ledger",
        type=Path,
        default=ROOT / "benchmarks" / "results" / "glue-suite",
        help="Where finished cells are recorded (committed; <tier>/<teacher>/cells.json).",
    )
    p.add_argument(
        "--general", default=None, help="General-distillation checkpoint: adds the 'general' start."
    )
    p.add_argument("--no-lrc", action="store_true", help="Skip the LRC-BERT cells.")
    p.add_argument("--seeds", type=int, default=3, help="Seeds of the headline cell on the small tasks.")
    p.add_argument(
        "--only",
        default=None,
        help="Run only cells whose name contains this (e.g. STS-B/), and their teachers.",
    )
    p.add_argument(
        "--all-cells",
        action="store_true",
        help="Run every cell of the plan, not only the core ones (teachers, the headline configuration,"
        " the pruned TinyBERT reference); --only selects from every cell.",
    )
    p.add_argument("--stop-after", type=float, default=None, help="Start no new cell after N minutes.")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="Print the cells' commands only.")
    args = p.parse_args(argv)
    args.tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = sorted(set(args.tasks) - set(TASKS))
    if unknown:
        p.error(f"unknown task(s) {', '.join(unknown)}; choose from {', '.join(TASKS)}")
    return args


def todo(cells: list[Cell], tier: Tier, args: argparse.Namespace, out: Path, ledger: Path) -> list[Cell]:
    """The cells to run, in plan order: those selected (``--only``) and not in the ledger with the
    tier's present settings, and the teacher of each such student when its model is not under ``out``."""
    current_ = collect(cells, ledger, tier, args)
    pending = [c for c in cells if c not in current_ and (not args.only or args.only in c.name)]
    needed = {c.task for c in pending if c.kind == "student"}
    return [
        c
        for c in cells
        if c in pending or (c.kind == "teacher" and c.task in needed and read_metrics(out / c.name) is None)
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    base = TIERS[args.tier]
    tier = Tier(**{**base.__dict__, "seeds": tuple(42 + i for i in range(args.seeds))})
    out = args.output / tier.name / args.teacher
    ledger = args.ledger / tier.name / args.teacher
    cells = plan(tier, args.tasks, args.general, not args.no_lrc)
    if not (args.all_cells or args.only):
        cells = core(cells, tier)
    # --tasks, --no-lrc and --general choose what runs; the report shows every recorded cell of the
    # whole plan (the general start: the one given, else the one recorded last)
    general = args.general or next(reversed(read_ledger(ledger, "general.json")), None)
    shown = argparse.Namespace(**{**vars(args), "general": general})
    everything = plan(tier, TASKS, general, lrc=True)
    sync(cells, tier, args, out, ledger)
    record_general(args.general, ledger)
    began = time.monotonic()
    if not args.report_only:
        if not args.data_dir.is_dir():
            print(f"error: GLUE data not found at {args.data_dir} (--data-dir)", file=sys.stderr)
            return 2
        queue = todo(cells, tier, args, out, ledger)
        print(
            f"{len(collect(cells, ledger, tier, args))} of {len(cells)} cells recorded with these settings"
            f" in {_relative(str(ledger))}; {len(queue)} to run"
        )
        for cell in queue:
            cmd = command(cell, tier, args, out)
            if args.dry_run:
                print("tinydistill " + " ".join(cmd))
                continue
            if args.stop_after is not None and (time.monotonic() - began) / 60 > args.stop_after:
                print(f"--stop-after {args.stop_after} min reached; stopping before {cell.name}")
                break
            if prepare_start(cell, args, out, args.threads, tier):
                done = run_cell(cell, cmd, out, args.threads)
                if cell.trimmed and "error" not in done:
                    trim_and_evaluate(cell, args, out, args.threads)
            sync(cells, tier, args, out, ledger)
            write_results(everything, tier, shown, out, ledger, measure=False)
    if args.dry_run:
        return 0
    write_results(everything, tier, shown, out, ledger, measure=True)
    print(args.results.read_text().split("\n## Settings")[0])
    return 0


def _shape(model: Path) -> tuple[Any, ...]:
    """What latency depends on: the architecture and sizes in the model's config (not its weights)."""
    cfg = json.loads((model / "config.json").read_text())
    keys = ("model_type", "num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size",
            "vocab_size", "num_labels")  # fmt: skip
    return tuple(cfg.get(k) for k in keys) + (len(cfg.get("id2label") or {}),)


def write_results(
    cells: list[Cell], tier: Tier, args: argparse.Namespace, out: Path, ledger: Path, measure: bool
) -> None:
    """Rewrite the results file from the ledger; with ``measure`` first time the shapes not yet in
    latency.json, on a model of that shape present under ``out``."""
    models: dict[str, Path] = {}
    same: dict[str, str] = {}  # a start whose students have the shape of an earlier start's: timed once
    shapes: dict[tuple[Any, ...], str] = {}
    for c, rec in collect(cells, ledger, tier, args).items():
        key = "teacher" if c.kind == "teacher" else f"student-{c.start}"
        model = trimmed_dir(c, out) if c.trimmed else out / c.name
        present = (model / "config.json").is_file()
        if "shape" not in rec:
            continue
        first = shapes.setdefault(tuple(rec["shape"]), key)
        if first != key:
            same.setdefault(key, first)
        elif present:
            models.setdefault(key, model)
    known = read_ledger(ledger, "latency.json")
    missing = [k for k in models if k not in known]
    # a new shape is timed beside the teacher (and every other shape present); the teacher never alone
    side_by_side = "teacher" in models and len(models) > 1
    lat = latency(models, ledger) if measure and missing and side_by_side else known
    lat = {**lat, **{k: lat[v] for k, v in same.items() if v in lat and k not in lat}}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(report(cells, tier, args, ledger, lat))


if __name__ == "__main__":
    sys.exit(main())
