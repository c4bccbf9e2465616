"""The HotelReview adapter (datasets/hotel.py): R2A layout, parsing, balancing, overlap audit,
malformed and missing files, and the real annotated Cleanliness file in ../shared/data/hotel."""

from __future__ import annotations

import importlib
import os
import random
import re
from pathlib import Path

import pytest

from ratbench.errors import DataFormatError, MissingDataError, RatbenchError
from ratbench.registry import DATASETS
from ratbench.types import Example

hotel = importlib.import_module("ratbench._plugins.datasets.hotel")
Hotel = hotel.Hotel

ORACLE_HEADER = "task\tlabel\ttext"
TARGET_HEADER = "task\tlabel\ttext\trationale\tpred_att"

# annotated (test) rows: label, text, rationale (a pred_att column is added when writing)
TEST_ROWS = [
    (0, "the room was dirty and the sheets were stained .", "0 0 0 1 0 0 1 1 1 0"),
    (1, "very clean room , friendly staff", "1 1 1 0 0 0"),
    (1, "spotless bathroom and clean towels .", "1 1 0 1 1 0"),
]
DEV_ROWS = [
    (1, "great location near the station"),
    (0, "noisy street and rude staff"),
]
# train: 5 positives, 3 negatives. Two positives repeat a test text (one differing only in case
# and spacing), one negative repeats a dev text.
TRAIN_ROWS = [
    (1, "lovely hotel , would stay again"),  # line 2
    (1, "Very  clean room ,   friendly staff"),  # line 3: = test line 3 after normalization
    (0, "the carpet smelled of smoke"),  # line 4
    (1, "spotless bathroom and clean towels ."),  # line 5: = test line 4
    (1, "breakfast was excellent"),  # line 6
    (0, "noisy street and rude staff"),  # line 7: = dev line 3
    (1, "the bed was comfortable"),  # line 8
    (0, "mould in the shower"),  # line 9
]


