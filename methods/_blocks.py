"""Building blocks shared by the RNP family (METHODS.md section 2).

Frozen embedding, the selector (BiGRU -> LayerNorm -> dropout -> Linear(., 2)), the predictor
(BiGRU over the masked embeddings -> masked max-pool -> dropout -> Linear), hard Gumbel-softmax
sampling with the straight-through estimator, and the batch-level sparsity and continuity
regularizers, all with the reference semantics.

The encoder of a selector, predictor or attention classifier is the cell's: a BiGRU over the
frozen word vectors, or a copy of a Hugging Face transformer over the token ids (``_transformer``;
``make_embedding`` / ``make_encoder`` / ``make_selector`` / ``make_predictor`` pick it from
``DataInfo.encoder`` and the method's ``TransformerOptions``). Both are an ``Encoder``:
``states(x, mask, keep)``, ``output_dim`` and what the blocks may ask of them, so the methods'
training code is the same on either. ``visible`` and ``document_part`` keep the query and the
special tokens out of every rationale and in view of every predictor.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ratbench.api import Batch, DataInfo

from ._options import TransformerOptions

if TYPE_CHECKING:
    from ._transformer import TransformerEncoder

POOL_FILL = -1e6  # value written at padding before the max-pool, as the reference does
MASKED_SCORE = -1e9  # attention logit at padding before the softmax


def pool_fill(dtype: torch.dtype) -> float:
    """``POOL_FILL``, or the dtype's most negative value where -1e6 does not fit (float16 overflows
    at -65504): the same number in fp32, a valid one in half precision."""
    return max(POOL_FILL, torch.finfo(dtype).min)


def in_fp32(fn: Callable[..., torch.Tensor], *inputs: torch.Tensor) -> torch.Tensor:
    """``fn(*inputs)`` in float32: under autocast, with autocast off and the floating inputs cast
    to float32; outside autocast just ``fn(*inputs)`` (the fp32 numbers do not change).

    For the GRUs (CUDA autocast runs cuDNN RNNs in float16 whatever the autocast dtype, and
    trains them without a gradient scaler) and the select/score heads (bf16 logits tie often,
    and ties move rationales toward the start of the text)."""
    device_type = inputs[0].device.type
    if not torch.is_autocast_enabled(device_type):
        return fn(*inputs)
    with torch.autocast(device_type, enabled=False):
        return fn(*(x.float() if x.is_floating_point() else x for x in inputs))


class Encoder(nn.Module, ABC):
    """What the blocks need of an encoder: one state per position of a text read through a
    rationale. The BiGRU, a transformer (``_transformer.TransformerEncoder``) and a
    ``NormedEncoder`` are encoders; a selector, predictor or classifier is the same code on each."""

    needs_layer_norm: ClassVar[bool] = False
    """Whether the reference puts a LayerNorm after these states where a selector (and DAR's
    predictor) reads them: a BiGRU's raw states; not a transformer's, normalised already."""

    @property
    @abstractmethod
    def output_dim(self) -> int:
        """Width of the states."""

    @abstractmethod
    def states(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        """States ``[B, T, output_dim]`` of the input ``x`` (embedded words or token ids; padding
        where ``mask`` is 0) read through the rationale ``keep`` ``[B, T]`` (None: all of it)."""

    def pooled_over_keep_masks(
        self, texts: list[tuple[torch.Tensor, torch.Tensor]], stepwise: bool | None = None
    ) -> torch.Tensor | None:
        """The max-pooled states of unpadded texts under many 0/1 masks each, computed faster than
        one forward pass per mask (``BiGRU.pooled_over_keep_masks``); None: no such shortcut, the
        predictor classifies each masked copy."""
        return None


class FrozenEmbedding(nn.Module):
    """Pretrained vectors, not trained; row 0 (padding and OOV) is zeros."""

    def __init__(self, vectors: np.ndarray) -> None:
        super().__init__()
        self.embedding = nn.Embedding.from_pretrained(torch.as_tensor(vectors, dtype=torch.float32), freeze=True)

    @property
    def dim(self) -> int:
        """Embedding width."""
        return self.embedding.embedding_dim

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``mask[..., None] * Emb(ids)``: ``[B, T, D]``."""
        return self.embedding(ids) * mask.unsqueeze(-1)


