"""TinyBERT data augmentation: candidates, batching equivalence, word vectors, sampler, runner, CLI.

A tiny random masked LM over the conftest vocabulary stands in for BERT; what is tested is the
machinery (which positions are masked, what is excluded, that batching changes nothing, that output
files are deterministic and readable), not the quality of a random model's guesses.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import FILLER, WORDS, tiny_bert_config, without_row_counts, write_sst2_like, write_vocab
from transformers import BertForMaskedLM, BertTokenizerFast
from typer.testing import CliRunner

import tinydistill
from tinydistill.augmentation import stopwords
from tinydistill.augmentation.masked_lm import load_masked_lm
from tinydistill.augmentation.mlm_candidates import MLMCandidates, parse_masks_per_row
from tinydistill.augmentation.runner import AugmentConfig, Augmenter, augment_task, merge_shards
from tinydistill.augmentation.sampler import example_rng, match_case, sample_variants, split_words
from tinydistill.augmentation.vocab import whole_word_table
from tinydistill.augmentation.word_vectors import WordVectors
from tinydistill.cli import app
from tinydistill.errors import TinyDistillError
from tinydistill.tasks import get_task, read_table, read_tsv_file

SPECIALS = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("mlm")
    tok = BertTokenizerFast(vocab=str(write_vocab(d / "vocab.txt")), do_lower_case=True)
    torch.manual_seed(0)
    BertForMaskedLM(tiny_bert_config(len(tok), layers=1, hidden=16)).save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def mlm64(mlm_dir):
    """The tiny MLM in float64, so batched and unbatched scores agree to ~1e-15 (no top-K ties)."""
    return load_masked_lm(str(mlm_dir), device="cpu", dtype=torch.float64)


SENTENCES = [
    "the movie was good",
    "a really dull plot and boring acting , quite awful !",
    "superb story",
    "The FILM was nice and the goodness was fine",  # 'goodness' is several pieces
]


# --------------------------------------------------------------------------- words and stopwords


def test_split_words_and_eligibility():
    assert split_words("It's a good-ish film!") == ["It", "'", "s", "a", "good", "-", "ish", "film", "!"]
    assert split_words("  spaced\tout  ") == ["spaced", "out"]
    assert [w for w in split_words("The movie , 3d b52 isn't GREAT") if stopwords.eligible(w)] == [
        "movie",
        "GREAT",
    ]
    for word in ("the", "The", "was", "and", "s", "t", "not"):
        assert not stopwords.eligible(word)
    for token in (",", "--", "3d", "b52", "'"):
        assert not stopwords.is_word(token)
    assert match_case("great", "Good") == "Great" and match_case("great", "GOOD") == "GREAT"


def test_stopwords_are_nltks_english_list(tmp_path):
    """NLTK 3.8's stopwords.words("english"): 179 words, typed in as data."""
    assert len(stopwords.NLTK_ENGLISH) == len(stopwords.STOPWORDS) == 179
    assert (
        stopwords.NLTK_ENGLISH[:4] == ("i", "me", "my", "myself") and stopwords.NLTK_ENGLISH[-1] == "wouldn't"
    )
    for word in ("further", "Further", "again", "own", "ma", "mightn"):
        assert not stopwords.eligible(word)
    for word in ("also", "many", "would", "one", "towards", "upon"):  # not in NLTK's list
        assert stopwords.eligible(word)
    nltk = pytest.importorskip("nltk.corpus", reason="nltk is not installed: compared by the list above")
    try:
        assert stopwords.NLTK_ENGLISH == tuple(nltk.stopwords.words("english"))
    except LookupError:
        pytest.skip("nltk's stopwords corpus is not downloaded")


def test_stopwords_file(tmp_path):
    path = tmp_path / "de.txt"
    path.write_text("# German\nder die das\nUnd\n\n")
    words = stopwords.load_stopwords(path)
    assert words == {"der", "die", "das", "und"}
    assert not stopwords.eligible("Die", words) and stopwords.eligible("the", words)
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(TinyDistillError, match="no stop words"):
        stopwords.load_stopwords(tmp_path / "empty.txt")
    with pytest.raises(TinyDistillError, match="stop-word file not found"):
        stopwords.load_stopwords(tmp_path / "none.txt")


