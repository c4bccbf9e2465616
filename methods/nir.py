"""NIR: A2R-style rationalization with noise injected into the selected tokens during training."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ratbench.api import (
    Batch,
    DataInfo,
    EvalMode,
    Method,
    MethodConfig,
    Presets,
    Provenance,
    RationaleOutput,
    merge_presets,
    register_method,
    top_k_mask,
)

from ._blocks import (
    MASKED_SCORE,
    AttentionClassifier,
    EpochMeans,
    Predictor,
    in_fp32,
    make_embedding,
    make_encoder,
    make_predictor,
    make_transformer,
    pool_fill,
    trainable_groups,
    visible,
)
from ._noise import EPS, NoiseInjector
from ._options import GRUOptions, TransformerOptions
from ._presets import TRAINING_PRESETS
from ._transformer import TransformerEncoder

GRU_DROPOUT = 0.2  # the GRU adaptation's dropout (dropout=None)


def compact(ids: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The kept tokens of each row moved to the front in their order: ids and mask ``[B, K]``."""
    width = ids.shape[1]
    positions = torch.arange(width, device=ids.device)
    order = ((1 - keep) * width + positions).argsort(dim=1)  # kept positions first, in order
    counts = keep.sum(dim=1)
    kept_width = max(int(counts.max()), 1)
    new_mask = (positions[:kept_width] < counts.unsqueeze(1)).to(keep.dtype)
    new_ids = ids.gather(1, order[:, :kept_width]) * new_mask.long()
    return new_ids, new_mask


def js_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence of two ``[B, C]`` distributions, mean over the batch."""
    m = (0.5 * (p + q)).clamp(min=EPS).log()
    kl_pm = (p * (p.clamp(min=EPS).log() - m)).sum(-1)
    kl_qm = (q * (q.clamp(min=EPS).log() - m)).sum(-1)
    return (0.5 * (kl_pm + kl_qm)).mean()


def js_reference(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """The reference's "JS" (``models.py`` ``js_div``), with its operations: ``M = (P + Q) / 2``
    and ``[KL(M || P) + KL(M || Q)] / 2`` by ``F.kl_div(X.log(), M, reduction="sum")``, summed
    over the batch."""
    m = (p + q) / 2
    return (F.kl_div(p.log(), m, reduction="sum") + F.kl_div(q.log(), m, reduction="sum")) / 2


def ordered_positions(keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The positions where ``keep`` ``[B, T]`` (bool) is set, in order, at the front of each row:
    positions ``[B, K]`` and their validity ``[B, K]``, ``K`` the largest count."""
    width = keep.shape[1]
    positions = torch.arange(width, device=keep.device)
    order = ((~keep).long() * width + positions).argsort(dim=1)
    counts = keep.sum(dim=1)
    kept = int(counts.max()) if len(counts) else 0
    return order[:, :kept], positions[:kept] < counts.unsqueeze(1)


