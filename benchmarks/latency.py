"""Speed target: teacher PyTorch fp32 latency / student latency (torch, ONNX, ONNX int8), CPU, batch 1.

By default the teacher is a random BERT-base (12 layers, 768 wide, vocab 30522) and the student a
random TinyBERT4 (4 layers, 312 wide, 1200 FFN, 12 heads); weights do not change latency. Pass
``--teacher DIR --student DIR`` to time real checkpoints. All rows are measured interleaved in one
run (``tinydistill.deploy.bench``). TinyBERT reports 9.4x for TinyBERT4 vs BERT-base; the target
here is >= 25x with ONNX int8. Not a test: run it by hand on an otherwise idle machine::

    .venv/bin/python benchmarks/latency.py [--threads N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification

from tinydistill.deploy.bench import bench
from tinydistill.deploy.table import bench_table
from tinydistill.models.load import PRESETS

PAPER_SPEEDUP = 9.4
TARGET_SPEEDUP = 25.0


SHAPES = {"teacher": {}, "student": PRESETS["tinybert-4l-312"]}  # {} = BertConfig defaults: BERT-base


def random_model(root: Path, which: str) -> Path:
    """Save a random BERT-base teacher or TinyBERT4 student (no tokenizer needed for timing)."""
    path = root / f"random-{which}"
    if not (path / "model.safetensors").is_file():
        torch.manual_seed(0)
        config = BertConfig(vocab_size=30522, num_labels=2, **SHAPES[which])
        BertForSequenceClassification(config).save_pretrained(path)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", help="teacher model dir (default: random BERT-base)")
    ap.add_argument("--student", help="student model dir (default: random TinyBERT4)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads (default: all cores)")
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch-sizes", default="1", help="latency at the first (default 1)")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--workdir", help="where random models and ONNX exports go (default: a temp dir)")
    ap.add_argument("--json", help="also write the bench result as JSON")
    args = ap.parse_args(argv)

    tmp = None
    if args.workdir:
        work = Path(args.workdir)
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="tinydistill-latency-")
        work = Path(tmp.name)
    teacher = Path(args.teacher) if args.teacher else random_model(work, "teacher")
    student = Path(args.student) if args.student else random_model(work, "student")
    backends = "torch,onnx,onnx-int8"
    common = dict(
        batch_sizes=args.batch_sizes,
        seq_len=args.seq_len,
        threads=args.threads,
        warmup=args.warmup,
        repeats=args.repeats,
        device="cpu",
        cache_dir=str(work / "onnx"),
    )
    print(f"teacher: {teacher}\nstudent: {student}\nexporting / loading ...", flush=True)
    result = bench([str(teacher), str(student)], backends, names=["teacher", "student"], **common)
    print()
    print(bench_table(result))
    bs = str(result["meta"]["batch_sizes"][0])
    base = result["rows"][0]["latency_ms"][bs]["p50"]
    print(
        f"Speed-up = teacher PyTorch fp32 p50 latency / student p50 latency (batch {bs}, seq {args.seq_len}):"
    )
    ratios = {}
    for row in result["rows"]:
        if row["model"] != "student":
            continue
        ratios[row["backend"]] = base / row["latency_ms"][bs]["p50"]
        print(f"  student {row['backend']:<10} {ratios[row['backend']]:6.1f}x")
    int8 = ratios.get("onnx-int8", 0.0)
    verdict = "meets" if int8 >= TARGET_SPEEDUP else "misses"
    print(
        f"paper (TinyBERT4 vs BERT-base): {PAPER_SPEEDUP}x; target >= {TARGET_SPEEDUP:g}x with ONNX int8:",
        verdict,
    )
    if args.json:
        result["speedup_vs_teacher_torch"] = ratios
        Path(args.json).write_text(json.dumps(result, indent=2))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