# --------------------------------------------------------------------------- MLM candidates


def eligible_positions(mlm: MLMCandidates, sentences):
    words = [split_words(s) for s in sentences]
    encoded = mlm.encode(words)
    positions = []
    for ws, enc in zip(words, encoded, strict=True):
        pos = [
            enc.pieces[i][0] for i, w in enumerate(ws) if stopwords.eligible(w) and len(enc.pieces[i]) == 1
        ]
        positions.append(pos)
    return words, encoded, positions


def test_candidates_exclude_original_specials_and_pieces(mlm64):
    model, tok = mlm64
    mlm = MLMCandidates(model, tok, k=8)
    words, encoded, positions = eligible_positions(mlm, SENTENCES)
    result = mlm.predict(encoded, positions)
    assert sum(map(len, positions)) == mlm.rows > 0
    for enc, pos, found in zip(encoded, positions, result, strict=True):
        assert sorted(found) == sorted(pos)
        for p, cands in found.items():
            original = tok.convert_ids_to_tokens(enc.ids[p])
            assert len(cands) == 8 and len(set(cands)) == 8
            assert original not in cands
            assert all(c in WORDS and c not in SPECIALS and not c.startswith("##") for c in cands)


def reference_topk(model, tok, enc, pos: int, k: int) -> list[str]:
    """The paper's way: one unbatched forward of the full MLM per masked word."""
    ids = torch.tensor([enc.ids])
    ids[0, pos] = tok.mask_token_id
    kwargs = {"token_type_ids": torch.tensor([enc.type_ids])} if enc.type_ids is not None else {}
    with torch.no_grad():
        logits = model(input_ids=ids, **kwargs).logits[0, pos].clone()
    allowed, words = whole_word_table(tok, logits.shape[0])
    logits[torch.from_numpy(~allowed)] = -math.inf
    logits[enc.ids[pos]] = -math.inf
    return [words[i] for i in logits.topk(k).indices.tolist()]


@pytest.mark.parametrize("pair_context", [False, True])
def test_batched_one_mask_per_row_equals_unbatched_forwards(mlm64, pair_context):
    model, tok = mlm64
    mlm = MLMCandidates(model, tok, k=6, batch_rows=256, pair_context=pair_context)
    _, encoded, positions = eligible_positions(mlm, SENTENCES)
    batched = mlm.predict(encoded, positions)
    assert mlm.forwards == 1 and mlm.rows == sum(map(len, positions))  # all rows of all sentences at once
    if pair_context:  # [CLS] masked [SEP] original [SEP], segments 0 and 1, as the original script
        assert encoded[0].type_ids.count(1) == len(encoded[0].ids) // 2
    for enc, pos, found in zip(encoded, positions, batched, strict=True):
        for p in pos:
            assert found[p] == reference_topk(model, tok, enc, p, 6)
    small = MLMCandidates(model, tok, k=6, batch_rows=2, pair_context=pair_context)
    assert small.predict(encoded, positions) == batched and small.forwards == math.ceil(mlm.rows / 2)


def test_masks_per_row_groups_words_into_fewer_rows(mlm64):
    model, tok = mlm64
    mlm = MLMCandidates(model, tok, k=4, masks_per_row=100)
    _, encoded, positions = eligible_positions(mlm, SENTENCES)
    result = mlm.predict(encoded, positions)
    assert mlm.rows == sum(1 for p in positions if p)  # one row per sentence
    assert all(sorted(r) == sorted(p) for r, p in zip(result, positions, strict=True))


def test_masks_per_row_as_a_fraction_of_the_row(mlm64):
    model, tok = mlm64
    long = " ".join(["good movie nice story"] * 5)  # 20 eligible words, 22 tokens
    mlm = MLMCandidates(model, tok, k=3, masks_per_row="15%")
    _, encoded, positions = eligible_positions(mlm, [long, "superb story"])
    rows = mlm._rows(encoded, positions)
    per_row = int(0.15 * len(encoded[0].ids))  # 3
    long_rows = [pos for s, pos in rows if s == 0]
    assert per_row == 3 and all(len(pos) <= per_row for pos in long_rows)
    assert len(long_rows) == math.ceil(20 / 3)
    assert sorted(p for pos in long_rows for p in pos) == sorted(positions[0])  # each word once
    gaps = [b - a for pos in long_rows for a, b in zip(pos, pos[1:], strict=False)]
    assert min(gaps) >= len(long_rows)  # words masked together are spread, not adjacent
    assert [pos for s, pos in rows if s == 1] == [[positions[1][0]], [positions[1][1]]]  # 4 tokens: 1 per row
    result = mlm.predict(encoded, positions)
    assert all(sorted(r) == sorted(p) for r, p in zip(result, positions, strict=True))


