"""``mlm-head``: corpus reading, BERT masking, and training a tied MLM head on a frozen tiny encoder."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from conftest import toy_sentence
from transformers import AutoModelForMaskedLM, BertTokenizerFast
from typer.testing import CliRunner

from tinydistill.augmentation.masked_lm import load_masked_lm
from tinydistill.augmentation.mlm_head import MLMHeadConfig, mask_tokens, read_corpus, train_mlm_head
from tinydistill.cli import app
from tinydistill.errors import TinyDistillError


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_corpus(root: Path, n: int = 400) -> Path:
    """A WikiExtractor-style file and a WikiText-style file of toy sentences."""
    rng = random.Random(0)
    root.mkdir(parents=True, exist_ok=True)
    lines = ['<doc id="1" url="x" title="Toy">', "Toy"]
    lines += [" ".join(toy_sentence(rng, i % 2) for _ in range(2)) for i in range(n // 2)]
    (root / "AA_wiki_00").write_text("\n".join([*lines, "</doc>"]) + "\n")
    wikitext = [" = Heading = ", ""] + [toy_sentence(rng, i % 2) + " @-@ film" for i in range(n // 2)]
    (root / "wiki.valid.tokens").write_text("\n".join(wikitext) + "\n")
    return root


def test_read_corpus_skips_markup_and_interleaves_files(tmp_path):
    a = tmp_path / "a.txt"
    a.write_text('<doc id="1">\nTitle\none two three four\n</doc>\n\nfive six seven eight\n')
    b = tmp_path / "b.txt"
    b.write_text(" = Head = \nnine ten @-@ eleven twelve thirteen\n")
    assert list(read_corpus([str(a), str(b)])) == [
        "one two three four",
        "nine ten-eleven twelve thirteen",
        "five six seven eight",
    ]
    assert list(read_corpus([str(tmp_path)])) == list(read_corpus([str(a), str(b)]))
    with pytest.raises(TinyDistillError, match="corpus file or dir not found"):
        list(read_corpus([str(tmp_path / "none")]))


def test_mask_tokens_bert_recipe(tokenizer_dir):
    tok = BertTokenizerFast.from_pretrained(tokenizer_dir)
    ids = torch.randint(5, len(tok), (64, 64))
    ids[:, 0], ids[:, -1] = tok.cls_token_id, tok.sep_token_id
    inputs, labels = mask_tokens(ids, tok, torch.Generator().manual_seed(0))
    chosen = labels != -100
    assert not chosen[:, 0].any() and not chosen[:, -1].any()  # specials never chosen
    assert 0.12 < chosen.float().mean() < 0.18
    assert torch.equal(labels[chosen], ids[chosen])
    assert torch.equal(inputs[~chosen], ids[~chosen])
    as_mask = (inputs == tok.mask_token_id) & chosen
    assert 0.74 < as_mask.sum() / chosen.sum() < 0.86


def test_train_head_on_frozen_encoder(tmp_path, tiny_encoder):
    corpus = write_corpus(tmp_path / "corpus")
    out = tmp_path / "mlm"
    cfg = MLMHeadConfig(
        encoder=str(tiny_encoder),
        corpus=[str(corpus)],
        output=str(out),
        max_steps=120,
        batch_size=16,
        max_seq_length=32,
        learning_rate=1e-2,
        eval_chunks=32,
        progress=False,
    )
    report = train_mlm_head(cfg)
    assert report["heldout_after"]["loss"] < report["heldout_before"]["loss"] - 0.3
    assert json.loads((out / "mlm_head.json").read_text())["steps"] == 120
    model = AutoModelForMaskedLM.from_pretrained(out)
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    encoder = AutoModelForMaskedLM.from_pretrained(tiny_encoder)  # frozen: encoder weights unchanged
    for name, value in encoder.bert.state_dict().items():
        assert torch.equal(value, model.bert.state_dict()[name]), name
    load_masked_lm(str(out), device="cpu")  # has a trained head: accepted by `augment`


def test_cli_mlm_head_one_line_errors(tmp_path, tiny_encoder):
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "mlm-head",
            "--encoder",
            str(tiny_encoder),
            "--corpus",
            str(tmp_path / "none"),
            "--output",
            str(tmp_path / "out"),  # not tmp_path itself: it holds the encoder, an input
        ],
    )
    assert result.exit_code == 2 and result.stderr.startswith("error: corpus file or dir not found")
    assert len(result.stderr.splitlines()) == 1
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("the movie was good\n")
    result = runner.invoke(
        app,
        ["mlm-head", "--encoder", str(tiny_encoder), "--corpus", str(tiny), "--output", str(tmp_path / "o")],
    )
    assert result.exit_code == 2 and "corpus too small" in result.stderr
    assert not (tmp_path / "o").exists()
