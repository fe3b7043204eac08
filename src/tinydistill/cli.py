"""``tinydistill`` command line: flags generated from the config dataclasses, one call into the API.

Each command is a row of ``COMMANDS``: its config class (:mod:`tinydistill.config`, where every
option is declared once), the API function it calls and how its result is printed. Flags override
``--config FILE``; user-input problems (TinyDistillError) are one line on stderr and exit code 2.
Only typer and the config module load at start-up: ``tinydistill --help`` answers at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import os
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from tinydistill import __version__
from tinydistill import config as C
from tinydistill import ownership as own
from tinydistill.errors import Interrupted, TinyDistillError


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tinydistill {__version__}")
        raise typer.Exit()


app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Distill BERT-family encoders into small, fast students (TinyBERT, LRC-BERT, KD).",
)


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Distill BERT-family encoders into small, fast students (TinyBERT, LRC-BERT, KD)."""


# ----------------------------------------------------------------------------- flags from fields


def _cli_type(f: dataclasses.Field, hint: Any) -> Any:
    """The type typer parses: lists are repeated flags or a comma list, the rest as declared."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = args[0] if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union else hint
    if typing.get_origin(base) is list:
        return list[str] if f.metadata.get("repeat") or f.metadata.get("positional") else str
    return base


def _flag_names(f: dataclasses.Field, kind: Any) -> tuple[str, ...]:
    names = f.metadata.get("flags") or ()
    if names:
        return tuple(names)
    flag = "--" + f.name.replace("_", "-")
    return (f"{flag}/--no-{f.name.replace('_', '-')}",) if kind is bool else (flag,)


def _help(f: dataclasses.Field) -> str:
    text = f.metadata.get("help", "")
    default = f.default if f.default is not dataclasses.MISSING else None
    if default not in (None, "", False) and not isinstance(default, bool):
        text += f" [default: {default}]"
    return text.replace("[", "\\[")  # rich markup would eat [...]


PANELS = {"TableOptions": "Data", "DataOptions": "Data", "RunConfig": "Run", "TrainOptions": "Optimisation"}


def _panel(cls: type, name: str) -> str | None:
    """Help panel of a field: the shared option groups get their own, a command's own fields none."""
    for klass in cls.__mro__:
        if name in klass.__dict__.get("__annotations__", {}):
            return PANELS.get(klass.__name__)
    return None


def _params(cls: type) -> list[inspect.Parameter]:
    """One keyword parameter per CLI field (+ extra flags of mapping fields, + --config)."""
    hints, params = C.field_types(cls), []
    keyword = inspect.Parameter.KEYWORD_ONLY
    for f in dataclasses.fields(cls):
        for extra in f.metadata.get("extra", ()):
            option = typer.Option(extra.decl, help=extra.help, show_default=False)
            params.append(
                inspect.Parameter(
                    extra.name, keyword, default=None, annotation=Annotated[extra.type | None, option]
                )
            )
        if not f.metadata.get("cli", True):
            continue
        kind = _cli_type(f, hints[f.name])
        if f.metadata.get("positional"):
            arg = typer.Argument(help=f.metadata.get("help", ""), show_default=False)
            params.append(
                inspect.Parameter(
                    f"{f.name}__args", keyword, default=None, annotation=Annotated[kind | None, arg]
                )
            )
            if not f.metadata.get("flags") and not f.metadata.get("repeat"):
                continue
        option = typer.Option(
            *_flag_names(f, kind), help=_help(f), show_default=False, rich_help_panel=_panel(cls, f.name)
        )
        params.append(
            inspect.Parameter(f.name, keyword, default=None, annotation=Annotated[kind | None, option])
        )
    config = typer.Option("--config", help="YAML file of options; flags override it.", show_default=False)
    params.append(
        inspect.Parameter("config", keyword, default=None, annotation=Annotated[str | None, config])
    )
    return params


