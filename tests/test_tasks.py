"""Tests for tinydistill.tasks: specs, GLUE/custom readers, writer, HF loader and metrics."""

from __future__ import annotations

import sys
import types
from collections import Counter
from pathlib import Path

import pytest

from tinydistill.errors import TinyDistillError
from tinydistill.tasks import (
    GLUE_TASKS,
    Example,
    compute_metrics,
    custom_task,
    get_task,
    infer_labels,
    load_hf_split,
    load_split,
    looks_like_regression,
    read_glue_split,
    read_table,
    read_tsv_file,
    write_tsv,
)

SHARED_GLUE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "glue"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path


# fmt: off
GLUE_FIXTURES = {
    # CoLA: no header, and dev.tsv has no newline after its last row.
    "CoLA/train.tsv": "gj04\t1\t\tThe sailors rode the breeze.\nclc95\t0\t*\tThe more we study.\n",
    "CoLA/dev.tsv": 'gj04\t1\t\tGood one.\ngj04\t0\t*\tBad "one.',
    "SST-2/train.tsv": "sentence\tlabel\nhide new secretions \t0\nit 's a \" charming film \t1\n\n",
    "MRPC/train.tsv": "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
        '1\t702876\t702977\tHe called " the witness " .\tReferring to " the witness .\n'
        "0\t2108705\t2108831\tYucaipa owned it .\tYucaipa bought it .\n",
    "STS-B/dev.tsv": "index\tgenre\tfilename\tyear\told_index\tsrc1\tsrc2\tsentence1\tsentence2\tscore\n"
        "0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA plane.\tAn air plane.\t5.000\n"
        "1\tmain-news\tMSRvid\t2012test\t0004\tnone\tnone\tA man.\tA woman.\t0.800\n",
    # The unbalanced quote must stay inside its own row.
    "RTE/dev.tsv": "index\tsentence1\tsentence2\tlabel\n"
        '0\tHe said "hello.\tHe spoke.\tentailment\n1\tNo weapons found.\tWeapons found.\tnot_entailment\n',
    # MNLI: 12 columns in train, 16 in dev; the label is the last column.
    "MNLI/train.tsv": "\t".join(GLUE_TASKS["MNLI"].columns) + "\n0\t31193\t31193n\tgov\t( ( a ) )\t( b )"
        "\t(ROOT a)\t(ROOT b)\tPremise one.\tHypothesis one.\tneutral\tneutral\n",
    "MNLI/dev_matched.tsv": "index\tprompt\tpair\tgenre\tb1\tb2\tp1\tp2\ts1\ts2\tl1\tl2\tl3\tl4\tl5\tgold\n"
        "0\t1\t1n\tslate\tx\ty\tx\ty\tThe cat sat.\tA cat.\tentailment\tneutral\tentailment\t\t\tentailment",
}
# fmt: on


@pytest.fixture
def glue_dir(tmp_path: Path) -> Path:
    for rel, text in GLUE_FIXTURES.items():
        _write(tmp_path / "glue" / rel, text)
    return tmp_path / "glue"


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("sst2", "SST-2"), ("SST-2", "SST-2"), ("sst-2", "SST-2"), ("STS-B", "STS-B"), ("stsb", "STS-B"),
        ("sts-b", "STS-B"), ("mnli", "MNLI"), ("MNLI", "MNLI"), ("cola", "CoLA"), ("CoLA", "CoLA"),
        ("mrpc", "MRPC"), ("QQP", "QQP"), ("qnli", "QNLI"), ("rte", "RTE"), (" WNLI ", "WNLI"),
    ],
)  # fmt: skip
def test_get_task_aliases(alias: str, canonical: str) -> None:
    assert get_task(alias).name == canonical


def test_get_task_unknown_lists_valid_names() -> None:
    with pytest.raises(TinyDistillError, match=r"unknown task 'sst3'.*SST-2.*WNLI"):
        get_task("sst3")


