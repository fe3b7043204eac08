"""Augmentation throughput: sentences/s of TinyBERT data augmentation with a BERT-base-size masked LM.

A randomly initialised ``BertForMaskedLM`` (12 layers, 768 hidden, 12 heads, vocabulary 30522: the
bert-base-uncased vocabulary of the packaged all-MiniLM-L6-v2 tokenizer) augments SST-2 dev
sentences with the paper's settings (N_a = 20, K = 15, p = 0.4): one masked row per eligible
single-piece word (the paper's semantics), word-vector neighbours from the MLM's input embeddings
for multi-piece words, then 20 draws per sentence. Random weights cost exactly what trained ones
cost. Model construction and the embedding-neighbour index are set-up and not timed; one warm-up
batch on other sentences runs first. Prints sentences/s, MLM rows and forwards, peak memory and
the speed-up over the original script's ~1.2 s per sentence (unbatched BERT-base forwards, one per
word, gradients on; measured on the 2-core CPU of this machine kind).

    PYTHONPATH=src python benchmarks/augment_throughput.py                # 200 sentences, CPU or CUDA
    PYTHONPATH=src python benchmarks/augment_throughput.py --sentences 10 --device cpu
    PYTHONPATH=src python benchmarks/augment_throughput.py --dtype float32,bfloat16 --masks-per-row 1,all

Comma-separated ``--dtype`` and ``--masks-per-row`` values run every combination on the same
sentences and end with a table. ``--dtype bfloat16`` on a CPU with bf16 instructions is faster;
its scores differ from fp32 in the third digit, so near-tied candidates can swap. ``--masks-per-row``
> 1 (``all``: one row per sentence) masks several words per row: fewer forwards, but no longer the
paper's one-word-at-a-time predictions. ``--pair-context`` uses the original script's
``[CLS] masked [SEP] original [SEP]`` rows (about twice as long).

``--agreement-mlm DIR`` (a *trained* masked LM, e.g. the ``tinydistill mlm-head`` output) measures
what the faster ``--masks-per-row`` settings cost in candidate quality: on the same sentences it
compares each setting's top-K list of every single-piece word with the paper's one-word-per-row list
(mean overlap of the two K-sets, and how often the best candidate is the same). Random weights
cannot answer that question, so it needs a real MLM.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_S_PER_SENTENCE = 1.2  # the original TinyBERT script, this setting, this machine kind
TARGET_SPEEDUP = 50.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sentences", type=int, default=200)
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "glue"))
    p.add_argument("--batch-rows", type=int, default=256)
    p.add_argument(
        "--masks-per-row", default="1", help="Comma-separated; 1 = the paper, 'all' = one row per sentence"
    )
    p.add_argument("--pair-context", action="store_true")
    p.add_argument("--n-aug", type=int, default=20)
    p.add_argument("--candidates", type=int, default=15)
    p.add_argument("--p", type=float, default=0.4)
    p.add_argument("--device", default=None, help="cpu / cuda [default: cuda if present]")
    p.add_argument(
        "--dtype", default="auto", help="Comma-separated: auto (bf16 on GPU, fp32 on CPU), float32, bfloat16"
    )
    p.add_argument(
        "--threads", type=int, default=None, help="torch threads [default: OMP_NUM_THREADS or cores]"
    )
    p.add_argument(
        "--agreement-mlm",
        default=None,
        help="A trained masked LM: compare each --masks-per-row setting's candidates with masks/row 1",
    )
    p.add_argument("--json", default=None, help="Also write the results to this file.")
    return p.parse_args(argv)


def run_one(model, tokenizer, texts, warmup, args, masks_per_row: int) -> dict:
    from tinydistill.augmentation.mlm_candidates import MLMCandidates, masks_per_row_label
    from tinydistill.augmentation.runner import Augmenter
    from tinydistill.augmentation.word_vectors import WordVectors

    mlm = MLMCandidates(
        model,
        tokenizer,
        k=args.candidates,
        batch_rows=args.batch_rows,
        masks_per_row=masks_per_row,
        pair_context=args.pair_context,
        progress=True,
    )
    vectors = WordVectors.from_embeddings(model, tokenizer)
    Augmenter(mlm, vectors, args.n_aug, args.p).prepare(warmup)  # warm-up (kernels, allocator)
    mlm.forwards = mlm.rows = mlm.tokens = mlm.padded_tokens = 0
    cuda = mlm.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()

    aug = Augmenter(mlm, vectors, args.n_aug, args.p, seed=42)
    start = time.perf_counter()
    aug.prepare(texts)
    if cuda:
        torch.cuda.synchronize()
    t_candidates = time.perf_counter() - start
    variants = [aug.variants(t, i) for i, t in enumerate(texts)]
    seconds = time.perf_counter() - start

    per_sentence = seconds / len(texts)
    result = {
        "device": str(mlm.device),
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "threads": torch.get_num_threads(),
        "sentences": len(texts),
        "n_aug": args.n_aug,
        "candidates": args.candidates,
        "p": args.p,
        "masks_per_row": masks_per_row,
        "masks_per_row_label": masks_per_row_label(masks_per_row),
        "pair_context": args.pair_context,
        "seconds": round(seconds, 3),
        "candidate_seconds": round(t_candidates, 3),
        "sentences_per_s": round(len(texts) / seconds, 2),
        "ms_per_sentence": round(1000 * per_sentence, 1),
        "words_with_candidates": sum(len(aug.candidates(t)) for t in texts),
        "mlm_rows": mlm.rows,
        "mlm_forwards": mlm.forwards,
        "rows_per_forward": round(mlm.rows / max(mlm.forwards, 1), 1),
        "mlm_tokens": mlm.tokens,
        "padding": round(mlm.padded_tokens / max(mlm.tokens, 1) - 1, 4),
        "vector_queries": aug.vector_queries,
        "variants": sum(map(len, variants)),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "speedup_vs_original": round(REFERENCE_S_PER_SENTENCE / per_sentence, 1),
    }
    if cuda:
        result["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    masks = result["masks_per_row_label"]
    print(
        f"{result['sentences_per_s']} sentences/s ({result['ms_per_sentence']} ms/sentence) on "
        f"{result['device']} ({result['dtype']}, {result['threads']} threads): {len(texts)} SST-2 dev "
        f"sentences, N_a={args.n_aug}, K={args.candidates}, p={args.p}, masks/row={masks}"
    )
    print(
        f"  MLM: {mlm.rows} rows in {mlm.forwards} forwards ({result['rows_per_forward']} rows/forward, "
        f"{mlm.tokens} tokens + {100 * result['padding']:.1f}% padding), "
        f"{aug.vector_queries} word-vector queries, {result['variants']} variants; "
        f"candidates {t_candidates:.2f} s of {seconds:.2f} s"
    )
    print(
        f"  peak RSS {result['peak_rss_mb']} MB (process so far)"
        + (f", peak CUDA {result['peak_cuda_mb']} MB" if cuda else "")
        + f"; {result['speedup_vs_original']}x the original script's {REFERENCE_S_PER_SENTENCE} s/sentence"
        + f" (target {TARGET_SPEEDUP:.0f}x = {TARGET_SPEEDUP / REFERENCE_S_PER_SENTENCE:.0f} sentences/s)"
    )
    return result


def agreement(name: str, texts: list[str], settings: list[tuple[str, int | float]], args) -> list[dict]:
    """Top-K overlap and top-1 agreement of each (dtype, masks/row) setting's candidates with the
    paper's fp32, one-word-per-row candidates, with a trained masked LM on the same sentences."""
    from tinydistill.augmentation.masked_lm import load_masked_lm, prepare_model
    from tinydistill.augmentation.mlm_candidates import MLMCandidates, masks_per_row_label
    from tinydistill.augmentation.runner import Augmenter

    model, tokenizer = load_masked_lm(name, args.device, "float32")
    found = {}
    # float32 first: casting to bf16 and back would not restore the weights
    for dtype, m in sorted({("float32", 1), *settings}, key=lambda s: (s[0] == "bfloat16", str(s[1]))):
        model = prepare_model(model, args.device, dtype)
        mlm = MLMCandidates(model, tokenizer, k=args.candidates, batch_rows=args.batch_rows, masks_per_row=m)
        aug = Augmenter(mlm, None, args.n_aug, args.p)  # no word vectors: MLM candidates only
        aug.prepare(texts)
        found[dtype, m] = [aug.candidates(t) for t in texts]
    rows = []
    for dtype, m in settings:
        if (dtype, m) == ("float32", 1):
            continue
        overlap, top1, words = 0.0, 0, 0
        for ref, got in zip(found["float32", 1], found[dtype, m], strict=True):
            for i, cands in ref.items():
                other = got.get(i, [])
                overlap += len(set(cands) & set(other)) / max(len(cands), 1)
                top1 += bool(other) and other[0] == cands[0]
                words += 1
        row = {
            "mlm": name,
            "dtype": dtype,
            "masks_per_row": m,
            "words": words,
            "topk_overlap": round(overlap / max(words, 1), 4),
            "top1_agreement": round(top1 / max(words, 1), 4),
        }
        print(
            f"agreement with float32, masks/row 1 ({name}, {words} words): {dtype}, "
            f"masks/row {masks_per_row_label(m)}: "
            f"top-{args.candidates} overlap {100 * row['topk_overlap']:.1f}%, "
            f"same best candidate {100 * row['top1_agreement']:.1f}%"
        )
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT / "src"))
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM
    from transformers.utils import logging as hf_logging

    from tinydistill.augmentation.masked_lm import prepare_model
    from tinydistill.augmentation.mlm_candidates import parse_masks_per_row
    from tinydistill.models.packaged import minilm_dir
    from tinydistill.tasks import get_task, read_glue_split

    hf_logging.set_verbosity_error()
    threads = args.threads or int(os.environ.get("OMP_NUM_THREADS", 0)) or os.cpu_count() or 1
    torch.set_num_threads(threads)
    dev = read_glue_split(get_task("sst2"), args.data_dir, "dev")
    texts = [ex.text_a for ex in dev[: args.sentences]]
    warmup = [ex.text_a for ex in dev[-4:]]
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=tokenizer.vocab_size))  # bert-base shape, random weights
    # float32 runs first: casting to bf16 and back would not restore the weights
    dtypes = sorted(args.dtype.split(","), key=lambda d: d.strip() in ("bfloat16", "bf16"))
    masks = [parse_masks_per_row(m) for m in args.masks_per_row.split(",")]
    results = []
    for dtype in dtypes:
        model = prepare_model(model, args.device, dtype.strip())
        for m in masks:
            results.append(run_one(model, tokenizer, texts, warmup, args, m))
    if len(results) > 1:
        print("\n| dtype | masks/row | sentences/s | ms/sentence | rows | forwards | x original |")
        print("|---|---|---|---|---|---|---|")
        for r in results:
            cells = [r["dtype"], r["masks_per_row_label"], r["sentences_per_s"], r["ms_per_sentence"]]
            cells += [r["mlm_rows"], r["mlm_forwards"], r["speedup_vs_original"]]
            print("| " + " | ".join(map(str, cells)) + " |")
    if args.agreement_mlm:
        settings = [(r["dtype"], r["masks_per_row"]) for r in results]
        for row in agreement(args.agreement_mlm, texts, settings, args):
            for r in results:
                if (r["dtype"], r["masks_per_row"]) == (row["dtype"], row["masks_per_row"]):
                    r["agreement"] = row
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
