"""Render Table 1 of the paper: a row per method and variant, a column group (S, Acc, P, R, F1)
per dataset.subset, each cell ``mean (std)`` over seeds.

A row is one method plus one variant (``ratbench.variants``: the preset and the overrides the
user asked for, the same for every dataset), so a row never mixes configurations across
columns; a method with several variants gets a row per variant, labelled by how they differ
(``ver (perturb_rate=0.5)``). Stale cells are hidden unless asked for: cells of an older method,
dataset, evaluator or pipeline version, cells that recorded no variant, and cells of a
configuration superseded by a newer run of the same variant in the same column (a changed
preset or data file). ``--cpu-threads`` changes float rounding only, so cells that differ in it
alone are seeds of one row (a seed run with two thread counts keeps its newest run);
``--precision bf16`` is another computation, part of the variant (``rnp (precision=bf16)``).
"""

from __future__ import annotations

import html
import json
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import pandas as pd
from tabulate import tabulate

from ratbench.errors import RatbenchError
from ratbench.layouts import Layout, get_layout
from ratbench.published import PublishedF1, PublishedTable, counterpart, load_published, published_f1
from ratbench.stats import welch_from_stats
from ratbench.types import METRIC_COLUMNS
from ratbench.variants import describe, row_labels
from ratbench.versions import EVAL_VERSION, PIPELINE_VERSION

TableFormat = Literal["github", "latex", "csv", "html"]
COLUMNS = METRIC_COLUMNS
SPEC_DEFAULTS = ("variant", "identity", "method_version", "dataset_version", "eval_version", "pipeline_version")
CELL_COLUMNS = ["method", "dataset", "subset", "config_id", "seed", "mode", "kind", *SPEC_DEFAULTS]
STATS_COLUMNS = ["row", "group", "metric", "mean", "std", "n", "n_values", "config_id", "cpu_threads"]


@dataclass(frozen=True)
class Row:
    """One table row: a method, a variant (canonical JSON) and why it is stale ("" if it is not)."""

    method: str
    variant: str
    stale: str = ""


def _current_version(registry: Any, name: str) -> str | None:
    """The version of an installed plugin (None for a plugin that is not installed)."""
    try:
        info = registry.check(name)
    except RatbenchError:
        return None
    return info.meta.get("version") or getattr(registry.get(name), "version", None)


def _version_reasons(cell: pd.Series, versions: dict[tuple[str, str], str | None]) -> str:
    reasons = []
    if cell["variant"] is None:
        reasons.append("no variant recorded")
    if cell["pipeline_version"] != PIPELINE_VERSION:
        reasons.append(f"pipeline version {cell['pipeline_version'] or 'none'} (now {PIPELINE_VERSION})")
    if cell["eval_version"] != EVAL_VERSION:
        reasons.append(f"evaluator version {cell['eval_version']} (now {EVAL_VERSION})")
    for kind, name, recorded in (
        ("method", cell["method"], cell["method_version"]),
        ("dataset", cell["dataset"], cell["dataset_version"]),
    ):
        current = versions[kind, name]
        if current is not None and recorded != current:
            reasons.append(f"{name} version {recorded} (now {current})")
    return "; ".join(reasons)


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(data, dict):
        return {prefix: data}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(_flat(value, f"{prefix}.{key}" if prefix else key))
    return flat


def _how_it_differs(old: str, new: str, limit: int = 3) -> str:
    """``method_config.epochs=6, ...``: the identity items of ``old`` that differ from ``new``."""
    old_items, new_items = _flat(json.loads(old)), _flat(json.loads(new))
    changed = [key for key in sorted(old_items.keys() | new_items.keys()) if old_items.get(key) != new_items.get(key)]
    words = [f"{key}={old_items.get(key)}" for key in changed[:limit]]
    return ", ".join(words) + (", ..." if len(changed) > limit else "")


def _without_threads(identity: str | None, config_id: str) -> str:
    """The configuration without ``pipeline.cpu_threads``: cells that differ in it alone are
    seeds of one row, since a thread count changes the order of float reductions, not what is
    computed (``--precision`` is part of the variant instead: bf16 is another computation)."""
    if not identity:
        return config_id
    data = json.loads(identity)
    if isinstance(data.get("pipeline"), dict):
        data["pipeline"] = {key: value for key, value in data["pipeline"].items() if key != "cpu_threads"}
    return json.dumps(data, sort_keys=True)