def test_glue_specs() -> None:
    assert len(GLUE_TASKS) == 9
    assert get_task("cola").primary_metric == "mcc" and get_task("cola").metrics == ("mcc",)
    assert get_task("mrpc").primary_metric == get_task("qqp").primary_metric == "f1"
    stsb = get_task("stsb")
    assert stsb.is_regression and stsb.num_labels == 1 and stsb.primary_metric == "spearman"
    mnli = get_task("mnli")
    assert mnli.num_labels == 3 and mnli.dev_splits == ("dev_matched", "dev_mismatched")
    assert (mnli.hf_text_a, mnli.hf_text_b) == ("premise", "hypothesis")
    assert get_task("rte").labels == ("entailment", "not_entailment")
    assert get_task("rte").label_to_index("not_entailment") == 1
    assert stsb.label_to_index("3.800") == pytest.approx(3.8)
    with pytest.raises(TinyDistillError, match=r"unknown label 'xyz' for task RTE \(expected one of: entail"):
        get_task("rte").label_to_index("xyz")
    with pytest.raises(TinyDistillError, match=r"label 'nan' is not a number"):
        stsb.label_to_index("nan")
    for spec in GLUE_TASKS.values():
        assert spec.hf_name is not None and spec.epochs >= 3 and spec.max_seq_length in (64, 128)
    for name in ("SST-2", "QQP", "MNLI", "QNLI"):
        assert GLUE_TASKS[name].epochs == 3


def test_custom_task() -> None:
    cls = custom_task(["neg", "neu", "pos"], text_b=False)
    assert cls.metrics == ("accuracy", "f1_macro") and cls.primary_metric == "accuracy"
    assert cls.num_labels == 3
    assert custom_task(["no", "yes"], text_b=False).metrics == ("accuracy", "f1")
    assert (cls.epochs, cls.learning_rate, cls.max_seq_length, cls.batch_size) == (3, 2e-5, 128, 32)
    reg = custom_task(None, text_b=True, text_columns=("q", "d"))
    assert reg.is_regression and reg.primary_metric == "spearman"
    assert (reg.hf_text_a, reg.hf_text_b, reg.columns) == ("q", "d", ("q", "d", "label"))
    with pytest.raises(TinyDistillError, match="at least 2 distinct labels"):
        custom_task(["only"], text_b=False)


# fmt: off
GLUE_EXPECTED = {
    ("CoLA", "dev"): [Example("Good one.", None, 1), Example('Bad "one.', None, 0)],
    ("CoLA", "train"): [Example("The sailors rode the breeze.", None, 1),
                        Example("The more we study.", None, 0)],
    ("sst2", "train"): [Example("hide new secretions ", None, 0),
                        Example("it 's a \" charming film ", None, 1)],
    ("mrpc", "train"): [Example('He called " the witness " .', 'Referring to " the witness .', 1),
                        Example("Yucaipa owned it .", "Yucaipa bought it .", 0)],
    ("stsb", "dev"): [Example("A plane.", "An air plane.", 5.0), Example("A man.", "A woman.", 0.8)],
    ("rte", "dev"): [Example('He said "hello.', "He spoke.", 0),
                     Example("No weapons found.", "Weapons found.", 1)],
    ("mnli", "train"): [Example("Premise one.", "Hypothesis one.", 1)],
    ("mnli", "dev_matched"): [Example("The cat sat.", "A cat.", 0)],
}
# fmt: on


@pytest.mark.parametrize(("task", "split"), list(GLUE_EXPECTED))
def test_read_glue_fixtures(glue_dir: Path, task: str, split: str) -> None:
    assert read_glue_split(get_task(task), glue_dir, split) == GLUE_EXPECTED[task, split]
    assert load_split(get_task(task), glue_dir, split) == GLUE_EXPECTED[task, split]


def _error(fn, *args) -> str:
    """The TinyDistillError message raised by ``fn(*args)``; it must be a single line."""
    with pytest.raises(TinyDistillError, match=r"^[^\n]+$") as info:
        fn(*args)
    return str(info.value)


def test_missing_glue_paths(tmp_path: Path, glue_dir: Path) -> None:
    msg = _error(load_split, get_task("rte"), tmp_path / "nowhere", "train")
    assert str(tmp_path / "nowhere" / "RTE" / "train.tsv") in msg and msg.startswith("GLUE file not found")
    msg = _error(read_glue_split, get_task("qnli"), glue_dir, "dev")
    assert str(glue_dir / "QNLI" / "dev.tsv") in msg
    assert "file not found" in _error(read_tsv_file, get_task("rte"), tmp_path / "x.tsv")


