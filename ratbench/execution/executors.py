"""Run a grid in several worker processes on one machine (CPU workers or GPU slots).

Every worker walks the same cell list and runs each cell it can claim (``claims.try_claim``),
so the claims that keep two schedulers apart also spread the cells over the workers, and a
cell whose worker died is taken over by the next worker that reaches it. A worker sets
``CUDA_VISIBLE_DEVICES`` and its torch thread count before it imports torch.

GPU numbers (``--gpus``, ``--device cuda:N``) are indices into the devices this process sees: a
worker for visible GPU 1 under ``CUDA_VISIBLE_DEVICES=2,3`` gets ``CUDA_VISIBLE_DEVICES=3``
(UUIDs and MIG ids are passed on as they are). A worker whose GPU fails with a sticky CUDA error
stops claiming cells; its slot is restarted once with a fresh process (a fresh CUDA context).
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ratbench.errors import RatbenchError
from ratbench.execution import store
from ratbench.execution.cells import CellSpec
from ratbench.execution.scheduler import Events, GridSummary, Outcome, RunOptions, run_in_process

# A slot whose worker stopped on a broken GPU is started again this many times: a sticky error
# (device assert, illegal address) dies with its CUDA context, a failing GPU does not.
MAX_RESTARTS = 1


@dataclass(frozen=True)
class Slot:
    """One worker: an index, the GPU it may see (None on CPU) as an index into this process's
    visible GPUs, and ``visible``, the entry of this process's ``CUDA_VISIBLE_DEVICES`` that the
    worker gets (None: worked out from the environment when the worker starts). Its torch thread
    count is each cell's own (``--cpu-threads``, part of the cell id), set by the runner."""

    index: int
    gpu: str | None
    visible: str | None = None


def parent_visible_gpus(environ: Mapping[str, str] | None = None) -> list[str] | None:
    """The entries of ``CUDA_VISIBLE_DEVICES`` (GPU numbers, UUIDs or MIG ids, in CUDA's order),
    or None when it is not set (every GPU is visible, under the numbers CUDA gives them)."""
    value = (os.environ if environ is None else environ).get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    return [entry.strip() for entry in value.split(",") if entry.strip()]


def worker_visible_device(gpu: str, visible: Sequence[str] | None) -> str:
    """What the worker for visible GPU ``gpu`` puts in its ``CUDA_VISIBLE_DEVICES``: the parent's
    entry at that index (``gpu`` itself when the parent sees every GPU)."""
    if visible is None:
        return gpu
    index = int(gpu)
    if not 0 <= index < len(visible):
        raise RatbenchError(
            f"GPU {gpu} is not visible here: CUDA_VISIBLE_DEVICES={','.join(visible)} gives GPUs "
            f"0-{len(visible) - 1} (--gpus counts the visible GPUs from 0)"
        )
    return visible[index]


def plan_slots(
    workers: int,
    gpus: Sequence[str] | None,
    cells_per_gpu: int,
    max_slots: int | None = None,
    visible: Sequence[str] | None = None,
) -> list[Slot]:
    """GPU slots (each GPU ``cells_per_gpu`` times) when ``gpus`` is given, else CPU workers
    (``workers`` of them); never more than ``max_slots`` (the cells to run: an idle worker
    costs a process and its memory). ``gpus`` are indices into ``visible`` (default: this
    process's ``CUDA_VISIBLE_DEVICES``), and each GPU slot gets the matching entry."""
    if gpus:
        if visible is None:
            visible = parent_visible_gpus()
        gpu_of_slot = [g for _ in range(cells_per_gpu) for g in gpus]  # spread over the GPUs first
        gpu_of_slot = sorted(gpu_of_slot[:max_slots], key=list(gpus).index)
        return [Slot(i, gpu, worker_visible_device(gpu, visible)) for i, gpu in enumerate(gpu_of_slot)]
    count = min(workers, max_slots) if max_slots is not None else workers
    return [Slot(i, None) for i in range(count)]


