"""Put a pre-trained student on the teacher's tokenizer: its word embeddings re-indexed by token string.

Distillation feeds teacher and student the same token ids, so a student trained with another
vocabulary (all-MiniLM-L6-v2 under an MPNet teacher, TinyBERT_General_4L_312D under a RoBERTa one,
...) is remapped once, before training: each teacher piece takes

- the student's vector of the same string (``##ing`` -> ``##ing``),
- for a special token, the student's special token of the same role (``<s>`` -> ``[CLS]``),
- for a piece the student lacks, the mean of the student's vectors of the pieces the student's
  tokenizer splits that string into (``##ing`` without its ``##`` is read as a word continuation),
- and, when nothing of it is left (a character the student never saw), the student's ``[UNK]``.

Everything but the word-embedding rows is kept, so on the pieces both vocabularies share the
remapped student computes exactly what it computed before.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

SPECIAL_ROLES = ("cls_token", "sep_token", "pad_token", "unk_token", "mask_token", "bos_token", "eos_token")


@dataclass
class VocabRemap:
    """How each teacher piece got its vector (counts), and a few of the pieces built from others."""

    teacher_pieces: int
    student_pieces: int
    same_string: int = 0
    special_by_role: int = 0
    from_subpieces: int = 0
    from_unk: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def coverage(self) -> float:
        """Share of teacher pieces found as such in the student (strings or special roles)."""
        return (self.same_string + self.special_by_role) / max(self.teacher_pieces, 1)

    def as_dict(self) -> dict:
        return {**asdict(self), "coverage": round(self.coverage, 6)}

    def line(self) -> str:
        found = self.same_string + self.special_by_role
        return (
            f"vocabulary remap: {found:,} of {self.teacher_pieces:,} teacher "
            f"pieces found in the student's {self.student_pieces:,} ({100 * self.coverage:.2f}%: "
            f"{self.same_string:,} by string, {self.special_by_role} special by role); "
            f"{self.from_subpieces:,} from the mean of their student pieces, {self.from_unk:,} from [UNK]"
        )


def same_vocab(a: PreTrainedTokenizerBase, b: PreTrainedTokenizerBase) -> bool:
    return a.get_vocab() == b.get_vocab()


def _special_roles(tok: PreTrainedTokenizerBase) -> dict[str, str]:
    """special token string -> its role (the first role that names it)."""
    roles: dict[str, str] = {}
    for role in SPECIAL_ROLES:
        token = getattr(tok, role, None)
        if token is not None and str(token) not in roles:
            roles[str(token)] = role
    return roles


def _subpieces(text: str, student_tok: PreTrainedTokenizerBase) -> list[int]:
    """Student ids of a teacher piece the student lacks (a ``##`` piece read as a word continuation)."""
    if text.startswith("##") and len(text) > 2:
        ids = student_tok("a" + text[2:], add_special_tokens=False)["input_ids"]
        first = student_tok("a", add_special_tokens=False)["input_ids"]
        ids = ids[len(first) :] if ids[: len(first)] == first else ids
    else:
        ids = student_tok(text, add_special_tokens=False)["input_ids"]
    unk = student_tok.unk_token_id
    return [i for i in ids if i != unk]


def _example(report: VocabRemap, kind: str, piece: str, keep: int = 10) -> None:
    seen = report.examples.setdefault(kind, [])
    if len(seen) < keep:
        seen.append(piece)


def remap_vocabulary(
    model: PreTrainedModel, student_tok: PreTrainedTokenizerBase, teacher_tok: PreTrainedTokenizerBase
) -> VocabRemap:
    """Re-index ``model``'s word embeddings (in place) from ``student_tok``'s ids to ``teacher_tok``'s."""
    old = model.get_input_embeddings().weight.detach()
    s_vocab, t_vocab = student_tok.get_vocab(), teacher_tok.get_vocab()
    s_roles = {role: tok for tok, role in _special_roles(student_tok).items()}
    t_roles = _special_roles(teacher_tok)
    size = max(len(teacher_tok), max(t_vocab.values()) + 1)
    new = old.new_empty(size, old.shape[1])
    new.copy_(old.mean(0, keepdim=True).expand_as(new))  # ids no teacher piece names (none, usually)
    report = VocabRemap(teacher_pieces=len(t_vocab), student_pieces=len(s_vocab))
    unk = student_tok.unk_token_id if student_tok.unk_token_id is not None else 0
    for piece, tid in t_vocab.items():
        role = t_roles.get(piece)
        if role is not None and s_roles.get(role) in s_vocab:
            new[tid] = old[s_vocab[s_roles[role]]]
            report.special_by_role += 1
        elif piece in s_vocab:
            new[tid] = old[s_vocab[piece]]
            report.same_string += 1
        elif ids := _subpieces(piece, student_tok):
            new[tid] = old[ids].mean(0)
            report.from_subpieces += 1
            _example(report, "from_subpieces", piece)
        else:
            new[tid] = old[unk]
            report.from_unk += 1
            _example(report, "from_unk", piece)
    pad = teacher_tok.pad_token_id
    emb = nn.Embedding(size, old.shape[1], padding_idx=pad)
    with torch.no_grad():
        emb.weight.copy_(new)
    emb.to(old.device)
    model.set_input_embeddings(emb)
    model.config.vocab_size = size
    for role in ("pad", "bos", "eos"):
        value = getattr(teacher_tok, f"{role}_token_id", None)
        if value is not None or hasattr(model.config, f"{role}_token_id"):
            setattr(model.config, f"{role}_token_id", value)
    return report
