#!/usr/bin/env bash
# The main job: install, then run the staged pipeline: fine-tune all-MiniLM-L6-v2 on SST-2, distill a
# TinyBERT 4L-312 student from it, evaluate, export, bench, report, write the model card, and print the
# teacher-vs-student table (18 minutes measured on 2 CPU cores before export/bench/report/card were
# stages). Run it again after a stop: finished stages are reused (runs/main/pipeline.json).
# Extra arguments go to `tinydistill pipeline` (e.g. --task MRPC, --full, --augment, --from distill).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh teacher
exec .venv/bin/tinydistill pipeline --output runs/main "$@"
