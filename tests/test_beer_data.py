"""The BeerAdvocate adapter (datasets/beer.py) on fixture files in the published formats of Lei et al. (2016)."""

from __future__ import annotations

import gzip
import importlib
import json
import os
import random
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import ratbench.cli
from ratbench.errors import DataFormatError, MissingDataError, RatbenchError
from ratbench.registry import DATASETS

beer = importlib.import_module("ratbench._plugins.datasets.beer")
Beer = beer.Beer


def _review(scores, text: str) -> str:
    return " ".join(str(s) for s in scores) + "\t" + text + "\n"


def _write(path: Path, lines: list[str]) -> Path:
    """Write ``lines`` to ``path``, gzip-compressed if the name ends in ``.gz``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(lines).encode("utf-8")
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def _ann(x, y, spans0=(), spans1=(), spans2=()) -> str:
    item = {"x": list(x), "y": list(y), "0": [list(s) for s in spans0], "1": [list(s) for s in spans1]}
    item |= {"2": [list(s) for s in spans2], "3": [], "4": []}
    return json.dumps(item) + "\n"


def _adapter(root: Path, subset: str = "appearance", **kw) -> Beer:
    return Beer(subset, Beer.Config(**kw), root)


def _labels(adapter: Beer, split: str) -> list[tuple[str, int]]:
    return [(ex.id, ex.label) for ex in adapter.read(split)]


ANN_DEFAULT = [_ann(["a", "b", "c"], [0.8] * 5, [(0, 1)], [(1, 2)], [(2, 3)])]


@pytest.fixture
def make_files(tmp_path):
    """Write a beer folder under ``tmp_path/data/beer`` and return the data root."""

    def make(train=(), dev=(), ann=None, gz=True, variant_stem="reviews.aspect{a}", aspects=(0, 1, 2)):
        folder = tmp_path / "data" / "beer"
        ext = ".txt.gz" if gz else ".txt"
        for a in aspects:
            stem = variant_stem.format(a=a)
            _write(folder / f"{stem}.train{ext}", list(train))
            _write(folder / f"{stem}.heldout{ext}", list(dev))
        _write(folder / "annotations.json", list(ANN_DEFAULT if ann is None else ann))
        return tmp_path / "data"

    return make


def test_registered_with_literal_metadata():
    """The plugin is found by name with its subsets, a description and a source pointer."""
    assert DATASETS.get("beer") is Beer
    assert Beer.subsets == ("appearance", "aroma", "palate")
    assert "Lei et al. (2016)" in Beer.source and "\n" not in Beer.source
    assert DATASETS.infos()["beer"].meta["description"] == Beer.description
    cfg = Beer.Config()
    assert (cfg.variant, cfg.neg_threshold, cfg.pos_threshold) == ("decorrelated", 0.4, 0.6)
    assert (cfg.balance_train, cfg.balance_seed, cfg.balance_dev, cfg.max_len) == (True, 20226666, None, 256)


def test_config_validation_and_string_values():
    """Thresholds must be ordered; ``--set`` strings are parsed into the typed fields."""
    with pytest.raises(RatbenchError, match="neg_threshold"):
        Beer.Config(neg_threshold=0.6, pos_threshold=0.6)
    cfg = Beer.Config.resolve({"variant": "correlated", "balance_dev": "none", "balance_seed": "12252018"})
    assert (cfg.variant, cfg.balance_dev, cfg.balance_seed) == ("correlated", None, 12252018)
    with pytest.raises(RatbenchError, match="variant"):
        Beer.Config.resolve({"variant": "shuffled"})


@pytest.mark.parametrize("gz", [True, False])
def test_thresholds_inclusive_and_middle_dropped(make_files, gz):
    """<= 0.4 is 0, >= 0.6 is 1, strictly between is dropped; ids carry the 1-based line number."""
    scores = [0.4, 0.6, 0.5, 0.0, 1.0, 0.41, 0.59, 0.3]
    lines = [_review([s, 0.5, 0.5, 0.5, 0.5], f"w{i}") for i, s in enumerate(scores)]
    root = make_files(train=lines, dev=lines, gz=gz)
    adapter = _adapter(root, balance_train=False)
    expected = [("-1", 0), ("-2", 1), ("-4", 0), ("-5", 1), ("-8", 0)]
    for split in ("train", "dev"):
        assert _labels(adapter, split) == [(split + i, y) for i, y in expected]
    assert adapter.files()["train"].name == ("reviews.aspect0.train.txt" + (".gz" if gz else ""))


@pytest.mark.parametrize(("subset", "index"), [("appearance", 0), ("aroma", 1), ("palate", 2)])
def test_label_from_aspect_score_index(make_files, subset, index):
    """The label comes from score ``index`` of the line, the other four scores are ignored."""
    lines = []
    for i in range(5):
        scores = [0.0 if j == i else 1.0 for j in range(5)]  # only score i is low
        lines.append(_review(scores, f"text {i}"))
    root = make_files(train=lines, dev=lines)
    adapter = _adapter(root, subset, balance_train=False)
    assert [ex.label for ex in adapter.read("train")] == [int(i != index) for i in range(5)]
    assert adapter.files()["train"].name == f"reviews.aspect{index}.train.txt.gz"


def test_tokenization_single_space_no_lowercasing(make_files):
    """Text is stripped and split on " " only; empty tokens from double spaces stay; tokens are stripped."""
    root = make_files(train=[_review([0.9] * 5, "  Great  beer ,\x0bhead .  ")])
    (ex,) = _adapter(root, balance_train=False).read("train")
    # "\x0b" is not a split point but strip() removes it at a token's edge
    assert ex.tokens == ("Great", "", "beer", ",\x0bhead", ".")
    root2 = make_files(train=[_review([0.9] * 5, "a \x0bb  c")])
    (ex2,) = _adapter(root2, balance_train=False).read("train")
    assert ex2.tokens == ("a", "b", "", "c")
    assert ex.rationale is None and ex2.rationale is None


def test_plain_and_gz_files_and_folder_layout(make_files, tmp_path):
    """``.txt`` works, ``.gz`` wins when both exist, and both ``data`` and ``data/beer`` are accepted."""
    root = make_files(train=[_review([0.9] * 5, "plain")], dev=[_review([0.1] * 5, "d")], gz=False)
    _write(root / "beer" / "reviews.aspect0.train.txt.gz", [_review([0.1] * 5, "gz")])
    for data_dir in (root, root / "beer"):
        adapter = _adapter(data_dir, balance_train=False)
        assert adapter.files()["train"].name == "reviews.aspect0.train.txt.gz"
        assert adapter.files()["dev"].name == "reviews.aspect0.heldout.txt"
        assert [ex.tokens for ex in adapter.read("train")] == [("gz",)]
    fp = _adapter(root).fingerprint()
    assert set(fp["files"]) == {"train", "dev", "test"} and fp["files"]["test"]["name"] == "annotations.json"


def test_annotation_thresholds_skip_empty_and_end_exclusive(make_files):
    """Annotation labels use the same inclusive rule; no span for the aspect -> skipped; spans are [start, end)."""
    x = ["t0", "t1", "t2", "t3", "t4", "t5"]
    ann = [
        _ann(x, [0.4, 0.9, 0.9, 0.9, 0.9], [(1, 3)], [(0, 1)]),  # line 1: label 0, gold t1 t2
        _ann(x, [0.6, 0.1, 0.1, 0.1, 0.1], [(0, 1), (4, 6)]),  # line 2: label 1, two spans
        _ann(x, [0.5, 0.9, 0.9, 0.9, 0.9], [(0, 2)], [(0, 2)]),  # line 3: middle score, dropped
        _ann(x, [0.9, 0.9, 0.9, 0.9, 0.9], [], [(2, 3)]),  # line 4: no appearance span, skipped
    ]
    root = make_files(ann=ann)
    got = list(_adapter(root).read("test"))
    assert [(ex.id, ex.label) for ex in got] == [("test-1", 0), ("test-2", 1)]
    assert got[0].rationale == (0, 1, 1, 0, 0, 0)
    assert got[1].rationale == (1, 0, 0, 0, 1, 1)
    assert all(ex.tokens == tuple(x) for ex in got)
    aroma = list(_adapter(root, "aroma").read("test"))  # label from y[1], spans from "1"
    assert [(ex.id, ex.label, ex.rationale) for ex in aroma] == [
        ("test-1", 1, (1, 0, 0, 0, 0, 0)),
        ("test-3", 1, (1, 1, 0, 0, 0, 0)),
        ("test-4", 1, (0, 0, 1, 0, 0, 0)),
    ]
    assert [ex.id for ex in _adapter(root, "palate").read("test")] == []


def test_annotation_truncated_and_spans_clipped_at_max_len(make_files):
    """Tokens are cut at max_len; spans starting at or past it are dropped, ends are clipped."""
    x = [f"t{i}" for i in range(8)]
    ann = [
        _ann(x, [0.9] * 5, [(1, 3), (4, 7), (5, 8)]),
        _ann(x, [0.9] * 5, [(6, 8)]),  # every span past the cut: kept with an all-zero gold
        _ann(x[:3], [0.1] * 5, [(0, 3)]),  # shorter than max_len: untouched
    ]
    root = make_files(ann=ann)
    got = list(_adapter(root, max_len=5).read("test"))
    assert [ex.tokens for ex in got] == [tuple(x[:5]), tuple(x[:5]), tuple(x[:3])]
    assert [ex.rationale for ex in got] == [(0, 1, 1, 0, 1), (0, 0, 0, 0, 0), (1, 1, 1)]
    full = list(_adapter(root).read("test"))
    assert full[0].rationale == (0, 1, 1, 0, 1, 1, 1, 1) and len(full[0].tokens) == 8


def test_local_rng_matches_global_seeding():
    """``random.Random(s).sample`` draws what ``random.seed(s); random.sample`` draws (the reference)."""
    state = random.getstate()
    try:
        population = list(range(1000))
        for seed, k in ((20226666, 37), (12252018, 500), (0, 1000)):
            random.seed(seed)
            expected = random.sample(population, k)
            assert random.Random(seed).sample(population, k) == expected
    finally:
        random.setstate(state)


def _mixed_lines(n_pos: int, n_neg: int) -> list[str]:
    lines = [_review([0.9] * 5, f"pos {i}") for i in range(n_pos)] + [
        _review([0.1] * 5, f"neg {i}") for i in range(n_neg)
    ]
    random.Random(5).shuffle(lines)
    return lines


def test_balancing_exact_counts_and_reference_draw(make_files):
    """Train is down-sampled to the minority size, positives first, by the reference's seeded draw."""
    root = make_files(train=_mixed_lines(30, 12), dev=_mixed_lines(9, 4))
    unbalanced = list(_adapter(root, balance_train=False).read("train"))
    got = list(_adapter(root).read("train"))
    assert [ex.label for ex in got] == [1] * 12 + [0] * 12
    pos = [ex for ex in unbalanced if ex.label == 1]
    assert got[:12] == random.Random(20226666).sample(pos, 12)
    assert got[12:] == [ex for ex in unbalanced if ex.label == 0]  # minority class kept in file order
    root2 = make_files(train=_mixed_lines(5, 5))  # already balanced: no draw, file order
    assert [ex.label for ex in _adapter(root2).read("train")] == [1] * 5 + [0] * 5


