"""Task distillation speed, measured side by side in one run: the prediction stage with the teacher
forward every step vs with the teacher's logits computed once (``--teacher-cache``), and the
intermediate stage for reference.

Setting (the speed issue's): a BERT-base-size teacher (12 layers, 768 hidden, the real 30,522-word
vocabulary, random weights: speed does not depend on them) -> the TinyBERT4 student (4L-312), batch
32, SST-2 train rows (``--rows``, from ``../shared/data/glue`` when present, else made-up sentences),
the configurations alternated ``--repeats`` times. CPU-seconds per step are the fairer figure on a
loaded machine.

    PYTHONPATH=src python benchmarks/distill_throughput.py --rows 1281 --steps 10 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification

import tinydistill
from tinydistill.models.load import load_tokenizer

GLUE = Path(__file__).resolve().parents[2] / "shared" / "data" / "glue"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def sst2_rows(n: int, out: Path) -> Path:
    """``out/SST-2/{train,dev}.tsv`` with ``n`` train rows (real SST-2 when present)."""
    task = out / "SST-2"
    task.mkdir(parents=True)
    source = GLUE / "SST-2" / "train.tsv"
    if source.is_file():
        lines = source.read_text().splitlines()
        header, rows = lines[0], lines[1 : n + 1]
    else:
        rng = random.Random(0)
        words = "the a film movie story acting plot was is very good bad dull great fine boring".split()
        header = "sentence\tlabel"
        rows = [" ".join(rng.choices(words, k=rng.randint(5, 30))) + f"\t{i % 2}" for i in range(n)]
    (task / "train.tsv").write_text("\n".join([header, *rows]) + "\n")
    (task / "dev.tsv").write_text("\n".join([header, *rows[:64]]) + "\n")
    return out


def teacher_dir(out: Path) -> Path:
    """A random 12L-768 BERT classifier with the bert-base-uncased vocabulary (all-MiniLM-L6-v2's)."""
    tokenizer = load_tokenizer("all-MiniLM-L6-v2")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), num_labels=2)
    BertForSequenceClassification(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def run(glue: Path, teacher: Path, out: Path, stage: str, cache: bool, steps: int) -> dict:
    began, cpu = time.perf_counter(), cpu_seconds()
    metrics = tinydistill.distill(
        task="SST-2", data_dir=str(glue), teacher=str(teacher), student="tinybert-4l-312", start="random",
        output=str(out), stage=stage, max_steps=steps, batch_size=32, max_seq_length=64,
        teacher_cache=cache, logger="none", max_eval_samples=64, overwrite=True,
    )  # fmt: skip
    record = metrics["stages"][stage]
    return {
        "stage": stage,
        "teacher_cache": record["teacher_cache"],
        "steps": record["steps"],
        "loop_s_per_step": record["seconds"] / record["steps"],
        "wall_s": time.perf_counter() - began,
        "cpu_s": cpu_seconds() - cpu,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1281)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="distill-bench-"))
    glue, teacher = sst2_rows(args.rows, tmp / "glue"), teacher_dir(tmp / "teacher")
    configs = [("prediction", False), ("prediction", True), ("intermediate", False)]
    results: dict[tuple, list[dict]] = {c: [] for c in configs}
    for _ in range(args.repeats):  # alternated
        for stage, cache in configs:
            results[(stage, cache)].append(run(glue, teacher, tmp / "out", stage, cache, args.steps))
    rows = []
    for (stage, cache), runs in results.items():
        rows.append({
            "stage": stage, "teacher_cache": cache, "steps": args.steps,
            "loop_s_per_step": statistics.median(r["loop_s_per_step"] for r in runs),
            "cpu_s_per_run": statistics.median(r["cpu_s"] for r in runs),
            "wall_s_per_run": statistics.median(r["wall_s"] for r in runs),
        })  # fmt: skip
    base = next(r for r in rows if r["stage"] == "prediction" and not r["teacher_cache"])
    print(f"rows {args.rows}, batch 32, len <= 64, {args.threads} threads, median of {args.repeats}")
    print("| stage | teacher cache | loop s/step | speed-up per step | wall s (incl. cache) |")
    print("|---|---|---|---|---|")
    for r in rows:
        ratio = base["loop_s_per_step"] / r["loop_s_per_step"] if r["stage"] == "prediction" else None
        shown = f"{ratio:.1f}x" if ratio else "-"
        cells = [
            r["stage"],
            r["teacher_cache"],
            f"{r['loop_s_per_step']:.3f}",
            shown,
            f"{r['wall_s_per_run']:.1f}",
        ]
        print("| " + " | ".join(map(str, cells)) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
