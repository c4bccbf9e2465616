"""``ratbench plot``: the VER paper's figures from a results folder (matplotlib, optional extra).

* ``curves``: a per-epoch quantity of ``epochs.jsonl`` (default the annotation F1 of the
  diagnostics, Fig. 2b) against the epoch, one line per table row (method and variant) and a
  band from the lowest to the highest seed, one panel per dataset.
* ``sweep``: F1 and Acc against the value of the swept key (the one config key in which a
  method's rows differ, Fig. 9), mean and standard deviation over seeds.
* ``gold``: the predictor's accuracy on the human rationales and its cross-entropy there at the
  selected epoch, per dataset and row (Fig. 10).
* ``sparsity``: F1 against the achieved sparsity S, one point per row and dataset (compare
  methods at matched sparsity).

Rows are the table's (``ratbench.tables``): one method and one variant, stale cells left out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ratbench import cells
from ratbench.errors import RatbenchError
from ratbench.tables import labels_for, table_cells

FIGURES = ("curves", "sweep", "gold", "sparsity")


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, no display
        import matplotlib.pyplot as plt
    except ImportError:
        raise RatbenchError("ratbench plot needs matplotlib: pip install 'ratbench[plot]'") from None
    return plt


def _epochs(results_dir: Path, cell_frame: pd.DataFrame) -> pd.DataFrame:
    """One line per (cell, epoch): the cell's row, group and seed and its epoch record."""
    lines = []
    for cell in cell_frame.itertuples():
        path = results_dir / "runs" / str(cell.cell_id) / cells.EPOCHS_FILE
        if not path.is_file():
            continue
        for text in path.read_text(encoding="utf-8").splitlines():
            if text.strip():
                lines.append({"row": cell.row, "group": cell.group, "seed": cell.seed, **json.loads(text)})
    return pd.DataFrame(lines)


def _varying_key(variants: list[dict[str, Any]]) -> str | None:
    """The one method key whose value differs between ``variants`` (None: none, or several)."""
    keys = {key for variant in variants for key in (variant.get("method") or {})}
    varying = [k for k in sorted(keys) if len({str((v.get("method") or {}).get(k)) for v in variants}) > 1]
    return varying[0] if len(varying) == 1 else None


def plot(
    results_dir: Path, frame: pd.DataFrame, figure: str, out: Path, mode: str = "reference", metric: str = ""
) -> None:
    """Draw ``figure`` from the finished cells ``frame`` of ``results_dir`` into ``out``."""
    if figure not in FIGURES:
        raise RatbenchError(f"unknown figure {figure!r}; available: {', '.join(FIGURES)}")
    plt = _pyplot()
    cell_frame, _ = table_cells(frame, mode)
    labels = labels_for(list(dict.fromkeys(cell_frame["row"])))
    groups = list(dict.fromkeys(cell_frame["group"]))
    width = 2 if figure == "gold" else len(groups)
    fig, axes = plt.subplots(1, width, figsize=(5 * width, 4), squeeze=False)
    axes = axes[0]
    if figure == "curves":
        _curves(axes, _epochs(results_dir, cell_frame), groups, labels, metric or "diag_annotation_F1")
    elif figure == "sweep":
        _sweep(axes, cell_frame, groups, results_dir)
    elif figure == "gold":
        _gold(axes, cell_frame, _epochs(results_dir, cell_frame), groups, labels)
    else:
        _sparsity(axes, cell_frame, groups, labels)
    fig.suptitle(f"{figure}: {results_dir} ({mode} mode)", fontsize=10)
    fig.tight_layout()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=100)
    except OSError as exc:
        raise RatbenchError(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)


def _curves(axes: Any, epochs: pd.DataFrame, groups: list[str], labels: dict, metric: str) -> None:
    if epochs.empty or metric not in epochs:
        raise RatbenchError(f"no cell recorded {metric!r} per epoch (diagnostics need select-then-predict cells)")
    for ax, group in zip(axes, groups, strict=True):
        here = epochs[epochs["group"] == group]
        for row, lines in here.groupby("row", sort=False):
            per_epoch = lines.groupby("epoch")[metric].agg(["mean", "min", "max"]).dropna()
            if per_epoch.empty:
                continue
            ax.plot(per_epoch.index, per_epoch["mean"], label=labels[row])
            ax.fill_between(per_epoch.index, per_epoch["min"], per_epoch["max"], alpha=0.2)
        unit = " (%)" if metric.endswith(("F1", "acc", "change")) else ""
        ax.set(title=group, xlabel="epoch", ylabel=f"{metric}{unit}")
        ax.legend(fontsize=8)


