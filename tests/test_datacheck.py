"""`ratbench data check`: counts, lengths, OOV, gold sparsity, overlap, missing splits."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from ratbench.cli import main
from ratbench.data import check as datacheck
from ratbench.data.adapter import DataConfig, DatasetAdapter
from ratbench.errors import MissingDataError
from ratbench.registry import DATASETS
from ratbench.types import Example

SPLIT_DATA = {
    "train": [("a b c", 0), ("d e f g", 1), ("Dup  text", 1)],
    "dev": [("dup text", 0), ("h i", 1)],
}
TEST = [("a b zz", 1, (0, 1, 1)), ("x y", 0, (1, 0))]


class Small(DatasetAdapter):
    """Hand-made splits with one duplicated text (modulo case and spaces) and OOV words."""

    subsets = ("main",)

    @dataclasses.dataclass(frozen=True)
    class Config(DataConfig):
        max_len: int = 3
        no_train: bool = False
        bad_dev_line: bool = False

    def read(self, split: str) -> Iterator[Example]:
        if split == "train" and self.config.no_train:
            raise MissingDataError("small: missing train file /nowhere/train.txt")
        if split == "dev" and self.config.bad_dev_line:
            self.bad_line(Path("/data/small/dev.txt"), 7, "expected 2 fields, got 3")
        if split == "test":
            for i, (text, label, gold) in enumerate(TEST):
                yield Example(f"t{i}", tuple(text.split(" ")), label, gold)
            return
        for i, (text, label) in enumerate(SPLIT_DATA[split]):
            yield Example(f"{split}{i}", tuple(text.split(" ")), label)


@pytest.fixture
def small() -> Iterator[type[Small]]:
    DATASETS.register("small")(Small)
    yield Small
    DATASETS.unregister("small")


def test_report_counts_lengths_oov_gold_and_overlap(small: type[Small]) -> None:
    """Every figure is computed on the adapter's examples, after truncation at max_len."""
    report = datacheck.check(Small("main", Small.Config()))
    train, dev, test = report.splits
    assert (train.n, train.labels, train.avg_len) == (3, {0: 1, 1: 2}, pytest.approx(10 / 3))
    assert train.truncated == pytest.approx(100 / 3)  # "d e f g" is longer than 3 tokens
    assert train.oov == 0.0  # the random vocabulary is the training words
    assert dev.oov == pytest.approx(100 * 3 / 4)  # "dup", "h", "i" unseen ("text" is known)
    assert test.gold_sparsity == pytest.approx(100 * 3 / 5) and train.gold_sparsity is None
    assert report.overlap == {"test texts also in train": 0, "dev texts also in train": 1, "test texts also in dev": 0}


def test_missing_split_is_reported_not_fatal(small: type[Small]) -> None:
    """A missing train file leaves the other splits checkable."""
    report = datacheck.check(Small("main", Small.Config(no_train=True)))
    assert report.splits[0].missing == "small: missing train file /nowhere/train.txt"
    assert report.splits[2].n == 2
    assert "missing train: small: missing train file" in datacheck.render(report, "random")


def test_cli_data_check(small: type[Small], tmp_path: Path) -> None:
    """The command prints the table for each subset; --set reaches the dataset config."""
    result = CliRunner().invoke(main, ["data", "check", "small", "--set", "small.max_len=10"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("small.main\n")
    row = next(line for line in result.stdout.splitlines() if line.startswith("| train"))
    assert [c.strip() for c in row.split("|")[1:-1]] == ["train", "3", "0: 1 / 1: 2", "3.3", "0.0", "0.00", ""]
    bad = CliRunner().invoke(main, ["data", "check", "small", "--set", "small.maxlen=3"])
    assert bad.exit_code == 2 and "unknown config key small.maxlen" in bad.stderr


def test_malformed_line_is_an_error_unless_lenient(small: type[Small]) -> None:
    """Without --lenient a bad line stops with file:line; with it the line is skipped and counted."""
    args = ["data", "check", "small.main", "--set", "small.bad_dev_line=true"]
    strict = CliRunner().invoke(main, args)
    assert strict.exit_code == 2
    assert strict.stderr.startswith("error: /data/small/dev.txt:7: expected 2 fields, got 3")
    lenient = CliRunner().invoke(main, [*args, "--lenient"])
    assert lenient.exit_code == 0
    assert "skipped malformed lines in /data/small/dev.txt: 1" in lenient.stdout


class Queries(DatasetAdapter):
    """Claims of 10 words on documents of 6 (ERASER's layout: ``query <sep> document``)."""

    name = "queries"

    subsets = ("main",)

    @dataclasses.dataclass(frozen=True)
    class Config(DataConfig):
        max_len: int = 8

    def read(self, split: str) -> Iterator[Example]:
        gold = (1, 0, 0, 0, 0, 1) if split == "test" else None
        for i in range(2):
            yield Example(f"{split}{i}", tuple("abcdef"), i, gold, query=tuple("qrstuvwxyz"[: 10 - 8 * i]))


def test_the_query_counts_in_truncation_and_its_own_cut_is_counted() -> None:
    """max_len 8: a 10-word query keeps 4 (half), the separator 1, the document 3 of its 6 words;
    a 2-word query is kept whole and its document keeps 5 (issue 18, D2)."""
    report = datacheck.check(Queries("main", Queries.Config()))
    test = report.splits[2]
    assert test.truncated == 100.0 and test.query_cut == 50.0
    assert test.gold_sparsity == pytest.approx(100 * 2 / 8)  # gold word 0 of each (word 5 is cut) of 3 + 5 kept
    text = datacheck.render(report, "random")
    assert "| query cut %   |" in text and "queries keep at most 4 positions (max_query_len 128" in text
    plain = datacheck.render(datacheck.check(Small("main", Small.Config())), "random")
    assert "query cut" not in plain  # a dataset without queries: the table as before


def test_with_the_hf_encoder_truncation_counts_pieces(tiny_hf_model: Path) -> None:
    """hf, max_len 8: [CLS] 4 query pieces [SEP] 1 document piece [SEP], or with the 2-word query
    3 document pieces; each letter is one ([UNK]) piece."""
    config = Queries.Config(encoder=f"hf:{tiny_hf_model}")
    test = datacheck.check(Queries("main", config)).splits[2]
    assert test.truncated == 100.0 and test.query_cut == 50.0
    assert test.gold_sparsity == pytest.approx(100 * 2 / 4)