@pytest.mark.parametrize(
    ("task", "content", "expected"),
    [
        ("RTE", "index\ts1\ts2\tlabel\n0\ta\tb\tentailment\n1\ta\tb\n", ":3: expected 4 columns, found 3"),
        ("RTE", "index\ts1\ts2\tlabel\n0\ta\tb\tc\tentailment\n", ":2: expected 4 columns, found 5"),
        ("CoLA", "gj04\t1\t\tok\n\ngj04\t1\t\tok\n", ":2: expected 4 columns, found 1"),
        ("MNLI", "h\n0\t1\t2\t3\t4\t5\t6\t7\ta\tb\n", ":2: expected at least 11 columns, found 10"),
        (
            "RTE",
            "index\ts1\ts2\tlabel\n0\ta\tb\txyz\n",
            ":2: unknown label 'xyz' for task RTE (expected one of: entailment, not_entailment)",
        ),
        ("SST-2", "sentence\tlabel\nfine\t1\nbad\t2\n", ":3: unknown label '2' for task SST-2"),
        ("STS-B", "h\n" + "\t".join(["0"] * 7 + ["a", "b", "abc"]) + "\n", ":2: label 'abc' is not a number"),
        ("RTE", "index\ts1\ts2\tlabel\n", ": no examples"),
        ("CoLA", "", ": no examples"),
        ("WNLI", "index\ts1\ts2\tlabel\n\n\n", ": no examples"),
    ],
)
def test_glue_row_errors(tmp_path: Path, task: str, content: str, expected: str) -> None:
    path = _write(tmp_path / "data.tsv", content)
    msg = _error(read_tsv_file, get_task(task), path)
    assert msg.startswith(str(path)) and expected in msg


def test_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bad.tsv"
    path.write_bytes(b"sentence\tlabel\n\xff\xfe bad\t1\n")
    assert "not valid UTF-8" in _error(read_tsv_file, get_task("sst2"), path)


@pytest.mark.parametrize(
    ("task", "examples"),
    [
        ("SST-2", [Example('a " quoted ', None, 1), Example("plain", None, 0)]),
        ("MRPC", [Example("s1 .", "s2 .", 1), Example("x", "y", 0)]),
        ("STS-B", [Example("A plane.", "An air plane.", 3.8), Example("b", "c", 0.123456789)]),
        ("RTE", [Example('He said "hi.', "Hi.", 0), Example("u", "v", 1)]),
        ("CoLA", [Example("Good.", None, 1), Example("*Bad.", None, 0)]),
        ("MNLI", [Example("p", "h", 2), Example("p2", "h2", 1)]),
        ("QQP", [Example("q1?", "q2?", 1)]),
    ],
)
def test_write_read_round_trip(tmp_path: Path, task: str, examples: list[Example]) -> None:
    spec = get_task(task)
    path = tmp_path / spec.name / "train.tsv"  # parent folder is created by write_tsv
    write_tsv(spec, examples, path)
    assert read_tsv_file(spec, path) == examples
    assert read_glue_split(spec, tmp_path, "train") == examples
    assert [p.name for p in path.parent.iterdir()] == ["train.tsv"]  # no temp file left behind


def test_write_tsv_layout_and_cleaning(tmp_path: Path) -> None:
    rte = get_task("rte")
    path = tmp_path / "rte.tsv"
    write_tsv(rte, [Example("a\tb\nc", "d\r\ne", 1)], path)
    expected = "index\tsentence1\tsentence2\tlabel\n0\ta b c\td  e\tnot_entailment\n"
    assert path.read_text(encoding="utf-8") == expected
    assert read_tsv_file(rte, path) == [Example("a b c", "d  e", 1)]


def test_write_tsv_failure_keeps_old_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "train.tsv", "sentence\tlabel\nold\t0\n")
    bad = [Example("fine", None, 1), Example("broken", None, 5)]
    assert "bad class index" in _error(write_tsv, get_task("sst2"), bad, path)
    assert path.read_text() == "sentence\tlabel\nold\t0\n"
    assert [p.name for p in tmp_path.iterdir()] == ["train.tsv"]
    assert "unlabeled" in _error(write_tsv, get_task("sst2"), [Example("x", None, None)], path)


