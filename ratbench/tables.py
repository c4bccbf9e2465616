"""Render Table 1 of the paper: a row per method and variant, a column group (S, Acc, P, R, F1)
per dataset.subset, each cell ``mean (std)`` over seeds.

A row is one method plus one variant (``ratbench.variants``: the preset and the overrides the
user asked for, the same for every dataset), so a row never mixes configurations across
columns; a method with several variants gets a row per variant, labelled by how they differ
(``ver (perturb_rate=0.5)``). Stale cells are hidden unless asked for: cells of an older method,
dataset, evaluator or pipeline version, cells that recorded no variant, and cells of a
configuration superseded by a newer run of the same variant in the same column (a changed
preset or data file).
"""

from __future__ import annotations

import json
import math
import textwrap
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd
from tabulate import tabulate

from ratbench.errors import RatbenchError
from ratbench.types import METRIC_COLUMNS
from ratbench.variants import describe, row_labels
from ratbench.versions import EVAL_VERSION, PIPELINE_VERSION

TableFormat = Literal["github", "latex", "csv"]
COLUMNS = METRIC_COLUMNS


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


def mark_stale(cells: pd.DataFrame) -> pd.Series:
    """Why each cell (a row of ``cells``: one per cell) is stale, "" where it is not."""
    from ratbench.registry import DATASETS, METHODS

    versions: dict[tuple[str, str], str | None] = {}
    for kind, registry, column in (("method", METHODS, "method"), ("dataset", DATASETS, "dataset")):
        for name in cells[column].unique():
            versions[kind, name] = _current_version(registry, name)
    stale = cells.apply(lambda cell: _version_reasons(cell, versions), axis=1).astype(str)

    # Several configurations of one variant in one column: the newest one is the row's.
    live = cells[stale == ""]
    for _, group in live.groupby(["method", "variant", "group"], sort=False):
        configs = group.groupby("config_id")["finished_at"].max().sort_values(ascending=False)
        if len(configs) < 2:
            continue
        newest = configs.index[0]
        newest_identity = group.loc[group["config_id"] == newest, "identity"].iloc[0]
        for config_id in configs.index[1:]:
            members = group.index[group["config_id"] == config_id]
            identity = group.loc[members[0], "identity"]
            stale[members] = f"superseded by a newer configuration; it had {_how_it_differs(identity, newest_identity)}"
    return stale


def aggregate(frame: pd.DataFrame, mode: str, include_stale: bool = False) -> tuple[pd.DataFrame, dict[Row, str], int]:
    """Mean, sample std (ddof=1) and seed count per (row, dataset.subset, metric).

    Returns the statistics (column ``row`` holds a ``Row``), the label of each row, and the
    number of stale cells left out (0 with ``include_stale``).
    """
    if frame.empty:
        raise RatbenchError("no finished cells found; run `ratbench run ...` first or pass --results-dir")
    frame = frame[frame["mode"] == mode].copy()
    for column in ("variant", "identity", "method_version", "dataset_version", "eval_version", "pipeline_version"):
        if column not in frame:
            frame[column] = None
    frame["group"] = frame["dataset"] + "." + frame["subset"]
    frame["cell_key"] = frame["config_id"] + "/seed" + frame["seed"].astype(str)  # the config id names the column
    per_cell = frame.drop_duplicates("cell_key").set_index("cell_key")
    stale = mark_stale(per_cell)
    frame["stale"] = frame["cell_key"].map(stale)
    hidden = 0 if include_stale else int((stale != "").sum())
    if not include_stale:
        frame = frame[frame["stale"] == ""].copy()
    if frame.empty:
        raise RatbenchError(f"all {hidden} finished cells are stale; pass --include-stale to show them")
    frame["variant"] = frame["variant"].fillna("null")
    frame["row"] = [Row(m, v, s) for m, v, s in zip(frame["method"], frame["variant"], frame["stale"], strict=True)]
    frame = _split_mixed_stale_rows(frame)

    long = frame.melt(id_vars=["row", "method", "group", "seed", "kind"], value_vars=list(COLUMNS), var_name="metric")
    long["value"] = pd.to_numeric(long["value"], errors="coerce")
    stats = (
        long.groupby(["row", "group", "metric"], sort=False)["value"]
        .agg(mean="mean", std="std", n="size", n_values="count")
        .reset_index()
    )
    configs = frame.groupby(["row", "group"], sort=False)["config_id"].agg(lambda ids: ",".join(sorted(set(ids))))
    stats = stats.merge(configs.reset_index(), on=["row", "group"], how="left")
    return stats, _labels(list(dict.fromkeys(frame["row"]))), hidden