class Executor(Protocol):
    """Runs cells. ``todo`` are the cells that were not done when the run started; each is
    claimed before it runs, so a cell finished meanwhile elsewhere is skipped."""

    def run(self, todo: Sequence[CellSpec], options: RunOptions, events: Events) -> GridSummary:
        """Run the cells of ``todo``; report each outcome to ``events`` once."""
        ...


@dataclass(frozen=True)
class InProcess:
    """This process, one cell after another, on ``device`` (cpu, cuda or cuda:N)."""

    device: str = "cpu"

    def run(self, todo: Sequence[CellSpec], options: RunOptions, events: Events) -> GridSummary:
        """Run ``todo`` here, in order."""
        return run_in_process(todo, options, self.device, events)


@dataclass(frozen=True)
class LocalProcesses:
    """Worker processes on this machine: ``workers`` CPU workers, or ``cells_per_gpu`` slots on
    each of ``gpus`` (indices into the visible GPUs). Never more workers than cells to run;
    a single slot runs in this process (on ``device``, or on its GPU)."""

    workers: int = 1
    gpus: tuple[str, ...] | None = None
    cells_per_gpu: int = 1
    device: str = "cpu"
    on_start: Callable[[int, str | None], None] | None = None
    """Called as each worker starts, with its slot index and ``CUDA_VISIBLE_DEVICES``."""

    def run(self, todo: Sequence[CellSpec], options: RunOptions, events: Events) -> GridSummary:
        """Run ``todo`` over the slots."""
        slots = plan_slots(self.workers, self.gpus, self.cells_per_gpu, max_slots=max(1, len(todo)))
        if len(slots) > 1:
            return run_parallel(todo, options, slots, events, self.on_start)
        device = self.device if slots[0].gpu is None else f"cuda:{slots[0].gpu}"
        return InProcess(device).run(todo, options, events)


@dataclass(frozen=True)
class _Started:
    slot: int
    visible: str | None


@dataclass(frozen=True)
class _Line:
    text: str


@dataclass(frozen=True)
class _Cell:
    outcome: Outcome
    cell_id: str


@dataclass(frozen=True)
class _Finished:
    slot: int
    summary: GridSummary


@dataclass(frozen=True)
class _Interrupted:
    slot: int


def _worker(
    slot: Slot, todo: list[CellSpec], options: RunOptions, n_slots: int, failed_since: float | None, messages: Any
) -> None:
    try:
        _work(slot, todo, options, n_slots, failed_since, messages)
    except KeyboardInterrupt:  # Ctrl-C reaches every worker: run_in_process has released its claim
        messages.put(_Interrupted(slot.index))


def _work(
    slot: Slot, todo: list[CellSpec], options: RunOptions, n_slots: int, failed_since: float | None, messages: Any
) -> None:
    if slot.gpu is not None:  # before torch is imported in this process
        visible = slot.visible if slot.visible is not None else worker_visible_device(slot.gpu, parent_visible_gpus())
        os.environ["CUDA_VISIBLE_DEVICES"] = visible
    messages.put(_Started(slot.index, os.environ.get("CUDA_VISIBLE_DEVICES")))
    device = "cuda" if slot.gpu is not None else "cpu"
    # Start at a different cell in each worker so that they rarely race for the same claim.
    shift = (slot.index * len(todo)) // max(n_slots, 1)
    order = todo[shift:] + todo[:shift]

    def on_cell(outcome: Outcome, cell_id: str) -> None:
        if outcome in ("done", "failed"):  # cells another worker ran are that worker's to count
            messages.put(_Cell(outcome, cell_id))

    events = Events(lambda line: messages.put(_Line(f"{line} [worker {slot.index}, pid {os.getpid()}]")), on_cell)
    summary = run_in_process(order, options, device, events, worker=True, failed_since=failed_since)
    messages.put(_Finished(slot.index, summary))