def test_custom_round_trip(tmp_path: Path) -> None:
    spec = custom_task(["neg", "pos"], text_b=True, text_columns=("q", "d"), label_column="y")
    examples = [Example("a", "b", 1), Example("c", "d", 0)]
    path = tmp_path / "aug.tsv"
    write_tsv(spec, examples, path)
    assert read_tsv_file(spec, path) == examples
    assert read_table(path, ["q", "d"], "y", spec) == examples


def test_read_custom_csv_tsv_jsonl(tmp_path: Path) -> None:
    csv_path = _write(
        tmp_path / "d.csv",
        '\ufefftext,extra,label\n"Hello, world",x,pos\n"multi\nline ""quote""",y,neg\n\nplain,z,pos\n',
    )
    labels = infer_labels(csv_path, "label")
    assert labels == ["neg", "pos"]
    spec = custom_task(labels, text_b=False)
    assert read_table(csv_path, ["text"], "label", spec) == [
        Example("Hello, world", None, 1),
        Example('multi\nline "quote"', None, 0),
        Example("plain", None, 1),
    ]
    assert read_table(csv_path, ["text"], None, None)[0] == Example("Hello, world", None, None)

    tsv_path = _write(tmp_path / "d.tsv", 'premise\thypothesis\tscore\nA "b\tc\t2.5\nd\te\t0\n')
    reg = custom_task(None, text_b=True)
    assert read_table(tsv_path, ["premise", "hypothesis"], "score", reg) == [
        Example('A "b', "c", 2.5),
        Example("d", "e", 0.0),
    ]

    jsonl_path = _write(
        tmp_path / "d.jsonl", '{"s": "one", "t": "two", "l": 10}\n\n{"s": "three", "t": 4, "l": 2.0}\n'
    )
    assert infer_labels(jsonl_path, "l") == ["2", "10"]  # integers sort numerically
    examples = read_table(jsonl_path, ["s", "t"], "l", None)
    assert examples == [Example("one", "two", 1), Example("three", "4", 0)]


def test_custom_table_errors(tmp_path: Path) -> None:
    csv_path = _write(tmp_path / "d.csv", "a,b,c\n1,2,3\n")
    msg = _error(read_table, csv_path, ["foo"], None, None)
    assert msg == f"{csv_path}: column 'foo' not found (columns: a, b, c)"
    jsonl_path = _write(tmp_path / "d.jsonl", '{"a": "x", "l": "p"}\n{"a": "y", "l": \n')
    assert f"{jsonl_path}:2: invalid JSON (" in _error(read_table, jsonl_path, ["a"], "l", None)
    bad_label = _write(tmp_path / "e.tsv", "a\tl\nx\tp\ny\tq\n")
    spec = custom_task(["p", "r"], text_b=False)
    msg = _error(read_table, bad_label, ["a"], "l", spec)
    assert f"{bad_label}:3: unknown label 'q' for task custom" in msg
    short = _write(tmp_path / "f.tsv", "a\tl\nx\tp\ny\n")
    assert f"{short}:3: expected 2 columns, found 1" in _error(read_table, short, ["a"], "l", spec)
    empty = _write(tmp_path / "g.csv", "a,l\n")
    assert _error(read_table, empty, ["a"], "l", spec) == f"{empty}: no examples"
    assert "unsupported file type '.txt'" in _error(read_table, tmp_path / "h.txt", ["a"], None, None)
    blank = _write(tmp_path / "i.csv", "a,l\nx,\n")
    assert f"{blank}:2: empty label" in _error(infer_labels, blank, "l")


def test_looks_like_regression() -> None:
    assert looks_like_regression([str(i / 4) for i in range(21)])
    assert not looks_like_regression(["0", "1", "2"] * 5)
    assert not looks_like_regression([str(i) for i in range(20)] + ["x"])


def test_load_hf_split_maps_names(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple] = []

    def load_dataset(path: str, name: str, split: str) -> list[dict]:
        calls.append((path, name, split))
        if name == "stsb":
            return [{"sentence1": "a", "sentence2": "b", "label": 3.25, "idx": 0}]
        return [
            {"premise": "p", "hypothesis": "h", "label": 2, "idx": 0},
            {"premise": "q", "hypothesis": "i", "label": -1, "idx": 1},
        ]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    mnli = load_split(get_task("mnli"), None, "dev_mismatched")
    assert mnli == [Example("p", "h", 2), Example("q", "i", None)]
    assert load_hf_split(get_task("stsb"), "dev") == [Example("a", "b", 3.25)]
    assert [c[1:] for c in calls] == [("mnli", "validation_mismatched"), ("stsb", "validation")]


