"""CLI commands ``export``, ``bench``, ``predict`` and ``report``: flag parsing over the deploy modules."""

from __future__ import annotations

import json
from typing import Annotated

import typer

Threads = Annotated[
    int | None, typer.Option("--threads", help="CPU threads (torch and onnxruntime intra-op); default: all.")
]
TaskOpt = Annotated[str | None, typer.Option("--task", help="GLUE task whose dev set is used (e.g. SST-2).")]
DataDir = Annotated[str | None, typer.Option("--data-dir", help="GLUE root with <TASK>/dev.tsv.")]
CacheDir = Annotated[
    str | None,
    typer.Option("--cache-dir", help="Where on-the-fly ONNX exports go (default ~/.cache/tinydistill)."),
]


def _split(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def register(app: typer.Typer, fail_cleanly) -> None:
    """Add the deploy commands to ``app``; ``fail_cleanly`` turns TinyDistillError into exit code 2."""

    @app.command()
    @fail_cleanly
    def export(
        model: Annotated[str, typer.Option("--model", help="Saved model dir (HF format).")],
        output: Annotated[str, typer.Option("--output", help="Export dir (model.onnx, tokenizer, config).")],
        fmt: Annotated[str, typer.Option("--format", help="Export format.")] = "onnx",
        quantize: Annotated[
            str | None,
            typer.Option("--quantize", help="'int8': also write model.int8.onnx (dynamic quantization)."),
        ] = None,
        optimize: Annotated[
            bool, typer.Option("--optimize/--no-optimize", help="Offline onnxruntime transformer fusions.")
        ] = False,
        weight_type: Annotated[
            str, typer.Option("--weight-type", help="int8 weights: qint8 or quint8.")
        ] = "qint8",
        per_channel: Annotated[
            bool, typer.Option("--per-channel", help="Per-channel int8 weight scales.")
        ] = False,
        atol: Annotated[
            float, typer.Option("--atol", help="Max |onnx - torch| logit difference allowed.")
        ] = 1e-3,
        task: TaskOpt = None,
        data_dir: DataDir = None,
        threads: Threads = None,
    ) -> None:
        """Export to ONNX (dynamic batch/sequence axes), check it against PyTorch, optionally quantize."""
        from tinydistill.deploy.export import export_model

        rep = export_model(
            model,
            output,
            quantize=quantize,
            optimize=optimize,
            task=task,
            data_dir=data_dir,
            atol=atol,
            threads=threads,
            weight_type=weight_type,
            per_channel=per_channel,
            fmt=fmt,
        )
        fp = rep["onnx"]
        typer.echo(
            f"{output}/{fp['file']}: {fp['size_mb']:.2f} MB; max |onnx - torch| = {fp['max_abs_diff']:.2e} "
            f"over {fp['n_inputs']} inputs ({rep['inputs_from']}; tolerance {rep['atol']:g})"
        )
        if "onnx_int8" in rep:
            q = rep["onnx_int8"]
            typer.echo(
                f"{output}/{q['file']}: {q['size_mb']:.2f} MB; max |int8 - torch| = {q['max_abs_diff']:.2e}, "
                f"predictions agree on {100 * q['agreement']:.1f}% of {q['n_inputs']} inputs"
            )

    @app.command()
    @fail_cleanly
    def bench(
        models: Annotated[
            list[str] | None,
            typer.Option("--models", help="Model dirs / export dirs / .onnx files: --models A B ..."),
        ] = None,
        more: Annotated[
            list[str] | None, typer.Argument(help="More models (so that --models A B C works).")
        ] = None,
        backend: Annotated[
            str, typer.Option("--backend", help="torch, onnx, onnx-int8, or a comma list of them.")
        ] = "torch",
        batch_sizes: Annotated[
            str, typer.Option("--batch-sizes", help="Latency at the first, throughput at the last.")
        ] = "1,32",
        seq_len: Annotated[int, typer.Option("--seq-len")] = 128,
        threads: Threads = None,
        device: Annotated[
            str, typer.Option("--device", help="auto (CPU + CUDA when present), cpu, cuda.")
        ] = "auto",
        warmup: Annotated[int, typer.Option("--warmup")] = 3,
        repeats: Annotated[
            int, typer.Option("--repeats", help="Timed runs at batch 1 (fewer for big batches).")
        ] = 20,
        names: Annotated[str | None, typer.Option("--names", help="Comma-separated display names.")] = None,
        task: TaskOpt = None,
        data_dir: DataDir = None,
        max_eval_samples: Annotated[int | None, typer.Option("--max-eval-samples")] = None,
        json_file: Annotated[
            str | None, typer.Option("--json", help="Also write the results as JSON.")
        ] = None,
        cache_dir: CacheDir = None,
    ) -> None:
        """Size, latency and throughput of models side by side (+ dev metric per backend with --task)."""
        from tinydistill.deploy.bench import bench as run_bench
        from tinydistill.deploy.bench import format_bench, write_json

        result = run_bench(
            [*(models or []), *(more or [])],
            backend,
            batch_sizes,
            seq_len=seq_len,
            threads=threads,
            warmup=warmup,
            repeats=repeats,
            device=device,
            names=_split(names),
            task=task,
            data_dir=data_dir,
            max_eval_samples=max_eval_samples,
            cache_dir=cache_dir,
        )
        typer.echo(format_bench(result))
        if json_file:
            write_json(result, json_file)

    @app.command()
    @fail_cleanly
    def predict(
        model: Annotated[str, typer.Option("--model", help="HF model dir, export dir or .onnx file.")],
        input_file: Annotated[str, typer.Option("--input", help="TSV / CSV / JSONL file with a header.")],
        output_file: Annotated[str, typer.Option("--output", help="Predictions (.tsv / .csv / .jsonl).")],
        text_columns: Annotated[
            str | None,
            typer.Option("--text-columns", help="e.g. sentence or sentence1,sentence2 (default: guess)."),
        ] = None,
        backend: Annotated[str, typer.Option("--backend", help="auto, torch, onnx or onnx-int8.")] = "auto",
        batch_size: Annotated[int, typer.Option("--batch-size")] = 32,
        max_seq_length: Annotated[int, typer.Option("--max-seq-length")] = 128,
        threads: Threads = None,
        cache_dir: CacheDir = None,
    ) -> None:
        """Batched inference over a file: a label and class probabilities per row."""
        from tinydistill.deploy.predict import predict_file

        info = predict_file(
            model,
            input_file,
            output_file,
            text_columns=_split(text_columns),
            batch_size=batch_size,
            max_seq_length=max_seq_length,
            backend=backend,
            threads=threads,
            cache_dir=cache_dir,
        )
        typer.echo(json.dumps(info))

    @app.command()
    @fail_cleanly
    def report(
        run_dirs: Annotated[list[str], typer.Argument(help="finetune / distill run dirs.")],
        output: Annotated[str, typer.Option("--output", help="Report dir (report.md + PNGs).")],
        bench_files: Annotated[
            list[str] | None,
            typer.Option("--bench", help="Latencies (+ ONNX points) from 'tinydistill bench --json' files."),
        ] = None,
        seq_len: Annotated[int, typer.Option("--seq-len")] = 128,
        threads: Threads = None,
        repeats: Annotated[int, typer.Option("--repeats")] = 10,
    ) -> None:
        """Markdown teacher-vs-student table with loss curves and an accuracy-vs-latency plot."""
        from tinydistill.deploy.report import build_report

        res = build_report(
            run_dirs, output, bench_files=bench_files, seq_len=seq_len, threads=threads, repeats=repeats
        )
        typer.echo(res["table"])
        typer.echo(f"wrote {res['output']}/report.md, loss_curves.png, accuracy_vs_latency.png")
