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
        sentences: the sentence number of each token (0, 0, 1, ...; ERASER documents, one
            sentence per line), for sentence-level metrics; None without sentence boundaries.
    """

    id: str
    tokens: tuple[str, ...]
    label: int
    rationale: tuple[int, ...] | None = None
    query: tuple[str, ...] | None = None
    docid: str | None = None
    sentences: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("rationale", "sentences"):
            values = getattr(self, name)
            if values is not None and len(values) != len(self.tokens):
                raise ValueError(
                    f"example {self.id!r}: {name} has {len(values)} values but there are {len(self.tokens)} tokens"
                )


@dataclass(frozen=True)
class EncodedExample:
    """An example after encoding and truncation: one entry per input position.

    ``ids`` has one entry per kept position; with the word encoder OOV tokens have id 0 (the
    padding id) but count as real tokens (their mask is 1), exactly as the reference code does.
    ``selectable`` marks the positions of the document (None: every position is): the query
    and separator or special tokens are context, always visible to the predictor and never
    part of a rationale. ``word_index`` gives the document word of each position, -1 for
    context (None: position i is word i). ``gold`` is per position, 0 on context.
    """

    id: str
    ids: np.ndarray
    label: int
    gold: np.ndarray | None
    selectable: np.ndarray | None = None
    word_index: np.ndarray | None = None
    length: int | None = None
    """The number of positions before truncation (None: ``len(ids)``, nothing was cut)."""


@dataclass(init=False)
class Batch:
    """A padded batch; ``T`` is the longest example in the batch, not the global max length.

    Attributes:
        ids: int64 ``[B, T]`` token ids, 0 for padding and OOV.
        mask: float32 ``[B, T]``, 1 for every real position (OOV included), 0 for padding.
        labels: int64 ``[B]``.
        gold: float32 ``[B, T]`` human rationale (0 at padding and context) on annotated splits,
            else None.
        example_ids: the ``Example.id`` of each row.
        selectable: float32 ``[B, T]``, 1 on document positions, the only ones a rationale may
            hold and the only ones the evaluator counts (default: ``mask``).
        word_index: int64 ``[B, T]``, the document word of each position, -1 on context and
            padding (default: the position itself on real positions).
        has_context: whether any row has context positions (a query, separators, special
            tokens), known when the batch is built, so that methods skip the context arithmetic
            (and any device sync) on batches that have none.
        lengths: int64 ``[B]``, each example's number of positions before truncation
            (default: ``mask.sum(1)``); Inter_RAT's reference normalises its regularizers by it.
    """

    ids: torch.Tensor
    mask: torch.Tensor
    labels: torch.Tensor
    gold: torch.Tensor | None
    example_ids: list[str]
    selectable: torch.Tensor
    word_index: torch.Tensor
    has_context: bool
    lengths: torch.Tensor

    def __init__(
        self,
        ids: torch.Tensor,
        mask: torch.Tensor,
        labels: torch.Tensor,
        gold: torch.Tensor | None,
        example_ids: list[str],
        selectable: torch.Tensor | None = None,
        word_index: torch.Tensor | None = None,
        has_context: bool = False,
        lengths: torch.Tensor | None = None,
    ) -> None:
        # Written out so that the defaulted tensors are plain tensors once built (never None).
        import torch

        self.ids, self.mask, self.labels, self.gold, self.example_ids = ids, mask, labels, gold, example_ids
        self.selectable = mask if selectable is None else selectable
        self.lengths = mask.sum(dim=1).long() if lengths is None else lengths
        if word_index is None:
            positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
            word_index = torch.where(mask > 0, positions, -1)
        self.word_index = word_index
        self.has_context = has_context

    @property
    def context(self) -> torch.Tensor:
        """1 on the real positions that are not selectable (query, separators, special tokens)."""
        return self.mask - self.selectable

    def visible(self, z: torch.Tensor) -> torch.Tensor:
        """A rationale ``z`` ``[B, T]`` as a predictor reads it: the context positions (query,
        separators, special tokens) always visible. ``z`` itself for a batch without context."""
        return z * (1 - self.context) + self.context if self.has_context else z

    def document_part(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` without its context positions: what a rationale may hold and regularizers count
        (padding is kept, as the reference counts it). ``z`` itself for a batch without context."""
        return z * (1 - self.context) if self.has_context else z

    def to(self, device: torch.device | str) -> Batch:
        """Return the batch with every tensor on ``device``.

        To a GPU, each tensor is first pinned (page-locked) and then copied asynchronously
        (``transfer_options``): a copy from pageable memory synchronises the stream, so the CPU
        would wait for the previous step before collating the next batch. Every tensor still
        goes, ``word_index`` and ``gold`` included: a method may read any of them. On the CPU
        nothing changes."""
        pin, non_blocking = transfer_options(device)

        def move(tensor: torch.Tensor) -> torch.Tensor:
            source = tensor.pin_memory() if pin and tensor.device.type == "cpu" else tensor
            return source.to(device, non_blocking=non_blocking)

        return Batch(
            ids=move(self.ids),
            mask=move(self.mask),
            labels=move(self.labels),
            gold=None if self.gold is None else move(self.gold),
            example_ids=self.example_ids,
            selectable=move(self.selectable),
            word_index=move(self.word_index),
            has_context=self.has_context,
            lengths=move(self.lengths),
        )


def transfer_options(device: torch.device | str) -> tuple[bool, bool]:
    """``(pin, non_blocking)`` for copying a CPU batch to ``device``: both for a CUDA device,
    neither otherwise. Safe without a sync: the pinned source is kept by torch's pinned-memory
    allocator until the copy is done, and later kernels on the stream wait for the copy."""
    import torch

    on_gpu = torch.device(device).type == "cuda"
    return on_gpu, on_gpu


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
    """What a method may know about its data when it is built (not the dataset's name: a method
    never branches on it; per-dataset settings are preset scopes).

    ``train`` is the encoded training split, for methods that derive statistics from the
    training corpus (NIR's tf-idf noise, Inter_RAT's class priors); never the dev or test split.
    ``encoder`` is ``word`` (``embeddings`` holds the vectors) or ``hf`` (``model_path`` is the
    local folder of the transformer whose tokenizer made the ids; ``pad_id`` its padding id).
    """

    num_classes: int
    embeddings: np.ndarray | None  # word encoder: [V + 1, D]; row 0 (padding / OOV) is all zeros
    train: tuple[EncodedExample, ...] = ()
    encoder: str = "word"
    model_path: str | None = None
    pad_id: int = 0
