"""Capture what distillation needs from inside an unmodified Hugging Face encoder.

TinyBERT's attention loss uses the *pre-softmax* scores ``QK^T / sqrt(d)`` of every layer, which
transformers 5 never returns (SDPA returns nothing, eager returns post-softmax probabilities).
We get them without copying model code:

* models on the attention-function interface (BERT, RoBERTa, ELECTRA, DistilBERT, ...) run a
  registered attention function, ``"tinydistill"``, that records the scores it softmaxes and
  falls back to SDPA when nothing is recording (so evaluation stays fast);
* MPNet, whose self-attention is not on that interface, gets a forward hook on each
  self-attention module that recomputes the scores from the module's own q/k projections and
  the relative position bias it was called with.

``forward_reps`` runs a model once and returns a :class:`~tinydistill.losses.reps.Reps`.
"""

from __future__ import annotations

import inspect
import math
import threading
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import nn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, eager_mask

from tinydistill.deploy.inputs import model_inputs
from tinydistill.errors import TinyDistillError
from tinydistill.losses.reps import Reps

ATTN_IMPL = "tinydistill"
_state = threading.local()


def _recorder() -> list[torch.Tensor | None] | None:
    return getattr(_state, "scores", None)


def _skip_layer(scores_out: list) -> bool:
    """True (and a ``None`` placeholder recorded) when the next layer's scores are not wanted."""
    wanted = getattr(_state, "wanted", None)
    if wanted is None or len(scores_out) + 1 in wanted:
        return False
    scores_out.append(None)
    return True


def recording_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Eager attention that records the scaled, masked scores; SDPA when not recording."""
    scores_out = _recorder()
    if scores_out is None or _skip_layer(scores_out):
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs
        )
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        scores = scores + attention_mask
    scores_out.append(scores)
    probs = nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    probs = nn.functional.dropout(probs, p=dropout, training=module.training)
    out = torch.matmul(probs, value).transpose(1, 2).contiguous()
    return out, probs


AttentionInterface.register(ATTN_IMPL, recording_attention)
AttentionMaskInterface.register(ATTN_IMPL, eager_mask)


def _mpnet_hook(module: nn.Module, args: tuple, kwargs: dict, output) -> None:
    scores_out = _recorder()
    if scores_out is None or _skip_layer(scores_out):
        return
    bound = inspect.signature(module.forward).bind(*args, **kwargs)
    hidden = bound.arguments["hidden_states"]
    mask = bound.arguments.get("attention_mask")
    bias = bound.arguments.get("position_bias")
    shape = (*hidden.shape[:-1], -1, module.attention_head_size)
    q = module.q(hidden).view(shape).transpose(1, 2)
    k = module.k(hidden).view(shape).transpose(1, 2)
    scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(module.attention_head_size)
    if bias is not None:
        scores = scores + bias
    if mask is not None:
        scores = scores + mask
    scores_out.append(scores)


def enable_capture(model: nn.Module) -> nn.Module:
    """Prepare ``model`` so that :func:`forward_reps` can record its attention scores."""
    if getattr(model, "_tinydistill_capture", False):
        return model
    model_type = getattr(model.config, "model_type", "")
    if model_type == "mpnet":
        from transformers.models.mpnet.modeling_mpnet import MPNetSelfAttention

        for sub in model.modules():
            if isinstance(sub, MPNetSelfAttention):
                sub.register_forward_hook(_mpnet_hook, with_kwargs=True)
    elif getattr(model, "_supports_attention_backend", False):
        model.set_attn_implementation(ATTN_IMPL)
    else:
        raise TinyDistillError(
            f"cannot capture attention scores of model type '{model_type}': it is neither on the "
            "transformers attention interface nor MPNet (set the attention loss weight to 0)"
        )
    model._tinydistill_capture = True
    return model


def disable_capture(model: nn.Module) -> nn.Module:
    """Restore a standard attention implementation (before saving or exporting)."""
    if getattr(model.config, "_attn_implementation", None) == ATTN_IMPL:
        model.set_attn_implementation("sdpa")
    return model


@contextmanager
def recording(layers: Collection[int] | None = None) -> Iterator[list[torch.Tensor | None]]:
    """Collect, in layer order, the attention scores of every forward run inside the block.

    ``layers``: the 1-based layers whose scores are wanted; the others run the fast SDPA path and
    record ``None`` (so index ``n - 1`` is still layer ``n``). ``None`` records every layer.
    """
    previous, previous_wanted = _recorder(), getattr(_state, "wanted", None)
    _state.scores = []
    _state.wanted = None if layers is None else frozenset(int(n) for n in layers)
    try:
        yield _state.scores
    finally:
        _state.scores, _state.wanted = previous, previous_wanted


def forward_reps(
    model: nn.Module,
    batch: Mapping[str, torch.Tensor],
    attentions: bool = True,
    layers: Collection[int] | None = None,
) -> Reps:
    """One forward pass returning hidden states (embeddings + every layer), scores and logits.

    ``layers`` limits score capture to those 1-based layers (``None`` entries for the others).
    """
    inputs = model_inputs(model, batch)
    if attentions:
        with recording(layers) as scores:
            out = model(**inputs, output_hidden_states=True)
        scores = list(scores)
    else:
        out = model(**inputs, output_hidden_states=True)
        scores = []
    return Reps(
        hidden=list(out.hidden_states),
        attn_scores=scores,
        logits=getattr(out, "logits", None),
        attention_mask=batch["attention_mask"],
    )
