"""Task distillation speed, measured side by side in one run: both TinyBERT steps with and without
each speed lever, and (``--original DIR``) the original TinyBERT ``task_distill.py`` on the same data.

Setting (the speed issue's): a BERT-base-size teacher (12 layers, 768 hidden, the real 30,522-word
vocabulary, random weights: speed does not depend on them) -> a TinyBERT4 student (4L-312), batch
32, max length 64, SST-2 train rows (from ``../shared/data/glue`` when present, else made-up
sentences), the same losses (intermediate: embedding + hidden + attention MSE; prediction: soft
cross-entropy), configurations alternated ``--repeats`` times. The caches (teacher logits for the
prediction step, the teacher's mapped states on disk for the intermediate step) are built in a
fresh cache dir, so their one-off cost is measured, not reused from an earlier run.

Per-step cost is the difference of two runs of each configuration, one of ``--steps`` and one of
twice as many optimizer steps, divided by ``--steps``: start-up (loading, tokenizing, the teacher-logit
cache) cancels out and is shown separately ("one-off"). CPU-seconds (user + system, the process and
its children) per step are the fairer figure on a loaded machine; wall seconds are printed too.

The original code is never imported or copied: given a checkout of it (``--original``, the
``TinyBERT`` folder of huawei-noah/Pretrained-Language-Model) and a Python that runs it
(``--original-python``, with ``--original-path`` for extra packages it imports such as boto3), the
script writes the teacher and student in its format (``pytorch_model.bin``, ``config.json``,
``vocab.txt``) and runs it as a separate process.

    PYTHONPATH=src python benchmarks/distill_throughput.py --steps 10 --repeats 2 \\
        --original ORIG/TinyBERT --original-path ORIG/extra   # ORIG: outside this repo
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification

import tinydistill
from tinydistill.models.load import PRESETS, load_tokenizer

GLUE = Path(__file__).resolve().parents[2] / "shared" / "data" / "glue"
BATCH, LENGTH = 32, 64


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


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


def save_model(config: BertConfig, out: Path, seed: int) -> Path:
    """A random BERT classifier in both formats: HF (safetensors) and the original code's (.bin)."""
    tokenizer = load_tokenizer("all-MiniLM-L6-v2")
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    torch.save(model.state_dict(), out / "pytorch_model.bin")
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    (out / "vocab.txt").write_text("".join(token + "\n" for token, _ in vocab))
    return out


def ours(glue: Path, teacher: Path, out: Path, stage: str, precision: str, cache: bool, steps: int) -> dict:
    began, cpu = time.perf_counter(), cpu_seconds()
    tinydistill.distill(
        task="SST-2", data_dir=str(glue), teacher=str(teacher), student="tinybert-4l-312", start="random",
        output=str(out), stage=stage, max_steps=steps, batch_size=BATCH, max_seq_length=LENGTH,
        teacher_cache=cache, mixed_precision=precision, logger="none", max_eval_samples=64, overwrite=True,
        eval_every=10**9,  # only the final evaluation, the same in both runs of a pair
    )  # fmt: skip
    return {"cpu": cpu_seconds() - cpu, "wall": time.perf_counter() - began}


