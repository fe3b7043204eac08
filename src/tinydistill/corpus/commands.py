"""``tinydistill corpus`` and ``tinydistill general``: a thin CLI over corpus preparation and TinyBERT's
general distillation."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from tinydistill.cli import ConfigFile, Output, Seed


def corpus(
    input: Annotated[
        list[str],
        typer.Option("--input", help="Text file or dir (repeatable): plain, WikiExtractor, WikiText."),
    ],
    tokenizer: Annotated[str, typer.Option("--tokenizer", help="The teacher (its fast tokenizer is used).")],
    output: Annotated[str, typer.Option("--output", help="Dir for the shards and manifest.json.")],
    max_seq_length: Annotated[int, typer.Option("--max-seq-length")] = 128,
    shard_size: Annotated[int, typer.Option("--shard-size", help="Sequences per shard file.")] = 16384,
    workers: Annotated[int, typer.Option("--workers", help="Tokenizer processes (0/1: in-process).")] = 0,
    fmt: Annotated[str, typer.Option("--format", help="auto | plain | wikiextractor | wikitext")] = "auto",
    max_files: Annotated[int | None, typer.Option("--max-files", help="Only the first N files.")] = None,
    max_docs: Annotated[int | None, typer.Option("--max-docs", help="Stop after N documents.")] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a corpus already in --output.")
    ] = False,
) -> None:
    """Prepare a general-distillation corpus: split sentences, tokenize, pack, write memory-mapped shards."""
    from tinydistill.corpus import prepare_corpus

    manifest = prepare_corpus(
        input,
        tokenizer,
        output,
        max_seq_length=max_seq_length,
        shard_size=shard_size,
        workers=workers,
        fmt=fmt,
        max_files=max_files,
        max_docs=max_docs,
        overwrite=overwrite,
    )
    keys = ("total_sequences", "total_tokens", "documents", "sentences")
    typer.echo(
        json.dumps({"output": output, "shards": len(manifest["shards"]), **{k: manifest[k] for k in keys}})
    )


def general(
    teacher: Annotated[
        str | None,
        typer.Option("--teacher", help="Pre-trained (not fine-tuned) encoder (default: all-MiniLM-L6-v2)."),
    ] = None,
    student: Annotated[
        str | None, typer.Option("--student", help="Preset or config-only dir (default: tinybert-4l-312).")
    ] = None,
    corpus: Annotated[
        str | None, typer.Option("--corpus", help="Dir prepared by tinydistill corpus.")
    ] = None,
    output: Output = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps")] = None,
    epochs: Annotated[
        float | None, typer.Option("--epochs", help="Passes over the corpus (or --max-steps).")
    ] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="(default: 32)")] = None,
    learning_rate: Annotated[
        float | None, typer.Option("--learning-rate", "--lr", help="(default: 1e-4)")
    ] = None,
    warmup_ratio: Annotated[float | None, typer.Option("--warmup-ratio", help="(default: 0.1)")] = None,
    save_every: Annotated[
        int | None, typer.Option("--save-every", help="Checkpoint every N steps (default: 500).")
    ] = None,
    keep_checkpoints: Annotated[
        int | None, typer.Option("--keep-checkpoints", help="Newest checkpoints kept (default: 2).")
    ] = None,
    logging_steps: Annotated[int | None, typer.Option("--logging-steps")] = None,
    seed: Seed = None,
    layer_map: Annotated[str | None, typer.Option("--layer-map", help="uniform|top|bottom|'2,4,6'")] = None,
    teacher_precision: Annotated[
        str | None, typer.Option("--teacher-precision", help="auto | fp32 | bf16 (teacher forward)")
    ] = None,
    mixed_precision: Annotated[str | None, typer.Option("--mixed-precision", help="no | bf16 | fp16")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the newest checkpoint.")] = False,
    config: ConfigFile = None,
) -> None:
    """General distillation (TinyBERT stage 1): embedding + hidden + attention losses on a prepared corpus."""
    from tinydistill.config import GeneralConfig, build
    from tinydistill.training.general import Interrupted
    from tinydistill.training.general import general as run_general

    cfg = build(
        GeneralConfig,
        config,
        teacher=teacher,
        student=student,
        corpus=corpus,
        output=output,
        max_steps=max_steps,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        warmup_ratio=warmup_ratio,
        save_every=save_every,
        keep_checkpoints=keep_checkpoints,
        logging_steps=logging_steps,
        seed=seed,
        layer_map=layer_map,
        teacher_precision=teacher_precision,
        mixed_precision=mixed_precision,
        resume=resume or None,
    )
    try:
        summary = run_general(cfg)
    except Interrupted as exc:
        typer.echo(f"interrupted: {exc}", err=True)
        raise typer.Exit(130) from None
    last = summary["history"][-1] if summary["history"] else {}
    typer.echo(json.dumps({"output": cfg.output, "steps": summary["steps"], "loss": last.get("loss")}))


def register(app: typer.Typer, fail_cleanly) -> None:
    """Add these commands to the ``tinydistill`` app."""
    app.command("corpus")(fail_cleanly(corpus))
    app.command("general")(fail_cleanly(general))