def mark_stale(cells: pd.DataFrame) -> pd.Series:
    """Why each cell (a row of ``cells``: one per cell) is stale, "" where it is not.

    Of several configurations of one variant in one column, the newest is the row's; cells of a
    configuration run with several thread counts all are (a seed run twice keeps its newest run).
    """
    from ratbench.registry import DATASETS, METHODS

    versions: dict[tuple[str, str], str | None] = {}
    for kind, registry, column in (("method", METHODS, "method"), ("dataset", DATASETS, "dataset")):
        for name in cells[column].unique():
            versions[kind, name] = _current_version(registry, name)
    stale = cells.apply(lambda cell: _version_reasons(cell, versions), axis=1).astype(str)

    live = cells[stale == ""]
    live = live.assign(
        config_key=[_without_threads(i, c) for i, c in zip(live["identity"], live["config_id"], strict=True)],
        finished=live["finished_at"].fillna("").astype(str),
    )
    for _, group in live.groupby(["method", "variant", "group"], sort=False):
        configs = group.groupby("config_key")["finished"].max().sort_values(ascending=False)
        newest = configs.index[0]
        newest_identity = group.loc[group["config_key"] == newest, "identity"].iloc[0] or "{}"
        for config_key in configs.index[1:]:
            members = group.index[group["config_key"] == config_key]
            identity = group.loc[members[0], "identity"] or "{}"
            stale[members] = f"superseded by a newer configuration; it had {_how_it_differs(identity, newest_identity)}"
        current = group[group["config_key"] == newest].sort_values("finished", ascending=False)
        for index in current.index[current.duplicated("seed")]:
            newer = current[current["seed"] == current.loc[index, "seed"]].iloc[0]
            stale[index] = f"superseded by a newer run of seed {newer['seed']} with cpu_threads={newer['cpu_threads']}"
    return stale


def seed_text(seeds: Sequence[int]) -> str:
    """``1-3,7``: seeds as ``--seeds`` takes them."""
    parts: list[list[int]] = []
    for seed in sorted(set(seeds)):
        if parts and seed == parts[-1][1] + 1:
            parts[-1][1] = seed
        else:
            parts.append([seed, seed])
    return ",".join(str(low) if low == high else f"{low}-{high}" for low, high in parts)


def table_cells(
    frame: pd.DataFrame,
    mode: str,
    include_stale: bool = False,
    seeds: Sequence[int] | None = None,
    allow_empty: bool = False,
) -> tuple[pd.DataFrame, int]:
    """The cells of ``mode`` that a table shows, one line each with its ``row`` (a ``Row``) and
    ``group`` (dataset.subset), and the number of stale cells left out (0 with
    ``include_stale``). ``seeds``: only the cells of these seeds (staleness is decided over
    all of them first: a superseded configuration stays superseded). ``allow_empty``: no cells
    to show is an empty frame, not an error."""
    if frame.empty:
        if allow_empty:
            return pd.DataFrame(columns=[*CELL_COLUMNS, "row", "group", "stale"]), 0
        raise RatbenchError("no finished cells found; run `ratbench run ...` first or pass --results-dir")
    frame = frame[frame["mode"] == mode].copy()
    for column in (*SPEC_DEFAULTS, "precision", "cpu_threads"):
        if column not in frame:
            frame[column] = None
    frame["group"] = frame["dataset"] + "." + frame["subset"]
    frame["cell_key"] = frame["config_id"] + "/seed" + frame["seed"].astype(str)  # the config id names the column
    per_cell = frame.drop_duplicates("cell_key").set_index("cell_key")
    stale = mark_stale(per_cell)
    frame["stale"] = frame["cell_key"].map(stale)
    if seeds is not None:
        found = sorted(set(frame["seed"]))
        frame = frame[frame["seed"].isin(seeds)].copy()
        stale = stale[per_cell["seed"].isin(seeds)]
        if frame.empty and not allow_empty:
            raise RatbenchError(
                f"--seeds {seed_text(seeds)}: no finished cell has these seeds "
                f"(the cells have seeds {seed_text(found) or 'none'})"
            )
    hidden = 0 if include_stale else int((stale != "").sum())
    if not include_stale:
        frame = frame[frame["stale"] == ""].copy()
    if frame.empty and not allow_empty:
        raise RatbenchError(f"all {hidden} finished cells are stale; pass --include-stale to show them")
    frame["variant"] = frame["variant"].fillna("null")
    frame["row"] = [Row(m, v, s) for m, v, s in zip(frame["method"], frame["variant"], frame["stale"], strict=True)]
    return _split_mixed_stale_rows(frame), hidden