@pytest.mark.parametrize(
    ("value", "parsed"), [("1", 1), (4, 4), ("all", 1_000_000), ("15%", 0.15), (0.2, 0.2), (" 50% ", 0.5)]
)
def test_parse_masks_per_row(value, parsed):
    assert parse_masks_per_row(value) == parsed


@pytest.mark.parametrize("value", ["0", "-2", "0%", "100%", "many", "1.5", ""])
def test_parse_masks_per_row_refuses(value):
    with pytest.raises(TinyDistillError, match="--masks-per-row must be"):
        parse_masks_per_row(value)


def test_batches_bound_padding_and_size(mlm64):
    model, tok = mlm64
    mlm = MLMCandidates(model, tok, k=3, batch_rows=50, max_batch_tokens=1000, min_batch_tokens=200)
    lengths = sorted([40] * 30 + [39] * 10 + [30] * 30 + [12] * 100 + [5] * 3, reverse=True)
    batches = mlm._batches(lengths)
    assert [i for a, b in batches for i in range(a, b)] == list(range(len(lengths)))  # every row once
    for a, b in batches:
        first, part = lengths[a], lengths[a:b]
        assert b - a <= 50 and first * (b - a) <= 1000
        # a batch only pads past 5% while it is still under min_batch_tokens
        for i, n in enumerate(part):
            assert n >= first * 0.95 or i * first < 200
    assert (0, 25) in batches  # 25 rows of 40 = the token cap
    assert all(lengths[a] == 12 for a, _ in batches[-3:-1]) and batches[-1][1] == len(lengths)


def test_auto_dtype_is_bf16_only_where_native(mlm_dir, monkeypatch):
    from tinydistill.augmentation import masked_lm

    monkeypatch.setattr(masked_lm, "native_bf16", lambda device: True)
    model, _ = load_masked_lm(str(mlm_dir), device="cpu")
    assert next(model.parameters()).dtype == torch.bfloat16
    monkeypatch.setattr(masked_lm, "native_bf16", lambda device: False)
    model, _ = load_masked_lm(str(mlm_dir), device="cpu")
    assert next(model.parameters()).dtype == torch.float32


# --------------------------------------------------------------------------- word vectors


GLOVE = """king 1.0 0.0 0.0
queen 0.9 0.2 0.0
man 0.0 1.0 0.0
woman 0.1 0.9 0.1
apple 0.0 0.0 1.0
pear 0.1 0.0 0.95
3d 1.0 0.01 0.0
"""


