"""The synthetic multi-aspect review benchmark (datasets/synthetic.py): determinism, splits,
lengths, planted gold rationales, label structure and noise."""

from __future__ import annotations

import importlib
import math
import re

import numpy as np
import pytest

from ratbench.errors import RatbenchError
from ratbench.registry import DATASETS
from ratbench.types import Example

# the plugin folder datasets/ is mounted as the package ratbench._plugins.datasets
syn = importlib.import_module("ratbench._plugins.datasets.synthetic")
lexicon = importlib.import_module("ratbench._plugins.datasets._synthetic_lexicon")
Synthetic = syn.Synthetic
SMALL = {"n_train": 300, "n_dev": 100, "n_test": 200}


def _cfg(**kw) -> Synthetic.Config:
    return Synthetic.Config(**{**SMALL, **kw})


def _read(subset: str, split: str, **kw) -> list[Example]:
    return list(Synthetic(subset, _cfg(**kw)).read(split))


def _gold_span(ex: Example) -> tuple[int, int]:
    idx = [i for i, g in enumerate(ex.rationale) if g]
    assert idx, f"{ex.id}: empty gold rationale"
    assert idx == list(range(idx[0], idx[-1] + 1)), f"{ex.id}: gold is not one contiguous span"
    return idx[0], idx[-1] + 1


def _sentences(tokens) -> list[list[str]]:
    out, cur = [], []
    for tok in tokens:
        cur.append(tok)
        if tok == ".":
            out.append(cur)
            cur = []
    assert not cur, "text does not end with a full stop"
    return out


