"""Length-bucketed batching."""

from __future__ import annotations

import numpy as np

from ratbench.data.adapter import DataConfig
from ratbench.data.batching import eval_batches, train_batches
from ratbench.types import EncodedExample

BUCKET_BATCHES = DataConfig().bucket_batches


def _examples(n: int, seed: int = 0, gold: bool = False) -> list[EncodedExample]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        length = int(rng.integers(1, 60))
        ids = rng.integers(0, 50, size=length).astype(np.int64)
        out.append(EncodedExample(f"e{i}", ids, i % 2, np.ones(length, np.float32) if gold else None))
    return out


def test_each_batch_is_padded_to_its_own_longest_example() -> None:
    """Width = longest example of the batch; mask marks exactly the real tokens; ids survive."""
    examples = _examples(300)
    by_id = {ex.id: ex for ex in examples}
    for batch in train_batches(examples, 16, np.random.default_rng(0)):
        lengths = [len(by_id[i].ids) for i in batch.example_ids]
        assert batch.ids.shape[1] == max(lengths)
        assert batch.mask.sum(1).tolist() == lengths
        for row, example_id in enumerate(batch.example_ids):
            n = len(by_id[example_id].ids)
            assert batch.ids[row, :n].tolist() == by_id[example_id].ids.tolist()
            assert batch.ids[row, n:].eq(0).all()


def test_bucketing_reduces_padding_versus_random_batches() -> None:
    """Bucketed batches carry far less padding than padding everything to the max length."""
    examples = _examples(16 * BUCKET_BATCHES)
    batches = list(train_batches(examples, 16, np.random.default_rng(0)))
    padded_cells = sum(b.ids.numel() for b in batches)
    real = sum(len(ex.ids) for ex in examples)
    assert padded_cells < 1.2 * real
    full = list(train_batches(examples, 16, np.random.default_rng(0), pad_to=64))
    assert all(b.ids.shape[1] == 64 for b in full)


def test_epoch_covers_every_example_once_and_is_seeded() -> None:
    """Each epoch is a permutation; the same generator seed gives the same batches."""
    examples = _examples(100)
    first = [b.example_ids for b in train_batches(examples, 8, np.random.default_rng(5))]
    again = [b.example_ids for b in train_batches(examples, 8, np.random.default_rng(5))]
    other = [b.example_ids for b in train_batches(examples, 8, np.random.default_rng(6))]
    assert sorted(i for b in first for i in b) == sorted(ex.id for ex in examples)
    assert first == again and first != other


def test_eval_batches_are_deterministic_and_keep_gold() -> None:
    """Evaluation order is fixed (by length) and gold is padded with zeros."""
    examples = _examples(50, gold=True)
    batches = list(eval_batches(examples, 7))
    assert [b.example_ids for b in batches] == [b.example_ids for b in eval_batches(examples, 7)]
    for b in batches:
        assert b.gold is not None and (b.gold == b.mask).all()
