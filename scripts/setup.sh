#!/usr/bin/env bash
# Create .venv and install tinydistill with the given extras (idempotent, fast when up to date).
# torch: a CPU machine gets the CPU build (a local wheel if pip's find-links has one, else the
# official CPU index), never the multi-GB CUDA wheels. With TINYDISTILL_TORCH=keep, an already
# installed torch (e.g. a CUDA build) is left as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-teacher}"
VENV="${VENV:-.venv}"
TORCH_PIN="torch==2.13.0"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PY="$VENV/bin/python"
stamp="$VENV/.installed-$(cat pyproject.toml constraints-cpu.txt | sha1sum | cut -c1-12)-${EXTRAS//,/_}"
[ -f "$stamp" ] && exit 0
if [ "${TINYDISTILL_TORCH:-cpu}" = cpu ] && ! "$PY" -c "import torch" 2>/dev/null; then
  wheels="$(mktemp -d)"
  if "$PY" -m pip download -q --no-deps --no-index "$TORCH_PIN" -d "$wheels" 2>/dev/null; then
    "$PY" -m pip install -q "$wheels"/torch-*.whl   # a local CPU wheel (pip's find-links); deps from PyPI
  else
    "$PY" -m pip install -q "$TORCH_PIN" --index-url https://download.pytorch.org/whl/cpu
  fi
  rm -rf "$wheels"
fi
CONSTRAINT=()
[ "${TINYDISTILL_TORCH:-cpu}" = cpu ] && CONSTRAINT=(-c constraints-cpu.txt)
"$PY" -m pip install -q "${CONSTRAINT[@]}" -e ".[$EXTRAS]"
touch "$stamp"
