"""``tinydistill augment`` and ``tinydistill mlm-head``: a thin CLI over :mod:`tinydistill.augment`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from tinydistill.cli import DataDir, LabelCol, MaxTrain, Task, TextCols, TrainFile, _columns


def augment(
    task: Task,
    output: Annotated[str, typer.Option("--output", help="Augmented train file (.tsv, the task's format).")],
    mlm: Annotated[
        str | None, typer.Option("--mlm", help="Masked LM dir or hub id (e.g. bert-base-uncased).")
    ] = None,
    data_dir: DataDir = None,
    vectors: Annotated[
        str | None,
        typer.Option(
            "--vectors",
            help="GloVe/word2vec text file for multi-piece words (default: the MLM input embeddings).",
        ),
    ] = None,
    n_aug: Annotated[int, typer.Option("--n-aug", help="Draws per sentence (N_a).")] = 20,
    candidates: Annotated[int, typer.Option("--candidates", help="Candidates per word (K).")] = 15,
    p: Annotated[float, typer.Option("--p", help="Replacement probability per word (p_t).")] = 0.4,
    seed: Annotated[int, typer.Option("--seed")] = 42,
    max_train_samples: MaxTrain = None,
    train_file: TrainFile = None,
    text_columns: TextCols = None,
    label_column: LabelCol = None,
    shard: Annotated[
        str | None, typer.Option("--shard", help="i/n: augment the i-th of n slices (multi-process runs).")
    ] = None,
    merge: Annotated[
        str | None,
        typer.Option("--merge", help="Comma-separated shard files to concatenate into --output (no MLM)."),
    ] = None,
    batch_rows: Annotated[int, typer.Option("--batch-rows", help="Masked rows per MLM forward.")] = 256,
    masks_per_row: Annotated[
        str,
        typer.Option(
            "--masks-per-row",
            help="1 = the paper (one masked word per row); N, 'all' or e.g. 15% (of the row's tokens) "
            "mask several words per row: fewer forwards, slightly different candidates.",
        ),
    ] = "1",
    pair_context: Annotated[
        bool,
        typer.Option(
            "--pair-context", help="MLM input '[CLS] masked [SEP] original [SEP]' (original script)."
        ),
    ] = False,
    vocab_limit: Annotated[int, typer.Option("--vocab-limit", help="Words read from --vectors.")] = 100_000,
    device: Annotated[
        str | None, typer.Option("--device", help="cpu, cuda, ... [default: cuda if present]")
    ] = None,
    dtype: Annotated[
        str,
        typer.Option("--dtype", help="auto (bf16 where native: GPU, AVX512-BF16 CPU), float32, bfloat16"),
    ] = "auto",
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """TinyBERT data augmentation: write the task's train set plus N_a variants per example."""
    from tinydistill.augment.runner import AugmentConfig, augment_task, merge_shards

    if merge is not None:
        stats = merge_shards(
            task, _columns(merge) or [], output, train_file, _columns(text_columns), label_column or "label"
        )
    else:
        stats = augment_task(
            AugmentConfig(
                task=task,
                output=output,
                mlm=mlm,
                data_dir=data_dir,
                train_file=train_file,
                text_columns=_columns(text_columns),
                label_column=label_column or "label",
                vectors=vectors,
                vocab_limit=vocab_limit,
                n_aug=n_aug,
                candidates=candidates,
                p=p,
                seed=seed,
                max_train_samples=max_train_samples,
                shard=shard,
                batch_rows=batch_rows,
                masks_per_row=masks_per_row,
                pair_context=pair_context,
                device=device,
                dtype=dtype,
                progress=progress,
            )
        )
    typer.echo(json.dumps(stats))


def mlm_head(
    encoder: Annotated[
        str, typer.Option("--encoder", help="Encoder dir, alias or hub id (no MLM head needed).")
    ],
    corpus: Annotated[
        list[str],
        typer.Option("--corpus", help="Text files or dirs (plain, WikiText, WikiExtractor); repeatable."),
    ],
    output: Annotated[str, typer.Option("--output", help="Masked LM dir to write.")],
    max_steps: Annotated[int, typer.Option("--max-steps")] = 300,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 32,
    max_seq_length: Annotated[int, typer.Option("--max-seq-length")] = 128,
    learning_rate: Annotated[
        float | None,
        typer.Option("--learning-rate", "--lr", help="Default 1e-3 (head only), 1e-4 with --train-encoder."),
    ] = None,
    train_encoder: Annotated[bool, typer.Option("--train-encoder", help="Also train the encoder.")] = False,
    eval_chunks: Annotated[int, typer.Option("--eval-chunks", help="Held-out chunks for MLM accuracy.")] = 64,
    seed: Annotated[int, typer.Option("--seed")] = 42,
    device: Annotated[str | None, typer.Option("--device")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Train a masked-LM head (tied to the input embeddings) on an encoder, for `tinydistill augment`."""
    from tinydistill.augment.mlm_head import MLMHeadConfig, train_mlm_head

    paths = [c for item in corpus for c in _columns(item) or []]
    report = train_mlm_head(
        MLMHeadConfig(
            encoder=encoder,
            corpus=paths,
            output=output,
            max_steps=max_steps,
            batch_size=batch_size,
            max_seq_length=max_seq_length,
            learning_rate=learning_rate,
            train_encoder=train_encoder,
            eval_chunks=eval_chunks,
            seed=seed,
            device=device,
            progress=progress,
        )
    )
    typer.echo(
        json.dumps({k: report[k] for k in ("output", "steps", "seconds", "heldout_before", "heldout_after")})
    )


def register(app: typer.Typer, fail_cleanly) -> None:
    """Add these commands to the ``tinydistill`` app."""
    app.command("augment")(fail_cleanly(augment))
    app.command("mlm-head")(fail_cleanly(mlm_head))
