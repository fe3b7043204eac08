"""Vocabulary trimming: keep the K pieces a text uses most, slice the word embeddings to them.

A TinyBERT4-shape student spends about two thirds of its parameters on a 30k-piece embedding
table (9.5M of 14.4M); trimming it to the pieces the task's text uses buys most of the size
target without cutting a layer. What is always kept, so that every text still tokenizes:

- the special tokens (every added token of the tokenizer),
- every single-character piece and its ``##`` continuation (WordPiece can then spell any word
  whose characters the vocabulary knew, falling back to characters where a longer piece is gone).

Kept pieces keep their vectors; ids are renumbered in their old order (so ``[PAD]``/``<pad>``
keep their relative place). The cost is text that tokenizes into more, shorter pieces
("barked" -> ``bar ##ke ##d``); :func:`changed_share` measures it on the counted text.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from tinydistill.errors import TinyDistillError


def piece_counts(tokenizer: PreTrainedTokenizerBase, texts: Iterable[str], batch: int = 1000) -> Counter:
    """How often each piece id occurs in ``texts`` (no special tokens)."""
    counts: Counter = Counter()
    chunk: list[str] = []
    for text in texts:
        chunk.append(text)
        if len(chunk) == batch:
            counts.update(i for ids in tokenizer(chunk, add_special_tokens=False)["input_ids"] for i in ids)
            chunk = []
    if chunk:
        counts.update(i for ids in tokenizer(chunk, add_special_tokens=False)["input_ids"] for i in ids)
    return counts


def always_kept(tokenizer: PreTrainedTokenizerBase) -> set[int]:
    """Ids of the special tokens and of every single-character piece (bare and ``##``)."""
    vocab = tokenizer.get_vocab()
    special = {vocab[t] for t in tokenizer.all_special_tokens if t in vocab}
    special |= set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    chars = {i for p, i in vocab.items() if len(p) == 1 or (p.startswith("##") and len(p) == 3)}
    return special | chars


def kept_ids(tokenizer: PreTrainedTokenizerBase, counts: Counter, keep: int) -> list[int]:
    """The always-kept ids plus the ``keep`` most frequent others seen in the text, in id order."""
    base = always_kept(tokenizer)
    ranked = sorted((i for i in counts if i not in base), key=lambda i: (-counts[i], i))
    return sorted(base | set(ranked[:keep]))


def keep_for_params(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, target: int) -> int:
    """The largest K whose trimmed model has at most ``target`` parameters (embeddings counted)."""
    total = sum(p.numel() for p in model.parameters())
    rows, width = model.get_input_embeddings().weight.shape
    fixed = total - rows * width
    floor = len(always_kept(tokenizer))
    k = (target - fixed) // width - floor
    if k < 0:
        raise TinyDistillError(
            f"--target-params {target:,} is below what the special and single-character pieces alone "
            f"need ({fixed + floor * width:,} parameters with {floor:,} pieces)"
        )
    return int(k)


def _reindex_post_processor(proc: dict[str, Any] | None, new_id: dict[int, int]) -> None:
    if not proc:
        return
    if proc.get("type") == "Sequence":
        for p in proc.get("processors", []):
            _reindex_post_processor(p, new_id)
        return
    for key in ("sep", "cls"):  # BertProcessing / RobertaProcessing: [token, id]
        if key in proc:
            proc[key][1] = new_id[proc[key][1]]
    for special in (proc.get("special_tokens") or {}).values():  # TemplateProcessing
        special["ids"] = [new_id[i] for i in special["ids"]]


def trim_tokenizer(tokenizer: PreTrainedTokenizerBase, kept: list[int]) -> PreTrainedTokenizerBase:
    """The same fast tokenizer with only the ``kept`` ids (renumbered 0..len(kept)-1 in old order)."""
    new_id = {old: new for new, old in enumerate(kept)}
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        path = Path(tmp) / "tokenizer.json"
        if not path.is_file():
            raise TinyDistillError("trim-vocab needs a fast tokenizer (tokenizer.json)")
        data = json.loads(path.read_text(encoding="utf-8"))
        if data["model"].get("type") != "WordPiece":
            raise TinyDistillError(
                f"trim-vocab handles WordPiece tokenizers (BERT, MPNet), not {data['model'].get('type')}"
            )
        vocab = data["model"]["vocab"]
        data["model"]["vocab"] = {p: new_id[i] for p, i in vocab.items() if i in new_id}
        data["added_tokens"] = [{**a, "id": new_id[a["id"]]} for a in data["added_tokens"]]
        _reindex_post_processor(data.get("post_processor"), new_id)
        path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        vocab_txt = Path(tmp) / "vocab.txt"
        if vocab_txt.exists():  # a slow-tokenizer file, if the save wrote one: the same pieces, new order
            by_id = sorted(data["model"]["vocab"].items(), key=lambda kv: kv[1])
            vocab_txt.write_text("".join(p + "\n" for p, _ in by_id), encoding="utf-8")
        trimmed = AutoTokenizer.from_pretrained(tmp)
    if len(trimmed) != len(kept):
        raise TinyDistillError(f"trimmed tokenizer has {len(trimmed)} pieces, expected {len(kept)}")
    return trimmed


def trim_embeddings(model: PreTrainedModel, kept: list[int], pad_id: int | None) -> None:
    """Keep the ``kept`` rows of the word embeddings (in place) and set the config to match."""
    if model.get_output_embeddings() is not None:
        raise TinyDistillError("trim-vocab handles encoders and classifiers, not models with an LM head")
    old = model.get_input_embeddings()
    emb = nn.Embedding(len(kept), old.weight.shape[1], padding_idx=pad_id)
    with torch.no_grad():
        emb.weight.copy_(old.weight[torch.tensor(kept)])
    model.set_input_embeddings(emb.to(old.weight.device))
    model.config.vocab_size = len(kept)
    model.config.pad_token_id = pad_id


def changed_share(
    before: PreTrainedTokenizerBase, after: PreTrainedTokenizerBase, texts: list[str]
) -> dict[str, float]:
    """How the trimmed tokenizer reads ``texts``: share of texts split differently, and the token ratio."""
    a = before(texts, add_special_tokens=False)["input_ids"]
    b = after(texts, add_special_tokens=False)["input_ids"]
    changed = sum(
        before.convert_ids_to_tokens(x) != after.convert_ids_to_tokens(y) for x, y in zip(a, b, strict=True)
    )
    n_a, n_b = sum(map(len, a)), sum(map(len, b))
    unk_a = sum(x.count(before.unk_token_id) for x in a)
    unk_b = sum(y.count(after.unk_token_id) for y in b)
    return {
        "texts": len(texts),
        "texts_tokenized_differently": round(changed / max(len(texts), 1), 4),
        "tokens_ratio": round(n_b / max(n_a, 1), 4),
        "unk_before": unk_a,
        "unk_after": unk_b,
    }
