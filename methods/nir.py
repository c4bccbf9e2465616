"""NIR: A2R-style rationalization with noise injected into the selected tokens during training."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ratbench.evaluate import top_k_mask
from ratbench.method import Method, MethodConfig, Presets
from ratbench.registry import register_method
from ratbench.types import Batch, DataInfo, EncodedExample, EvalMode, RationaleOutput

from ._blocks import (
    AttentionClassifier,
    EpochMeans,
    TransformerOptions,
    make_embedding,
    make_encoder,
    make_predictor,
    trainable_groups,
    visible,
)
from ._vicinal import PerturbOptions
from .rnp import DEMO_TRAINING_PRESET, PAPER_TRAINING_PRESET, RNP

EPS = 1e-12


@dataclasses.dataclass(frozen=True)
class NoiseTables:
    """Training-corpus statistics behind NIR's noise (word level; id 0 = OOV counts as one word).

    Attributes:
        idf: ``[V + 1]`` ``log(N / df(w))`` (0 for words never seen in training).
        candidates: ids a selected token may be replaced with: training words with an
            embedding (id > 0) and a non-zero replacement weight.
        weights: replacement probabilities of ``candidates``, proportional to
            ``max_w s - s(w)`` with ``s(w) = ATF(w) * IDF(w)`` (uninformative words most likely).
    """

    idf: np.ndarray
    candidates: np.ndarray
    weights: np.ndarray


def noise_tables(train: Sequence[EncodedExample], vocab_size: int) -> NoiseTables:
    """ATF, IDF and the replacement distribution of the training split (METHODS.md 12), over the
    documents' words (a query and its separator are no part of them)."""
    atf = np.zeros(vocab_size, dtype=np.float64)
    df = np.zeros(vocab_size, dtype=np.float64)
    for example in train:
        ids = example.ids if example.selectable is None else example.ids[example.selectable]
        if len(ids) == 0:
            continue
        words, counts = np.unique(ids, return_counts=True)
        atf[words] += counts / len(ids)
        df[words] += 1
    seen = df > 0
    idf = np.zeros(vocab_size, dtype=np.float64)
    idf[seen] = np.log(len(train) / df[seen])
    score = atf * idf
    known = np.flatnonzero(seen)
    known = known[known > 0]  # OOV/padding (id 0) has no vector to inject
    if len(known) == 0:
        return NoiseTables(idf, known, np.zeros(0))
    margin = score[known].max() - score[known]
    if margin.sum() <= 0:  # every word equally informative: uniform replacement
        margin = np.ones_like(margin)
    keep = margin > 0
    return NoiseTables(idf, known[keep], margin[keep] / margin[keep].sum())


def replacement_probability(ids: torch.Tensor, mask: torch.Tensor, idf: torch.Tensor, noise_p: float) -> torch.Tensor:
    """Per-position replacement probability ``[B, T]`` of NIR's noise.

    ``r_i = tf(w_i, d) / |d| * idf(w_i)``, mapped to ``(max r - r_i) / sum(max r - r) * |d|``
    (mean 1 over the document: frequent, informative words are rarely replaced), times
    ``noise_p``, clipped to 1. A document whose tokens all score the same gets ``noise_p``
    everywhere. Padding gets 0.
    """
    real = mask > 0
    same = (ids.unsqueeze(2) == ids.unsqueeze(1)) & real.unsqueeze(1)
    length = mask.sum(dim=1, keepdim=True).clamp(min=1)
    r = same.sum(dim=2).to(mask.dtype) / length * idf[ids].to(mask.dtype)
    r_max = r.masked_fill(~real, -torch.inf).max(dim=1, keepdim=True).values
    margin = (r_max - r) * mask
    total = margin.sum(dim=1, keepdim=True)
    relative = torch.where(total > 0, margin / total.clamp(min=EPS) * length, torch.ones_like(margin))
    return (relative * noise_p).clamp(max=1.0) * mask


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