def _split_mixed_stale_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Stale rows that would hold several configurations in one column get one row each."""
    rows = frame["row"].copy()
    for (row, _), group in frame.groupby(["row", "group"], sort=False):
        configs = list(dict.fromkeys(group.sort_values("finished_at", ascending=False)["config_id"]))
        for rank, config_id in enumerate(configs[1:], start=2):
            for index in group.index[group["config_id"] == config_id]:
                rows[index] = Row(row.method, row.variant, f"{row.stale} #{rank}")
    return frame.assign(row=rows)


def _labels(rows: list[Row]) -> dict[Row, str]:
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


def _fmt(mean: float, std: float, n: int, n_values: int, expected: int) -> str:
    if n_values == 0:
        return "N/A"
    text = f"{mean:.1f}" if n < 2 or math.isnan(std) else f"{mean:.1f} ({std:.1f})"
    return f"{text} [n={n}]" if n < expected else text


def render(
    frame: pd.DataFrame,
    mode: str = "reference",
    fmt: TableFormat = "github",
    seeds: int | None = None,
    include_stale: bool = False,
) -> str:
    """The table as text. ``seeds`` is the expected seed count (default: the most in any cell);
    cells with fewer seeds are marked ``[n=k]``. Notes under the table say what each row is."""
    stats, labels, hidden = aggregate(frame, mode, include_stale)
    if fmt == "csv":
        out = stats.assign(
            label=stats["row"].map(labels),
            method=stats["row"].map(lambda r: r.method),
            variant=stats["row"].map(lambda r: describe(json.loads(r.variant) or {})),
            stale=stats["row"].map(lambda r: r.stale),
        )
        return out[["label", "method", "variant", "stale", "group", "metric", "mean", "std", "n", "config_id"]].to_csv(
            index=False
        )
    expected = seeds if seeds is not None else int(stats["n"].max())
    groups = list(dict.fromkeys(stats["group"]))
    lookup = {(r.row, r.group, r.metric): _fmt(r.mean, r.std, r.n, r.n_values, expected) for r in stats.itertuples()}
    table_rows = [
        [label] + [lookup.get((row, g, m), "") for g in groups for m in COLUMNS] for row, label in labels.items()
    ]
    notes = _notes(labels, mode, expected, hidden)
    if fmt == "latex":
        return _latex(groups, table_rows, mode, notes)
    headers = ["Method"] + [f"{g} {m}" if m == "S" else m for g in groups for m in COLUMNS]
    text = tabulate(table_rows, headers=headers, tablefmt="github", disable_numparse=True)
    return text + "\n\n" + "\n".join(textwrap.fill(note, 100, break_on_hyphens=False) for note in notes) + "\n"


def _notes(labels: dict[Row, str], mode: str, expected: int, hidden: int) -> list[str]:
    notes = [f"Mode: {mode}. Values: mean (std) over seeds; [n=k]: fewer seeds than {expected}."]
    runs: dict[str, list[str]] = {}  # what rows were run with -> those rows
    for row, label in labels.items():
        runs.setdefault(describe(json.loads(row.variant) or {}), []).append(label)
    notes.append("Run with: " + "; ".join(f"{', '.join(rows)}: {words}" for words, rows in runs.items()) + ".")
    if hidden:
        notes.append(
            f"{hidden} stale cell(s) hidden (an older method, dataset, evaluator or pipeline version, or a "
            "configuration superseded by a newer run of the same variant); --include-stale shows them."
        )
    return notes


def _latex(groups: list[str], rows: list[list[str]], mode: str, notes: list[str]) -> str:
    spec = "l" + "|ccccc" * len(groups)
    head = " & ".join(["Method"] + [rf"\multicolumn{{5}}{{c}}{{{g}}}" for g in groups])
    sub = " & ".join([""] + list(COLUMNS) * len(groups))
    body = "\n".join(" & ".join(cell.replace("_", r"\_") for cell in row) + r" \\" for row in rows)
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