def aggregate(
    frame: pd.DataFrame,
    mode: str,
    include_stale: bool = False,
    columns: Sequence[str] = COLUMNS,
    seeds: Sequence[int] | None = None,
    allow_empty: bool = False,
) -> tuple[pd.DataFrame, dict[Row, str], int]:
    """Mean, sample std (ddof=1) and seed count per (row, dataset.subset, metric) for the
    results ``columns`` (a column no cell has is all missing: ``N/A``), with the config ids and
    CPU thread counts of each (row, dataset.subset).

    Returns the statistics (column ``row`` holds a ``Row``), the label of each row, and the
    number of stale cells left out (0 with ``include_stale``); ``seeds`` and ``allow_empty``
    as in ``table_cells``.
    """
    frame, hidden = table_cells(frame, mode, include_stale, seeds, allow_empty)
    if frame.empty:
        return pd.DataFrame(columns=STATS_COLUMNS), {}, hidden
    for column in columns:
        if column not in frame:
            frame[column] = None
    long = frame.melt(id_vars=["row", "method", "group", "seed", "kind"], value_vars=list(columns), var_name="metric")
    long["value"] = pd.to_numeric(long["value"], errors="coerce")
    stats = (
        long.groupby(["row", "group", "metric"], sort=False)["value"]
        .agg(mean="mean", std="std", n="size", n_values="count")
        .reset_index()
    )
    per_column = frame.groupby(["row", "group"], sort=False).agg(
        config_id=("config_id", lambda ids: ",".join(sorted(set(ids)))),
        cpu_threads=("cpu_threads", lambda counts: ",".join(str(c) for c in sorted({int(c) for c in counts.dropna()}))),
    )
    stats = stats.merge(per_column.reset_index(), on=["row", "group"], how="left")
    return stats, labels_for(list(dict.fromkeys(frame["row"]))), hidden


def _split_mixed_stale_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Stale rows that would hold several configurations in one column get one row each (one
    configuration run with several thread counts is one)."""
    rows = frame["row"].copy()
    keys = pd.Series(
        [_without_threads(i, c) for i, c in zip(frame["identity"], frame["config_id"], strict=True)], index=frame.index
    )
    for (row, _), group in frame.groupby(["row", "group"], sort=False):
        configs = list(dict.fromkeys(keys[group.sort_values("finished_at", ascending=False).index]))
        for rank, config_key in enumerate(configs[1:], start=2):
            for index in group.index[keys[group.index] == config_key]:
                rows[index] = Row(row.method, row.variant, f"{row.stale} #{rank}")
    return frame.assign(row=rows)


def labels_for(rows: list[Row]) -> dict[Row, str]:
    """Row labels: the method and how its variant differs from the method's other rows, plus
    the stale reason."""
    labels: dict[Row, str] = {}
    for method in dict.fromkeys(row.method for row in rows):
        variants = list(dict.fromkeys(row.variant for row in rows if row.method == method))
        named = row_labels(method, [json.loads(v) or {} for v in variants])
        for row in rows:
            if row.method == method:
                base = named[variants.index(row.variant)]
                labels[row] = f"{base} [stale: {row.stale}]" if row.stale else base
    return labels


GROUP_TITLES = {
    "beer.appearance": "Beer-Appearance",
    "beer.aroma": "Beer-Aroma",
    "beer.palate": "Beer-Palate",
    "hotel.location": "Hotel-Location",
    "hotel.service": "Hotel-Service",
    "hotel.cleanliness": "Hotel-Cleanliness",
    "eraser.multirc": "MultiRC",
    "eraser.fever": "FEVER",
}
"""The paper's names of its datasets (column groups of the paper layouts)."""
MISSING = "-"  # a row without a result in a column group
DELTA = "ΔF1 (p)"
PUBLISHED = "published F1 [S]"  # a published_column layout's column in each group
SOURCE = "published in"  # ... and its last column


@dataclass
class Cell:
    """One shown value: its text and, for bold marking, the mean it stands for."""

    text: str
    mean: float | None = None


@dataclass
class TableRow:
    """One shown row: its label, its cells by (group, column) and by column after the groups."""

    label: str
    cells: dict[tuple[str, str], Cell]
    tail: dict[str, str] = field(default_factory=dict)


def _fmt(mean: float, std: float, n: int, n_values: int, expected: int) -> str:
    if n_values == 0:
        return "N/A"
    text = f"{mean:.1f}" if n < 2 or math.isnan(std) else f"{mean:.1f} ({std:.1f})"
    return f"{text} [n={n}]" if n < expected else text


def _published_text(value: tuple[float, float | None] | None) -> str:
    if value is None:
        return "N/A"
    mean, std = value
    return f"{mean:.1f} ({'n/a' if std is None else f'{std:.1f}'})"


