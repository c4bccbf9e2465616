"""Text encoders: from the adapter's words to model inputs, one interface per encoder family.

A cell's encoder is a property of its data (``DataConfig.encoder``), so every method of a grid
sees the same inputs. An encoder is fitted on the training split (the word encoder builds or
loads its vocabulary), then encodes each example into an ``EncodedExample``: ids per position,
which positions belong to the document (``selectable``), the document word of each position
(``word_index``) and the gold rationale per position. The query of an example (ERASER's claim or
question) comes first and is context: visible to every model, never selectable, never counted.

* ``word``: the reference's GloVe-vocabulary encoding (``ratbench.text``). With a query the
  input is ``query <sep> document``; ``<sep>`` is one extra embedding row (seeded random
  vector of GloVe's norm), added only for datasets that have queries, so that the inputs of
  every other dataset are exactly as before.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ratbench.types import EncodedExample, Example

if TYPE_CHECKING:
    from ratbench.data import DataConfig
    from ratbench.text import Vocab


class TextEncoder(ABC):
    """Turns examples into model inputs; ``fit`` once on the training split, then ``encode``."""

    kind: str

    def __init__(self, config: DataConfig) -> None:
        self.config = config

    @abstractmethod
    def fit(self, splits: Mapping[str, Sequence[Example]]) -> None:
        """Prepare the encoding (a vocabulary, a tokenizer) from the raw splits; only ``train``
        may inform what is learned from the data."""

    @abstractmethod
    def encode(self, example: Example) -> EncodedExample:
        """One example as model inputs, truncated to ``config.max_len`` positions."""


def query_budget(query_len: int, max_len: int, max_query_len: int, specials: int) -> int:
    """How many query positions to keep: at most ``max_query_len``, and room for at least one
    document position besides the ``specials`` (separators, [CLS])."""
    return max(0, min(query_len, max_query_len, max_len - specials - 1))


class WordEncoder(TextEncoder):
    """The GloVe-vocabulary encoding of the reference code, with the query in front."""

    kind = "word"

    def __init__(self, config: DataConfig) -> None:
        super().__init__(config)
        self.vocab: Vocab | None = None

    def fit(self, splits: Mapping[str, Sequence[Example]]) -> None:
        """The vocabulary of ``config.embeddings`` (from the training words for ``random``), plus
        the separator row when any example has a query."""
        from ratbench.text import build_vocab

        vocab = build_vocab(self.config, splits["train"])
        if any(ex.query for examples in splits.values() for ex in examples):
            vocab = vocab.with_separator(self.config.embedding_seed, self.config.embedding_norm)
        self.vocab = vocab

    @property
    def vectors(self) -> np.ndarray:
        """The embedding matrix (row 0 = zeros = padding and OOV)."""
        assert self.vocab is not None, "fit() first"
        return self.vocab.vectors

    def encode(self, example: Example) -> EncodedExample:
        """Without a query: the first ``max_len`` tokens, looked up (OOV -> 0, still a real
        token). With one: ``query <sep> document``, the query capped at ``max_query_len``,
        the document cut at the tail to fill ``max_len``."""
        from ratbench.text import encode

        assert self.vocab is not None, "fit() first"
        if not example.query or self.vocab.separator is None:
            return encode(example, self.vocab, self.config.max_len)
        kept = query_budget(len(example.query), self.config.max_len, self.config.max_query_len, specials=1)
        query = [self.vocab.lookup(token) for token in example.query[:kept]]
        document = encode(example, self.vocab, self.config.max_len - len(query) - 1)
        context = len(query) + 1
        ids = np.concatenate([np.asarray([*query, self.vocab.separator], dtype=np.int64), document.ids])
        selectable = np.concatenate([np.zeros(context, dtype=bool), np.ones(len(document.ids), dtype=bool)])
        word_index = np.concatenate([np.full(context, -1, dtype=np.int64), np.arange(len(document.ids))])
        gold = None if document.gold is None else np.concatenate([np.zeros(context, np.float32), document.gold])
        return EncodedExample(example.id, ids, example.label, gold, selectable, word_index)


def make_encoder(config: DataConfig) -> TextEncoder:
    """The encoder that ``config.encoder`` names."""
    return WordEncoder(config)
