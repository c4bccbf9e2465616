"""``ratbench data check``: validate a dataset's files and describe what the harness will see.

Per split: example and label counts after the adapter's filtering and balancing, average
length, the share of examples truncated at ``max_len``, the OOV rate against the chosen
embeddings, the gold rationale sparsity where there is gold, and an overlap audit between the
splits (normalized text). A split whose files are missing is reported, not fatal, so a partial
copy (e.g. only the annotated set) can still be checked.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tabulate import tabulate

from ratbench.data import DatasetAdapter
from ratbench.errors import MissingDataError
from ratbench.evaluate import safe_div
from ratbench.text import build_vocab
from ratbench.types import SPLITS, Example


def normalized_hash(tokens: tuple[str, ...]) -> str:
    """sha1 of the lowercased text with whitespace collapsed (for overlap audits)."""
    return hashlib.sha1(" ".join(" ".join(tokens).lower().split()).encode()).hexdigest()


@dataclass
class SplitStats:
    """What one split looks like after the adapter's preprocessing."""

    split: str
    n: int = 0
    labels: dict[int, int] = field(default_factory=dict)
    avg_len: float = 0.0
    truncated: float = 0.0  # share of examples longer than max_len
    oov: float | None = None  # share of kept tokens without a vector (None: no vocabulary)
    gold_sparsity: float | None = None  # gold tokens / kept tokens, in percent
    missing: str | None = None  # why the split could not be read


@dataclass
class DataReport:
    """The result of ``check``."""

    name: str
    splits: list[SplitStats]
    overlap: dict[str, int]
    skipped: dict[str, int]
    extra: dict[str, Any]
    label_names: tuple[str, ...] = ()


def _split_stats(split: str, examples: list[Example], vocab_words: dict[str, int] | None, max_len: int) -> SplitStats:
    kept = [ex.tokens[:max_len] for ex in examples]
    n_kept = sum(len(tokens) for tokens in kept)
    stats = SplitStats(
        split=split,
        n=len(examples),
        labels=dict(sorted(Counter(ex.label for ex in examples).items())),
        avg_len=safe_div(sum(len(ex.tokens) for ex in examples), len(examples)),
        truncated=100 * safe_div(sum(len(ex.tokens) > max_len for ex in examples), len(examples)),
    )
    if vocab_words is not None:
        stats.oov = 100 * safe_div(sum(t not in vocab_words for tokens in kept for t in tokens), n_kept)
    if examples and all(ex.rationale is not None for ex in examples):
        gold = sum(sum(ex.rationale[:max_len]) for ex in examples)  # type: ignore[index]
        stats.gold_sparsity = 100 * safe_div(gold, n_kept)
    return stats


def check(adapter: DatasetAdapter) -> DataReport:
    """Read every split of ``adapter`` (raising on malformed lines unless lenient) and describe it."""
    examples: dict[str, list[Example]] = {}
    missing: dict[str, str] = {}
    for split in SPLITS:
        try:
            examples[split] = list(adapter.read(split))
        except MissingDataError as exc:
            missing[split] = str(exc)
    config = adapter.config
    vocab_words = None
    if "train" in examples or config.embeddings != "random":
        vocab = build_vocab(config, examples.get("train", []))
        vocab_words = vocab.word_to_id
    stats = []
    for split in SPLITS:
        if split in missing:
            stats.append(SplitStats(split, missing=missing[split]))
        else:
            stats.append(_split_stats(split, examples[split], vocab_words, config.max_len))
    hashes = {split: [normalized_hash(ex.tokens) for ex in exs] for split, exs in examples.items()}
    overlap = {}
    for a, b in (("test", "train"), ("dev", "train"), ("test", "dev")):
        if a in hashes and b in hashes:
            other = set(hashes[b])
            overlap[f"{a} texts also in {b}"] = sum(h in other for h in hashes[a])
    extra = adapter.overlap_report() if hasattr(adapter, "overlap_report") else {}
    name = f"{adapter.name}.{adapter.subset}"
    return DataReport(name, stats, overlap, dict(adapter.skipped), extra, tuple(adapter.label_names))


def render(report: DataReport, embeddings: str) -> str:
    """Human-readable report."""
    rows = []
    for s in report.splits:
        if s.missing:
            rows.append([s.split, "missing", "", "", "", "", ""])
            continue
        names = report.label_names
        labels = " / ".join(
            f"{names[label] if label < len(names) else label}: {count}" for label, count in s.labels.items()
        )
        gold = "" if s.gold_sparsity is None else f"{s.gold_sparsity:.1f}"
        oov = "n/a" if s.oov is None else f"{s.oov:.2f}"
        rows.append([s.split, s.n, labels, f"{s.avg_len:.1f}", f"{s.truncated:.1f}", oov, gold])
    headers = ["split", "examples", "labels", "avg len", "truncated %", f"OOV % ({embeddings})", "gold S %"]
    lines = [report.name, tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)]
    lines += [f"missing {s.split}: {s.missing}" for s in report.splits if s.missing]
    lines += [f"overlap: {key}: {count}" for key, count in report.overlap.items()]
    lines += [f"audit: {key}: {value}" for key, value in report.extra.items()]
    lines += [f"skipped malformed lines in {path}: {count}" for path, count in report.skipped.items()]
    return "\n".join(lines) + "\n"