class BiGRU(Encoder):
    """One-layer bidirectional GRU, ``hidden_dim`` wide in total, batch first, no packing."""

    needs_layer_norm = True

    def __init__(self, input_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.gru = nn.GRU(input_dim, hidden_dim // 2, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, D] -> [B, T, hidden_dim]``, float32 (also under autocast: ``in_fp32``)."""
        return in_fp32(lambda inputs: self.gru(inputs)[0], x)

    @property
    def output_dim(self) -> int:
        """Width of the states."""
        return 2 * self.gru.hidden_size

    def states(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        """States of the embedded ``x`` ``[B, T, D]`` with the positions where ``keep`` is 0 zeroed
        (the GRU runs over padding, as in the reference; ``mask`` is not needed)."""
        return self(x if keep is None else x * keep.unsqueeze(-1))

    def pooled_over_keep_masks(
        self, texts: list[tuple[torch.Tensor, torch.Tensor]], stepwise: bool | None = None
    ) -> torch.Tensor:
        """Max-pooled states of unpadded texts under many 0/1 masks each: for every ``(x, keep)``
        of ``texts`` (``x`` ``[T_j, D]``, ``keep`` ``[S_j, T_j]``) the rows of
        ``forward(x * keep[..., None]).max(dim=1)``, stacked: ``[sum S_j, hidden_dim]``, the
        same numbers up to float rounding.

        A GRU spends most of its time on the input projection ``W_i x_t``. With a 0/1 mask
        ``W_i (k x_t) = k (W_i x_t)``, so the projection is computed once per position instead
        of once per mask and position. Both directions step together, and texts of different
        lengths share the steps: each direction reads its text from its own first position
        (the backward one from the text's end), and a row's steps beyond its length are left
        out of the max, which does not depend on the order of the positions. LIME classifies
        thousands of masked copies of each text; this makes that several times faster on a CPU.

        ``stepwise`` (default: on a CPU only) picks that loop; otherwise ``nn.GRU`` runs once over
        all the masked copies, packed by length (on a GPU the loop's thousands of small kernels
        are bound by launch latency; cuDNN runs the whole recurrence in one call). Both run in
        float32, under autocast too, as ``forward`` does.
        """
        if stepwise is None:
            stepwise = texts[0][0].device.type == "cpu"
        with torch.autocast(texts[0][0].device.type, enabled=False):
            texts = [(x.float(), keep) for x, keep in texts]  # no copy in fp32
            return self._pooled_stepwise(texts) if stepwise else self._pooled_packed(texts)

    def _pooled_packed(self, texts: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """``pooled_over_keep_masks`` by ``nn.GRU`` over the masked copies, packed (each row runs
        over its own text's length only, as an unpadded forward)."""
        copies = [x * keep.to(x.dtype).unsqueeze(-1) for x, keep in texts]  # [S_j, n_j, D]
        steps = max(x.shape[0] for x, _ in texts)
        padded = copies[0].new_zeros(sum(len(c) for c in copies), steps, copies[0].shape[-1])
        first = 0
        for rows in copies:
            padded[first : first + len(rows), : rows.shape[1]] = rows
            first += len(rows)
        # lengths on the CPU, from Python ints: packing needs them there (no device sync)
        lengths = torch.tensor([x.shape[0] for x, keep in texts for _ in range(len(keep))])
        packed = nn.utils.rnn.pack_padded_sequence(padded, lengths, batch_first=True, enforce_sorted=False)
        states, _ = nn.utils.rnn.pad_packed_sequence(
            self.gru(packed)[0], batch_first=True, padding_value=-torch.inf, total_length=steps
        )
        return states.max(dim=1).values

    def _pooled_stepwise(self, texts: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """``pooled_over_keep_masks`` by the step loop over shared input projections."""
        gru, size = self.gru, self.gru.hidden_size
        device, dtype = texts[0][0].device, texts[0][0].dtype

        def both(name: str) -> torch.Tensor:  # the forward direction's parameter, then the backward one's
            return torch.stack([gru.get_parameter(f"{name}_l0"), gru.get_parameter(f"{name}_l0_reverse")])

        w_ih = both("weight_ih")  # [2, 3h, D]
        w_hh_t = both("weight_hh").transpose(1, 2).contiguous()  # [2, h, 3h]
        b_ih = both("bias_ih").unsqueeze(1)  # [2, 1, 3h]
        b_hh = both("bias_hh").unsqueeze(1)
        steps = max(x.shape[0] for x, _ in texts)
        counts = [keep.shape[0] for _, keep in texts]
        rows = sum(counts)
        own = torch.zeros(steps, 2, len(texts), 3 * size, device=device, dtype=dtype)  # per text and position
        keeps = torch.zeros(steps, 2, rows, 1, device=device, dtype=dtype)
        lengths = torch.empty(rows, dtype=torch.long, device=device)
        first = 0
        for index, (x, keep) in enumerate(texts):
            n = x.shape[0]
            projection = torch.einsum("dgi,ti->tdg", w_ih, x)  # [n, 2, 3h]: once per position
            own[:n, 0, index], own[:n, 1, index] = projection[:, 0], projection.flip(0)[:, 1]
            keep_t, own_rows = keep.to(dtype).T, slice(first, first + counts[index])  # [n, S]
            keeps[:n, 0, own_rows, 0], keeps[:n, 1, own_rows, 0] = keep_t, keep_t.flip(0)  # backward: from the end
            lengths[own_rows] = n
            first += counts[index]
        text_of_row = torch.repeat_interleave(
            torch.arange(len(texts), device=device), torch.tensor(counts, device=device)
        )
        hidden = torch.zeros(2, rows, size, device=device, dtype=dtype)
        pooled = torch.full((2, rows, size), -torch.inf, device=device, dtype=dtype)
        for t in range(steps):  # both directions at once; the gates in nn.GRU's order r, z, n
            gates_x = torch.addcmul(b_ih, keeps[t], own[t].index_select(1, text_of_row))  # [2, R, 3h]
            gates_h = torch.baddbmm(b_hh, hidden, w_hh_t)
            reset_update = torch.sigmoid(gates_x[..., : 2 * size] + gates_h[..., : 2 * size])
            candidate = torch.tanh(
                torch.addcmul(gates_x[..., 2 * size :], reset_update[..., :size], gates_h[..., 2 * size :])
            )
            hidden = torch.addcmul(candidate, reset_update[..., size:], hidden - candidate)
            # the max-pool over each row's own positions (a row past its length is left out)
            pooled = torch.where((lengths > t)[None, :, None], torch.maximum(pooled, hidden), pooled)
        return torch.cat([pooled[0], pooled[1]], dim=-1)


def _own_encoder(encoder: Encoder | None, input_dim: int | None, hidden_dim: int | None) -> Encoder:
    """``encoder``, or a new ``BiGRU(input_dim, hidden_dim)`` when it is None (the blocks'
    widths size that BiGRU only)."""
    if encoder is not None:
        return encoder
    if input_dim is None or hidden_dim is None:
        raise TypeError("a block without an encoder needs the input and hidden widths of its BiGRU")
    return BiGRU(input_dim, hidden_dim)


class Selector(nn.Module):
    """Per-token select/skip logits ``[B, T, 2]`` (channel 1 = select), at every position:
    encoder -> LayerNorm (where the encoder ``needs_layer_norm``) -> dropout -> Linear(., 2).
    The encoder is ``encoder``, or a ``BiGRU(input_dim, hidden_dim)`` (``make_selector`` builds
    the cell's)."""

    def __init__(
        self, input_dim: int | None, hidden_dim: int | None, dropout: float, encoder: Encoder | None = None
    ) -> None:
        super().__init__()
        self.encoder = _own_encoder(encoder, input_dim, hidden_dim)
        width = self.encoder.output_dim
        self.norm: nn.Module = nn.LayerNorm(width) if self.encoder.needs_layer_norm else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width, 2)

    def forward(self, embedded: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, T, 2]``, float32 (the head runs in fp32 under autocast: ``in_fp32``)."""
        states = self.encoder.states(embedded)
        return in_fp32(lambda hidden: self.head(self.dropout(self.norm(hidden))), states)


class Predictor(nn.Module):
    """Classifies from ``embedded * z``: encoder, pooling, dropout, Linear.

    With the BiGRU: deselected real tokens stay in the sequence as zero vectors (no compaction),
    and the max-pool excludes only padding, as in the reference. With a transformer, ``z``
    reaches it as its ``mask_mode`` says, and ``pooling`` is the masked max or the [CLS] state.
    The encoder is ``encoder``, or a ``BiGRU(input_dim, hidden_dim)``.
    """

    def __init__(
        self,
        input_dim: int | None,
        hidden_dim: int | None,
        num_classes: int,
        dropout: float,
        encoder: Encoder | None = None,
        pooling: str = "max",
    ) -> None:
        super().__init__()
        self.encoder = _own_encoder(encoder, input_dim, hidden_dim)
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.encoder.output_dim, num_classes)

    def features(self, embedded: torch.Tensor, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The pooled representation ``[B, width]`` of ``embedded * z`` (before dropout)."""
        hidden = self.encoder.states(embedded, mask, z)
        if self.pooling == "cls":
            return hidden[:, 0]
        hidden = hidden.masked_fill(mask.unsqueeze(-1) == 0, pool_fill(hidden.dtype))
        return hidden.max(dim=1).values

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, C]`` from pooled features."""
        return self.head(self.dropout(features))

    def forward(self, embedded: torch.Tensor, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, C]`` from the rationale ``z`` ``[B, T]``."""
        return self.classify(self.features(embedded, z, mask))

    def over_keep_masks(self, texts: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """``forward`` of unpadded texts under many 0/1 rationales each (``texts`` as in
        ``BiGRU.pooled_over_keep_masks``): logits ``[sum S_j, C]``, in eval mode only. An
        encoder without that shortcut (a transformer) classifies each text's masked copies as one
        batch."""
        pooled = self.encoder.pooled_over_keep_masks(texts) if self.pooling == "max" else None
        if pooled is not None:
            return self.classify(pooled)
        logits = []
        for text, keep in texts:
            copies = text.expand(len(keep), *text.shape)
            logits.append(self(copies, keep, torch.ones_like(keep)))
        return torch.cat(logits)


class AttentionClassifier(nn.Module):
    """Encoder -> attention over real tokens -> attention-weighted sum -> dropout -> Linear.

    ``scorer="additive"`` scores ``v^T tanh(W h + b)`` (Lei et al. style); ``"linear"`` scores
    ``v^T (W h + b)``, as FR's attention module. Padding gets weight 0. The encoder is
    ``encoder``, or a ``BiGRU(input_dim, hidden_dim)``.
    """

    def __init__(
        self,
        input_dim: int | None,
        hidden_dim: int | None,
        num_classes: int,
        dropout: float,
        scorer: str,
        encoder: Encoder | None = None,
    ) -> None:
        super().__init__()
        self.encoder = _own_encoder(encoder, input_dim, hidden_dim)
        width = self.encoder.output_dim
        self.project = nn.Linear(width, width)
        self.score = nn.Linear(width, 1, bias=False)
        self.scorer = scorer
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width, num_classes)

    def forward(
        self, embedded: torch.Tensor, mask: torch.Tensor, keep: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``[B, C]`` and attention weights ``[B, T]`` (a softmax over the real tokens) of
        the text, or of the rationale ``keep``."""
        hidden = self.encoder.states(embedded, mask, keep)
        logits = in_fp32(self.scores, hidden)  # fp32: bf16 scores tie, and ties favour early tokens
        weights = F.softmax(logits.masked_fill(mask == 0, MASKED_SCORE), dim=-1) * mask
        context = (weights.unsqueeze(-1) * hidden).sum(dim=1)
        return self.head(self.dropout(context)), weights

    def scores(self, hidden: torch.Tensor) -> torch.Tensor:
        """Attention logits ``[B, T]`` of the states ``[B, T, H]`` (before masking)."""
        projected = self.project(hidden)
        return self.score(torch.tanh(projected) if self.scorer == "additive" else projected).squeeze(-1)


def word_vectors(info: DataInfo) -> np.ndarray:
    """The word encoder's vectors ``[V + 1, D]`` (``DataInfo.embeddings``)."""
    if info.embeddings is None:
        raise ValueError(f"DataInfo of the {info.encoder!r} encoder has no word vectors")
    return info.embeddings


def make_embedding(info: DataInfo) -> nn.Module:
    """The shared input layer: frozen word vectors, or the token ids for transformer encoders."""
    if info.encoder == "hf":
        from ._transformer import TokenIds

        return TokenIds()
    return FrozenEmbedding(word_vectors(info))


def make_encoder(info: DataInfo, hidden_dim: int, transformer: TransformerOptions) -> Encoder:
    """The cell's encoder: a BiGRU (``hidden_dim`` wide) over the word vectors, or a fresh copy of
    the cell's transformer (``make_transformer``)."""
    if info.encoder == "hf":
        return make_transformer(info, transformer)
    return BiGRU(word_vectors(info).shape[1], hidden_dim)


def make_transformer(info: DataInfo, transformer: TransformerOptions) -> TransformerEncoder:
    """A fresh copy of the cell's transformer (``DataInfo.model_path``), which reads a rationale as
    ``transformer.mask_mode`` says."""
    from ._transformer import TransformerEncoder

    if info.model_path is None:
        raise ValueError("DataInfo of the 'hf' encoder names no model_path")
    return TransformerEncoder(info.model_path, info.pad_id, transformer.mask_mode, transformer.freeze_embeddings)


def make_selector(info: DataInfo, hidden_dim: int, dropout: float, transformer: TransformerOptions) -> Selector:
    """A ``Selector`` on the cell's encoder (``make_encoder``)."""
    return Selector(None, None, dropout, make_encoder(info, hidden_dim, transformer))


def make_predictor(
    info: DataInfo,
    hidden_dim: int,
    num_classes: int,
    dropout: float,
    transformer: TransformerOptions,
    encoder: Encoder | None = None,
) -> Predictor:
    """A ``Predictor`` on the cell's encoder, or on ``encoder`` (e.g. a ``NormedEncoder``); it pools
    as ``transformer.pooling`` says on a transformer, by the masked max on the BiGRU (as the
    reference)."""
    if encoder is None:
        encoder = make_encoder(info, hidden_dim, transformer)
    pooling = transformer.pooling if info.encoder == "hf" else "max"
    return Predictor(None, None, num_classes, dropout, encoder, pooling)


class NormedEncoder(Encoder):
    """An encoder whose states go through a LayerNorm: the predictor of FR (the selector's own
    encoder and LayerNorm, shared: ``NormedEncoder(selector.encoder, selector.norm)``) and the
    predictor and teacher of jugechengzi/dar (their own ``layernorm2``)."""

    def __init__(self, encoder: Encoder, norm: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.norm = norm

    @property
    def output_dim(self) -> int:
        """Width of the states."""
        return self.encoder.output_dim

    def states(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The encoder's states of ``x`` read through ``keep``, normalised (in fp32 under autocast)."""
        return in_fp32(self.norm, self.encoder.states(x, mask, keep))


@contextlib.contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """No gradient for the parameters of ``modules`` inside the block; afterwards each parameter
    gets its own previous ``requires_grad`` back (frozen embeddings stay frozen)."""
    params = [p for module in modules for p in module.parameters()]
    before = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, before, strict=True):
            p.requires_grad_(flag)


def trainable_groups(module: nn.Module, lr: float, encoder_lr: float | None = None) -> list[dict]:
    """``param_groups`` of the trainable parameters only (frozen embeddings left out)."""
    groups = param_groups(module, lr, encoder_lr)
    return [{**group, "params": [p for p in group["params"] if p.requires_grad]} for group in groups]


def param_groups(
    module: nn.Module, lr: float, encoder_lr: float | None = None, skip: Iterable[nn.Parameter] = ()
) -> list[dict]:
    """Optimizer groups of ``module``'s trainable parameters: one at ``lr``, or, with
    ``encoder_lr``, the transformers' parameters at ``encoder_lr`` and the rest at ``lr``; the
    parameters of ``skip`` (another group's, e.g. a shared encoder's) left out."""
    from ._transformer import TransformerEncoder

    skipped = {id(p) for p in skip}
    if encoder_lr is None or not any(isinstance(m, TransformerEncoder) for m in module.modules()):
        params = module.parameters()
        return [{"params": [p for p in params if id(p) not in skipped] if skipped else params, "lr": lr}]
    encoder = {id(p) for m in module.modules() if isinstance(m, TransformerEncoder) for p in m.parameters()}
    trainable = [p for p in module.parameters() if p.requires_grad and id(p) not in skipped]
    groups = [
        {"params": [p for p in trainable if id(p) in encoder], "lr": encoder_lr},
        {"params": [p for p in trainable if id(p) not in encoder], "lr": lr},
    ]
    return [group for group in groups if group["params"]]  # a shared encoder is another group's


class EpochMeans:
    """Per-batch loss terms summed on the device and averaged once per epoch (one host sync)."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.batches = 0

    def add(self, terms: dict[str, torch.Tensor]) -> None:
        """Add one batch's terms (scalars; detached here)."""
        for key, value in terms.items():
            value = value.detach()
            self.sums[key] = self.sums[key] + value if key in self.sums else value
        self.batches += 1

    def means(self) -> dict[str, float]:
        """Mean of each term over the batches added so far."""
        return {key: float(value) / max(self.batches, 1) for key, value in self.sums.items()}


def gumbel_sample(logits: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw a Gumbel-softmax sample: soft probabilities ``y`` and the hard argmax index.

    Same draw as ``F.gumbel_softmax``: ``y = softmax((logits + G) / tau)`` with
    ``G = -log(Exp(1))``; the hard sample is ``argmax(y)``.
    """
    logits = logits.float()  # noise drawn at fp32 resolution under autocast too (no-op in fp32)
    with torch.autocast(logits.device.type, enabled=False):
        gumbels = -torch.empty_like(logits).exponential_().log()
        soft = F.softmax((logits + gumbels) / tau, dim=-1)
    return soft, soft.argmax(dim=-1)


def straight_through(index: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """``onehot(index) - soft.detach() + soft``: forward is hard, gradient is the soft one."""
    hard = F.one_hot(index, soft.shape[-1]).to(soft.dtype)
    return hard - soft.detach() + soft


def hard_sample(logits: torch.Tensor, tau: float) -> torch.Tensor:
    """A hard Gumbel-softmax sample of the "select" channel with the straight-through gradient."""
    soft, index = gumbel_sample(logits, tau)
    return straight_through(index, soft)[..., 1]


def eval_selection(logits: torch.Tensor, mode: str, tau: float) -> torch.Tensor:
    """0/1 selection ``[B, T]`` at evaluation: a fresh Gumbel sample in the ``reference`` mode
    (as the reference evaluates), the argmax in the ``clean`` mode. Padding is not removed here."""
    logits = logits.float()  # a float32 mask under autocast too (no-op in fp32)
    if mode == "reference":
        return gumbel_sample(logits, tau)[1].to(logits.dtype)
    return (logits[..., 1] > logits[..., 0]).to(logits.dtype)


def visible(z: torch.Tensor, batch: Batch) -> torch.Tensor:
    """A rationale as a predictor reads it, context always visible (``Batch.visible``)."""
    return batch.visible(z)


def document_part(z: torch.Tensor, batch: Batch) -> torch.Tensor:
    """``z`` without its context positions, padding kept (``Batch.document_part``)."""
    return batch.document_part(z)


def sparsity_loss(z: torch.Tensor, mask: torch.Tensor, target: float, mask_padding: bool = False) -> torch.Tensor:
    """``|sum(z) / sum(mask) - target|`` over the whole batch.

    The reference sums ``z`` at every position, padding included (``mask_padding=False``).
    """
    selected = (z * mask).sum() if mask_padding else z.sum()
    return (selected / mask.sum() - target).abs()


def continuity_loss(z: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of ``|z[t] - z[t-1]|`` over ``B x (T-1)`` entries, padding included (reference).

    With ``mask`` given, only transitions between two real tokens count and the mean is taken
    over those.
    """
    diffs = (z[:, 1:] - z[:, :-1]).abs()
    if mask is None:
        return diffs.mean()
    pairs = mask[:, 1:] * mask[:, :-1]
    return (diffs * pairs).sum() / pairs.sum().clamp(min=1)


Divergence = Literal["kl", "js"]


def prediction_divergence(logits: torch.Tensor, full_logits: torch.Tensor, kind: Divergence) -> torch.Tensor:
    """How far the predictor on a part of the text (``logits``) is from the predictor on the
    full text, batch mean, in the jugechengzi references' arithmetic (MCD's and MRD's
    ``train_util.py``: probabilities by ``softmax``, logs of them): ``kl`` is ``KL(P(Y|X) ||
    P(Y|X_part))``; ``js`` is ``(KL(P_part || M) + KL(P_X || M)) / 2``, ``M`` their mean."""
    part, full = F.softmax(logits.float(), dim=-1), F.softmax(full_logits.float(), dim=-1)
    if kind == "kl":
        return F.kl_div(part.log(), full, reduction="batchmean")
    middle = (0.5 * (part + full)).log()
    to_part = F.kl_div(middle, part.log(), reduction="batchmean", log_target=True)
    return 0.5 * (to_part + F.kl_div(middle, full.log(), reduction="batchmean", log_target=True))


def train_classifier_epoch(
    forward: Callable[[Batch], torch.Tensor], optimizer: torch.optim.Optimizer, batches: Iterable[Batch]
) -> dict[str, float]:
    """One pass of cross-entropy training of a full-text classifier (``forward`` gives logits)."""
    means = EpochMeans()
    for batch in batches:
        logits = forward(batch)
        loss = F.cross_entropy(logits, batch.labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        means.add({"loss": loss, "train_acc": (logits.argmax(-1) == batch.labels).float().mean()})
    return means.means()
