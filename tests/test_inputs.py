"""Data files as people have them: UTF-16 exports, other encodings, Parquet and saved HF datasets.

Each format is made from the same CSV and must read as the same rows, with the same row-count line.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
from conftest import without_row_counts, write_saved_dataset, write_sentiment_csv
from typer.testing import CliRunner

from tinydistill.cli import app
from tinydistill.errors import TinyDistillError
from tinydistill.tasks.resolve import load_task_data
from tinydistill.tasks.table import read_table_file

pa = pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402

LABELS = ["neg", "pos"]


def csv_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """The CSV every other format is made from (with a quoted tab, quotes and a non-ASCII word)."""
    path = write_sentiment_csv(tmp_path / "train.csv", 20, seed=1)
    rows = csv_rows(path)
    rows[3]["text"] = 'a "great"\tfilm, très bien'
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["text", "label"])
        w.writeheader()
        w.writerows(rows)
    return path


def convert(source: Path, fmt: str) -> Path:
    rows = csv_rows(source)
    if fmt == "utf16-tsv":  # Excel's "Unicode Text": UTF-16 LE with a BOM, tab-separated
        path = source.with_name("train-u16.tsv")
        with open(path, "w", newline="", encoding="utf-16") as f:
            w = csv.writer(f, delimiter="\t")
            w.writerow(["text", "label"])
            w.writerows([r["text"], r["label"]] for r in rows)
        assert path.read_bytes()[:2] == b"\xff\xfe"
        return path
    if fmt == "utf16be-csv":
        path = source.with_name("train-u16be.csv")
        path.write_bytes(b"\xfe\xff" + source.read_text().encode("utf-16-be"))
        return path
    if fmt == "utf8-bom-csv":
        path = source.with_name("train-bom.csv")
        path.write_bytes(b"\xef\xbb\xbf" + source.read_bytes())
        return path
    if fmt == "parquet":
        path = source.with_name("train.parquet")
        pq.write_table(pa.Table.from_pylist(rows), path)
        return path
    assert fmt == "saved-dataset"
    return write_saved_dataset(source.with_name("train-ds"), rows, {"label": LABELS})


FORMATS = ["utf16-tsv", "utf16be-csv", "utf8-bom-csv", "parquet", "saved-dataset"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_reads_as_the_csv_it_came_from(source, fmt, capsys):
    path = convert(source, fmt)
    expected = load_task_data("custom", None, str(source), str(source), ["text"])
    capsys.readouterr()
    got = load_task_data("custom", None, str(path), str(path), ["text"])
    assert got.train == expected.train and got.dev == expected.dev
    assert list(got.spec.labels) == list(expected.spec.labels) == LABELS
    assert capsys.readouterr().err.splitlines() == [
        f"train: 20 rows read from {path} (0 skipped)",
        f"dev: 20 rows read from {path} (0 skipped)",
    ]


def test_columns_by_position_in_a_parquet_file(source, tmp_path):
    """The same column options: a position works where no column has that name."""
    path = convert(source, "parquet")
    by_name = load_task_data("custom", None, str(path), str(path), ["text"], "label")
    by_position = load_task_data("custom", None, str(path), str(path), ["0"], "1", header=False)
    assert by_position.train == by_name.train


def test_finetune_evaluate_and_predict_read_them(source, tmp_path, tiny_encoder):
    """finetune on a saved dataset + Parquet dev, evaluate a UTF-16 TSV, predict into Parquet."""
    ds, dev, u16 = (convert(source, f) for f in ("saved-dataset", "parquet", "utf16-tsv"))
    run = tmp_path / "run"
    args = ["finetune", "--task", "custom", "--train-file", ds, "--dev-file", dev, "--model", tiny_encoder]
    result = CliRunner().invoke(app, [str(a) for a in [*args, "--output", run, "--max-steps", "2"]])
    assert result.exit_code == 0, result.stderr
    assert f"train: 20 rows read from {ds} (0 skipped)" in result.stderr.splitlines()
    assert f"dev: 20 rows read from {dev} (0 skipped)" in result.stderr.splitlines()
    assert json.loads((run / "config.json").read_text())["id2label"] == {"0": "neg", "1": "pos"}
    ev = ["evaluate", "--task", "custom", "--dev-file", u16, "--model", run]
    result = CliRunner().invoke(app, [str(a) for a in ev])
    assert result.exit_code == 0, result.stderr
    assert f"dev: 20 rows read from {u16} (0 skipped)" in result.stderr.splitlines()
    out = tmp_path / "preds.parquet"
    result = CliRunner().invoke(
        app, ["predict", "--model", str(run), "--input", str(ds), "--output", str(out)]
    )
    assert result.exit_code == 0, result.stderr
    assert result.stderr == f"predict: 20 rows read from {ds} (0 skipped)\n"
    got = pq.read_table(out).to_pylist()
    assert [g["text"] for g in got] == [r["text"] for r in csv_rows(source)]
    assert [g["label"] for g in got] == [r["label"] for r in csv_rows(source)]
    assert {g["prediction"] for g in got} <= set(LABELS) and "prob_pos" in got[0]


def _one_line_error(result, *fragments: str) -> str:
    assert result.exit_code == 2, (result.stderr, result.exception)
    rest = without_row_counts(result.stderr)
    assert rest.count("\n") == 1 and rest.startswith("error: "), rest
    for fragment in fragments:
        assert fragment in rest, rest
    return rest


def test_other_encodings_need_encoding_and_a_wrong_one_is_one_line(tmp_path, tiny_encoder):
    path = tmp_path / "cp1252.csv"
    path.write_bytes("text,label\ncafé crème good,pos\nnaïve dull,neg\n".encode("cp1252"))
    base = [
        "predict",
        "--model",
        str(tiny_encoder),
        "--input",
        str(path),
        "--output",
        str(tmp_path / "o.jsonl"),
    ]
    _one_line_error(CliRunner().invoke(app, base), "not valid UTF-8", "--encoding")
    assert [r["text"] for _, r in read_table_file(path, encoding="cp1252").records][0] == "café crème good"
    _one_line_error(CliRunner().invoke(app, [*base, "--encoding", "utf-16"]), "not utf-16 text", "--encoding")
    _one_line_error(CliRunner().invoke(app, [*base, "--encoding", "klingon"]), "--encoding", "klingon")
    utf8 = tmp_path / "utf8.csv"
    utf8.write_text("text,label\ncafé good,pos\n")
    with pytest.raises(TinyDistillError, match="not valid ascii text .*; is --encoding right"):
        read_table_file(utf8, encoding="ascii")
    no_bom = tmp_path / "u16-no-bom.csv"
    no_bom.write_bytes("text,label\ngood,pos\n".encode("utf-16-le"))
    with pytest.raises(TinyDistillError, match="NUL characters.*--encoding utf-16-le"):
        read_table_file(no_bom)
    assert read_table_file(no_bom, encoding="utf-16-le").records == [(2, {"text": "good", "label": "pos"})]


def test_missing_pyarrow_names_the_extra(source, monkeypatch):
    path = convert(source, "parquet")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(TinyDistillError, match=r"pip install 'tinydistill\[parquet\]'"):
        read_table_file(path)


def test_a_saved_dataset_dict_asks_for_one_split(source, tmp_path):
    root = tmp_path / "dd"
    write_saved_dataset(root / "train", csv_rows(source))
    (root / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "validation"]}))
    with pytest.raises(TinyDistillError, match="give one split's folder"):
        read_table_file(root)
