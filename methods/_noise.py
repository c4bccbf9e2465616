"""NIR's noise (Storek et al., ACL 2023; METHODS.md 12): the training split's tf-idf tables and the
replacement of selected tokens by uninformative words, shared by ``nir`` and ``nir_rnp``."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

from ratbench.api import DataInfo, EncodedExample

EPS = 1e-12
FLAT_MARGIN = 1e-8  # np.isclose(sum, 0)'s absolute tolerance: a group whose words all score the same


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


def replacement_probability(
    ids: torch.Tensor,
    mask: torch.Tensor,
    idf: torch.Tensor,
    noise_p: float,
    groups: torch.Tensor | None = None,
    flat: Literal["noise_p", "zero"] = "noise_p",
) -> torch.Tensor:
    """Per-position replacement probability ``[B, T]`` of NIR's noise.

    ``r_i = tf(w_i, d) / |d| * idf(w_i)`` (tf and ``|d|`` over the document ``mask``), mapped
    within each group ``g`` (``groups`` ``[B, T]``: a number per position, e.g. its sentence;
    None: the document is one group) to ``(max_g r - r_i) / sum_g(max_g r - r) * |g|`` (mean 1
    over the group: frequent, informative words are rarely replaced), times ``noise_p``, clipped
    to 1. A group whose tokens all score the same gets ``noise_p`` everywhere
    (``flat="noise_p"``: margins summing to 0) or 0 (``flat="zero"``: margins summing to at most
    1e-8, the reference's ``normalize``, which then returns the zero margins).
    Padding gets 0. The reference (``generate_word_statistics.py`` of MultiRC and FEVER)
    normalizes per sentence.
    """
    real = mask > 0
    same = (ids.unsqueeze(2) == ids.unsqueeze(1)) & real.unsqueeze(1)
    length = mask.sum(dim=1, keepdim=True).clamp(min=1)
    r = same.sum(dim=2).to(mask.dtype) / length * idf[ids].to(mask.dtype)
    if groups is None:
        r_max = r.masked_fill(~real, -torch.inf).max(dim=1, keepdim=True).values
        margin = (r_max - r) * mask
        total = margin.sum(dim=1, keepdim=True)
        size = length
    else:
        together = (groups.unsqueeze(2) == groups.unsqueeze(1)) & real.unsqueeze(1) & real.unsqueeze(2)
        r_max = r.unsqueeze(1).expand_as(together).masked_fill(~together, -torch.inf).max(dim=2).values
        r_max = r_max.masked_fill(~real, 0)
        margin = (r_max - r) * mask
        # every member of a group has the group's maximum, so its margins are r_max_i - r_j
        total = (together * (r_max.unsqueeze(2) - r.unsqueeze(1))).sum(dim=2)
        size = together.sum(dim=2).to(mask.dtype)
    spread = total > (FLAT_MARGIN if flat == "zero" else 0.0)
    uniform = torch.ones_like(margin) if flat == "noise_p" else torch.zeros_like(margin)
    relative = torch.where(spread, margin / total.clamp(min=EPS) * size, uniform)
    return (relative * noise_p).clamp(max=1.0) * mask


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

    def replace_sources(
        self, ids: torch.Tensor, document: torch.Tensor, sources: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The reference's noisy rationale (``RandomNoisyRationaleExtractor``): the tokens at
        ``sources`` ``[B, K]`` (``valid`` marks the real ones), each replaced with its
        probability (the reference's zero rule for a document whose words all score the same)
        by a word drawn from the vocabulary distribution. One decision per source in row order,
        then one word per source (used where replaced), as ``[B, K]`` and ``[B * K]`` draws.
        Returns the ids ``[B, K]`` and the replaced 0/1 ``[B, K]``."""
        picked = ids.gather(1, sources) * valid.long()
        if self.noise_p <= 0 or len(self.candidates) == 0 or picked.numel() == 0:
            return picked, torch.zeros_like(valid, dtype=torch.float32)
        probability = replacement_probability(ids, document, self.idf, self.noise_p, flat="zero")
        replace = torch.bernoulli(probability.gather(1, sources) * valid)
        draws = torch.multinomial(self.weights, picked.numel(), replacement=True).view_as(picked)
        return torch.where(replace > 0, self.candidates[draws], picked), replace
