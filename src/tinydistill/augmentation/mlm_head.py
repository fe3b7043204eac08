"""Give an encoder without a masked-LM head (e.g. the packaged all-MiniLM-L6-v2) a trained one.

The encoder is loaded as ``AutoModelForMaskedLM`` (for BERT: ``BertForMaskedLM``), whose decoder is
tied to the input embeddings; the new head (transform dense + LayerNorm + output bias) is trained
with the standard MLM objective (15% of tokens chosen; of those 80% ``[MASK]``, 10% a random token,
10% unchanged) on plain text, with the encoder frozen by default (``train_encoder`` trains it too).
The loss and the head run only at the chosen positions (the vocabulary projection of every other
token would be wasted work), so a few hundred steps fit a 2-core CPU. Text comes from plain files,
WikiText (``= Title =`` headings skipped, ``@-@`` joined) or WikiExtractor output (``<doc>`` lines
skipped); lines are tokenized and cut into chunks of ``max_seq_length``; files are read round-robin
so a short run still sees every file. The first ``eval_chunks`` chunks are held out: MLM accuracy
(top-1 at the chosen positions, one fixed masking) is reported before and after training. The output
dir is an HF masked LM (weights, config, tokenizer) plus ``mlm_head.json`` with those numbers.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from tinydistill.config import MLMHeadConfig
from tinydistill.errors import TinyDistillError

__all__ = ["MLMHeadConfig", "read_corpus", "mask_tokens", "train_mlm_head"]

_WIKITEXT = {" @-@ ": "-", " @,@ ": ",", " @.@ ": "."}
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # input ids, attention mask, labels


def _files(paths: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        elif path.is_file():
            files.append(path)
        else:
            raise TinyDistillError(f"corpus file or dir not found: {path}")
    if not files:
        raise TinyDistillError(f"no corpus files in {', '.join(paths)}")
    return files


def _clean(line: str) -> str | None:
    line = line.strip()
    if not line or line.startswith("<doc ") or line == "</doc>":
        return None
    if line.startswith("=") and line.endswith("="):  # WikiText heading
        return None
    for src, dst in _WIKITEXT.items():
        line = line.replace(src, dst)
    return line


def _lines(path: Path) -> Iterator[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for raw in f:
                line = _clean(raw)
                if line and len(line.split()) >= 4:  # drop titles and fragments
                    yield line
    except OSError as exc:
        raise TinyDistillError(f"{path}: cannot read ({exc.strerror or exc})") from None


def read_corpus(paths: Sequence[str]) -> Iterator[str]:
    """Text lines of every file (dirs recursively), round-robin across files."""
    streams = [_lines(p) for p in _files(paths)]
    for group in itertools.zip_longest(*streams):
        yield from (line for line in group if line is not None)


def _chunks(tokenizer, lines: Iterator[str], length: int, needed: int) -> list[list[int]]:
    """Token-id chunks of at most ``length`` (specials included); stops after ``needed``."""
    body = length - 2
    cls_id = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    sep_id = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    out: list[list[int]] = []
    while len(out) < needed:
        batch = list(itertools.islice(lines, 256))
        if not batch:
            break
        for ids in tokenizer(batch, add_special_tokens=False)["input_ids"]:
            for start in range(0, len(ids), body):
                piece = ids[start : start + body]
                if len(piece) >= 8:
                    out.append([cls_id, *piece, sep_id])
    return out[:needed]


def mask_tokens(
    ids: torch.Tensor, tokenizer, generator: torch.Generator, probability: float = 0.15
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking: choose ``probability`` of the non-special tokens; 80% [MASK], 10% random, 10% kept.

    Returns ``(inputs, labels)``; labels are -100 except at the chosen positions.
    """
    ids = ids.clone()
    labels = ids.clone()
    special = torch.isin(ids, torch.tensor(tokenizer.all_special_ids))
    probs = torch.full(ids.shape, probability).masked_fill(special, 0.0)
    chosen = torch.bernoulli(probs, generator=generator).bool()
    labels[~chosen] = -100
    masked = torch.bernoulli(torch.full(ids.shape, 0.8), generator=generator).bool() & chosen
    ids[masked] = tokenizer.mask_token_id
    rand = torch.bernoulli(torch.full(ids.shape, 0.5), generator=generator).bool() & chosen & ~masked
    ids[rand] = torch.randint(len(tokenizer), ids.shape, generator=generator)[rand]
    return ids, labels