def _phi(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def test_plugin_is_discovered_and_described() -> None:
    cls = DATASETS.get("synthetic")
    assert cls is Synthetic and cls.name == "synthetic"
    assert cls.subsets == ("appearance", "aroma", "palate") and cls.num_classes == 2
    info = DATASETS.check("synthetic")
    assert info.module == "ratbench._plugins.datasets.synthetic"
    assert info.meta["subsets"] == ("appearance", "aroma", "palate")
    assert info.meta["description"]
    # the config is a typed DataConfig: string values are parsed, unknown keys rejected
    cfg = Synthetic.Config.resolve({"correlation": "0.3", "n_train": "10"})
    assert cfg.correlation == 0.3 and cfg.n_train == 10 and cfg.max_len == 256
    with pytest.raises(RatbenchError):
        Synthetic.Config.resolve({"max_length": 10})


def test_deterministic_and_seeded() -> None:
    first = _read("aroma", "test")
    syn._generate.cache_clear()  # regenerate rather than reuse the in-memory cache
    assert _read("aroma", "test") == first
    other = _read("aroma", "test", generator_seed=14)
    assert [e.tokens for e in other] != [e.tokens for e in first]
    assert sum(a.tokens == b.tokens for a, b in zip(first, other, strict=True)) == 0
    # fields that are not generator parameters (embeddings, truncation) do not touch the data
    assert _read("aroma", "test", embedding_seed=5, max_len=300) == first


def test_ids_and_token_format() -> None:
    for split, n in (("train", 300), ("dev", 100), ("test", 200)):
        examples = _read("palate", split)
        assert [e.id for e in examples] == [f"{split}-{i:06d}" for i in range(n)]
        for e in examples:
            assert isinstance(e.tokens, tuple) and e.label in (0, 1) and e.tokens[-1] == "."
            assert all(re.fullmatch(r"[a-z0-9]+|[.,]", t) for t in e.tokens), e.tokens


def test_splits_are_disjoint_streams() -> None:
    texts = {split: {e.tokens for e in _read("appearance", split)} for split in ("train", "dev", "test")}
    assert len(texts["train"]) == 300 and len(texts["dev"]) == 100 and len(texts["test"]) == 200
    assert not texts["train"] & texts["dev"]
    assert not texts["train"] & texts["test"]
    assert not texts["dev"] & texts["test"]


def test_subsets_share_the_texts_but_not_the_labels() -> None:
    by_subset = {s: _read(s, "test") for s in Synthetic.subsets}
    tokens = [[e.tokens for e in exs] for exs in by_subset.values()]
    assert tokens[0] == tokens[1] == tokens[2]
    labels = {s: [e.label for e in exs] for s, exs in by_subset.items()}
    assert labels["appearance"] != labels["aroma"] != labels["palate"]
    gold = {s: [e.rationale for e in exs] for s, exs in by_subset.items()}
    assert all(a != b for a, b in zip(gold["appearance"], gold["aroma"], strict=True))


@pytest.mark.parametrize("bounds", [(80, 250, 140), (100, 160, 120), (60, 90, 70)])
def test_lengths_within_bounds(bounds: tuple[int, int, int]) -> None:
    lo, hi, mean = bounds
    lengths = np.array(
        [
            len(e.tokens)
            for e in _read("appearance", "train", min_review_len=lo, max_review_len=hi, mean_review_len=mean)
        ]
    )
    assert lengths.min() >= lo and lengths.max() <= hi
    assert abs(lengths.mean() - mean) < 0.1 * (hi - lo) + 3
    assert lengths.std() > 0.1 * (hi - lo)  # lengths actually vary
    for review in syn.generate_reviews(_cfg(min_review_len=lo, max_review_len=hi, mean_review_len=mean), "train"):
        assert all(len(s) <= syn.MAX_SENTENCE_LEN for s in _sentences(review.tokens))


def test_gold_only_on_test() -> None:
    assert all(e.rationale is None for e in _read("aroma", "train"))
    assert all(e.rationale is None for e in _read("aroma", "dev"))
    for e in _read("aroma", "test"):
        assert e.rationale is not None and len(e.rationale) == len(e.tokens)
        assert set(e.rationale) == {0, 1}


@pytest.mark.parametrize("subset", Synthetic.subsets)
def test_gold_is_exactly_the_labelled_aspects_sentences(subset: str) -> None:
    own = syn.ASPECT_NOUNS[subset]
    others = set().union(*(nouns for a, nouns in syn.ASPECT_NOUNS.items() if a != subset))
    for e in _read(subset, "test"):
        start, end = _gold_span(e)
        assert start == 0 or e.tokens[start - 1] == "."  # starts at a sentence boundary
        assert e.tokens[end - 1] == "."  # the final full stop is part of the gold
        for sentence in _sentences(e.tokens[start:end]):
            assert own & set(sentence), sentence
            assert not others & set(sentence), sentence
        outside = e.tokens[:start] + e.tokens[end:]
        assert not own & set(outside), "the labelled aspect is also described outside the gold"


def test_fillers_carry_no_aspect_noun_and_no_sentiment() -> None:
    all_nouns = set().union(*syn.ASPECT_NOUNS.values())
    signal_words = all_nouns | set(syn.LEXICON) | syn.NEGATORS
    seen_extra = 0
    for review in syn.generate_reviews(_cfg(), "dev"):
        in_aspect = np.zeros(len(review.tokens), bool)
        for a, span in enumerate(review.spans):
            if span is None:
                assert a >= len(Synthetic.subsets)  # only taste / overall may be omitted
                continue
            in_aspect[span[0] : span[1]] = True
            seen_extra += a >= len(Synthetic.subsets)
        filler = {t for t, inside in zip(review.tokens, in_aspect, strict=True) if not inside}
        assert not filler & signal_words, filler & signal_words
    assert seen_extra > 100  # taste and overall are usually described too


@pytest.mark.parametrize("subset", Synthetic.subsets)
def test_gold_sparsity(subset: str) -> None:
    examples = _read(subset, "test")
    sparsity = np.mean([sum(e.rationale) / len(e.tokens) for e in examples])
    assert 0.08 < sparsity < 0.2


def test_train_is_balanced_for_every_subset() -> None:
    for subset in Synthetic.subsets:
        assert sum(e.label for e in _read(subset, "train")) == 150
        assert abs(sum(e.label for e in _read(subset, "train", n_train=301)) - 150.5) <= 0.5
    # train order is shuffled: the labels do not simply alternate
    labels = [e.label for e in _read("appearance", "train")]
    assert labels[0::2] != [1 - x for x in labels[1::2]]


def test_label_correlation_follows_the_latent_quality() -> None:
    def phi(rho: float) -> float:
        cfg = _cfg(n_train=3000, correlation=rho)
        app = np.array([e.label for e in Synthetic("appearance", cfg).read("train")])
        aroma = np.array([e.label for e in Synthetic("aroma", cfg).read("train")])
        return _phi(app, aroma)

    low, high = phi(0.0), phi(0.9)
    assert abs(low) < 0.07
    assert abs(high - 2 / math.pi * math.asin(0.9**2)) < 0.07  # sign correlation of scores with r = rho^2
    assert high > low + 0.4


def test_labels_follow_the_latent_scores() -> None:
    for review in syn.generate_reviews(_cfg(), "dev"):
        assert review.labels == tuple(int(s > 0) for s in review.scores)


def test_no_label_noise_means_described_sentiment_matches_the_label() -> None:
    for subset in Synthetic.subsets:
        for e in _read(subset, "test", label_noise=0.0):
            start, end = _gold_span(e)
            polarity = syn.sentiment_polarity(e.tokens[start:end])
            assert polarity != 0 and (polarity > 0) == bool(e.label), e.tokens[start:end]
    # the extra aspects too
    for review in syn.generate_reviews(_cfg(label_noise=0.0), "dev"):
        assert review.described == review.labels
        for a, span in enumerate(review.spans):
            if span is not None:
                assert (syn.sentiment_polarity(review.tokens[span[0] : span[1]]) > 0) == bool(review.labels[a])


def test_label_noise_rate() -> None:
    flips = []
    for subset in Synthetic.subsets:
        for e in _read(subset, "test", n_test=1500, label_noise=0.3):
            start, end = _gold_span(e)
            flips.append((syn.sentiment_polarity(e.tokens[start:end]) > 0) != bool(e.label))
    assert abs(np.mean(flips) - 0.3) < 0.04


def test_sentiment_polarity_handles_negation() -> None:
    def pol(text: str) -> int:
        return syn.sentiment_polarity(text.split(" "))

    assert pol("the head is not bad .") == 1
    assert pol("the head is not very good .") == -1
    assert pol("the smell is hardly impressive .") == -1
    assert pol("the body is great and smooth .") == 2
    assert pol("poured into a pint glass .") == 0


def test_wording_strength_follows_the_score() -> None:
    strong = set(lexicon.SHARED_ADJECTIVES[0][3] + lexicon.SHARED_ADJECTIVES[1][3]) | {
        "absolutely",
        "extremely",
        "incredibly",
        "truly",
    }
    by_level: dict[int, list[bool]] = {1: [], 3: []}
    for review in syn.generate_reviews(_cfg(label_noise=0.0), "dev") + syn.generate_reviews(_cfg(), "test"):
        for a in range(len(Synthetic.subsets)):
            level = syn.strength_level(review.scores[a])
            if level in by_level:
                start, end = review.spans[a]
                by_level[level].append(bool(strong & set(review.tokens[start:end])))
    assert not any(by_level[1])  # weak scores never get strong wording
    assert np.mean(by_level[3]) > 0.5


@pytest.mark.parametrize(
    "bad",
    [
        {"correlation": 1.5},
        {"label_noise": -0.1},
        {"n_train": -1},
        {"min_review_len": 30},
        {"min_review_len": 200, "max_review_len": 210},
        {"mean_review_len": 300},
        {"generator_seed": -3},
    ],
)
def test_invalid_config_is_rejected(bad: dict) -> None:
    with pytest.raises(RatbenchError):
        _cfg(**bad)


def test_unknown_subset_or_split_is_rejected() -> None:
    with pytest.raises(RatbenchError, match="subset"):
        list(Synthetic("taste", _cfg()).read("train"))
    with pytest.raises(RatbenchError, match="split"):
        list(Synthetic("aroma", _cfg()).read("validation"))


def test_empty_split() -> None:
    assert _read("aroma", "train", n_train=0) == []