def _config_value(results_dir: Path, cell_id: str, key: str) -> float:
    """``key`` of the resolved method config in a cell's ``spec.json`` (a row whose swept value
    is the preset's has no difference to show in its variant)."""
    try:
        spec = json.loads((results_dir / "runs" / cell_id / cells.SPEC_FILE).read_text(encoding="utf-8"))
        return float(spec["method_config"][key])
    except (OSError, ValueError, KeyError, TypeError):
        return float("nan")


def _sweep(axes: Any, cell_frame: pd.DataFrame, groups: list[str], results_dir: Path) -> None:
    drawn = False
    for ax, group in zip(axes, groups, strict=True):
        here = cell_frame[cell_frame["group"] == group]
        for method, cells_of_method in here.groupby("method", sort=False):
            rows = list(dict.fromkeys(cells_of_method["row"]))
            variants = [json.loads(row.variant) or {} for row in rows]
            key = _varying_key(variants)
            if key is None:
                continue
            points = []
            for variant, row in zip(variants, rows, strict=True):
                value = (variant.get("method") or {}).get(key)
                if value is None:
                    value = _config_value(
                        results_dir, str(cells_of_method[cells_of_method["row"] == row].iloc[0].cell_id), key
                    )
                points.append((float(value), row))
            points.sort(key=lambda point: point[0])
            for column, style in (("F1", "-o"), ("Acc", "--s")):
                values = [pd.to_numeric(here[here["row"] == row][column], errors="coerce") for _, row in points]
                means = [v.mean() for v in values]
                stds = [v.std() if len(v) > 1 else 0.0 for v in values]
                ax.errorbar([x for x, _ in points], means, yerr=stds, fmt=style, capsize=3, label=f"{method} {column}")
            ax.set(title=group, xlabel=key, ylabel="F1 / Acc (%)")
            ax.legend(fontsize=8)
            drawn = True
    if not drawn:
        raise RatbenchError("no method has rows that differ in one config key; run a grid with --sweep first")


def _gold(axes: Any, cell_frame: pd.DataFrame, epochs: pd.DataFrame, groups: list[str], labels: dict) -> None:
    rows = list(labels)
    positions = np.arange(len(groups))
    width = 0.8 / max(1, len(rows))
    for offset, row in enumerate(rows):
        accuracy, entropy = [], []
        for group in groups:
            here = cell_frame[(cell_frame["row"] == row) & (cell_frame["group"] == group)]
            accuracy.append(pd.to_numeric(here.get("acc_gold_rationale"), errors="coerce").mean())
            last = epochs[(epochs["row"] == row) & (epochs["group"] == group)] if not epochs.empty else epochs
            best = {seed: int(epoch) for seed, epoch in zip(here["seed"], here.get("best_epoch", []), strict=False)}
            chosen = [
                line["diag_gold_ce_mean"]
                for line in last.to_dict("records")
                if "diag_gold_ce_mean" in line and best.get(line["seed"]) == line["epoch"]
            ]
            entropy.append(float(np.mean(chosen)) if chosen else np.nan)
        axes[0].bar(positions + offset * width, accuracy, width, label=labels[row])
        axes[1].bar(positions + offset * width, entropy, width, label=labels[row])
    for ax, name in ((axes[0], "accuracy on gold rationales (%)"), (axes[1], "cross-entropy on gold rationales")):
        ax.set_xticks(positions + width * (len(rows) - 1) / 2, groups, rotation=20, fontsize=8)
        ax.set(ylabel=name)
        ax.legend(fontsize=8)


def _sparsity(axes: Any, cell_frame: pd.DataFrame, groups: list[str], labels: dict) -> None:
    for ax, group in zip(axes, groups, strict=True):
        here = cell_frame[cell_frame["group"] == group]
        for row, cells_of_row in here.groupby("row", sort=False):
            s, f1 = (pd.to_numeric(cells_of_row[c], errors="coerce") for c in ("S", "F1"))
            ax.errorbar(s.mean(), f1.mean(), xerr=s.std() if len(s) > 1 else 0, yerr=f1.std() if len(f1) > 1 else 0,
                        fmt="o", capsize=3, label=labels[row])  # fmt: skip
        ax.set(title=group, xlabel="achieved sparsity S (%)", ylabel="token F1 (%)")
        ax.legend(fontsize=8)
