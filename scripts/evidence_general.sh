#!/usr/bin/env bash
# Evidence for general distillation, end to end (about 2.5 hours on 2 CPU cores; nothing else running):
#   1. prepare the shared Wikipedia sample with the all-MiniLM-L6-v2 tokenizer (tinydistill corpus)
#   2. time 3 general-distillation steps with the real MiniLM teacher; size the run to BUDGET_S seconds
#   3. general distillation MiniLM -> TinyBERT 4L-312 with checkpoints, KILLED part-way (SIGKILL by
#      default: no chance to save) and resumed with --resume from the last periodic checkpoint
#   4. fine-tune a MiniLM teacher on SST-2 and on MRPC (the main job's recipe: 8000 examples, 2 epochs)
#   5. task distillation on each task from the general student and from random init, same budgets
#   6. throughput figure of benchmarks/general_throughput.py (the issue's 12L/768 teacher setting)
# and writes $OUT/evidence.md (dev scores side by side, the general run, the resume log, throughput).
#
# Usage: scripts/evidence_general.sh [--smoke]
#   --smoke: a tiny slice (1 file, 20 documents, a few steps, 64 examples) to check the script works.
# Environment: OUT (runs/evidence-general), BUDGET_S (3600: general-distillation seconds), STEPS (auto:
# from the measured s/step and BUDGET_S), BATCH (32), LR (1e-4), SAVE_EVERY (100), KILL_AFTER (seconds
# into the general run, default BUDGET_S/3), KILL_SIGNAL (KILL), PY (a python with tinydistill; default:
# .venv via scripts/setup.sh), DATA (../shared/data), TEACHERS (a dir with <task>-teacher runs to reuse,
# e.g. runs/evidence; default: fine-tune them under OUT), TASK_CAP (8000: SST-2/MRPC train rows).
set -euo pipefail
cd "$(dirname "$0")/.."
SMOKE=0
[ "${1:-}" = "--smoke" ] && SMOKE=1
if [ -z "${PY:-}" ]; then
  bash scripts/setup.sh teacher
  PY=.venv/bin/python
fi
DATA="${DATA:-../shared/data}"
OUT="${OUT:-runs/evidence-general}"
BUDGET_S="${BUDGET_S:-3600}"
BATCH="${BATCH:-32}"
LR="${LR:-1e-4}"
SAVE_EVERY="${SAVE_EVERY:-100}"
KILL_SIGNAL="${KILL_SIGNAL:-KILL}"
TD=("$PY" -m tinydistill.cli)
CORPUS_ARGS=(--workers 2)
TASK_ARGS=(--max-train-samples "${TASK_CAP:-8000}")
TEACHER_ARGS=(--epochs 2)
DISTILL_ARGS=(--intermediate-epochs 2 --prediction-epochs 2)
if [ "$SMOKE" = 1 ]; then
  OUT="${OUT%/}-smoke"
  BUDGET_S=60
  MAX_STEPS_SMOKE=4
  SAVE_EVERY=2
  BATCH=4
  CORPUS_ARGS=(--max-files 1 --max-docs 20 --overwrite)
  TASK_ARGS=(--max-train-samples 64 --max-eval-samples 64 --max-seq-length 64)
  TEACHER_ARGS=(--max-steps 2)
  DISTILL_ARGS=(--max-steps 2)
fi
KILL_AFTER="${KILL_AFTER:-$((BUDGET_S / 3))}"
mkdir -p "$OUT"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/evidence.log"; }

# 1. corpus
if [ "$SMOKE" = 1 ] || [ ! -f "$OUT/corpus/manifest.json" ]; then
  log "corpus: $DATA/corpus/enwiki-2015-sample -> $OUT/corpus"
  start=$(date +%s)
  "${TD[@]}" corpus --input "$DATA/corpus/enwiki-2015-sample" --tokenizer all-MiniLM-L6-v2 \
    --output "$OUT/corpus" "${CORPUS_ARGS[@]}" | tee "$OUT/corpus.json"
  log "corpus took $(($(date +%s) - start)) s"
fi

# 2. steps that fit the budget, from 3 timed steps with the real teacher
if [ "${STEPS:-auto}" = auto ]; then
  "$PY" benchmarks/general_throughput.py --teacher all-MiniLM-L6-v2 --batch-size "$BATCH" \
    --steps 3 --warmup 1 --json "$OUT/minilm_step.json"
  STEPS=$("$PY" -c "import json,sys; r=json.load(open(sys.argv[1]))[0]; print(int(int(sys.argv[2]) / r['s_per_step_median']))" \
    "$OUT/minilm_step.json" "$BUDGET_S")
  if [ "$SMOKE" = 1 ]; then
    log "smoke: $STEPS steps would fit $BUDGET_S s; running $MAX_STEPS_SMOKE"
    STEPS=$MAX_STEPS_SMOKE
  fi
fi
log "general distillation: $STEPS steps of batch $BATCH (budget $BUDGET_S s)"

# 3. general distillation, killed part-way, then resumed
GENERAL=("${TD[@]}" general --teacher all-MiniLM-L6-v2 --student tinybert-4l-312 --corpus "$OUT/corpus"
  --output "$OUT/general" --max-steps "$STEPS" --batch-size "$BATCH" --learning-rate "$LR"
  --save-every "$SAVE_EVERY" --keep-checkpoints 2 --resume)