class A2RSoftModel(nn.Module):
    """BERT-A2R's soft ("black box") model, the reference's ``BlackBoxPredictor``: the
    transformer's states of every position but [CLS], a token score ``Linear(dropout(h), 1)``,
    a softmax over those positions (padding included, as the reference's, unless
    ``mask_padding``), the attention-weighted sum of the states, dropout and a Linear."""

    def __init__(self, encoder: TransformerEncoder, num_classes: int, dropout: float, mask_padding: bool) -> None:
        super().__init__()
        self.encoder = encoder
        width = encoder.output_dim
        self.score_dropout = nn.Dropout(dropout)
        self.score = nn.Linear(width, 1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width, num_classes)
        self.mask_padding = mask_padding

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``[B, C]`` and the attention ``[B, T]`` (0 at [CLS])."""
        states = self.encoder.states(ids, mask)[:, 1:]
        # fp32 under autocast: bf16 scores tie, and the top-k then favours early tokens
        scores = in_fp32(lambda hidden: self.score(self.score_dropout(hidden)).squeeze(-1), states)
        if self.mask_padding:
            scores = scores.masked_fill(mask[:, 1:] == 0, MASKED_SCORE)
        attention = F.softmax(scores, dim=-1)
        context = torch.bmm(states.transpose(1, 2), attention.unsqueeze(-1)).squeeze(-1)
        return self.head(self.dropout(context)), F.pad(attention, (1, 0))


class A2RPredictor(nn.Module):
    """BERT-A2R's rationale predictor, the reference's ``RationalePredictor``: the transformer
    over the rationale, its pooled [CLS] state (``pooling="cls"``: the transformer's pooler,
    dense + tanh, BERT's ``pooler_output``; the raw state for a model without a pooler) or a
    masked max (``"max"``), dropout and a Linear."""

    def __init__(self, encoder: TransformerEncoder, num_classes: int, dropout: float, pooling: str) -> None:
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.output_dim, num_classes)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[B, C]`` of ``ids`` (``keep``: a rationale the transformer reads as its
        ``mask_mode`` says; None: the ids are the rationale)."""
        hidden = self.encoder.states(ids, mask, keep)
        if self.pooling == "cls":
            pooler = getattr(self.encoder.transformer, "pooler", None)
            pooled = pooler(hidden) if pooler is not None else hidden[:, 0]
        else:
            pooled = hidden.masked_fill(mask.unsqueeze(-1) == 0, pool_fill(hidden.dtype)).max(dim=1).values
        return self.head(self.dropout(pooled))


class NIRModel(nn.Module):
    """The input layer (frozen word vectors, or the token ids), the soft model and the rationale
    predictor: BiGRUs with additive attention (the GRU adaptation), or two copies of the cell's
    transformer with the reference's BERT-A2R heads."""

    def __init__(self, info: DataInfo, config: NIR.Config) -> None:
        super().__init__()
        self.embed = make_embedding(info)
        hidden_dim, classes = config.hidden_dim, info.num_classes
        self.soft: A2RSoftModel | AttentionClassifier
        self.predictor: A2RPredictor | Predictor
        self.max_positions = 0  # the transformer's positions (0: the GRUs have no limit)
        if info.encoder == "hf":
            soft_encoder = make_transformer(info, config)
            self.max_positions = int(getattr(soft_encoder.transformer.config, "max_position_embeddings", 0))
            dropout = config.dropout
            if dropout is None:  # the reference's heads use the transformer's own dropout
                dropout = float(getattr(soft_encoder.transformer.config, "hidden_dropout_prob", 0.1))
            self.soft = A2RSoftModel(soft_encoder, classes, dropout, config.mask_padding)
            self.predictor = A2RPredictor(make_transformer(info, config), classes, dropout, config.pooling)
            return
        dropout = GRU_DROPOUT if config.dropout is None else config.dropout
        encoder = make_encoder(info, hidden_dim, config)
        self.soft = AttentionClassifier(None, None, classes, dropout, config.scorer, encoder)
        self.predictor = make_predictor(info, hidden_dim, classes, dropout, config)


@register_method("nir")
class NIR(Method["NIR.Config"]):
    """NIR, unsupervised selective rationalization with noise injection (Storek et al., ACL 2023):
    BERT-A2R + NI of the reference repository adamstorek/noise_injection@334e888 on a
    transformer (``data.encoder=hf:...``), adapted to GRU encoders on word-level data
    (METHODS.md 12).

    On a transformer, the reference's ``run_ce.py --inject_noise`` (proven step by step by
    ``tests/test_parity_nir.py``): two copies of the transformer. The soft model (the
    reference's ``BlackBoxPredictor``) scores every position but [CLS] with
    ``Linear(dropout(h), 1)``, softmaxes the scores over them (padding included) and classifies
    the attention-weighted sum of the states. The selector (``TopkSelector``) keeps the top
    ``k = max(1, round(sparsity * n))`` of the *detached* attention, ``n`` every non-pad piece
    ([CLS], query and separators included) capped at the transformer's positions - 1, among
    the positions from the document's first piece to the row's end (the final [SEP] and
    padding compete and are then dropped). The rationale predictor (``RationalePredictor``)
    classifies BERT's pooled [CLS] output of the rationale input. In training with noise
    (``noise_p > 0``), the input is ``[CLS] query [SEP]`` + the selected pieces, each replaced
    with its tf-idf probability by a word drawn from the training vocabulary, + ``[SEP]``;
    otherwise (evaluation; training when ``noise_p == 0``, the reference's A2R) the selected
    pieces behind ``[CLS] query [SEP] [SEP]``. The heads' dropout is the transformer's
    ``hidden_dropout_prob``. Losses, one Adam each: soft ``CE(p_soft, y) + proximity *
    JS(p_soft, p_hard.detach())``, rationale ``CE(p_hard, y) + proximity * JS(p_soft.detach(),
    p_hard)``, with the reference's formulas (``ref_quirks``).

    Noise tables (both encoders): vocabulary distribution ``∝ max_w s - s(w)``,
    ``s = ATF * IDF`` over the training documents (:func:`noise_tables`); replacement
    probability from ``tf(w, d) / |d| * idf(w)`` (:func:`replacement_probability`; ``noise_p``
    0.1 in the paper). Evaluation is noiseless and deterministic in both modes.

    Training defaults: the VER paper's RNP-tuned settings (lr 1e-4, batch 128), noise 0.1,
    proximity 0.1, sparsity 0.15 (the paper's S of about 15 %). The reference's ``run_ce.py``:
    Adam 2e-5 for both models, batch 16, 5 epochs, sparsity 0.2 (the ``paper`` preset's
    ``hf/eraser`` scope).

    Flags, defaults the reference's (the reference's quirks are bugs of its code; False gives
    what the paper describes):
        ref_quirks (None: True on a transformer, False on the GRUs, as METHODS.md 12 specifies
            the GRU adaptation): the reference's formulas, ``F.cross_entropy`` of softmax
            probabilities (a double softmax) and a "JS" ``[KL(M||P) + KL(M||Q)] / 2`` summed
            over the batch (False: log-softmax CE and the true JS, batch mean). On a transformer
            also the reference's off-by-one and doubled separator: its noisy extractor pairs the
            selection (which has no [CLS] position) with ``word_ids`` (which has), so each
            selected piece brings the piece before it (the first document piece: the document's
            last, which comes first), and its noiseless extractor keeps the query's [SEP] besides
            re-adding it (``[CLS] query [SEP] [SEP] selected [SEP]``). False: the selected
            pieces themselves, one [SEP].
        mask_padding (False): True leaves padding out of the soft model's softmax and the
            top-k; the reference's run over it, so its selections depend on how the batch is
            padded (``data.padding=longest`` and the reference's batch size reproduce them).
        compact (True): False feeds the rationale predictor the whole sequence with the
            unselected tokens masked (``mask_mode``) instead of the compacted selection (on a
            transformer without the reference's layout quirks and with the noise in place).
    Differences without a flag, on a transformer: pieces, not words: the reference maps the
        selected pieces to words (collapsing consecutive repeats), replaces words and
        tokenizes again; here a piece is replaced by a piece (the same for words of one piece,
        as the parity fixture's). The replacement probabilities are normalized per document;
        the reference normalizes them per sentence (MultiRC and FEVER) because ratbench's
        batches carry no sentence numbers (:func:`replacement_probability` takes ``groups``).
        k is capped at the transformer's ``max_position_embeddings - 1``; the reference caps
        at its ``max_length - 1`` (the same when ``data.max_len`` is the model's 512). Model
        selection is the harness's best dev accuracy of the rationale predictor, not the
        reference's checkpoint at the last joint improvement of both validation losses.
    GRU adaptation (word encoder): soft model = frozen embedding, BiGRU, additive attention over
        the real tokens, Linear (``scorer``, ``hidden_dim``, dropout 0.2); top-k over the
        document tokens; the rationale predictor the shared BiGRU + max-pool predictor on the
        compacted selection with the noise in place; OOV tokens (id 0) count as one word in
        the tf-idf statistics and are never drawn. The VER paper's appendix describes its NIR
        baseline as RNP with noise injection: ``nir_rnp``.
    Not on the select-then-predict template (``_family.SelectPredict``): the selection is a
    deterministic top-k of a separately trained soft model's attention (no sampled mask, no
    gradient through it), and the two models have losses of their own.
    """

    description = "NIR: A2R soft model + top-k selector, tf-idf noise injected into the selected tokens"
    model: NIRModel
    kind = "select_predict"
    version = "2"  # 2: BERT-A2R as the reference (parity-tested); the GRU adaptation's defaults unchanged
    encoders = ("word", "hf")

    @dataclasses.dataclass(frozen=True)
    class Config(MethodConfig, GRUOptions, TransformerOptions):
        sparsity: float = 0.15
        """Share of each example's tokens the top-k selector keeps."""
        proximity: float = 0.1
        """lambda, weight of the JS term tying the soft and the rationale predictions."""
        noise_p: float = 0.1
        """Noise proportion: mean replacement probability of a selected token."""
        dropout: float | None = None  # type: ignore[assignment]  # widens GRUOptions' float: None = per encoder
        """Dropout before the output layers (on a transformer also before the token scorer);
        None: the transformer's hidden_dropout_prob (the reference's), 0.2 with the GRUs."""
        scorer: Literal["additive", "linear"] = "additive"
        """GRU adaptation: attention scorer of the soft model."""
        pooling: Literal["max", "cls"] = "cls"
        """hf: the rationale predictor reads the pooled [CLS] output (the reference's) or a
        masked max of the states."""
        compact: bool = True
        """Rationale predictor reads the selected tokens only, compacted (reference: True)."""
        ref_quirks: bool | None = None
        """The reference's loss formulas and, on a transformer, its off-by-one and doubled [SEP]
        (None: True on a transformer, False on the GRUs)."""
        mask_padding: bool = False
        """hf: leave padding out of the soft model's softmax and the top-k (reference: False)."""

        bounds: ClassVar[dict[str, str]] = {"noise_p": "[0, 1]"}
        key_settings: ClassVar[tuple[str, ...]] = ("noise_p",)

    # On a transformer the rationale predictor pools the [CLS] state, as the reference's.
    presets: ClassVar[Presets] = merge_presets(
        TRAINING_PRESETS, {"paper": {"hf/*": {"pooling": "cls"}}, "demo": {"hf/*": {"pooling": "cls"}}}
    )
    # The reference's data pipeline on a transformer (model/datasets_ce.py, run_ce.py): each
    # batch padded to its own longest example (tokenizer(padding=True)) in the shuffled order,
    # the "query [SEP] document" sequence cut at its tail with no cap of its own on the query.
    data_presets: ClassVar[Presets] = {
        "paper": {"hf/*": {"padding": "longest", "max_query_len": 510}},
        "demo": Method.data_presets["demo"],
    }
    provenance = Provenance(
        reference="adamstorek/noise_injection @ 334e888 (model/models.py BlackBoxPredictor, RationalePredictor, "
        "js_div; model/models_ce.py TopkSelector, RationaleExtractor, RandomNoisyRationaleExtractor; "
        "model/datasets_ce.py; model/run_ce.py train, evaluate; data_preprocessing/multirc/"
        "generate_word_statistics.py), BERT-A2R + NI on a transformer",
        proven_by="tests/test_parity_nir.py: a tiny BERT, 3 training steps with noise (every dropout mask and "
        "noise draw replayed): attention, top-k, rationale inputs, both models' probabilities, each loss term, "
        "gradients and weights after each Adam step, bit-exact; then the test split's attention, selection, "
        "rationale inputs, predictions and the reference's sentence counts",
        deviations=(
            "ref_quirks (true on hf): false uses log-softmax CE, the true JS, the selected pieces themselves "
            "(not the piece before each) and one [SEP] after the query",
            "mask_padding (false): true leaves padding out of the soft model's softmax and the top-k",
            "no flag: pieces are replaced by pieces (the reference replaces words and tokenizes again)",
            "no flag: replacement probabilities normalized per document (the reference: per sentence); "
            "batches carry no sentence numbers",
            "no flag: k capped at the transformer's positions - 1 (the reference: its max_length - 1)",
            "no flag: model selection by best dev accuracy (the reference: both validation losses, patience)",
        ),
        layout="[CLS] query [SEP] document [SEP], each batch padded to its own longest example in the "
        "shuffled order (the reference's tokenizer(padding=True)), max length 512, test batches of the "
        "training batch size in the split's order: the soft model's softmax and top-k run over padding",
    )

    def __init__(self, config: NIR.Config, info: DataInfo, device: torch.device) -> None:
        super().__init__(config, info, device)
        self.a2r = info.encoder == "hf"
        self.ref_quirks = self.a2r if config.ref_quirks is None else config.ref_quirks
        self.model = NIRModel(info, config).to(device)
        self.optimizers = [
            torch.optim.Adam(trainable_groups(self.model.soft, config.lr, config.encoder_lr)),
            torch.optim.Adam(trainable_groups(self.model.predictor, config.lr, config.encoder_lr)),
        ]
        self.inject_noise = NoiseInjector(info, config.noise_p, device)
        self.max_positions = self.model.max_positions

    # -- selection ---------------------------------------------------------------------------
    def _select(self, weights: torch.Tensor, batch: Batch) -> torch.Tensor:
        """The selected document positions ``[B, T]`` from the detached attention."""
        if not self.a2r:
            return top_k_mask(weights.detach(), batch.selectable, self.config.sparsity)
        return self._select_a2r(weights.detach(), batch)

    def _select_a2r(self, weights: torch.Tensor, batch: Batch) -> torch.Tensor:
        """The reference's ``TopkSelector`` (see the class docstring); the kept document pieces."""
        mask, document = batch.mask, batch.selectable
        n = mask.sum(dim=1).long()
        if self.max_positions > 1:
            n = n.clamp(max=self.max_positions - 1)
        k = torch.round(n * self.config.sparsity).long().clamp(min=1)  # float32 and half to even, as the reference
        candidate = document.cumsum(dim=1) > 0  # from the document's first piece to the row's end
        if self.config.mask_padding:
            candidate &= mask > 0
        k = torch.minimum(k, candidate.sum(dim=1))
        keyed = weights.double().masked_fill(~candidate, -torch.inf)
        rank = keyed.argsort(dim=1, descending=True, stable=True).argsort(dim=1)
        return ((rank < k.unsqueeze(1)) & candidate).to(mask.dtype) * document

    # -- the rationale predictor's input -----------------------------------------------------
    def _noise_sources(self, batch: Batch, selected: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Where the noisy rationale's pieces come from, in order: ``[B, K]`` positions and validity.

        A row that selected none of its document gets its first piece (the reference's "select
        the first word"). With ``ref_quirks`` each selected piece brings the piece before it, and
        the first document piece the document's last (the reference's off-by-one)."""
        document = batch.selectable > 0
        keep = selected > 0
        positions = torch.arange(keep.shape[1], device=keep.device)
        first = document.long().argmax(dim=1, keepdim=True)
        empty = ~keep.any(dim=1, keepdim=True) & document.any(dim=1, keepdim=True)
        sources, valid = ordered_positions(keep | (empty & (positions == first)))
        if self.ref_quirks:
            last = keep.shape[1] - 1 - document.flip(1).long().argmax(dim=1, keepdim=True)
            previous = (sources - 1).clamp(min=0)
            inside = document.gather(1, previous) & (sources > 0)
            sources = torch.where(empty, sources, torch.where(inside, previous, last))
        return sources, valid

    def _a2r_input(
        self, batch: Batch, selected: torch.Tensor, noisy: bool, repeat_sep: bool = True
    ) -> tuple[torch.Tensor, ...]:
        """The rationale predictor's input on a transformer: ids, mask ``[B, W]`` and the share
        of replaced pieces (the reference's ``replace_ratio``: per row, then the batch mean).
        ``[CLS] query [SEP]``, the rationale pieces, ``[SEP]``; noiseless with ``ref_quirks``
        and ``repeat_sep``, the query's [SEP] twice (rows with a query)."""
        document = batch.selectable > 0
        context = (batch.mask > 0) & ~document
        head = context & ~(document.cumsum(dim=1) > 0)  # [CLS] query [SEP] (all context without a document)
        tail = context & ~head  # the final [SEP]
        if noisy:
            sources, valid = self._noise_sources(batch, selected)
            pieces, replaced = self.inject_noise.replace_sources(batch.ids, batch.selectable, sources, valid)
            share = (replaced.sum(dim=1) / valid.sum(dim=1).clamp(min=1)).mean()
            repeat = torch.zeros_like(head[:, :1])
        else:
            sources, valid = ordered_positions(selected > 0)
            pieces, share = batch.ids.gather(1, sources) * valid.long(), torch.zeros((), device=batch.ids.device)
            repeat = (context.sum(dim=1, keepdim=True) >= 3) & self.ref_quirks & repeat_sep  # [CLS] q.. [SEP] [SEP]
        positions = torch.arange(head.shape[1], device=head.device)
        last_head = (head * positions).max(dim=1, keepdim=True).values
        ids = torch.cat([batch.ids * head, batch.ids.gather(1, last_head), pieces, batch.ids * tail], dim=1)
        keep = torch.cat([head, repeat, valid, tail], dim=1).to(batch.mask.dtype)
        ids, mask = compact(ids, keep)
        return ids, mask, share

    def _rationale_logits(
        self, batch: Batch, selected: torch.Tensor, noisy: bool = False, repeat_sep: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The rationale predictor's logits on the document positions ``selected`` (with the
        training noise when ``noisy``; ``repeat_sep``: see ``_a2r_input``) and the share of the
        selected tokens the noise replaced."""
        if self.a2r and self.config.compact:
            ids, mask, replaced = self._a2r_input(batch, selected, noisy, repeat_sep)
            return self.model.predictor(ids, mask), replaced
        ids = self.inject_noise(batch.ids, batch.selectable, selected) if noisy else batch.ids
        replaced = (ids != batch.ids).float().sum() / selected.sum().clamp(min=1)
        keep, mask = visible(selected, batch), batch.mask
        if self.config.compact:
            ids, keep = compact(ids, keep)
            mask = keep
        if self.a2r:
            return self.model.predictor(ids, mask, keep), replaced
        return self.model.predictor(self.model.embed(ids, mask), keep, mask), replaced

    # -- training and evaluation -------------------------------------------------------------
    def _losses(
        self, soft_logits: torch.Tensor, hard_logits: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(soft model loss, rationale predictor loss, and their two cross-entropy terms)."""
        cfg = self.config
        p_soft, p_hard = soft_logits.softmax(-1), hard_logits.softmax(-1)
        if self.ref_quirks:
            ce_soft, ce_hard = F.cross_entropy(p_soft, labels), F.cross_entropy(p_hard, labels)
            js = js_reference
        else:
            ce_soft, ce_hard = F.cross_entropy(soft_logits, labels), F.cross_entropy(hard_logits, labels)
            js = js_divergence
        soft_loss = ce_soft + cfg.proximity * js(p_soft, p_hard.detach())
        hard_loss = ce_hard + cfg.proximity * js(p_soft.detach(), p_hard)
        return soft_loss, hard_loss, ce_soft, ce_hard

    def train_epoch(self, batches: Iterable[Batch]) -> dict[str, float]:
        """One pass; the two models' losses share no parameters, so one backward serves both."""
        self.model.train()
        means = EpochMeans()
        noisy = self.config.noise_p > 0 or not self.a2r  # the reference's A2R (noise_p 0) is noiseless
        for batch in batches:
            soft_logits, weights = self.model.soft(self.model.embed(batch.ids, batch.mask), batch.mask)
            selected = self._select(weights, batch)
            hard_logits, replaced = self._rationale_logits(batch, selected, noisy)
            soft_loss, hard_loss, ce_soft, ce_hard = self._losses(soft_logits, hard_logits, batch.labels)
            for optimizer in self.optimizers:
                optimizer.zero_grad(set_to_none=True)
            (soft_loss + hard_loss).backward()
            for optimizer in self.optimizers:
                optimizer.step()
            means.add(
                {
                    "loss": soft_loss + hard_loss,
                    "soft_cls_loss": ce_soft,
                    "cls_loss": ce_hard,
                    "soft_acc": (soft_logits.argmax(-1) == batch.labels).float().mean(),
                    "train_acc": (hard_logits.argmax(-1) == batch.labels).float().mean(),
                    "replaced": replaced,
                }
            )
        return means.means()

    @torch.no_grad()
    def rationalize(self, batch: Batch, mode: EvalMode) -> RationaleOutput:
        """Top-k by attention (deterministic in both modes) and the rationale predictor's logits."""
        self.model.eval()
        _, weights = self.model.soft(self.model.embed(batch.ids, batch.mask), batch.mask)
        selected = self._select(weights, batch)
        logits, _ = self._rationale_logits(batch, selected)
        return RationaleOutput(logits=logits, mask=selected, scores=weights)

    @torch.no_grad()
    def predict(self, batch: Batch, rationale: torch.Tensor) -> torch.Tensor:
        """The rationale predictor's logits on an explicit rationale (its document positions).

        On a transformer the input is ``[CLS] query [SEP] kept pieces [SEP]`` without the
        reference extractor's doubled [SEP]: the evaluator's full text is then the tokenized
        example, as the reference's comprehensiveness feeds it (and fits the model's positions)."""
        self.model.eval()
        rationale = rationale.to(batch.mask.dtype) * batch.selectable
        return self._rationale_logits(batch, rationale, repeat_sep=False)[0]
