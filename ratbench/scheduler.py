"""Run a list of cells: skip finished ones, run the rest, keep going past failures."""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ratbench import cells
from ratbench.errors import RatbenchError


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

        self.counts = {"done": 0, "skipped": 0, "failed": 0, "elsewhere": 0}
        self.bar = tqdm(total=total, desc="cells", unit="cell", disable=None, file=sys.stderr, position=1)

    def update(self, outcome: str, cell_id: str = "") -> None:
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


def run_grid(
    specs: Sequence[cells.CellSpec],
    results_dir: Path,
    device: str = "cpu",
    data_dir: Path | None = None,
    force: bool = False,
    echo: Callable[[str], None] = print,
    stale_after: float = cells.DEFAULT_STALE_AFTER,
    quiet_skips: bool = False,
    on_cell: Callable[[str, str], None] | None = None,
    epoch_bars: bool = True,
    failed_since: float | None = None,
    list_unrun: bool = True,
) -> GridSummary:
    """Run every cell of ``specs`` that is not done (all of them with ``force``), in order.

    Each cell is claimed before it runs (``claim.json``), so several schedulers can share one
    results folder: a cell claimed by a live scheduler is left to it, a stale claim (dead
    process on this host, or older than ``stale_after`` seconds) is taken over. A failing cell
    leaves its traceback in ``error.txt`` and the grid goes on; with ``failed_since`` (the
    start of a parallel run) a cell that already failed in this run is not tried again.

    When a failed cell leaves a CUDA device unusable (``broken_device``), no further cell is
    claimed: ``summary.stopped`` says why, and with ``list_unrun`` the cells not run are listed
    as failed (a parallel worker leaves them to the other workers instead).
    """
    from ratbench.runner import run_cell

    def report(outcome: str, cell_id: str) -> None:
        if on_cell is not None:
            on_cell(outcome, cell_id)

    summary = GridSummary(total=len(specs))
    todo = [spec for spec in specs if force or not cells.is_done(results_dir, spec)]
    summary.skipped = [spec.cell_id for spec in specs if spec not in todo]
    if summary.skipped and not quiet_skips:
        echo(f"{len(summary.skipped)} of {len(specs)} cells already done (use --force to rerun them)")
    for position, spec in enumerate(todo, start=1):
        # Workers of a parallel run leave the numbering to the parent, which sees every cell.
        prefix = spec.cell_id if quiet_skips else f"[{position}/{len(todo)}] {spec.cell_id}"
        folder = cells.cell_dir(results_dir, spec)
        if not cells.try_claim(folder, stale_after):
            summary.elsewhere.append(spec.cell_id)
            report("elsewhere", spec.cell_id)
            if not quiet_skips:
                echo(f"{prefix} skipped: being run by another scheduler ({folder / cells.CLAIM_FILE})")
            continue
        error = folder / cells.ERROR_FILE
        if failed_since is not None and error.is_file() and error.stat().st_mtime >= failed_since:
            cells.release_claim(folder)  # another worker of this run already failed it
            continue
        if not force and cells.is_done(results_dir, spec):  # finished elsewhere meanwhile
            cells.release_claim(folder)
            summary.skipped.append(spec.cell_id)
            report("skipped", spec.cell_id)
            continue
        kept = cells.quarantine_corrupt(folder)
        if kept is not None:
            echo(f"{prefix}: its {cells.METRICS_FILE} was corrupt, kept as {kept.name}; running the cell again")
        tic = time.time()
        epochs = int(spec.method_config.get("epochs", 0))
        try:
            with _epoch_bar(epochs, prefix, epoch_bars) as bar:
                # Without a terminal (a log file) the bar is off: one plain line per epoch instead.
                def on_epoch(record: dict[str, Any], bar: Any = bar, label: str = prefix, total: int = epochs) -> None:
                    bar.update()
                    if bar.disable and epoch_bars:
                        echo(_epoch_line(label, record, total))

                metrics = run_cell(spec, results_dir, device=device, data_dir=data_dir, on_epoch=on_epoch)
        except Exception as exc:  # one failing cell must not stop the grid
            (folder / cells.ERROR_FILE).write_text(traceback.format_exc(), encoding="utf-8")
            reason = str(exc) if isinstance(exc, RatbenchError) else f"{type(exc).__name__}: {exc}"
            summary.failed.append((spec.cell_id, reason))
            report("failed", spec.cell_id)
            echo(f"{prefix} FAILED {reason} (traceback in {folder / cells.ERROR_FILE})")
            summary.stopped = broken_device(device)
            if not summary.stopped:
                continue
            echo(f"{prefix}: {device} is unusable after this failure ({summary.stopped}); no more cells run here")
            if list_unrun:
                for rest in todo[position:]:
                    summary.failed.append((rest.cell_id, f"not run: {device} failed ({summary.stopped})"))
                    report("failed", rest.cell_id)
            break
        finally:
            cells.release_claim(folder)
        summary.finished.append(spec.cell_id)
        report("done", spec.cell_id)
        ref = metrics["modes"]["reference"]
        acc = "N/A" if ref["Acc"] is None else f"{ref['Acc']:.1f}"
        clock = f"{time.strftime('%H:%M:%S', time.localtime(tic))}-{time.strftime('%H:%M:%S')}"
        echo(f"{prefix} ok F1={ref['F1']:.1f} S={ref['S']:.1f} Acc={acc} ({time.time() - tic:.1f}s, {clock})")
    return summary


def grid_status(
    specs: Sequence[cells.CellSpec], results_dir: Path, stale_after: float = cells.DEFAULT_STALE_AFTER
) -> dict[str, list[str]]:
    """Cell ids by status: todo, done, failed, running, stale, corrupt (for ``--dry-run``)."""
    by_status: dict[str, list[str]] = {name: [] for name in cells.STATUSES}
    for spec in specs:
        by_status[cells.status(results_dir, spec, stale_after)].append(spec.cell_id)
    return by_status
