"""Compare distillation methods: one teacher, one student shape, one budget, every recipe.

Runs ``tinydistill distill --recipe R`` for each recipe with the same fine-tuned teacher, student,
data subset, sequence length, batch size and seed, and the same number of optimizer steps: each
method gets ``--epochs`` passes over the (capped) train set in total; TinyBERT's two training runs
share them (``--intermediate-epochs`` = ``--prediction-epochs`` = epochs / 2) unless
``--tinybert-full-budget`` gives each of its runs the full ``--epochs``. Prints a markdown table of
dev scores and wall time per method, and writes ``compare.md`` and ``compare.json`` to ``--output``.

    PYTHONPATH=src python benchmarks/compare_methods.py --task MRPC --data-dir ../shared/data/glue \\
        --teacher runs/mrpc-teacher --output runs/compare-mrpc --max-train-samples 2000 --epochs 6

``--dry-run`` only prints the equivalent ``tinydistill distill`` commands.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from tinydistill.config import recipe_path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RECIPES = ["tinybert4", "lrcbert4", "kd", "pkd", "crd"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", required=True)
    p.add_argument("--teacher", required=True, help="Fine-tuned teacher dir (tinydistill finetune).")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--output", default="runs/compare")
    p.add_argument(
        "--recipes", default=",".join(DEFAULT_RECIPES), help="Comma-separated recipe names or paths."
    )
    p.add_argument("--student", default=None, help="One student shape for all (default: each recipe's).")
    p.add_argument(
        "--init-from-teacher",
        action="store_true",
        help="Start every student from the teacher's layers (needs the teacher's width), as BERT-PKD does.",
    )
    p.add_argument("--epochs", type=float, default=3.0, help="Total passes over the train set per method.")
    p.add_argument("--max-train-samples", type=int, default=None)
    p.add_argument("--max-eval-samples", type=int, default=None)
    p.add_argument("--max-steps", type=int, default=None, help="Cap per training run (for smoke tests).")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--max-seq-length", type=int, default=None)
    p.add_argument("--learning-rate", type=float, default=None, help="Default: each recipe's.")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--tinybert-full-budget", action="store_true", help="Each TinyBERT run gets --epochs.")
    p.add_argument("--dry-run", action="store_true")
    return p.parse_args(argv)


def recipe_file(name: str) -> Path:
    path = Path(name)
    return path if path.suffix else recipe_path(name)


def method_kwargs(args: argparse.Namespace, recipe: Path) -> dict[str, Any]:
    """DistillConfig overrides of one method run: the shared budget, split over the two runs of
    TinyBERT and LRC-BERT (stages named intermediate and prediction)."""
    stages = [s["name"] for s in yaml.safe_load(recipe.read_text()).get("stages", [])]
    kw: dict[str, Any] = dict(
        task=args.task,
        data_dir=args.data_dir,
        teacher=args.teacher,
        student=args.student,
        output=str(Path(args.output) / recipe.stem),
        epochs=args.epochs,
        max_train_samples=args.max_train_samples,
        max_eval_samples=args.max_eval_samples,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        max_seq_length=args.max_seq_length,
        learning_rate=args.learning_rate,
        seed=args.seed,
        init_from_teacher=True if args.init_from_teacher else None,
    )
    if stages == ["intermediate", "prediction"] and not args.tinybert_full_budget:
        kw["intermediate_epochs"] = kw["prediction_epochs"] = args.epochs / 2
    return {k: v for k, v in kw.items() if v is not None}


def command(recipe: Path, kw: dict[str, Any]) -> str:
    try:
        shown = recipe.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        shown = recipe
    parts = ["tinydistill", "distill", "--recipe", str(shown)]
    for key, value in kw.items():
        flag = f"--{key.replace('_', '-')}"
        parts += [flag] if value is True else [flag, str(value)]
    return shlex.join(parts)


def table(task: str, rows: list[dict[str, Any]]) -> str:
    from tinydistill.deploy.table import markdown, num

    metrics = sorted({k for r in rows for k in (r.get("dev") or {})})
    header = ["method", *metrics, "student params", "optimizer steps", "train s", "wall s"]
    body = []
    for r in rows:
        dev = r.get("dev") or {}
        values = [num(100 * dev[m]) if m in dev else "-" for m in metrics]
        params = f"{r['params'] / 1e6:.2f}M" if r.get("params") else "-"
        name = r["method"] + (f" (error: {r['error']})" if r.get("error") else "")
        times = [num(r.get("train_seconds"), ".0f"), num(r.get("wall_s"), ".0f")]
        body.append([name, *values, params, str(r.get("steps", "-")), *times])
    title = f"### {task}: dev scores (%) with the same teacher, student and budget"
    return f"{title}\n\n" + markdown(header, body)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    recipes = [recipe_file(r.strip()) for r in args.recipes.split(",") if r.strip()]
    runs = [(r, method_kwargs(args, r)) for r in recipes]
    commands = [command(r, kw) for r, kw in runs]
    if args.dry_run:
        print("\n".join(commands))
        return {"commands": commands}

    import tinydistill
    from tinydistill.errors import TinyDistillError

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    teacher = tinydistill.evaluate(
        args.task,
        args.teacher,
        data_dir=args.data_dir,
        max_seq_length=args.max_seq_length,
        max_eval_samples=args.max_eval_samples,
    )
    rows: list[dict[str, Any]] = [{"method": "teacher", "dev": next(iter(teacher.metrics.values()))}]
    for (recipe, kw), cmd in zip(runs, commands, strict=True):
        start = time.time()
        row: dict[str, Any] = {"method": recipe.stem, "command": cmd}
        try:
            metrics = tinydistill.distill(recipe=str(recipe), **kw)
        except TinyDistillError as exc:
            row["error"] = str(exc)
            print(f"[{recipe.stem}] error: {exc}", file=sys.stderr)
        else:
            row.update(
                dev=metrics["dev"],
                params=metrics["params"],
                train_seconds=metrics["train_seconds"],
                steps=sum(s["steps"] for s in metrics["stages"].values()),
            )
        row["wall_s"] = round(time.time() - start, 1)
        rows.append(row)
    from tinydistill.tasks import get_task

    md = (
        table(get_task(args.task).name, rows)
        + "\nCommands:\n\n"
        + "\n".join(f"    {c}" for c in commands)
        + "\n"
    )
    (out / "compare.md").write_text(md)
    result = {"task": args.task, "teacher": args.teacher, "budget_epochs": args.epochs, "rows": rows}
    (out / "compare.json").write_text(json.dumps(result, indent=2))
    print(md)
    return result


if __name__ == "__main__":
    main()
