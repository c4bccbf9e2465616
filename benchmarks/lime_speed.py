"""Seconds per LIME cell, for this checkout or another one (e.g. an older commit).

Runs one ``ratbench run --methods lime`` cell per subset in a fresh results folder, one after
the other, and prints the wall time of each cell, its ``seconds_per_epoch``, the time the
LIME explanations took (wall minus setup and training), its reference-mode F1 and a hash of
the training record (loss and dev accuracy of every epoch, equal to the last digit exactly when
the classifier's weights are the same), which must not change when only the explanation code
changes, and a hash of the selected masks.

    .venv/bin/python benchmarks/lime_speed.py                      # this checkout
    git worktree add /tmp/before 5c393a0
    .venv/bin/python benchmarks/lime_speed.py --checkout /tmp/before
    .venv/bin/python benchmarks/lime_speed.py --json after.json --subsets appearance,aroma,palate

Defaults are the hardening issue's smoke settings: ``--preset demo --epochs 2 --limit 300
--set lime.num_samples=200`` on synthetic, with all the machine's threads.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_cell(checkout: Path, subset: str, args: argparse.Namespace, results: Path) -> dict:
    """Run the LIME cell of ``synthetic.<subset>`` with the code of ``checkout``; return its figures."""
    command = [
        "run", "--methods", "lime", "--datasets", f"synthetic.{subset}", "--seeds", str(args.seed),
        "--preset", "demo", "--epochs", str(args.epochs), "--limit", str(args.limit),
        "--set", f"lime.num_samples={args.num_samples}", "--results-dir", str(results), "--no-track",
    ]  # fmt: skip
    # The checkout's own code first on the path (its plugins are found next to its package).
    launcher = f"import sys; sys.path.insert(0, {str(checkout)!r}); from ratbench.cli import main; main()"
    tic = time.perf_counter()
    subprocess.run([sys.executable, "-c", launcher, *command], check=True, capture_output=True, text=True)
    wall = time.perf_counter() - tic
    [metrics_path] = (results / "runs").glob(f"lime/synthetic.{subset}/*/seed{args.seed}/metrics.json")
    metrics = json.loads(metrics_path.read_text())
    epochs = [json.loads(line) for line in (metrics_path.parent / "epochs.jsonl").read_text().splitlines()]
    training = [(e["loss"], e["dev_acc_reference"]) for e in epochs]  # equal to the last digit iff same weights
    with gzip.open(metrics_path.parent / "rationales.jsonl.gz", "rt") as handle:
        masks = [json.loads(line)["mask"] for line in handle]
    return {
        "subset": subset,
        "process_seconds": round(wall, 1),
        "cell_seconds": round(metrics["wall_seconds"], 1),
        "train_seconds": round(metrics["seconds_per_epoch"] * metrics["epochs"], 1),
        "explain_seconds": round(
            metrics["wall_seconds"]
            - metrics.get("setup_seconds", 0)
            - metrics["seconds_per_epoch"] * metrics["epochs"],
            1,
        ),
        "F1": round(metrics["modes"]["reference"]["F1"], 2),
        "acc_full_text": metrics["modes"]["reference"]["acc_full_text"],
        "training": hashlib.sha256(json.dumps(training).encode()).hexdigest()[:10],
        "masks": hashlib.sha256(json.dumps(masks).encode()).hexdigest()[:10],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkout", type=Path, default=ROOT, help="repository whose code to time")
    parser.add_argument("--subsets", default="appearance", help="synthetic subsets, comma separated")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--num-samples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for subset in args.subsets.split(","):
            rows.append(run_cell(args.checkout.resolve(), subset, args, Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"checkout": str(args.checkout), "threads": os.cpu_count(), "cells": rows}))


if __name__ == "__main__":
    main()
