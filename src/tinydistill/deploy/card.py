"""A Hugging Face model card (``README.md``) for a distilled student, and its upload to the Hub.

The metadata comes from ``huggingface_hub``'s ``ModelCardData`` (base_model, datasets, tags and a
model-index of ``EvalResult``s); the body holds the teacher-vs-student table, how the student was
made, usage (transformers pipeline, ONNX Runtime) and its limitations. The card's inputs (what the
pipeline recorded, see :func:`tinydistill.pipeline.results.card_info`) are kept beside it in
``card.json``: ``tinydistill evaluate`` and ``report`` on the student dir refresh its numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tinydistill.deploy.table import human_count, markdown, num, ratio
from tinydistill.errors import TinyDistillError

CARD_FILE = "README.md"
INPUTS_FILE = "card.json"
GLUE_DATASET = "nyu-mll/glue"
HUB_IDS = {  # the packaged teachers (tinydistill.models.packaged) on the Hub
    "all-minilm-l6-v2": "sentence-transformers/all-MiniLM-L6-v2",
    "minilm": "sentence-transformers/all-MiniLM-L6-v2",
    "all-mpnet-base-v2": "sentence-transformers/all-mpnet-base-v2",
    "mpnet": "sentence-transformers/all-mpnet-base-v2",
}
SPLITS = {"dev": "validation", "dev_matched": "validation_matched", "dev_mismatched": "validation_mismatched"}
BACKENDS = {"torch": "PyTorch fp32", "onnx": "ONNX fp32", "onnx-int8": "ONNX int8"}


def base_model(name: str | None) -> str | None:
    """The Hub id of a teacher: a packaged alias, or a ``user/name`` that is not a local path."""
    if not name:
        return None
    if name.lower() in HUB_IDS or name.lower().removeprefix("sentence-transformers/") in HUB_IDS:
        return HUB_IDS[name.lower().removeprefix("sentence-transformers/")]
    return name if name.count("/") == 1 and not Path(name).exists() else None


def eval_results(info: dict[str, Any]) -> list[Any]:
    """The student's metrics per split as EvalResults (the card's model-index)."""
    from huggingface_hub import EvalResult

    task = info["task"]
    glue = task.get("hf_name") is not None
    return [
        EvalResult(
            task_type="text-classification",
            dataset_type=GLUE_DATASET if glue else "custom",
            dataset_name=f"GLUE {task['name']}" if glue else task["name"],
            dataset_config=task.get("hf_name"),
            dataset_split=SPLITS.get(split, split),
            metric_type=metric,
            metric_value=value,
            metric_name=f"{split} {metric}",
        )
        for split, metrics in info["metrics"]["student"].items()
        for metric, value in metrics.items()
    ]


def card_data(info: dict[str, Any]) -> Any:
    from huggingface_hub import ModelCardData

    method = info["method"]
    tags = ["tinydistill", "knowledge-distillation", "text-classification", str(method.get("method"))]
    return ModelCardData(
        model_name=info["model_name"],
        base_model=base_model(info["teacher"]["name"]),
        datasets=[GLUE_DATASET] if info["task"].get("hf_name") else None,
        language=info.get("language"),
        license=info.get("license"),
        library_name="transformers",
        pipeline_tag="text-classification",
        tags=list(dict.fromkeys(tags + list(info.get("tags") or []))),
        eval_results=eval_results(info),
    )


# ----------------------------------------------------------------------------- the body


def comparison(info: dict[str, Any]) -> str:
    """Teacher vs student: metrics, parameters, size, latency per backend, and the ratios."""
    metrics, models, latency = info["metrics"], info["models"], info["latency"]
    body = []
    for split, values in metrics["student"].items():
        for key, s in values.items():
            t = metrics["teacher"].get(split, {}).get(key)
            kept = f"{100 * s / t:.1f}% of the teacher" if t else "-"
            body.append([f"{split} {key} (%)", num(None if t is None else 100 * t), num(100 * s), kept])
    t, s = models["teacher"], models["student"]
    body.append(
        ["parameters", human_count(t["params"]), human_count(s["params"]), ratio(t["params"] / s["params"])]
    )
    body.append(["size MB (PyTorch fp32)", num(t["size_mb"], ".1f"), num(s["size_mb"], ".1f"),
                 ratio(t["size_mb"] / s["size_mb"] if s["size_mb"] else None)])  # fmt: skip
    for backend, label in BACKENDS.items():
        tl, sl = latency["teacher"].get(backend), latency["student"].get(backend)
        if tl is None and sl is None:
            continue
        body.append([f"latency ms, {label}", num(tl), num(sl), ratio(tl / sl if tl and sl else None)])
    header = ["", "teacher", "student", "teacher / student"]
    return (
        markdown(header, body) + f"\nLatency: {info['latency_setup']}. Metrics: {info['metrics_source']}.\n"
    )


def how_made(info: dict[str, Any]) -> str:
    teacher, method, start, aug = info["teacher"], info["method"], info["start"], info.get("augment")
    tuned = teacher.get("tuned")
    if tuned:
        how = (
            f"fine-tuned here for {num(tuned.get('epochs'), 'g')} epochs ({tuned.get('steps')} steps, "
            f"lr {num(tuned.get('learning_rate'), 'g')}, {tuned.get('train_examples')} examples)"
        )
    else:
        how = f"given fine-tuned (`{teacher.get('dir')}`)"
    stages = "; ".join(
        f"{name}: {num(st.get('epochs'), 'g')} epochs, {st.get('steps')} steps, "
        f"lr {num(st.get('learning_rate'), 'g')}"
        for name, st in (method.get("stages") or {}).items()
    )
    starts = {
        "pruned": f"pruned from the fine-tuned teacher (teacher layers {start.get('layers')} kept, units "
        f"ranked on up to {start.get('calibration_samples') or 512} train rows)",
        "random": "random weights",
        "checkpoint": f"the checkpoint `{start.get('student')}`",
    }
    augmented = (
        f"TinyBERT augmentation: {aug['rows']} rows from {aug['examples']} examples (N_a = {aug['n_aug']}, "
        f"p = {aug['p']}, K = {aug['candidates']}; masked LM `{aug['mlm']}`"
        + (f", held-out MLM accuracy {100 * aug['mlm_accuracy']:.1f}%)" if aug.get("mlm_accuracy") else ")")
        if aug
        else "none"
    )
    lines = [
        f"- Teacher: `{teacher['name']}`, {how}.",
        f"- Task: {info['task']['name']}.",
        f"- Method: recipe `{method.get('recipe')}` ({stages}), batch size {method.get('batch_size')}, "
        f"{method.get('train_examples')} train rows, seed {method.get('seed')}.",
        f"- Start: {starts.get(start.get('start'), start.get('start'))}.",
        f"- Data augmentation: {augmented}.",
        *(
            [
                f"- Vocabulary trimmed after distillation to the train text's pieces: "
                f"{trim['pieces_before']:,} -> {trim['pieces_after']:,} pieces, {trim['params']:,} params."
            ]
            if (trim := info.get("trim"))
            else []
        ),
        f"- Machine: {info.get('machine') or 'unknown'}.",
    ]
    wall = info.get("wall_seconds") or {}
    times = markdown(["stage", "wall time s"], [[k, num(v, ".1f")] for k, v in wall.items()])
    total = sum(v for v in wall.values() if v)
    return "\n".join(lines) + f"\n\n{times}\nTotal: {total / 60:.1f} min.\n"


def usage(info: dict[str, Any]) -> str:
    where = info.get("repo_id") or "path/to/this/dir"
    text = (
        "```python\nfrom transformers import pipeline\n\n"
        f'classify = pipeline("text-classification", model="{where}")\n'
        'classify("a gripping, beautifully shot film")\n```\n'
    )
    export = info.get("export")
    if export:
        onnx = "onnx/model.int8.onnx" if info.get("repo_id") else f"{export['dir']}/model.int8.onnx"
        fetch = f'hf_hub_download("{where}", "{onnx}")' if info.get("repo_id") else f'"{onnx}"'
        text += (
            "\nONNX Runtime (int8, no PyTorch needed):\n\n```python\nimport numpy as np\n"
            "import onnxruntime as ort\n"
            + ("from huggingface_hub import hf_hub_download\n" if info.get("repo_id") else "")
            + "from transformers import AutoTokenizer\n\n"
            f'tokenizer = AutoTokenizer.from_pretrained("{where}")\n'
            f"session = ort.InferenceSession({fetch})\n"
            "names = {i.name for i in session.get_inputs()}\n"
            'batch = tokenizer(["a gripping, beautifully shot film"], return_tensors="np")\n'
            "inputs = {k: v.astype(np.int64) for k, v in batch.items() if k in names}\n"
            "logits = session.run(None, inputs)[0]\n```\n"
        )
    return text


def limitations(info: dict[str, Any]) -> str:
    task, teacher = info["task"]["name"], info["teacher"]["name"]
    splits = [s for s in info["metrics"]["student"] if s != "test"]
    held_out = "test" in info["metrics"]["student"]
    lines = [
        f"- Trained and evaluated on {task} only; expect lower quality on other text.",
        f"- The {', '.join(splits)} metrics are of the split the best checkpoint was chosen on, so they are "
        "optimistic" + ("; the test metrics are not." if held_out else " (no held-out test set was given)."),
        f"- The student inherits the biases and limits of its teacher (`{teacher}`) and of the task's data.",
        "- Latencies were measured once on the machine above; yours will differ.",
    ]
    export = info.get("export") or {}
    if export.get("int8_agreement") is not None:
        lines.append(
            f"- ONNX int8 predictions agreed with PyTorch on {100 * export['int8_agreement']:.1f}% of the "
            "export's check inputs."
        )
    if (info.get("degenerate") or {}).get("student"):
        lines.append("- **The student does not beat the trivial baseline on dev (degenerate).**")
    return "\n".join(lines) + "\n"


def render(info: dict[str, Any]) -> Any:
    """The ModelCard: metadata, then the body."""
    from huggingface_hub import ModelCard

    teacher = info["teacher"]["name"]
    body = [
        f"# {info['model_name']}",
        "",
        f"A {info['task']['name']} classifier distilled from `{teacher}` with "
        f"[tinydistill](https://pypi.org/project/tinydistill/) (recipe `{info['method'].get('recipe')}`), "
        f"made on {info.get('date')}.",
        "",
        "## Teacher vs student",
        "",
        comparison(info),
        "## How it was made",
        "",
        how_made(info),
        "## Usage",
        "",
        usage(info),
        "## Limitations",
        "",
        limitations(info),
    ]
    return ModelCard(f"---\n{card_data(info).to_yaml()}\n---\n\n" + "\n".join(body))


def write_card(model_dir: Path, info: dict[str, Any]) -> Path:
    """``card.json`` and ``README.md`` in ``model_dir``; returns the card's path."""
    model_dir = Path(model_dir)
    (model_dir / INPUTS_FILE).write_text(json.dumps(info, indent=2))
    path = model_dir / CARD_FILE
    render(info).save(path)
    return path


