#!/usr/bin/env bash
# Issue 4 evidence: TinyBERT data augmentation, end to end on this machine's data.
#   1. mlm-head: a trained MLM head on the packaged all-MiniLM-L6-v2 (enwiki sample; ~10 min on 2 cores)
#   2. augment: SST-2 (capped train subset), MRPC, RTE train files with that MLM (word vectors: its
#      input embeddings), with row counts
#   3. distill (TinyBERT 4L-312) with vs without the augmented file, same optimizer-step budget per
#      stage and the same evaluation schedule; teachers are fine-tuned first when missing
#   4. the throughput benchmark (run it on a quiet machine: the figure is a timing)
# Every step is skipped when its output exists, so an interrupted run resumes. Results:
# $OUT/summary.md and $OUT/summary.json. Settings (environment variables, defaults in brackets):
#   OUT [runs/evidence/augment]  GLUE [../shared/data/glue]  CORPUS [../shared/data/corpus/enwiki-2015-sample]
#   TEACHERS [runs/evidence] (<dir>/<task>-teacher, made there if missing)  ENCODER [all-MiniLM-L6-v2]
#   MLM [trained here; or e.g. bert-base-uncased]  MLM_STEPS [300]  AUG_TASKS [SST-2 MRPC RTE]
#   DISTILL_TASKS [SST-2 MRPC]  SST2_CAP [2000]  N_AUG [20]  STEPS [500 per stage]  STUDENT [tinybert-4l-312]
#   DISTILL_ARGS / FINETUNE_ARGS [extra flags]  BENCH [1]  BENCH_ARGS [--dtype float32,bfloat16 --masks-per-row 1,2,15%,all]
#   TD [.venv/bin/tinydistill]  PY [.venv/bin/python]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/evidence/augment}
GLUE=${GLUE:-../shared/data/glue}
CORPUS=${CORPUS:-../shared/data/corpus/enwiki-2015-sample}
TEACHERS=${TEACHERS:-runs/evidence}
ENCODER=${ENCODER:-all-MiniLM-L6-v2}
MLM_STEPS=${MLM_STEPS:-300}
AUG_TASKS=${AUG_TASKS-SST-2 MRPC RTE}
DISTILL_TASKS=${DISTILL_TASKS-SST-2 MRPC}
SST2_CAP=${SST2_CAP:-2000}
N_AUG=${N_AUG:-20}
STEPS=${STEPS:-500}
STUDENT=${STUDENT:-tinybert-4l-312}
DISTILL_ARGS=${DISTILL_ARGS:-}
FINETUNE_ARGS=${FINETUNE_ARGS:-}
BENCH=${BENCH:-1}
BENCH_ARGS=${BENCH_ARGS:---dtype float32,bfloat16 --masks-per-row 1,2,15%,all}
TD=${TD:-.venv/bin/tinydistill}
PY=${PY:-.venv/bin/python}
mkdir -p "$OUT"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/log.txt"; }
lower() { echo "$1" | tr 'A-Z' 'a-z' | tr -d '-'; }
cap() { [ "$1" = SST-2 ] && echo "--max-train-samples $SST2_CAP" || true; }

# 1. a masked LM: the encoder with a trained, tied MLM head (unless MLM is given)
if [ -z "${MLM:-}" ]; then
  MLM=$OUT/mlm
  if [ ! -f "$MLM/mlm_head.json" ]; then
    log "mlm-head on $ENCODER ($MLM_STEPS steps)"
    $TD mlm-head --encoder "$ENCODER" --corpus "$CORPUS" --output "$MLM" --max-steps "$MLM_STEPS" --no-progress \
      | tee -a "$OUT/log.txt"
  fi
fi

# 2. augmented train files (original rows included)
for T in $AUG_TASKS; do
  t=$(lower "$T")
  if [ ! -f "$OUT/$t-aug.tsv" ]; then
    log "augment $T"
    # shellcheck disable=SC2046
    $TD augment --task "$T" --data-dir "$GLUE" --mlm "$MLM" --output "$OUT/$t-aug.tsv" --n-aug "$N_AUG" \
      --no-progress $(cap "$T") > "$OUT/$t-aug.json"
    cat "$OUT/$t-aug.json" | tee -a "$OUT/log.txt"
  fi
done

# 3. distillation with vs without augmentation: same steps per stage, same evaluation schedule
printf 'eval_every: 100\n' > "$OUT/distill.yaml"
for T in $DISTILL_TASKS; do
  t=$(lower "$T")
  teacher=$TEACHERS/$t-teacher
  if [ ! -f "$teacher/metrics.json" ]; then
    teacher=$OUT/$t-teacher
    if [ ! -f "$teacher/metrics.json" ]; then
      log "fine-tune the $T teacher"
      # shellcheck disable=SC2086
      $TD finetune --task "$T" --data-dir "$GLUE" --model "$ENCODER" --output "$teacher" --learning-rate 1e-4 \
        $FINETUNE_ARGS | tee -a "$OUT/log.txt"
    fi
  fi
  common=(--task "$T" --data-dir "$GLUE" --teacher "$teacher" --student "$STUDENT" --stage all
          --config "$OUT/distill.yaml" --max-steps "$STEPS" --intermediate-epochs 1000 --prediction-epochs 1000)
  if [ ! -f "$OUT/$t-plain/metrics.json" ]; then
    log "distill $T without augmentation ($STEPS steps per stage)"
    # shellcheck disable=SC2046,SC2086
    $TD distill "${common[@]}" --output "$OUT/$t-plain" $(cap "$T") $DISTILL_ARGS | tee -a "$OUT/log.txt"
  fi
  if [ ! -f "$OUT/$t-aug/metrics.json" ]; then
    log "distill $T with augmentation ($STEPS steps per stage)"
    # shellcheck disable=SC2086
    $TD distill "${common[@]}" --output "$OUT/$t-aug" --train-file "$OUT/$t-aug.tsv" $DISTILL_ARGS \
      | tee -a "$OUT/log.txt"
  fi