def run_parallel(
    todo: Sequence[CellSpec],
    options: RunOptions,
    slots: Sequence[Slot],
    events: Events,
    on_start: Callable[[int, str | None], None] | None = None,
) -> GridSummary:
    """Run ``todo`` with one process per slot; return the merged summary.

    Cells that are not done when every worker has exited (a worker crashed) are reported as
    failed. ``on_start(slot index, CUDA_VISIBLE_DEVICES)`` is called as each worker starts. A
    worker that stops on a broken GPU is reported in one line and its slot restarted
    (``MAX_RESTARTS``).
    """
    started = time.time()
    # Ctrl-C sets a flag that the event loop below checks: a KeyboardInterrupt raised at a random
    # point of this process (say inside a destructor, where Python swallows it) could be lost.
    interrupted = threading.Event()
    previous_handler = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.set())
    context = multiprocessing.get_context("spawn")
    messages: multiprocessing.Queue = context.Queue()

    def start(slot: Slot) -> Any:
        process = context.Process(
            target=_worker, args=(slot, list(todo), options, len(slots), started, messages), daemon=True
        )
        process.start()
        return process

    workers = [start(slot) for slot in slots]
    slot_of = {slot.index: slot for slot in slots}
    restarts = dict.fromkeys(slot_of, 0)
    merged = GridSummary(total=len(todo))
    reported = 0
    running = len(workers)
    stopped = ""  # why a worker gave up its slot for good (a broken GPU)
    try:
        while running:
            if interrupted.is_set():
                raise KeyboardInterrupt
            try:
                message = messages.get(timeout=0.2)
            except queue.Empty:
                if not any(worker.is_alive() for worker in workers):
                    break
                continue
            if isinstance(message, _Line):
                reported += 1
                events.echo(f"[{reported}/{len(todo)}] {message.text}")
            elif isinstance(message, _Cell):
                events.cell(message.outcome, message.cell_id)
            elif isinstance(message, _Started):
                if on_start is not None:
                    on_start(message.slot, message.visible)
            elif isinstance(message, _Finished):
                summary = message.summary
                merged.finished += summary.finished
                merged.failed += summary.failed
                if summary.stopped and restarts[message.slot] < MAX_RESTARTS:
                    restarts[message.slot] += 1
                    events.echo(f"worker {message.slot} stopped: its GPU failed ({summary.stopped}); starting it again")
                    workers.append(start(slot_of[message.slot]))
                    continue
                if summary.stopped:
                    stopped = summary.stopped
                    events.echo(f"worker {message.slot} stopped for good: its GPU failed again ({summary.stopped})")
                running -= 1
            else:  # a worker stopped on Ctrl-C
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        _stop(workers, messages)
        raise
    finally:
        signal.signal(signal.SIGINT, previous_handler)
    for worker in workers:
        worker.join()
    seen = set(merged.finished) | {cell for cell, _ in merged.failed}
    unfinished = f"not run: the workers stopped on a broken GPU ({stopped})" if stopped else ""
    for spec in todo:
        if spec.cell_id in seen:
            continue
        state = store.status(options.results_dir, spec, options.stale_after)
        if state == "done":
            merged.skipped.append(spec.cell_id)
        elif state == "running":  # held by a scheduler outside this run
            merged.elsewhere.append(spec.cell_id)
        else:
            merged.failed.append(
                (spec.cell_id, unfinished or "not finished: its worker process died (see the cell's folder)")
            )
    return merged


def _stop(workers: Sequence[Any], messages: multiprocessing.Queue, settle: float = 2.0, grace: float = 30.0) -> None:
    """After Ctrl-C: give the workers (which got the terminal's SIGINT too) ``settle`` seconds to
    clean up and exit, interrupt those still running (they did not get it, or lost it), wait for
    them, terminate any left after ``grace``, then close the queue so that nothing is left behind.
    A worker cut short in its cleanup leaves a claim of a dead process and an unfinished attempt,
    which the next run takes over and removes."""

    def wait(until: float) -> None:
        while any(worker.is_alive() for worker in workers) and time.time() < until:
            with contextlib.suppress(queue.Empty):
                messages.get(timeout=0.1)  # keep the queue drained so that a worker's put never blocks

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
    messages.close()
    messages.join_thread()


