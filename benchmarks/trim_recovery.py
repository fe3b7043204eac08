"""Vocabulary trimming's cost per task, with and without a recovery step.

Takes each task's trimmed GLUE-suite student (``minilm6-trim``: all-MiniLM-L6-v2 remapped, TinyBERT's
prediction step, then ``trim-vocab`` to 7.5x fewer parameters than the teacher) and runs a recovery
step on it: TinyBERT's prediction step again on the task's train rows, the trimmed student reading its
own tokenizer and the teacher its own (``distill --own-tokenizer``: logits need no aligned tokens),
1 epoch at lr 5e-5 by default. Prints and records (``benchmarks/results/trim-recovery/``) the
whole-vocabulary, trimmed and recovered dev scores of each task side by side. Resumable: a finished
task is not run again, an interrupted one continues from its checkpoint.

    PYTHONPATH=src python benchmarks/trim_recovery.py --threads 1              # the five tasks
    PYTHONPATH=src python benchmarks/trim_recovery.py --tasks MRPC --epochs 2  # another schedule
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import glue_suite as suite  # noqa: E402

RESULTS = suite.ROOT / "benchmarks" / "results" / "trim-recovery"


def cell_of(task: str, seed: int) -> suite.Cell:
    return suite.Cell(task, "student", "minilm6-trim", "tinybert4-prediction", seed)


def recovery_dir(cell: suite.Cell, out: Path, epochs: float, lr: float) -> Path:
    return out / cell.task / f"{Path(cell.name).name}-trimmed-recovered-e{epochs:g}-lr{lr:g}"


def command(cell: suite.Cell, args: argparse.Namespace, out: Path, run: Path) -> list[str]:
    """The recovery run: the suite cell's options (its rows, as the teacher labelled them), the trimmed
    student on its own tokenizer."""
    return [
        "distill", "--teacher", str(out / cell.task / "teacher"),
        "--student", str(suite.trimmed_dir(cell, out)), "--output", str(run),
        "--own-tokenizer", "--recipe", "tinybert4", "--stage", "prediction",
        "--prediction-epochs", f"{args.epochs:g}", "--prediction-lr", f"{args.lr:g}",
        "--seed", str(cell.seed),
        *suite.common_options(cell.task, suite.TIERS[args.tier], args.data_dir),
    ]  # fmt: skip


def row(
    cell: suite.Cell, ledger: dict[str, Any], recovered: dict[str, Any], minutes: float
) -> dict[str, Any]:
    """One task's scores (x100, last dev evaluation) from the suite's record and the recovery run."""
    rec = ledger[cell.name]
    task = cell.task
    last, _ = suite._last_best(recovered, task)
    return {
        "task": task,
        "metric": suite.METRIC[task],
        "teacher": round(suite.teacher_of(rec, ledger[f"{task}/teacher"], task), 2),
        "whole": round(suite.score(rec["untrimmed"]["last"], task), 2),
        "trimmed": round(suite.score(rec["last"], task), 2),
        "recovered": round(suite.score(last, task), 2),
        "params": rec["params"],
        "teacher_params": ledger[f"{task}/teacher"]["params"],
        "pieces": rec["trim"]["pieces_after"],
        "minutes": round(minutes, 1),
    }


def table(rows: list[dict[str, Any]], epochs: float, lr: float) -> str:
    lines = [
        f"Recovery: TinyBERT's prediction step, {epochs:g} epoch(s) at lr {lr:g}, the trimmed student on its"
        " own tokenizer; scores x100, last dev evaluation.",
        "",
        "| task | teacher | whole vocabulary | trimmed | trimming's cost | + recovery | recovery's gain"
        " | pieces | params ratio | recovery min |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['task']} ({r['metric']}) | {r['teacher']:.2f} | {r['whole']:.2f} | {r['trimmed']:.2f}"
            f" | {r['trimmed'] - r['whole']:+.2f} | {r['recovered']:.2f}"
            f" | {r['recovered'] - r['trimmed']:+.2f} | {r['pieces']:,}"
            f" | {r['teacher_params'] / r['params']:.1f}x | {r['minutes']:.1f} |"
        )
    if len(rows) > 1:
        gain = statistics.mean(r["recovered"] - r["trimmed"] for r in rows)
        cost = statistics.mean(r["trimmed"] - r["whole"] for r in rows)
        lines += ["", f"Mean over {len(rows)} tasks: trimming {cost:+.2f}, recovery {gain:+.2f} points."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tier", choices=sorted(suite.TIERS), default="cpu")
    p.add_argument("--teacher", choices=sorted(suite.TEACHERS), default="mpnet")
    p.add_argument("--tasks", default=",".join(suite.TASKS))
    p.add_argument("--seed", type=int, default=42, help="The suite cell's seed (its trimmed student).")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--data-dir", type=Path, default=suite.GLUE)
    p.add_argument("--output", type=Path, default=suite.ROOT / "runs" / "glue-suite")
    p.add_argument("--ledger", type=Path, default=suite.ROOT / "benchmarks" / "results" / "glue-suite")
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    out = args.output / args.tier / args.teacher
    ledger = suite.read_ledger(args.ledger / args.tier / args.teacher)
    record_file = args.results / f"{args.tier}-{args.teacher}.json"
    records = json.loads(record_file.read_text()) if record_file.is_file() else {}
    rows = []
    for task in [t.strip() for t in args.tasks.split(",") if t.strip()]:
        cell = cell_of(task, args.seed)
        if cell.name not in ledger or not (suite.trimmed_dir(cell, out) / "config.json").is_file():
            print(f"{task}: no trimmed student of {cell.name} recorded and present under {out}; skipped")
            continue
        run = recovery_dir(cell, out, args.epochs, args.lr)
        key = f"{cell.name} e{args.epochs:g} lr{args.lr:g}"
        minutes = records.get(key, {}).get("minutes", float("nan"))
        if (metrics := suite.read_metrics(run)) is None:
            began = time.perf_counter()
            log = run.parent / f"{run.name}.log"
            rc = suite.tinydistill(command(cell, args, out, run), run.name, log, args.threads)
            if rc != 0 or (metrics := suite.read_metrics(run)) is None:
                print(f"  failed (exit {rc}): see {log}", file=sys.stderr)
                return 1
            minutes = (time.perf_counter() - began) / 60
        new = row(cell, ledger, metrics, minutes)
        records[key] = {**new, "finished": records.get(key, {}).get("finished", dt.date.today().isoformat())}
        rows.append(records[key])
        args.results.mkdir(parents=True, exist_ok=True)
        record_file.write_text(json.dumps(records, indent=1) + "\n")
    if rows:
        text = table(rows, args.epochs, args.lr)
        (args.results / f"{args.tier}-{args.teacher}.md").write_text(text)
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