def test_balancing_depends_only_on_balance_seed(make_files):
    """Other config values do not change the kept training examples; another balance_seed does."""
    root = make_files(train=_mixed_lines(40, 15))
    a = _labels(_adapter(root), "train")
    b = _labels(_adapter(root, max_len=7, embedding_seed=3, padding="max_len", balance_dev=True), "train")
    assert a == b and len(a) == 30
    c = _labels(_adapter(root, balance_seed=12252018), "train")
    assert set(c) != set(a)
    assert len(c) == 30


def test_dev_balanced_only_for_correlated(make_files):
    """Dev keeps its class ratio for the per-aspect files and is balanced for the 260k files."""
    root = make_files(train=_mixed_lines(8, 3), dev=_mixed_lines(7, 2))
    assert len(list(_adapter(root).read("dev"))) == 9
    assert len(list(_adapter(root, balance_dev=True).read("dev"))) == 4
    corr = make_files(train=_mixed_lines(6, 2), dev=_mixed_lines(5, 3), variant_stem="reviews.260k", aspects=(0,))
    adapter = _adapter(corr, "aroma", variant="correlated")
    assert adapter.files()["dev"].name == "reviews.260k.heldout.txt.gz"
    assert [ex.label for ex in adapter.read("dev")] == [1] * 3 + [0] * 3
    assert [ex.label for ex in adapter.read("train")] == [1] * 2 + [0] * 2
    assert len(list(_adapter(corr, variant="correlated", balance_dev=False).read("dev"))) == 8


