"""The published rows of the VER paper's Tables 1-3 (``resources/paper_results.json``).

The file holds every number of the three tables as printed, ``[mean, std]`` over the paper's
5 seeds (std None where the paper prints ``n/a``, the whole value None for ``N/A``), the rows the
paper copies from CR and NIR marked ``*``, and each row's source. A row's ``method`` names the
ratbench method that reproduces it (None: ratbench has no such method) and ``match`` the method
settings its variant must have (``nir`` with ``noise_p=0`` is A2R); :func:`counterpart` finds the
published row of one of our rows.

For the leaderboard (``ratbench table --layout leaderboard``), :func:`published_f1` gives a
method's published F1 (and the S it was measured at) on the leaderboard's data: the VER paper's
Table 1 for the methods it ran, and ``OTHER_PUBLISHED`` for the methods of other papers, each
number one that ``shared/docs/FIELD.md`` (section 1.2) read in the source's own table on the same
data (Lei et al.'s decorrelated beer subsets, the hotel aspects); numbers on the correlated beer
data, or at low sparsity, are other experiments and are not here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

RESULTS_FILE = "paper_results.json"
Value = tuple[float, float | None] | None


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
    """A table of the paper: title, the level its P/R/F1 count (word or piece) and its rows."""

    title: str
    metric_level: str
    rows: tuple[PublishedRow, ...]


def _value(raw: list[float | None] | None) -> Value:
    return None if raw is None else (float(raw[0]), None if raw[1] is None else float(raw[1]))


@cache
def load_published() -> tuple[int, dict[str, PublishedTable]]:
    """The paper's seed count and its tables by name (``table1``, ``table2``, ``table3``)."""
    text = resources.files("ratbench").joinpath("resources", RESULTS_FILE).read_text(encoding="utf-8")
    data = json.loads(text)
    tables = {}
    for name, table in data["tables"].items():
        rows = tuple(
            PublishedRow(
                label=row["label"],
                method=row["method"],
                match=row.get("match", {}),
                source=row["source"],
                results={
                    group: {metric: _value(value) for metric, value in values.items()}
                    for group, values in row["results"].items()
                },
            )
            for row in table["rows"]
        )
        tables[name] = PublishedTable(table["title"], table["metric_level"], rows)
    return int(data["n_seeds"]), tables


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


def _single(method: str, source: str, values: Mapping[str, tuple[float, float]]) -> PublishedF1:
    """A ``PublishedF1`` from ``{dataset.subset: (S, F1)}`` of a source that gives no std."""
    return PublishedF1(
        method, source, {g: (f1, None) for g, (_, f1) in values.items()}, {g: s for g, (s, _) in values.items()}
    )


OTHER_PUBLISHED: dict[str, PublishedF1] = {
    published.method: published
    for published in (
        # FR's own numbers as DR's Table 3 quotes them ("*: from the paper of FR"); FR's README
        # example run gives the same Beer-Appearance row.
        _single(
            "fr",
            "FR (NeurIPS 2022), quoted in DR (KDD 2023) Table 3",
            {
                "beer.appearance": (18.4, 82.8),
                "beer.aroma": (15.0, 73.4),
                "beer.palate": (12.1, 67.0),
                "hotel.location": (9.0, 57.1),
                "hotel.service": (11.5, 44.8),
                "hotel.cleanliness": (11.0, 38.7),
            },
        ),
        _single(
            "dr",
            "DR (KDD 2023) Table 3",
            {
                "beer.appearance": (18.6, 84.5),
                "beer.aroma": (15.6, 77.3),
                "beer.palate": (13.3, 67.4),
                "hotel.location": (9.6, 57.0),
                "hotel.service": (11.5, 47.2),
                "hotel.cleanliness": (10.0, 41.8),
            },
        ),
        # Decorrelated beer (Table 5a) and hotel (Table 6); MGR's Table 3 is the correlated data.
        _single(
            "mgr",
            "MGR (ACL 2023) Tables 5a, 6",
            {
                "beer.appearance": (18.4, 83.7),
                "beer.aroma": (15.6, 76.5),
                "beer.palate": (12.4, 66.6),
                "hotel.location": (9.7, 56.2),
                "hotel.service": (11.8, 45.7),
                "hotel.cleanliness": (10.5, 40.7),
            },
        ),
        # MCD's beer numbers (its Table 2) are on the correlated data; only Hotel-Service is comparable.
        _single("mcd", "MCD (NeurIPS 2023) Table 3", {"hotel.service": (11.8, 47.8)}),
    )
}
"""Published numbers of methods the VER paper did not run, by ratbench method name."""

LEADERBOARD_TABLE = "table1"  # the VER paper's table on the leaderboard's data


def published_f1(method: str) -> PublishedF1 | None:
    """The published F1 of ``method`` on the leaderboard's datasets: the VER paper's Table 1 row of
    the method as ``paper`` runs it (mean (std) over the paper's seeds), else ``OTHER_PUBLISHED``;
    None when no checked number exists."""
    n_seeds, tables = load_published()
    row = counterpart(tables[LEADERBOARD_TABLE], method, {})
    if row is None:
        return OTHER_PUBLISHED.get(method)
    f1 = {group: values["F1"] for group, values in row.results.items() if values.get("F1") is not None}
    sparsity = {group: values["S"][0] for group, values in row.results.items() if values.get("S") is not None}
    return PublishedF1(method, f"{row.source} ({n_seeds} seeds)", f1, sparsity)
