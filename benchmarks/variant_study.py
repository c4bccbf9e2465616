"""Compare the variants of a swept key over seeds: the layout question and seed variance.

For a results folder holding a grid run with ``--sweep KEY=A,B`` (e.g. ``data.padding=bucket,
max_len``) this prints, per method and value of the key: F1, Acc and S mean (std) over seeds,
the seconds per epoch and per cell; a Welch t-test per method between the first two values; and,
from ``epochs.jsonl``, how the seeds' spread of the per-epoch annotation F1 (the diagnostics'
test probe) and of the paired difference between two methods evolves with the epochs.

    python benchmarks/variant_study.py RESULTS --key data.padding [--default bucket]
        [--mode reference] [--methods rnp,ver] [--epochs 5,10,20,30]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from ratbench.execution import store
from ratbench.reporting.results import load_results
from ratbench.reporting.stats import paired, welch_from_stats


def key_value(variant: str | None, key: str, default: str) -> str:
    """The value of ``key`` (``data.padding``, or a method key) in a cell's variant JSON."""
    data = json.loads(variant) if variant else {}
    scope, _, name = key.partition(".")
    found = (data.get("data") or {}) if scope == "data" else (data.get("method") or {})
    return str(found.get(key if scope == "data" else name, default))


def mean_std(values: pd.Series) -> str:
    return f"{values.mean():.1f} ({values.std(ddof=1):.1f})" if len(values) > 1 else f"{values.mean():.1f}"


Curves = dict[tuple[str, str], dict[int, list[tuple[int, float]]]]


def epoch_curves(results: Path, frame: pd.DataFrame, field: str) -> Curves:
    """``(method, value) -> epoch -> [(seed, field)]`` read from the cells' epochs.jsonl."""
    curves: Curves = {}
    for _, cell in frame.drop_duplicates("cell_id").iterrows():
        path = results / "runs" / cell["cell_id"] / store.EPOCHS_FILE
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if field in record:
                seeds = curves.setdefault((cell["method"], cell["value"]), {})
                seeds.setdefault(record["epoch"], []).append((cell["seed"], record[field]))
    return curves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--key", required=True, help="the swept key, e.g. data.padding or ver.perturb_rate")
    parser.add_argument("--default", default="", help="the key's value in cells whose variant does not name it")
    parser.add_argument("--mode", default="reference")
    parser.add_argument("--methods", default="rnp,ver", help="two methods for the paired difference per epoch")
    parser.add_argument("--epochs", default="5,10,15,20,25,30", help="epochs of the per-epoch table")
    args = parser.parse_args()

    frame = load_results(args.results)
    frame = frame[frame["mode"] == args.mode].copy()
    frame["value"] = [key_value(v, args.key, args.default) for v in frame["variant"]]
    rows = []
    for (method, value), group in frame.groupby(["method", "value"], sort=True):
        rows.append(
            [method, value, len(group), mean_std(group["F1"]), mean_std(group["Acc"]), mean_std(group["S"]),
             f"{group['seconds_per_epoch'].mean():.1f}"]
        )  # fmt: skip
    print(f"{args.results}, {args.mode} mode, by {args.key}:\n")
    print(tabulate(rows, headers=["method", args.key, "seeds", "F1", "Acc", "S", "s/epoch"], tablefmt="github"))

    values = sorted(frame["value"].unique())
    if len(values) >= 2:
        print(f"\nWelch t-test, {values[1]} minus {values[0]}:\n")
        tests = []
        for method, group in frame.groupby("method", sort=True):
            a, b = (group[group["value"] == v] for v in values[:2])
            for metric in ("F1", "Acc"):
                t = welch_from_stats(
                    b[metric].mean(), b[metric].std(), len(b), a[metric].mean(), a[metric].std(), len(a)
                )
                tests.append([method, metric, f"{t.difference:+.1f}", "-" if t.p is None else f"{t.p:.3f}"])
        print(tabulate(tests, headers=["method", "metric", "difference", "p"], tablefmt="github"))

    curves = epoch_curves(args.results, frame, "diag_annotation_F1")
    wanted = [int(e) for e in args.epochs.split(",")]
    first, second = args.methods.split(",")
    lines = []
    for value in values:
        for epoch in wanted:
            row = [value, epoch]
            for method in (first, second):
                seeds = dict(curves.get((method, value), {}).get(epoch, []))
                row.append(mean_std(pd.Series(list(seeds.values()))) if seeds else "-")
            a = dict(curves.get((second, value), {}).get(epoch, []))
            b = dict(curves.get((first, value), {}).get(epoch, []))
            shared = sorted(set(a) & set(b))
            if len(shared) >= 2:
                test = paired([a[s] for s in shared], [b[s] for s in shared])
                spread = np.std([a[s] - b[s] for s in shared], ddof=1)
                p = "-" if test.p is None else f"{test.p:.3f}"
                row += [f"{test.difference:+.1f} ({spread:.1f})", p]
            else:
                row += ["-", "-"]
            lines.append(row)
    print(f"\nAnnotation F1 on the diagnostics' test probe per epoch, mean (std) over seeds, and {second} - {first}:\n")
    headers = [args.key, "epoch", first, second, f"{second} - {first} (std)", "p (paired)"]
    print(tabulate(lines, headers=headers, tablefmt="github"))


if __name__ == "__main__":
    main()
