"""The published rows of the VER paper's Tables 1-3 (``resources/paper_results.json``).

The file holds every number of the three tables as printed, ``[mean, std]`` over the paper's
5 seeds (std None where the paper prints ``n/a``, the whole value None for ``N/A``), the rows the
paper copies from CR and NIR marked ``*``, and each row's source. A row's ``method`` names the
ratbench method that reproduces it (None: ratbench has no such method) and ``match`` the method
settings its variant must have (``nir`` with ``noise_p=0`` is A2R); :func:`counterpart` finds the
published row of one of our rows.
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
