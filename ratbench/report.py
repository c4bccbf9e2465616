"""``ratbench report``: a Markdown reproduction report of a results folder.

It says what ran (cells per method and dataset, the ratbench, torch and Python versions and the
git revision the cells recorded, which cells failed and, given the grid, which are missing),
renders every paper table the cells fill beside the paper's published numbers (and a generic
table of the cells no paper table shows), and checks the paper's claims
(``resources/paper_claims.toml``) on the cells: for each claim, dataset and pair of rows, the
mean difference over the seeds both rows share, a paired t-test, and whether the claim holds.
"""

from __future__ import annotations

import json
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from ratbench import cells
from ratbench.errors import RatbenchError
from ratbench.layouts import LAYOUTS
from ratbench.paper_grids import PaperGrid
from ratbench.stats import paired
from ratbench.tables import Row, labels_for, method_changes, render, row_encoder, table_cells

CLAIMS_FILE = "paper_claims.toml"
SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class Claim:
    """A claim of the paper: ``better`` beats ``worse`` (``*``: every other method) on
    ``metric`` on each of ``datasets``."""

    id: str
    statement: str
    better: str
    worse: str
    metric: str
    datasets: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class Verdict:
    """One check of a claim: a dataset, the two rows compared, the shared seeds, the mean
    difference (better minus worse), the paired p-value and the verdict in words."""

    claim: Claim
    dataset: str
    better: str
    worse: str
    seeds: int
    difference: float
    p: float | None
    verdict: str
    paper_dataset: bool


def load_claims() -> list[Claim]:
    """The claims of the packaged file."""
    text = resources.files("ratbench").joinpath("resources", CLAIMS_FILE).read_text(encoding="utf-8")
    return [
        Claim(c["id"], c["statement"], c["better"], c["worse"], c["metric"], tuple(c["datasets"]), c["source"])
        for c in tomllib.loads(text)["claims"]
    ]


def _verdict(difference: float, p: float | None, seeds: int) -> str:
    if seeds < 2:
        return "holds on its one seed (untested)" if difference > 0 else "does not hold on its one seed (untested)"
    if difference <= 0:
        return "does not hold"
    if p is None:
        return "holds on every seed by the same margin (untested)"
    return "holds" if p < SIGNIFICANCE else "holds, not significant"


def comparable(better: Row, worse: Row) -> bool:
    """Whether two rows may be compared: the same preset, data settings (encoder, padding,
    ...) and ``--limit``. Their method settings may differ (each method has its own), but a VER
    row on padded batches is never tested against an RNP row on bucketed ones."""
    first, second = ((json.loads(row.variant) or {}) for row in (better, worse))
    return all(first.get(key) == second.get(key) for key in ("preset", "data", "limit"))


def check_claims(cell_frame: pd.DataFrame, labels: dict[Row, str], claims: Sequence[Claim]) -> list[Verdict]:
    """The verdicts of ``claims`` on the table cells ``cell_frame`` (``tables.table_cells``):
    on the paper's datasets where the cells have them, else on every dataset they have."""
    verdicts = []
    groups = list(dict.fromkeys(cell_frame["group"]))
    for claim in claims:
        covered = [g for g in claim.datasets if g in groups]
        for group in covered or groups:
            here = cell_frame[cell_frame["group"] == group]
            rows = list(dict.fromkeys(here["row"]))
            for better in (row for row in rows if row.method == claim.better):
                for worse in rows:
                    if worse.method == claim.better or claim.worse not in ("*", worse.method):
                        continue
                    if not comparable(better, worse):
                        continue
                    compared = _compare(here, claim, better, worse)
                    if compared is not None:
                        seeds, difference, p = compared
                        verdict = _verdict(difference, p, seeds)
                        verdicts.append(
                            Verdict(
                                claim,
                                group,
                                labels[better],
                                labels[worse],
                                seeds,
                                difference,
                                p,
                                verdict,
                                bool(covered),
                            )
                        )
    return verdicts