done

# 4. throughput (BERT-base-size random MLM, 200 SST-2 dev sentences, N_a=20, K=15, p=0.4)
if [ "$BENCH" = 1 ] && [ ! -f "$OUT/throughput.json" ]; then
  log "throughput benchmark"
  # (the trained MLM also measures how far the faster masks/row settings' candidates drift from the paper's)
  # shellcheck disable=SC2086
  PYTHONPATH=src $PY benchmarks/augment_throughput.py --data-dir "$GLUE" --json "$OUT/throughput.json" $BENCH_ARGS \
    --agreement-mlm "$MLM" \
    2>/dev/null | tee -a "$OUT/log.txt"
fi

OUT="$OUT" AUG_TASKS="$AUG_TASKS" DISTILL_TASKS="$DISTILL_TASKS" MLM="$MLM" $PY - <<'PY'
import json
import os
from pathlib import Path

out = Path(os.environ["OUT"])
lower = lambda t: t.lower().replace("-", "")  # noqa: E731
summary = {"mlm": os.environ["MLM"], "augment": {}, "distill": {}}
lines = []
head = Path(os.environ["MLM"]) / "mlm_head.json"
if head.exists():
    h = json.loads(head.read_text())
    summary["mlm_head"] = {k: h[k] for k in ("steps", "seconds", "heldout_before", "heldout_after")}
    b, a = h["heldout_before"], h["heldout_after"]
    lines += [f"MLM head on {h['encoder']}: {h['steps']} steps, {h['seconds']} s; held-out MLM accuracy "
              f"{100 * b['accuracy']:.1f}% -> {100 * a['accuracy']:.1f}% (loss {b['loss']:.2f} -> {a['loss']:.2f})", ""]
lines += ["| task | train examples | rows written | variants | distinct sentences | MLM rows | seconds |",
          "|---|---|---|---|---|---|---|"]
for t in os.environ["AUG_TASKS"].split():
    f = out / f"{lower(t)}-aug.json"
    if f.exists():
        s = json.loads(f.read_text())
        summary["augment"][t] = s
        lines.append(f"| {t} | {s['examples']} | {s['rows']} | {s['variants']} | {s['sentences']} | "
                     f"{s['mlm_rows']} | {s['seconds']} |")
lines += ["", "| task | metric | without augmentation | with augmentation | train rows (without / with) | "
          "steps per stage |", "|---|---|---|---|---|---|"]
for t in os.environ["DISTILL_TASKS"].split():
    runs = {k: out / f"{lower(t)}-{k}" / "metrics.json" for k in ("plain", "aug")}
    if not all(p.exists() for p in runs.values()):
        continue
    m = {k: json.loads(p.read_text()) for k, p in runs.items()}
    summary["distill"][t] = {k: {"dev": v["dev"], "train_examples": v["train_examples"],
                                 "steps": {s: st["steps"] for s, st in v["stages"].items()}} for k, v in m.items()}
    for metric in m["plain"]["dev"]:
        per = {k: "/".join(str(st["steps"]) for st in v["stages"].values()) for k, v in m.items()}
        steps = per["aug"] if per["aug"] == per["plain"] else f"{per['plain']} vs {per['aug']}"
        lines.append(f"| {t} | {metric} | {100 * m['plain']['dev'][metric]:.2f} | {100 * m['aug']['dev'][metric]:.2f} | "
                     f"{m['plain']['train_examples']} / {m['aug']['train_examples']} | {steps} |")
bench = out / "throughput.json"
if bench.exists():
    rows = json.loads(bench.read_text())
    summary["throughput"] = rows
    lines += ["", "| device | dtype | masks/row | sentences/s | x original (1.2 s/sentence) | peak RSS MB | "
              "top-15 overlap / same best candidate vs fp32, masks/row 1 (trained MLM) |",
              "|---|---|---|---|---|---|---|"]
    for r in rows:
        a = r.get("agreement")
        agree = f"{100 * a['topk_overlap']:.1f}% / {100 * a['top1_agreement']:.1f}%" if a else "(reference)"
        lines.append(f"| {r['device']} ({r['threads']} threads) | {r['dtype']} | {r['masks_per_row_label']} | "
                     f"{r['sentences_per_s']} | {r['speedup_vs_original']} | {r['peak_rss_mb']} | {agree} |")
(out / "summary.json").write_text(json.dumps(summary, indent=2))
(out / "summary.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
log "done: $OUT/summary.md"