def _write(path: Path, header: str, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def _oracle_lines(rows, aspect: str = "Cleanliness") -> list[str]:
    return [f"hotel_{aspect}\t{label}\t{text}" for label, text in rows]


def _target_lines(rows, aspect: str = "Cleanliness") -> list[str]:
    return [
        f"hotel_{aspect}\t{label}\t{text}\t{rat}\t{' '.join('0.1' for _ in rat.split())}" for label, text, rat in rows
    ]


def make_r2a(root: Path, aspect: str = "Cleanliness", train=TRAIN_ROWS, dev=DEV_ROWS, test=TEST_ROWS) -> Path:
    """Write the R2A layout (oracle/ and target/) under ``root/hotel``; return ``root``."""
    folder = root / "hotel"
    _write(folder / "oracle" / f"hotel_{aspect}.train", ORACLE_HEADER, _oracle_lines(train, aspect))
    _write(folder / "oracle" / f"hotel_{aspect}.dev", ORACLE_HEADER, _oracle_lines(dev, aspect))
    _write(folder / "target" / f"hotel_{aspect}.train", TARGET_HEADER, _target_lines(test, aspect))
    return root


def adapter(root: Path, subset: str = "cleanliness", **config) -> Hotel:
    return Hotel(subset, Hotel.Config(**config), root)


def ids(examples: list[Example]) -> list[str]:
    return [ex.id for ex in examples]


@pytest.fixture
def r2a(tmp_path: Path) -> Path:
    return make_r2a(tmp_path)


# -- registration and files ---------------------------------------------------------------


def test_plugin_is_registered_with_three_subsets() -> None:
    """``hotel`` is a built-in plugin with the three aspects and a source pointing at R2A."""
    assert DATASETS.get("hotel") is Hotel
    info = DATASETS.check("hotel")
    assert info.module == "ratbench._plugins.datasets.hotel"
    assert info.meta["subsets"] == ("location", "service", "cleanliness")
    assert info.meta["description"]
    assert "YujiaBao/R2A" in Hotel.source and "\n" not in Hotel.source


def test_files_follow_the_r2a_layout(r2a: Path) -> None:
    """files() names oracle train/dev and target annotation files, with the aspect capitalized."""
    files = adapter(r2a, "service").files()
    folder = r2a / "hotel"
    assert files == {
        "train": folder / "oracle" / "hotel_Service.train",
        "dev": folder / "oracle" / "hotel_Service.dev",
        "test": folder / "target" / "hotel_Service.train",
    }
    adapter(r2a).check_files()  # all present for cleanliness
    assert adapter(r2a / "hotel").files()["train"] == folder / "oracle" / "hotel_Cleanliness.train"


def test_unknown_subset_is_an_error(r2a: Path) -> None:
    """An unknown subset names the available ones."""
    with pytest.raises(RatbenchError, match="location, service, cleanliness"):
        list(adapter(r2a, "rooms").read("test"))


# -- parsing -----------------------------------------------------------------------------


def test_test_split_parses_labels_tokens_and_rationales(r2a: Path) -> None:
    """Header skipped, labels ints, tokens split on spaces, one rationale value per token, pred_att ignored."""
    test = list(adapter(r2a).read("test"))
    assert ids(test) == ["test-2", "test-3", "test-4"]
    assert [ex.label for ex in test] == [0, 1, 1] and all(type(ex.label) is int for ex in test)
    assert test[0].tokens == ("the", "room", "was", "dirty", "and", "the", "sheets", "were", "stained", ".")
    assert test[0].rationale == (0, 0, 0, 1, 0, 0, 1, 1, 1, 0)
    for ex in test:
        assert ex.rationale is not None and len(ex.rationale) == len(ex.tokens)
    assert [t for t, g in zip(test[0].tokens, test[0].rationale, strict=True) if g] == [
        "dirty",
        "sheets",
        "were",
        "stained",
    ]


def test_train_and_dev_have_no_rationale_and_keep_file_order(r2a: Path) -> None:
    """Dev is read in file order, unbalanced, without rationale; the header is not an example."""
    dev = list(adapter(r2a).read("dev"))
    assert [(ex.id, ex.label, ex.rationale) for ex in dev] == [("dev-2", 1, None), ("dev-3", 0, None)]
    assert dev[1].tokens == ("noisy", "street", "and", "rude", "staff")
    train = list(adapter(r2a, remove_overlap=False, balance_train=False).read("train"))
    assert ids(train) == [f"train-{n}" for n in range(2, 10)]
    assert all(ex.rationale is None and ex.tokens[0] not in ("task", "label") for ex in train)


def test_tokenization_is_a_split_on_single_spaces(tmp_path: Path) -> None:
    """Train text is stripped then split on " " (double spaces give an empty token); no lowercasing."""
    make_r2a(tmp_path, train=[(1, "  Great  view . "), (0, "bad")])
    train = list(adapter(tmp_path, remove_overlap=False, balance_train=False).read("train"))
    assert train[0].tokens == ("Great", "", "view", ".")


def test_annotation_file_can_be_flat_or_configured(tmp_path: Path) -> None:
    """Without target/, hotel_{Aspect}.annotated.tsv is found; annotation_file picks any path with {Aspect}."""
    folder = tmp_path / "hotel"
    _write(
        folder / "hotel_Location.annotated.tsv",
        "task\tlabel\ttext\trationale",
        ["hotel_Location\t1\tnear the metro\t0 1 1"],
    )
    a = adapter(tmp_path, "location")
    assert a.files()["test"] == folder / "hotel_Location.annotated.tsv"
    [ex] = list(a.read("test"))
    assert ex.rationale == (0, 1, 1) and ex.label == 1
    _write(folder / "annotations" / "hotel_Location.train", TARGET_HEADER, _target_lines(TEST_ROWS, "Location"))
    b = adapter(tmp_path, "location", annotation_file="annotations/hotel_{Aspect}.train")
    assert b.files()["test"] == folder / "annotations" / "hotel_Location.train"
    assert len(list(b.read("test"))) == 3
    with pytest.raises(RatbenchError, match="placeholder"):
        Hotel.Config(annotation_file="hotel_{aspect}.tsv")


def test_surplus_trailing_zero_flags_are_trimmed(tmp_path: Path) -> None:
    """A rationale with extra trailing 0 values is cut to the token count and counted in ``trimmed``."""
    make_r2a(tmp_path, test=[(1, "clean room", "1 0 0"), (0, "dirty", "1")])
    a = adapter(tmp_path)
    test = list(a.read("test"))
    assert test[0].rationale == (1, 0)
    assert sum(a.trimmed.values()) == 1
    list(a.read("test"))
    assert sum(a.trimmed.values()) == 1


# -- balancing ---------------------------------------------------------------------------


def test_balancing_downsamples_the_majority_with_the_reference_draw(r2a: Path) -> None:
    """5 pos / 3 neg -> 3 + 3, positives first, drawn by random.Random(balance_seed).sample."""
    full = list(adapter(r2a, remove_overlap=False, balance_train=False).read("train"))
    train = list(adapter(r2a, remove_overlap=False).read("train"))
    assert [ex.label for ex in train] == [1, 1, 1, 0, 0, 0]
    positives = [ex for ex in full if ex.label == 1]
    assert ids(train[:3]) == ids(random.Random(20226666).sample(positives, 3))
    assert ids(train[3:]) == ["train-4", "train-7", "train-9"]  # the minority keeps file order


def test_balancing_ignores_global_random_state_and_follows_balance_seed(r2a: Path) -> None:
    """The draw depends on balance_seed only: not on the global random state, which it leaves alone."""
    random.seed(1)
    first = ids(adapter(r2a, remove_overlap=False).read("train"))
    state = random.getstate()
    random.seed(999)
    second = ids(adapter(r2a, remove_overlap=False).read("train"))
    assert first == second
    random.setstate(state)
    list(adapter(r2a, remove_overlap=False).read("train"))
    assert random.getstate() == state
    draws = {tuple(ids(adapter(r2a, remove_overlap=False, balance_seed=s).read("train"))[:3]) for s in range(12)}
    assert len(draws) > 1


def test_balanced_classes_are_not_resampled(tmp_path: Path) -> None:
    """Equal classes: no draw, positives then negatives in file order."""
    make_r2a(tmp_path, train=[(0, "a"), (1, "b"), (0, "c"), (1, "d")])
    assert ids(adapter(tmp_path).read("train")) == ["train-3", "train-5", "train-2", "train-4"]


# -- overlap audit -----------------------------------------------------------------------


def test_overlap_removed_before_balancing(r2a: Path) -> None:
    """Case/whitespace duplicates of test and dev texts leave train: 3 pos / 2 neg -> 2 + 2."""
    a = adapter(r2a, balance_train=False)
    kept = list(a.read("train"))
    assert ids(kept) == ["train-2", "train-4", "train-6", "train-8", "train-9"]
    balanced = list(adapter(r2a).read("train"))
    assert [ex.label for ex in balanced] == [1, 1, 0, 0]
    assert {ex.id for ex in balanced} <= set(ids(kept))


def test_overlap_kept_with_remove_overlap_false(r2a: Path) -> None:
    """remove_overlap=false reproduces the reference: all 8 train rows."""
    assert len(list(adapter(r2a, remove_overlap=False, balance_train=False).read("train"))) == 8


def test_overlap_report_counts(r2a: Path) -> None:
    """The audit counts test/dev rows seen in train, test rows in dev, train duplicates, removals."""
    expected = {"test_in_train": 2, "dev_in_train": 1, "test_in_dev": 0, "train_duplicates": 0, "removed": 3}
    assert adapter(r2a).overlap_report() == expected
    assert adapter(r2a, remove_overlap=False).overlap_report() == {**expected, "removed": 0}


def test_overlap_report_with_duplicates_and_test_in_dev(tmp_path: Path) -> None:
    """A train text repeated twice (once in other case) and a test text in dev are counted."""
    train = [*TRAIN_ROWS, (0, "MOULD in  the shower"), (1, "very clean room , friendly staff")]
    make_r2a(tmp_path, train=train, dev=[*DEV_ROWS, (1, "spotless bathroom and clean towels .")])
    a = adapter(tmp_path, balance_train=False)
    report = a.overlap_report()
    assert report == {"test_in_train": 2, "dev_in_train": 2, "test_in_dev": 1, "train_duplicates": 2, "removed": 4}
    assert len(list(a.read("train"))) == 10 - 4


def test_normalized_hash_ignores_case_and_spacing() -> None:
    """Texts equal up to case and whitespace runs share a hash; others do not."""
    h = hotel.normalized_text_hash
    assert h(" Clean  Room\t.") == h("clean room .")
    assert h("clean room .") != h("clean rooms .")


def test_overlap_report_skips_missing_files(tmp_path: Path) -> None:
    """Pairs with a missing file are left out of the audit instead of failing."""
    make_r2a(tmp_path)
    (tmp_path / "hotel" / "oracle" / "hotel_Cleanliness.train").unlink()
    assert adapter(tmp_path).overlap_report() == {"test_in_dev": 0}
    (tmp_path / "hotel" / "oracle" / "hotel_Cleanliness.dev").unlink()
    assert adapter(tmp_path).overlap_report() == {}


# -- malformed and missing files ------------------------------------------------------------


@pytest.mark.parametrize(
    ("split", "train", "test", "line", "message"),
    [
        ("train", [(1, "fine"), (2, "two")], TEST_ROWS, 3, "label must be 0 or 1"),
        ("train", [(1, "fine"), ("x", "pos")], TEST_ROWS, 3, "label must be 0 or 1"),
        ("test", TRAIN_ROWS, [(1, "clean room", "1 0"), (1, "clean room", "1")], 3, "rationale has 1 values"),
        ("test", TRAIN_ROWS, [(1, "clean room", "1 2")], 2, "must be 0 or 1"),
        ("test", TRAIN_ROWS, [(1, "clean room", "1 0"), (0, "dirty", "1 1")], 3, "rationale has 2 values"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path: Path, split, train, test, line, message) -> None:
    """Bad labels and misaligned or non-0/1 rationales raise DataFormatError with file:line."""
    make_r2a(tmp_path, train=train, test=test)
    a = adapter(tmp_path, remove_overlap=False)
    path = a.files()[split]
    with pytest.raises(DataFormatError, match=rf"{re.escape(str(path))}:{line}: .*{message}"):
        list(a.read(split))


def test_wrong_column_counts_are_malformed(tmp_path: Path) -> None:
    """An oracle row with 4 columns and a target row with 3 are malformed; so is a missing header."""
    make_r2a(tmp_path)
    folder = tmp_path / "hotel"
    _write(
        folder / "oracle" / "hotel_Cleanliness.dev",
        ORACLE_HEADER,
        ["hotel_Cleanliness\t1\tok", "hotel_Cleanliness\t1\tok\textra"],
    )
    _write(folder / "target" / "hotel_Cleanliness.train", TARGET_HEADER, ["hotel_Cleanliness\t1\tno rationale"])
    a = adapter(tmp_path)
    with pytest.raises(DataFormatError, match=r"hotel_Cleanliness\.dev:3: expected 3 .*got 4"):
        list(a.read("dev"))
    with pytest.raises(DataFormatError, match=r"target/hotel_Cleanliness\.train:2: expected 4 or 5 .*got 3"):
        list(a.read("test"))
    (folder / "oracle" / "hotel_Cleanliness.dev").write_text("hotel_Cleanliness\t1\tno header\n")
    with pytest.raises(DataFormatError, match=r"\.dev:1: expected a header row"):
        list(a.read("dev"))


def test_lenient_mode_skips_and_counts_once(tmp_path: Path) -> None:
    """lenient=true skips malformed rows, counts them per file, and never counts a line twice."""
    train = [(1, "fine"), (2, "bad label"), (0, "also fine"), (1, "spotless bathroom and clean towels .")]
    test = [(1, "clean room", "1 0"), (0, "dirty", "1 1"), *TEST_ROWS[2:]]
    make_r2a(tmp_path, train=train, test=test)
    a = adapter(tmp_path, lenient=True)
    kept = list(a.read("train"))
    assert [ex.id for ex in kept] == ["train-2", "train-4"]  # train-5 overlaps test-4, removed
    assert list(a.read("test"))[-1].id == "test-4" and len(list(a.read("test"))) == 2
    files = a.files()
    assert a.skipped == {str(files["train"]): 1, str(files["test"]): 1}
    list(a.read("train"))
    a.overlap_report()
    assert sum(a.skipped.values()) == 2


def test_missing_files_raise_missing_data_error_naming_the_path(tmp_path: Path) -> None:
    """A missing train, dev or annotation file is a MissingDataError naming the expected path."""
    folder = tmp_path / "hotel"
    a = adapter(tmp_path, "location")
    for split, path in (
        ("train", folder / "oracle" / "hotel_Location.train"),
        ("dev", folder / "oracle" / "hotel_Location.dev"),
        ("test", folder / "target" / "hotel_Location.train"),
    ):
        with pytest.raises(MissingDataError, match=re.escape(str(path))):
            list(a.read(split))
    with pytest.raises(MissingDataError, match=r"missing train file .*hotel_Location\.train"):
        a.check_files()


def test_only_the_annotated_file_is_enough_for_test(tmp_path: Path) -> None:
    """Test reads without the oracle files; train with remove_overlap then names the missing file."""
    make_r2a(tmp_path)
    (tmp_path / "hotel" / "oracle" / "hotel_Cleanliness.dev").unlink()
    a = adapter(tmp_path)
    assert len(list(a.read("test"))) == 3
    with pytest.raises(MissingDataError, match=r"missing dev file .*hotel_Cleanliness\.dev.*remove_overlap=false"):
        list(a.read("train"))
    assert len(list(adapter(tmp_path, remove_overlap=False).read("train"))) == 6
    with pytest.raises(MissingDataError, match=r"hotel_Cleanliness\.dev"):
        a.check_files()


def test_fingerprint_names_the_annotation_file(r2a: Path) -> None:
    """The fingerprint covers the three files read."""
    fp = adapter(r2a).fingerprint()
    assert fp["name"] == "hotel" and fp["subset"] == "cleanliness"
    assert sorted(fp["files"]) == ["dev", "test", "train"]
    assert fp["files"]["test"]["name"] == "hotel_Cleanliness.train"


# -- the real annotated Cleanliness file --------------------------------------------------


@pytest.fixture
def cleanliness(shared_data: Path) -> list[Example]:
    a = Hotel("cleanliness", Hotel.Config(), shared_data)
    assert a.files()["test"] == shared_data / "hotel" / "hotel_Cleanliness.annotated.tsv"
    examples = list(a.read("test"))
    assert not a.skipped and not a.trimmed
    return examples


def test_real_cleanliness_counts(cleanliness: list[Example]) -> None:
    """195 annotated reviews, 96 positive / 99 negative, unique ids."""
    assert len(cleanliness) == 195
    assert sum(ex.label == 1 for ex in cleanliness) == 96
    assert sum(ex.label == 0 for ex in cleanliness) == 99
    assert len(set(ids(cleanliness))) == 195


def test_real_cleanliness_rationales_are_aligned_and_sparse(cleanliness: list[Example]) -> None:
    """Every rationale has one value per token; gold sparsity is 0.089 (micro), 0.105 (mean per review)."""
    for ex in cleanliness:
        assert ex.rationale is not None and len(ex.rationale) == len(ex.tokens) and any(ex.rationale)
    gold = sum(sum(ex.rationale) for ex in cleanliness)
    tokens = sum(len(ex.tokens) for ex in cleanliness)
    assert (gold, tokens) == (2628, 29383)
    assert round(gold / tokens, 3) == 0.089
    per_review = sum(sum(ex.rationale) / len(ex.tokens) for ex in cleanliness) / len(cleanliness)
    assert round(per_review, 3) == 0.105
    kept = [(ex.tokens[:256], ex.rationale[:256]) for ex in cleanliness]  # reference truncation
    assert round(sum(sum(r) for _, r in kept) / sum(len(t) for t, _ in kept), 3) == 0.090


@pytest.mark.parametrize(
    ("example_id", "label", "words"),
    [
        ("test-2", 0, {"clean", "rubbish", "litter", "stained"}),
        ("test-14", 1, {"very", "clean"}),
        ("test-17", 0, {"dirty", "stained", "bug", "cleaner"}),
    ],
)
def test_real_cleanliness_rationales_mark_cleanliness_words(cleanliness, example_id, label, words) -> None:
    """Spot checks: the marked tokens of these reviews contain their cleanliness words."""
    ex = next(ex for ex in cleanliness if ex.id == example_id)
    marked = {t for t, g in zip(ex.tokens, ex.rationale, strict=True) if g}
    assert ex.label == label
    assert words <= marked
    assert len(marked) < len(set(ex.tokens))


def test_crlf_files_and_invalid_utf8(tmp_path: Path) -> None:
    """CRLF line ends leave no stray carriage return; a line that is not UTF-8 is malformed."""
    make_r2a(tmp_path)
    dev = tmp_path / "hotel" / "oracle" / "hotel_Cleanliness.dev"
    dev.write_bytes(b"task\tlabel\ttext\r\nhotel_Cleanliness\t1\tclean room\r\n")
    assert [ex.tokens for ex in adapter(tmp_path).read("dev")] == [("clean", "room")]
    dev.write_bytes(b"task\tlabel\ttext\nhotel_Cleanliness\t1\tclean room\nhotel_Cleanliness\t0\tbad \xff\n")
    with pytest.raises(DataFormatError, match=r"\.dev:3: not valid UTF-8"):
        list(adapter(tmp_path).read("dev"))


# The VER paper's Table 4 (Pos / Neg per split, gold sparsity S in %), reference preprocessing.
TABLE_4 = {
    "location": ((7236, 7236), (906, 906), (104, 96), 8.5),
    "service": ((50742, 50742), (6344, 6344), (101, 99), 11.5),
    "cleanliness": ((75049, 75049), (9382, 9382), (99, 101), 8.9),
}


@pytest.mark.parametrize("subset", sorted(TABLE_4))
def test_real_r2a_files_match_table_4(subset: str) -> None:
    """With RATBENCH_HOTEL_DIR set to the R2A data, the reference preprocessing (overlap kept)
    reproduces the counts and gold sparsity of VER's Table 4."""
    folder = os.environ.get("RATBENCH_HOTEL_DIR")
    if not folder:
        pytest.skip("set RATBENCH_HOTEL_DIR to the R2A data folder (oracle/, target/) to run this check")
    adapter = Hotel(subset, Hotel.Config(remove_overlap=False), Path(folder))
    train, dev, test, sparsity = TABLE_4[subset]
    for split, expected in (("train", train), ("dev", dev), ("test", test)):
        labels = [ex.label for ex in adapter.read(split)]
        assert (labels.count(1), labels.count(0)) == expected, split
    examples = list(adapter.read("test"))
    gold = sum(sum(ex.rationale[:256]) for ex in examples)
    tokens = sum(min(len(ex.tokens), 256) for ex in examples)
    assert 100 * gold / tokens == pytest.approx(sparsity, abs=0.1)