def _published_f1_text(published: PublishedF1 | None, group: str) -> str:
    """``72.0 (1.5) [S 14.4]``: a published F1, its std where the source gives one, and the S it
    was measured at; ``-`` where the source has no number."""
    value = None if published is None else published.f1.get(group)
    if value is None:
        return MISSING
    mean, std = value
    text = f"{mean:.1f}" if std is None else f"{mean:.1f} ({std:.1f})"
    sparsity = published.sparsity.get(group) if published is not None else None
    return text if sparsity is None else f"{text} [S {sparsity:.1f}]"


def row_encoder(row: Row) -> str:
    """The encoder family (``word`` or ``hf``) of a row's variant."""
    data = (json.loads(row.variant) or {}).get("data") or {}
    return str(data.get("data.encoder", "word")).partition(":")[0]


def method_changes(row: Row) -> dict[str, Any]:
    """The method settings in which a row's variant differs from its preset."""
    return (json.loads(row.variant) or {}).get("method") or {}


def _choose_groups(layout: Layout, found: list[str], datasets: Sequence[str] | None) -> list[str]:
    """The layout's column groups (or those found), narrowed to ``datasets`` (NAME or NAME.SUBSET)."""
    groups = list(layout.groups) if layout.groups is not None else found
    if datasets is None:
        return groups
    chosen = [g for g in groups if any(g == name or g.partition(".")[0] == name for name in datasets)]
    if not chosen:
        raise RatbenchError(
            f"--datasets {','.join(datasets)}: none of them is a column of this table ({', '.join(groups) or 'none'})"
        )
    return chosen


def _order(rows: list[Row], layout: Layout) -> list[Row]:
    """The layout's methods first in its order, then the other methods as found; a method's
    variants stay in the order found."""
    methods = list(dict.fromkeys(row.method for row in rows))
    rank = {
        m: (layout.method_order.index(m) if m in layout.method_order else len(layout.method_order)) for m in methods
    }
    return sorted(rows, key=lambda row: (rank[row.method], methods.index(row.method)))


