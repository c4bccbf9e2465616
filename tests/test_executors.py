"""Local parallel execution: slot planning and a real two-worker grid."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import tiny_synthetic_specs

from ratbench.errors import RatbenchError
from ratbench.execution import cells, claims, store
from ratbench.execution.executors import Slot, plan_slots, run_parallel
from ratbench.execution.scheduler import Events, RunOptions, run_in_process


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
    specs = tiny_synthetic_specs([1, 2, 3, 4])
    lines: list[str] = []
    outcomes: list[str] = []
    slots = [Slot(0, None), Slot(1, None)]
    events = Events(lines.append, lambda o, c: outcomes.append((o, c)))
    summary = run_parallel(specs, RunOptions(tmp_path), slots, events)
    assert sorted(outcomes) == sorted(("done", s.cell_id) for s in specs)  # what the cell bar counts
    assert summary.ok and sorted(summary.finished) == sorted(s.cell_id for s in specs)
    assert all(store.is_done(tmp_path, spec) for spec in specs)
    pids = {re.search(r"pid (\d+)\]", line).group(1) for line in lines if " ok F1=" in line}
    assert len(pids) == 2 and str(os.getpid()) not in pids
    again = run_parallel(specs, RunOptions(tmp_path), slots, Events(lines.append))
    assert again.finished == [] and len(again.skipped) == 4


# --- issue 19: GPU numbering, sticky CUDA errors, executor flags, GPU utilisation ---


def test_gpu_slots_get_the_parents_visible_device_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """--gpus numbers index the parent's CUDA_VISIBLE_DEVICES; UUIDs and MIG ids pass through."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    slots = plan_slots(1, ["0", "1"], 2)
    assert [(s.gpu, s.visible) for s in slots] == [("0", "2"), ("0", "2"), ("1", "3"), ("1", "3")]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-8a1e, MIG-5c3f/1/0")
    assert [s.visible for s in plan_slots(1, ["1", "0"], 1)] == ["MIG-5c3f/1/0", "GPU-8a1e"]
    with pytest.raises(RatbenchError, match="GPU 2 is not visible"):
        plan_slots(1, ["2"], 1)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")  # every GPU visible: the numbers are CUDA's own
    assert [s.visible for s in plan_slots(1, ["0", "3"], 1)] == ["0", "3"]
    assert [s.visible for s in plan_slots(1, ["1"], 1, visible=["GPU-a", "GPU-b"])] == ["GPU-b"]


@pytest.mark.slow
def test_a_spawned_worker_sees_the_parents_entry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Real spawn workers under CUDA_VISIBLE_DEVICES=2,3 see 2 and 3 (not 0 and 1)."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    seen: dict[int, str | None] = {}
    slots = plan_slots(1, ["0", "1"], 1)
    summary = run_parallel([], RunOptions(tmp_path), slots, Events(lambda _: None), on_start=seen.__setitem__)
    assert summary.ok and seen == {0: "2", 1: "3"}


class FakeCudaError(RuntimeError):
    """Stands in for a sticky CUDA error (device-side assert)."""


def _fail_cells(monkeypatch: pytest.MonkeyPatch, cell_error: Exception, sync_error: Exception | None) -> list[str]:
    """Make every cell raise ``cell_error`` and ``torch.cuda.synchronize`` raise ``sync_error``;
    return the list the attempted cell ids are appended to."""
    import torch

    from ratbench.execution import runner

    attempted: list[str] = []

    def run_cell(spec: cells.CellSpec, *args: object, **kwargs: object) -> None:
        attempted.append(spec.cell_id)
        raise cell_error

    def synchronize(*args: object) -> None:
        if sync_error is not None:
            raise sync_error

    monkeypatch.setattr(runner, "run_cell", run_cell)
    monkeypatch.setattr(torch.cuda, "synchronize", synchronize)
    return attempted


