"""Run cells in one process: claim each, run it, record a failure and go on; and the types that
every executor shares (``RunOptions``, ``Events``, ``GridSummary``)."""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ratbench.errors import RatbenchError
from ratbench.execution import claims, store
from ratbench.execution.cells import CellSpec

Outcome = Literal["done", "skipped", "failed", "elsewhere"]


@dataclass(frozen=True)
class RunOptions:
    """How the cells of a grid run, the same under every executor (plain values: a copy goes
    to each worker process or Ray task)."""

    results_dir: Path
    data_dir: Path | None = None
    force: bool = False
    """Rerun cells that are done."""
    stale_after: float = claims.DEFAULT_STALE_AFTER
    """Seconds after which another scheduler's claim on a cell is presumed abandoned."""


@dataclass(frozen=True)
class Events:
    """Where a run reports: ``echo`` takes one line of progress, ``on_cell`` each cell's outcome."""

    echo: Callable[[str], None] = print
    on_cell: Callable[[Outcome, str], None] | None = None

    def cell(self, outcome: Outcome, cell_id: str) -> None:
        """Report one cell's outcome."""
        if self.on_cell is not None:
            self.on_cell(outcome, cell_id)


@dataclass
class GridSummary:
    """What a grid run did."""

    total: int = 0
    skipped: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (cell_id, one-line reason)
    elsewhere: list[str] = field(default_factory=list)  # claimed by another live scheduler
    stopped: str = ""  # why the run stopped before its last cell (its GPU failed), else empty

    @property
    def ok(self) -> bool:
        """True when no cell failed."""
        return not self.failed


def _epoch_bar(total: int, label: str, enabled: bool = True) -> Any:
    from tqdm import tqdm

    # disable=None: the bar only appears on a terminal.
    return tqdm(total=total, desc=label, unit="epoch", leave=False, disable=None if enabled else True, file=sys.stderr)


def _epoch_line(prefix: str, record: dict[str, Any], epochs: int) -> str:
    """``<cell> epoch 3/8: loss 0.512, dev_acc_reference 56.2, ... (118 s)`` for a log file."""
    shown = [f"{key} {value:.3g}" for key, value in record.items() if key.startswith(("loss", "dev_acc"))]
    seconds = record.get("train_seconds")
    clock = f" ({seconds:.0f} s)" if isinstance(seconds, int | float) else ""
    return f"{prefix} epoch {record.get('epoch')}/{epochs}: {', '.join(shown)}{clock}"


class CellProgress:
    """A bar over the cells to run, with done / skipped / failed counts (terminal only)."""

    def __init__(self, total: int) -> None:
        from tqdm import tqdm

        self.counts: dict[Outcome, int] = {"done": 0, "skipped": 0, "failed": 0, "elsewhere": 0}
        self.bar = tqdm(total=total, desc="cells", unit="cell", disable=None, file=sys.stderr, position=1)

    def update(self, outcome: Outcome) -> None:
        """Count one cell's outcome (done, skipped, failed or elsewhere)."""
        self.counts[outcome] += 1
        self.bar.update()
        self.bar.set_postfix(self.counts, refresh=True)

    def echo(self, line: str) -> None:
        """Print a line without breaking the bar."""
        self.bar.write(line)

    def close(self) -> None:
        """Remove the bar."""
        self.bar.close()


def broken_device(device: str) -> str:
    """After a failed cell: why ``device`` can run no more cells (one line), or "" when it can.

    A sticky CUDA error (device-side assert, illegal address) poisons the process's CUDA context,
    so every later cell would fail within seconds; the next CUDA call raises it again. Running
    out of memory is not sticky: the next cell may fit.
    """
    if not device.startswith("cuda"):
        return ""
    import torch

    try:
        torch.cuda.synchronize()
    except torch.OutOfMemoryError:
        return ""
    except Exception as exc:  # RuntimeError or torch.AcceleratorError: "CUDA error: ..."
        return (f"{type(exc).__name__}: {exc}".strip().splitlines() or ["CUDA error"])[0]
    return ""


