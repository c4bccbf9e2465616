"""BeerAdvocate multi-aspect reviews in the files of Lei et al. (2016), parsed as the jugechengzi
reference code (VER, FR, MGR, A2I) parses them. The file layout is documented in ``datasets/beer.md``.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from ratbench.config import ConfigValueError
from ratbench.data.adapter import DataConfig, DatasetAdapter, balance_classes
from ratbench.errors import DataFormatError, RatbenchError
from ratbench.registry import register_dataset
from ratbench.types import Example, Split

ASPECTS: tuple[str, ...] = ("appearance", "aroma", "palate", "taste", "overall")
"""The order of the five scores on every line (look, smell, feel, taste, overall)."""
ANNOTATION_FILE = "annotations.json"
REVIEW_STEMS: dict[str, str] = {"decorrelated": "reviews.aspect{aspect}", "correlated": "reviews.260k"}
"""File name stem of each variant; the files are ``{stem}.{train,heldout}.txt(.gz)``."""
SPLIT_FILES: dict[str, str] = {"train": "train", "dev": "heldout"}


def _open_lines(path: Path) -> Iterator[tuple[int, str | None]]:
    """Yield ``(line_no, line)`` (1-based) of a UTF-8 text file, gzip-compressed if its name ends
    in ``.gz``, with universal newlines as in the reference's ``gzip.open(path, "rt")``.
    ``line`` is None for a line that is not valid UTF-8."""
    raw = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # noqa: SIM115
    line_no = 0
    with io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline=None) as text:
        lines = iter(text)
        while True:
            try:
                line = next(lines)
            except StopIteration:
                return
            except (OSError, EOFError) as exc:  # a corrupt or truncated gzip file
                raise DataFormatError(f"{path}: unreadable after line {line_no}: {exc}") from exc
            line_no += 1
            if not line.isascii():
                try:
                    line.encode("utf-8")
                except UnicodeEncodeError:
                    yield line_no, None
                    continue
            yield line_no, line


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@register_dataset("beer")
class Beer(DatasetAdapter["Beer.Config"]):
    """BeerAdvocate reviews (Lei et al. 2016): one binary aspect rating per subset, human rationales on the test set.

    Subsets ``appearance``, ``aroma``, ``palate`` use score index 0, 1, 2 of each line and the
    annotation spans under key ``"0"``, ``"1"``, ``"2"``. Splits: ``train`` = the ``train`` file,
    ``dev`` = the ``heldout`` file, ``test`` = ``annotations.json`` (the only annotated split).

    Parsing follows the jugechengzi reference loader (METHODS.md §1.1):

    * review line: ``s0 s1 s2 s3 s4<TAB>text``; exactly two tab-separated fields and five scores
      in [0, 1]. Label: ``score <= neg_threshold`` -> 0, ``score >= pos_threshold`` -> 1, in
      between -> the line is dropped (same rule on the annotation set).
    * tokens: ``text.strip().split(" ")``, each token stripped again, no lowercasing; empty tokens
      from double spaces are kept (they become OOV tokens later, as in the reference);
      ``split=whitespace`` splits on any whitespace instead (Inter_RAT's reference).
    * train and dev examples keep all their tokens; the harness truncates them to ``max_len``
      before the vocabulary lookup. Annotation examples are truncated to ``max_len`` here, so that
      ``rationale`` (one 0/1 per kept token) lines up with ``tokens``: spans are end-exclusive,
      a span with ``start >= max_len`` is dropped and ``end`` is clipped to ``max_len``, exactly
      as the reference builds its gold vector. Annotation examples whose span list for the
      aspect is empty are skipped (``skip_unannotated=false`` keeps them, as Inter_RAT does).
    * balancing: the majority class is down-sampled to the minority size with
      ``random.Random(balance_seed).sample`` (the same draw as the reference's ``random.seed``
      + ``random.sample``, without touching the global generator), giving positives then
      negatives. It never depends on the run seed.

    Example ids are ``f"{split}-{line_no}"`` with the 1-based line number in the file read.
    Malformed lines raise ``DataFormatError`` naming file and line (``lenient=true``: skipped and
    counted in ``skipped``).
    """

    description = "BeerAdvocate multi-aspect reviews of Lei et al. (2016) with human rationales (files required)"
    subsets = ("appearance", "aroma", "palate")
    version = "1"
    source = (
        "the BeerAdvocate files of Lei et al. (2016), http://people.csail.mit.edu/taolei/beer/ "
        "(withdrawn by the data owner; ask the authors)"
    )

    @dataclasses.dataclass(frozen=True)
    class Config(DataConfig):
        """How the BeerAdvocate files are read, labelled and balanced (all enter the data's identity)."""

        bounds: ClassVar[dict[str, str]] = {"neg_threshold": "[0, 1]", "pos_threshold": "[0, 1]"}

        variant: Literal["decorrelated", "correlated"] = "decorrelated"
        """``decorrelated``: the per-aspect files ``reviews.aspect{N}.{train,heldout}.txt(.gz)``
        (VER, FR, A2I); ``correlated``: the shared ``reviews.260k.{train,heldout}.txt(.gz)`` (MGR)."""
        neg_threshold: float = 0.4
        """A score ``<= neg_threshold`` is label 0 (inclusive)."""
        pos_threshold: float = 0.6
        """A score ``>= pos_threshold`` is label 1 (inclusive); scores strictly between the two
        thresholds are dropped, in every split."""
        balance_train: bool = True
        """Down-sample the majority class of ``train`` to the size of the minority class."""
        balance_seed: int = 20226666
        """Seed of the balancing draw: 20226666 in VER/A2I/MGR, 12252018 in FR/DMR. Independent of
        the run seed."""
        balance_dev: bool | None = None
        """Balance ``dev`` too; None = as the reference: only for the ``correlated`` variant."""
        split: Literal["space", "whitespace"] = "space"
        """How a review's text is cut into tokens: on single spaces (the jugechengzi code:
        ``text.strip().split(" ")``, a double space gives an empty token) or on any run of
        whitespace (Inter_RAT's reference: ``line.split()``)."""
        skip_unannotated: bool = True
        """Leave out annotated reviews without a span for the aspect (the jugechengzi code); False
        keeps them with an all-zero rationale (Inter_RAT's reference)."""

        def __post_init__(self) -> None:
            super().__post_init__()  # the bounds
            if not self.neg_threshold < self.pos_threshold:
                raise ConfigValueError(
                    "pos_threshold", f"must be above neg_threshold ({self.neg_threshold}), got {self.pos_threshold}"
                )

    # -- files ----------------------------------------------------------------------------
    @property
    def aspect(self) -> int:
        """Score index of the subset (0 appearance, 1 aroma, 2 palate)."""
        if self.subset not in self.subsets:
            raise RatbenchError(f"unknown beer subset {self.subset!r}; available: {', '.join(self.subsets)}")
        return self.subsets.index(self.subset)

    def _review_names(self, split: str) -> tuple[str, str]:
        stem = REVIEW_STEMS[self.config.variant].format(aspect=self.aspect)
        name = f"{stem}.{SPLIT_FILES[split]}.txt"
        return name + ".gz", name

    def _folder(self) -> Path:
        """The folder holding the files: the one with ``annotations.json``, else the one with the
        train file (so a missing annotation file is reported where the others are)."""
        for marker in (ANNOTATION_FILE, *self._review_names("train")):
            folder = self.dataset_dir(marker)
            if (folder / marker).exists():
                return folder
        return self.dataset_dir(ANNOTATION_FILE)

    def files(self) -> Mapping[str, Path]:
        """The three files read, by split. A review file may be ``.txt.gz`` or ``.txt`` (the
        ``.gz`` one is used if both exist, and named if neither does)."""
        folder = self._folder()
        out: dict[str, Path] = {}
        for split in ("train", "dev"):
            gz, plain = (folder / name for name in self._review_names(split))
            out[split] = plain if plain.is_file() and not gz.is_file() else gz
        out["test"] = folder / ANNOTATION_FILE
        return out

    # -- reading --------------------------------------------------------------------------
    def read(self, split: Split) -> Iterator[Example]:
        """Yield the examples of ``split`` (balanced where configured), in a fixed order."""
        config = self.config
        if split == "test":
            yield from self._read_annotations(self.files()["test"], config)
            return
        if split not in SPLIT_FILES:
            raise RatbenchError(f"unknown split {split!r}; expected train, dev or test")
        self.check_files()
        examples = list(self._read_reviews(self.files()[split], split, config))
        balance = config.balance_train if split == "train" else config.balance_dev
        if balance is None:
            balance = config.variant == "correlated"
        if balance:
            examples = balance_classes(examples, config.balance_seed)
        yield from examples

    def _label(self, score: float, config: Beer.Config) -> int | None:
        if score <= config.neg_threshold:
            return 0
        if score >= config.pos_threshold:
            return 1
        return None

    def _read_reviews(self, path: Path, split: str, config: Beer.Config) -> Iterator[Example]:
        aspect = self.aspect
        for line_no, line in _open_lines(path):
            if line is None:
                self.bad_line(path, line_no, "not valid UTF-8 text")
                continue
            fields = line.split("\t")
            if len(fields) != 2:
                self.bad_line(path, line_no, f"expected 2 tab-separated fields (scores, text), got {len(fields)}")
                continue
            parts = fields[0].split()
            if len(parts) != len(ASPECTS):
                self.bad_line(path, line_no, f"expected {len(ASPECTS)} space-separated scores, got {len(parts)}")
                continue
            try:
                scores = [float(p) for p in parts]
            except ValueError:
                self.bad_line(path, line_no, f"scores must be numbers, got {fields[0]!r}")
                continue
            if not all(0.0 <= s <= 1.0 for s in scores):
                self.bad_line(path, line_no, f"scores must lie in [0, 1], got {fields[0]!r}")
                continue
            label = self._label(scores[aspect], config)
            if label is None:
                continue
            text = fields[1]
            tokens = (
                tuple(text.split())
                if config.split == "whitespace"
                else tuple(t.strip() for t in text.strip().split(" "))
            )
            yield Example(f"{split}-{line_no}", tokens, label)

    def _read_annotations(self, path: Path, config: Beer.Config) -> Iterator[Example]:
        self.check_files()
        aspect = self.aspect
        key = str(aspect)
        max_len = config.max_len
        for line_no, line in _open_lines(path):
            if line is None:
                self.bad_line(path, line_no, "not valid UTF-8 text")
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                self.bad_line(path, line_no, f"not a JSON object ({exc.msg})")
                continue
            problem = _annotation_problem(item, key)
            if problem:
                self.bad_line(path, line_no, problem)
                continue
            spans = item[key]
            if not spans and config.skip_unannotated:  # no rationale for this aspect (jugechengzi code)
                continue
            label = self._label(float(item["y"][aspect]), config)
            if label is None:
                continue
            tokens = tuple(t.strip() for t in item["x"][:max_len])
            gold = [0] * len(tokens)
            for start, end in spans:
                if start >= max_len:
                    continue
                for i in range(start, min(end, max_len)):
                    gold[i] = 1
            yield Example(f"test-{line_no}", tokens, label, tuple(gold))


def _annotation_problem(item: Any, key: str) -> str | None:
    """What is wrong with one parsed line of ``annotations.json`` for the aspect ``key``, or None."""
    if not isinstance(item, dict):
        return f"expected a JSON object, got {type(item).__name__}"
    missing = [k for k in ("x", "y", key) if k not in item]
    if missing:
        return f"missing key(s) {', '.join(map(repr, missing))}"
    x, y, spans = item["x"], item["y"], item[key]
    if not isinstance(x, list) or not all(isinstance(t, str) for t in x):
        return '"x" must be a list of token strings'
    if not isinstance(y, list) or len(y) != len(ASPECTS) or not all(_is_number(s) for s in y):
        return f'"y" must be a list of {len(ASPECTS)} numbers, got {y!r}'
    if not all(0.0 <= s <= 1.0 for s in y):
        return f'"y" scores must lie in [0, 1], got {y!r}'
    if not isinstance(spans, list):
        return f"{key!r} must be a list of [start, end] spans, got {spans!r}"
    for span in spans:
        if not (isinstance(span, list) and len(span) == 2 and all(type(v) is int for v in span)):
            return f"{key!r}: a span must be [start, end] with integer bounds, got {span!r}"
        start, end = span
        if not 0 <= start < end <= len(x):
            return f"{key!r}: span {span} out of range for {len(x)} tokens (need 0 <= start < end <= {len(x)})"
    return None