def _compare(cells_here: pd.DataFrame, claim: Claim, better: Row, worse: Row) -> tuple[int, float, float | None] | None:
    """(shared seeds, mean difference, paired p) of ``claim.metric``; None without shared seeds."""
    if claim.metric not in cells_here:
        return None
    values = {
        row: pd.to_numeric(
            cells_here[cells_here["row"] == row].set_index("seed")[claim.metric], errors="coerce"
        ).dropna()
        for row in (better, worse)
    }
    seeds = sorted(set(values[better].index) & set(values[worse].index))
    if not seeds:
        return None
    test = paired([float(values[better][s]) for s in seeds], [float(values[worse][s]) for s in seeds])
    return len(seeds), test.difference, test.p


def compare_lines(frame: pd.DataFrame, mode: str, better: str, worse: str, metric: str = "F1") -> list[str]:
    """One line per dataset and pair of rows: is ``better``'s ``metric`` higher than
    ``worse``'s? The mean difference over the seeds both rows share and a paired t-test."""
    cell_frame, _ = table_cells(frame, mode)
    labels = labels_for(list(dict.fromkeys(cell_frame["row"])))
    claim = Claim("compare", f"{better} beats {worse}", better, worse, metric, (), "--compare")
    lines = []
    for v in check_claims(cell_frame, labels, [claim]):
        p = "untested" if v.p is None else f"p = {v.p:.3g}"
        lines.append(
            f"{v.better} vs {v.worse}, {metric} ({mode} mode) on {v.dataset}: mean difference {v.difference:+.1f} "
            f"over {v.seeds} seed{'s' if v.seeds != 1 else ''} paired by seed, paired t-test {p}: {v.verdict}"
        )
    if not lines:
        raise RatbenchError(f"--compare {better},{worse}: no dataset has finished cells of both methods")
    return lines


def failed_cells(results_dir: Path) -> list[tuple[str, str]]:
    """``(cell id, first line of error.txt)`` of every cell that failed and has no result."""
    failed = []
    for error in sorted((results_dir / "runs").glob(f"*/*/*/seed*/{cells.ERROR_FILE}")):
        folder = error.parent
        if (folder / cells.METRICS_FILE).is_file():
            continue
        lines = error.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        failed.append((str(folder.relative_to(results_dir / "runs")), lines[0] if lines else "(no message)"))
    return failed


def missing_cells(cell_frame: pd.DataFrame, grid: PaperGrid, seeds: Sequence[int]) -> list[str]:
    """The cells of ``grid`` x ``seeds`` with no finished cell, as ``method (settings) on
    dataset.subset seed N``; a run's own settings (NIR without noise) must be in the variant."""
    missing = []
    for run in grid.runs:
        for method in run.methods:
            own = {k.partition(".")[2]: v for k, v in run.sets.items() if k.partition(".")[0] == method}
            mine = cell_frame[cell_frame["method"] == method]
            changes = [method_changes(row) for row in mine["row"]]
            has_settings = [all(str(c.get(key)) == str(value) for key, value in own.items()) for c in changes]
            matches = mine[pd.Series(has_settings, index=mine.index, dtype=bool)]
            present = set(zip(matches["group"], matches["seed"], strict=True))
            setting = f" ({', '.join(f'{k}={v}' for k, v in own.items())})" if own else ""
            missing += [
                f"{method}{setting} on {group} seed {seed}"
                for group in grid.datasets
                for seed in seeds
                if (group, seed) not in present
            ]
    return missing


def _versions(frame: pd.DataFrame) -> list[str]:
    lines = []
    recorded = [json.loads(v) for v in frame.get("versions", pd.Series(dtype=str)).dropna().unique()]
    for key, name in (("ratbench", "ratbench"), ("git", "git revision"), ("torch", "torch"), ("python", "Python")):
        values = sorted({str(v.get(key)) for v in recorded if v.get(key)})
        lines.append(f"- {name}: {', '.join(values) if values else 'not recorded'}")
    for column, name in (("eval_version", "evaluator version"), ("pipeline_version", "pipeline version")):
        values = sorted({str(v) for v in frame[column].dropna().unique()}) if column in frame else []
        lines.append(f"- {name}: {', '.join(values) if values else 'not recorded'}")
    return lines


