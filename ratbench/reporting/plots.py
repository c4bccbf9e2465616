"""``ratbench plot``: the VER paper's figures from a results folder (matplotlib, optional extra).

* ``curves``: a per-epoch quantity of ``epochs.jsonl`` (default the annotation F1 of the
  diagnostics, Fig. 2b) against the epoch, one line per table row (method and variant) and a
  band from the lowest to the highest seed, one panel per dataset.
* ``sweep``: F1 and Acc against the value of the swept key (the one method or data config key
  in which a method's rows differ, Fig. 9), mean and standard deviation over seeds; a key
  whose values are not all numbers (``attention.scorer=additive,linear``) gets a categorical axis.
* ``gold``: the predictor's accuracy on the human rationales and its cross-entropy there at the
  selected epoch, per dataset and row (Fig. 10); the cross-entropy panel is left out when no
  cell recorded it (post-hoc methods have no diagnostics).
* ``sparsity``: F1 against the achieved sparsity S, one point per row and dataset (compare
  methods at matched sparsity).

Rows are the table's (``ratbench.reporting.rows``): one method and one variant, stale cells left out.
The file is written atomically (``ratbench.outputs``): a kill leaves the previous figure intact.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ratbench.errors import RatbenchError, did_you_mean
from ratbench.execution import store
from ratbench.outputs import write_output
from ratbench.reporting.rows import labels_for, table_cells

FIGURES = ("curves", "sweep", "gold", "sparsity")
FORMATS = (".png", ".pdf", ".svg")  # what --out may end in; the suffix picks matplotlib's format
DEFAULT_METRIC = "diag_annotation_F1"
_OWN_COLUMNS = ("row", "group", "seed", "epoch")  # added or indexed by ``_epochs``: not a --metric
_BAD_LINES_SHOWN = 5

Warn = Callable[[str], None]


def check_request(figure: str, out: Path, metric: str = "") -> None:
    """Refuse, with one line, a figure, file name or ``--metric`` that cannot be drawn (before
    any results are read)."""
    if figure not in FIGURES:
        raise RatbenchError(f"unknown figure {figure!r}; available: {', '.join(FIGURES)}")
    if out.suffix.lower() not in FORMATS:
        raise RatbenchError(f"--out {out}: use a .png, .pdf or .svg file name (the suffix picks the format)")
    if metric and figure != "curves":
        raise RatbenchError(f"--metric is for --figure curves only; leave it out for --figure {figure}")


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, no display
        import matplotlib.pyplot as plt
    except ImportError:
        raise RatbenchError("ratbench plot needs matplotlib: pip install 'ratbench[plot]'") from None
    return plt


@contextmanager
def _quiet(plt: Any) -> Iterator[None]:
    """Matplotlib without raw warnings on stderr and without mathtext: a path or label with
    CJK characters is drawn with placeholder boxes instead of printing ``Glyph ... missing``,
    and a ``$`` in a path is a dollar sign, not a formula that fails to parse."""
    with warnings.catch_warnings(), plt.rc_context({"text.parse_math": False}):
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from", category=UserWarning)
        warnings.filterwarnings("ignore", message="Tight layout not applied", category=UserWarning)
        yield


def _epoch_records(path: Path, warn: Warn) -> list[dict[str, Any]]:
    """The epoch records of one ``epochs.jsonl``; unreadable lines (a write cut short by a kill)
    are skipped with one warning for the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        warn(f"skipping {path}: {getattr(exc, 'strerror', None) or exc} (rerun the cell with `ratbench run`)")
        return []
    records, bad = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        epoch = record.get("epoch") if isinstance(record, dict) else None
        if not isinstance(epoch, int) or isinstance(epoch, bool):
            bad.append(str(number))
            continue
        records.append({key: value for key, value in record.items() if _is_number(value)})  # what can be drawn
    if bad:
        more = len(bad) - _BAD_LINES_SHOWN
        shown = ", ".join(bad[:_BAD_LINES_SHOWN]) + (f" and {more} more" if more > 0 else "")
        what = "line" if len(bad) == 1 else "lines"
        warn(f"skipping unreadable {what} {shown} of {path} (cut short?); the figure leaves those epochs out")
    return records


