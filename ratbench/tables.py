"""Render Table 1 of the paper: a row per method, a column group (S, Acc, P, R, F1) per
dataset.subset, each cell ``mean (std)`` over seeds."""

from __future__ import annotations

import math
from typing import Literal

import pandas as pd
from tabulate import tabulate

from ratbench.errors import RatbenchError

TableFormat = Literal["github", "latex", "csv"]
COLUMNS = ("S", "Acc", "P", "R", "F1")


def _with_variants(stats: pd.DataFrame) -> pd.DataFrame:
    """Add ``variant``, the row of each config within its method.

    A config id covers one dataset.subset (the dataset is part of it), so a method's configs in
    different columns share a row, as in the paper's table. Only several configs of one method
    in the same column (e.g. two values of a flag) need more rows: the k-th config of a column
    goes to variant k.
    """
    keys = ["method", "group", "config_id"]
    firsts = stats.drop_duplicates(keys)
    firsts = firsts.assign(variant=firsts.groupby(["method", "group"], sort=False).cumcount())
    return stats.merge(firsts[[*keys, "variant"]], on=keys, how="left")


def _row_labels(stats: pd.DataFrame) -> dict[tuple[str, int], str]:
    """Label of each ``(method, variant)`` row: the method, plus its config ids when it has several rows."""
    several = set(stats.loc[stats["variant"] > 0, "method"])
    return {
        (method, variant): f"{method} [{', '.join(dict.fromkeys(ids))}]" if method in several else method
        for (method, variant), ids in stats.groupby(["method", "variant"], sort=False)["config_id"]
    }


def aggregate(frame: pd.DataFrame, mode: str) -> pd.DataFrame:
    """Mean, sample std (ddof=1) and seed count per (method, config, dataset.subset, metric)."""
    if frame.empty:
        raise RatbenchError("no finished cells found; run `ratbench run ...` first or pass --results-dir")
    frame = frame[frame["mode"] == mode].copy()
    frame["group"] = frame["dataset"] + "." + frame["subset"]
    long = frame.melt(
        id_vars=["method", "config_id", "group", "seed", "kind"], value_vars=list(COLUMNS), var_name="metric"
    )
    long["value"] = pd.to_numeric(long["value"], errors="coerce")
    stats = (
        long.groupby(["method", "config_id", "group", "metric"], sort=False)["value"]
        .agg(mean="mean", std="std", n="size", n_values="count")
        .reset_index()
    )
    return stats


def _fmt(mean: float, std: float, n: int, n_values: int, expected: int) -> str:
    if n_values == 0:
        return "N/A"
    text = f"{mean:.1f}" if n < 2 or math.isnan(std) else f"{mean:.1f} ({std:.1f})"
    return f"{text} [n={n}]" if n < expected else text


def render(frame: pd.DataFrame, mode: str = "reference", fmt: TableFormat = "github", seeds: int | None = None) -> str:
    """The table as text. ``seeds`` is the expected seed count (default: the most in any cell);
    cells with fewer seeds are marked ``[n=k]``."""
    stats = aggregate(frame, mode)
    if fmt == "csv":
        return stats.drop(columns="n_values").to_csv(index=False)
    expected = seeds if seeds is not None else int(stats["n"].max())
    groups = list(dict.fromkeys(stats["group"]))
    stats = _with_variants(stats)
    labels = _row_labels(stats)
    lookup = {
        (r.method, r.variant, r.group, r.metric): _fmt(r.mean, r.std, r.n, r.n_values, expected)
        for r in stats.itertuples()
    }
    rows = [
        [label] + [lookup.get((method, variant, g, m), "") for g in groups for m in COLUMNS]
        for (method, variant), label in labels.items()
    ]
    if fmt == "latex":
        return _latex(groups, rows, mode)
    headers = ["Method"] + [f"{g} {m}" if m == "S" else m for g in groups for m in COLUMNS]
    note = f"Mode: {mode}. Values: mean (std) over seeds; [n=k]: fewer seeds than {expected}."
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True) + "\n\n" + note + "\n"


def _latex(groups: list[str], rows: list[list[str]], mode: str) -> str:
    spec = "l" + "|ccccc" * len(groups)
    head = " & ".join(["Method"] + [rf"\multicolumn{{5}}{{c}}{{{g}}}" for g in groups])
    sub = " & ".join([""] + list(COLUMNS) * len(groups))
    body = "\n".join(" & ".join(cell.replace("_", r"\_") for cell in row) + r" \\" for row in rows)
    return (
        f"% ratbench table, mode: {mode}; mean (std) over seeds\n"
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