def _tables(frame: pd.DataFrame, mode: str, cell_frame: pd.DataFrame) -> list[str]:
    """Each paper table the cells fill, with the paper's rows; a generic table of the rest."""
    parts, shown = [], set()
    for name, layout in LAYOUTS.items():
        if layout.groups is None:
            continue
        fits = cell_frame[
            cell_frame["group"].isin(layout.groups) & (cell_frame["row"].map(row_encoder) == layout.encoder)
        ]
        if fits.empty:
            continue
        shown |= set(fits.index)
        parts += [f"### {layout.title}", "", render(frame, mode=mode, layout=name, with_paper=True)]
    rest = cell_frame.drop(index=list(shown))
    if not rest.empty:
        groups = list(dict.fromkeys(rest["group"]))
        title = "Other cells" if shown else "All cells"
        parts += [f"### {title} (datasets or encoders of no paper table)", ""]
        parts.append(render(frame, mode=mode, datasets=groups))
    return parts


def _claims_table(verdicts: list[Verdict]) -> str:
    rows = [
        [
            v.claim.statement,
            v.dataset if v.paper_dataset else f"{v.dataset} (not the paper's)",
            f"{v.better} vs {v.worse}",
            v.claim.metric,
            v.seeds,
            f"{v.difference:+.2f}",
            "n/a" if v.p is None else f"{v.p:.3g}",
            v.verdict,
        ]
        for v in verdicts
    ]
    headers = ["Claim", "Dataset", "Rows", "Metric", "Seeds", "Mean diff.", "p (paired t)", "Verdict"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def _listing(title: str, items: list[str], limit: int = 200) -> list[str]:
    """A count line, then up to ``limit`` items as a Markdown list."""
    lines = [title, ""]
    if items:
        lines += [f"- {item}" for item in items[:limit]]
        lines += [f"- ... and {len(items) - limit} more"] if len(items) > limit else []
        lines.append("")
    return lines


def build_report(
    results_dir: Path,
    frame: pd.DataFrame,
    mode: str = "reference",
    grid: PaperGrid | None = None,
    seeds: Sequence[int] = (),
) -> str:
    """The report as Markdown; ``grid`` and ``seeds`` (what was meant to run) add the missing cells."""
    if frame.empty:
        raise RatbenchError(f"no finished cells in {results_dir}; run `ratbench run ...` first or pass --results-dir")
    cell_frame, hidden = table_cells(frame, mode)
    labels = labels_for(list(dict.fromkeys(cell_frame["row"])))
    counts = cell_frame.groupby(["method", "group"]).size().unstack(fill_value=0)
    failed = failed_cells(results_dir)
    missing = missing_cells(cell_frame, grid, seeds) if grid is not None else []
    verdicts = check_claims(cell_frame, labels, load_claims())
    lines = [
        "# ratbench reproduction report",
        "",
        f"Results folder `{results_dir}`, {len(cell_frame)} finished cells ({mode} mode), "
        f"report written {time.strftime('%Y-%m-%d %H:%M:%S %z')}.",
        f"Grid: {grid.name} ({grid.title}), seeds {', '.join(map(str, seeds))}."
        if grid
        else "Grid: not given (--grid).",
        "",
        "## What ran",
        "",
        *_versions(frame),
        "",
        "Finished cells (seeds) per method and dataset:",
        "",
        tabulate(counts.reset_index().values.tolist(), headers=["method", *counts.columns], tablefmt="github"),
        "",
    ]
    if hidden:
        lines += [f"{hidden} stale cell(s) are left out (older versions or superseded configurations).", ""]
    lines += _listing(f"Failed cells: {len(failed)}.", [f"`{cell}`: {reason}" for cell, reason in failed])
    if grid is not None:
        lines += _listing(f"Missing cells of the grid: {len(missing)}.", missing)
    lines += ["## Tables", "", *_tables(frame, mode, cell_frame), "## Claims of the paper", ""]
    if verdicts:
        lines += [
            f"Verdict: holds = mean difference > 0 with p < {SIGNIFICANCE} (paired t-test over the shared seeds).",
            "",
            _claims_table(verdicts),
            "",
            "Sources: " + "; ".join(f"{c.statement}: {c.source}" for c in dict.fromkeys(v.claim for v in verdicts)),
        ]
    else:
        lines.append("No claim of the paper compares rows these cells have (it needs VER beside a baseline).")
    return "\n".join(lines).rstrip() + "\n"