def render(
    frame: pd.DataFrame,
    mode: str = "reference",
    fmt: TableFormat = "github",
    seeds: Sequence[int] | None = None,
    include_stale: bool = False,
    layout: str = "generic",
    metrics: Sequence[str] | None = None,
    level: str | None = None,
    methods: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    with_paper: bool = False,
) -> str:
    """The table as text.

    ``layout`` (``ratbench.layouts``) fixes the column groups, metrics, encoder and row order;
    ``metrics`` and ``level`` (``word`` or ``piece``) override its columns, ``methods`` and
    ``datasets`` narrow it. ``seeds``: only the cells of these seeds, and rows with fewer are
    marked ``[n=k]`` (default: every seed; ``[n=k]`` below the most in any cell). The best mean
    F1 of each column group is in bold. ``with_paper`` adds the paper's rows (marked published)
    and, for each of our rows with a published counterpart, the F1 difference and Welch's
    t-test p-value; a row of the paper's grid that no cell fills is a row of ``-`` (so the
    paper's table shows beside partial results, or none). Notes under the table say what each
    row is.
    """
    chosen = get_layout(layout)
    level = level or chosen.level
    shown = tuple(metrics or chosen.metrics)
    f1_column = chosen.column("F1", level)
    columns = {metric: chosen.column(metric, level) for metric in shown}
    if with_paper and chosen.published_column:
        raise RatbenchError(f"--layout {chosen.name} shows the published F1 without --with-paper; drop --with-paper")
    if with_paper and chosen.published is None:
        raise RatbenchError("--with-paper needs a paper layout: add --layout table1, table2 or table3")
    own_grid = _own_grid(chosen, methods)
    if own_grid is not None:
        chosen = replace(chosen, method_order=own_grid)  # the grid's methods are the rows, in its order
    stats, labels, hidden = aggregate(
        frame,
        mode,
        include_stale,
        list(dict.fromkeys([*columns.values(), f1_column])),
        seeds,
        allow_empty=with_paper or chosen.published_column,
    )
    rows = [row for row in labels if methods is None or row.method in methods]
    off_grid = [row for row in rows if own_grid is not None and row.method not in own_grid]
    rows = [row for row in rows if row not in off_grid]
    other_encoder = [row for row in rows if chosen.encoder is not None and row_encoder(row) != chosen.encoder]
    rows = _order([row for row in rows if row not in other_encoder], chosen)
    groups = _choose_groups(chosen, list(dict.fromkeys(stats["group"])), datasets)
    with_results = set(stats.loc[stats["group"].isin(groups), "row"])
    rows = [row for row in rows if row in with_results]  # a row of another table's datasets is not this table's
    off_grid = [row for row in off_grid if row in with_results]
    unfilled = _unfilled_grid_rows(chosen, rows, methods) if with_paper or chosen.published_column else []
    if not rows and not unfilled:
        raise RatbenchError(_no_rows_message(chosen, methods, other_encoder))
    labels = labels_for(rows)  # a label says how a row differs from the rows of this table only
    shown_stats = stats[stats["row"].isin(rows) & stats["group"].isin(groups)]
    expected = len(seeds) if seeds is not None else int(shown_stats["n"].max()) if rows else 1
    by_key = {(r.row, r.group, r.metric): r for r in stats.itertuples()}
    if fmt == "csv":
        listed = list(dict.fromkeys([*(row.method for row in rows), *(method for method, _ in unfilled)]))
        return _csv(stats, labels, rows, groups, columns, chosen, with_paper, listed if chosen.published_column else [])

    published_table = load_published()[1][chosen.published] if with_paper and chosen.published else None
    table_rows = _published_rows(published_table, groups, shown) if published_table is not None else []
    ours: list[tuple[str, TableRow]] = []
    for row in rows:
        values = {}
        for group in groups:
            for metric in shown:
                stat = by_key.get((row, group, columns[metric]))
                values[group, metric] = (
                    Cell(MISSING) if stat is None else Cell(_fmt(stat.mean, stat.std, stat.n, stat.n_values, expected))
                )
            f1 = by_key.get((row, group, f1_column))
            if "F1" in shown and f1 is not None and f1.n_values:
                values[group, "F1"].mean = f1.mean
            if published_table is not None:
                values[group, DELTA] = Cell(_delta(published_table, row, group, f1))
        ours.append((row.method, TableRow(labels[row], values)))
    cell_columns = [*shown, DELTA] if published_table is not None else list(shown)
    for method, label in unfilled:
        ours.append((method, TableRow(label, {(g, c): Cell(MISSING) for g in groups for c in cell_columns})))
    tail_columns = []
    if chosen.published_column:  # each row's method's published F1 beside ours, and its source last
        cell_columns.append(PUBLISHED)
        tail_columns.append(SOURCE)
        for method, table_row in ours:
            published = published_f1(method)
            for group in groups:
                table_row.cells[group, PUBLISHED] = Cell(_published_f1_text(published, group))
            table_row.tail[SOURCE] = published.source if published is not None else MISSING
    rank = {method: index for index, method in enumerate(chosen.method_order)}
    ours.sort(key=lambda entry: rank.get(entry[0], len(rank)))  # stable: our rows before a method's empty row
    table_rows += [table_row for _, table_row in ours]
    notes = _notes({row: labels[row] for row in rows}, mode, expected, hidden)
    notes += _thread_notes({row: labels[row] for row in rows}, shown_stats)
    notes += _layout_notes(chosen, level, rows, other_encoder, published_table is not None, "F1" in shown)
    if off_grid:
        notes.append(
            f"{len(off_grid)} row(s) of methods outside the {chosen.name} grid (post-hoc, using the gold label at "
            f"test, or not built in: {', '.join(dict.fromkeys(row.method for row in off_grid))}) are not shown; "
            "--layout generic shows them."
        )
    if unfilled:
        notes.append(
            f"{', '.join(label for _, label in unfilled)}: no finished cell on this table's datasets yet, so only - "
            f"(`ratbench run --grid {chosen.name} --seeds 1-5` runs them)."
        )
    return _format(fmt, chosen, groups, cell_columns, table_rows, mode, notes, tail_columns)


def _own_grid(layout: Layout, methods: Sequence[str] | None) -> tuple[str, ...] | None:
    """The methods of a ``published_column`` layout's grid (its rows), checking that ``methods``
    are among them; None for the other layouts."""
    if not layout.published_column:
        return None
    from ratbench.paper_grids import grid_for_layout

    grid = grid_for_layout(layout.name)
    own = grid.methods if grid is not None else ()
    outside = [name for name in methods or () if name not in own]
    if outside:
        raise RatbenchError(
            f"--methods {','.join(outside)}: not a method of the {layout.name} ({', '.join(own) or 'none'}); "
            "--layout generic shows every method"
        )
    return own


def has_settings(row: Row, settings: dict[str, Any]) -> bool:
    """Whether ``row``'s method settings include ``settings`` (NIR's ``noise_p=0.0``)."""
    changes = method_changes(row)
    return all(str(changes.get(key)) == str(value) for key, value in settings.items())


