#!/usr/bin/env bash
# The main job: install, then fine-tune all-MiniLM-L6-v2 on SST-2, distill a TinyBERT 4L-312
# student from it, and print the teacher-vs-student table (18 minutes measured on 2 CPU cores).
# Extra arguments go to `tinydistill pipeline` (e.g. --task MRPC, --full).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh teacher
exec .venv/bin/tinydistill pipeline --output runs/main "$@"
