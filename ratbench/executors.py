"""Run a grid in several worker processes on one machine (CPU workers or GPU slots).

Every worker walks the same cell list and runs each cell it can claim (``cells.try_claim``),
so the claims that keep two schedulers apart also spread the cells over the workers, and a
cell whose worker died is taken over by the next worker that reaches it. A worker sets
``CUDA_VISIBLE_DEVICES`` and its torch thread count before it imports torch.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ratbench import cells
from ratbench.scheduler import GridSummary


@dataclass(frozen=True)
class Slot:
    """One worker: an index and the GPU it may see (None on CPU). Its torch thread count is
    each cell's own (``--cpu-threads``, part of the cell id), set by the runner."""

    index: int
    gpu: str | None


def plan_slots(
    workers: int, gpus: Sequence[str] | None, cells_per_gpu: int, max_slots: int | None = None
) -> list[Slot]:
    """GPU slots (each GPU ``cells_per_gpu`` times) when ``gpus`` is given, else CPU workers
    (``workers`` of them); never more than ``max_slots`` (the cells to run: an idle worker
    costs a process and its memory)."""
    if gpus:
        gpu_of_slot = [g for _ in range(cells_per_gpu) for g in gpus]  # spread over the GPUs first
        gpu_of_slot = sorted(gpu_of_slot[:max_slots], key=list(gpus).index)
        return [Slot(i, gpu) for i, gpu in enumerate(gpu_of_slot)]
    count = min(workers, max_slots) if max_slots is not None else workers
    return [Slot(i, None) for i in range(count)]


def _worker(
    slot: Slot,
    specs: list[cells.CellSpec],
    results_dir: Path,
    options: dict[str, Any],
    events: multiprocessing.Queue,
) -> None:
    try:
        _work(slot, specs, results_dir, options, events)
    except KeyboardInterrupt:  # Ctrl-C reaches every worker: run_grid has released its claim
        events.put(("interrupted", slot.index))


def _work(
    slot: Slot,
    specs: list[cells.CellSpec],
    results_dir: Path,
    options: dict[str, Any],
    events: multiprocessing.Queue,
) -> None:
    if slot.gpu is not None:  # before torch is imported in this process
        os.environ["CUDA_VISIBLE_DEVICES"] = slot.gpu
    from ratbench.scheduler import run_grid

    device = "cuda" if slot.gpu is not None else "cpu"
    # Start at a different cell in each worker so that they rarely race for the same claim.
    shift = (slot.index * len(specs)) // max(options.pop("n_slots"), 1)
    order = specs[shift:] + specs[:shift]
    summary = run_grid(
        order,
        results_dir,
        device=device,
        echo=lambda line: events.put(("line", f"{line} [worker {slot.index}, pid {os.getpid()}]")),
        quiet_skips=True,
        # Cells another worker ran are that worker's to count.
        on_cell=lambda outcome, cell_id: outcome in ("done", "failed") and events.put(("cell", (outcome, cell_id))),
        epoch_bars=False,
        **options,
    )
    events.put(("summary", summary))


def run_parallel(
    specs: Sequence[cells.CellSpec],
    results_dir: Path,
    slots: Sequence[Slot],
    echo: Callable[[str], None] = print,
    on_cell: Callable[[str, str], None] | None = None,
    **options: Any,
) -> GridSummary:
    """Run the grid with one process per slot; return the merged summary.

    ``options`` are passed to ``run_grid`` (``data_dir``, ``force``, ``stale_after``). Cells
    that are not done when every worker has exited (a worker crashed) are reported as failed.
    """
    started = time.time()
    # Ctrl-C sets a flag that the event loop below checks: a KeyboardInterrupt raised at a random
    # point of this process (say inside a destructor, where Python swallows it) could be lost.
    interrupted = threading.Event()
    previous_handler = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.set())
    context = multiprocessing.get_context("spawn")
    events: multiprocessing.Queue = context.Queue()
    worker_options = {**options, "n_slots": len(slots), "failed_since": started}
    workers = [
        context.Process(
            target=_worker,
            args=(slot, list(specs), Path(results_dir), worker_options, events),
            daemon=True,
        )
        for slot in slots
    ]
    for worker in workers:
        worker.start()
    merged = GridSummary(total=len(specs))
    n_todo = sum(options.get("force", False) or not cells.is_done(results_dir, spec) for spec in specs)
    reported = summaries = 0
    try:
        while summaries < len(workers):
            if interrupted.is_set():
                raise KeyboardInterrupt
            try:
                kind, payload = events.get(timeout=0.2)
            except queue.Empty:
                if not any(worker.is_alive() for worker in workers):
                    break
                continue
            if kind == "line":
                reported += 1
                echo(f"[{reported}/{n_todo}] {payload}")
            elif kind == "cell":
                if on_cell is not None:
                    on_cell(*payload)
            elif kind == "summary":
                summaries += 1
                merged.finished += payload.finished
                merged.failed += payload.failed
            else:  # a worker stopped on Ctrl-C
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        _stop(workers, events)
        raise
    finally:
        signal.signal(signal.SIGINT, previous_handler)
    for worker in workers:
        worker.join()
    seen = set(merged.finished) | {cell for cell, _ in merged.failed}
    for spec in specs:
        if spec.cell_id in seen:
            continue
        state = cells.status(results_dir, spec, options.get("stale_after", cells.DEFAULT_STALE_AFTER))
        if state == "done":
            merged.skipped.append(spec.cell_id)
        elif state == "running":  # held by a scheduler outside this run
            merged.elsewhere.append(spec.cell_id)
        else:
            merged.failed.append((spec.cell_id, "not finished: its worker process died (see the cell's folder)"))
    return merged