GOOD = _review([0.9] * 5, "fine beer")
BAD_LINES = {
    "three fields": ("train", "0.1 0.2 0.3 0.4 0.5\tsome\ttext\n", "2 tab-separated fields"),
    "four scores": ("train", _review([0.1, 0.2, 0.3, 0.4], "text"), "5 space-separated scores"),
    "score 1.5": ("dev", _review([1.5, 0.2, 0.3, 0.4, 0.5], "text"), "in \\[0, 1\\]"),
    "not a number": ("train", _review(["0.1", "abc", 0.3, 0.4, 0.5], "text"), "must be numbers"),
    "bad json": ("test", '{"x": ["a"], "y": [0.9, 0.9\n', "JSON"),
    "span out of range": ("test", _ann(["a", "b"], [0.9] * 5, [(1, 3)]), "out of range"),
    "empty span": ("test", _ann(["a", "b"], [0.9] * 5, [(1, 1)]), "out of range"),
    "missing key": ("test", json.dumps({"x": ["a"], "y": [0.9] * 5}) + "\n", "missing key"),
}


@pytest.mark.parametrize("case", list(BAD_LINES))
def test_malformed_line_raises_with_file_and_line(make_files, case):
    """A malformed line raises DataFormatError naming file and line; lenient mode skips and counts it."""
    split, bad, problem = BAD_LINES[case]
    good = ANN_DEFAULT[0] if split == "test" else GOOD
    lines = [good, bad, good]
    root = make_files(**{{"train": "train", "dev": "dev", "test": "ann"}[split]: lines})
    adapter = _adapter(root, balance_train=False)
    path = adapter.files()[split]
    with pytest.raises(DataFormatError, match=problem) as info:
        list(adapter.read(split))
    assert str(info.value).startswith(f"{path}:2: ")
    lenient = _adapter(root, balance_train=False, lenient=True)
    assert [ex.id for ex in lenient.read(split)] == [f"{split}-1", f"{split}-3"]
    assert lenient.skipped == {str(path): 1}


