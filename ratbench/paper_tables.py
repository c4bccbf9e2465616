"""The tables ratbench knows by name, one data file each (``resources/paper_tables/NAME.toml``):
the VER paper's Tables 1-3 and ratbench's own leaderboard.

A file says everything about its table, so nothing about a table is written twice:

* ``kind``: ``paper`` (a table of the VER paper: ``ratbench report`` renders it and
  ``--with-paper`` adds its published rows) or ``own`` (ratbench's own table).
* ``title``: its caption (the first note under the table, the report's heading, the report's
  grid line).
* ``level``: what its S, P, R and F1 count (``word`` or ``piece``): what the paper's numbers
  count, and so ``--level``'s default.
* ``columns``: its column groups in the paper's order, each a ``dataset`` (``dataset.subset``,
  also a dataset of its grid) and the ``title`` the paper prints over it; or ``base``: the name
  of the table whose columns it has (the leaderboard's also takes that table's data settings
  and published rows).
* ``[layout]`` (read by :mod:`ratbench.reporting.layouts`): ``metrics``, ``encoder``, and optionally
  ``method_order`` (default: the grid's methods in its order) and ``published_column``.
* ``[grid]`` (read by :mod:`ratbench.execution.paper_grids`): ``preset``, the grid-wide ``--set`` values
  ``sets`` and its ``part`` tables (one per methods x datasets product).
* ``[published]`` (read by :mod:`ratbench.reporting.published`): the paper's ``n_seeds`` and ``rows``, or
  the leaderboard's numbers of ``other`` papers.

This module only finds and parses the files; each of those modules reads its own section.
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources
from typing import Any

TABLES_FOLDER = "paper_tables"
LEADERBOARD = "leaderboard"
"""ratbench's own table: a row per built-in select-then-predict method (``ratbench.execution.paper_grids``)."""


@cache
def table_files() -> dict[str, dict[str, Any]]:
    """Every table file, parsed, by name (its file name without ``.toml``), in name order.

    The parsed data is shared between callers: read it, never change it."""
    folder = resources.files("ratbench").joinpath("resources", TABLES_FOLDER)
    entries = sorted((entry for entry in folder.iterdir() if entry.name.endswith(".toml")), key=lambda e: e.name)
    return {entry.name.removesuffix(".toml"): tomllib.loads(entry.read_text(encoding="utf-8")) for entry in entries}


def paper_table_names() -> list[str]:
    """The names of the paper's tables (``kind = "paper"``), in name order."""
    return [name for name, table in table_files().items() if table["kind"] == "paper"]


def table_columns(name: str) -> tuple[tuple[str, str], ...]:
    """``(dataset.subset, title)`` of each column group of the table called ``name``, in order
    (those of its ``base`` table when it names one)."""
    table = table_files()[name]
    if "base" in table:
        return table_columns(table["base"])
    return tuple((column["dataset"], column["title"]) for column in table["columns"])