def _stop(workers: Sequence[Any], events: multiprocessing.Queue, settle: float = 2.0, grace: float = 30.0) -> None:
    """After Ctrl-C: give the workers (which got the terminal's SIGINT too) ``settle`` seconds to
    clean up and exit, interrupt those still running (they did not get it, or lost it), wait for
    them, terminate any left after ``grace``, then close the queue so that nothing is left behind.
    A worker cut short in its cleanup leaves a claim of a dead process and an unfinished attempt,
    which the next run takes over and removes."""

    def wait(until: float) -> None:
        while any(worker.is_alive() for worker in workers) and time.time() < until:
            with contextlib.suppress(queue.Empty):
                events.get(timeout=0.1)  # keep the queue drained so that a worker's put never blocks

    wait(time.time() + settle)
    for worker in workers:
        if worker.is_alive() and worker.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGINT)
    wait(time.time() + grace)
    for worker in workers:
        if worker.is_alive():
            worker.terminate()
        worker.join()
    events.close()
    events.join_thread()


def _ray_cell(spec: cells.CellSpec, results_dir: str, device: str, options: dict[str, Any]) -> Any:
    """One cell as a Ray task: the same claim-run-release path as a local scheduler."""

    from ratbench.scheduler import run_grid

    lines: list[str] = []
    outcomes: list[tuple[str, str]] = []
    summary = run_grid(
        [spec],
        Path(results_dir),
        device=device,
        echo=lambda line: lines.append(f"{line} [ray task, pid {os.getpid()}]"),
        quiet_skips=True,
        epoch_bars=False,
        on_cell=lambda outcome, cell_id: outcomes.append((outcome, cell_id)),
        **options,
    )
    return lines, outcomes, summary


def run_ray(
    specs: Sequence[cells.CellSpec],
    results_dir: Path,
    address: str | None = None,
    cpus_per_cell: int = 1,
    gpus_per_cell: float = 0.0,
    echo: Callable[[str], None] = print,
    on_cell: Callable[[str, str], None] | None = None,
    **options: Any,
) -> GridSummary:
    """Run every cell that is not done as a Ray task (``ray.remote`` with ``cpus_per_cell`` and a
    fractional ``gpus_per_cell``; Ray sets ``CUDA_VISIBLE_DEVICES``). ``results_dir`` must be
    storage that every node sees. Connects to ``address`` (a running cluster), or starts a local
    Ray instance when none is given and Ray is not initialised yet."""
    try:
        import ray
    except ImportError:
        from ratbench.errors import RatbenchError

        raise RatbenchError("--executor ray needs Ray: pip install 'ratbench[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    task = ray.remote(num_cpus=cpus_per_cell, num_gpus=gpus_per_cell)(_ray_cell)
    device = "cuda" if gpus_per_cell > 0 else "cpu"
    force = options.get("force", False)
    merged = GridSummary(total=len(specs))
    todo = []
    for spec in specs:
        if not force and cells.is_done(results_dir, spec):
            merged.skipped.append(spec.cell_id)
        else:
            todo.append(spec)
    pending = [task.remote(spec, str(Path(results_dir).resolve()), device, options) for spec in todo]
    reported = 0
    while pending:
        try:
            done, pending = ray.wait(pending, num_returns=1)
        except KeyboardInterrupt:  # a cancelled task gets KeyboardInterrupt: run_grid releases its claim
            for ref in pending:
                ray.cancel(ref)
            raise
        lines, outcomes, summary = ray.get(done[0])
        for line in lines:
            reported += 1
            echo(f"[{reported}/{len(todo)}] {line}")
        for outcome in outcomes:
            if on_cell is not None:
                on_cell(*outcome)
        merged.finished += summary.finished
        merged.failed += summary.failed
        merged.skipped += summary.skipped
        merged.elsewhere += summary.elsewhere
    return merged
