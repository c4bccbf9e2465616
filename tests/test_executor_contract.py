"""One contract for every executor (in this process, local worker processes, Ray tasks): the
cells to do run once each, a failing cell is recorded and the others go on, a cell finished
meanwhile elsewhere is not run again, each outcome is reported once, and no claim is left.
Ray's own failure (a task that dies outside the runner) is tested on the same local Ray
instance (2 CPUs, a real one, not a mock)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import tiny_synthetic_specs

from ratbench.execution import cells, claims, store
from ratbench.execution.executors import Executor, InProcess, LocalProcesses, Ray
from ratbench.execution.launch import run_cells
from ratbench.execution.scheduler import Events, RunOptions

EXECUTORS: dict[str, Callable[[], Executor]] = {
    "in-process": InProcess,
    "local-processes": lambda: LocalProcesses(workers=2),
    "ray": Ray,
}


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.slow
@pytest.mark.parametrize("name", EXECUTORS)
def test_every_executor_keeps_the_contract(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Two good cells run, a bad one fails with its traceback, a cell done meanwhile is skipped
    untouched; done and failed are each reported once; every claim is released."""
    if name == "ray":
        request.getfixturevalue("ray_instance")
    good = tiny_synthetic_specs([1, 2])
    bad = dataclasses.replace(good[0], seed=3, method_config={**good[0].method_config, "batch_size": 0})
    [finished_meanwhile] = tiny_synthetic_specs([4])
    assert run_cells([finished_meanwhile], tmp_path, echo=lambda _: None).ok
    metrics = store.cell_dir(tmp_path, finished_meanwhile) / store.METRICS_FILE
    before = metrics.stat().st_mtime_ns

    outcomes: list[tuple[str, str]] = []
    events = Events(lambda _: None, lambda outcome, cell_id: outcomes.append((outcome, cell_id)))
    summary = EXECUTORS[name]().run([*good, bad, finished_meanwhile], RunOptions(tmp_path), events)

    assert sorted(summary.finished) == sorted(spec.cell_id for spec in good)
    assert [cell for cell, _ in summary.failed] == [bad.cell_id]
    assert "Traceback" in (store.cell_dir(tmp_path, bad) / store.ERROR_FILE).read_text()
    assert summary.skipped == [finished_meanwhile.cell_id] and metrics.stat().st_mtime_ns == before
    reported = sorted((outcome, cell) for outcome, cell in outcomes if outcome in ("done", "failed"))
    assert reported == sorted([*(("done", spec.cell_id) for spec in good), ("failed", bad.cell_id)])
    assert all(store.is_done(tmp_path, spec) for spec in good)
    assert not list(store.runs_dir(tmp_path).glob(f"**/{claims.CLAIM_FILE}"))


@pytest.mark.slow
def test_a_task_that_dies_outside_the_runner_is_a_failed_cell(ray_instance: None, tmp_path: Path) -> None:
    """A Ray worker that crashes (here: exits) on one cell fails that cell; the others finish."""
    from ratbench.execution.executors import _ray_cell

    specs = tiny_synthetic_specs([1, 2])
    doomed = specs[1].cell_id

    def crashing_cell(spec: cells.CellSpec, *args: object) -> object:  # a closure: Ray ships it by value
        import os

        if spec.cell_id == doomed:
            os._exit(1)
        return _ray_cell(spec, *args)

    outcomes: list[tuple[str, str]] = []
    events = Events(lambda _: None, lambda o, c: outcomes.append((o, c)))
    summary = Ray(cell_task=crashing_cell).run(specs, RunOptions(tmp_path), events)
    assert summary.finished == [specs[0].cell_id]
    assert [cell for cell, _ in summary.failed] == [doomed] and "its Ray task died" in summary.failed[0][1]
    assert sorted(outcomes) == sorted([("done", specs[0].cell_id), ("failed", doomed)])
    assert "its Ray task died" in (store.cell_dir(tmp_path, specs[1]) / store.ERROR_FILE).read_text()
