"""PNG plots for the report (matplotlib, Agg backend): loss curves and accuracy vs latency."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tinydistill.deploy.runtime import require

COMPONENTS = ("embedding", "hidden", "attention", "prediction")


def _plt():
    matplotlib = require("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_panels(runs: list[Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """(title, history) per finetune run and per distillation stage."""
    panels = []
    for run in runs:
        if run.kind == "distill":
            for stage, info in (run.metrics.get("stages") or {}).items():
                panels.append((f"{run.name}: {stage}", info.get("history") or []))
        else:
            panels.append((f"{run.name}: finetune", run.metrics.get("history") or []))
    return panels


def plot_losses(runs: list[Any], path: Path) -> Path:
    """One subplot per run / stage: total loss, plus the distillation terms when logged."""
    plt = _plt()
    panels = loss_panels(runs)
    cols = min(3, max(1, len(panels)))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), squeeze=False)
    for ax, (title, history) in zip(axes.flat, panels, strict=False):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        steps = [h.get("step", i) for i, h in enumerate(history)]
        if not history:
            ax.text(0.5, 0.5, "no loss history", ha="center", va="center", transform=ax.transAxes)
            continue
        ax.plot(steps, [h.get("loss", math.nan) for h in history], color="black", lw=1.6, label="total")
        shown = [c for c in COMPONENTS if any(c in h for h in history)]
        shown = shown if len(shown) > 1 else []  # a single term is the total loss itself
        for comp in shown:
            ax.plot(steps, [h.get(comp, math.nan) for h in history], lw=1, alpha=0.8, label=comp)
        values = [v for h in history for k, v in h.items() if k in ("loss", *shown) and v and v > 0]
        if values and max(values) / min(values) > 50:
            ax.set_yscale("log")
        if shown:
            ax.legend(fontsize=8, loc="upper right")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


MARKERS = {"torch": "o", "onnx": "s", "onnx-int8": "^"}


def plot_accuracy_latency(points: list[dict[str, Any]], path: Path, seq_len: int = 128) -> Path:
    """Dev metric (%) vs batch-1 CPU latency: one colour per task, one marker per backend.

    The backends of one model are joined by a thin line and the model is named once, at its point
    with the highest latency (usually PyTorch), so labels stay readable.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5.2))
    tasks = list(dict.fromkeys(p["task"] for p in points))
    colors = {t: plt.get_cmap("tab10")(i % 10) for i, t in enumerate(tasks)}
    for t in tasks:  # legend: colour = task
        metric = next(p["metric"] for p in points if p["task"] == t)
        ax.scatter([], [], color=colors[t], marker="o", s=60, label=f"{t} ({metric})")
    for backend in dict.fromkeys(p["backend"] for p in points):  # legend: marker = backend
        ax.scatter([], [], color="grey", marker=MARKERS.get(backend, "o"), s=60, label=backend)
    models = dict.fromkeys(p.get("model", p["name"]) for p in points)
    for model in models:
        group = sorted(
            (p for p in points if p.get("model", p["name"]) == model), key=lambda p: p["latency_ms"]
        )
        color = colors[group[0]["task"]]
        if len(group) > 1:
            ax.plot(
                [p["latency_ms"] for p in group], [p["score"] for p in group], color=color, lw=0.8, alpha=0.5
            )
        for p in group:
            ax.scatter(
                p["latency_ms"],
                p["score"],
                s=70,
                color=color,
                marker=MARKERS.get(p["backend"], "o"),
                edgecolor="black",
                linewidth=0.5,
                zorder=3,
            )
        top = group[-1]
        ax.annotate(
            model, (top["latency_ms"], top["score"]), textcoords="offset points", xytext=(7, 5), fontsize=9
        )
    scale = ""
    if points:
        lat = [p["latency_ms"] for p in points]
        if max(lat) / max(min(lat), 1e-9) > 8:
            scale = ", log scale"
            from matplotlib.ticker import FuncFormatter

            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xlim(min(lat) / 1.6, max(lat) * 2.2)
        scores = [p["score"] for p in points]
        pad = max(2.0, (max(scores) - min(scores)) * 0.15)
        ax.set_ylim(min(scores) - pad, max(scores) + pad)
        ax.legend(fontsize=8, loc="best", ncol=2)
    ax.set_xlabel(f"CPU latency, batch 1, seq len {seq_len} (ms, p50{scale})")
    ax.set_ylabel("dev metric (%)")
    ax.set_title("Accuracy vs latency (lines join one model's backends)")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
