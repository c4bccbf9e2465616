"""Synthetic multi-aspect reviews with planted gold rationales (a generated stand-in for BeerAdvocate).

The data is a pure function of ``(config, split)``: nothing is downloaded or cached on disk. The
same review texts serve every subset; a subset only chooses which aspect's rating is the label
and which aspect's sentences are the gold rationale, exactly like the five scores of a beer
review. See ``datasets/synthetic.md`` for the generative process and :func:`generate_reviews` for the
review-level output (all five scores, labels, described polarities and aspect spans), which
analyses and tests can use directly.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

import numpy as np

from ratbench.config import ConfigValueError
from ratbench.data.adapter import DataConfig, DatasetAdapter
from ratbench.errors import RatbenchError
from ratbench.registry import register_dataset
from ratbench.types import SPLITS, Example, Split

from ._synthetic_lexicon import (
    ASPECT_NOUNS,
    BOOSTERS,
    DESCRIPTOR_SLOT,
    DOWNTONERS,
    FILLER_TEMPLATES,
    GRAMMAR,
    LEXICON,
    MILD_BOOSTERS,
    MODIFIERS,
    NEG_PREFIX_FOR_NEG,
    NEG_PREFIX_FOR_POS,
    NEGATORS,
    NEUTRAL_TEMPLATES,
    NOUN_PHRASES,
    SENTIMENT_TEMPLATES,
    SHARED_ADJECTIVES,
    SPECIFIC_ADJECTIVES,
)

# --------------------------------------------------------------------------------------------
# Aspects and generator constants (the words and templates: ``_synthetic_lexicon``)
# --------------------------------------------------------------------------------------------

ASPECTS: tuple[str, ...] = ("appearance", "aroma", "palate", "taste", "overall")
"""Every review rates these five aspects (the order of the five beer scores)."""
ANNOTATED: tuple[str, ...] = ASPECTS[:3]
"""The aspects that are subsets (label and gold rationale); taste and overall are extra aspects."""

MAX_SENTENCE_LEN = 16
"""Upper bound on the tokens of any generated sentence (longer draws are redrawn)."""
_MIN_SENTENCE_LEN = 4
_P_OMIT_EXTRA = 0.1  # probability that the taste / the overall aspect is not described at all
_P_EXTRA_SENTIMENT = 0.5  # probability that an aspect's 2nd/3rd sentence carries sentiment
_P_SPECIFIC = 0.35  # probability of an aspect-specific adjective where one fits
_STRENGTH_CUTS = (0.4, 1.1)  # |score| below 0.4: weak wording; below 1.1: moderate; else strong
_LEN_BETA_A = 2.0  # shape a of the Beta law of the target length (b follows from mean_review_len)


def _split_key(split: str) -> int:
    """A fixed 64-bit integer per split (sha256; never Python's salted ``hash``)."""
    return int.from_bytes(hashlib.sha256(f"ratbench/synthetic/{split}".encode()).digest()[:8], "little")


# --------------------------------------------------------------------------------------------
# Random stream and text generation
# --------------------------------------------------------------------------------------------


class _Stream:
    """Uniform draws from a numpy Generator, buffered (per-token numpy calls would be slow)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._buf: list[float] = []
        self._i = 0

    def u(self) -> float:
        if self._i >= len(self._buf):
            self._buf = self._rng.random(8192).tolist()
            self._i = 0
        self._i += 1
        return self._buf[self._i - 1]

    def pick(self, seq: Sequence):
        return seq[int(self.u() * len(seq))]

    def shuffle(self, items: list) -> None:
        for i in range(len(items) - 1, 0, -1):
            j = int(self.u() * (i + 1))
            items[i], items[j] = items[j], items[i]


def sentiment_polarity(tokens: Sequence[str]) -> int:
    """Sum of the polarities of the sentiment words in ``tokens``, negation-aware.

    A sentiment word (:data:`LEXICON`) counts +1 or -1; its sign flips when a negator
    ("not", "hardly") precedes it, possibly with up to two modifiers in between
    ("not bad" -> +1, "not very good" -> -1). Filler sentences contribute 0.
    """
    total = 0
    for j, tok in enumerate(tokens):
        pol = LEXICON.get(tok)
        if pol is None:
            continue
        k = j - 1
        while k >= 0 and j - k <= 2 and tokens[k] in MODIFIERS:
            k -= 1
        if k >= 0 and tokens[k] in NEGATORS:
            pol = -pol
        total += pol
    return total


def strength_level(score: float) -> int:
    """Wording strength of an aspect with latent score ``score``: 1 weak, 2 moderate, 3 strong."""
    mag = abs(score)
    return 1 if mag < _STRENGTH_CUTS[0] else 2 if mag < _STRENGTH_CUTS[1] else 3


def _sentiment(st: _Stream, aspect: str, pol: int, level: int, attributive: bool) -> list[str]:
    """A sentiment phrase of polarity ``pol`` (1/0) and strength ``level`` for ``aspect``."""
    shared = SHARED_ADJECTIVES[pol]
    specific = SPECIFIC_ADJECTIVES[aspect][pol]
    r = st.u()
    if level == 3:
        if r < 0.5:
            return [st.pick(shared[3])]
        if r < 0.8:
            adj = st.pick(specific) if st.u() < _P_SPECIFIC else st.pick(shared[2])
            return [*st.pick(BOOSTERS).split(" "), adj]
        return ["absolutely", st.pick(shared[3])]
    if level == 2:
        if r < 0.45:
            return [st.pick(shared[2])]
        if r < 0.7:
            return [st.pick(specific)]
        return [*st.pick(MILD_BOOSTERS).split(" "), st.pick(shared[1])]
    if r < 0.45:
        return [st.pick(shared[1])]
    if r < 0.7 or attributive:
        adj = st.pick(specific) if st.u() < _P_SPECIFIC else st.pick(shared[2])
        return [*st.pick(DOWNTONERS).split(" "), adj]
    # negated opposite polarity: "not bad" (weak positive), "not very good" (weak negative)
    if pol == 1:
        return [*st.pick(NEG_PREFIX_FOR_POS).split(" "), st.pick(SHARED_ADJECTIVES[0][2] + SHARED_ADJECTIVES[0][1])]
    return [*st.pick(NEG_PREFIX_FOR_NEG).split(" "), st.pick(SHARED_ADJECTIVES[1][1] + SHARED_ADJECTIVES[1][2])]


@functools.cache
def _split(template: str) -> tuple[str, ...]:
    return tuple(template.split(" "))


Fill = dict[str, list[str] | Callable[[], list[str]]]
"""Values of a template's slots: tokens, or a function drawing them each time the slot is expanded."""


def _expand(st: _Stream, template: str, fill: Fill, out: list[str]) -> None:
    for tok in _split(template):
        if tok[0] != "{":
            out.append(tok)
            continue
        slot = tok[1:-1]
        value = fill.get(slot)
        if value is None:
            _expand(st, st.pick(GRAMMAR[slot]), fill, out)
        elif callable(value):
            out.extend(value())
        else:
            out.extend(value)


def _aspect_sentence(st: _Stream, aspect: str, pol: int, level: int, sentiment: bool, template: str) -> list[str]:
    """One sentence about ``aspect`` from ``template`` (redrawn if it is too long or short)."""
    nouns = NOUN_PHRASES[aspect]

    def lvl() -> int:  # the wording strength jitters by one step for 25% of the phrases
        r = st.u()
        return max(1, level - 1) if r < 0.125 else min(3, level + 1) if r < 0.25 else level

    fill: Fill = {
        "p": lambda: _sentiment(st, aspect, pol, lvl(), False),
        "p2": lambda: _sentiment(st, aspect, pol, lvl(), False),
        "a": lambda: _sentiment(st, aspect, pol, lvl(), True),
        "d": lambda: _expand_list(st, "{" + DESCRIPTOR_SLOT[aspect] + "}"),
    }
    for _ in range(50):
        noun = st.pick(nouns)
        fill["n"] = noun.split(" ")
        fill["n2"] = st.pick([n for n in nouns if n != noun]).split(" ")
        out: list[str] = []
        _expand(st, template, fill, out)
        if _MIN_SENTENCE_LEN <= len(out) <= MAX_SENTENCE_LEN:
            return out
        template = st.pick((SENTIMENT_TEMPLATES if sentiment else NEUTRAL_TEMPLATES)[aspect])
    raise AssertionError("unreachable: no template fits MAX_SENTENCE_LEN")  # pragma: no cover


def _expand_list(st: _Stream, template: str) -> list[str]:
    out: list[str] = []
    _expand(st, template, {}, out)
    return out


def _filler(st: _Stream, template: str) -> list[str]:
    for _ in range(50):
        out = _expand_list(st, template)
        if len(out) <= MAX_SENTENCE_LEN:
            return out
    raise AssertionError("unreachable: filler too long")  # pragma: no cover


@dataclasses.dataclass(frozen=True)
class Review:
    """One generated review with everything that was planted in it.

    Attributes:
        tokens: the review text.
        scores: the latent score of each aspect of :data:`ASPECTS`.
        labels: ``int(score > 0)`` per aspect.
        described: the polarity (0/1) the text actually expresses per aspect; differs from
            ``labels`` where label noise struck (and means nothing for an omitted aspect).
        spans: ``(start, end)`` token span (end exclusive) of each aspect's sentences, or None
            where the aspect is not described (taste / overall only).
    """

    tokens: tuple[str, ...]
    scores: tuple[float, ...]
    labels: tuple[int, ...]
    described: tuple[int, ...]
    spans: tuple[tuple[int, int] | None, ...]


def _sentence_counts_probs(frac: float) -> tuple[float, float]:
    """Cumulative P(1 sentence), P(<=2 sentences) for an aspect; longer reviews say more."""
    p1 = 0.6 - 0.45 * frac
    p2 = p1 + 0.35 + 0.1 * frac
    return p1, p2


def _review(st: _Stream, cfg: Synthetic.Config, scores: np.ndarray, described: list[int], target: int) -> Review:
    lo, hi = cfg.min_review_len, cfg.max_review_len
    frac = 0.0 if hi == lo else (target - lo) / (hi - lo)
    c1, c2 = _sentence_counts_probs(frac)
    blocks: dict[int, list[list[str]]] = {}
    for a, aspect in enumerate(ASPECTS):
        if a >= len(ANNOTATED) and st.u() < _P_OMIT_EXTRA:
            continue
        r = st.u()
        k = 1 if r < c1 else 2 if r < c2 else 3
        level = strength_level(float(scores[a]))
        sentences = []
        used: set[str] = set()  # no template twice within an aspect
        for i in range(k):
            with_sentiment = i == 0 or st.u() < _P_EXTRA_SENTIMENT
            pool = (SENTIMENT_TEMPLATES if with_sentiment else NEUTRAL_TEMPLATES)[aspect]
            template = st.pick(pool)
            while template in used:
                template = st.pick(pool)
            used.add(template)
            sentences.append(_aspect_sentence(st, aspect, described[a], level, with_sentiment, template))
        blocks[a] = sentences
    # Make the aspect sentences fit the target length: drop 2nd/3rd sentences (longest block
    # first), then the extra aspects.
    total = sum(len(s) for b in blocks.values() for s in b)
    while total > target:
        a = max(blocks, key=lambda x: (len(blocks[x]), -x))
        if len(blocks[a]) > 1:
            total -= len(blocks[a].pop())
        else:
            extra = [x for x in blocks if x >= len(ANNOTATED)]
            if not extra:
                break
            total -= sum(len(s) for s in blocks.pop(max(extra)))
    # Filler sentences, templates without replacement (cycled if exhausted), up to the target.
    units: list[tuple[int, list[str]]] = [(a, [t for s in b for t in s]) for a, b in blocks.items()]
    order = list(range(len(FILLER_TEMPLATES)))
    st.shuffle(order)
    pos = 0
    misses = 0
    while total < target and misses < 20:
        sentence = _filler(st, FILLER_TEMPLATES[order[pos % len(order)]])
        pos += 1
        n = len(sentence)
        if total + n > hi:
            misses += 1
            continue
        # stop at the sentence boundary nearest the target (but never below the minimum)
        if total + n > target and total + n / 2 >= target and total >= lo:
            break
        units.append((-1, sentence))
        total += n
    st.shuffle(units)
    tokens: list[str] = []
    spans: list[tuple[int, int] | None] = [None] * len(ASPECTS)
    for a, unit in units:
        if a >= 0:
            spans[a] = (len(tokens), len(tokens) + len(unit))
        tokens.extend(unit)
    labels = tuple(int(s > 0) for s in scores)
    return Review(tuple(tokens), tuple(float(s) for s in scores), labels, tuple(described), tuple(spans))


def generate_reviews(config: Synthetic.Config, split: Split) -> tuple[Review, ...]:
    """All reviews of ``split`` for ``config`` (a pure function; memoized in memory)."""
    if split not in SPLITS:
        raise RatbenchError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return _generate(config, split)


@functools.lru_cache(maxsize=6)
def _generate(cfg: Synthetic.Config, split: Split) -> tuple[Review, ...]:
    n = {"train": cfg.n_train, "dev": cfg.n_dev, "test": cfg.n_test}[split]
    latent_seq, noise_seq, text_seq = np.random.SeedSequence([cfg.generator_seed, _split_key(split)]).spawn(3)
    latent_rng = np.random.default_rng(latent_seq)
    k = len(ASPECTS)
    if split == "train":
        # antithetic pairs (z, -z): every aspect is exactly balanced and the law of z is unchanged
        half = latent_rng.standard_normal((-(-n // 2), k + 1))
        z = np.concatenate([half, -half])[:n]
        z = z[latent_rng.permutation(n)]
    else:
        z = latent_rng.standard_normal((n, k + 1))
    rho = cfg.correlation
    scores = rho * z[:, :1] + math.sqrt(max(0.0, 1.0 - rho * rho)) * z[:, 1:]
    lo, hi, mean = cfg.min_review_len, cfg.max_review_len, cfg.mean_review_len
    if hi > lo:
        m = (mean - lo) / (hi - lo)
        b = _LEN_BETA_A * (1 - m) / m
        targets = lo + np.rint((hi - lo) * latent_rng.beta(_LEN_BETA_A, b, size=n)).astype(int)
    else:
        targets = np.full(n, lo)
    noise = np.random.default_rng(noise_seq).random((n, k)) < cfg.label_noise
    described = ((scores > 0) ^ noise).astype(int).tolist()
    st = _Stream(np.random.default_rng(text_seq))
    return tuple(_review(st, cfg, scores[i], described[i], int(targets[i])) for i in range(n))


# --------------------------------------------------------------------------------------------
# The adapter
# --------------------------------------------------------------------------------------------


@register_dataset("synthetic")
class Synthetic(DatasetAdapter["Synthetic.Config"]):
    """Synthetic multi-aspect reviews with planted gold rationales (no downloads).

    A deterministic stand-in for the BeerAdvocate data of Lei et al. (2016): five aspect ratings
    per review, of which appearance, aroma and palate are the subsets; a subset picks the aspect
    whose binary rating is the label and whose sentences are the gold rationale. The generative
    process (ratings from a shared latent quality, described sentiment with label noise, aspect
    sentences, fillers, the gold span) is in ``datasets/synthetic.md``; ``ratbench info synthetic``
    lists the settings. Example ids are ``f"{split}-{i:06d}"``.
    """

    description = "Synthetic multi-aspect beer-style reviews with planted gold rationales (generated, no download)"
    subsets = ("appearance", "aroma", "palate")
    version = "1"
    # The demo grid must finish within minutes on a 2-core CPU.
    presets: ClassVar[dict[str, dict[str, dict[str, Any]]]] = {
        "demo": {"*": {"n_train": 2000, "n_dev": 500, "n_test": 500}}
    }

    @dataclasses.dataclass(frozen=True)
    class Config(DataConfig):
        """Generator parameters of the synthetic reviews (they enter the data's identity)."""

        bounds: ClassVar[dict[str, str]] = {
            "n_train": "[0, inf)",
            "n_dev": "[0, inf)",
            "n_test": "[0, inf)",
            "generator_seed": "[0, inf)",
            "correlation": "[0, 1]",
            "label_noise": "[0, 1]",
            "min_review_len": "[60, inf)",
        }

        n_train: int = 4000
        """Number of training reviews (exactly balanced labels for every subset)."""
        n_dev: int = 1000
        """Number of development reviews (i.i.d., not balanced, no gold rationale)."""
        n_test: int = 500
        """Number of test reviews (i.i.d., with the gold rationale of the subset's aspect)."""
        correlation: float = 0.6
        """Loading rho in [0, 1] of each aspect score on the shared latent quality:
        ``score = rho * q + sqrt(1 - rho**2) * eps``; pairwise score correlation is rho**2."""
        label_noise: float = 0.05
        """Probability in [0, 1] that an aspect's described sentiment contradicts its label."""
        min_review_len: int = 80
        """Minimum review length in tokens (at least 60)."""
        max_review_len: int = 250
        """Maximum review length in tokens (at least ``min_review_len + 20``). Not to be confused
        with ``max_len``, the truncation applied later by the harness."""
        mean_review_len: int = 140
        """Approximate mean review length in tokens (strictly between the two bounds)."""
        generator_seed: int = 13
        """Seed of the data generator (>= 0); the data is a pure function of the config and does
        not depend on the run seed."""

        def __post_init__(self) -> None:
            super().__post_init__()  # the bounds
            if self.max_review_len < self.min_review_len + 20:
                raise ConfigValueError(
                    "max_review_len",
                    f"must be >= min_review_len + 20 = {self.min_review_len + 20}, got {self.max_review_len}",
                )
            if not self.min_review_len < self.mean_review_len < self.max_review_len:
                raise ConfigValueError(
                    "mean_review_len",
                    f"must lie strictly between min_review_len ({self.min_review_len}) and max_review_len "
                    f"({self.max_review_len}), got {self.mean_review_len}",
                )

    def read(self, split: Split) -> Iterator[Example]:
        """Yield the reviews of ``split`` labelled (and, on ``test``, annotated) for the subset."""
        if self.subset not in self.subsets:
            raise RatbenchError(f"unknown synthetic subset {self.subset!r}; available: {', '.join(self.subsets)}")
        aspect = ASPECTS.index(self.subset)
        for i, review in enumerate(generate_reviews(self.config, split)):
            rationale = None
            if split == "test":
                span = review.spans[aspect]
                assert span is not None, "an annotated aspect is always described"
                start, end = span
                n = len(review.tokens)
                rationale = (0,) * start + (1,) * (end - start) + (0,) * (n - end)
            yield Example(f"{split}-{i:06d}", review.tokens, review.labels[aspect], rationale)


__all__ = [
    "ANNOTATED",
    "ASPECTS",
    "ASPECT_NOUNS",
    "LEXICON",
    "MAX_SENTENCE_LEN",
    "NEGATORS",
    "Review",
    "Synthetic",
    "generate_reviews",
    "sentiment_polarity",
    "strength_level",
]