def _given(cls: type, values: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """Flags given on the command line -> (config file, field overrides)."""
    config = values.pop("config", None)
    given: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        extras = {e.key: values.pop(e.name, None) for e in f.metadata.get("extra", ())}
        if any(v is not None for v in extras.values()):
            given[f.name] = {k: v for k, v in extras.items() if v is not None}
        args, flag = values.pop(f"{f.name}__args", None), values.pop(f.name, None)
        if args is not None and isinstance(args, list):
            flag = [*(flag or []), *args] if (flag or args) else None
        elif args is not None:
            flag = args
        if flag not in (None, []):
            given[f.name] = flag
    return config, given


def command(name: str, cls: type, call: str, show: Callable[[Any, Any], None]) -> None:
    """Register ``tinydistill NAME``: flags from ``cls``, then ``show(cfg, call(cfg))``."""

    def run(**values: Any) -> None:
        _quiet_hf()
        try:
            config, given = _given(cls, values)
            cfg = C.build(cls, config, **given)
            module, func = call.split(":")
            with own.guard(name, cfg) if name in own.OUTPUTS else contextlib.nullcontext():
                # checked and locked before the heavy imports: a refusal comes at once
                target = getattr(__import__(module, fromlist=[func]), func)
                _quiet_hf()  # again, now that the command's libraries are loaded
                result = target(cfg)
            if os.environ.get("RANK", "0") == "0":  # one process prints under torchrun
                show(cfg, result)
        except Interrupted as exc:
            typer.echo(f"interrupted: {exc}", err=True)
            raise typer.Exit(130) from None
        except TinyDistillError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    run.__signature__ = inspect.Signature(_params(cls))  # type: ignore[attr-defined]
    run.__doc__ = "\n\n".join(" ".join(p.split()) for p in inspect.cleandoc(cls.__doc__ or "").split("\n\n"))
    run.__name__ = name.replace("-", "_")
    app.command(name)(run)


def _quiet_hf() -> None:
    """Keep the terminal for our progress bars: no HF load reports or per-shard bars."""
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    else:  # read when transformers is imported (later, inside the command)
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


# ----------------------------------------------------------------------------- printing results


def _echo_json(keys: tuple[str, ...] | None = None) -> Callable[[Any, Any], None]:
    def show(cfg: Any, result: Any) -> None:
        typer.echo(json.dumps({k: result[k] for k in keys} if keys else result))

    return show


def _show_run(cfg: Any, result: Any) -> None:
    typer.echo(json.dumps({"output": cfg.output, "dev": result["dev"], "degenerate": result["degenerate"]}))


def _show_evaluation(cfg: C.EvaluateConfig, result: Any) -> None:
    from tinydistill.evaluation import warn_if_degenerate

    trivial = "constant" if result.spec.is_regression else "majority"
    for split, metrics in result.metrics.items():
        ours = ", ".join(f"{k}={100 * v:.2f}" for k, v in metrics.items())
        base = ", ".join(f"{k}={100 * v:.2f}" for k, v in result.baseline[split].items())
        typer.echo(f"{split}: {ours} ({trivial}: {base})")
    warn_if_degenerate(result, f"model {cfg.model}")


def _show_corpus(cfg: C.CorpusConfig, manifest: dict) -> None:
    keys = ("total_sequences", "total_tokens", "documents", "sentences")
    typer.echo(
        json.dumps(
            {"output": cfg.output, "shards": len(manifest["shards"]), **{k: manifest[k] for k in keys}}
        )
    )


def _show_general(cfg: C.GeneralConfig, summary: dict) -> None:
    last = summary["history"][-1] if summary["history"] else {}
    typer.echo(json.dumps({"output": cfg.output, "steps": summary["steps"], "loss": last.get("loss")}))


def _show_export(cfg: C.ExportConfig, rep: dict) -> None:
    fp = rep["onnx"]
    typer.echo(
        f"{cfg.output}/{fp['file']}: {fp['size_mb']:.2f} MB; max |onnx - torch| = {fp['max_abs_diff']:.2e} "
        f"over {fp['n_inputs']} inputs ({rep['inputs_from']}; tolerance {rep['atol']:g})"
    )
    if "onnx_int8" in rep:
        q = rep["onnx_int8"]
        typer.echo(
            f"{cfg.output}/{q['file']}: {q['size_mb']:.2f} MB; max |int8 - torch| = {q['max_abs_diff']:.2e}, "
            f"predictions agree on {100 * q['agreement']:.1f}% of {q['n_inputs']} inputs"
        )


def _show_bench(cfg: C.BenchConfig, result: dict) -> None:
    from tinydistill.deploy.table import bench_table

    typer.echo(bench_table(result))


def _show_report(cfg: C.ReportConfig, res: dict) -> None:
    typer.echo(res["table"])
    typer.echo(f"wrote {res['output']}/report.md, loss_curves.png, accuracy_vs_latency.png")


def _show_pipeline(cfg: C.PipelineConfig, result: dict) -> None:
    typer.echo(result["table"])
    where = {"card": result["card"], "report": result["report"], "state": result["state"]}
    typer.echo("; ".join(f"{k}: {v}" for k, v in where.items() if v))


def recipes(cfg: C.RecipesConfig) -> str:
    """``recipes`` (list), ``recipes show NAME``, ``recipes copy NAME FILE``."""
    found = C.shipped_recipes(cfg.dir)
    if cfg.action == "list":
        width = max(map(len, found), default=0)
        return "\n".join(f"{name:<{width}}  {C.recipe_description(path)}" for name, path in found.items())
    path = found.get(cfg.name) or C.recipe_path(cfg.name)
    if cfg.action == "show":
        return path.read_text().rstrip("\n")
    target = Path(cfg.file)
    if target.exists():
        raise TinyDistillError(f"{target} exists; not overwriting it")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(path.read_text())
    return f"wrote {target} (use it with: tinydistill distill --recipe {target} ...)"


def _show_text(cfg: Any, text: str) -> None:
    typer.echo(text)


# ----------------------------------------------------------------------------- the commands

COMMANDS: list[tuple[str, type, str, Callable[[Any, Any], None]]] = [
    ("finetune", C.FinetuneConfig, "tinydistill.api:finetune", _show_run),
    ("distill", C.DistillConfig, "tinydistill.api:distill", _show_run),
    ("prune", C.PruneConfig, "tinydistill.api:prune", _echo_json()),
    ("trim-vocab", C.TrimVocabConfig, "tinydistill.api:trim_vocab", _echo_json()),
    ("evaluate", C.EvaluateConfig, "tinydistill.api:evaluate", _show_evaluation),
    ("pipeline", C.PipelineConfig, "tinydistill.pipeline:run", _show_pipeline),
    ("recipes", C.RecipesConfig, "tinydistill.cli:recipes", _show_text),
    ("corpus", C.CorpusConfig, "tinydistill.api:prepare_corpus", _show_corpus),
    ("general", C.GeneralConfig, "tinydistill.api:general", _show_general),
    ("augment", C.AugmentConfig, "tinydistill.api:augment", _echo_json()),
    ("mlm-head", C.MLMHeadConfig, "tinydistill.api:mlm_head",
     _echo_json(("output", "steps", "seconds", "heldout_before", "heldout_after"))),
    ("export", C.ExportConfig, "tinydistill.api:export", _show_export),
    ("bench", C.BenchConfig, "tinydistill.api:bench", _show_bench),
    ("predict", C.PredictConfig, "tinydistill.api:predict", _echo_json()),
    ("report", C.ReportConfig, "tinydistill.api:report", _show_report),
]  # fmt: skip
for _name, _cls, _call, _show in COMMANDS:
    command(_name, _cls, _call, _show)


def main() -> None:  # pragma: no cover - console entry
    sys.exit(app())


if __name__ == "__main__":  # python -m tinydistill.cli / accelerate launch -m tinydistill.cli
    main()