def test_load_hf_split_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach the hub\nretry later")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=offline))
    msg = _error(load_hf_split, get_task("rte"), "train")
    assert "ConnectionError: Couldn't reach the hub retry later" in msg and "--data-dir" in msg
    monkeypatch.setitem(sys.modules, "datasets", None)  # import now raises ImportError
    msg = _error(load_split, get_task("rte"), None, "train")
    assert "not installed" in msg and "--data-dir" in msg
    assert "no Hugging Face dataset" in _error(load_hf_split, custom_task(["a", "b"], False), "train")


def test_classification_metrics() -> None:
    # TP=3 FN=1 TN=2 FP=1: MCC = (3*2 - 1*1) / sqrt(4*4*3*3) = 5/12.
    y = [1, 1, 1, 1, 0, 0, 0]
    p = [1, 1, 1, 0, 0, 0, 1]
    assert compute_metrics(get_task("cola"), p, y) == {"mcc": pytest.approx(5 / 12)}
    out = compute_metrics(get_task("mrpc"), p, y)
    assert list(out) == ["f1", "accuracy"]
    assert out == {"f1": pytest.approx(0.75), "accuracy": pytest.approx(5 / 7)}
    assert all(type(v) is float for v in out.values())
    # Macro F1 over 3 classes: class0 1.0, class1 0.0, class2 0.5.
    spec3 = custom_task(["a", "b", "c"], text_b=False)
    got = compute_metrics(spec3, [0, 2, 2, 1], [0, 1, 2, 2])
    assert got == {"accuracy": 0.5, "f1_macro": pytest.approx(0.5)}
    # Logits are arg-maxed.
    assert compute_metrics(get_task("sst2"), [[0.1, 0.9], [2.0, -1.0]], [1, 1]) == {"accuracy": 0.5}


def test_regression_metrics() -> None:
    stsb = get_task("stsb")
    out = compute_metrics(stsb, [1.0, 2.0, 3.0], [1.0, 2.0, 4.0])
    assert out["pearson"] == pytest.approx(3 / (2 * 14 / 3) ** 0.5) and out["spearman"] == pytest.approx(1.0)
    # Spearman with one swapped pair: 1 - 6*2 / (4*15) = 0.8.
    assert compute_metrics(stsb, [1, 2, 3, 4], [1, 3, 2, 4])["spearman"] == pytest.approx(0.8)


def test_constant_predictions_do_not_crash() -> None:
    out = compute_metrics(get_task("stsb"), [2.0, 2.0, 2.0], [1.0, 3.0, 5.0])
    assert out == {"pearson": 0.0, "spearman": 0.0}
    assert compute_metrics(get_task("cola"), [1, 1, 1], [0, 1, 1]) == {"mcc": 0.0}
    assert compute_metrics(get_task("qqp"), [0, 0], [1, 0]) == {"f1": 0.0, "accuracy": 0.5}
    with pytest.raises(ValueError):
        compute_metrics(get_task("rte"), [0, 1], [0])


REAL_COUNTS = [
    ("CoLA", "train", 8551), ("CoLA", "dev", 1043), ("SST-2", "train", 67349), ("SST-2", "dev", 872),
    ("MRPC", "train", 3668), ("MRPC", "dev", 408), ("STS-B", "train", 5749), ("STS-B", "dev", 1500),
    ("QNLI", "dev", 5463), ("RTE", "train", 2490), ("RTE", "dev", 277), ("WNLI", "train", 635),
    ("WNLI", "dev", 71),
]  # fmt: skip


@pytest.mark.parametrize(("task", "split", "rows"), REAL_COUNTS)
def test_real_glue_row_counts(task: str, split: str, rows: int) -> None:
    if not (SHARED_GLUE / task / f"{split}.tsv").is_file():
        pytest.skip(f"shared GLUE data not present at {SHARED_GLUE}")
    examples = read_glue_split(get_task(task), SHARED_GLUE, split)
    assert len(examples) == rows
    assert all(ex.text_a for ex in examples)


