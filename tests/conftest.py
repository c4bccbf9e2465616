"""Shared fixtures: a tiny in-test dataset, paths to the shared data, and a CLI runner."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from ratbench.data.adapter import DataConfig, DatasetAdapter
from ratbench.data.batching import train_batches
from ratbench.registry import DATASETS, METHODS
from ratbench.types import Batch, DataInfo, EncodedExample, Example

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

POSITIVE = ("great", "superb", "lovely")
NEGATIVE = ("awful", "poor", "bland")
FILLER = ("the", "beer", "was", "poured", "into", "a", "glass", "and", "it", "had", "some", "foam")


class Toy(DatasetAdapter):
    """Tiny planted-rationale data: the label is the polarity of the one or two sentiment words,
    which are the gold rationale; the rest is filler. Used by the tests only."""

    subsets = ("main",)
    description = "test-only toy data"

    @dataclasses.dataclass(frozen=True)
    class Config(DataConfig):
        n: int = 64
        embedding_dim: int = 16
        max_len: int = 16  # the texts have 6-13 tokens: the padded (paper) layout stays cheap

    def read(self, split: str) -> Iterator[Example]:
        rng = np.random.default_rng({"train": 1, "dev": 2, "test": 3}[split])
        for i in range(self.config.n):
            label = i % 2
            length = int(rng.integers(6, 14))
            tokens = [FILLER[j] for j in rng.integers(0, len(FILLER), size=length)]
            gold = [0] * length
            words = POSITIVE if label else NEGATIVE
            for pos in rng.choice(length, size=int(rng.integers(1, 3)), replace=False):
                tokens[pos] = words[int(rng.integers(0, len(words)))]
                gold[pos] = 1
            yield Example(f"{split}-{i}", tuple(tokens), label, tuple(gold) if split == "test" else None)


class QueryToy(Toy):
    """Toy with a query: "is it good" or "is it bad"; label 1 when the document's sentiment is
    the one asked about. The document alone says nothing about the label."""

    def read(self, split: str) -> Iterator[Example]:
        for i, example in enumerate(super().read(split)):
            asks_good = (i // 2) % 2 == 0
            positive = example.label == 1
            query = ("is", "it", "good" if asks_good else "bad")
            yield dataclasses.replace(example, label=int(positive == asks_good), query=query)


@pytest.fixture
def query_toy_dataset() -> Iterator[type[QueryToy]]:
    """Register ``QueryToy`` as dataset ``querytoy`` for the duration of a test."""
    DATASETS.register("querytoy")(QueryToy)
    yield QueryToy
    DATASETS.unregister("querytoy")


TINY_VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    *FILLER,
    *POSITIVE[:1],
    *POSITIVE[2:],
    *NEGATIVE,
    "super",
    "##b",
    "un",
    "##believ",
    "##able",
    "is",
    "good",
    "bad",
]  # fmt: skip  ("superb" is two pieces on purpose)


@pytest.fixture(scope="session")
def tiny_hf_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a word-piece tokenizer over the toy words and a 2-layer, 32-wide BERT,
    built here (no download): what ``--set data.encoder=hf:<folder>`` loads."""
    transformers = pytest.importorskip("transformers")
    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = transformers.BertTokenizerFast(vocab={word: i for i, word in enumerate(TINY_VOCAB)})
    tokenizer.save_pretrained(folder)
    config = transformers.BertConfig(
        vocab_size=len(TINY_VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(autouse=True, scope="session")
def _private_hash_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Content hashes are cached in a folder of the test session, never in ~/.cache."""
    old = os.environ.get("RATBENCH_CACHE_DIR")
    os.environ["RATBENCH_CACHE_DIR"] = str(tmp_path_factory.mktemp("ratbench-cache"))
    yield
    if old is None:
        del os.environ["RATBENCH_CACHE_DIR"]
    else:
        os.environ["RATBENCH_CACHE_DIR"] = old


@pytest.fixture
def toy_dataset() -> Iterator[type[Toy]]:
    """Register ``Toy`` as dataset ``toy`` for the duration of a test."""
    DATASETS.register("toy")(Toy)
    yield Toy
    DATASETS.unregister("toy")


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data``; skipped outside CI when it is missing, an error in CI."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{SHARED_DATA} is missing in CI")
        pytest.skip(f"{SHARED_DATA} not found")
    return SHARED_DATA


def tiny_examples(n: int = 8, vocab: int = 20, seed: int = 1) -> list[EncodedExample]:
    """``n`` encoded examples of 4 to 9 random ids in ``1..vocab``, alternating labels."""
    rng = np.random.default_rng(seed)
    return [
        EncodedExample(str(i), rng.integers(1, vocab + 1, size=int(rng.integers(4, 10))), i % 2, None) for i in range(n)
    ]


def tiny_batches(examples: list[EncodedExample], size: int = 4) -> list[Batch]:
    """The examples in padded batches (lengths differ, so batches contain padding)."""
    return list(train_batches(examples, size, np.random.default_rng(0)))


def tiny_method(name: str, train: tuple[EncodedExample, ...] = (), **config: object):
    """A registered method over a 20-word random 8-d vocabulary, hidden size 8, seeded."""
    vectors = np.random.default_rng(0).normal(size=(21, 8)).astype(np.float32)
    vectors[0] = 0
    info = DataInfo(num_classes=2, embeddings=vectors, train=tuple(train))
    torch.manual_seed(0)
    cls = METHODS.get(name)
    return cls(cls.Config(**{"hidden_dim": 8, "batch_size": 4, "lr": 1e-2, **config}), info, torch.device("cpu"))


def fake_metrics(spec: object = None, f1: float = 50.0, **fields: object) -> dict:
    """A minimal valid ``metrics.json`` (of ``spec`` when given), for tests that need finished
    cells without training them."""
    ids = {"cell_id": "m/d.s/c-x/seed1", "config_id": "c-x", "method": "m", "dataset": "d", "subset": "s", "seed": 1}
    if spec is not None:
        ids = {key: getattr(spec, key) for key in ids}
    mode = {"S": 10.0, "Acc": 80.0, "P": f1, "R": f1, "F1": f1}
    return {"status": "ok", "kind": "select_predict", **ids, "modes": {"reference": mode, "clean": mode}, **fields}


def write_cell(
    root: Path,
    method: str,
    target: str,
    seed: int,
    f1: float,
    method_changes: dict | None = None,
    data_changes: dict | None = None,
    *,
    preset: str = "paper",
    limit: int | None = None,
    precision: str = "fp32",
    threads: int = 1,
) -> Path:
    """A finished cell of ``method`` on ``target`` (dataset.subset), as a run writes it but
    without training: ``spec.json`` with its variant (``preset``, ``--limit``) and pipeline
    (``--precision``, ``--cpu-threads``), and a ``metrics.json`` whose P = R = F1 = ``f1``
    (pieces: ``f1 - 1``), Acc = 80 + seed (None for a post-hoc method) and acc_gold_rationale =
    ``f1``. Returns the cell's folder."""
    from ratbench.execution import cells, store
    from ratbench.execution.variants import make_variant
    from ratbench.registry import DATASETS, METHODS
    from ratbench.versions import EVAL_VERSION, pipeline

    dataset, _, subset = target.partition(".")
    method_cls = METHODS.get(method)
    variant = make_variant(preset, method_changes or {}, data_changes or {}, limit)
    marker, plain = sorted((data_changes or {}).items()), preset == "paper" and limit is None
    spec = cells.CellSpec(
        method=method,
        method_version=method_cls.version,
        # the variant is not in the identity: the marker gives each variant its own config id
        method_config={**(method_changes or {}), "marker": repr(marker if plain else [preset, marker, limit])},
        dataset=dataset,
        dataset_version=DATASETS.get(dataset).version,
        subset=subset,
        dataset_config={},
        dataset_fingerprint={},
        eval_version=EVAL_VERSION,
        limit=limit,
        seed=seed,
        pipeline=pipeline(precision, threads),
        variant=variant,
    )
    folder = store.cell_dir(root, spec)
    folder.mkdir(parents=True)
    store.atomic_write_json(folder / store.SPEC_FILE, spec.to_json())
    post_hoc = method_cls.kind == "post_hoc"
    mode = {"S": 15.0 + seed / 10, "Acc": None if post_hoc else 80.0 + seed, "P": f1, "R": f1, "F1": f1}
    mode |= {f"piece_{key}": mode[key] - 1 for key in ("S", "P", "R", "F1")} | {"acc_gold_rationale": f1}
    metrics = {
        "status": "ok",
        "kind": method_cls.kind,
        **{key: getattr(spec, key) for key in ("cell_id", "config_id", "method", "dataset", "subset", "seed")},
        "modes": {"reference": mode, "clean": mode},
        "finished_at": "2026-12-01T00:00:00+0000",
        "versions": {"ratbench": "0.test", "git": "abc123", "torch": "2.test", "python": "3.test"},
    }
    store.atomic_write_json(folder / store.METRICS_FILE, metrics)
    return folder


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Torch on one thread for the test (the parity fixtures are recorded so)."""
    from parity_tape import one_thread

    with one_thread():
        yield


def tiny_synthetic_specs(seeds: list[int]) -> list:
    """RNP cells on a few dozen synthetic reviews (demo preset, one epoch, hidden size 16): a
    real grid that trains in about a second per cell, for the executors' tests."""
    from ratbench.execution import grid

    sets = {"synthetic": {"n_train": "40", "n_dev": "16", "n_test": "16"}, "rnp": {"hidden_dim": "16"}}
    return grid.expand(["rnp"], ["synthetic.appearance"], seeds, preset="demo", epochs=1, sets=sets)
