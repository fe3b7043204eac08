"""Sequences/s of one general-distillation step (the real ``GeneralStep`` of ``tinydistill general``).

Default setting (the issue's): a randomly initialised 12-layer/768 BERT-base-size teacher (vocab
30522; speed does not depend on the weights), a TinyBERT 4L-312 student, batch 8, length 128, layer
map uniform (3, 6, 9, 12), embedding + hidden + attention losses, AdamW. One step = teacher forward
(inference mode, bf16 where the hardware has native bf16, scores of the mapped layers only) +
student forward/backward + optimizer and schedule step. CUDA is used when present.

The reference: TinyBERT's original general_distill.py took 1.8-2.1 s/step in this setting on the
2-core CPU machine this project is measured on (about 4 sequences/s). Wall time is what counts; the
process CPU time per step is printed too (on a shared, busy machine it is the steadier figure: with one
thread it is the step's cost on one free core).

    PYTHONPATH=src python benchmarks/general_throughput.py                 # 3 warm-up + 20 timed steps
    PYTHONPATH=src python benchmarks/general_throughput.py --steps 3 --warmup 1 --compare-fp32
    PYTHONPATH=src python benchmarks/general_throughput.py --teacher all-MiniLM-L6-v2   # a real teacher
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from accelerate import Accelerator
from transformers import BertConfig, BertModel, get_linear_schedule_with_warmup

from tinydistill.losses import HiddenProjection
from tinydistill.mapping import layer_map
from tinydistill.models.capture import enable_capture
from tinydistill.training.general_step import (
    GeneralStep,
    build_encoder_student,
    load_encoder,
    prepare_teacher,
    teacher_dtype,
)
from tinydistill.training.optim import make_optimizer
from tinydistill.training.terms import Distiller

REFERENCE_SEQ_PER_S = 4.0  # original TinyBERT general_distill.py, 1.8-2.1 s/step at batch 8


def random_teacher(layers: int, hidden: int, vocab: int) -> BertModel:
    cfg = BertConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 64,
        intermediate_size=4 * hidden,
    )
    return BertModel(cfg).eval().requires_grad_(False)


def measure(args: argparse.Namespace, acc: Accelerator, teacher_precision: str) -> dict:
    torch.manual_seed(0)
    teacher = (
        load_encoder(args.teacher)
        if args.teacher
        else random_teacher(args.teacher_layers, args.teacher_hidden, args.vocab)
    )
    student = build_encoder_student(args.student, teacher)
    layers = layer_map("uniform", student.config.num_hidden_layers, teacher.config.num_hidden_layers)
    enable_capture(student)
    proj = HiddenProjection(student.config.hidden_size, teacher.config.hidden_size, len(layers))
    distiller = Distiller(student, proj, layers)
    distiller.set_terms({"embedding": 1.0, "hidden": 1.0, "attention": 1.0})
    total = args.warmup + args.steps
    optimizer = make_optimizer("adamw", distiller, 1e-4, 0.01)
    scheduler = get_linear_schedule_with_warmup(optimizer, 0, total)
    distiller, optimizer, scheduler = acc.prepare(distiller, optimizer, scheduler)
    dtype = teacher_dtype(teacher_precision, acc.device)
    teacher = prepare_teacher(teacher, acc.device, dtype)
    step = GeneralStep(acc, teacher, distiller, optimizer, scheduler, layers, dtype)
    distiller.train()
    vocab = teacher.config.vocab_size
    gen = torch.Generator().manual_seed(0)
    times, cpu_times = [], []
    for i in range(total):
        ids = torch.randint(1000, vocab, (args.batch_size, args.seq_len), generator=gen)
        ids[:, 0], ids[:, -1] = 101, 102
        batch = {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "token_type_ids": torch.zeros_like(ids),
        }
        if acc.device.type == "cuda":
            torch.cuda.synchronize()
        start, cpu_start = time.perf_counter(), time.process_time()
        step(batch)
        if acc.device.type == "cuda":
            torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    s_per_step = statistics.median(times)
    seq_s = args.batch_size / s_per_step
    return {
        "device": str(acc.device),
        "threads": torch.get_num_threads(),
        "teacher": args.teacher or f"random BERT {args.teacher_layers}L-{args.teacher_hidden}",
        "student": args.student,
        "teacher_precision": str(dtype or torch.float32).replace("torch.", ""),
        "student_precision": acc.mixed_precision,
        "batch_size": args.batch_size,
        "seq_len": args.seq_len,
        "timed_steps": len(times),
        "s_per_step_median": round(s_per_step, 3),
        "s_per_step_mean": round(statistics.fmean(times), 3),
        "cpu_s_per_step_median": round(statistics.median(cpu_times), 3),
        "seq_per_s": round(seq_s, 2),
        "vs_reference_4_seq_per_s": round(seq_s / REFERENCE_SEQ_PER_S, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--teacher", default=None, help="a real teacher instead of the random 12L/768 one")
    parser.add_argument("--teacher-layers", type=int, default=12)
    parser.add_argument("--teacher-hidden", type=int, default=768)
    parser.add_argument("--vocab", type=int, default=30522)
    parser.add_argument("--student", default="tinybert-4l-312")
    parser.add_argument("--teacher-precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--mixed-precision", default=None, choices=["no", "bf16", "fp16"])
    parser.add_argument("--compare-fp32", action="store_true", help="also time a step with an fp32 teacher")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--cpu", action="store_true", help="ignore a GPU")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    mixed = args.mixed_precision
    if mixed is None:
        mixed = (
            "bf16" if torch.cuda.is_available() and not args.cpu and torch.cuda.is_bf16_supported() else "no"
        )
    acc = Accelerator(mixed_precision=mixed, cpu=args.cpu)
    runs = [measure(args, acc, args.teacher_precision)]
    if args.compare_fp32:
        runs.append(measure(args, acc, "fp32"))
    for r in runs:
        print(
            f"{r['device']} ({r['threads']} threads), teacher {r['teacher']} [{r['teacher_precision']}], "
            f"student {r['student']} [{r['student_precision']}], batch {r['batch_size']} x {r['seq_len']}: "
            f"{r['seq_per_s']} sequences/s, {r['s_per_step_median']} s/step (median of {r['timed_steps']}), "
            f"{r['vs_reference_4_seq_per_s']}x the 4 seq/s reference; "
            f"process CPU time {r['cpu_s_per_step_median']} s/step"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(runs, f, indent=2)


if __name__ == "__main__":
    main()
