"""The Ray executor against a real local Ray instance (2 CPUs), not a mock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import tiny_synthetic_specs

from ratbench import cells
from ratbench.executors import run_ray

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.slow
def test_ray_runs_each_cell_once_as_a_task(local_ray: None, tmp_path: Path) -> None:
    """Every cell becomes one Ray task writing to the shared results folder; a rerun runs none."""
    specs = tiny_synthetic_specs([1, 2, 3])
    lines: list[str] = []
    outcomes: list[tuple[str, str]] = []
    summary = run_ray(specs, tmp_path, echo=lines.append, on_cell=lambda o, c: outcomes.append((o, c)))
    assert summary.ok and sorted(summary.finished) == sorted(s.cell_id for s in specs)
    assert all(cells.is_done(tmp_path, spec) for spec in specs)
    assert sorted(outcomes) == sorted(("done", s.cell_id) for s in specs)
    assert all("[ray task, pid" in line for line in lines if " ok F1=" in line)
    again = run_ray(specs, tmp_path, echo=lines.append)
    assert again.finished == [] and len(again.skipped) == 3


@pytest.mark.slow
def test_a_task_that_dies_outside_the_runner_is_a_failed_cell(local_ray: None, tmp_path: Path) -> None:
    """A Ray worker that crashes (here: exits) on one cell fails that cell; the others finish."""
    from ratbench.executors import _ray_cell

    specs = tiny_synthetic_specs([1, 2])
    doomed = specs[1].cell_id

    def crashing_cell(spec: cells.CellSpec, *args: object) -> object:  # a closure: Ray ships it by value
        import os

        if spec.cell_id == doomed:
            os._exit(1)
        return _ray_cell(spec, *args)

    outcomes: list[tuple[str, str]] = []
    summary = run_ray(
        specs, tmp_path, echo=lambda _: None, on_cell=lambda o, c: outcomes.append((o, c)), cell_task=crashing_cell
    )
    assert summary.finished == [specs[0].cell_id]
    assert [cell for cell, _ in summary.failed] == [doomed] and "its Ray task died" in summary.failed[0][1]
    assert sorted(outcomes) == sorted([("done", specs[0].cell_id), ("failed", doomed)])
    assert "its Ray task died" in (cells.cell_dir(tmp_path, specs[1]) / cells.ERROR_FILE).read_text()
