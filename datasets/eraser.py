"""ERASER rationale tasks (DeYoung et al. 2020) in their standard layout, and the word-piece Movies variant.

Two datasets:

* ``eraser`` (subsets ``fever``, ``multirc``, ``movies``, ``boolq``, ``evidence_inference``) reads
  ``<subset>/{train,val,test}.jsonl`` + ``<subset>/docs/<docid>`` exactly as published by ERASER.
  The input is the document, the query (claim, question || answer, ...) goes to
  :attr:`~ratbench.types.Example.query`, the gold rationale is the union of every evidence span.
* ``movies_wordpiece`` reads ERASER Movie Reviews already cut into bert-base-uncased word-piece ids
  (JSON lines ``label_ids`` / ``input_ids`` / ``tag_ids``); the ids themselves are the tokens.

Both map ratbench's ``train`` / ``dev`` / ``test`` splits to file stems and can carve seeded,
disjoint fractions out of a file that several splits share (see :class:`SplitMapConfig`), because
only some of the files are at hand (the shared copy has ERASER ``val`` splits only). The file
``datasets/eraser.md`` documents the layout, sources, labels and ``--set`` commands.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Hashable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ratbench.data.adapter import DataConfig, DatasetAdapter
from ratbench.errors import DataFormatError, MissingDataError, RatbenchError
from ratbench.registry import register_dataset
from ratbench.types import SPLITS, Example, Split

ERASER_SOURCE = "https://www.eraserbenchmark.com/ (DeYoung et al. 2020)"

LABELS: dict[str, tuple[str, ...]] = {
    "fever": ("REFUTES", "SUPPORTS"),
    "multirc": ("False", "True"),
    "movies": ("NEG", "POS"),
    "boolq": ("False", "True"),
    "evidence_inference": ("significantly decreased", "no significant difference", "significantly increased"),
}
"""The ``classification`` strings of each subset; the label is the index in this tuple."""

REQUIRED_KEYS = ("annotation_id", "classification", "evidences", "query")
"""Keys every ERASER annotation line must have (``docids`` and ``query_type`` may be absent or null)."""

SPECIAL_IDS = frozenset({0, 101, 102})
"""bert-base-uncased ``[PAD]``, ``[CLS]`` and ``[SEP]`` ids (dropped by ``movies_wordpiece`` by default)."""


# --------------------------------------------------------------------------------------------
# Split mapping and carve-outs
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SplitMapConfig(DataConfig):
    """Which file each ratbench split reads, and the seeded carve-outs when splits share a file."""

    train_split: str = "train"
    """File stem read as ratbench ``train`` (``<stem>.jsonl`` / ``<stem>.json``)."""
    dev_split: str = "val"
    """File stem read as ratbench ``dev``."""
    test_split: str = "test"
    """File stem read as ratbench ``test`` (the only split whose examples carry the gold rationale)."""
    dev_carve_out: float = 0.0
    """Fraction in [0, 1) of the file that ``dev`` shares with ``train``; required (> 0) exactly when
    ``dev_split == train_split``, 0 otherwise."""
    test_carve_out: float = 0.0
    """Fraction in [0, 1) of the file that ``test`` shares with ``train`` and/or ``dev``; required
    (> 0) exactly when ``test_split`` equals one of them, 0 otherwise."""
    carve_seed: int = 0
    """Seed (>= 0) of the carve-out permutation; independent of the run seed."""

    def __post_init__(self) -> None:
        super().__post_init__()
        split_groups(self)

    def stems(self) -> dict[Split, str]:
        """The file stem of each ratbench split."""
        return {"train": self.train_split, "dev": self.dev_split, "test": self.test_split}


def split_groups(config: SplitMapConfig) -> dict[str, dict[Split, float | None]]:
    """Group the ratbench splits by the file they read, in ``train, dev, test`` order.

    In each group the first split takes what the others leave (``None``); each later split takes
    its carve-out fraction. Raises ``RatbenchError`` on an impossible mapping: an empty or
    path-like stem, a fraction outside [0, 1), a shared file without a carve-out, a carve-out on a
    split that shares nothing, fractions of one file summing to 1 or more, a negative seed.
    """
    carve: dict[Split, float] = {"train": 0.0, "dev": config.dev_carve_out, "test": config.test_carve_out}
    problems = []
    groups: dict[str, dict[Split, float | None]] = {}
    for split, stem in config.stems().items():
        if not stem or any(c in stem for c in "/\\") or stem in (".", ".."):
            problems.append(f"{split}_split must be a file stem such as 'val', got {stem!r}")
        frac = carve[split]
        if split != "train" and not 0.0 <= frac < 1.0:
            problems.append(f"{split}_carve_out must be in [0, 1), got {frac}")
        group = groups.setdefault(stem, {})
        if not group:
            if frac:
                problems.append(
                    f"{split}_carve_out={frac} but {split}_split={stem!r} is not shared with an earlier split "
                    f"(train < dev < test), so there is nothing to carve it from; set {split}_carve_out=0"
                )
            group[split] = None
        else:
            if frac <= 0:
                others = " and ".join(f"{s}_split" for s in group)
                problems.append(
                    f"{split}_split={stem!r} is also {others}: set {split}_carve_out to the fraction of "
                    f"{stem!r} to use as {split} (e.g. 0.1)"
                )
            group[split] = frac
    for stem, group in groups.items():
        total = sum(f for f in group.values() if f)
        if total >= 1.0:
            problems.append(f"the carve-outs of {stem!r} sum to {total:g}; they must leave something (< 1)")
    if config.carve_seed < 0:
        problems.append(f"carve_seed must be >= 0, got {config.carve_seed}")
    if problems:
        raise RatbenchError(f"split mapping: {'; '.join(problems)}")
    return groups


def carve_indices(
    n: int,
    group: Mapping[Split, float | None],
    split: Split,
    seed: int,
    units: Sequence[Hashable] | None = None,
) -> list[int]:
    """Indices (sorted) of the ``n`` records of a file that ``split`` gets.

    A file read by one split goes to it whole. Otherwise the records are grouped into units
    (``units[i]`` is the unit of record ``i``; by default every record is its own unit), the
    units are permuted by a generator seeded with ``seed`` alone, and the permutation is cut in
    order: whole units for ``dev`` (if it shares the file) up to the unit boundary nearest to
    ``round(dev_carve_out * n)`` records (at least one unit), then likewise for ``test``, and the
    rest goes to the group's first split. With one record per unit the sizes are exact. The parts
    are disjoint and cover the file, and ``dev`` does not change when only ``test_carve_out`` does.
    """
    if len(group) == 1:
        return list(range(n))
    members: dict[Hashable, list[int]] = {}
    for i in range(n):
        members.setdefault(i if units is None else units[i], []).append(i)
    keys = list(members)
    perm = np.random.default_rng(seed).permutation(len(keys))
    parts: dict[Split, list[int]] = {}
    pos = 0
    for s in SPLITS:
        frac = group.get(s)
        if frac is None:
            continue
        target = math.floor(frac * n + 0.5)
        taken: list[int] = []
        while len(taken) < target and pos < len(perm):
            unit = members[keys[perm[pos]]]
            if taken and len(taken) + len(unit) - target > target - len(taken):
                break  # stopping here is nearer to the target than taking this unit
            taken.extend(unit)
            pos += 1
        parts[s] = taken
    chosen = parts[split] if group[split] is not None else [i for k in perm[pos:] for i in members[keys[k]]]
    return sorted(chosen)


def _read_lines(path: Path) -> tuple[list[tuple[int, str]], list[int]]:
    """The non-blank lines of ``path`` with their 1-based line numbers, and the numbers of the
    lines that are not UTF-8 text (for ``bad_line``: one bad byte costs its line, not the file)."""
    lines, undecodable = [], []
    with path.open("rb") as f:
        for no, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                undecodable.append(no)
                continue
            if line.strip():
                lines.append((no, line.rstrip("\r\n")))
    return lines, undecodable


def _split_lines(adapter: DatasetAdapter[Any], split: Split) -> tuple[Path, list[tuple[int, str]]]:
    """A split's file and its lines (``_read_lines``), its undecodable lines reported as bad."""
    path = adapter.require_file(split, adapter.files()[split])
    lines, undecodable = _read_lines(path)
    for line_no in undecodable:
        adapter.bad_line(path, line_no, "not UTF-8 text")
    return path, lines