def _epochs(results_dir: Path, cell_frame: pd.DataFrame, warn: Warn) -> pd.DataFrame:
    """One line per (cell, epoch): the cell's row, group and seed and its epoch record."""
    lines = []
    for cell in cell_frame.drop_duplicates("cell_id").itertuples():
        path = store.cell_folder(results_dir, str(cell.cell_id)).file(store.EPOCHS_FILE)
        for record in _epoch_records(path, warn):
            lines.append({**record, "row": cell.row, "group": cell.group, "seed": cell.seed})
    return pd.DataFrame(lines)


def _epoch_metrics(epochs: pd.DataFrame) -> list[str]:
    """The per-epoch numbers the cells recorded: what ``--metric`` can name."""
    return [
        column
        for column in epochs.columns
        if column not in _OWN_COLUMNS
        and pd.api.types.is_numeric_dtype(epochs[column])
        and not pd.api.types.is_bool_dtype(epochs[column])
    ]


def _check_metric(epochs: pd.DataFrame, metric: str) -> None:
    choices = _epoch_metrics(epochs)
    if metric in choices:
        return
    if not choices:
        raise RatbenchError("no finished cell has per-epoch records (epochs.jsonl) to draw; rerun the cells")
    why = " (diagnostics need select-then-predict cells)" if metric.startswith("diag_") else ""
    raise RatbenchError(
        f"no cell recorded {metric!r} per epoch{why}{did_you_mean(metric, choices)}; "
        f"--metric can be one of: {', '.join(choices)}"
    )


def plot(
    results_dir: Path,
    frame: pd.DataFrame,
    figure: str,
    out: Path,
    mode: str = "reference",
    metric: str = "",
    warn: Warn | None = None,
) -> Path:
    """Draw ``figure`` from the finished cells ``frame`` of ``results_dir`` into ``out``
    (atomically); returns the file written. Skipped input is reported to ``warn``."""
    check_request(figure, out, metric)
    warn = warn or (lambda message: None)
    plt = _pyplot()
    cell_frame, _ = table_cells(frame, mode)
    labels = labels_for(list(dict.fromkeys(cell_frame["row"])))
    groups = list(dict.fromkeys(cell_frame["group"]))
    with _quiet(plt):
        epochs = _epochs(results_dir, cell_frame, warn) if figure in ("curves", "gold") else pd.DataFrame()
        if figure == "curves":
            _check_metric(epochs, metric or DEFAULT_METRIC)
        panels = _gold_panels(cell_frame, epochs, groups, labels) if figure == "gold" else []
        fig, axes = _figure(plt, len(panels) if figure == "gold" else len(groups))
        try:
            if figure == "curves":
                _curves(axes, epochs, groups, labels, metric or DEFAULT_METRIC)
            elif figure == "sweep":
                _sweep(axes, cell_frame, groups, results_dir)
            elif figure == "gold":
                _gold(axes, panels, groups, labels)
            else:
                _sparsity(axes, cell_frame, groups, labels)
            fig.suptitle(f"{figure}: {results_dir} ({mode} mode)", fontsize=10)
            fig.tight_layout()
            return _save(fig, out)
        finally:
            plt.close(fig)


def _figure(plt: Any, width: int) -> tuple[Any, Any]:
    fig, axes = plt.subplots(1, width, figsize=(5 * width, 4), squeeze=False)
    return fig, axes[0]


def _save(fig: Any, out: Path) -> Path:
    """Write through a temporary file and a rename: a kill mid-write leaves the old figure."""
    fmt = out.suffix[1:].lower()  # the temporary file's name ends in it too; explicit for .PNG
    return write_output(out, lambda tmp: fig.savefig(tmp, dpi=100, format=fmt), option="--out")