def _ray_cell(spec: CellSpec, options: RunOptions, device: str) -> tuple[list[str], list[tuple[Outcome, str]], Any]:
    """One cell as a Ray task: the same claim-run-release path as a local scheduler."""
    lines: list[str] = []
    outcomes: list[tuple[Outcome, str]] = []
    events = Events(
        echo=lambda line: lines.append(f"{line} [ray task, pid {os.getpid()}]"),
        on_cell=lambda outcome, cell_id: outcomes.append((outcome, cell_id)),
    )
    summary = run_in_process([spec], options, device, events, worker=True)
    return lines, outcomes, summary


@dataclass(frozen=True)
class Ray:
    """One Ray task per cell (``ray.remote`` with ``cpus_per_cell`` and a fractional
    ``gpus_per_cell``; Ray sets ``CUDA_VISIBLE_DEVICES``). The results folder must be storage
    that every node sees. Connects to ``address`` (a running cluster), or starts a local Ray
    instance when none is given and Ray is not initialised yet.

    A task that dies outside the runner (its worker crashed, Ray's memory monitor killed it) is
    recorded as a failed cell, with the Ray error in its ``error.txt``, and the other cells go on.
    ``cell_task`` is the function each task runs (``_ray_cell``; tests replace it).
    """

    address: str | None = None
    cpus_per_cell: int = 1
    gpus_per_cell: float = 0.0
    cell_task: Callable[..., Any] = _ray_cell

    def run(self, todo: Sequence[CellSpec], options: RunOptions, events: Events) -> GridSummary:
        """Run each cell of ``todo`` as a Ray task."""
        try:
            import ray
            from ray.exceptions import RayError
        except ImportError:
            raise RatbenchError("--executor ray needs Ray: pip install 'ratbench[ray]'") from None
        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
        # No retry: a retried task on another node would find the dead task's claim live there.
        task = ray.remote(num_cpus=self.cpus_per_cell, num_gpus=self.gpus_per_cell, max_retries=0)(self.cell_task)
        device = "cuda" if self.gpus_per_cell > 0 else "cpu"
        shared = dataclasses.replace(options, results_dir=Path(options.results_dir).resolve())
        merged = GridSummary(total=len(todo))
        spec_of = {task.remote(spec, shared, device): spec for spec in todo}
        pending = list(spec_of)
        reported = 0
        while pending:
            try:
                done, pending = ray.wait(pending, num_returns=1)
            except KeyboardInterrupt:  # a cancelled task gets KeyboardInterrupt: its claim is released
                for ref in pending:
                    ray.cancel(ref)
                raise
            try:
                lines, outcomes, summary = ray.get(done[0])
            except RayError as exc:
                spec = spec_of[done[0]]
                if store.is_done(options.results_dir, spec):  # died after writing its metrics: done
                    merged.finished.append(spec.cell_id)
                    events.cell("done", spec.cell_id)
                    continue
                reason = _record_dead_task(options.results_dir, spec, exc)
                reported += 1
                events.echo(f"[{reported}/{len(todo)}] {spec.cell_id} FAILED {reason}")
                merged.failed.append((spec.cell_id, reason))
                events.cell("failed", spec.cell_id)
                continue
            for line in lines:
                reported += 1
                events.echo(f"[{reported}/{len(todo)}] {line}")
            for outcome in outcomes:
                events.cell(*outcome)
            merged.finished += summary.finished
            merged.failed += summary.failed
            merged.skipped += summary.skipped
            merged.elsewhere += summary.elsewhere
        return merged


def _record_dead_task(results_dir: Path, spec: CellSpec, exc: Exception) -> str:
    """Write the Ray error of a task that died outside the runner into the cell's ``error.txt``
    (its claim, held by a dead process, is taken over by the next run); return a one-line reason."""
    cause = getattr(exc, "cause", None)  # RayTaskError: the exception raised inside the task
    shown = cause if isinstance(cause, BaseException) else exc
    first = (str(shown).strip().splitlines() or [""])[0]
    reason = f"its Ray task died: {type(shown).__name__}: {first}".rstrip(": ")
    folder = store.cell_dir(results_dir, spec)
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / store.ERROR_FILE).write_text(f"{reason}\n\n{exc}\n", encoding="utf-8")
    return reason