def _unfilled_grid_rows(layout: Layout, rows: list[Row], methods: Sequence[str] | None) -> list[tuple[str, str]]:
    """``(method, label)`` of each row of the layout's paper grid (``paper_grids.toml``) that no
    row of ``rows`` fills: the method with its run's own settings (``nir (noise_p=0.0)``)."""
    from ratbench.paper_grids import grid_for_layout

    grid = grid_for_layout(layout.name)
    unfilled: dict[str, str] = {}
    for run in grid.runs if grid is not None else ():
        for method in run.methods:
            own = {k.partition(".")[2]: v for k, v in run.sets.items() if k.partition(".")[0] == method}
            if (methods is not None and method not in methods) or any(
                row.method == method and has_settings(row, own) for row in rows
            ):
                continue
            label = f"{method} ({', '.join(f'{k}={v}' for k, v in own.items())})" if own else method
            unfilled[label] = method
    return [(method, label) for label, method in unfilled.items()]


def _thread_notes(labels: dict[Row, str], stats: pd.DataFrame) -> list[str]:
    """A note for the rows whose seeds ran with several ``--cpu-threads`` (seeds of one row)."""
    mixed = []
    for row, label in labels.items():
        texts = stats.loc[stats["row"] == row, "cpu_threads"].dropna()
        counts = sorted({int(count) for text in texts for count in str(text).split(",") if count})
        if len(counts) > 1:
            mixed.append(f"{label} ({', '.join(map(str, counts[:-1]))} and {counts[-1]} threads)")
    if not mixed:
        return []
    return [
        f"Seeds run with different CPU threads (--cpu-threads changes float rounding only, so they are seeds of one "
        f"row): {'; '.join(mixed)}."
    ]


def _published_rows(table: PublishedTable, groups: list[str], shown: Sequence[str]) -> list[TableRow]:
    """The paper's rows of ``table`` over ``groups`` (``-`` where it printed nothing)."""
    rows = []
    for paper_row in table.rows:
        values = {}
        for group in groups:
            printed = paper_row.results.get(group, {})
            for metric in shown:
                values[group, metric] = Cell(_published_text(printed[metric]) if metric in printed else MISSING)
            f1 = printed.get("F1")
            if "F1" in shown and f1 is not None:
                values[group, "F1"].mean = f1[0]
            values[group, DELTA] = Cell("")
        rows.append(TableRow(f"{paper_row.label} [paper]", values))
    return rows


def _no_rows_message(layout: Layout, methods: Sequence[str] | None, other_encoder: list[Row]) -> str:
    if methods is None or other_encoder:
        return (
            f"no rows for --layout {layout.name}: none of the finished cells is a {layout.encoder or 'any'}-encoder "
            f"run on its datasets ({', '.join(layout.groups or [])}); use --layout generic to see them"
        )
    return f"no finished cells of --methods {','.join(methods or [])}; ratbench table without --methods shows all"


def _delta(published_table: PublishedTable, row: Row, group: str, ours: Any) -> str:
    """``+1.2 (p=0.34)``: our mean F1 minus the published one, and Welch's p with the paper's
    seed count; ``-`` without a counterpart or a value."""
    paper_row = counterpart(published_table, row.method, method_changes(row))
    paper = None if paper_row is None else paper_row.results.get(group, {}).get("F1")
    if paper is None or ours is None or not ours.n_values:
        return MISSING
    n_paper = load_published()[0]
    test = welch_from_stats(
        ours.mean, ours.std, int(ours.n_values), paper[0], math.nan if paper[1] is None else paper[1], n_paper
    )
    return f"{test.difference:+.1f}" + ("" if test.p is None else f" (p={test.p:.2g})")


def word_rule(row: Row) -> str:
    """How a row's transformer cells count a word selected: ``any`` piece of it, or its ``first``."""
    data = (json.loads(row.variant) or {}).get("data") or {}
    return str(data.get("data.word_rule", "any"))


def _level_note(layout: Layout, level: str, rows: list[Row]) -> str:
    """What S, P, R and F1 count, true of the rows shown: word pieces are words on the word
    encoder, and a word is selected by any of its pieces or (``data.word_rule=first``) its first."""
    encoders = {row_encoder(row) for row in rows} or {layout.encoder or "hf"}
    if level == "piece":
        if "hf" not in encoders:
            return (
                "S, P, R and F1 count word pieces; these rows ran on the word encoder, whose pieces are its words "
                "(the numbers of --level word)."
            )
        word_rows = "; on the rows run on the word encoder a piece is a word" if "word" in encoders else ""
        return f"S, P, R and F1 count word pieces (as CR and NIR do){word_rows}."
    rules = {word_rule(row) for row in rows if row_encoder(row) == "hf"}
    if "first" not in rules:
        return "S, P, R and F1 count document words (a word is selected when a piece of it is, with word pieces)."
    if rules == {"first"}:
        return (
            "S, P, R and F1 count document words (with word pieces, a word is selected when its first piece is: "
            "data.word_rule=first)."
        )
    return (
        "S, P, R and F1 count document words (with word pieces, a word is selected when any of its pieces is; in "
        "the rows with data.word_rule=first, when its first piece is)."
    )


