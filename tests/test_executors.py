"""Local parallel execution: slot planning and a real two-worker grid."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from ratbench import cells, grid
from ratbench.executors import Slot, plan_slots, run_parallel


def test_plan_slots_for_gpus_and_cpu_workers() -> None:
    """Each GPU appears cells-per-GPU times; --workers N gives N CPU slots."""
    slots = plan_slots(1, ["0", "3"], 2)
    assert [s.gpu for s in slots] == ["0", "0", "3", "3"] and [s.index for s in slots] == [0, 1, 2, 3]
    cpu = plan_slots(2, None, 1)
    assert [s.gpu for s in cpu] == [None, None]


def test_slots_are_capped_at_the_cells_to_run() -> None:
    """--workers 100 on 2 cells starts 2 processes; GPU slots are spread over the GPUs first."""
    assert len(plan_slots(100, None, 1, max_slots=2)) == 2
    assert [s.gpu for s in plan_slots(1, ["0", "3"], 4, max_slots=3)] == ["0", "0", "3"]


@pytest.mark.slow
def test_two_workers_run_every_cell_once_in_two_processes(tmp_path: Path) -> None:
    """Two worker processes share the grid through claims: every cell done once, both used."""
    specs = grid.expand(
        ["rnp"],
        ["synthetic.appearance"],
        [1, 2, 3, 4],
        preset="demo",
        epochs=1,
        sets={"synthetic": {"n_train": "40", "n_dev": "16", "n_test": "16"}, "rnp": {"hidden_dim": "16"}},
    )
    lines: list[str] = []
    outcomes: list[str] = []
    slots = [Slot(0, None), Slot(1, None)]
    summary = run_parallel(specs, tmp_path, slots, echo=lines.append, on_cell=lambda o, c: outcomes.append((o, c)))
    assert sorted(outcomes) == sorted(("done", s.cell_id) for s in specs)  # what the cell bar counts
    assert summary.ok and sorted(summary.finished) == sorted(s.cell_id for s in specs)
    assert all(cells.is_done(tmp_path, spec) for spec in specs)
    pids = {re.search(r"pid (\d+)\]", line).group(1) for line in lines if " ok F1=" in line}
    assert len(pids) == 2 and str(os.getpid()) not in pids
    again = run_parallel(specs, tmp_path, slots, echo=lines.append)
    assert again.finished == [] and len(again.skipped) == 4


@pytest.mark.slow
def test_a_failing_cell_in_a_worker_is_recorded_and_the_others_finish(tmp_path: Path) -> None:
    """A cell that raises inside a worker leaves error.txt and is listed; the grid goes on."""
    import dataclasses

    good = grid.expand(
        ["rnp"],
        ["synthetic.appearance"],
        [1, 2],
        preset="demo",
        epochs=1,
        sets={"synthetic": {"n_train": "40", "n_dev": "16", "n_test": "16"}, "rnp": {"hidden_dim": "16"}},
    )
    bad = dataclasses.replace(good[0], seed=3, method_config={**good[0].method_config, "batch_size": 0})
    summary = run_parallel([*good, bad], tmp_path, [Slot(0, None), Slot(1, None)], echo=lambda _: None)
    assert [cell for cell, _ in summary.failed] == [bad.cell_id]
    assert sorted(summary.finished) == sorted(s.cell_id for s in good)
    assert "Traceback" in (cells.cell_dir(tmp_path, bad) / cells.ERROR_FILE).read_text()