def refresh_card(
    model_dir: str | Path,
    *,
    metrics: dict[str, dict[str, float]] | None = None,
    latency: dict[str, float] | None = None,
    source: str = "",
) -> Path | None:
    """Update the card of a student dir (when it has one) with new metrics or PyTorch latencies."""
    path = Path(model_dir) / INPUTS_FILE
    if not path.is_file():
        return None
    info = json.loads(path.read_text())
    if metrics:
        info["metrics"]["student"].update(metrics)
        info["metrics_source"] = source or info["metrics_source"]
    for who, ms in (latency or {}).items():
        if ms is not None:
            info["latency"].setdefault(who, {})["torch"] = ms
    return write_card(Path(model_dir), info)


def push_to_hub(
    model_dir: str | Path,
    repo_id: str,
    *,
    export_dir: str | Path | None = None,
    private: bool = False,
    commit_message: str = "Upload a tinydistill student",
) -> str:
    """Create ``repo_id`` (if needed) and upload the student dir, its ONNX files under ``onnx/``."""
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(
            repo_id=repo_id, folder_path=str(model_dir), commit_message=commit_message,
            ignore_patterns=["checkpoints/*", "*.tmp", ".tinydistill"],
        )  # fmt: skip
        if export_dir is not None:
            api.upload_folder(
                repo_id=repo_id, folder_path=str(export_dir), path_in_repo="onnx",
                commit_message=f"{commit_message} (ONNX)", allow_patterns=["*.onnx", "export.json"],
            )  # fmt: skip
    except Exception as exc:  # network, auth and hub errors come in many types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise TinyDistillError(
            f"push to the Hub repo {repo_id} failed: {type(exc).__name__}: {first}"
        ) from exc
    return str(url)
