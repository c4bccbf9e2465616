"""Render a table of results: a row per method and variant (``ratbench.reporting.rows``), a column group
(S, Acc, P, R, F1 by default) per dataset.subset, each value ``mean (std)`` over seeds, in
Markdown, LaTeX, HTML or CSV.

What to show is one ``TableRequest`` (the layout, ``ratbench.reporting.layouts``, and how to narrow or
change it); ``render(frame, request)`` gives the text. Which cells make which row, and which are
stale, is ``ratbench.reporting.rows``'s; this module only computes the statistics shown and lays them out.
"""

from __future__ import annotations

import html
import json
import math
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import pandas as pd
from tabulate import tabulate

from ratbench.errors import RatbenchError
from ratbench.execution.variants import describe
from ratbench.reporting.layouts import Layout, get_layout
from ratbench.reporting.published import PublishedF1, PublishedTable, counterpart, load_published, published_f1
from ratbench.reporting.rows import Row, has_settings, labels_for, method_changes, row_encoder, table_cells, word_rule
from ratbench.reporting.stats import welch_from_stats
from ratbench.types import METRIC_COLUMNS

TableFormat = Literal["github", "latex", "csv", "html"]
COLUMNS = METRIC_COLUMNS
STATS_COLUMNS = ["row", "group", "metric", "mean", "std", "n", "n_values", "config_id", "cpu_threads"]


@dataclass(frozen=True)
class TableRequest:
    """What a table shows: ``ratbench table``'s options (and each table of ``ratbench report``).

    Attributes:
        mode: the evaluation mode whose results are shown.
        layout: the ``--layout`` (``ratbench.reporting.layouts``): column groups, metrics, encoder, row order.
        fmt: ``github`` (Markdown), ``latex``, ``html`` or ``csv``.
        metrics: the metric columns of each group instead of the layout's.
        level: what S, P, R and F1 count (``word`` or ``piece``) instead of the layout's level.
        methods: only the rows of these methods.
        datasets: only these column groups (NAME or NAME.SUBSET).
        seeds: only the cells of these seeds, and rows with fewer are marked ``[n=k]`` (None:
            every seed; ``[n=k]`` below the most in any cell).
        include_stale: stale cells as rows of their own (``ratbench.reporting.rows``), not left out.
        with_paper: the paper's rows (marked published) and, for each of our rows with a
            published counterpart, the F1 difference and Welch's t-test p-value; a row of the
            paper's grid that no cell fills is a row of ``-`` (so the paper's table shows beside
            partial results, or none).
    """

    mode: str = "reference"
    layout: str = "generic"
    fmt: TableFormat = "github"
    metrics: Sequence[str] | None = None
    level: str | None = None
    methods: Sequence[str] | None = None
    datasets: Sequence[str] | None = None
    seeds: Sequence[int] | None = None
    include_stale: bool = False
    with_paper: bool = False

    def __post_init__(self) -> None:
        for name in ("metrics", "methods", "datasets", "seeds"):  # a caller's list, copied: the request never changes
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(value))


DEFAULT_REQUEST = TableRequest()
"""Every row of the generic layout, reference mode, as a Markdown table."""


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


MISSING = "-"  # a row without a result in a column group
DELTA = "ΔF1 (p)"
PUBLISHED = "published F1 [S]"  # a published_column layout's column in each group
SOURCE = "published in"  # ... and its last column


@dataclass
class ShownValue:
    """One shown value: its text and, for bold marking, the mean it stands for."""

    text: str
    mean: float | None = None


@dataclass
class ShownRow:
    """One shown row: its label, its values by (group, column) and by column after the groups."""

    label: str
    values: dict[tuple[str, str], ShownValue]
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