def _pad(chunks: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    length = max(len(c) for c in chunks)
    ids = torch.full((len(chunks), length), pad_id, dtype=torch.long)
    attn = torch.zeros((len(chunks), length), dtype=torch.long)
    for i, c in enumerate(chunks):
        ids[i, : len(c)] = torch.tensor(c)
        attn[i, : len(c)] = 1
    return ids, attn


def _head(model: nn.Module) -> nn.Module:
    for name in ("cls", "lm_head"):
        if isinstance(head := getattr(model, name, None), nn.Module):
            return head
    raise TinyDistillError(f"{type(model).__name__}: no MLM head module (cls / lm_head) found")


def _loss(model, head, ids, attn, labels, frozen: bool) -> tuple[torch.Tensor, int, int]:
    """Cross-entropy at the chosen positions only; also (correct top-1, chosen count)."""
    with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
        hidden = model.base_model(input_ids=ids, attention_mask=attn).last_hidden_state
    where = labels != -100
    logits = head(hidden[where]).float()
    gold = labels[where]
    loss = nn.functional.cross_entropy(logits, gold)
    return loss, int((logits.argmax(-1) == gold).sum()), int(gold.numel())


def _evaluate(model, head, batches, frozen: bool) -> dict[str, float]:
    model.eval()
    total, correct, count = 0.0, 0, 0
    with torch.no_grad():
        for ids, attn, labels in batches:
            loss, c, n = _loss(model, head, ids, attn, labels, frozen)
            total += float(loss) * n
            correct += c
            count += n
    return {"loss": total / max(count, 1), "accuracy": correct / max(count, 1), "tokens": count}


def load_encoder_as_mlm(name: str):
    """(model, tokenizer): the encoder as ``AutoModelForMaskedLM``, decoder tied to the input embeddings."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from tinydistill.models.load import LOAD_ERRORS, resolve_model_path

    path = resolve_model_path(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForMaskedLM.from_pretrained(path)
    except LOAD_ERRORS as exc:
        raise TinyDistillError(
            f"cannot load encoder '{name}' as a masked LM: {str(exc).splitlines()[0]}"
        ) from None
    if tokenizer.mask_token_id is None:
        raise TinyDistillError(f"the tokenizer of '{name}' has no mask token")
    model.config.tie_word_embeddings = True
    model.tie_weights()
    return model, tokenizer


class MLMObjective(nn.Module):
    """The encoder and its MLM head as one trainable module; a frozen encoder stays in eval mode
    (no dropout) while the head trains."""

    def __init__(self, model: nn.Module, frozen: bool) -> None:
        super().__init__()
        self.model, self.frozen = model, frozen
        self.head = _head(model)

    def train(self, mode: bool = True) -> MLMObjective:
        super().train(mode)
        if self.frozen:
            self.model.base_model.eval()
        return self

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int, int]:
        return _loss(
            self.model, self.head, batch["input_ids"], batch["attention_mask"], batch["labels"], self.frozen
        )


def train_mlm_head(cfg: MLMHeadConfig) -> dict:
    """Train the MLM head of ``cfg.encoder`` on ``cfg.corpus`` in the one training loop; save a masked LM
    in ``cfg.output``. Masks are drawn per batch from (seed, the batch's rows), so a run is repeatable."""
    from tinydistill.data import Batches
    from tinydistill.models.load import save_model
    from tinydistill.ownership import mark
    from tinydistill.training.loop import make_accelerator, train

    if cfg.max_steps < 1 or cfg.batch_size < 1 or cfg.max_seq_length < 16:
        raise TinyDistillError("--max-steps and --batch-size must be >= 1 and --max-seq-length >= 16")
    files = _files(cfg.corpus)
    model, tokenizer = load_encoder_as_mlm(cfg.encoder)
    held, chunks = _held_and_train(cfg, tokenizer, files, model.config.max_position_embeddings)
    frozen = not cfg.train_encoder
    objective = MLMObjective(model, frozen)
    _trainable(model, objective.head, frozen)
    output = mark(cfg.output, "mlm-head")  # the marker first: the accelerator's logs go into the folder
    acc = make_accelerator(cfg, output, cpu=cfg.device == "cpu" or None)
    gen = torch.Generator().manual_seed(cfg.seed)
    eval_batches = [
        _masked_batch(held[i : i + cfg.batch_size], tokenizer, gen, cfg, acc.device)
        for i in range(0, len(held), cfg.batch_size)
    ]
    model.to(acc.device)
    before = _evaluate(model, objective.head, eval_batches, frozen) if eval_batches else {}

    def collate(rows) -> dict[str, torch.Tensor]:
        mask_gen = torch.Generator().manual_seed(hash((cfg.seed, *map(int, rows))) & 0x7FFFFFFF)
        ids, attn, labels = _masked_batch(
            [chunks[int(i)] for i in rows], tokenizer, mask_gen, cfg, torch.device("cpu")
        )
        return {"input_ids": ids, "attention_mask": attn, "labels": labels}

    lr = cfg.learning_rate or (1e-3 if frozen else 1e-4)
    result = train(
        accelerator=acc, model=objective, batches=Batches(len(chunks), cfg.batch_size, collate, cfg.seed),
        step_loss=lambda m, batch, step: (m(batch)[0], {}), total_steps=cfg.max_steps, lr=lr,
        warmup_ratio=0.05, name="mlm-head", progress=cfg.progress,
    )  # fmt: skip
    after = _evaluate(model, objective.head, eval_batches, frozen) if eval_batches else {}
    acc.end_training()
    model.to("cpu")
    save_model(model, tokenizer, output)
    report = {
        "encoder": cfg.encoder,
        "output": str(output),
        "steps": result.steps,
        "train_chunks": len(chunks),
        "heldout_chunks": len(held),
        "learning_rate": lr,
        "seconds": round(result.seconds, 1),
        "heldout_before": before,
        "heldout_after": after,
        "loss_history": [round(v, 4) for v in result.losses],
        "config": asdict(cfg),
    }
    (output / "mlm_head.json").write_text(json.dumps(report, indent=2))
    return report


def _held_and_train(
    cfg: MLMHeadConfig, tokenizer, files: Sequence[Path], max_positions: int
) -> tuple[list[list[int]], list[list[int]]]:
    """The held-out chunks (the first ``eval_chunks``) and the training chunks of the corpus."""
    length = min(cfg.max_seq_length, max_positions)
    needed = cfg.eval_chunks + cfg.max_steps * cfg.batch_size
    chunks = _chunks(tokenizer, read_corpus([str(f) for f in files]), length, needed)
    held, train = chunks[: cfg.eval_chunks], chunks[cfg.eval_chunks :]
    if not train:
        raise TinyDistillError(
            f"corpus too small: {len(chunks)} chunks of text (need more than {cfg.eval_chunks})"
        )
    return held, train


def _trainable(model: nn.Module, head: nn.Module, frozen: bool) -> list[nn.Parameter]:
    """Unfreeze the head (not the tied decoder weight: it is the input embedding) and, unless
    ``frozen``, the encoder; return the parameters to train."""
    embedding = model.get_input_embeddings().weight
    for p in model.parameters():
        p.requires_grad_(not frozen)
    for p in head.parameters():
        if p is not embedding:
            p.requires_grad_(True)
    return [p for p in model.parameters() if p.requires_grad]


def _masked_batch(
    items: Sequence[list[int]],
    tokenizer,
    generator: torch.Generator,
    cfg: MLMHeadConfig,
    device: torch.device,
) -> Batch:
    """``(inputs, attention mask, labels)`` of padded chunks, masked with ``generator``, on ``device``."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids, attn = _pad(items, pad_id)
    inputs, labels = mask_tokens(ids, tokenizer, generator, cfg.mlm_probability)
    return inputs.to(device), attn.to(device), labels.to(device)