if [ ! -f "$OUT/general/metrics.json" ]; then
  log "general: first run, sent SIG$KILL_SIGNAL after $KILL_AFTER s"
  set +e
  timeout --signal="$KILL_SIGNAL" "$KILL_AFTER" "${GENERAL[@]}" > >(tee -a "$OUT/resume.log") 2>&1
  code=$?
  set -e
  last=$(ls "$OUT/general/checkpoints" 2>/dev/null | sort -t- -k2 -n | tail -1 || true)
  log "general: first run exit code $code (124/137: killed); newest checkpoint: ${last:-none}" \
    | tee -a "$OUT/resume.log"
  log "general: rerun with --resume" | tee -a "$OUT/resume.log"
  "${GENERAL[@]}" 2>&1 | tee -a "$OUT/resume.log"
  log "general: resumed run finished" | tee -a "$OUT/resume.log"
fi

# 4-5. teachers and task distillation from the general student vs random init
for TASK in SST-2 MRPC; do
  t=$(echo "$TASK" | tr 'A-Z' 'a-z' | tr -d '-')
  teacher="$OUT/$t-teacher"
  if [ "$SMOKE" = 0 ] && [ -n "${TEACHERS:-}" ] && [ -f "$TEACHERS/$t-teacher/metrics.json" ]; then
    teacher="$TEACHERS/$t-teacher"
    log "$TASK: reusing the teacher $teacher"
  elif [ "$SMOKE" = 1 ] || [ ! -f "$teacher/metrics.json" ]; then
    log "$TASK: fine-tune the MiniLM teacher"
    "${TD[@]}" finetune --task "$TASK" --data-dir "$DATA/glue" --model all-MiniLM-L6-v2 \
      --output "$teacher" --learning-rate 1e-4 "${TASK_ARGS[@]}" "${TEACHER_ARGS[@]}"
  fi
  echo "$teacher" > "$OUT/$t-teacher.path"
  for INIT in general random; do
    student="$OUT/general"
    [ "$INIT" = random ] && student=tinybert-4l-312
    if [ "$SMOKE" = 1 ] || [ ! -f "$OUT/$t-$INIT/metrics.json" ]; then
      log "$TASK: task distillation from $INIT"
      "${TD[@]}" distill --task "$TASK" --data-dir "$DATA/glue" --teacher "$teacher" \
        --student "$student" --output "$OUT/$t-$INIT" --seed 42 "${TASK_ARGS[@]}" "${DISTILL_ARGS[@]}"
    fi
  done
done

# 6. throughput in the issue's setting (12L/768 random teacher, 4L-312, batch 8 x 128)
# (a timing: run it on an idle machine; an existing throughput.json is kept, delete it to re-measure)
if [ "$SMOKE" = 1 ]; then
  "$PY" benchmarks/general_throughput.py --steps 1 --warmup 1 --json "$OUT/throughput.json"
elif [ ! -f "$OUT/throughput.json" ]; then
  "$PY" benchmarks/general_throughput.py --compare-fp32 --json "$OUT/throughput.json"
fi

"$PY" - "$OUT" <<'EOF'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
read = lambda p: json.loads((out / p).read_text())
g = read("general/metrics.json")
lines = ["# General distillation evidence", "",
         f"General student: {g['student']} from {g['teacher']} on {g['corpus']} "
         f"({g['corpus_sequences']} sequences of 128 tokens), {g['steps']} steps of batch {g['batch_size']} "
         f"({g['epochs_seen']} epochs), {g['train_seconds']} s of training, layer map {g['layer_map']}, "
         f"teacher in {g['teacher_precision']}; loss (mean of the first / last 20 steps) "
         f"{sum(g['losses'][:20]) / len(g['losses'][:20]):.4f} -> {sum(g['losses'][-20:]) / len(g['losses'][-20:]):.4f}.",
         "", "| task | teacher | student from general distillation | student from random init |", "|---|---|---|---|"]
fmt = lambda d: ", ".join(f"{k} {100 * v:.2f}" for k, v in d.items() if isinstance(v, float))
for t, task in (("sst2", "SST-2"), ("mrpc", "MRPC")):
    tdir = Path((out / f"{t}-teacher.path").read_text().strip())
    row = [task, fmt(json.loads((tdir / "metrics.json").read_text())["dev"])]
    row += [fmt(read(f"{t}-{init}/metrics.json")["dev"]) for init in ("general", "random")]
    lines.append("| " + " | ".join(row) + " |")
lines += ["", "Throughput (benchmarks/general_throughput.py):", ""]
for r in read("throughput.json"):
    lines.append(f"- {r['device']}, teacher {r['teacher']} [{r['teacher_precision']}], batch {r['batch_size']} x "
                 f"{r['seq_len']}: {r['seq_per_s']} seq/s, {r['s_per_step_median']} s/step "
                 f"({r['vs_reference_4_seq_per_s']}x the 4 seq/s reference)")
if (out / "resume.log").exists():
    lines += ["", "Kill and resume:", "", "```", (out / "resume.log").read_text().strip(), "```"]
(out / "evidence.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