def render(frame: pd.DataFrame, request: TableRequest = DEFAULT_REQUEST) -> str:
    """The table of the results ``frame`` (``ratbench.reporting.results.load_results``) that ``request``
    asks for, as text. The best mean F1 of each column group is in bold; notes under the table
    say what each row is.
    """
    chosen = get_layout(request.layout)
    if request.with_paper and chosen.published_column:
        raise RatbenchError(f"--layout {chosen.name} shows the published F1 without --with-paper; drop --with-paper")
    if request.with_paper and chosen.published is None:
        raise RatbenchError("--with-paper needs a paper layout: add --layout table1, table2 or table3")
    methods = request.methods
    level = request.level or chosen.level
    shown = tuple(request.metrics or chosen.metrics)
    f1_column = chosen.column("F1", level)
    columns = {metric: chosen.column(metric, level) for metric in shown}
    own_grid = _own_grid(chosen, methods)
    if own_grid is not None:
        chosen = replace(chosen, method_order=own_grid)  # the grid's methods are the rows, in its order
    stats, labels, hidden = aggregate(
        frame,
        request.mode,
        request.include_stale,
        list(dict.fromkeys([*columns.values(), f1_column])),
        request.seeds,
        allow_empty=request.with_paper or chosen.published_column,
    )
    rows = [row for row in labels if methods is None or row.method in methods]
    off_grid = [row for row in rows if own_grid is not None and row.method not in own_grid]
    rows = [row for row in rows if row not in off_grid]
    other_encoder = [row for row in rows if chosen.encoder is not None and row_encoder(row) != chosen.encoder]
    rows = _order([row for row in rows if row not in other_encoder], chosen)
    groups = _choose_groups(chosen, list(dict.fromkeys(stats["group"])), request.datasets)
    with_results = set(stats.loc[stats["group"].isin(groups), "row"])
    rows = [row for row in rows if row in with_results]  # a row of another table's datasets is not this table's
    off_grid = [row for row in off_grid if row in with_results]
    with_grid_rows = request.with_paper or chosen.published_column
    unfilled = _unfilled_grid_rows(chosen, rows, methods) if with_grid_rows else []
    if not rows and not unfilled:
        raise RatbenchError(_no_rows_message(chosen, methods, other_encoder))
    labels = labels_for(rows)  # a label says how a row differs from the rows of this table only
    shown_stats = stats[stats["row"].isin(rows) & stats["group"].isin(groups)]
    expected = len(request.seeds) if request.seeds is not None else int(shown_stats["n"].max()) if rows else 1
    published_table = load_published()[1][chosen.published] if request.with_paper and chosen.published else None
    if request.fmt == "csv":
        listed = list(dict.fromkeys([*(row.method for row in rows), *(method for method, _ in unfilled)]))
        published_methods = listed if chosen.published_column else []
        return _csv(stats, labels, rows, groups, columns, published_table, published_methods)

    table_rows = _published_rows(published_table, groups, shown) if published_table is not None else []
    by_key = {(r.row, r.group, r.metric): r for r in stats.itertuples()}
    ours: list[tuple[str, ShownRow]] = []
    for row in rows:
        values = {}
        for group in groups:
            for metric in shown:
                stat = by_key.get((row, group, columns[metric]))
                text = MISSING if stat is None else _fmt(stat.mean, stat.std, stat.n, stat.n_values, expected)
                values[group, metric] = ShownValue(text)
            f1 = by_key.get((row, group, f1_column))
            if "F1" in shown and f1 is not None and f1.n_values:
                values[group, "F1"].mean = f1.mean
            if published_table is not None:
                values[group, DELTA] = ShownValue(_delta(published_table, row, group, f1))
        ours.append((row.method, ShownRow(labels[row], values)))
    value_columns = [*shown, DELTA] if published_table is not None else list(shown)
    for method, label in unfilled:
        ours.append((method, ShownRow(label, {(g, c): ShownValue(MISSING) for g in groups for c in value_columns})))
    tail_columns = []
    if chosen.published_column:  # each row's method's published F1 beside ours, and its source last
        value_columns.append(PUBLISHED)
        tail_columns.append(SOURCE)
        for method, table_row in ours:
            published = published_f1(method)
            for group in groups:
                table_row.values[group, PUBLISHED] = ShownValue(_published_f1_text(published, group))
            table_row.tail[SOURCE] = published.source if published is not None else MISSING
    rank = {method: index for index, method in enumerate(chosen.method_order)}
    ours.sort(key=lambda entry: rank.get(entry[0], len(rank)))  # stable: our rows before a method's empty row
    table_rows += [table_row for _, table_row in ours]
    notes = _notes({row: labels[row] for row in rows}, request.mode, expected, hidden)
    notes += _thread_notes({row: labels[row] for row in rows}, shown_stats)
    notes += _layout_notes(chosen, level, rows, other_encoder, published_table, "F1" in shown)
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
    return _format(request.fmt, chosen, groups, value_columns, table_rows, request.mode, notes, tail_columns)


def _own_grid(layout: Layout, methods: Sequence[str] | None) -> tuple[str, ...] | None:
    """The methods of a ``published_column`` layout's grid (its rows), checking that ``methods``
    are among them; None for the other layouts."""
    if not layout.published_column:
        return None
    from ratbench.execution.paper_grids import grid_for_layout

    grid = grid_for_layout(layout.name)
    own = grid.methods if grid is not None else ()
    outside = [name for name in methods or () if name not in own]
    if outside:
        raise RatbenchError(
            f"--methods {','.join(outside)}: not a method of the {layout.name} ({', '.join(own) or 'none'}); "
            "--layout generic shows every method"
        )
    return own


def _unfilled_grid_rows(layout: Layout, rows: list[Row], methods: Sequence[str] | None) -> list[tuple[str, str]]:
    """``(method, label)`` of each row of the layout's paper grid (``ratbench.execution.paper_grids``) that no
    row of ``rows`` fills: the method with its run's own settings (``nir (noise_p=0.0)``)."""
    from ratbench.execution.paper_grids import grid_for_layout

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


