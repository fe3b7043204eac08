"""Structured pruning of a trained encoder down to a student shape: the cheap start for distillation.

A pruned student keeps the teacher's own architecture (BERT family or MPNet) and a subset of its
units, chosen by activation-based importance on a calibration sample (forward passes only):

* **depth**: student layer m is teacher layer g(m) of the layer map (uniform by default), so the
  TinyBERT losses compare each student layer with the layer it was cut from;
* **hidden (residual) channels**: mean |activation| of the channel over real tokens, summed over
  the embedding output and every kept layer's output (the rule Minitron uses for the embedding
  axis: the residual stream's few large channels carry most of what LayerNorm passes on);
* **attention heads** (only when the student has fewer): the mean norm of the head's context
  vector after the output projection, summed over kept layers (one set for all layers, because
  MPNet shares its relative position bias across layers);
* **head dimensions**: query/key dimension d by mean|q_d| x mean|k_d| (its share of the scores),
  value dimension d by mean|context_d| x ||W_o[:, d]|| (its share of the attention output);
* **FFN neurons**: mean |activation| x ||W_out[:, n]|| (its share of the FFN output).

Keeping every unit reproduces the teacher exactly. The plan (which teacher layer, head and channel
each student unit came from) is saved as ``prune.json`` beside the weights: ``distill`` takes its
layer map from it and starts the hidden projection W_h at the channel selection.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel

from tinydistill.deploy.inputs import model_inputs
from tinydistill.errors import TinyDistillError
from tinydistill.losses import HiddenProjection

PLAN_FILE = "prune.json"
SHAPE_KEYS = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size")

# Per architecture: the attention/FFN modules of a layer, and the slicing rule of every parameter.
# A rule names, per tensor axis, which kept-index set it is cut to (None = kept whole).
_LAYER_MODULES = {
    "bert": {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "o": "attention.output.dense", "ffn_out": "output.dense"},
    "mpnet": {"q": "attention.attn.q", "k": "attention.attn.k", "v": "attention.attn.v",
              "o": "attention.attn.o", "ffn_out": "output.dense"},
}  # fmt: skip
_RULES: list[tuple[str, tuple[str | None, ...]]] = [
    (r"embeddings\.(word|position|token_type)_embeddings\.weight$", (None, "hid")),
    (r"LayerNorm\.(weight|bias)$", ("hid",)),
    (r"attention\.(self\.(query|key)|attn\.(q|k))\.weight$", ("qk", "hid")),
    (r"attention\.(self\.(query|key)|attn\.(q|k))\.bias$", ("qk",)),
    (r"attention\.(self\.value|attn\.v)\.weight$", ("v", "hid")),
    (r"attention\.(self\.value|attn\.v)\.bias$", ("v",)),
    (r"attention\.(output\.dense|attn\.o)\.weight$", ("hid", "v")),
    (r"attention\.(output\.dense|attn\.o)\.bias$", ("hid",)),
    (r"intermediate\.dense\.weight$", ("ffn", "hid")),
    (r"intermediate\.dense\.bias$", ("ffn",)),
    (r"layer\.\d+\.output\.dense\.weight$", ("hid", "ffn")),
    (r"layer\.\d+\.output\.dense\.bias$", ("hid",)),
    (r"(pooler\.dense|classifier\.dense)\.weight$", ("hid", "hid")),
    (r"(pooler\.dense|classifier\.dense)\.bias$", ("hid",)),
    (r"classifier(\.out_proj)?\.weight$", (None, "hid")),
    (r"classifier(\.out_proj)?\.bias$", (None,)),
    (r"relative_attention_bias\.weight$", (None, "heads")),
]
_LAYER = re.compile(r"\.layer\.(\d+)\.")


@dataclass
class PrunePlan:
    """Which teacher units each student unit came from (indices sorted, 0-based unless noted)."""

    teacher: str
    layers: list[int]  # 1-based teacher layer g(m) of student layers m = 1..M
    hidden: list[int]  # kept residual channels
    heads: list[int]  # kept heads (the same in every layer)
    qk_dims: list[list[int]]  # per student layer: kept query/key columns (flat index over all heads)
    v_dims: list[list[int]]  # per student layer: kept value columns
    ffn: list[list[int]]  # per student layer: kept FFN neurons
    channel_mean: list[float]  # teacher mean of every residual channel (starts W_h's bias)
    calibration: dict[str, Any]
    teacher_layers: int | None = None  # depth of the model it was cut from (None: a plan saved before 12-07)

    def save(self, directory: str | Path) -> None:
        (Path(directory) / PLAN_FILE).write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, directory: str | Path) -> PrunePlan | None:
        path = Path(directory) / PLAN_FILE
        if not path.is_file():
            return None
        try:
            return cls(**json.loads(path.read_text()))
        except (TypeError, ValueError) as exc:
            raise TinyDistillError(f"{path}: not a valid prune plan ({exc})") from None


def target_config(teacher_config: PretrainedConfig, shape: Mapping[str, Any]) -> PretrainedConfig:
    """The teacher's config with the shape's keys replaced; one-line errors for impossible shapes."""
    unknown = sorted(set(shape) - set(SHAPE_KEYS))
    if unknown:
        raise TinyDistillError(f"shape: unknown key(s) {', '.join(unknown)} (known: {', '.join(SHAPE_KEYS)})")
    model_type = teacher_config.model_type
    if model_type not in _LAYER_MODULES and getattr(teacher_config, "model_type", "") not in ("bert",):
        raise TinyDistillError(f"prune supports BERT-family and MPNet teachers, not '{model_type}'")
    cfg = teacher_config.__class__.from_dict(teacher_config.to_dict())
    for key in SHAPE_KEYS:
        if key in shape:
            value = shape[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise TinyDistillError(f"shape: {key} must be a positive integer, got {value!r}")
            if value > getattr(teacher_config, key):
                raise TinyDistillError(
                    f"shape: {key} {value} is larger than the teacher's {getattr(teacher_config, key)} "
                    "(pruning can only remove units)"
                )
            setattr(cfg, key, value)
    if cfg.hidden_size % cfg.num_attention_heads:
        raise TinyDistillError(
            f"shape: {cfg.num_attention_heads} heads do not divide hidden size {cfg.hidden_size}"
        )
    t_head = teacher_config.hidden_size // teacher_config.num_attention_heads
    if cfg.hidden_size // cfg.num_attention_heads > t_head:
        raise TinyDistillError(
            f"shape: head size {cfg.hidden_size // cfg.num_attention_heads} is larger than the teacher's "
            f"{t_head} (use more heads)"
        )
    return cfg


def _layout(model: PreTrainedModel) -> dict[str, str]:
    kind = "mpnet" if model.config.model_type == "mpnet" else "bert"
    layer = model.base_model.encoder.layer[0]
    names = _LAYER_MODULES[kind]
    try:
        for path in names.values():
            layer.get_submodule(path)
    except AttributeError:
        raise TinyDistillError(
            f"prune: model type '{model.config.model_type}' does not have the BERT/MPNet layer layout"
        ) from None
    return names


@torch.no_grad()
def calibrate(
    teacher: PreTrainedModel, batches: Iterable[Mapping[str, torch.Tensor]]
) -> dict[str, torch.Tensor]:
    """Mean activation statistics of every unit over the real tokens of ``batches`` (forward only)."""
    names = _layout(teacher)
    layers = teacher.base_model.encoder.layer
    n_layers = len(layers)
    stats: dict[str, torch.Tensor] = {}
    current: dict[str, torch.Tensor] = {}
    count = torch.zeros(())

    def add(key: str, value: torch.Tensor) -> None:
        stats[key] = stats.get(key, 0) + value

    def hook(key: str, pre: bool):
        def fn(module, args, output=None):
            x = args[0] if pre else output
            x = x[0] if isinstance(x, tuple) else x
            mask = current["mask"]
            add(key, x.float().abs()[mask].sum(0))

        return fn

    handles = []
    for i, layer in enumerate(layers):
        for role in ("q", "k"):
            handles.append(layer.get_submodule(names[role]).register_forward_hook(hook(f"{role}{i}", False)))
        handles.append(layer.get_submodule(names["o"]).register_forward_pre_hook(hook(f"ctx{i}", True)))
        handles.append(layer.get_submodule(names["ffn_out"]).register_forward_pre_hook(hook(f"ffn{i}", True)))
    was_training = teacher.training
    teacher.eval()
    try:
        for batch in batches:
            mask = batch["attention_mask"].bool()
            current["mask"] = mask
            out = teacher.base_model(**model_inputs(teacher.base_model, batch), output_hidden_states=True)
            for j, h in enumerate(out.hidden_states):
                add(f"hid{j}", h.float().abs()[mask].sum(0))
                add("hid_sum", h.float()[mask].sum(0))
            count = count + mask.sum()
    finally:
        for handle in handles:
            handle.remove()
        teacher.train(was_training)
    if not count:
        raise TinyDistillError("prune: the calibration sample holds no tokens")
    result = {k: v / count for k, v in stats.items()}
    result["hid_sum"] = result["hid_sum"] / (n_layers + 1)
    result["tokens"] = count
    return result


def _top(scores: torch.Tensor, k: int) -> list[int]:
    """Indices of the k largest scores, in ascending index order (ties: the lower index)."""
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    return sorted(order[:k])


def plan_pruning(
    teacher: PreTrainedModel, stats: Mapping[str, torch.Tensor], target: PretrainedConfig, layers: list[int],
    teacher_name: str = "",
) -> PrunePlan:  # fmt: skip
    """Choose the kept units from calibration statistics (see the module docstring for each rule)."""
    names = _layout(teacher)
    t_cfg = teacher.config
    t_heads, t_head_dim = t_cfg.num_attention_heads, t_cfg.hidden_size // t_cfg.num_attention_heads
    s_head_dim = target.hidden_size // target.num_attention_heads
    hid_score = sum(stats[f"hid{j}"] for j in [0, *layers])
    hidden = _top(hid_score, target.hidden_size)
    t_layers = teacher.base_model.encoder.layer
    ctx_scores = []
    for n in layers:
        w_o = t_layers[n - 1].get_submodule(names["o"]).weight.detach().float()
        ctx_scores.append(stats[f"ctx{n - 1}"] * w_o.norm(dim=0))
    head_score = sum(s.view(t_heads, t_head_dim).sum(-1) for s in ctx_scores)
    heads = _top(head_score, target.num_attention_heads)
    qk_dims, v_dims, ffn = [], [], []
    for n, ctx in zip(layers, ctx_scores, strict=True):
        qk = (stats[f"q{n - 1}"] * stats[f"k{n - 1}"]).view(t_heads, t_head_dim)
        v = ctx.view(t_heads, t_head_dim)
        qk_dims.append([h * t_head_dim + d for h in heads for d in _top(qk[h], s_head_dim)])
        v_dims.append([h * t_head_dim + d for h in heads for d in _top(v[h], s_head_dim)])
        w_out = t_layers[n - 1].get_submodule(names["ffn_out"]).weight.detach().float()
        ffn.append(_top(stats[f"ffn{n - 1}"] * w_out.norm(dim=0), target.intermediate_size))
    return PrunePlan(
        teacher=teacher_name,
        layers=list(layers),
        hidden=hidden,
        heads=heads,
        qk_dims=qk_dims,
        v_dims=v_dims,
        ffn=ffn,
        channel_mean=[float(x) for x in stats["hid_sum"]],
        calibration={"tokens": int(stats["tokens"])},
        teacher_layers=len(t_layers),
    )


def _rule(name: str) -> tuple[str | None, ...] | None:
    for pattern, axes in _RULES:
        if re.search(pattern, name):
            return axes
    return None


def apply_plan(teacher: PreTrainedModel, plan: PrunePlan, target: PretrainedConfig) -> PreTrainedModel:
    """A new model of ``target``'s shape holding the teacher's kept units."""
    student = teacher.__class__(target)
    t_state = teacher.state_dict()
    new_state = {}
    for name, param in student.state_dict().items():
        match = _LAYER.search(name)
        layer = int(match.group(1)) if match else None
        source = name if match is None else _LAYER.sub(f".layer.{plan.layers[layer] - 1}.", name, count=1)
        tensor = t_state[source]
        axes = _rule(name) if tensor.shape != param.shape else None
        if axes is not None:
            index = {"hid": plan.hidden, "heads": plan.heads}
            if layer is not None:
                index.update(qk=plan.qk_dims[layer], v=plan.v_dims[layer], ffn=plan.ffn[layer])
            for axis, key in enumerate(axes):
                if key is not None and tensor.shape[axis] != param.shape[axis]:
                    tensor = tensor.index_select(axis, torch.tensor(index[key]))
        if tensor.shape != param.shape:
            raise TinyDistillError(
                f"prune: no rule cuts {source} {tuple(tensor.shape)} to {tuple(param.shape)}"
            )
        new_state[name] = tensor.clone()
    student.load_state_dict(new_state)
    return student


def init_projection(proj: HiddenProjection, plan: PrunePlan) -> None:
    """Start W_h (every slot) at the channel selection: kept channels map to themselves, the others
    to the teacher's mean value, so the hidden losses start from where the pruned student is."""
    with torch.no_grad():
        for linear in proj.projs:
            if not isinstance(linear, nn.Linear):
                continue
            if linear.weight.shape != (len(plan.channel_mean), len(plan.hidden)):
                raise TinyDistillError("prune plan does not match the hidden projection's shape")
            linear.weight.zero_()
            linear.bias.copy_(torch.tensor(plan.channel_mean))
            for j, c in enumerate(plan.hidden):
                linear.weight[c, j] = 1.0
                linear.bias[c] = 0.0


def prune_model(
    teacher: PreTrainedModel,
    shape: Mapping[str, Any],
    batches: Iterable[Mapping[str, torch.Tensor]],
    layers: list[int],
    teacher_name: str = "",
) -> tuple[PreTrainedModel, PrunePlan]:
    """Calibrate, plan and cut: the pruned model and its plan."""
    target = target_config(teacher.config, shape)
    if len(layers) != target.num_hidden_layers:
        raise TinyDistillError(f"prune: {len(layers)} teacher layers given for {target.num_hidden_layers}")
    plan = plan_pruning(teacher, calibrate(teacher, batches), target, layers, teacher_name)
    return apply_plan(teacher, plan, target), plan
