"""HotelReview (TripAdvisor) aspects of the R2A release (Bao et al. 2018), parsed as the
jugechengzi reference code (VER, FR, MGR, A2I) parses them, plus a train/test leakage audit.
The file layout, the published counts and the audit are documented in ``datasets/hotel.md``.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path

from ratbench.config import ConfigValueError
from ratbench.data.adapter import DataConfig, DatasetAdapter, balance_classes
from ratbench.errors import RatbenchError
from ratbench.registry import register_dataset
from ratbench.types import Example, Split

R2A_ANNOTATION = "target/hotel_{Aspect}.train"
"""Where the R2A release keeps the human-annotated reviews (the test split)."""
FLAT_ANNOTATION = "hotel_{Aspect}.annotated.tsv"
"""The same file format under a plain name directly in the dataset folder (``shared/data/hotel``)."""
ORACLE = "oracle"
"""Folder of the R2A release holding ``hotel_{Aspect}.{train,dev}`` (labels and text only)."""

# rows: (line_no, raw text, tokens, label, rationale or None)
_Row = tuple[int, str, tuple[str, ...], int, "tuple[int, ...] | None"]


def normalized_text_hash(text: str) -> bytes:
    """Hash of ``text`` lowercased with runs of whitespace collapsed to one space and the ends
    stripped: two reviews that differ only in case or spacing get the same hash."""
    return hashlib.blake2b(" ".join(text.lower().split()).encode("utf-8", "surrogateescape"), digest_size=16).digest()


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """``(line_no, fields)`` of a tab-separated file read as the reference reads it
    (``csv.reader(delimiter="\\t", quotechar=None)``); 1-based line numbers, header included."""
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quotechar=None)
        for fields in reader:
            yield reader.line_num, fields


def _is_utf8(fields: list[str]) -> bool:
    try:
        for field in fields:
            if not field.isascii():
                field.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@register_dataset("hotel")
class Hotel(DatasetAdapter["Hotel.Config"]):
    """HotelReview aspects (Bao et al. 2018, R2A): binary aspect sentiment, human rationales on the test set.

    Subsets ``location``, ``service``, ``cleanliness`` (``{Aspect}`` = Location, Service,
    Cleanliness). Splits: ``train`` = ``oracle/hotel_{Aspect}.train``, ``dev`` =
    ``oracle/hotel_{Aspect}.dev``, ``test`` = the annotated ``target/hotel_{Aspect}.train`` (or
    ``hotel_{Aspect}.annotated.tsv``, see ``annotation_file``). The dataset folder is
    ``<data root>/hotel`` or the data root itself (e.g. the R2A ``data/`` folder).

    Parsing follows the jugechengzi reference loader (METHODS.md §1.2):

    * tab-separated with ``csv.reader(delimiter="\\t", quotechar=None)``; the first row is a header
      and is skipped (a first row whose 2nd column is not ``label`` is reported as malformed).
      Oracle rows: exactly 3 columns ``task, label, text``; annotated rows: 4 or 5 columns
      ``task, label, text, rationale[, pred_att]``; columns are used by position (label 1, text 2,
      rationale 3). ``pred_att`` (model attention) is ignored.
    * ``label`` must be ``0`` or ``1``; ``text`` must not be empty.
    * tokens: train/dev ``text.strip().split(" ")``, test ``text.split(" ")`` (the reference does
      not strip annotated texts, so the rationale stays aligned), each token stripped again; no
      lowercasing (the files are lowercased); empty tokens from double spaces are kept.
    * rationale: whitespace-separated 0/1 values, one per token. The reference copies the first
      min(len, 256) values whatever the token count; here the example keeps one value per token
      and never truncates (the harness truncates tokens and rationale together). A surplus of
      trailing ``0`` values is dropped (counted in ``trimmed``; it changes nothing in the
      reference either); any other length mismatch or a value other than 0/1 is malformed.
    * balancing (train only): the majority class is down-sampled to the minority size with
      ``random.Random(balance_seed).sample`` (the reference's ``random.seed`` + ``random.sample``
      without touching the global generator), giving positives then negatives. Dev is not balanced.

    **Deviation from the reference (``remove_overlap=True``, the default)**: before balancing,
    every train example whose normalized text (lowercased, whitespace collapsed) also occurs in
    the annotated test set or in dev is removed; the reference keeps them. ``remove_overlap=false``
    restores the reference behaviour. :meth:`overlap_report` gives the counts.

    Example ids are ``f"{split}-{line_no}"`` with the 1-based line number in the file read.
    Malformed lines raise ``DataFormatError`` naming file and line (``lenient=true``: skipped and
    counted in ``skipped``). Reading ``test`` needs only the annotated file.
    """

    description = "HotelReview aspects of the R2A release (Bao et al. 2018) with human rationales (files required)"
    subsets = ("location", "service", "cleanliness")
    version = "1"
    source = "data.zip of the R2A release, https://github.com/YujiaBao/R2A (https://people.csail.mit.edu/yujia/files/r2a/data.zip)"

    @dataclasses.dataclass(frozen=True)
    class Config(DataConfig):
        """How the R2A hotel files are found, read, de-duplicated and balanced (all enter the data's identity)."""

        annotation_file: str = ""
        """The annotated (test) file, relative to the dataset folder, with ``{Aspect}`` replaced by
        Location, Service or Cleanliness. ``""``: ``target/hotel_{Aspect}.train`` (R2A layout) if it
        exists, else ``hotel_{Aspect}.annotated.tsv`` if that exists, else the R2A path is reported
        missing."""
        balance_train: bool = True
        """Down-sample the majority class of ``train`` to the size of the minority class."""
        balance_seed: int = 20226666
        """Seed of the balancing draw (20226666 in VER/A2I/MGR, 12252018 in FR/DMR); independent of
        the run seed."""
        remove_overlap: bool = True
        """Drop from ``train`` (before balancing) every review whose normalized text also occurs in
        the annotated test set or in ``dev``. ``false`` keeps them, as the reference does."""

        def __post_init__(self) -> None:
            super().__post_init__()
            try:
                self.annotation_file.format(Aspect="Location")
            except (KeyError, IndexError, ValueError) as exc:
                raise ConfigValueError(
                    "annotation_file",
                    f"may only contain the placeholder {{Aspect}}, got {self.annotation_file!r} ({exc!r})",
                ) from None

    def __init__(self, subset: str, config: DataConfig, data_dir: Path | None = None) -> None:
        super().__init__(subset, config, data_dir)
        self.trimmed: Counter[str] = Counter()
        """Annotated rows per file whose surplus of trailing 0 rationale values was dropped."""
        self._trimmed_lines: set[tuple[str, int]] = set()  # (file, line) already counted in trimmed
        self._hashes: dict[str, list[bytes]] = {}  # role -> normalized-text hashes of the valid rows

    # -- files ----------------------------------------------------------------------------
    @property
    def aspect(self) -> str:
        """``Location``, ``Service`` or ``Cleanliness``."""
        if self.subset not in self.subsets:
            raise RatbenchError(f"unknown hotel subset {self.subset!r}; available: {', '.join(self.subsets)}")
        return self.subset.capitalize()

    def _annotation_path(self) -> Path:
        choice = self.config.annotation_file
        candidates = [choice] if choice else [R2A_ANNOTATION, FLAT_ANNOTATION]
        for template in candidates:
            relative = template.format(Aspect=self.aspect)
            path = self.dataset_dir(relative) / relative
            if path.is_file():
                return path
        relative = candidates[0].format(Aspect=self.aspect)
        return self.dataset_dir(relative) / relative

    def files(self) -> Mapping[str, Path]:
        """The three files read, by split (``test`` is the annotated file)."""
        oracle = self.dataset_dir(ORACLE) / ORACLE
        return {
            "train": oracle / f"hotel_{self.aspect}.train",
            "dev": oracle / f"hotel_{self.aspect}.dev",
            "test": self._annotation_path(),
        }

    def _require(self, role: str, why: str = "") -> Path:
        """The file of ``role``; ``MissingDataError`` naming it (as ``check_files``) if absent."""
        return self.require_file(role, self.files()[role], why)

    # -- parsing --------------------------------------------------------------------------
    def _parse(self, role: str, path: Path) -> Iterator[_Row]:
        """The valid rows of the file of ``role`` in file order (malformed ones reported)."""
        annotated = role == "test"
        expected = "4 or 5 (task, label, text, rationale[, pred_att])" if annotated else "3 (task, label, text)"
        for line_no, fields in _rows(path):
            if not any(field.strip() for field in fields):  # a blank line (e.g. a trailing one)
                continue
            if line_no == 1:  # the header row, skipped as the reference does
                if len(fields) < 3 or fields[1].strip().lower() != "label":
                    got = fields[:3]
                    self.bad_line(path, line_no, f"expected a header row 'task<TAB>label<TAB>text...', got {got!r}")
                continue
            if not _is_utf8(fields):
                self.bad_line(path, line_no, "not valid UTF-8 text")
                continue
            if (len(fields) not in (4, 5)) if annotated else (len(fields) != 3):
                self.bad_line(path, line_no, f"expected {expected} tab-separated columns, got {len(fields)}")
                continue
            label_text, text = fields[1].strip(), fields[2]
            if label_text not in ("0", "1"):
                self.bad_line(path, line_no, f"label must be 0 or 1, got {fields[1]!r}")
                continue
            if not text.strip():
                self.bad_line(path, line_no, "empty text")
                continue
            tokens = tuple(sys.intern(t.strip()) for t in (text if annotated else text.strip()).split(" "))
            rationale = None
            if annotated:
                values = fields[3].split()
                if any(v not in ("0", "1") for v in values):
                    self.bad_line(path, line_no, f"rationale values must be 0 or 1, got {fields[3][:60]!r}")
                    continue
                if len(values) > len(tokens) and all(v == "0" for v in values[len(tokens) :]):
                    if (str(path), line_no) not in self._trimmed_lines:
                        self._trimmed_lines.add((str(path), line_no))
                        self.trimmed[str(path)] += 1
                    values = values[: len(tokens)]
                if len(values) != len(tokens):
                    self.bad_line(
                        path, line_no, f"rationale has {len(values)} values but the text has {len(tokens)} tokens"
                    )
                    continue
                rationale = tuple(int(v) for v in values)
            yield line_no, text, tokens, int(label_text), rationale

    def _hash_list(self, role: str, path: Path) -> list[bytes]:
        """Normalized-text hashes of the valid rows of ``role`` (one full pass, cached)."""
        if role not in self._hashes:
            self._hashes[role] = [normalized_text_hash(row[1]) for row in self._parse(role, path)]
        return self._hashes[role]

    # -- reading --------------------------------------------------------------------------
    def read(self, split: Split) -> Iterator[Example]:
        """Yield the examples of ``split``: train filtered (``remove_overlap``) then balanced
        (``balance_train``), dev and test in file order."""
        if split not in ("train", "dev", "test"):
            raise RatbenchError(f"unknown split {split!r}; expected train, dev or test")
        config = self.config
        path = self._require(split)
        if split != "train":
            for line_no, _, tokens, label, rationale in self._parse(split, path):
                yield Example(f"{split}-{line_no}", tokens, label, rationale)
            return
        held_out: set[bytes] = set()
        if config.remove_overlap:
            why = " (needed to remove train overlap; or set remove_overlap=false)"
            for role in ("test", "dev"):
                held_out.update(self._hash_list(role, self._require(role, why)))
        examples = []
        hashes = []
        for line_no, text, tokens, label, _ in self._parse("train", path):
            digest = normalized_text_hash(text)
            hashes.append(digest)
            if digest not in held_out:
                examples.append(Example(f"train-{line_no}", tokens, label))
        self._hashes.setdefault("train", hashes)
        if config.balance_train:
            examples = balance_classes(examples, config.balance_seed)
        yield from examples

    def overlap_report(self) -> dict[str, int]:
        """Leakage audit on normalized texts (lowercased, whitespace collapsed), over the valid rows
        of the files that exist (pairs with a missing file are left out):

        * ``test_in_train``, ``dev_in_train``, ``test_in_dev``: annotated (resp. dev) reviews whose
          text also occurs in train (resp. dev);
        * ``train_duplicates``: train rows repeating an earlier train row;
        * ``removed``: train rows that ``read("train")`` drops before balancing (0 with
          ``remove_overlap=false``).
        """
        hashes = {}
        for role, path in self.files().items():
            if path.is_file():
                hashes[role] = self._hash_list(role, path)
        report: dict[str, int] = {}
        for a, b in (("test", "train"), ("dev", "train"), ("test", "dev")):
            if a in hashes and b in hashes:
                other = set(hashes[b])
                report[f"{a}_in_{b}"] = sum(h in other for h in hashes[a])
        if "train" in hashes:
            report["train_duplicates"] = len(hashes["train"]) - len(set(hashes["train"]))
            if not self.config.remove_overlap:
                report["removed"] = 0
            elif "test" in hashes and "dev" in hashes:
                held_out = set(hashes["test"]) | set(hashes["dev"])
                report["removed"] = sum(h in held_out for h in hashes["train"])
        return report


__all__ = ["Hotel", "balance_classes", "normalized_text_hash"]
