"""Plain data types shared by the data layer, the methods and the evaluator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import numpy as np
    import torch

Split = Literal["train", "dev", "test"]
SPLITS: tuple[Split, ...] = ("train", "dev", "test")
EvalMode = Literal["reference", "clean"]
EVAL_MODES: tuple[EvalMode, ...] = ("reference", "clean")
METRIC_COLUMNS = ("S", "Acc", "P", "R", "F1")
"""The paper's columns: sparsity, accuracy, token precision, recall and F1 (percent)."""


@dataclass(frozen=True)
class Example:
    """One labelled text.

    Attributes:
        id: stable identifier, unique within its split.
        tokens: the input tokens exactly as the adapter split them (no re-tokenization later).
        label: class index in ``range(num_classes)``.
        rationale: one 0/1 per token (human rationale); set on the annotated ``test`` split only.
        query: tokens of a question/claim given as context (ERASER tasks); never part of the
            rationale.
        docid: the document the tokens come from (ERASER); None means the example is its own
            document (its ``id`` serves as document id).
    """

    id: str
    tokens: tuple[str, ...]
    label: int
    rationale: tuple[int, ...] | None = None
    query: tuple[str, ...] | None = None
    docid: str | None = None

    def __post_init__(self) -> None:
        if self.rationale is not None and len(self.rationale) != len(self.tokens):
            raise ValueError(
                f"example {self.id!r}: rationale has {len(self.rationale)} values "
                f"but there are {len(self.tokens)} tokens"
            )


@dataclass(frozen=True)
class EncodedExample:
    """An example after vocabulary lookup and truncation (word level).

    ``ids`` has one entry per kept token; OOV tokens have id 0 (the padding id) but count as
    real tokens (their mask is 1), exactly as the reference code does.
    """

    id: str
    ids: np.ndarray
    label: int
    gold: np.ndarray | None


@dataclass
class Batch:
    """A padded batch; ``T`` is the longest example in the batch, not the global max length.

    Attributes:
        ids: int64 ``[B, T]`` token ids, 0 for padding and OOV.
        mask: float32 ``[B, T]``, 1 for every real token (OOV included), 0 for padding.
        labels: int64 ``[B]``.
        gold: float32 ``[B, T]`` human rationale (0 at padding) on annotated splits, else None.
        example_ids: the ``Example.id`` of each row.
    """

    ids: torch.Tensor
    mask: torch.Tensor
    labels: torch.Tensor
    gold: torch.Tensor | None
    example_ids: list[str]

    def to(self, device: torch.device | str) -> Batch:
        """Return the batch with every tensor on ``device``."""
        return Batch(
            ids=self.ids.to(device),
            mask=self.mask.to(device),
            labels=self.labels.to(device),
            gold=None if self.gold is None else self.gold.to(device),
            example_ids=self.example_ids,
        )


@dataclass
class RationaleOutput:
    """What a method returns for one batch at evaluation time.

    Select-then-predict methods fill ``mask`` (0/1, ``[B, T]``); post-hoc methods fill
    ``scores`` (``[B, T]``, higher = more important), which the evaluator binarizes with the
    shared top-k rule. ``logits`` is ``[B, C]`` (None for post-hoc methods, whose accuracy is
    reported as N/A, as in the paper).
    """

    logits: torch.Tensor | None
    mask: torch.Tensor | None = None
    scores: torch.Tensor | None = None


@dataclass(frozen=True)
class DataInfo:
    """What a method may know about its data when it is built.

    ``train`` is the encoded training split, for methods that derive statistics from the
    training corpus (NIR's tf-idf noise, Inter_RAT's class priors); never the dev or test split.
    """

    num_classes: int
    embeddings: np.ndarray  # [V + 1, D]; row 0 (padding / OOV) is all zeros
    dataset: str
    subset: str
    train: tuple[EncodedExample, ...] = ()