def _layout_notes(
    layout: Layout, level: str, rows: list[Row], other_encoder: list[Row], with_paper: bool, bold: bool
) -> list[str]:
    notes = []
    if layout.title:
        notes.insert(0, f"{layout.title}.")
    notes.append(_level_note(layout, level, rows))
    if bold:
        notes.append("Bold: the best mean F1 of each column group; -: no result.")
    if other_encoder:
        kind = "transformer" if layout.encoder == "word" else "word (GRU)"
        notes.append(
            f"{len(other_encoder)} row(s) run on the {kind} encoder belong to another table and are not shown."
        )
    if layout.published_column:
        notes.append(
            f"{PUBLISHED}: the method's F1 as the paper in the last column ({SOURCE}) publishes it on the same "
            "data (the decorrelated beer aspects of Lei et al., the hotel aspects), mean (std) where it gives a "
            "std over seeds, and [S] the sparsity it reports; -: no checked published number (numbers on the "
            "correlated beer data are another experiment and never shown). Most sources select more or fewer "
            "tokens than these rows' S: compare F1 at unequal S with care."
        )
    if with_paper:
        n_seeds, tables = load_published()
        paper_level = tables[layout.published].metric_level if layout.published else level
        notes.append(
            f"[paper]: the paper's published rows (mean (std) over its {n_seeds} seeds; * = copied by the paper from "
            f"another publication). {DELTA}: our mean F1 minus the published counterpart's, with Welch's t-test "
            f"p-value against n={n_seeds}."
        )
        if paper_level != level:
            notes.append(f"Caution: the paper's rows count {paper_level}s, these rows count {level}s (--level).")
    return notes


def _best(table_rows: list[TableRow], groups: list[str]) -> set[tuple[int, str]]:
    """(row index, group) of the highest mean F1 of each group (ties: all of them)."""
    best = set()
    for group in groups:
        means = {i: row.cells[group, "F1"].mean for i, row in enumerate(table_rows) if (group, "F1") in row.cells}
        known = {i: m for i, m in means.items() if m is not None}
        if known:
            top = max(known.values())
            best |= {(i, group) for i, m in known.items() if m == top}
    return best


def _format(
    fmt: str,
    layout: Layout,
    groups: list[str],
    cell_columns: list[str],
    table_rows: list[TableRow],
    mode: str,
    notes: list[str],
    tail_columns: Sequence[str] = (),
) -> str:
    best = _best(table_rows, groups)
    escape = {"latex": _latex_escape, "html": html.escape}.get(fmt, lambda text: text)
    bold = {"latex": r"\textbf{{{}}}", "html": "<b>{}</b>"}.get(fmt, "**{}**")
    body = []
    for index, row in enumerate(table_rows):
        line = [escape(row.label)]
        for group in groups:
            for column in cell_columns:
                text = escape(row.cells[group, column].text)
                line.append(bold.format(text) if column == "F1" and (index, group) in best else text)
        line += [escape(row.tail.get(column, MISSING)) for column in tail_columns]
        body.append(line)
    titles = [GROUP_TITLES.get(g, g) if layout.groups else g for g in groups]
    if fmt == "latex":
        return _latex(titles, cell_columns, body, mode, notes, tail_columns)
    headers = ["Method"] + [f"{t} {c}" if i == 0 else c for t in titles for i, c in enumerate(cell_columns)]
    headers += list(tail_columns)
    if fmt == "html":
        table = tabulate(body, headers=[html.escape(h) for h in headers], tablefmt="unsafehtml", disable_numparse=True)
        return table + "\n" + "".join(f"<p>{html.escape(note)}</p>\n" for note in notes)
    text = tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)
    return text + "\n\n" + "\n".join(textwrap.fill(note, 100, break_on_hyphens=False) for note in notes) + "\n"


