"""Scheduler benchmark: 1 worker x 2 threads vs 2 workers x 1 thread, and per-cell overhead.

Runs the same small CPU grid (RNP on synthetic.appearance, 4 seeds, small data, demo preset)
twice into fresh results folders: sequentially in this process with 2 torch threads, then with
two worker processes of 1 thread each (``--workers 2``). Reports the wall time of each, the
speedup, and the scheduler overhead per cell: the time from a cell's claim to its first epoch
(``setup_seconds`` in metrics.json: data, vocabulary, model) and, for the parallel run, the
worker start-up (process spawn and imports) spread over the cells.

Run:  .venv/bin/python benchmarks/scheduler.py [--seeds 4] [--epochs 3] [--n-train 600] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ratbench.execution import grid
from ratbench.execution.executors import LocalProcesses
from ratbench.execution.launch import execute, prepare, run_cells
from ratbench.execution.scheduler import RunOptions


def specs_for(seeds: int, epochs: int, n_train: int) -> list:
    """The benchmark grid."""
    sets = {"synthetic": {"n_train": str(n_train), "n_dev": "200", "n_test": "200"}}
    return grid.expand(["rnp"], ["synthetic.appearance"], list(range(1, seeds + 1)), "demo", sets, epochs)


def setup_times(results: Path) -> list[float]:
    """``setup_seconds`` of every finished cell."""
    return [json.loads(p.read_text())["setup_seconds"] for p in results.glob("runs/**/metrics.json")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--n-train", type=int, default=600)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    specs = specs_for(args.seeds, args.epochs, args.n_train)
    quiet = lambda _line: None  # noqa: E731

    with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as two:
        torch.set_num_threads(2)
        tic = time.perf_counter()
        first = run_cells(specs, Path(one), echo=quiet)
        sequential = time.perf_counter() - tic
        tic = time.perf_counter()
        options = RunOptions(Path(two))
        second = execute(specs, prepare(specs, options), options, LocalProcesses(workers=2), echo=quiet).summary
        parallel = time.perf_counter() - tic
        assert first.ok and second.ok and len(second.finished) == len(specs)
        setup_sequential, setup_parallel = setup_times(Path(one)), setup_times(Path(two))
        cell_seconds = sum(json.loads(p.read_text())["wall_seconds"] for p in Path(two).glob("runs/**/metrics.json"))
    # Wall time of the parallel run not spent inside cells, per cell (spawn, imports, claims, joins).
    startup_per_cell = max(0.0, parallel - cell_seconds / 2) / len(specs)
    result = {
        "cells": len(specs),
        "sequential_1x2_seconds": sequential,
        "parallel_2x1_seconds": parallel,
        "speedup": sequential / parallel,
        "setup_seconds_per_cell_sequential": statistics.mean(setup_sequential),
        "setup_seconds_per_cell_parallel": statistics.mean(setup_parallel),
        "worker_startup_seconds_per_cell": startup_per_cell,
        "torch": torch.__version__,
    }
    for key, value in result.items():
        print(f"{key:>36}: {value:.2f}" if isinstance(value, float) else f"{key:>36}: {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