def run_in_process(
    specs: Sequence[CellSpec],
    options: RunOptions,
    device: str,
    events: Events,
    worker: bool = False,
    failed_since: float | None = None,
) -> GridSummary:
    """Run the cells of ``specs`` in this process, in order, each one that this process can
    claim and that is not done (every one with ``options.force``).

    Each cell is claimed before it runs (``claim.json``), so several schedulers can share one
    results folder: a cell claimed by a live scheduler is left to it, a stale claim (dead
    process on this host, or older than ``stale_after`` seconds) is taken over. A failing cell
    leaves its traceback in ``error.txt`` and the grid goes on; with ``failed_since`` (the
    start of a parallel run) a cell that already failed in this run is not tried again.

    ``worker``: this is one of several processes walking the same cells (a local worker or a
    Ray task): no numbering, no skip messages, no epoch bars, and the cells left when its
    device breaks are the other workers' to run. When a failed cell leaves a CUDA device
    unusable (``broken_device``), no further cell is claimed: ``summary.stopped`` says why,
    and outside a worker the cells not run are listed as failed.
    """
    from ratbench.execution.runner import run_cell

    summary = GridSummary(total=len(specs))
    results_dir = options.results_dir
    for position, spec in enumerate(specs, start=1):
        prefix = spec.cell_id if worker else f"[{position}/{len(specs)}] {spec.cell_id}"
        folder = store.cell_dir(results_dir, spec)
        if not claims.try_claim(folder, options.stale_after):
            summary.elsewhere.append(spec.cell_id)
            events.cell("elsewhere", spec.cell_id)
            if not worker:
                events.echo(f"{prefix} skipped: being run by another scheduler ({folder / claims.CLAIM_FILE})")
            continue
        error = folder / store.ERROR_FILE
        if failed_since is not None and error.is_file() and error.stat().st_mtime >= failed_since:
            claims.release_claim(folder)  # another worker of this run already failed it
            continue
        if not options.force and store.is_done(results_dir, spec):  # finished elsewhere meanwhile
            claims.release_claim(folder)
            summary.skipped.append(spec.cell_id)
            events.cell("skipped", spec.cell_id)
            continue
        kept = store.quarantine_corrupt(folder)
        if kept is not None:
            events.echo(f"{prefix}: its {store.METRICS_FILE} was corrupt, kept as {kept.name}; running the cell again")
        tic = time.time()
        epochs = int(spec.method_config.get("epochs", 0))
        try:
            with _epoch_bar(epochs, prefix, not worker) as bar:
                # Without a terminal (a log file) the bar is off: one plain line per epoch instead.
                def on_epoch(record: dict[str, Any], bar: Any = bar, label: str = prefix, total: int = epochs) -> None:
                    bar.update()
                    if bar.disable and not worker:
                        events.echo(_epoch_line(label, record, total))

                metrics = run_cell(spec, results_dir, device=device, data_dir=options.data_dir, on_epoch=on_epoch)
        except Exception as exc:  # one failing cell must not stop the grid
            (folder / store.ERROR_FILE).write_text(traceback.format_exc(), encoding="utf-8")
            reason = str(exc) if isinstance(exc, RatbenchError) else f"{type(exc).__name__}: {exc}"
            summary.failed.append((spec.cell_id, reason))
            events.cell("failed", spec.cell_id)
            events.echo(f"{prefix} FAILED {reason} (traceback in {folder / store.ERROR_FILE})")
            summary.stopped = broken_device(device)
            if not summary.stopped:
                continue
            broken = f"{device} is unusable after this failure ({summary.stopped})"
            events.echo(f"{prefix}: {broken}; no more cells run here")
            if not worker:  # a worker leaves the rest to the other workers
                for rest in specs[position:]:
                    summary.failed.append((rest.cell_id, f"not run: {device} failed ({summary.stopped})"))
                    events.cell("failed", rest.cell_id)
            break
        finally:
            claims.release_claim(folder)
        summary.finished.append(spec.cell_id)
        events.cell("done", spec.cell_id)
        ref = metrics["modes"]["reference"]
        acc = "N/A" if ref["Acc"] is None else f"{ref['Acc']:.1f}"
        clock = f"{time.strftime('%H:%M:%S', time.localtime(tic))}-{time.strftime('%H:%M:%S')}"
        events.echo(f"{prefix} ok F1={ref['F1']:.1f} S={ref['S']:.1f} Acc={acc} ({time.time() - tic:.1f}s, {clock})")
    return summary


def grid_status(
    specs: Sequence[CellSpec], results_dir: Path, stale_after: float = claims.DEFAULT_STALE_AFTER
) -> dict[str, list[str]]:
    """Cell ids by status: todo, done, failed, running, stale, corrupt (for ``--dry-run``)."""
    by_status: dict[str, list[str]] = {name: [] for name in store.STATUSES}
    for spec in specs:
        by_status[store.status(results_dir, spec, stale_after)].append(spec.cell_id)
    return by_status