class _Bad(Exception):
    """A malformed line (internal: turned into ``bad_line``)."""


def _json_object(text: str, required: Sequence[str]) -> dict[str, Any]:
    """A line's JSON object holding every ``required`` key, else ``_Bad`` saying what is wrong."""
    try:
        row = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Bad(f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(row, dict):
        raise _Bad(f"expected a JSON object, got {type(row).__name__}")
    missing = [k for k in required if k not in row]
    if missing:
        raise _Bad(f"missing key(s) {', '.join(missing)}")
    return row


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _doc_unit(text: str, index: int) -> tuple[str, str | int]:
    """The document of an annotation line (first docid, else annotation_id up to ':'), for
    ``carve_by=document``; a line that cannot tell is a unit of its own (``read`` reports it)."""
    try:
        row = json.loads(text)
        docids = row.get("docids") or [row["annotation_id"].split(":", 1)[0]]
        return ("doc", str(docids[0]))
    except Exception:
        return ("line", index)


# --------------------------------------------------------------------------------------------
# ERASER (standard layout)
# --------------------------------------------------------------------------------------------


@register_dataset("eraser")
class Eraser(DatasetAdapter["Eraser.Config"]):
    """ERASER tasks (DeYoung et al. 2020) from the standard ``<split>.jsonl`` + ``docs/`` layout.

    Folder: ``<data-dir>/eraser/<subset>/`` or ``<data-dir>/<subset>/`` (so ``--data-dir`` may be
    the root above ``eraser/`` or ``eraser/`` itself), holding ``<stem>.jsonl`` annotation files
    and ``docs/<docid>`` documents (one sentence per line, tokens separated by spaces).

    Per annotation line (``annotation_id, classification, docids, evidences, query``):

    * tokens: the document's tokens, all lines concatenated in order, read as ERASER's own
      ``load_documents`` does (lines stripped, empty lines dropped, split on single spaces, empty
      strings dropped); lowercased if ``lowercase``. The document is ``docids`` (deduplicated,
      in order); if ``docids`` is null or empty (MultiRC), it is the ``annotation_id`` up to the
      first ``:``. Several docids are concatenated in that order and evidence offsets shifted
      by the length of the documents before them (every ERASER subset has one document per
      annotation, so this is only a safeguard).
    * query: the ``query`` string split on spaces (lowercased if ``lowercase``); never part of
      the tokens or of the rationale. The GRU methods currently ignore it.
    * label: the index of ``classification`` in :data:`LABELS` (e.g. fever REFUTES=0, SUPPORTS=1;
      evidence_inference: significantly decreased / no significant difference / significantly
      increased = 0 / 1 / 2, so that subset's adapter has ``num_classes == 3``, see below).
    * rationale (``test`` split only): 1 on every token covered by an evidence span
      (``start_token`` inclusive, ``end_token`` exclusive, in the coordinates of the evidence's
      document) of any evidence group, 0 elsewhere.

    Malformed lines (bad JSON, missing keys, unknown label, evidence outside its document,
    evidence on a document the annotation does not use, duplicate ``annotation_id``) go through
    ``bad_line``; a missing document file raises ``MissingDataError`` naming its path.

    Splits: ratbench ``train``/``dev``/``test`` read the file stems ``train_split``/``dev_split``/
    ``test_split``, with seeded disjoint carve-outs when they share a file (:class:`SplitMapConfig`,
    ``carve_by``); ``datasets/eraser.md`` has the ``--set`` commands.

    ``num_classes`` and ``label_names`` are set per instance (``evidence_inference`` has 3
    classes; the class-level default is 2): a harness reads them from the adapter instance.
    """

    description = "ERASER rationale tasks (FEVER, MultiRC, Movies, BoolQ, Evidence Inference), jsonl + docs/ layout"
    subsets = ("fever", "multirc", "movies", "boolq", "evidence_inference")
    version = "1"
    source = ERASER_SOURCE

    @dataclasses.dataclass(frozen=True)
    class Config(SplitMapConfig):
        """Split mapping (ERASER file stems ``train``/``val``/``test``), carve-outs and casing."""

        max_len: int = 512
        """Keep the first ``max_len`` document tokens; 512 keeps about 99% of the FEVER and MultiRC
        val gold tokens (256 would lose 13% / 16%)."""
        lowercase: bool = True
        """Lowercase document and query tokens (GloVe 6B is lowercase; ERASER documents are cased)."""
        carve_by: Literal["annotation", "document"] = "annotation"
        """Unit of the carve-outs: single annotations (exact fractions), or whole documents (every
        annotation of a document lands in the same split, fractions met to within one document), so
        that no dev/test document is also seen in train. Many annotations share a document
        (FEVER val: 6,122 claims on 570 documents; MultiRC val: 3,214 on 56 passages)."""

    def __init__(self, subset: str, config: DataConfig, data_dir: Path | None = None) -> None:
        if subset not in self.subsets:
            raise RatbenchError(f"unknown eraser subset {subset!r}; available: {', '.join(self.subsets)}")
        super().__init__(subset, config, data_dir)
        self.labels = LABELS[subset]
        # Per-subset class count and names (evidence_inference has 3); the runner reads the instance.
        self.num_classes = len(self.labels)
        self.label_names = self.labels
        self._groups = split_groups(self.config)
        self._docs: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {}

    def folder(self) -> Path:
        """``<root>/eraser/<subset>`` or ``<root>/<subset>``."""
        return self.dataset_dir(self.subset) / self.subset

    def files(self) -> Mapping[str, Path]:
        """The annotation file of each ratbench split (shared files appear under each role)."""
        folder = self.folder()
        return {split: folder / f"{stem}.jsonl" for split, stem in self.config.stems().items()}

    def content_paths(self) -> Mapping[str, Path]:
        """The annotation files and the ``docs/`` folder."""
        return {**self.files(), "docs": self.folder() / "docs"}

    def missing_files(self) -> list[MissingDataError]:
        """The missing annotation files, else a missing ``docs/`` folder, else the first document
        an annotation names that is not there (so that a missing ``docs/<docid>`` stops the run
        before any cell starts)."""
        problems = super().missing_files()
        docs = self.folder() / "docs"
        if problems or not docs.is_dir():
            return problems or [
                MissingDataError(f"{self.name}: missing documents folder {docs}; get it from {self.source}")
            ]
        for path in dict.fromkeys(self.files().values()):
            lines, _ = _read_lines(path)
            for line_no, text in lines:
                unit = _doc_unit(text, line_no)
                docid = unit[1] if unit[0] == "doc" else None  # a malformed line is read()'s to report
                if isinstance(docid, str) and "/" not in docid and not (docs / docid).is_file():
                    return [
                        MissingDataError(
                            f"{self.name}.{self.subset}: missing document file {docs / docid} (docid {docid!r}, "
                            f"used at {path}:{line_no}); get the documents from {self.source}"
                        )
                    ]
        return []

    def read(self, split: Split) -> Iterator[Example]:
        """Yield the annotations of ``split`` (file order, after the carve-out)."""
        cfg = self.config
        path, lines = _split_lines(self, split)
        stem = cfg.stems()[split]
        group = self._groups[stem]
        units = [_doc_unit(text, i) for i, (_, text) in enumerate(lines)] if cfg.carve_by == "document" else None
        seen: set[str] = set()
        for i in carve_indices(len(lines), group, split, cfg.carve_seed, units if len(group) > 1 else None):
            line_no, text = lines[i]
            try:
                example = self._parse(text, path, line_no, annotated=split == "test")
                if example.id in seen:
                    raise _Bad(f"duplicate annotation_id {example.id!r}")
            except _Bad as exc:
                self.bad_line(path, line_no, str(exc))
                continue
            seen.add(example.id)
            yield example

    def _parse(self, text: str, path: Path, line_no: int, annotated: bool) -> Example:
        row = _json_object(text, REQUIRED_KEYS)
        ann_id = row["annotation_id"]
        if not isinstance(ann_id, str) or not ann_id:
            raise _Bad(f"annotation_id must be a non-empty string, got {ann_id!r}")
        label_str = row["classification"]
        if label_str not in self.labels:
            raise _Bad(f"unknown label {label_str!r} for eraser.{self.subset}; expected one of {list(self.labels)}")
        docids = row.get("docids") or [ann_id.split(":", 1)[0]]
        if not isinstance(docids, list) or not all(isinstance(d, str) and d for d in docids):
            raise _Bad(f"docids must be null or a list of non-empty strings, got {docids!r}")
        query = row["query"]
        if query is not None and not isinstance(query, str):
            raise _Bad(f"query must be a string or null, got {type(query).__name__}")

        tokens: list[str] = []
        sentences: list[int] = []  # the sentence of each token, numbered across the documents
        offsets: dict[str, tuple[int, int]] = {}  # docid -> (offset, length)
        for docid in dict.fromkeys(docids):
            doc, doc_sentences = self._document(docid, path, line_no)
            offsets[docid] = (len(tokens), len(doc))
            first = sentences[-1] + 1 if sentences else 0
            tokens.extend(doc)
            sentences.extend(first + sentence for sentence in doc_sentences)
        if not tokens:
            raise _Bad(f"document(s) {', '.join(offsets)} have no tokens")

        gold = np.zeros(len(tokens), dtype=np.int8)
        evidences = row["evidences"]
        if not isinstance(evidences, list) or not all(isinstance(g, list) for g in evidences):
            raise _Bad("evidences must be a list of evidence groups (lists)")
        for group in evidences:
            for ev in group:
                if not isinstance(ev, dict) or not all(k in ev for k in ("docid", "start_token", "end_token")):
                    raise _Bad("each evidence needs docid, start_token and end_token")
                start, end, docid = ev["start_token"], ev["end_token"], ev["docid"]
                if not isinstance(docid, str) or docid not in offsets:
                    raise _Bad(f"evidence on document {docid!r}, not one of the annotation's {list(offsets)}")
                offset, length = offsets[docid]
                if not (_is_int(start) and _is_int(end) and 0 <= start <= end <= length):
                    raise _Bad(f"evidence span [{start!r}, {end!r}) is outside document {docid!r} of {length} tokens")
                gold[offset + start : offset + end] = 1

        lowercase = self.config.lowercase
        query_tokens = None
        if query:
            query_tokens = tuple(t.lower() if lowercase else t for t in query.split(" ") if t) or None
        rationale = tuple(int(g) for g in gold) if annotated else None
        # Export needs the document id; concatenated documents (never seen in the real subsets)
        # keep the first one, whose offsets are unchanged.
        return Example(
            ann_id, tuple(tokens), self.labels.index(label_str), rationale, query_tokens, docids[0], tuple(sentences)
        )

    def _document(self, docid: str, path: Path, line_no: int) -> tuple[tuple[str, ...], tuple[int, ...]]:
        """The tokens of ``docs/<docid>`` and the sentence (non-blank line) of each (cached)."""
        if docid in self._docs:
            return self._docs[docid]
        if any(c in docid for c in "/\\") or docid in (".", ".."):
            raise _Bad(f"docid {docid!r} is not a plain file name")
        doc_path = self.folder() / "docs" / docid
        if not doc_path.is_file():
            raise MissingDataError(
                f"{self.name}.{self.subset}: missing document file {doc_path} (docid {docid!r}, used at "
                f"{path}:{line_no}); ERASER keeps docs/<docid> next to the jsonl files; get them from {self.source}"
            )
        try:
            text = doc_path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise DataFormatError(f"{doc_path}: not UTF-8 text ({exc})") from exc
        lowercase = self.config.lowercase
        lines = [
            [tok.lower() if lowercase else tok for tok in line.strip().split(" ") if tok] for line in text.splitlines()
        ]
        lines = [line for line in lines if line]
        tokens = tuple(tok for line in lines for tok in line)
        sentences = tuple(number for number, line in enumerate(lines) for _ in line)
        self._docs[docid] = (tokens, sentences)
        return self._docs[docid]


# --------------------------------------------------------------------------------------------
# Movies, bert-base-uncased word pieces
# --------------------------------------------------------------------------------------------


@register_dataset("movies_wordpiece")
class MoviesWordpiece(DatasetAdapter["MoviesWordpiece.Config"]):
    """ERASER Movie Reviews as bert-base-uncased word-piece ids with per-piece human rationales.

    Files: ``<stem>.json`` in ``<data-dir>/movies_wordpiece/``, ``<data-dir>/`` or
    ``<data-dir>/eraser/movies_wordpiece/``; JSON lines ``{"label_ids": ["0"], "input_ids":
    [[101, ...]], "tag_ids": [0, 1, ...]}`` (other keys ignored). The shared copy has
    ``train_25`` (400 reviews, a quarter of ERASER train) and ``dev`` (200).

    * tokens: the word-piece ids written as decimal strings (``"2045"``), so the vocabulary is
      the set of ids seen in ``train``; only the ``random`` embedding provider is meaningful
      (a GloVe file would match the strings to number words), so another choice is an error.
      ``[CLS]`` (101), ``[SEP]`` (102) and ``[PAD]`` (0) positions are dropped with their tags
      unless ``keep_special`` (they are not text, are tagged 0 in the files, and a constant
      first token invites position shortcuts).
    * label: ``int(label_ids[0])``, 0 negative, 1 positive.
    * rationale (``test`` split only): ``tag_ids``, which must have one 0/1 value per id of
      ``input_ids[0]``.

    Default mapping: train = 80% of ``train_25``, dev = the other 20% (``carve_seed`` 0),
    test = ``dev``.
    """

    description = "ERASER Movie Reviews as bert-base-uncased word-piece ids (ids used as tokens) with rationales"
    subsets = ("main",)
    version = "1"
    source = "yuelinan/codes-of-SSR (movie/), ERASER Movie Reviews tokenized with bert-base-uncased"
    tokens_are_piece_ids = True  # the hf encoder uses the ids as they are

    @dataclasses.dataclass(frozen=True)
    class Config(SplitMapConfig):
        """File stems (``train_25``, ``dev``), carve-outs and special-token handling."""

        max_len: int = 512
        """Keep the first ``max_len`` pieces (the files are already cut to 512 with [CLS]/[SEP])."""
        train_split: str = "train_25"
        """File stem read as ratbench ``train``."""
        dev_split: str = "train_25"
        """File stem read as ratbench ``dev`` (carved out of ``train_25`` by default)."""
        test_split: str = "dev"
        """File stem read as ratbench ``test`` (the only split carrying the rationale)."""
        dev_carve_out: float = 0.2
        """Fraction of the file ``dev`` shares with ``train`` (0.2 of train_25 = 80 reviews)."""
        keep_special: bool = False
        """Keep the [CLS]/[SEP]/[PAD] positions (ids 101/102/0) as tokens instead of dropping them."""

        def __post_init__(self) -> None:
            super().__post_init__()
            if self.embeddings != "random":
                raise RatbenchError(
                    f"movies_wordpiece uses word-piece ids as tokens, which no word-embedding file covers; "
                    f"use --set movies_wordpiece.embeddings=random, got {self.embeddings!r}"
                )

    def __init__(self, subset: str, config: DataConfig, data_dir: Path | None = None) -> None:
        if subset not in self.subsets:
            raise RatbenchError(f"unknown movies_wordpiece subset {subset!r}; available: {', '.join(self.subsets)}")
        super().__init__(subset, config, data_dir)
        self._groups = split_groups(self.config)

    def folder(self) -> Path:
        """The first of ``<root>/movies_wordpiece``, ``<root>``, ``<root>/eraser/movies_wordpiece`` that
        holds one of the configured files (else the first, for the missing-file message)."""
        root = Path(self.data_dir) if self.data_dir is not None else Path("data")
        candidates = (root / self.name, root, root / "eraser" / self.name)
        names = [f"{stem}.json" for stem in self.config.stems().values()]
        for folder in candidates:
            if any((folder / name).is_file() for name in names):
                return folder
        return candidates[0]

    def files(self) -> Mapping[str, Path]:
        """The JSON-lines file of each ratbench split."""
        folder = self.folder()
        return {split: folder / f"{stem}.json" for split, stem in self.config.stems().items()}

    def read(self, split: Split) -> Iterator[Example]:
        """Yield the reviews of ``split`` (file order, after the carve-out)."""
        cfg = self.config
        path, lines = _split_lines(self, split)
        stem = cfg.stems()[split]
        for i in carve_indices(len(lines), self._groups[stem], split, cfg.carve_seed):
            line_no, text = lines[i]
            try:
                yield self._parse(text, f"{stem}:{line_no}", annotated=split == "test")
            except _Bad as exc:
                self.bad_line(path, line_no, str(exc))

    def _parse(self, text: str, example_id: str, annotated: bool) -> Example:
        row = _json_object(text, ("label_ids", "input_ids", "tag_ids"))
        label_ids, input_ids, tags = row["label_ids"], row["input_ids"], row["tag_ids"]
        if not isinstance(label_ids, list) or not label_ids or str(label_ids[0]) not in ("0", "1"):
            raise _Bad(f"label_ids[0] must be 0 or 1, got {label_ids!r}")
        if not (isinstance(input_ids, list) and input_ids and isinstance(input_ids[0], list)):
            raise _Bad("input_ids must be a list holding one list of ids")
        ids = input_ids[0]
        if not all(_is_int(i) and i >= 0 for i in ids):
            raise _Bad("input_ids[0] must hold non-negative integers")
        if not isinstance(tags, list) or not all(t in (0, 1) and not isinstance(t, bool) for t in tags):
            raise _Bad("tag_ids must be a list of 0/1 values")
        if len(tags) != len(ids):
            raise _Bad(f"tag_ids has {len(tags)} values but input_ids[0] has {len(ids)} ids")
        keep = self.config.keep_special
        pairs = [(i, t) for i, t in zip(ids, tags, strict=True) if keep or i not in SPECIAL_IDS]
        if not pairs:
            raise _Bad("no word pieces besides [CLS]/[SEP]/[PAD]")
        tokens = tuple(str(i) for i, _ in pairs)
        rationale = tuple(int(t) for _, t in pairs) if annotated else None
        return Example(example_id, tokens, int(str(label_ids[0])), rationale)
