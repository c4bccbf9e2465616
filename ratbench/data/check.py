"""``ratbench data check``: validate a dataset's files and describe what the harness will see.

Per split: example and label counts after the adapter's filtering and balancing, average
length, the share of examples whose document is truncated (at ``max_len``, less what the query
and separators take, in the encoder's units: words, or pieces for ``hf``), the share whose query
is cut (datasets with queries), the OOV rate against the chosen embeddings, the gold rationale
sparsity where there is gold, and an overlap audit between the splits (normalized text). A split
whose files are missing is reported, not fatal, so a partial copy (e.g. only the annotated set)
can still be checked.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tabulate import tabulate

from ratbench.counts import safe_div
from ratbench.data.adapter import DataConfig, DatasetAdapter, encoder_kind
from ratbench.data.encoders import HFEncoder, layout
from ratbench.data.vocab import build_vocab
from ratbench.errors import MissingDataError
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
    truncated: float = 0.0  # share of examples whose document is cut (max_len less the query's positions)
    query_cut: float | None = None  # share of examples whose query is cut (None: no query in the split)
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
    notes: list[str] = field(default_factory=list)  # lines printed under the table


Measure = Callable[[Example], tuple[int, int, list[int] | None]]
"""An example's query and document lengths in the encoder's units, and for pieces, the word of each."""


def _measure(adapter: DatasetAdapter) -> Measure:
    """How the cell's encoder counts: words (``word``), or word pieces of the model's tokenizer."""
    if adapter.config.encoder == "word":
        return lambda ex: (len(ex.query or ()), len(ex.tokens), None)
    encoder = HFEncoder(adapter.config, adapter.tokens_are_piece_ids)

    def pieces(ex: Example) -> tuple[int, int, list[int] | None]:
        query = len(encoder.pieces(ex.query)[0]) if ex.query else 0
        ids, words = encoder.pieces(ex.tokens)
        return query, len(ids), words

    return pieces


def _split_stats(
    split: str, examples: list[Example], vocab_words: dict[str, int] | None, config: DataConfig, measure: Measure
) -> SplitStats:
    kind = encoder_kind(config.encoder)
    kept, cut_documents, cut_queries = [], 0, 0
    for ex in examples:
        query, document, words = measure(ex)
        query_kept, document_kept = layout(query, document, config.max_len, config.max_query_len, kind)
        cut_documents += document_kept < document
        cut_queries += query_kept < query
        if words is not None:  # pieces: the words that keep at least one piece
            document_kept = words[document_kept - 1] + 1 if document_kept else 0
        kept.append(ex.tokens[:document_kept])
    n_kept = sum(len(tokens) for tokens in kept)
    stats = SplitStats(
        split=split,
        n=len(examples),
        labels=dict(sorted(Counter(ex.label for ex in examples).items())),
        avg_len=safe_div(sum(len(ex.tokens) for ex in examples), len(examples)),
        truncated=100 * safe_div(cut_documents, len(examples)),
    )
    if any(ex.query for ex in examples):
        stats.query_cut = 100 * safe_div(cut_queries, len(examples))
    if vocab_words is not None:
        stats.oov = 100 * safe_div(sum(t not in vocab_words for tokens in kept for t in tokens), n_kept)
    rationales = [ex.rationale for ex in examples if ex.rationale is not None]
    if examples and len(rationales) == len(examples):
        gold = sum(sum(rationale[: len(tokens)]) for rationale, tokens in zip(rationales, kept, strict=True))
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
    measure = _measure(adapter)
    for split in SPLITS:
        if split in missing:
            stats.append(SplitStats(split, missing=missing[split]))
        else:
            stats.append(_split_stats(split, examples[split], vocab_words, config, measure))
    hashes = {split: [normalized_hash(ex.tokens) for ex in exs] for split, exs in examples.items()}
    overlap = {}
    for a, b in (("test", "train"), ("dev", "train"), ("test", "dev")):
        if a in hashes and b in hashes:
            other = set(hashes[b])
            overlap[f"{a} texts also in {b}"] = sum(h in other for h in hashes[a])
    extra = adapter.overlap_report() if hasattr(adapter, "overlap_report") else {}
    name = f"{adapter.name}.{adapter.subset}"
    report = DataReport(name, stats, overlap, dict(adapter.skipped), extra, tuple(adapter.label_names))
    if any(s.query_cut is not None for s in stats):
        budget = min(config.max_query_len, config.max_len // 2)
        report.notes.append(
            f"queries keep at most {budget} positions (max_query_len {config.max_query_len}, half of max_len "
            f"{config.max_len}); truncated % counts documents cut to what the query and separators leave"
        )
    return report


def render(report: DataReport, embeddings: str) -> str:
    """Human-readable report."""
    rows: list[list[Any]] = []
    queries = any(s.query_cut is not None for s in report.splits)  # the column only for datasets with queries
    for s in report.splits:
        if s.missing:
            rows.append([s.split, "missing", "", "", "", "", "", ""][: 8 if queries else 7])
            continue
        names = report.label_names
        labels = " / ".join(
            f"{names[label] if label < len(names) else label}: {count}" for label, count in s.labels.items()
        )
        gold = "" if s.gold_sparsity is None else f"{s.gold_sparsity:.1f}"
        oov = "n/a" if s.oov is None else f"{s.oov:.2f}"
        query = [] if not queries else ["" if s.query_cut is None else f"{s.query_cut:.1f}"]
        rows.append([s.split, s.n, labels, f"{s.avg_len:.1f}", f"{s.truncated:.1f}", *query, oov, gold])
    headers = ["split", "examples", "labels", "avg len", "truncated %", f"OOV % ({embeddings})", "gold S %"]
    if queries:
        headers.insert(5, "query cut %")
    lines = [report.name, tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)]
    lines += report.notes
    lines += [f"missing {s.split}: {s.missing}" for s in report.splits if s.missing]
    lines += [f"overlap: {key}: {count}" for key, count in report.overlap.items()]
    lines += [f"audit: {key}: {value}" for key, value in report.extra.items()]
    lines += [f"skipped malformed lines in {path}: {count}" for path, count in report.skipped.items()]
    return "\n".join(lines) + "\n"