def _legend(ax: Any, empty: str) -> None:
    """A legend, or ``empty`` in the panel when nothing was drawn (matplotlib would warn)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, empty, ha="center", va="center", transform=ax.transAxes, fontsize=9)


def _curves(axes: Any, epochs: pd.DataFrame, groups: list[str], labels: dict, metric: str) -> None:
    from matplotlib.ticker import MaxNLocator

    for ax, group in zip(axes, groups, strict=True):
        here = epochs[epochs["group"] == group]
        for row, lines in here.groupby("row", sort=False):
            per_epoch = lines.groupby("epoch")[metric].agg(["mean", "min", "max"]).dropna()
            if per_epoch.empty:
                continue
            # markers: a one-epoch cell is a single point, invisible as a bare line
            ax.plot(per_epoch.index, per_epoch["mean"], marker="o", markersize=4, label=labels[row])
            ax.fill_between(per_epoch.index, per_epoch["min"], per_epoch["max"], alpha=0.2)
        if not here.empty and here["epoch"].nunique() == 1:  # one epoch: not an axis from 0.96 to 1.04
            ax.set_xlim(here["epoch"].iloc[0] - 1, here["epoch"].iloc[0] + 1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        unit = " (%)" if metric.endswith(("F1", "acc", "change")) else ""
        ax.set(title=group, xlabel="epoch", ylabel=f"{metric}{unit}")
        _legend(ax, f"no cell recorded {metric}")


def _swept_values(variant: dict[str, Any]) -> dict[str, Any]:
    """A variant's config differences: method keys bare, data keys ``data.*`` or ``<dataset>.*``."""
    return {**(variant.get("method") or {}), **(variant.get("data") or {})}


def _varying_keys(variants: list[dict[str, Any]]) -> list[str]:
    """The method and data keys whose value differs between ``variants``."""
    flat = [_swept_values(v) for v in variants]
    keys = sorted({key for values in flat for key in values})
    return [k for k in keys if len({json.dumps(values.get(k), sort_keys=True, default=str) for values in flat}) > 1]


def _config_value(results_dir: Path, cell_id: str, key: str) -> Any:
    """``key`` of the resolved config in a cell's ``spec.json``: a method key from
    ``method_config``, a ``data.*``/``<dataset>.*`` key from ``dataset_config`` (a row whose
    swept value is the preset's has no difference to show in its variant); NaN if unreadable."""
    section, bare = ("dataset_config", key.split(".", 1)[1]) if "." in key else ("method_config", key)
    try:
        spec = store.cell_folder(results_dir, cell_id).spec_json()
        if section == "method_config" and bare not in spec[section]:  # a flag at its identity-neutral value
            from ratbench.registry import METHODS

            return METHODS.get(spec["method"]).Config.resolve(spec[section]).to_dict()[bare]
        return spec[section][bare]
    except (OSError, ValueError, KeyError, TypeError, IndexError, RatbenchError):
        return float("nan")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numbers(frame: pd.DataFrame, column: str) -> pd.Series:
    """``column`` as numbers (NaN where missing), empty if no cell has it."""
    return pd.to_numeric(frame[column], errors="coerce") if column in frame else pd.Series(dtype=float)


