"""Table layouts: which column groups, metrics, rows and row order a table shows.

``generic`` shows whatever a results folder holds (every dataset.subset found, the paper's five
columns). ``table1``, ``table2`` and ``table3`` are the VER paper's tables: their datasets in the
paper's column order (a dataset with no result is a column of ``-``, never dropped), their
metrics, their encoder (rows run on another encoder belong to another table) and their row
order. Tables 2 and 3 count P, R, F1 and S over word pieces by default, as CR and NIR, whose
rows the paper copies, do.

``leaderboard`` is ratbench's own table, not the paper's: a row per method of the leaderboard
grid (``ratbench run --grid leaderboard``: every built-in select-then-predict method), F1 and S
on Table 1's six datasets, and beside each F1 the method's published F1 on the same data with its
source (``ratbench.reporting.published.published_f1``).

Every layout but ``generic`` is read from its table's data file (``ratbench.paper_tables``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ratbench.errors import RatbenchError, did_you_mean
from ratbench.execution.paper_grids import load_grids
from ratbench.paper_tables import table_columns, table_files
from ratbench.types import METRIC_COLUMNS

LEVELED = ("S", "P", "R", "F1", "macro_P", "macro_R", "macro_F1")
"""Metrics stored twice, over document words (``F1``) and over word pieces (``piece_F1``)."""

EXTRA_METRICS = (
    "macro_P",
    "macro_R",
    "macro_F1",
    "iou_F1",
    "sentence_P",
    "sentence_R",
    "sentence_F1",
    "nir_sentence_F1",
    "iou_micro_F1",
    "AUPRC",
    "comprehensiveness",
    "sufficiency",
    "acc_full_text",
    "acc_gold_rationale",
)
"""Metrics a table can show besides its own (``--metrics``)."""


@dataclass(frozen=True)
class Layout:
    """What one table shows.

    Attributes:
        name: the ``--layout`` name.
        title: the table's caption ("" for generic).
        groups: its ``dataset.subset`` columns in order; None: every one found.
        group_titles: the title the paper prints over each of ``groups`` (empty: the names).
        metrics: the metric columns of each group.
        method_order: rows of these methods first, in this order; other methods follow.
        encoder: the encoder family its rows ran on (``word`` or ``hf``); None: any.
        level: ``word`` or ``piece``: what S, P, R and F1 count.
        published: the key of the paper's table in ``ratbench.reporting.published`` (None: no paper rows).
        published_column: a ``published F1 [S]`` column in each group (the method's published
            F1 on that dataset and the S it was measured at) and a ``published in`` column (its
            source); the rows are the methods of the layout's grid, in its order, each method
            a row (of ``-`` where no cell fills it), rows of other methods left out.
    """

    name: str
    title: str
    groups: tuple[str, ...] | None
    metrics: tuple[str, ...]
    method_order: tuple[str, ...]
    encoder: str | None
    level: str
    published: str | None
    published_column: bool = False
    group_titles: tuple[str, ...] = ()

    def group_title(self, group: str) -> str:
        """The title of the column group ``group`` (its name where the layout gives none)."""
        titles = dict(zip(self.groups or (), self.group_titles, strict=False))
        return titles.get(group, group)

    def column(self, metric: str, level: str | None = None) -> str:
        """The results column of ``metric`` at ``level`` (default: the layout's)."""
        return f"piece_{metric}" if (level or self.level) == "piece" and metric in LEVELED else metric


def _from_file(name: str, table: dict[str, Any]) -> Layout:
    """The layout of the table file ``name`` (the rows of a table with no ``method_order``: its
    grid's methods in the grid's order; the leaderboard's come from its grid when rendered)."""
    spec = table["layout"]
    columns = table_columns(name)
    grid = load_grids().get(name)
    return Layout(
        name=name,
        title=table["title"],
        groups=tuple(dataset for dataset, _ in columns),
        metrics=tuple(spec["metrics"]),
        method_order=tuple(spec.get("method_order", grid.methods if grid is not None else ())),
        encoder=spec["encoder"],
        level=table["level"],
        published=name if table["kind"] == "paper" else None,
        published_column=spec.get("published_column", False),
        group_titles=tuple(title for _, title in columns),
    )


GENERIC = Layout("generic", "", None, METRIC_COLUMNS, (), None, "word", None)

LAYOUTS: dict[str, Layout] = {  # the generic table and the paper's (`ratbench report` shows each paper table)
    "generic": GENERIC,
    **{name: _from_file(name, table) for name, table in table_files().items() if table["kind"] == "paper"},
}

OWN_LAYOUTS: dict[str, Layout] = {  # ratbench's own tables, not the paper's (so not in `ratbench report`)
    name: _from_file(name, table) for name, table in table_files().items() if table["kind"] != "paper"
}


def layout_names() -> list[str]:
    """Every ``--layout`` name."""
    return [*LAYOUTS, *OWN_LAYOUTS]


def get_layout(name: str) -> Layout:
    """The layout called ``name``, or a one-line error listing them."""
    layouts = {**LAYOUTS, **OWN_LAYOUTS}
    if name not in layouts:
        raise RatbenchError(f"unknown layout {name!r}{did_you_mean(name, layouts)}; available: {', '.join(layouts)}")
    return layouts[name]


def parse_metrics(text: str) -> tuple[str, ...]:
    """``--metrics S,F1,iou_F1`` as a tuple, checked against the metrics there are (the word
    pieces' ``piece_F1`` and the like included: metrics.json holds them beside the words')."""
    known = (*METRIC_COLUMNS, *EXTRA_METRICS, *(f"piece_{metric}" for metric in LEVELED))
    names = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    if not names:
        raise RatbenchError("--metrics is empty: give metric names, e.g. S,Acc,F1,iou_F1")
    for name in names:
        if name not in known:
            raise RatbenchError(f"unknown metric {name!r}{did_you_mean(name, known)}; available: {', '.join(known)}")
    return names
