"""Loading a masked LM and its tokenizer for candidate prediction: checks, device and dtype."""

from __future__ import annotations

import torch
from torch import nn

from tinydistill.augmentation.vocab import word_marker
from tinydistill.errors import TinyDistillError
from tinydistill.models.load import LOAD_ERRORS, native_bf16

__all__ = ["load_masked_lm", "prepare_model"]

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def load_masked_lm(name: str, device: str | None = None, dtype: str | torch.dtype | None = "auto"):
    """``(model, tokenizer)`` of a masked LM dir, packaged alias or hub id, ready for inference.

    Refuses models whose LM head was not in the checkpoint (a plain encoder loaded as an MLM would
    predict noise): ``tinydistill mlm-head`` trains one.
    """
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from tinydistill.models.load import resolve_model_path

    path = resolve_model_path(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model, info = AutoModelForMaskedLM.from_pretrained(path, output_loading_info=True)
    except LOAD_ERRORS as exc:
        raise TinyDistillError(f"cannot load a masked LM from '{name}': {str(exc).splitlines()[0]}") from None
    _check_head(name, model, info.get("missing_keys", []))
    if tokenizer.mask_token_id is None:
        raise TinyDistillError(f"the tokenizer of '{name}' has no mask token")
    if word_marker(tokenizer) == "Ġ" and not getattr(tokenizer, "add_prefix_space", False):
        # words are fed pre-split: byte-level BPE (RoBERTa) must encode each as a mid-sentence word
        tokenizer = AutoTokenizer.from_pretrained(path, add_prefix_space=True)
    try:
        tokenizer([["a", "b"]], is_split_into_words=True)
    except Exception as exc:  # noqa: BLE001 - each tokenizer class words this differently
        raise TinyDistillError(f"the tokenizer of '{name}' cannot encode pre-split words: {exc}") from None
    return prepare_model(model, device, dtype), tokenizer


def _check_head(name: str, model: nn.Module, missing: list[str]) -> None:
    """Refuse a model whose LM-head weights were freshly initialised (absent from the checkpoint).

    Encoder weights (under ``base_model_prefix``) and the decoder, tied to the input embeddings,
    may be missing without harm.
    """
    prefix = model.base_model_prefix
    tied = {k for k in getattr(model, "all_tied_weights_keys", {}) or {}}
    fresh = [k for k in missing if not k.startswith(prefix) and k not in tied]
    fresh = [k for k in fresh if not k.endswith("decoder.weight") and not k.endswith("decoder.bias")]
    if fresh:
        raise TinyDistillError(
            f"'{name}' has no trained masked-LM head (missing {fresh[0]}); "
            "train one with: tinydistill mlm-head --encoder MODEL --corpus FILES --output DIR"
        )


def prepare_model(model: nn.Module, device: str | None = None, dtype: str | torch.dtype | None = "auto"):
    """eval mode, on ``device`` (CUDA when present), in ``dtype``.

    ``auto`` is bf16 where the hardware multiplies it natively (bf16 GPUs; CPUs with AVX512-BF16 or
    AMX, about 3x faster than fp32 there), else fp32. bf16 scores differ from fp32 in the third digit,
    so near-tied candidates can swap places (``benchmarks/augment_throughput.py`` measures how often).
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dtype in (None, "auto"):
        dtype = torch.bfloat16 if native_bf16(device) else torch.float32
    elif isinstance(dtype, str):
        if dtype not in _DTYPES:
            raise TinyDistillError(f"unknown dtype {dtype!r} (auto, float32, bfloat16)")
        dtype = _DTYPES[dtype]
    return model.to(device=device, dtype=dtype).eval()