def _published_rows(table: PublishedTable, groups: list[str], shown: Sequence[str]) -> list[ShownRow]:
    """The paper's rows of ``table`` over ``groups`` (``-`` where it printed nothing)."""
    rows = []
    for paper_row in table.rows:
        values = {}
        for group in groups:
            printed = paper_row.results.get(group, {})
            for metric in shown:
                values[group, metric] = ShownValue(_published_text(printed[metric]) if metric in printed else MISSING)
            f1 = printed.get("F1")
            if "F1" in shown and f1 is not None:
                values[group, "F1"].mean = f1[0]
            values[group, DELTA] = ShownValue("")
        rows.append(ShownRow(f"{paper_row.label} [paper]", values))
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
    test = welch_from_stats(
        ours.mean,
        ours.std,
        int(ours.n_values),
        paper[0],
        math.nan if paper[1] is None else paper[1],
        published_table.n_seeds,
    )
    return f"{test.difference:+.1f}" + ("" if test.p is None else f" (p={test.p:.2g})")


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
    layout: Layout,
    level: str,
    rows: list[Row],
    other_encoder: list[Row],
    published_table: PublishedTable | None,
    bold: bool,
) -> list[str]:
    notes: list[str] = []
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
    if published_table is not None:
        n_seeds, paper_level = published_table.n_seeds, published_table.metric_level
        notes.append(
            f"[paper]: the paper's published rows (mean (std) over its {n_seeds} seeds; * = copied by the paper from "
            f"another publication). {DELTA}: our mean F1 minus the published counterpart's, with Welch's t-test "
            f"p-value against n={n_seeds}."
        )
        if paper_level != level:
            notes.append(f"Caution: the paper's rows count {paper_level}s, these rows count {level}s (--level).")
    return notes


def _best(table_rows: list[ShownRow], groups: list[str]) -> set[tuple[int, str]]:
    """(row index, group) of the highest mean F1 of each group (ties: all of them)."""
    best = set()
    for group in groups:
        means = {i: row.values[group, "F1"].mean for i, row in enumerate(table_rows) if (group, "F1") in row.values}
        known = {i: m for i, m in means.items() if m is not None}
        if known:
            top = max(known.values())
            best |= {(i, group) for i, m in known.items() if m == top}
    return best


def _format(
    fmt: str,
    layout: Layout,
    groups: list[str],
    value_columns: list[str],
    table_rows: list[ShownRow],
    mode: str,
    notes: list[str],
    tail_columns: Sequence[str] = (),
) -> str:
    best = _best(table_rows, groups)
    escapes: dict[str, Callable[[str], str]] = {"latex": _latex_escape, "html": html.escape}
    escape = escapes.get(fmt, lambda text: text)
    bold = {"latex": r"\textbf{{{}}}", "html": "<b>{}</b>"}.get(fmt, "**{}**")
    body = []
    for index, row in enumerate(table_rows):
        line = [escape(row.label)]
        for group in groups:
            for column in value_columns:
                text = escape(row.values[group, column].text)
                line.append(bold.format(text) if column == "F1" and (index, group) in best else text)
        line += [escape(row.tail.get(column, MISSING)) for column in tail_columns]
        body.append(line)
    titles = [layout.group_title(group) for group in groups]
    if fmt == "latex":
        return _latex(titles, value_columns, body, mode, notes, tail_columns)
    headers = ["Method"] + [f"{t} {c}" if i == 0 else c for t in titles for i, c in enumerate(value_columns)]
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
    published_table: PublishedTable | None,
    published_methods: Sequence[str] = (),
) -> str:
    """Long format: one line per (row, group, metric), ours and the paper's (those of
    ``published_table``), and the published F1 and S of each of ``published_methods`` (``method
    [published]``)."""
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
    if published_table is not None:
        published = [
            {
                "label": f"{row.label} [paper]",
                "method": row.method,
                "group": group,
                "metric": metric,
                "mean": value[0],
                "std": value[1],
                "n": published_table.n_seeds,
                "source": row.source,
            }
            for row in published_table.rows
            for group, values in row.results.items()
            if group in groups
            for metric, value in values.items()
            if metric in columns and value is not None
        ]
        frames.append(pd.DataFrame(published, columns=keep))
    lines = []
    for method in published_methods:
        found = published_f1(method)
        if found is None:
            continue
        for group in groups:
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
    value_columns: list[str],
    rows: list[list[str]],
    mode: str,
    notes: list[str],
    tail_columns: Sequence[str] = (),
) -> str:
    width = len(value_columns)
    spec = "l" + ("|" + "c" * width) * len(titles) + "|l" * len(tail_columns)
    tail = [_latex_escape(c) for c in tail_columns]
    head = " & ".join(["Method"] + [rf"\multicolumn{{{width}}}{{c}}{{{t}}}" for t in titles] + tail)
    sub = " & ".join(
        [""] + [_latex_escape(c).replace("Δ", r"$\Delta$") for c in value_columns] * len(titles) + [""] * len(tail)
    )
    body = "\n".join(" & ".join(text.replace("Δ", r"$\Delta$") for text in row) + r" \\" for row in rows)
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