class NoiseInjector:
    """NIR's training noise for one cell: the tables of the training split, on the device."""

    def __init__(self, info: DataInfo, noise_p: float, device: torch.device) -> None:
        if info.embeddings is not None:
            vocab_size = len(info.embeddings)
        else:  # word pieces: the ids the training split uses (a piece never seen is never drawn)
            vocab_size = 1 + max((int(ex.ids.max()) for ex in info.train if len(ex.ids)), default=0)
        tables = noise_tables(info.train, vocab_size)
        self.noise_p = noise_p
        self.idf = torch.as_tensor(tables.idf, dtype=torch.float32, device=device)
        self.candidates = torch.as_tensor(tables.candidates, dtype=torch.long, device=device)
        self.weights = torch.as_tensor(tables.weights, dtype=torch.float32, device=device)

    def __call__(self, ids: torch.Tensor, document: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
        """``ids`` with each selected token replaced, with its probability, by a sampled word;
        ``document`` marks the document's positions (tf and |d| are counted over them)."""
        if self.noise_p <= 0 or len(self.candidates) == 0:
            return ids
        probability = replacement_probability(ids, document, self.idf, self.noise_p) * selected
        replace = torch.bernoulli(probability).bool()
        draws = torch.multinomial(self.weights, ids.numel(), replacement=True).view_as(ids)
        return torch.where(replace, self.candidates[draws], ids)


def js_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence of two ``[B, C]`` distributions, mean over the batch."""
    m = (0.5 * (p + q)).clamp(min=EPS).log()
    kl_pm = (p * (p.clamp(min=EPS).log() - m)).sum(-1)
    kl_qm = (q * (q.clamp(min=EPS).log() - m)).sum(-1)
    return (0.5 * (kl_pm + kl_qm)).mean()


def js_reference(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """The reference's "JS": ``1/2 [KL(M || P) + KL(M || Q)]`` summed over the batch."""
    m = 0.5 * (p + q)
    log_m = m.clamp(min=EPS).log()
    kl_mp = (m * (log_m - p.clamp(min=EPS).log())).sum()
    kl_mq = (m * (log_m - q.clamp(min=EPS).log())).sum()
    return 0.5 * (kl_mp + kl_mq)


class NIRModel(nn.Module):
    """Frozen embedding (or the token ids), the soft attention model and the rationale
    predictor: BiGRUs, or two copies of the cell's transformer (the reference's BERT-A2R)."""

    def __init__(self, info: DataInfo, hidden_dim: int, dropout: float, scorer: str, config: object = None) -> None:
        super().__init__()
        self.embed = make_embedding(info)
        encoder = make_encoder(info, self.embed.dim, hidden_dim, config)
        self.soft = AttentionClassifier(self.embed.dim, hidden_dim, info.num_classes, dropout, scorer, encoder)
        self.predictor = make_predictor(info, self.embed, hidden_dim, info.num_classes, dropout, config)


@register_method("nir")
class NIR(Method):
    """NIR, unsupervised selective rationalization with noise injection (Storek et al., ACL 2023),
    BERT-A2R + NI of the reference repository adamstorek/noise_injection@334e888, on a
    transformer or adapted to GRU encoders on word-level data (METHODS.md 12).

    Three parts: a soft model (frozen embedding, BiGRU, additive attention over the real tokens,
    Linear) that classifies the full text; a selector that keeps the top
    ``k = max(1, round(sparsity * length))`` tokens of the *detached* attention (no gradient
    through the selection); a rationale predictor (the shared BiGRU + max-pool predictor) that
    classifies from the selected tokens, compacted to the front as the reference does. Losses,
    one Adam each: soft ``CE(p_soft, y) + proximity * JS(p_soft, p_hard.detach())``; rationale
    ``CE(p_hard, y) + proximity * JS(p_soft.detach(), p_hard)``.

    Noise (training only): every selected token is replaced, with the tf-idf derived
    probability of :func:`replacement_probability` (``noise_p``, 0.1 in the paper), by a word
    drawn from the training vocabulary with probability proportional to
    ``max_w s - s(w)``, ``s = ATF * IDF`` (:func:`noise_tables`). Evaluation is noiseless and
    deterministic, so both evaluation modes give the same rationale.

    Defaults: the VER paper's RNP-tuned settings (lr 1e-4, batch 128 beer / 256 hotel), noise
    0.1, proximity 0.1, sparsity 0.15 (the paper's S of about 15 %; the reference uses 0.2).

    Deviations from the reference (each with the flag that restores it):
        ref_quirks (False): True uses the reference formulas, ``F.cross_entropy`` applied to
            softmax probabilities (a double softmax) and a "JS" computed as
            ``1/2 [KL(M||P) + KL(M||Q)]`` summed over the batch; the default is the proper
            log-softmax cross-entropy and the true Jensen-Shannon divergence (batch mean).
        compact (True, the reference): False feeds the rationale predictor the whole sequence
            with deselected tokens zeroed (RNP's in-place masking) instead of the compacted
            selected tokens.
    Adaptations that have no flag: with the word encoder, BERT encoders become BiGRUs over
        frozen GloVe; the soft model masks padding out of its attention (the reference's
        softmax runs over padding too, which only matters with fixed-width padding); OOV
        tokens (id 0) count as one word in the tf-idf statistics and are never drawn as
        replacements; model selection is the harness's best dev accuracy of the rationale
        predictor, not the reference's early stopping on both validation losses (patience 2).
    On a transformer (``data.encoder=hf:...``) this is the reference's BERT-A2R: two copies of
    the transformer, the input ``[CLS] query [SEP] document [SEP]``, top-k over the document
    pieces, the compacted rationale ``[CLS] query [SEP] selected pieces [SEP]``, the [CLS]
    state pooled (``pooling=cls`` in its presets). There, k counts the document pieces (the
    reference: every non-pad piece, query and specials included), and the noise replaces
    pieces by pieces (the reference maps them to words and tokenizes the noisy words again).
    The VER paper's appendix describes its NIR baseline as RNP with noise injection; this
    plugin follows the NIR reference architecture (A2R), as METHODS.md 12 specifies, and
    ``nir_rnp`` is the paper's variant.
    """

    description = "NIR: A2R-style soft model + top-k selector, tf-idf noise injected into selected tokens"
    kind = "select_predict"
    version = "1"

    @dataclasses.dataclass(frozen=True)
    class Config(MethodConfig, TransformerOptions):
        epochs: int = 300
        batch_size: int = 128
        lr: float = 1e-4
        """Adam learning rate of both models."""
        sparsity: float = 0.15
        """Share of each example's tokens the top-k selector keeps."""
        proximity: float = 0.1
        """lambda, weight of the JS term tying the soft and the rationale predictions."""
        noise_p: float = 0.1
        """Noise proportion: mean replacement probability of a selected token."""
        hidden_dim: int = 200
        """Total BiGRU width (half per direction) of both models."""
        dropout: float = 0.2
        """Dropout before the output layers."""
        scorer: Literal["additive", "linear"] = "additive"
        """Attention scorer of the soft model."""
        compact: bool = True
        """Rationale predictor reads the selected tokens only, compacted (reference: True)."""
        ref_quirks: bool = False
        """Reproduce the reference's double-softmax CE and swapped, summed JS (reference: True)."""

    # On a transformer the rationale predictor pools the [CLS] state, as the reference's.
    presets: ClassVar[Presets] = {
        "paper": {**PAPER_TRAINING_PRESET, "hf/*": {"pooling": "cls"}},
        "demo": {**DEMO_TRAINING_PRESET, "hf/*": {**DEMO_TRAINING_PRESET["hf/*"], "pooling": "cls"}},
    }

    def __init__(self, config: Config, info: DataInfo, device: torch.device) -> None:
        super().__init__(config, info, device)
        self.config: NIR.Config = config
        self.model = NIRModel(info, config.hidden_dim, config.dropout, config.scorer, config).to(device)
        self.optimizers = [
            torch.optim.Adam(trainable_groups(self.model.soft, config.lr, config.encoder_lr)),
            torch.optim.Adam(trainable_groups(self.model.predictor, config.lr, config.encoder_lr)),
        ]
        self.inject_noise = NoiseInjector(info, config.noise_p, device)

    def _rationale_logits(self, ids: torch.Tensor, mask: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
        if self.config.compact:
            ids, selected = compact(ids, selected)
            mask = selected
        return self.model.predictor(self.model.embed(ids, mask), selected, mask)

    def _select(self, weights: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return top_k_mask(weights.detach(), mask, self.config.sparsity)

    def _losses(
        self, soft_logits: torch.Tensor, hard_logits: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(soft model loss, rationale predictor loss, and their two cross-entropy terms)."""
        cfg = self.config
        p_soft, p_hard = soft_logits.softmax(-1), hard_logits.softmax(-1)
        if cfg.ref_quirks:
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
        for batch in batches:
            soft_logits, weights = self.model.soft(self.model.embed(batch.ids, batch.mask), batch.mask)
            selected = self._select(weights, batch.selectable)
            noisy = self.inject_noise(batch.ids, batch.selectable, selected)
            hard_logits = self._rationale_logits(noisy, batch.mask, visible(selected, batch))
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
                    "replaced": ((noisy != batch.ids).float().sum() / selected.sum().clamp(min=1)),
                }
            )
        return means.means()

    @torch.no_grad()
    def rationalize(self, batch: Batch, mode: EvalMode) -> RationaleOutput:
        """Top-k by attention (deterministic in both modes) and the rationale predictor's logits."""
        self.model.eval()
        _, weights = self.model.soft(self.model.embed(batch.ids, batch.mask), batch.mask)
        selected = self._select(weights, batch.selectable)
        logits = self._rationale_logits(batch.ids, batch.mask, visible(selected, batch))
        return RationaleOutput(logits=logits, mask=selected, scores=weights)

    @torch.no_grad()
    def predict(self, batch: Batch, rationale: torch.Tensor) -> torch.Tensor:
        """The rationale predictor's logits on an explicit rationale."""
        self.model.eval()
        return self._rationale_logits(batch.ids, batch.mask, visible(rationale.to(batch.mask.dtype), batch))


@register_method("nir_rnp")
class NIRRNP(RNP):
    """NIR as the VER paper's appendix describes its GRU baseline ("we use RNP as its
    backbone"): RNP whose predictor, in training, reads the selected tokens with NIR's tf-idf
    noise (:class:`NoiseInjector`, ``noise_p`` 0.1 as the paper chose). The selector still gets
    its gradient through the straight-through mask; evaluation is RNP's, without noise.

    Not in METHODS.md, which specifies the reference's A2R architecture (``nir``); this is the
    variant the VER paper's Table 1 reports. Defaults and presets are RNP's (the paper applied
    RNP's tuned settings to NIR). Deviations from RNP: the noise only. Extension (off by
    default): ``perturb_rate > 0`` adds VER's vicinal perturbation to the predictor's training
    mask (the noise then goes into the perturbed mask's tokens).
    """

    description = "NIR as the VER paper ran it: RNP whose predictor sees tf-idf noise in the selected tokens"
    kind = "select_predict"
    version = "1"

    @dataclasses.dataclass(frozen=True)
    class Config(RNP.Config, PerturbOptions):
        noise_p: float = 0.1
        """Noise proportion: mean replacement probability of a selected token."""

    def __init__(self, config: Config, info: DataInfo, device: torch.device) -> None:
        super().__init__(config, info, device)
        self.inject_noise = NoiseInjector(info, config.noise_p, device)

    def predictor_input(self, batch: Batch, embedded: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The embedded text with noise in the tokens of the (hard) training mask ``z``."""
        noisy = self.inject_noise(batch.ids, batch.selectable, (z.detach() > 0.5).to(batch.mask.dtype))
        return self.model.embed(noisy, batch.mask)