def test_real_glue_label_distributions() -> None:
    if not (SHARED_GLUE / "MRPC" / "dev.tsv").is_file():
        pytest.skip(f"shared GLUE data not present at {SHARED_GLUE}")
    counts = {
        t: Counter(ex.label for ex in read_glue_split(get_task(t), SHARED_GLUE, "dev"))
        for t in "MRPC CoLA RTE".split()
    }
    assert counts["MRPC"] == {1: 279, 0: 129} and counts["CoLA"] == {1: 721, 0: 322}
    assert counts["RTE"] == {0: 146, 1: 131}  # 0 = entailment
    scores = [ex.label for ex in read_glue_split(get_task("stsb"), SHARED_GLUE, "dev")]
    assert min(scores) == 0.0 and max(scores) == 5.0


def test_f1_names_say_what_they_are() -> None:
    # Binary: the F1 of class 1 ("pos"). TP=2 FP=1 FN=1: F1 = 2*2 / (2*2 + 1 + 1) = 2/3.
    binary = custom_task(["neg", "pos"], text_b=False)
    assert compute_metrics(binary, [1, 0, 0, 1, 1], [1, 1, 0, 0, 1]) == {
        "accuracy": pytest.approx(3 / 5),
        "f1": pytest.approx(2 / 3),
    }
    # 4 classes, class 3 absent from the gold labels (but predicted once): the macro F1 is over the
    # classes present. class0 P=1 R=1/2 -> 2/3; class1 P=2/3 R=1 -> 4/5; class2 -> 0.
    spec4 = custom_task(["a", "b", "c", "d"], text_b=False)
    y, p = [0, 0, 1, 1, 2], [0, 3, 1, 1, 1]
    out = compute_metrics(spec4, p, y)
    assert out == {"accuracy": pytest.approx(3 / 5), "f1_macro": pytest.approx((2 / 3 + 4 / 5 + 0) / 3)}
    from sklearn.metrics import f1_score

    assert out["f1_macro"] == pytest.approx(f1_score(y, p, labels=[0, 1, 2], average="macro"))
    assert out["f1_macro"] != pytest.approx(f1_score(y, p, average="macro"))  # 4 classes: 0.367
    # GLUE keeps its official keys
    assert compute_metrics(get_task("mrpc"), [1, 0], [1, 1]).keys() == {"f1", "accuracy"}


def test_glue_label_names() -> None:
    names = {name: spec.class_names for name, spec in GLUE_TASKS.items()}
    assert names == {
        "CoLA": ("unacceptable", "acceptable"),
        "SST-2": ("negative", "positive"),
        "MRPC": ("not_equivalent", "equivalent"),
        "STS-B": None,
        "QQP": ("not_duplicate", "duplicate"),
        "MNLI": ("entailment", "neutral", "contradiction"),
        "QNLI": ("entailment", "not_entailment"),
        "RTE": ("entailment", "not_entailment"),
        "WNLI": ("not_entailment", "entailment"),  # WNLI's files say 1 for entailment
    }
    assert get_task("sst2").labels == ("0", "1")  # the files' values stay what they are
    assert custom_task(["neg", "pos"], text_b=False).class_names == ("neg", "pos")


# --------------------------------------------------------------------------- user tables


def _rows(path: Path, text: list[str], label: str | None = "label", **kw) -> list[Example]:
    return list(read_table(path, text, label, None, **kw))


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


TRICKY = ["line one\nline two", "has\ttab", 'say "hi"', 'a "quote', "plain, with comma"]


@pytest.mark.parametrize("suffix", [".tsv", ".csv"])
def test_quoted_fields_read_back_exactly(tmp_path: Path, suffix: str) -> None:
    import csv

    path = tmp_path / f"d{suffix}"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t" if suffix == ".tsv" else ",")
        w.writerow(["text", "label"])
        w.writerows([t, i % 2] for i, t in enumerate(TRICKY))
    got = read_table(path, ["text"], "label", custom_task(["0", "1"], text_b=False))
    assert [e.text_a for e in got] == TRICKY and [e.label for e in got] == [0, 1, 0, 1, 0]