def original(
    args: argparse.Namespace, glue: Path, teacher: Path, student: Path, out: Path, stage: str
) -> dict:
    """One run of the original task_distill.py (1 epoch over the rows of ``glue``) as a child process."""
    cmd = [
        args.original_python, str(Path(args.original) / "task_distill.py"), "--teacher_model", str(teacher),
        "--student_model", str(student), "--data_dir", str(glue / "SST-2"), "--task_name", "sst-2",
        "--output_dir", str(out), "--max_seq_length", str(LENGTH), "--train_batch_size", str(BATCH),
        "--num_train_epochs", "1", "--do_lower_case", "--no_cuda", "--eval_step", "1000000000",
    ] + (["--pred_distill"] if stage == "prediction" else [])  # fmt: skip
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [args.original, args.original_path])))
    began, cpu = time.perf_counter(), cpu_seconds()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=out.parent)
    if done.returncode != 0:
        sys.exit(f"the original code failed ({stage}): {done.stderr.strip().splitlines()[-1:]}")
    return {"cpu": cpu_seconds() - cpu, "wall": time.perf_counter() - began}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=10, help="Steps of the short run (the long one: twice).")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--original", default=None, help="Checkout of the original TinyBERT folder.")
    p.add_argument("--original-python", default=sys.executable)
    p.add_argument("--original-path", default=None, help="Extra PYTHONPATH entries for the original code.")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    tmp = Path(tempfile.mkdtemp(prefix="distill-bench-"))
    os.environ["TINYDISTILL_CACHE"] = str(tmp / "cache")
    n = {k: BATCH * k * args.steps for k in (1, 2)}  # the original runs whole epochs: rows = steps x batch
    glue = {k: sst2_rows(rows, tmp / f"glue{k}") for k, rows in n.items()}
    vocab = len(load_tokenizer("all-MiniLM-L6-v2"))
    teacher = save_model(BertConfig(vocab_size=vocab, num_labels=2), tmp / "teacher", 0)
    student = save_model(
        BertConfig(vocab_size=vocab, num_labels=2, **PRESETS["tinybert-4l-312"]), tmp / "st", 1
    )
    configs = [  # (name, stage, runner)
        ("tinydistill fp32", "intermediate", ("no", False)),
        ("tinydistill bf16", "intermediate", ("bf16", False)),
        ("tinydistill bf16 + teacher-state cache (default)", "intermediate", ("bf16", True)),
        ("tinydistill fp32, teacher every step", "prediction", ("no", False)),
        ("tinydistill bf16, teacher every step", "prediction", ("bf16", False)),
        ("tinydistill bf16 + teacher-logit cache (default)", "prediction", ("bf16", True)),
    ]
    if args.original:
        configs += [("original task_distill.py (fp32)", s, None) for s in ("intermediate", "prediction")]
    runs: dict[tuple[str, str], list[dict]] = {c[:2]: [] for c in configs}
    for _ in range(args.repeats):  # alternated
        for name, stage, how in configs:
            pair = {}
            for k in (1, 2):
                if how is None:
                    pair[k] = original(args, glue[k], teacher, student, tmp / f"orig-{stage}-{k}", stage)
                else:
                    shutil.rmtree(tmp / "cache", ignore_errors=True)  # each run pays for its caches
                    pair[k] = ours(glue[2], teacher, tmp / "out", stage, *how, steps=k * args.steps)
            runs[(name, stage)].append({
                "cpu": (pair[2]["cpu"] - pair[1]["cpu"]) / args.steps,
                "wall": (pair[2]["wall"] - pair[1]["wall"]) / args.steps,
                "one_off_cpu": pair[1]["cpu"] - (pair[2]["cpu"] - pair[1]["cpu"]),
            })  # fmt: skip
            print(f"  {stage:<12} {name}: {runs[(name, stage)][-1]['cpu']:.2f} CPU-s/step", flush=True)
    rows = [
        {"config": name, "stage": stage, **{k: statistics.median(r[k] for r in rs) for k in rs[0]}}
        for (name, stage), rs in runs.items()
    ]
    load = os.getloadavg()[0]
    print(f"\nbatch {BATCH}, length <= {LENGTH}, {args.threads} threads, {n[1]}/{n[2]}-row runs, median of "
          f"{args.repeats}, load average {load:.1f} at the end")  # fmt: skip
    print("| stage | configuration | CPU-s / step | wall s / step | one-off CPU-s | vs original (CPU-s) |")
    print("|---|---|---|---|---|---|")
    ref = {r["stage"]: r["cpu"] for r in rows if r["config"].startswith("original")}
    for r in rows:
        ratio = f"{ref[r['stage']] / r['cpu']:.1f}x" if r["stage"] in ref else "-"
        cells = [
            r["stage"],
            r["config"],
            f"{r['cpu']:.2f}",
            f"{r['wall']:.2f}",
            f"{r['one_off_cpu']:.1f}",
            ratio,
        ]
        print("| " + " | ".join(cells) + " |")
    if ref:  # ours with its defaults (bf16 where native, the logit cache) against the original
        fast = ("bf16", "(default)")
        best = {s: min(r["cpu"] for r in rows if r["stage"] == s and r["config"].endswith(fast)) for s in ref}
        n_int, n_pred = (ref[s] / best[s] for s in ("intermediate", "prediction"))
        print(f"\ndistill vs original TinyBERT code: intermediate {n_int:.1f}x, prediction {n_pred:.1f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
