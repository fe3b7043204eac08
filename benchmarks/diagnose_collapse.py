"""Why does a student predict the same thing for every input? Measure it, layer by layer.

For a teacher and any number of students (saved dirs, or a preset name = random init), on the
first N dev rows of a task, prints per model and layer:

* ``cos``: mean pairwise cosine similarity of the first-token ([CLS]) vectors across inputs
  (1.0 = the layer's [CLS] is the same vector whatever the input);
* ``in-var``: share of the [CLS] variance that is *across inputs* (trace of the covariance of
  [CLS] over inputs / mean squared norm of the centred token states of all inputs);
* ``ent``: mean attention entropy of the [CLS] query (nats; ln(T) = uniform), ``sep``: attention
  mass of all queries on [SEP]/[CLS] tokens; ``|s|``: mean |pre-softmax score| over real pairs;
* for the teacher: the share of the hidden-state energy (what the hidden MSE must match) carried
  by its 5 largest dimensions per layer;
* per model: the std over inputs of the logits, the share of the majority prediction, and the
  norm of the gradient reaching the classifier and the encoder for one batch of the prediction
  step (soft cross-entropy to the teacher at T = 1) and of hard-label cross-entropy.

    PYTHONPATH=src python benchmarks/diagnose_collapse.py --task SST-2 --data-dir ../shared/data/glue \
        --teacher runs/sst2-teacher random=tinybert-4l-312 inter=runs/sst2-inter final=runs/sst2-student
"""

from __future__ import annotations

import argparse
import json
import math

import torch
import torch.nn.functional as F

from tinydistill.data import EncodedDataset, make_loader
from tinydistill.losses import soft_cross_entropy
from tinydistill.models.capture import enable_capture, forward_reps
from tinydistill.models.load import build_student, load_classifier, load_tokenizer
from tinydistill.tasks.resolve import load_task_data


def layer_stats(reps, input_ids, special: torch.Tensor) -> list[dict[str, float]]:
    mask = reps.attention_mask.bool()
    rows = []
    for i, h in enumerate(reps.hidden):
        h = h.float()
        cls = h[:, 0]
        unit = F.normalize(cls, dim=-1)
        n = unit.shape[0]
        cos = float(((unit @ unit.T).sum() - n) / (n * (n - 1)))
        across = float(cls.var(0, unbiased=False).sum())
        tokens = h[mask]
        total = float((tokens - tokens.mean(0)).pow(2).sum(-1).mean())
        energy = tokens.pow(2).mean(0)
        top5 = float(energy.topk(min(5, energy.numel())).values.sum() / energy.sum())
        row = {"layer": i, "cos": cos, "in_var": across / max(total, 1e-12), "top5_energy": top5}
        if i > 0 and reps.attn_scores and reps.attn_scores[i - 1] is not None:
            s = reps.attn_scores[i - 1].float()
            valid = (mask[:, :, None] & mask[:, None, :])[:, None]
            probs = torch.softmax(s.masked_fill(~valid, -1e9), -1)
            p_cls = probs[:, :, 0].clamp_min(1e-12)  # [CLS] query: (B, H, T)
            ent = -(p_cls * p_cls.log()).sum(-1).mean()
            on_special = (probs * special[:, None, None, :]).sum(-1)  # (B, H, T)
            qmask = mask[:, None, :].expand_as(on_special)
            row.update(
                ent=float(ent),
                sep=float(on_special[qmask].mean()),
                abs_score=float(s.masked_select(valid.expand_as(s)).abs().mean()),
            )
        rows.append(row)
    return rows


def grad_norms(model, teacher, batch) -> dict[str, float]:
    model.train()
    out = {}
    with torch.no_grad():
        t_logits = teacher(**{k: v for k, v in batch.items() if k != "labels"}).logits
    for name in ("soft_ce", "hard_ce"):
        model.zero_grad()
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        loss = (
            soft_cross_entropy(logits, t_logits)
            if name == "soft_ce"
            else F.cross_entropy(logits, batch["labels"])
        )
        loss.backward()
        head = [
            p.grad.norm() for n, p in model.named_parameters() if "classifier" in n and p.grad is not None
        ]
        body = [
            p.grad.norm() for n, p in model.named_parameters() if "classifier" not in n and p.grad is not None
        ]
        out[f"{name}_loss"] = float(loss)
        out[f"{name}_grad_head"] = float(torch.stack(head).norm())
        out[f"{name}_grad_encoder"] = float(torch.stack(body).norm()) if body else 0.0
    model.zero_grad()
    model.eval()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", required=True)
    ap.add_argument("--data-dir")
    ap.add_argument("--teacher", required=True)
    ap.add_argument("models", nargs="*", help="NAME=DIR_OR_PRESET")
    ap.add_argument("--samples", type=int, default=128)
    ap.add_argument("--max-seq-length", type=int, default=64)
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.manual_seed(0)
    data = load_task_data(args.task, args.data_dir, None, None, None, "label", need_train=False)
    dev = next(iter(data.dev.values()))[: args.samples]
    tok = load_tokenizer(args.teacher)
    teacher = enable_capture(load_classifier(args.teacher, data.spec).eval())
    loader = make_loader(EncodedDataset(dev, tok, args.max_seq_length, data.spec), tok, len(dev))
    batch = next(iter(loader))
    special = torch.isin(batch["input_ids"], torch.tensor([tok.cls_token_id, tok.sep_token_id])).float()
    models = {"teacher": teacher}
    for item in args.models:
        name, path = item.split("=", 1)
        models[name] = enable_capture(build_student(path, teacher, data.spec).eval())
    report = {}
    for name, model in models.items():
        with torch.no_grad():
            reps = forward_reps(model, batch)
        logits = reps.logits.float()
        preds = logits.argmax(-1)
        report[name] = {
            "layers": layer_stats(reps, batch["input_ids"], special),
            "logit_std_over_inputs": float(logits.std(0).mean()),
            "majority_prediction_share": float(torch.bincount(preds).max() / len(preds)),
            "accuracy": float((preds == batch["labels"]).float().mean()),
            "teacher_max_prob": float(torch.softmax(logits, -1).max(-1).values.mean()),
            **(
                grad_norms(model, teacher, {k: v[:32] for k, v in batch.items()}) if name != "teacher" else {}
            ),
        }
    for name, rep in report.items():
        print(
            f"\n== {name}: logit std over inputs {rep['logit_std_over_inputs']:.4f}, "
            f"majority-prediction share {rep['majority_prediction_share']:.2f}, "
            f"acc {rep['accuracy']:.3f}, mean max prob {rep['teacher_max_prob']:.3f}"
        )
        if "soft_ce_loss" in rep:
            print(
                "   one batch: "
                + ", ".join(f"{k} {v:.4g}" for k, v in rep.items() if k.startswith(("soft", "hard")))
            )
        print("   layer   cos  in-var  top5E    ent    sep    |s|")
        for row in rep["layers"]:
            extra = f" {row['ent']:6.3f} {row['sep']:6.3f} {row['abs_score']:6.2f}" if "ent" in row else ""
            base = f"{row['layer']:5d} {row['cos']:5.3f} {row['in_var']:7.4f} {row['top5_energy']:6.3f}"
            print(f"   {base}{extra}")
    print(
        f"\n(ln T for the mean length: {math.log(float(batch['attention_mask'].sum(1).float().mean())):.3f})"
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)


if __name__ == "__main__":
    main()