def test_pandas_style_tsv_with_index_crlf_and_bom(tmp_path: Path) -> None:
    # what pandas' df.to_csv(path, sep="\t") writes: an unnamed index column, minimal quoting
    # (here also with CRLF row ends and a BOM, as from Excel / Windows)
    body = '\tsentence\tlabel\n0\t"line one\nline two"\tpos\n1\t"has\ttab"\tneg\n2\t"say ""hi"""\tpos\n'
    path = _bytes(tmp_path / "pandas.tsv", "\ufeff".encode() + body.replace("\n", "\r\n").encode())
    got = _rows(path, ["sentence"])
    # the line break inside the quoted field keeps its CRLF, as the file has it
    assert [e.text_a for e in got] == ["line one\r\nline two", "has\ttab", 'say "hi"']
    assert [e.label for e in got] == [1, 0, 1]  # neg < pos
    assert _rows(path, ["sentence"], "0")[0].label == 0  # the unnamed index column is column "0"
    crlf = _bytes(tmp_path / "crlf.csv", b"\xef\xbb\xbftext,label\r\nfine,1\r\nbad,0\r\n")
    assert _rows(crlf, ["text"]) == [Example("fine", None, 1), Example("bad", None, 0)]


def test_delimiter_detection_and_flag(tmp_path: Path) -> None:
    semi = _write(tmp_path / "semi.csv", "text;label\nHello, world;pos\nbye;neg\n")
    assert _rows(semi, ["text"]) == [Example("Hello, world", None, 1), Example("bye", None, 0)]
    # no header: the first row has commas and a pipe; the sniffer sees the pipe is the steady one
    pipe = _write(tmp_path / "pipe.csv", "a good, fine, long film|pos\nbad|neg\nok, ok|pos\n")
    assert [e.text_a for e in _rows(pipe, ["0"], "1", header=False)] == [
        "a good, fine, long film",
        "bad",
        "ok, ok",
    ]
    # a .tsv that is really comma-separated, and a .csv that is tab-separated
    assert _rows(_write(tmp_path / "c.tsv", "text,label\na,x\nb,y\n"), ["text"])[1] == Example("b", None, 1)
    assert _rows(_write(tmp_path / "t.csv", "text\tlabel\na,b\tx\n"), ["text"])[0].text_a == "a,b"
    # --delimiter wins over the suffix
    forced = _write(tmp_path / "f.csv", "text|label\na,b|x\nc|y\n")
    for flag in ("|", "pipe"):
        assert _rows(forced, ["text"], delimiter=flag)[0].text_a == "a,b"
    tabbed = _write(tmp_path / "t2.csv", "text\tlabel\nx\ty\n")
    for flag in ("tab", "\\t", "\t"):
        assert _rows(tabbed, ["text"], delimiter=flag) == [Example("x", None, 0)]
    assert "--delimiter must be one of tab" in _error(
        lambda: read_table(forced, ["text"], None, delimiter=":")
    )
    from tinydistill.tasks.table import parse_delimiter

    assert [parse_delimiter(v) for v in ("tab", "\\t", ",", ";", "|", None)] == [
        "\t",
        "\t",
        ",",
        ";",
        "|",
        None,
    ]


def test_glue_style_quotes_in_a_user_tsv_are_text(tmp_path: Path) -> None:
    """A .tsv whose quotes are not CSV quoting (GLUE's) is read line by line, and says so."""
    path = _write(tmp_path / "g.tsv", 'text\tlabel\n"Hi" she said .\t1\nan " odd one\t0\n" lone\t1\n')
    got = read_table(path, ["text"], "label", custom_task(["0", "1"], text_b=False))
    assert [e.text_a for e in got] == ['"Hi" she said .', 'an " odd one', '" lone']
    assert got.note == "quotes read as text" and "quotes read as text" in got.line("train")
    broken = _write(tmp_path / "g.csv", 'text,label\n"Hi" she said,1\n')
    assert f"{broken}:2: malformed CSV" in _error(read_table, broken, ["text"], "label", None)