def test_invalid_utf8_is_a_bad_line(make_files):
    """A line that is not UTF-8 is reported with its line number (and skippable)."""
    root = make_files(train=[GOOD])
    path = root / "beer" / "reviews.aspect0.train.txt.gz"
    path.write_bytes(gzip.compress(GOOD.encode() + b"0.9 0.9 0.9 0.9 0.9\tbad \xff byte\n" + GOOD.encode()))
    with pytest.raises(DataFormatError, match=r":2: not valid UTF-8"):
        list(_adapter(root, balance_train=False).read("train"))
    assert len(list(_adapter(root, balance_train=False, lenient=True).read("train"))) == 2


def test_missing_file_names_path_and_source(tmp_path, make_files):
    """check_files (and read) raise MissingDataError naming the expected path and where to get the data."""
    adapter = _adapter(tmp_path / "empty")
    expected = tmp_path / "empty" / "beer" / "reviews.aspect0.train.txt.gz"
    with pytest.raises(MissingDataError) as info:
        adapter.check_files()
    assert str(expected) in str(info.value) and Beer.source in str(info.value)
    with pytest.raises(MissingDataError):
        list(adapter.read("test"))
    root = make_files(train=[GOOD], dev=[GOOD])
    (root / "beer" / "annotations.json").unlink()
    with pytest.raises(MissingDataError, match=re.escape(str(root / "beer" / "annotations.json"))):
        _adapter(root).check_files()


def test_cli_run_without_files_is_one_line_exit_2(tmp_path):
    """``ratbench run --datasets beer`` on an empty data dir exits 2 with one stderr line naming the file."""
    empty = tmp_path / "empty"
    empty.mkdir()
    args = ["run", "--methods", "rnp", "--datasets", "beer", "--data-dir", str(empty)]
    result = CliRunner().invoke(ratbench.cli.main, [*args, "--results-dir", str(tmp_path / "results")])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "reviews.aspect0.train.txt.gz" in lines[0] and "Traceback" not in result.stderr


# VER paper, Table 4: (train pos, neg), (dev pos, neg), (annotation pos, neg), gold sparsity S in %.
TABLE4 = {
    "appearance": ((16891, 16891), (6628, 2103), (923, 13), 18.5),
    "aroma": ((15169, 15169), (6579, 2218), (848, 29), 15.6),
    "palate": ((13652, 13652), (6740, 2000), (785, 20), 12.4),
}


@pytest.mark.parametrize("subset", list(TABLE4))
def test_real_files_match_paper_counts(subset):
    """With RATBENCH_BEER_DIR set to the real files, the counts and gold sparsity match VER's Table 4."""
    folder = os.environ.get("RATBENCH_BEER_DIR")
    if not folder:
        pytest.skip("set RATBENCH_BEER_DIR to the folder of the Lei et al. (2016) beer files to run this check")
    adapter = Beer(subset, Beer.Config(), Path(folder))
    adapter.check_files()
    train, dev, ann, sparsity = TABLE4[subset]

    def counts(split):
        labels = [ex.label for ex in adapter.read(split)]
        return labels.count(1), labels.count(0)

    assert counts("train") == train
    assert counts("dev") == dev
    test = list(adapter.read("test"))
    assert (sum(ex.label for ex in test), sum(1 - ex.label for ex in test)) == ann
    gold = sum(sum(ex.rationale) for ex in test) / sum(len(ex.tokens) for ex in test)
    assert abs(100 * gold - sparsity) <= 0.1