def test_vectors_file_neighbours(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_text(GLOVE)
    vecs = WordVectors.load(path)
    near = vecs.neighbours(["king", "Apple", "woman", "unknownword"], None, k=2)
    assert near[0] == ["queen", "woman"]  # not itself, not the non-word '3d' (nearest by cosine)
    assert near[1][0] == "pear"  # case-insensitive lookup
    assert near[2][0] == "man"
    assert near[3] == []
    w2v = tmp_path / "w2v.txt"
    w2v.write_text("7 3\n" + GLOVE)  # word2vec text: a 'count dim' header line
    assert WordVectors.load(w2v).neighbours(["king"], None, k=1) == [["queen"]]
    assert len(WordVectors.load(path, limit=2).words) == 2
    bad = tmp_path / "bad.txt"
    bad.write_text("king 1 0 0\nqueen 1 0\n")
    with pytest.raises(TinyDistillError, match=r"bad.txt:2: expected 3 numbers"):
        WordVectors.load(bad)
    with pytest.raises(TinyDistillError, match="vectors file not found"):
        WordVectors.load(tmp_path / "none.txt")


def test_embedding_vectors_mean_of_pieces(mlm64):
    model, tok = mlm64
    vecs = WordVectors.from_embeddings(model, tok)
    assert set(vecs.words) == set(WORDS)  # whole words only: no ## pieces, no specials
    pieces = tok("goodness", add_special_tokens=False)["input_ids"]
    assert len(pieces) > 1
    emb = model.get_input_embeddings().weight.detach().float()
    query = emb[pieces].mean(0)
    expected = [vecs.words[i] for i in (vecs.matrix @ (query / query.norm())).topk(3).indices.tolist()]
    assert vecs.neighbours(["goodness"], [pieces], k=3) == [expected]


def test_multi_piece_words_use_vectors_and_single_pieces_the_mlm(mlm64):
    model, tok = mlm64
    mlm = MLMCandidates(model, tok, k=5)
    aug = Augmenter(mlm, WordVectors.from_embeddings(model, tok), n_aug=5, p=0.5)
    aug.prepare(SENTENCES)
    cands = aug.candidates(SENTENCES[3])
    words = split_words(SENTENCES[3])
    assert sorted(words[i] for i in cands) == ["FILM", "fine", "goodness", "nice"]
    assert aug.vector_queries == 1
    assert all(c.isupper() for c in cands[words.index("FILM")])  # case follows the original word
    assert all(c != "goodness" for c in cands[words.index("goodness")])


# --------------------------------------------------------------------------- sampler


def test_sampler_is_seeded_and_respects_p():
    words = ["the", "movie", "was", "good"]
    cands = {1: ["film", "story"], 3: ["great", "fine", "nice"]}
    a = sample_variants(words, cands, 20, 0.4, example_rng(1, 7))
    assert a == sample_variants(words, cands, 20, 0.4, example_rng(1, 7))
    assert a != sample_variants(words, cands, 20, 0.4, example_rng(2, 7))
    assert len(a) == len(set(a)) <= 20 and "the movie was good" not in a
    every = sample_variants(words, cands, 20, 1.0, example_rng(1, 7))
    assert every and all(v.split()[1] in cands[1] and v.split()[3] in cands[3] for v in every)
    assert sample_variants(words, cands, 20, 0.0, example_rng(1, 7)) == []
    assert sample_variants(words, {}, 20, 1.0, example_rng(1, 7)) == []


# --------------------------------------------------------------------------- runner: files


def write_rte_like(root: Path, n: int = 6) -> Path:
    """A premise shared by every row (cached once) and hypotheses of different lengths, so that no
    variant can equal another example's original row."""
    task = root / "RTE"
    task.mkdir(parents=True, exist_ok=True)
    rows = ["index\tsentence1\tsentence2\tlabel"]
    premise = "the movie was really good and the acting was quite superb indeed"
    for i in range(n):
        hyp = " ".join(["the", *FILLER[1 : i + 2], "was", "nice" if i % 2 else "awful"])
        rows.append(f"{i}\t{premise}\t{hyp}\t{'entailment' if i % 2 else 'not_entailment'}")
    (task / "train.tsv").write_text("\n".join(rows) + "\n")
    return root


def grouped(rows, originals):
    """[(original example, [its variants])] from a file laid out as original row, then its variants."""
    assert rows[0] == originals[0]
    starts = [i for i, row in enumerate(rows) if row in originals] + [len(rows)]
    assert [rows[i] for i in starts[:-1]] == list(originals)
    return [(rows[a], rows[a + 1 : b]) for a, b in zip(starts, starts[1:], strict=False)]


def run(mlm_dir, out: Path, **kw) -> dict:
    kw = {"task": "sst2", "mlm": str(mlm_dir), "output": str(out), "n_aug": 4, "progress": False, **kw}
    return augment_task(AugmentConfig(**kw))


def test_sst2_file_deterministic_and_readable(tmp_path, mlm_dir):
    glue = write_sst2_like(tmp_path / "glue", n_train=12, n_dev=4)
    stats = run(mlm_dir, tmp_path / "a.tsv", data_dir=str(glue), seed=3)
    run(mlm_dir, tmp_path / "b.tsv", data_dir=str(glue), seed=3)
    run(mlm_dir, tmp_path / "c.tsv", data_dir=str(glue), seed=4)
    a = (tmp_path / "a.tsv").read_bytes()
    assert a == (tmp_path / "b.tsv").read_bytes() and a != (tmp_path / "c.tsv").read_bytes()
    spec = get_task("sst2")
    rows = read_tsv_file(spec, tmp_path / "a.tsv")
    originals = read_tsv_file(spec, glue / "SST-2" / "train.tsv")
    assert stats["examples"] == 12 and stats["rows"] == len(rows) > 12
    groups = grouped(rows, originals)
    for ex, variants in groups:
        assert len(variants) <= 4 and all(v.label == ex.label for v in variants)
        assert all(len(v.text_a.split()) == len(ex.text_a.split()) != 0 for v in variants)
    assert sum(len(v) for _, v in groups) == stats["variants"] > 0


def test_pair_task_augments_each_side_and_keeps_labels(tmp_path, mlm_dir):
    glue = write_rte_like(tmp_path / "glue")
    stats = run(mlm_dir, tmp_path / "rte.tsv", task="RTE", data_dir=str(glue))
    spec = get_task("rte")
    rows = read_tsv_file(spec, tmp_path / "rte.tsv")
    originals = read_tsv_file(spec, glue / "RTE" / "train.tsv")
    assert stats["sentences"] == 1 + len(originals)  # the repeated premise is one sentence
    a_side = b_side = 0
    for ex, variants in grouped(rows, originals):
        assert len(variants) <= 2 * 4 and all(v.label == ex.label for v in variants)
        sides = [0 if v.text_b == ex.text_b else 1 for v in variants]
        assert sides == sorted(sides)  # text_a variants first, then text_b variants
        for v, side in zip(variants, sides, strict=True):
            changed, kept = (v.text_a, ex.text_a) if side == 0 else (v.text_b, ex.text_b)
            assert changed != kept and len(changed.split()) == len(kept.split())
            assert (v.text_a == ex.text_a) == (side == 1)
        a_side += sides.count(0)
        b_side += sides.count(1)
    assert a_side > 0 and b_side > 0


def test_shards_merge_to_the_single_run(tmp_path, mlm_dir):
    glue = write_rte_like(tmp_path / "glue", n=5)
    whole = tmp_path / "whole.tsv"
    run(mlm_dir, whole, task="RTE", data_dir=str(glue))
    parts = [tmp_path / f"part{i}.tsv" for i in range(3)]
    for i, part in enumerate(parts):
        run(mlm_dir, part, task="RTE", data_dir=str(glue), shard=f"{i}/3")
    merge_shards("RTE", [str(p) for p in parts], str(tmp_path / "merged.tsv"))
    assert (tmp_path / "merged.tsv").read_bytes() == whole.read_bytes()


def test_custom_dataset_and_max_train_samples(tmp_path, mlm_dir):
    train = tmp_path / "train.csv"
    train.write_text(
        "review,stars\n" + "".join(f'"the {w} movie was good",{i % 2}\n' for i, w in enumerate(FILLER))
    )
    out = tmp_path / "aug.tsv"
    stats = run(
        mlm_dir, out, task="custom", train_file=str(train), text_columns=["review"], label_column="stars",
        max_train_samples=5,
    )  # fmt: skip
    rows = read_table(out, ["review"], "stars")
    assert stats["examples"] == 5 and len(rows) == stats["rows"]


def test_headerless_custom_file_and_own_stopwords(tmp_path, mlm_dir, capsys):
    """--no-header --text-columns 1 --label-column 0: the output keeps that layout; --stopwords FILE."""
    train = tmp_path / "train.tsv"
    train.write_text("".join(f"{i % 2}\tthe {w} movie was good\n" for i, w in enumerate(FILLER[1:7])))
    stop = tmp_path / "stop.txt"
    stop.write_text("movie\ngood\n")
    out = tmp_path / "aug.tsv"
    columns = dict(header=False, text_columns=["1"], label_column="0")
    stats = run(mlm_dir, out, task="custom", train_file=str(train), stopwords=str(stop), p=1.0, **columns)
    assert f"train: 6 rows read from {train} (0 skipped)" in capsys.readouterr().err
    rows = read_table(out, ["1"], "0", header=False)
    assert len(rows) == stats["rows"] > 6 and out.read_text().startswith("0\tthe movie movie was good\n")
    variants = [r.text_a.split() for r in rows]
    assert all("movie" in w and "good" in w for w in variants)  # the file's stop words stay
    assert any(w[0] != "the" for w in variants)  # "the" is not one of them: it is replaced


def test_augmented_file_trains_a_student(tmp_path, mlm_dir, tiny_encoder):
    glue = write_sst2_like(tmp_path / "glue", n_train=16, n_dev=8)
    aug = tmp_path / "aug.tsv"
    run(mlm_dir, aug, data_dir=str(glue), n_aug=2)
    common = dict(task="sst2", data_dir=str(glue), max_steps=2, batch_size=8, max_seq_length=16)
    teacher = tmp_path / "teacher"
    tinydistill.finetune(model=str(tiny_encoder), output=str(teacher), learning_rate=2e-3, **common)
    student_cfg = tmp_path / "student_cfg"
    student_cfg.mkdir()
    vocab = len(BertTokenizerFast.from_pretrained(tiny_encoder))
    (student_cfg / "config.json").write_text(tiny_bert_config(vocab, layers=1, hidden=16).to_json_string())
    metrics = tinydistill.distill(
        teacher=str(teacher), student=str(student_cfg), output=str(tmp_path / "student"), train_file=str(aug),
        **common,
    )  # fmt: skip
    assert metrics["train_examples"] == len(read_tsv_file(get_task("sst2"), aug)) > 16


# --------------------------------------------------------------------------- errors


def test_errors(tmp_path, mlm_dir, tiny_encoder):
    glue = write_sst2_like(tmp_path / "glue", n_train=4, n_dev=2)
    out = tmp_path / "o.tsv"
    with pytest.raises(TinyDistillError, match=r"--p must be a probability"):
        run(mlm_dir, out, data_dir=str(glue), p=1.5)
    with pytest.raises(TinyDistillError, match="model not found"):
        run(tmp_path / "missing", out, data_dir=str(glue))
    with pytest.raises(TinyDistillError, match="no trained masked-LM head"):
        run(tiny_encoder, out, data_dir=str(glue))
    with pytest.raises(TinyDistillError, match=r"\.tsv"):
        run(mlm_dir, tmp_path / "o.csv", data_dir=str(glue))
    with pytest.raises(TinyDistillError, match="--shard"):
        run(mlm_dir, out, data_dir=str(glue), shard="3/2")
    empty = tmp_path / "empty" / "SST-2"
    empty.mkdir(parents=True)
    (empty / "train.tsv").write_text("sentence\tlabel\n")
    with pytest.raises(TinyDistillError, match="no examples"):
        run(mlm_dir, out, data_dir=str(tmp_path / "empty"))
    assert not out.exists()


def test_cli_augment_and_one_line_errors(tmp_path, mlm_dir):
    glue = write_sst2_like(tmp_path / "glue", n_train=4, n_dev=2)
    runner = CliRunner()
    args = ["augment", "--task", "SST-2", "--data-dir", str(glue), "--mlm", str(mlm_dir), "--no-progress"]
    ok = runner.invoke(app, [*args, "--output", str(tmp_path / "a.tsv"), "--n-aug", "3", "--candidates", "4"])
    assert ok.exit_code == 0, ok.stderr
    assert '"rows"' in ok.stdout and (tmp_path / "a.tsv").exists()
    fast = runner.invoke(app, [*args, "--output", str(tmp_path / "f.tsv"), "--masks-per-row", "15%"])
    assert fast.exit_code == 0, fast.stderr
    assert len(read_tsv_file(get_task("sst2"), tmp_path / "f.tsv")) >= 4
    for extra, fragment in (
        (["--p", "-0.1"], "--p must be a probability"),
        (["--vectors", str(tmp_path / "none.txt")], "vectors file not found"),
        (["--masks-per-row", "lots"], "--masks-per-row must be"),
    ):
        bad = runner.invoke(app, [*args, "--output", str(tmp_path / "b.tsv"), *extra])
        lines = without_row_counts(bad.stderr).splitlines()
        assert bad.exit_code == 2 and len(lines) == 1 and fragment in lines[0], bad.stderr
    assert not (tmp_path / "b.tsv").exists()
    assert len(read_tsv_file(get_task("sst2"), tmp_path / "a.tsv")) >= 4
