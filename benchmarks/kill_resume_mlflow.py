"""Kill a tracked ``--workers 2`` grid with SIGKILL, resume it, and compare mlflow with the results.

Runs a small 24-cell grid (rnp and ver on the three synthetic subsets, seeds 1-4, one epoch
on tiny data) with mlflow tracking into the results folder, kills the whole process group
with SIGKILL as soon as ``--after`` cells have finished, reruns the same command, and prints
how many cells are finished on disk and how many FINISHED mlflow runs (distinct cell ids) the
store holds after each step.

    .venv/bin/python benchmarks/kill_resume_mlflow.py [--after 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GRID = [
    "run", "--methods", "rnp,ver", "--datasets", "synthetic", "--seeds", "1-4", "--preset", "demo",
    "--epochs", "1", "--workers", "2",
    "--set", "synthetic.n_train=40", "--set", "synthetic.n_dev=16", "--set", "synthetic.n_test=16",
    "--set", "synthetic.min_review_len=60", "--set", "synthetic.mean_review_len=70",
    "--set", "synthetic.max_review_len=80", "--set", "rnp.hidden_dim=16", "--set", "ver.hidden_dim=16",
]  # fmt: skip


def finished_cells(results: Path) -> int:
    return sum(1 for path in results.glob("runs/**/metrics.json") if ".attempt-" not in str(path))


def mirrored_cells(results: Path) -> int:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{results / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return 0
    runs = client.search_runs(experiments, filter_string="attributes.status = 'FINISHED'", max_results=1000)
    return len({run.data.tags["ratbench.cell_id"] for run in runs})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--after", type=int, default=2, help="finished cells before the SIGKILL")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp)
        command = [sys.executable, "-m", "ratbench", *GRID, "--results-dir", str(results)]
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.time() + 300
        while time.time() < deadline and finished_cells(results) < args.after:
            time.sleep(0.02)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        killed = {"finished": finished_cells(results), "mirrored": mirrored_cells(results)}
        print("after the SIGKILL:", killed, flush=True)
        rerun = subprocess.run(command, capture_output=True, text=True)
        resumed = {"exit": rerun.returncode, "finished": finished_cells(results), "mirrored": mirrored_cells(results)}
        print("after the rerun:  ", resumed)
        if args.json:
            args.json.write_text(json.dumps({"killed": killed, "resumed": resumed}))


if __name__ == "__main__":
    main()
