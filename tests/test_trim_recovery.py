"""benchmarks/trim_recovery.py's bookkeeping on a hand-made suite record (no training)."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def recovery():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("trim_recovery", ROOT / "benchmarks" / "trim_recovery.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["trim_recovery"] = module
    spec.loader.exec_module(module)
    yield module
    for name in ("trim_recovery", "glue_suite"):
        sys.modules.pop(name, None)
    sys.path.remove(str(ROOT / "benchmarks"))


def test_recovery_reads_the_trimmed_student_on_its_own_tokenizer_and_the_cells_rows(recovery) -> None:
    args = argparse.Namespace(tier="cpu", epochs=1.0, lr=5e-5, data_dir=Path("glue"))
    out = Path("runs/x")
    sst2, mrpc = recovery.cell_of("SST-2", 42), recovery.cell_of("MRPC", 43)
    cmd = recovery.command(sst2, args, out, Path("r"))
    student = cmd[cmd.index("--student") + 1]
    assert student == "runs/x/SST-2/tinybert4-prediction-minilm6-trim-s42-trimmed"
    assert "--own-tokenizer" in cmd and cmd[cmd.index("--stage") + 1] == "prediction"
    assert cmd[cmd.index("--prediction-lr") + 1] == "5e-05" and cmd[cmd.index("--seed") + 1] == "42"
    assert cmd[cmd.index("--max-train-samples") + 1] == "8000"  # the rows the cell's teacher labelled
    assert "--max-train-samples" not in recovery.command(mrpc, args, out, Path("r"))
    # another schedule is another run, never a resumed one
    assert recovery.recovery_dir(mrpc, out, 1.0, 5e-5) != recovery.recovery_dir(mrpc, out, 2.0, 5e-5)


def test_rows_and_table_put_trimming_and_recovery_side_by_side(recovery) -> None:
    cell = recovery.cell_of("MRPC", 42)
    ledger = {
        cell.name: {
            "last": {"f1": 0.8614},
            "untrimmed": {"last": {"f1": 0.8668}},
            "teacher_dev": {"f1": 0.8981},
            "params": 14_600_000,
            "trim": {"pieces_after": 9387},
        },
        "MRPC/teacher": {"dev": {"f1": 0.9}, "params": 109_500_000},
    }
    run = {"stages": {"prediction": {"evals": [{"f1": 0.80}, {"f1": 0.8702}]}}, "dev": {"f1": 0.8702}}
    r = recovery.row(cell, ledger, run, 3.25)
    assert (r["teacher"], r["whole"], r["trimmed"], r["recovered"]) == (89.81, 86.68, 86.14, 87.02)
    text = recovery.table([r, {**r, "task": "RTE", "recovered": 85.14}], 1.0, 5e-5)
    assert "| MRPC (f1) | 89.81 | 86.68 | 86.14 | -0.54 | 87.02 | +0.88 | 9,387 | 7.5x | 3.2 |" in text
    assert "trimming -0.54, recovery -0.06 points" in text
