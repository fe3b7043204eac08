"""The stages: each one's options (those of the command it runs), its work, and what it records.

A :class:`Stage` names the stages it reads from (their fingerprints are part of its own), gives its
options from the :class:`~tinydistill.pipeline.plan.Plan` (``None``: off) and runs; its result goes
into the state file: ``outputs`` (files under the run dir that must still exist for a rerun to reuse
it), ``summary`` (its line on the terminal) and what later stages and the model card read.
Heavy libraries load inside the ``run_*`` functions, so a rerun that reuses every stage stays fast.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tinydistill import config as C
from tinydistill.errors import TinyDistillError
from tinydistill.pipeline.plan import Plan
from tinydistill.pipeline.state import State

Options = dict[str, Any]


@dataclasses.dataclass
class Context:
    """What a running stage sees: the plan, the state (earlier stages' results) and how to start."""

    plan: Plan
    state: State
    name: str
    fresh: bool  # start again; else continue an interrupted run, or adopt a finished one

    def result(self, stage: str) -> dict[str, Any]:
        return (self.state.record(stage) or {}).get("result") or {}

    @property
    def again(self) -> dict[str, bool]:
        """``resume`` / ``overwrite`` of a training run dir (finetune, distill): a finished run there that
        an older run of this stage left is replaced, never adopted (``replace`` in the state)."""
        return {"resume": not self.fresh, "overwrite": bool(self.state.record(self.name).get("replace"))}

    def produced(self) -> None:
        """The stage's run dir now holds this run's output: a resume may adopt it."""
        self.state.record(self.name)["replace"] = False
        self.state.save()


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str
    needs: tuple[str, ...]
    options: Callable[[Plan], Options | None]
    run: Callable[[Context, Options], dict[str, Any]]
    configs: dict[str, type]  # option keys that are command configs: validated before anything runs
    clean: str | None = None  # its own subdirectory, removed before a fresh run


def scores(metrics: dict[str, dict[str, float]]) -> str:
    """``accuracy 91.20`` from ``{split: {metric: value}}`` (split names shown when there are several)."""
    return ", ".join(
        f"{k if len(metrics) == 1 else f'{split}/{k}'} {100 * v:.2f}"
        for split, values in metrics.items()
        for k, v in values.items()
    )


def _rel(plan: Plan, *paths: str) -> list[str]:
    return [str(Path(p).relative_to(plan.out)) for p in paths]


def _common(plan: Plan) -> Options:
    c = plan.cfg
    return {
        "max_train_samples": c.max_train_samples, "max_steps": c.max_steps, "batch_size": c.batch_size,
        "max_seq_length": c.max_seq_length, "seed": c.seed,
    }  # fmt: skip


# ----------------------------------------------------------------------------- teacher


def teacher_options(p: Plan) -> Options | None:
    if not p.enabled("teacher"):
        return None
    c = p.cfg
    finetune = {
        **p.data(C.FinetuneConfig), **_common(p), "model": c.teacher, "output": p.path("teacher"),
        "epochs": c.teacher_epochs, "learning_rate": c.teacher_lr,
    }  # fmt: skip
    return {"finetune": {**finetune, **p.section("teacher")}}


def run_teacher(ctx: Context, opts: Options) -> dict[str, Any]:
    from tinydistill import api

    m = api.finetune(C.build(C.FinetuneConfig, None, **opts["finetune"], **ctx.again))
    ctx.produced()
    ran = C.load_yaml(m.paths["config"])  # the resolved settings (task defaults filled)
    keys = ("model", "dev", "steps", "train_examples", "train_seconds", "params")
    return {
        **{k: m.get(k) for k in keys},
        "epochs": ran.get("epochs"),
        "learning_rate": ran.get("learning_rate"),
        "outputs": _rel(ctx.plan, ctx.plan.path("teacher", "metrics.json")),
        "summary": f"dev {scores({'dev': m['dev']})}",
    }


# ----------------------------------------------------------------------------- start


def start_options(p: Plan) -> Options:
    c, distill, section = p.cfg, p.section("distill"), p.section("start")
    prune = {
        **p.data(C.PruneConfig), "teacher": p.teacher_dir, "output": p.path("start"), "shape": c.student,
        "max_seq_length": c.max_seq_length, "seed": c.seed, "layer_map": distill.get("layer_map"),
    }  # fmt: skip
    if section.get("corpus"):  # calibrate on a prepared corpus instead of the task's rows
        prune["task"] = None
    if c.start == "pretrained" and c.student_shape:  # cut the pre-trained student, on the teacher's tokenizer
        prune.update(teacher=c.student, vocab_from=p.teacher_dir, shape=c.student_shape)
    return {
        "mode": c.start,
        "init_from_teacher": distill.get("init_from_teacher") or None,
        "prune": {**prune, **section},
    }


def _teacher_config(path: str) -> SimpleNamespace:
    from transformers import AutoConfig

    from tinydistill.models.load import resolve_model_path

    return SimpleNamespace(config=AutoConfig.from_pretrained(resolve_model_path(path)))


def _shape_file(prune: dict[str, Any], shape: dict[str, Any] | None) -> None:
    """A shape given as a config: prune takes its shape keys as a JSON file in the stage's dir."""
    from tinydistill.models.load import PRESETS

    if prune["shape"] in PRESETS:
        return
    if shape is None:
        raise TinyDistillError(f"--student-shape {prune['shape']}: not a preset or a config")
    Path(prune["output"]).mkdir(parents=True, exist_ok=True)
    prune["shape"] = str(Path(prune["output"]) / "shape.json")
    Path(prune["shape"]).write_text(json.dumps(shape))


def run_start(ctx: Context, opts: Options) -> dict[str, Any]:
    """A checkpoint student as it is (or cut to --student-shape); a shape at random or pruned from the
    teacher (``tinydistill prune``)."""
    from tinydistill import api
    from tinydistill.start import resolve_start, student_shape

    prune = opts["prune"]
    if prune.get("vocab_from"):  # --start pretrained --student-shape S: the pre-trained student cut to S
        _shape_file(prune, student_shape(prune["shape"]))
        r = api.prune(C.build(C.PruneConfig, None, **prune))
        return {
            "start": "pretrained-pruned", "student": prune["output"], "distill_start": "auto",
            "params": r["params"], "layers": r["layers"], "vocab_remap": r.get("vocab_remap"),
            "outputs": _rel(ctx.plan, str(Path(prune["output"]) / "config.json")),
            "summary": f"{prune['teacher']} cut to {prune['shape']}: {r['params'] / 1e6:.1f}M params",
        }  # fmt: skip
    student = prune["shape"]
    shape = student_shape(student)
    if opts["mode"] == "pretrained":
        resolve_start("pretrained", student, None)  # a checkpoint, not a shape
    if shape is None:
        if opts["mode"] == "pruned":
            raise TinyDistillError(
                f"--start pruned needs a student shape (a preset or a config), not {student}"
            )
        mode = "pretrained" if opts["mode"] == "pretrained" else "auto"
        return {"start": "checkpoint", "student": student, "distill_start": mode, "summary": student}
    teacher = _teacher_config(prune["teacher"])
    mode = "random" if opts.get("init_from_teacher") else resolve_start(opts["mode"], student, teacher)
    if mode == "random":
        return {
            "start": "random",
            "student": student,
            "distill_start": "random",
            "summary": f"{student} at random",
        }
    _shape_file(prune, shape)
    r = api.prune(C.build(C.PruneConfig, None, **prune))
    return {
        "start": "pruned", "student": prune["output"], "distill_start": "auto", "params": r["params"],
        "layers": r["layers"], "calibration_samples": prune.get("calibration_samples"),
        "outputs": _rel(ctx.plan, str(Path(prune["output"]) / "config.json")),
        "summary": f"pruned from the teacher: layers {r['layers']}, {r['params'] / 1e6:.1f}M params",
    }  # fmt: skip


# ----------------------------------------------------------------------------- augment


def augment_options(p: Plan) -> Options | None:
    if not p.enabled("augment"):
        return None
    c = p.cfg
    augment = {
        **p.data(C.AugmentConfig), "output": p.path("augment", "train.tsv"),
        "mlm": c.augment_mlm or p.path("augment", "mlm"), "n_aug": c.augment_n,
        "max_train_samples": c.max_train_samples, "seed": c.seed,
    }  # fmt: skip
    head = None
    if not c.augment_mlm:  # a head trained on the teacher's encoder, over the task's own train text
        head = {
            "encoder": c.teacher_finetuned or c.teacher, "corpus": [p.path("augment", "corpus.txt")],
            "output": p.path("augment", "mlm"), "seed": c.seed, **p.section("mlm_head"),
        }  # fmt: skip
    return {"augment": {**augment, **p.section("augment")}, "mlm_head": head}


def write_corpus(plan: Plan, path: Path, per_line: int = 4) -> int:
    """The task's train texts, ``per_line`` to a line (MLM chunks need a few sentences); returns lines."""
    from tinydistill import runs as R

    data = R.task_data(plan.cfg)
    texts = [t for ex in data.train for t in (ex.text_a, ex.text_b) if t]
    lines = [" ".join(texts[i : i + per_line]) for i in range(0, len(texts), per_line)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)


def _mlm_head(ctx: Context, head: Options) -> dict[str, Any]:
    """Train the masked-LM head, or reuse one an interrupted run of this stage finished."""
    from tinydistill import api

    lines = write_corpus(ctx.plan, Path(head["corpus"][0]))
    held = head.get("eval_chunks") or min(64, max(1, lines // 5))  # a small task keeps most lines to train
    cfg = C.build(C.MLMHeadConfig, None, **{**head, "eval_chunks": held})
    done = Path(cfg.output) / "mlm_head.json"
    if done.is_file():
        report = json.loads(done.read_text())
        if report.get("config") == json.loads(json.dumps(dataclasses.asdict(cfg))):
            return report
    return api.mlm_head(cfg)


def run_augment(ctx: Context, opts: Options) -> dict[str, Any]:
    from tinydistill import api

    head = _mlm_head(ctx, opts["mlm_head"]) if opts["mlm_head"] else None
    cfg = C.build(C.AugmentConfig, None, **opts["augment"])
    r = api.augment(cfg)
    return {
        "file": cfg.output, "examples": r["examples"], "rows": r["rows"], "n_aug": cfg.n_aug, "p": cfg.p,
        "candidates": cfg.candidates, "mlm": cfg.mlm,
        "mlm_accuracy": (head or {}).get("heldout_after", {}).get("accuracy"),
        "outputs": _rel(ctx.plan, cfg.output),
        "summary": f"{r['rows']} rows from {r['examples']} examples",
    }  # fmt: skip


# ----------------------------------------------------------------------------- distill


def distill_options(p: Plan) -> Options:
    c = p.cfg
    distill = {
        **p.data(C.DistillConfig), **_common(p), "teacher": p.teacher_dir, "student": c.student,
        "output": p.path("student"), "recipe": c.distill_recipe, "learning_rate": c.student_lr,
        "epochs": c.student_epochs, "intermediate_epochs": c.intermediate_epochs,
        "prediction_epochs": c.prediction_epochs,
    }  # fmt: skip
    if p.enabled("augment"):  # the augment stage took the train subset; its file is the train set
        distill.update(train_file=p.path("augment", "train.tsv"), max_train_samples=None)
    if c.start == "pretrained" and c.distill_recipe == "tinybert4":
        # a pre-trained start keeps what it knows: TinyBERT's step 1 at these budgets erases it (CoLA,
        # all-MiniLM-L6-v2 under MPNet: MCC 15.19 with step 2 alone, 11.13 after both steps;
        # docs/starts-and-vocabulary.md); options.distill.stage: all brings it back
        distill["stage"] = "prediction"
    return {"distill": {**distill, **p.section("distill")}}


def run_distill(ctx: Context, opts: Options) -> dict[str, Any]:
    from tinydistill import api

    start = ctx.result("start")
    given = {**opts["distill"], "student": start["student"], "start": start["distill_start"]}
    cfg = C.build(C.DistillConfig, None, **given, **ctx.again)
    m = api.distill(cfg)
    ctx.produced()
    out = ctx.plan.path("student")
    if m["degenerate"] and not ctx.plan.cfg.allow_degenerate:
        raise TinyDistillError(
            f"the student in {out} is degenerate ({m['degenerate_reason']}); "
            "stopping before the comparison. Try more steps (--intermediate-epochs/--prediction-epochs), "
            "more training rows (--max-train-samples), or --recipe kd; --allow-degenerate to go on"
        )
    stages = {
        name: {k: st.get(k) for k in ("epochs", "steps", "learning_rate", "max_steps", "seconds")}
        for name, st in m["stages"].items()
    }
    keys = ("dev", "method", "train_examples", "train_seconds", "params", "teacher_params", "degenerate")
    return {
        **{k: m.get(k) for k in keys}, "recipe": cfg.recipe, "stages": stages,
        "batch_size": m.get("global_batch_size", cfg.batch_size), "seed": cfg.seed,
        "outputs": _rel(ctx.plan, str(Path(out) / "metrics.json")),
        "summary": f"dev {scores({'dev': m['dev']})}",
    }  # fmt: skip


# ----------------------------------------------------------------------------- trim


def trim_options(p: Plan) -> Options | None:
    if not p.enabled("trim"):
        return None
    # target_params: teacher params / --trim-ratio, known once the teacher is; 0 until then so that the
    # options are checked before any stage runs
    trim = {
        **p.data(C.TrimVocabConfig),
        "model": p.path("student"),
        "output": p.path("trim"),
        "target_params": 0,
    }
    return {"trim": {**trim, **p.section("trim")}, "ratio": p.cfg.trim_ratio}


def run_trim(ctx: Context, opts: Options) -> dict[str, Any]:
    """The distilled student with the vocabulary that fits teacher params / --trim-ratio (trim.json)."""
    from tinydistill import api

    teacher = ctx.result("distill")["teacher_params"]
    target = int(teacher / opts["ratio"])
    cfg = C.build(C.TrimVocabConfig, None, **{**opts["trim"], "target_params": target})
    r = api.trim_vocab(cfg)
    changed = r.get("checked_on", {}).get("texts_tokenized_differently")
    return {
        **{k: r[k] for k in ("pieces_before", "pieces_after", "params_before", "params")},
        "params_ratio": round(teacher / r["params"], 2), "checked_on": r.get("checked_on"),
        "outputs": _rel(ctx.plan, str(Path(cfg.output) / "trim.json")),
        "summary": f"{r['pieces_before']:,} -> {r['pieces_after']:,} pieces, {r['params']:,} params"
        f" ({teacher / r['params']:.1f}x fewer than the teacher)"
        + (f"; {100 * changed:.1f}% of dev rows tokenized differently" if changed is not None else ""),
    }  # fmt: skip


# ----------------------------------------------------------------------------- evaluate


def evaluate_options(p: Plan) -> Options:
    c = p.cfg
    evaluate = {**p.data(C.EvaluateConfig), "model": p.model_dir, "max_seq_length": c.max_seq_length}
    return {"evaluate": {**evaluate, "seed": c.seed, **p.section("evaluate")}, "test_file": c.test_file}


def run_evaluate(ctx: Context, opts: Options) -> dict[str, Any]:
    """Teacher and student on dev (and the labelled ``test_file``); writes evaluate/metrics.json."""
    from tinydistill import api
    from tinydistill.progress import progress

    models = {"teacher": ctx.plan.teacher_dir, "student": ctx.plan.model_dir}
    splits = ["dev", "test"] if opts.get("test_file") else ["dev"]
    metrics: dict[str, dict[str, Any]] = {name: {} for name in models}
    baseline: dict[str, Any] = {}
    degenerate: dict[str, bool] = {}
    runs = [(m, s) for m in models for s in splits]
    for name, split in progress(runs, len(runs), "evaluate", unit="run", min_steps=1):
        test = {"dev_file": opts["test_file"]} if split == "test" else {}
        cfg = C.build(C.EvaluateConfig, None, **{**opts["evaluate"], "model": models[name], **test})
        ev = api.evaluate(cfg, update_card=False)
        got = {"test": ev.metrics["dev"]} if split == "test" else ev.metrics
        metrics[name].update(got)
        baseline.update({"test": ev.baseline["dev"]} if split == "test" else ev.baseline)
        if split == "dev":
            degenerate[name] = ev.degenerate
    spec = ev.spec
    task = {"name": spec.name, "hf_name": spec.hf_name, "primary_metric": spec.primary_metric}
    payload = {"task": task, "metrics": metrics, "baseline": baseline, "degenerate": degenerate}
    path = Path(ctx.plan.path("evaluate", "metrics.json"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2))
    shown = "; ".join(f"{name} {s} {scores({s: metrics[name][s]})}" for name in models for s in splits)
    return {**payload, "outputs": _rel(ctx.plan, str(path)), "summary": shown}


# ----------------------------------------------------------------------------- export, bench, report


def export_options(p: Plan) -> Options | None:
    if not p.enabled("export"):
        return None
    glue = None if p.is_custom else p.cfg.task  # a GLUE task's dev rows check the export
    export = {
        "model": p.model_dir, "output": p.path("export"), "quantize": "int8", "task": glue,
        "data_dir": p.cfg.data_dir if glue else None,
    }  # fmt: skip
    return {"export": {**export, **p.section("export")}}


def run_export(ctx: Context, opts: Options) -> dict[str, Any]:
    from tinydistill import api

    cfg = C.build(C.ExportConfig, None, **opts["export"])
    r = api.export(cfg)
    files = [r["onnx"]["file"]] + ([r["onnx_int8"]["file"]] if "onnx_int8" in r else [])
    int8 = r.get("onnx_int8", {})
    line = f"{r['onnx']['file']} {r['onnx']['size_mb']:.1f} MB"
    if int8:
        line += f", {int8['file']} {int8['size_mb']:.1f} MB (agrees on {100 * int8['agreement']:.1f}%)"
    return {
        "dir": cfg.output, "files": files, "onnx_mb": r["onnx"]["size_mb"], "int8_mb": int8.get("size_mb"),
        "max_abs_diff": r["onnx"]["max_abs_diff"], "int8_agreement": int8.get("agreement"),
        "outputs": _rel(ctx.plan, *(str(Path(cfg.output) / f) for f in files)), "summary": line,
    }  # fmt: skip


def bench_options(p: Plan) -> Options:
    student = p.path("export") if p.enabled("export") else p.model_dir  # an export dir: torch too
    bench = {
        "models": [p.teacher_dir, student], "names": ["teacher", "student"],
        "backend": "torch,onnx,onnx-int8" if p.enabled("export") else "torch",
        "json_file": p.path("bench", "bench.json"), "cache_dir": p.path(".cache", "onnx"),
        "data_dir": p.cfg.data_dir,  # for options.bench.task (each backend scored on dev)
    }  # fmt: skip
    return {"bench": {**bench, **p.section("bench")}}


def _positions(model_dir: str) -> int:
    """The longest input a saved model takes (512 when its config does not say)."""
    from tinydistill.models.load import resolve_model_path

    path = Path(resolve_model_path(model_dir)) / "config.json"
    return json.loads(path.read_text()).get("max_position_embeddings", 512) if path.is_file() else 512


def run_bench(ctx: Context, opts: Options) -> dict[str, Any]:
    from tinydistill import api

    bench = opts["bench"]
    if "seq_len" not in ctx.plan.section("bench"):  # 128, or less for a model with fewer positions
        bench["seq_len"] = min(C.BenchConfig().seq_len, _positions(ctx.plan.teacher_dir))
    cfg = C.build(C.BenchConfig, None, **bench)
    r = api.bench(cfg)
    first, last = (str(b) for b in (r["meta"]["batch_sizes"][0], r["meta"]["batch_sizes"][-1]))
    rows = [
        {
            "model": row["model"], "backend": row["backend"], "device": row["device"],
            "params": row["params"], "size_mb": row["size_mb"], "latency_ms": row["latency_ms"][first]["p50"],
            "throughput": row["throughput"][last],
        }
        for row in r["rows"]
    ]  # fmt: skip
    cpu = {(row["model"], row["backend"]): row["latency_ms"] for row in rows if row["device"] == "cpu"}
    shown = ", ".join(f"{m} {b} {ms:.2f} ms" for (m, b), ms in cpu.items())
    meta = {k: r["meta"][k] for k in ("seq_len", "threads", "torch", "onnxruntime", "cuda")}
    return {
        "rows": rows,
        "batch": int(first),
        **meta,
        "outputs": _rel(ctx.plan, cfg.json_file),
        "summary": f"CPU b={first}: {shown}",
    }


def report_options(p: Plan) -> Options:
    teacher = p.teacher_dir
    runs = [teacher] if p.enabled("teacher") or (Path(teacher) / "metrics.json").is_file() else []
    report = {
        "run_dirs": [*runs, p.path("student")], "output": p.path("report"),
        "bench_files": [p.path("bench", "bench.json")],
    }  # fmt: skip
    return {"report": {**report, **p.section("report")}}


def run_report(ctx: Context, opts: Options) -> dict[str, Any]:
    from tinydistill import api

    seq_len = ctx.result("bench").get("seq_len")  # the bench's latencies are the report's
    cfg = C.build(C.ReportConfig, None, **{"seq_len": seq_len, **opts["report"]})
    api.report(cfg)
    return {
        "dir": cfg.output,
        "outputs": _rel(ctx.plan, str(Path(cfg.output) / "report.md")),
        "summary": f"{cfg.output}/report.md",
    }


# ----------------------------------------------------------------------------- card, push


def card_options(p: Plan) -> Options:
    return {"card": p.section("card"), "student": p.model_dir, "repo_id": p.cfg.push_to_hub}


def run_card(ctx: Context, opts: Options) -> dict[str, Any]:
    from tinydistill.deploy.card import write_card
    from tinydistill.pipeline.results import card_info

    cfg = C.build(C.CardConfig, None, **opts["card"])
    path = write_card(Path(opts["student"]), card_info(ctx.plan, ctx.state, cfg))
    return {"path": str(path), "outputs": _rel(ctx.plan, str(path)), "summary": str(path)}


def push_options(p: Plan) -> Options | None:
    if not p.enabled("push"):
        return None
    export = p.path("export") if p.enabled("export") else None
    push = {"repo_id": p.cfg.push_to_hub, **p.section("push")}
    return {"push": push, "student": p.model_dir, "export": export}


def run_push(ctx: Context, opts: Options) -> dict[str, Any]:
    from tinydistill.deploy.card import push_to_hub

    cfg = C.build(C.PushConfig, None, **opts["push"])
    url = push_to_hub(
        opts["student"], cfg.repo_id, export_dir=opts["export"], private=cfg.private,
        commit_message=cfg.commit_message,
    )  # fmt: skip
    return {"repo_id": cfg.repo_id, "url": url, "summary": url}


STAGES: list[Stage] = [
    Stage("teacher", (), teacher_options, run_teacher, {"finetune": C.FinetuneConfig}),
    Stage("start", ("teacher",), start_options, run_start, {"prune": C.PruneConfig}, clean="start"),
    Stage("augment", (), augment_options, run_augment,
          {"augment": C.AugmentConfig, "mlm_head": C.MLMHeadConfig}, clean="augment"),
    Stage("distill", ("teacher", "start", "augment"), distill_options, run_distill,
          {"distill": C.DistillConfig}),
    Stage("trim", ("teacher", "distill"), trim_options, run_trim, {"trim": C.TrimVocabConfig}, clean="trim"),
    Stage("evaluate", ("teacher", "distill", "trim"), evaluate_options, run_evaluate,
          {"evaluate": C.EvaluateConfig}, clean="evaluate"),
    Stage("export", ("distill", "trim"), export_options, run_export, {"export": C.ExportConfig},
          clean="export"),
    Stage("bench", ("teacher", "distill", "trim", "export"), bench_options, run_bench,
          {"bench": C.BenchConfig}, clean="bench"),
    Stage("report", ("teacher", "distill", "bench"), report_options, run_report, {"report": C.ReportConfig},
          clean="report"),
    Stage("card", ("teacher", "start", "augment", "distill", "trim", "evaluate", "export", "bench"),
          card_options,
          run_card, {"card": C.CardConfig}),
    Stage("push", ("distill", "trim", "export", "card"), push_options, run_push, {"push": C.PushConfig}),
]  # fmt: skip