def _tick(value: Any) -> str:
    """A categorical value as the tables write it (``true``, ``a,b``)."""
    if isinstance(value, list | tuple):
        return ",".join(_tick(v) for v in value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def _sweep(axes: Any, cell_frame: pd.DataFrame, groups: list[str], results_dir: Path) -> None:
    drawn, several = False, {}
    for ax, group in zip(axes, groups, strict=True):
        here = cell_frame[cell_frame["group"] == group]
        keys_here = []
        for method, cells_of_method in here.groupby("method", sort=False):
            rows = list(dict.fromkeys(cells_of_method["row"]))
            variants = [json.loads(row.variant) or {} for row in rows]
            keys = _varying_keys(variants)
            if len(keys) != 1:
                if len(keys) > 1:
                    several[method] = keys
                continue
            key = keys[0]
            values = []
            for variant, row in zip(variants, rows, strict=True):
                value = _swept_values(variant).get(key)
                if value is None:
                    first = cells_of_method[cells_of_method["row"] == row].iloc[0]
                    value = _config_value(results_dir, str(first.cell_id), key)
                values.append(value)
            if all(_is_number(value) for value in values):
                points = sorted(zip((float(v) for v in values), rows, strict=True), key=lambda point: point[0])
                ticks = None
            else:  # a string, bool or list key: one tick per value, in sorted order
                names = sorted({_tick(value) for value in values})
                points = sorted(((names.index(_tick(v)), row) for v, row in zip(values, rows, strict=True)))
                ticks = names
            for column, style in (("F1", "-o"), ("Acc", "--s")):
                numbers = [pd.to_numeric(here[here["row"] == row][column], errors="coerce") for _, row in points]
                means = [v.mean() for v in numbers]
                stds = [v.std() if len(v) > 1 else 0.0 for v in numbers]
                ax.errorbar([x for x, _ in points], means, yerr=stds, fmt=style, capsize=3, label=f"{method} {column}")
            if ticks is not None:
                ax.set_xticks(range(len(ticks)), ticks, rotation=20 if len(ticks) > 3 else 0, fontsize=8)
                ax.set_xlim(-0.5, len(ticks) - 0.5)  # the end values are not on the frame
            keys_here.append(key)
            drawn = True
        ax.set(title=group, xlabel=", ".join(dict.fromkeys(keys_here)), ylabel="F1 / Acc (%)")
        _legend(ax, "no method's rows differ in one key")
    if not drawn:
        detail = "; ".join(f"{m}'s rows differ in {', '.join(k)}" for m, k in several.items())
        raise RatbenchError(
            "no method has rows that differ in exactly one config key"
            + (f" ({detail})" if detail else "")
            + "; run a grid with --sweep of one key first"
        )


GoldPanels = list[tuple[str, dict[Any, list[float]]]]


def _gold_panels(cell_frame: pd.DataFrame, epochs: pd.DataFrame, groups: list[str], labels: dict) -> GoldPanels:
    """The gold figure's panels that some cell has numbers for: (y label, values per row and group)."""
    accuracy: dict[Any, list[float]] = {}
    entropy: dict[Any, list[float]] = {}
    for row in labels:
        accuracy[row], entropy[row] = [], []
        for group in groups:
            here = cell_frame[(cell_frame["row"] == row) & (cell_frame["group"] == group)]
            accuracy[row].append(_numbers(here, "acc_gold_rationale").mean())
            lines = epochs[(epochs["row"] == row) & (epochs["group"] == group)] if not epochs.empty else epochs
            best_epochs = _numbers(here, "best_epoch")
            best = {seed: e for seed, e in zip(here["seed"], best_epochs, strict=False) if not math.isnan(e)}
            chosen = [
                float(line["diag_gold_ce_mean"])
                for line in lines.to_dict("records")
                if _is_number(line.get("diag_gold_ce_mean")) and best.get(line["seed"]) == line["epoch"]
            ]
            entropy[row].append(float(np.nanmean(chosen)) if chosen and not np.isnan(chosen).all() else np.nan)
    panels = [
        (name, values)
        for name, values in (
            ("accuracy on gold rationales (%)", accuracy),
            ("cross-entropy on gold rationales", entropy),  # post-hoc cells have none: no empty panel
        )
        if any(not np.isnan(v) for row_values in values.values() for v in row_values)
    ]
    if not panels:
        raise RatbenchError(
            "no cell recorded its accuracy (acc_gold_rationale) or cross-entropy on the gold rationales; "
            "the gold figure needs datasets with human rationales"
        )
    return panels


def _gold(axes: Any, panels: GoldPanels, groups: list[str], labels: dict) -> None:
    rows = list(labels)
    positions = np.arange(len(groups))
    width = 0.8 / max(1, len(rows))
    for ax, (name, values) in zip(axes, panels, strict=True):
        for offset, row in enumerate(rows):
            ax.bar(positions + offset * width, values[row], width, label=labels[row])
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
        _legend(ax, "no finished cell")
