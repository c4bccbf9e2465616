"""The published rows of the VER paper's Tables 1-3 and the published F1 of the leaderboard.

The ``[published]`` section of each paper table's file (``resources/paper_tables/NAME.toml``, see
``ratbench.paper_tables``) holds every number of the table as printed, ``[mean, std]`` over the
paper's ``n_seeds`` seeds (std ``"n/a"`` where the paper prints n/a, the whole value ``"N/A"``
where it prints N/A), the rows the paper copies from CR and NIR marked ``*``, and each row's
source. A row's ``method`` names the ratbench method that reproduces it (absent: ratbench has no
such method) and ``match`` the method settings its variant must have (``nir`` with
``noise_p=0`` is A2R); :func:`counterpart` finds the published row of one of our rows.

For the leaderboard (``ratbench table --layout leaderboard``), :func:`published_f1` gives a
method's published F1 (and the S it was measured at) on the leaderboard's data: the leaderboard's
base table (the VER paper's Table 1) for the methods it ran, and :func:`other_published` (the
``other`` numbers of the leaderboard's file) for the methods of other papers, each number one
that ``shared/docs/FIELD.md`` (section 1.2) read in the source's own table on the same data (Lei
et al.'s decorrelated beer subsets, the hotel aspects); numbers on the correlated beer data, or
at low sparsity, are other experiments and are not there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from ratbench.paper_tables import LEADERBOARD, paper_table_names, table_files

Value = tuple[float, float | None] | None
NOT_PRINTED = "N/A"  # a value the paper does not print
NO_STD = "n/a"  # a std the paper does not print


@dataclass(frozen=True)
class PublishedRow:
    """One printed row: its label, counterpart method and settings, source and values per
    ``dataset.subset`` and metric."""

    label: str
    method: str | None
    match: Mapping[str, Any]
    source: str
    results: Mapping[str, Mapping[str, Value]]


@dataclass(frozen=True)
class PublishedTable:
    """A table of the paper: title, the level its P/R/F1 count (word or piece), the seeds its
    means and stds are over, and its rows."""

    title: str
    metric_level: str
    n_seeds: int
    rows: tuple[PublishedRow, ...]


def _value(raw: list[float | str] | str) -> Value:
    """A printed value: ``[mean, std]`` (std ``n/a``: none printed), or ``N/A``: None."""
    if isinstance(raw, str):
        if raw != NOT_PRINTED:
            raise ValueError(f"a published value is [mean, std] or {NOT_PRINTED!r}, not {raw!r}")
        return None
    mean, std = raw
    return float(mean), None if std == NO_STD else float(std)


def _row(row: Mapping[str, Any]) -> PublishedRow:
    return PublishedRow(
        label=row["label"],
        method=row.get("method"),
        match=dict(row.get("match", {})),
        source=row["source"],
        results={
            group: {metric: _value(value) for metric, value in values.items()}
            for group, values in row["results"].items()
        },
    )


@cache
def load_published() -> tuple[int, dict[str, PublishedTable]]:
    """The paper's seed count (every table's) and its tables by name (``table1``, ...)."""
    tables = {}
    for name in paper_table_names():
        table = table_files()[name]
        published = table["published"]
        rows = tuple(_row(row) for row in published["rows"])
        tables[name] = PublishedTable(table["title"], table["level"], int(published["n_seeds"]), rows)
    seed_counts = {table.n_seeds for table in tables.values()}
    if len(seed_counts) != 1:  # one paper, one seed count: a file that says otherwise is a typo
        raise ValueError(f"the paper's tables give different seed counts: {sorted(seed_counts)}")
    return seed_counts.pop(), tables


def counterpart(table: PublishedTable, method: str, method_changes: Mapping[str, Any]) -> PublishedRow | None:
    """The published row that our row of ``method`` with variant ``method_changes`` reproduces:
    the row of that method whose ``match`` settings the variant has, where a setting that
    another row of the method matches on (``noise_p``) must otherwise be left at its default."""
    rows = [row for row in table.rows if row.method == method]
    distinguishing = {key for row in rows for key in row.match}
    for row in rows:
        wanted = {key: row.match.get(key) for key in distinguishing}
        if all(method_changes.get(key) == value for key, value in wanted.items()):
            return row
    return None


@dataclass(frozen=True)
class PublishedF1:
    """A method's published F1 per ``dataset.subset`` (``(mean, std)``, std None where the source
    gives none) and the S of each, from one ``source``."""

    method: str
    source: str
    f1: Mapping[str, tuple[float, float | None]]
    sparsity: Mapping[str, float]


@cache
def other_published() -> dict[str, PublishedF1]:
    """Published numbers of methods the VER paper did not run, by ratbench method name (the
    sources give S and F1, no std)."""
    found = {}
    for other in table_files()[LEADERBOARD]["published"]["other"]:
        results = other["results"]
        found[other["method"]] = PublishedF1(
            other["method"],
            other["source"],
            {group: (float(values["F1"]), None) for group, values in results.items()},
            {group: float(values["S"]) for group, values in results.items()},
        )
    return found


def published_f1(method: str) -> PublishedF1 | None:
    """The published F1 of ``method`` on the leaderboard's datasets: the row of the method as
    ``paper`` runs it in the leaderboard's base table (the VER paper's Table 1; mean (std) over the
    paper's seeds), else ``other_published()``'s; None when no checked number exists."""
    table = load_published()[1][table_files()[LEADERBOARD]["base"]]
    row = counterpart(table, method, {})
    if row is None:
        return other_published().get(method)
    f1 = {group: f1 for group, values in row.results.items() if (f1 := values.get("F1")) is not None}
    sparsity = {group: s[0] for group, values in row.results.items() if (s := values.get("S")) is not None}
    return PublishedF1(method, f"{row.source} ({table.n_seeds} seeds)", f1, sparsity)
