"""Shared fixtures: a tiny in-test dataset, paths to the shared data, and a CLI runner."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ratbench.data import DataConfig, DatasetAdapter
from ratbench.registry import DATASETS
from ratbench.types import Example

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

POSITIVE = ("great", "superb", "lovely")
NEGATIVE = ("awful", "poor", "bland")
FILLER = ("the", "beer", "was", "poured", "into", "a", "glass", "and", "it", "had", "some", "foam")


class Toy(DatasetAdapter):
    """Tiny planted-rationale data: the label is the polarity of the one or two sentiment words,
    which are the gold rationale; the rest is filler. Used by the tests only."""

    subsets = ("main",)
    description = "test-only toy data"

    @dataclasses.dataclass(frozen=True)
    class Config(DataConfig):
        n: int = 64
        embedding_dim: int = 16

    def read(self, split: str) -> Iterator[Example]:
        rng = np.random.default_rng({"train": 1, "dev": 2, "test": 3}[split])
        for i in range(self.config.n):
            label = i % 2
            length = int(rng.integers(6, 14))
            tokens = [FILLER[j] for j in rng.integers(0, len(FILLER), size=length)]
            gold = [0] * length
            words = POSITIVE if label else NEGATIVE
            for pos in rng.choice(length, size=int(rng.integers(1, 3)), replace=False):
                tokens[pos] = words[int(rng.integers(0, len(words)))]
                gold[pos] = 1
            yield Example(f"{split}-{i}", tuple(tokens), label, tuple(gold) if split == "test" else None)


@pytest.fixture
def toy_dataset() -> Iterator[type[Toy]]:
    """Register ``Toy`` as dataset ``toy`` for the duration of a test."""
    DATASETS.register("toy")(Toy)
    yield Toy
    DATASETS._unregister("toy")


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data``; skipped outside CI when it is missing, an error in CI."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{SHARED_DATA} is missing in CI")
        pytest.skip(f"{SHARED_DATA} not found")
    return SHARED_DATA