def test_no_header_positional_columns(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.tsv", "pos\tthe film was good\tx\nneg\tthe film was bad\ty\n")
    assert _rows(path, ["1"], "0", header=False) == [
        Example("the film was good", None, 1),
        Example("the film was bad", None, 0),
    ]
    assert infer_labels(path, "0", header=False) == ["neg", "pos"]
    msg = _error(lambda: read_table(path, ["text"], "0", header=False))
    assert (
        msg
        == f"{path}: column 'text' not found (columns: 0, 1, 2; no header, so columns are named by position)"
    )
    # with a header, a column can still be given by its position
    named = _write(tmp_path / "n.csv", "label,review\npos,good\nneg,bad\n")
    assert (
        _rows(named, ["1"], "0")
        == _rows(named, ["review"], "label")
        == [
            Example("good", None, 1),
            Example("bad", None, 0),
        ]
    )
    # a headerless custom task keeps its positional layout when written (augment) and read back
    spec = custom_task(["neg", "pos"], text_b=False, text_columns=["1"], label_column="0", header=False)
    assert (spec.text_a_col, spec.label_col, spec.has_header, spec.columns) == (1, 0, False, ("0", "1"))
    out = tmp_path / "aug.tsv"
    write_tsv(spec, [Example('a "b"\tc', None, 1)], out)
    assert out.read_text() == 'pos\t"a ""b""\tc"\n'
    assert (
        read_tsv_file(spec, out)
        == read_table(out, ["1"], "0", spec, header=False)
        == [Example('a "b"\tc', None, 1)]
    )
    with pytest.raises(TinyDistillError, match="given by position"):
        custom_task(["a", "b"], text_b=False, text_columns=["text"], header=False)


def test_no_header_through_finetune_data_loading(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from tinydistill import config as C
    from tinydistill.runs import task_data

    train = _write(tmp_path / "train.csv", "pos,a good film\nneg,a bad film\n\nneg,\npos,fine\n")
    dev = _write(tmp_path / "dev.csv", "neg,dull\npos,superb\n")
    cfg = C.build(
        C.FinetuneConfig, None, task="custom", train_file=str(train), dev_file=str(dev), header=False,
        text_columns=["1"], label_column="0",
    )  # fmt: skip
    data = task_data(cfg)
    assert data.spec.labels == ("neg", "pos")
    assert data.train == [
        Example("a good film", None, 1),
        Example("a bad film", None, 0),
        Example("fine", None, 1),
    ]
    assert data.dev["dev"] == [Example("dull", None, 0), Example("superb", None, 1)]
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"train: 3 rows read from {train} (2 skipped: 1 blank, 1 empty text)",
        f"dev: 2 rows read from {dev} (0 skipped)",
    ]
    with pytest.raises(TinyDistillError, match="--text-columns 1"):
        task_data(
            C.build(
                C.FinetuneConfig, None, task="custom", train_file=str(train), dev_file=str(dev), header=False
            )
        )


def test_row_counts_of_glue_files(glue_dir: Path, capsys: pytest.CaptureFixture) -> None:
    from tinydistill.tasks.resolve import load_task_data

    load_task_data("sst2", str(glue_dir), need_dev=False)
    assert (
        capsys.readouterr().err == f"train: 2 rows read from {glue_dir / 'SST-2' / 'train.tsv'} (0 skipped)\n"
    )
    rows = read_table(_write(glue_dir / "big.jsonl", '{"t": "a"}\n\n' * 1234), ["t"], None)
    assert (
        rows.line("dev") == f"dev: 1,234 rows read from {glue_dir / 'big.jsonl'} (1,233 skipped: 1,233 blank)"
    )


@pytest.mark.parametrize(("task", "rows"), [("SST-2", 872), ("MRPC", 408), ("CoLA", 1043)])
def test_real_glue_dev_reads_the_same_as_a_user_table(task: str, rows: int) -> None:
    """GLUE's own TSVs (stray quotes, no header for CoLA) read the same through the user-table reader."""
    path = SHARED_GLUE / task / "dev.tsv"
    if not path.is_file():
        pytest.skip(f"shared GLUE data not present at {SHARED_GLUE}")
    spec = get_task(task)
    glue = read_glue_split(spec, SHARED_GLUE, "dev")
    names = [str(spec.text_a_col)] + ([str(spec.text_b_col)] if spec.text_b_col is not None else [])
    table = read_table(path, names, str(spec.label_col), spec, header=spec.has_header)
    assert len(glue) == len(table) == rows
    assert table == glue
