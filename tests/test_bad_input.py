"""Every error a user can cause is one line (``error: ...``), exit code 2, and leaves a finished run
next to it byte-identical."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_bert_config, without_row_counts, write_sst2_like, write_vocab
from transformers import BertModel, BertTokenizerFast
from typer.testing import CliRunner

import tinydistill
from tinydistill.cli import app


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> dict[str, Path]:
    """A tiny encoder, a base encoder without a head, a corpus, and one finished run to keep intact."""
    root = tmp_path_factory.mktemp("bad")
    tok = BertTokenizerFast(vocab=str(write_vocab(root / "vocab.txt")), do_lower_case=True)
    glue = write_sst2_like(root / "glue", n_train=32, n_dev=8)
    torch.manual_seed(0)
    base = root / "base"
    BertModel(tiny_bert_config(len(tok), layers=1, hidden=16)).save_pretrained(base)
    tok.save_pretrained(base)
    finished = root / "finished"
    tinydistill.finetune(task="sst2", data_dir=str(glue), model=str(base), output=str(finished), max_steps=2)
    text = root / "text.txt"
    text.write_text(
        "the movie was good and the plot was fine. the acting was bad.\n\nthe film was very nice.\n" * 20
    )
    tinydistill.prepare_corpus(text, str(base), root / "corpus", max_seq_length=24)
    return {
        "root": root,
        "glue": glue,
        "base": base,
        "finished": finished,
        "corpus": root / "corpus",
        "tok": tok,
    }


def snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def fails(site, args: list[str], message: str, env: dict[str, str] | None = None) -> str:
    """The CLI exits 2 with one line ``error: ...`` containing ``message``; the finished run is intact."""
    before = snapshot(site["finished"])
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.exception)
    line = without_row_counts(result.stderr)
    assert line.startswith("error: ") and line.count("\n") == 1, line
    assert message in line, line
    assert snapshot(site["finished"]) == before
    return line


def finetune_args(site, output: Path | str, *extra: str) -> list[str]:
    return [
        "finetune",
        "--task",
        "sst2",
        "--data-dir",
        str(site["glue"]),
        "--model",
        str(site["base"]),
        "--output",
        str(output),
        "--max-steps",
        "1",
        *extra,
    ]


def test_output_under_a_file_and_read_only(site) -> None:
    blocker = site["root"] / "a-file"
    blocker.write_text("x")
    fails(site, finetune_args(site, blocker / "run"), f"cannot write the run to {blocker / 'run'}")
    locked = site["root"] / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # running as root: permissions do not stop writes
            pytest.skip("permissions are not enforced for this user")
        fails(site, finetune_args(site, locked / "run"), "cannot write the run to")
    finally:
        locked.chmod(0o700)


def test_full_disk(site, monkeypatch) -> None:
    from tinydistill import runs

    monkeypatch.setattr(runs, "MIN_FREE_BYTES", 2**62)
    fails(site, finetune_args(site, site["root"] / "full"), "MB free under")


def test_finished_run_needs_overwrite(site) -> None:
    fails(site, finetune_args(site, site["finished"]), "holds a finished run: --overwrite to replace it")


def test_corrupt_weights(site) -> None:
    broken = site["root"] / "broken"
    shutil.copytree(site["finished"], broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    fails(
        site,
        ["evaluate", "--task", "sst2", "--data-dir", str(site["glue"]), "--model", str(broken)],
        f"cannot load model '{broken}'",
    )


def test_base_encoder_has_no_trained_head(site) -> None:
    args = ["evaluate", "--task", "sst2", "--data-dir", str(site["glue"]), "--model", str(site["base"])]
    fails(site, args, "has no trained classification head for task SST-2")
    allowed = CliRunner().invoke(app, [*args, "--allow-new-head"])
    assert allowed.exit_code == 0, allowed.stderr
    rows = site["root"] / "rows.tsv"
    rows.write_text("sentence\nthe film was good\n")
    predict = [
        "predict",
        "--model",
        str(site["base"]),
        "--input",
        str(rows),
        "--output",
        str(site["root"] / "p.tsv"),
    ]
    fails(site, [*predict, "--backend", "torch"], "has no trained classification head")
    assert not (site["root"] / "p.tsv").exists()


def test_export_refuses_a_new_head(site) -> None:
    pytest.importorskip("onnx")
    fails(
        site,
        ["export", "--model", str(site["base"]), "--output", str(site["root"] / "onnx")],
        "has no trained classification head",
    )


def test_truncated_shard_and_manifest_mismatch(site) -> None:
    damaged = site["root"] / "damaged"
    shutil.copytree(site["corpus"], damaged)
    shard = next(damaged.glob("shard_*[0-9].npy"))
    shard.write_bytes(shard.read_bytes()[:-64])
    args = [
        "general",
        "--teacher",
        str(site["base"]),
        "--student",
        str(site["base"]),
        "--max-steps",
        "1",
        "--output",
        str(site["root"] / "g"),
    ]
    fails(site, [*args, "--corpus", str(damaged)], f"shard {shard.name} is damaged")
    lying = site["root"] / "lying"
    shutil.copytree(site["corpus"], lying)
    manifest = json.loads((lying / "manifest.json").read_text())
    manifest["shards"][0]["rows"] += 5
    (lying / "manifest.json").write_text(json.dumps(manifest))
    fails(site, [*args, "--corpus", str(lying)], "the manifest says")


def test_hidden_not_divisible_by_heads(site) -> None:
    shape = site["root"] / "odd-shape"
    shape.mkdir()
    cfg = tiny_bert_config(len(site["tok"]), layers=1, hidden=18, heads=4).to_dict()
    (shape / "config.json").write_text(json.dumps(cfg))
    args = ["distill", "--task", "sst2", "--data-dir", str(site["glue"]), "--teacher", str(site["finished"])]
    args += ["--student", str(shape), "--output", str(site["root"] / "d"), "--max-steps", "1"]
    fails(site, args, "hidden size 18 is not a multiple of the 4 attention heads")


def test_binary_corpus_input(site) -> None:
    blob = site["root"] / "blob.bin"
    blob.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    fails(
        site,
        [
            "corpus",
            "--input",
            str(blob),
            "--tokenizer",
            str(site["base"]),
            "--output",
            str(site["root"] / "c"),
        ],
        "is not text (binary data)",
    )


def test_corpus_overwrite_keeps_the_old_corpus_until_the_new_one_is_complete(site) -> None:
    kept = site["root"] / "kept"
    shutil.copytree(site["corpus"], kept)
    before = snapshot(kept)
    empty = site["root"] / "empty.txt"
    empty.write_text("\n\n")
    fails(
        site,
        [
            "corpus",
            "--input",
            str(empty),
            "--tokenizer",
            str(site["base"]),
            "--output",
            str(kept),
            "--overwrite",
        ],
        "produced no sequences",
    )
    assert snapshot(kept) == before


def test_typo_label_in_a_custom_train_file(site) -> None:
    train = site["root"] / "train.csv"
    rows = ["text,label"] + [f"film {i},{'pos' if i % 2 else 'neg'}" for i in range(30)] + ["film x,postive"]
    train.write_text("\n".join(rows) + "\n")
    args = [
        "finetune",
        "--task",
        "custom",
        "--train-file",
        str(train),
        "--dev-file",
        str(train),
        "--model",
        str(site["base"]),
        "--max-steps",
        "1",
    ]
    line = fails(
        site, [*args, "--output", str(site["root"] / "c1")], "label 'postive' occurs on one row only"
    )
    assert "--labels" in line and "'neg' x15" in line
    fails(
        site,
        [*args, "--output", str(site["root"] / "c2"), "--labels", "neg,pos"],
        "label 'postive' is not one of the declared labels ['neg', 'pos']",
    )
    train.write_text("\n".join(rows[:-1]) + "\n")
    ok = CliRunner().invoke(app, [*args, "--output", str(site["root"] / "c3"), "--labels", "pos,neg"])
    assert ok.exit_code == 0, ok.stderr
    config = json.loads((site["root"] / "c3" / "config.json").read_text())
    assert config["id2label"] == {"0": "pos", "1": "neg"}  # the declared order


def test_missing_relative_model_path(site, monkeypatch) -> None:
    monkeypatch.chdir(site["root"])
    (site["root"] / "runs").mkdir(exist_ok=True)
    args = ["finetune", "--task", "sst2", "--data-dir", str(site["glue"]), "--model", "runs/nope"]
    fails(
        site, [*args, "--output", str(site["root"] / "r")], "model not found: runs/nope (no such directory)"
    )


@pytest.mark.parametrize(("command", "hint"), [("augment", "--shard i/n"), ("mlm-head", "without torchrun")])
def test_one_process_commands_refuse_a_multi_process_launch(site, command, hint) -> None:
    args = {
        "augment": [
            "augment",
            "--task",
            "sst2",
            "--data-dir",
            str(site["glue"]),
            "--mlm",
            str(site["base"]),
            "--output",
            str(site["root"] / "aug.tsv"),
        ],
        "mlm-head": [
            "mlm-head",
            "--encoder",
            str(site["base"]),
            "--corpus",
            str(site["root"] / "text.txt"),
            "--output",
            str(site["root"] / "mlm"),
        ],
    }[command]
    fails(site, args, hint, env={"WORLD_SIZE": "2"})