def test_a_sticky_cuda_error_stops_the_scheduler(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """After a failed cell the device is checked: a CUDA error stops the run, the rest are listed."""
    error = FakeCudaError("CUDA error: device-side assert triggered\nmore")
    attempted = _fail_cells(monkeypatch, error, error)
    specs = tiny_synthetic_specs([1, 2, 3])
    lines: list[str] = []
    summary = run_in_process(specs, RunOptions(tmp_path), "cuda:0", Events(lines.append))
    assert attempted == [specs[0].cell_id]
    assert summary.stopped == "FakeCudaError: CUDA error: device-side assert triggered"
    assert [reason.startswith("not run: cuda:0 failed") for _, reason in summary.failed] == [False, True, True]
    assert sum("no more cells run here" in line for line in lines) == 1
    assert not any((store.cell_dir(tmp_path, s) / claims.CLAIM_FILE).exists() for s in specs)


def test_out_of_memory_and_cpu_failures_do_not_stop_the_scheduler(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An OOM is not sticky (the next cell may fit), and a CPU run is never checked."""
    import torch

    specs = tiny_synthetic_specs([1, 2, 3])
    attempted = _fail_cells(monkeypatch, torch.OutOfMemoryError("CUDA out of memory"), None)
    summary = run_in_process(specs, RunOptions(tmp_path), "cuda", Events(lambda _: None))
    assert len(attempted) == 3 and summary.stopped == "" and len(summary.failed) == 3
    attempted = _fail_cells(monkeypatch, ValueError("bad"), FakeCudaError("CUDA error"))
    summary = run_in_process(specs, RunOptions(tmp_path, force=True), "cpu", Events(lambda _: None))
    assert len(attempted) == 3 and summary.stopped == ""


def test_a_worker_on_a_broken_gpu_stops_claiming_cells(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The worker itself (run in this process): one cell tried, the others left unclaimed for
    the other workers, and a summary saying why it stopped."""
    import queue as queue_module

    from ratbench.execution.executors import _Finished, _work

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # restored after the test; _work sets it
    error = FakeCudaError("CUDA error: an illegal memory access was encountered")
    attempted = _fail_cells(monkeypatch, error, error)
    specs = tiny_synthetic_specs([1, 2, 3])
    events: queue_module.Queue = queue_module.Queue()
    _work(Slot(0, "0", "0"), specs, RunOptions(tmp_path), 1, None, events)
    sent = [events.get_nowait() for _ in range(events.qsize())]
    finished = next(message for message in sent if isinstance(message, _Finished))
    summary = finished.summary
    assert len(attempted) == 1 and finished.slot == 0 and summary.stopped.startswith("FakeCudaError: CUDA error")
    assert [cell for cell, _ in summary.failed] == attempted  # the rest is not reported as failed


def _stopping_worker(slot: Slot, todo: list, options: RunOptions, n_slots: int, since: float, messages: Any) -> None:
    """A worker whose GPU breaks at once (first start only, unless ``always`` is in the folder)."""
    from ratbench.execution.executors import _Finished, _Started, _worker
    from ratbench.execution.scheduler import GridSummary

    marker = options.results_dir / f"started-{slot.index}"
    if marker.exists() and not (options.results_dir / "always").exists():
        _worker(slot, todo, options, n_slots, since, messages)
        return
    marker.touch()
    messages.put(_Started(slot.index, None))
    messages.put(_Finished(slot.index, GridSummary(stopped="FakeCudaError: CUDA error")))


@pytest.mark.slow
def test_a_stopped_worker_is_restarted_once_then_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A worker that stopped on a broken GPU gets a fresh process once; a second stop is final,
    and the cells nobody ran are failed with the reason."""
    from ratbench.execution import executors

    monkeypatch.setattr(executors, "_worker", _stopping_worker)
    (tmp_path / "a").mkdir()
    lines: list[str] = []
    starts: list[int] = []
    summary = run_parallel(
        [], RunOptions(tmp_path / "a"), [Slot(0, None)], Events(lines.append), on_start=lambda i, _: starts.append(i)
    )
    assert summary.ok and starts == [0, 0] and any("starting it again" in line for line in lines)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "always").touch()
    specs = tiny_synthetic_specs([1])
    summary = run_parallel(specs, RunOptions(tmp_path / "b"), [Slot(0, None)], Events(lines.append))
    assert any("stopped for good" in line for line in lines)
    assert summary.failed == [
        (specs[0].cell_id, "not run: the workers stopped on a broken GPU (FakeCudaError: CUDA error)")
    ]


def _cli(*args: str) -> tuple[int, str]:
    from click.testing import CliRunner

    from ratbench.cli import main

    result = CliRunner().invoke(main, ["run", "--methods", "rnp", "--datasets", "synthetic.appearance", *args])
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--executor", "ray", "--gpus", "0"], "--gpus and --cells-per-gpu are for --executor local"),
        (["--executor", "ray", "--cells-per-gpu", "2"], "--gpus and --cells-per-gpu are for --executor local"),
        (["--executor", "ray", "--workers", "2"], "--workers is for --executor local"),
        (["--executor", "ray", "--device", "cuda:1"], "Ray chooses each task's GPU"),
        (["--gpus-per-cell", "0.5"], "--gpus-per-cell is for --executor ray"),
        (["--device", "cuda", "--workers", "2"], "on GPUs use --cells-per-gpu 2"),
        (["--gpus", "0,1", "--workers", "3"], "on GPUs use --cells-per-gpu 3"),
        (["--cells-per-gpu", "4"], "--cells-per-gpu needs GPUs"),
    ],
)
def test_flags_the_executor_would_ignore_are_refused(tmp_path: Path, args: list[str], message: str) -> None:
    """One line, exit 2, before any cell (and before the GPU check of this machine)."""
    code, output = _cli(*args, "--results-dir", str(tmp_path))
    assert code == 2 and message in output and output.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_ray_with_device_cuda_asks_one_gpu_per_cell() -> None:
    """--device cuda under Ray means --gpus-per-cell 1 (not a CPU run); a fraction is kept."""
    from ratbench.execution.launch import ExecutorFlags

    assert ExecutorFlags("ray", "cuda").ray_gpus_per_cell() == 1.0
    assert ExecutorFlags("ray", "cuda", gpus_per_cell=0.25).ray_gpus_per_cell() == 0.25
    assert ExecutorFlags("ray", "cpu").ray_gpus_per_cell() == 0.0
    assert ExecutorFlags("local", "cuda", "0,1", cells_per_gpu=4).ray_gpus_per_cell() == 0.0


def test_ray_dry_run_with_device_cuda_needs_no_gpu_on_the_driver(tmp_path: Path) -> None:
    """The driver never trains, so --executor ray --device cuda is not refused on a CPU driver."""
    code, output = _cli("--executor", "ray", "--device", "cuda", "--dry-run", "--results-dir", str(tmp_path))
    assert code == 0 and "to run:" in output


def test_one_cell_per_gpu_on_a_gru_grid_suggests_cells_per_gpu() -> None:
    """Many small GRU cells on one GPU: a warning suggesting --cells-per-gpu; none when K > 1,
    when there are no more cells than GPUs, or for transformer cells."""
    import dataclasses

    from ratbench.execution.launch import gpu_utilisation_warnings

    specs = tiny_synthetic_specs([1, 2, 3, 4, 5, 6])
    [warning] = gpu_utilisation_warnings(specs, 1, 1)
    assert "--cells-per-gpu 4" in warning and "--workers is for CPU runs" in warning
    assert gpu_utilisation_warnings(specs, 1, 2) == []
    assert gpu_utilisation_warnings(specs[:2], 2, 1) == []
    hf = [dataclasses.replace(s, dataset_config={**s.dataset_config, "encoder": "hf:minilm"}) for s in specs]
    assert gpu_utilisation_warnings(hf, 1, 1) == []