def _csv(
    stats: pd.DataFrame,
    labels: dict[Row, str],
    rows: list[Row],
    groups: list[str],
    columns: dict[str, str],
    layout: Layout,
    with_paper: bool,
    published_methods: Sequence[str] = (),
) -> str:
    """Long format: one line per (row, group, metric), ours and (``with_paper``) the paper's, and
    the published F1 and S of each of ``published_methods`` (``method [published]``)."""
    by_column = {column: metric for metric, column in columns.items()}
    ours = stats[stats["row"].isin(rows) & stats["group"].isin(groups) & stats["metric"].isin(by_column)]
    out = ours.assign(
        label=ours["row"].map(labels),
        method=ours["row"].map(lambda r: r.method),
        variant=ours["row"].map(lambda r: describe(json.loads(r.variant) or {})),
        stale=ours["row"].map(lambda r: r.stale),
        metric=ours["metric"].map(by_column),
        source="ratbench",
    )
    keep = ["label", "method", "variant", "stale", "group", "metric", "mean", "std", "n", "config_id", "source"]
    frames = [out[keep]]
    if with_paper and layout.published:
        n_seeds, tables = load_published()
        published = [
            {
                "label": f"{row.label} [paper]",
                "method": row.method,
                "group": group,
                "metric": metric,
                "mean": value[0],
                "std": value[1],
                "n": n_seeds,
                "source": row.source,
            }
            for row in tables[layout.published].rows
            for group, values in row.results.items()
            if group in groups
            for metric, value in values.items()
            if metric in columns and value is not None
        ]
        frames.append(pd.DataFrame(published, columns=keep))
    lines = []
    for method in published_methods:
        found = published_f1(method)
        for group in groups if found is not None else ():
            for metric, value in (("F1", found.f1.get(group)), ("S", (found.sparsity.get(group), None))):
                if metric in columns and value is not None and value[0] is not None:
                    lines.append(
                        {
                            "label": f"{method} [published]",
                            "method": method,
                            "group": group,
                            "metric": metric,
                            "mean": value[0],
                            "std": value[1],
                            "source": found.source,
                        }
                    )
    if lines:
        frames.append(pd.DataFrame(lines, columns=keep))
    return pd.concat(frames, ignore_index=True).to_csv(index=False)


def _notes(labels: dict[Row, str], mode: str, expected: int, hidden: int) -> list[str]:
    short = f"; [n=k]: fewer seeds than {expected}" if expected > 1 else ""
    notes = [f"Mode: {mode}. Values: mean (std) over seeds{short}."]
    runs: dict[str, list[str]] = {}  # what rows were run with -> those rows
    for row, label in labels.items():
        runs.setdefault(describe(json.loads(row.variant) or {}), []).append(label)
    if runs:
        notes.append("Run with: " + "; ".join(f"{', '.join(rows)}: {words}" for words, rows in runs.items()) + ".")
    if hidden:
        notes.append(
            f"{hidden} stale cell(s) hidden (an older method, dataset, evaluator or pipeline version, a "
            "configuration superseded by a newer run of the same variant, or a seed rerun with other "
            "--cpu-threads); --include-stale shows them."
        )
    return notes


def prose(lines: Sequence[str], fmt: str) -> str:
    """Lines of prose to print under a table in ``fmt``: LaTeX comments, HTML paragraphs, or
    plain lines (never CSV, which has no place for prose: see ``ratbench table``)."""
    if fmt == "latex":
        return "".join(f"% {line}\n" for line in lines)
    if fmt == "html":
        return "".join(f"<p>{html.escape(line)}</p>\n" for line in lines)
    return "".join(f"{line}\n" for line in lines)


def _latex_escape(text: str) -> str:
    return text.replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")


def _latex(
    titles: list[str],
    cell_columns: list[str],
    rows: list[list[str]],
    mode: str,
    notes: list[str],
    tail_columns: Sequence[str] = (),
) -> str:
    width = len(cell_columns)
    spec = "l" + ("|" + "c" * width) * len(titles) + "|l" * len(tail_columns)
    tail = [_latex_escape(c) for c in tail_columns]
    head = " & ".join(["Method"] + [rf"\multicolumn{{{width}}}{{c}}{{{t}}}" for t in titles] + tail)
    sub = " & ".join(
        [""] + [_latex_escape(c).replace("Δ", r"$\Delta$") for c in cell_columns] * len(titles) + [""] * len(tail)
    )
    body = "\n".join(" & ".join(cell.replace("Δ", r"$\Delta$") for cell in row) + r" \\" for row in rows)
    comments = "".join(f"% {note}\n" for note in notes)
    return (
        f"% ratbench table, mode: {mode}; mean (std) over seeds\n{comments}"
        rf"\begin{{tabular}}{{{spec}}}"
        "\n"
        r"\toprule"
        "\n"
        f"{head} \\\\\n{sub} \\\\\n"
        r"\midrule"
        "\n"
        f"{body}\n"
        r"\bottomrule"
        "\n"
        r"\end{tabular}"
        "\n"
    )
