"""Batches in the three layouts of ``DataConfig.padding``: padded to ``max_len`` (the
jugechengzi reference), to each batch's longest example in shuffled order (Inter_RAT's
reference), or length-bucketed (fast)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from ratbench.data.adapter import DataConfig
from ratbench.types import Batch, EncodedExample


def collate(examples: Sequence[EncodedExample], pad_to: int | None = None) -> Batch:
    """Pad ``examples`` to the longest one (or to ``pad_to``) and stack them."""
    width = max(1, max(len(ex.ids) for ex in examples))
    if pad_to is not None:
        width = max(width, pad_to)
    ids = np.zeros((len(examples), width), dtype=np.int64)
    mask = np.zeros((len(examples), width), dtype=np.float32)
    selectable = np.zeros((len(examples), width), dtype=np.float32)
    word_index = np.full((len(examples), width), -1, dtype=np.int64)
    lengths = np.asarray([len(ex.ids) if ex.length is None else ex.length for ex in examples], dtype=np.int64)
    has_gold = all(ex.gold is not None for ex in examples)
    gold = np.zeros((len(examples), width), dtype=np.float32) if has_gold else None
    for row, ex in enumerate(examples):
        n = len(ex.ids)
        ids[row, :n] = ex.ids
        mask[row, :n] = 1.0
        selectable[row, :n] = 1.0 if ex.selectable is None else ex.selectable
        word_index[row, :n] = np.arange(n) if ex.word_index is None else ex.word_index
        if gold is not None:
            gold[row, :n] = ex.gold
    return Batch(
        ids=torch.from_numpy(ids),
        mask=torch.from_numpy(mask),
        labels=torch.tensor([ex.label for ex in examples], dtype=torch.int64),
        gold=None if gold is None else torch.from_numpy(gold),
        example_ids=[ex.id for ex in examples],
        selectable=torch.from_numpy(selectable),
        word_index=torch.from_numpy(word_index),
        has_context=bool((mask != selectable).any()),
        lengths=torch.from_numpy(lengths),
    )


def train_batches(
    examples: Sequence[EncodedExample],
    batch_size: int,
    rng: np.random.Generator,
    pad_to: int | None = None,
    pool_batches: int = DataConfig.bucket_batches,
    bucket: bool = True,
) -> Iterator[Batch]:
    """Shuffled batches for one training epoch.

    The examples are shuffled with ``rng``. With ``pad_to``, consecutive batches of that order
    are padded to ``pad_to`` (the reference layout); else, with ``bucket``, the order is cut
    into pools of ``pool_batches`` batches (``DataConfig.bucket_batches``), each pool sorted by
    length and cut into batches, and the batch order is shuffled again, so a batch holds
    examples of similar length; without ``bucket``, consecutive batches of the shuffled order
    are padded to their own longest example.
    """
    order = rng.permutation(len(examples))
    if pad_to is None and bucket:
        pool = batch_size * pool_batches
        lengths = np.fromiter((len(ex.ids) for ex in examples), dtype=np.int64, count=len(examples))
        chunks: list[np.ndarray] = []
        for start in range(0, len(order), pool):
            part = order[start : start + pool]
            part = part[np.argsort(lengths[part], kind="stable")]
            chunks.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
        batch_order = rng.permutation(len(chunks))
        index_batches = [chunks[i] for i in batch_order]
    else:
        index_batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for indices in index_batches:
        yield collate([examples[i] for i in indices], pad_to)


def eval_batches(
    examples: Sequence[EncodedExample], batch_size: int, pad_to: int | None = None, bucket: bool = True
) -> Iterator[Batch]:
    """Deterministic batches for evaluation: sorted by length when ``bucket`` and no ``pad_to``
    is given, else in the split's order (as the reference's unshuffled loaders)."""
    if pad_to is None and bucket:
        order = sorted(range(len(examples)), key=lambda i: (len(examples[i].ids), i))
    else:
        order = list(range(len(examples)))
    for start in range(0, len(order), batch_size):
        yield collate([examples[i] for i in order[start : start + batch_size]], pad_to)
