"""From a run request to finished cells: plan the grid, describe a dry run, choose the executor,
and run the cells that are to do (``ratbench run`` parses, calls these, prints and exits).

The path of one run:

1. ``plan(request)``: the cells (``grid.expand`` over the request's methods, datasets, seeds
   and sweep points; duplicates dropped), with the missing data files when asked to collect them.
2. ``dry_run_lines`` for ``--dry-run``; it reads the results folder and writes nothing.
3. ``prepare(cells, options)``: the one place where a run recovers the results folder (it
   finishes commits that a crash cut short and drops stale claims of done cells) and works out
   which cells are to do.
4. ``execute(cells, todo, options, executor)``: runs ``todo`` on an ``executors.Executor``
   with a progress bar, mirrors each finished cell to mlflow, and backfills the mirror.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ratbench.config import Config
from ratbench.data import filehash
from ratbench.errors import MissingDataError, RatbenchError
from ratbench.execution import grid, store
from ratbench.execution.cells import CellSpec
from ratbench.execution.scheduler import Events, GridSummary, Outcome, RunOptions
from ratbench.registry import DATASETS, METHODS

if TYPE_CHECKING:
    from ratbench.execution.executors import Executor
    from ratbench.execution.tracking import Tracker


@dataclass(frozen=True)
class RunRequest:
    """What ``ratbench run`` asks for, as typed: the strings are parsed (with one-line errors)
    by ``plan``."""

    methods: str | None = None
    datasets: str | None = None
    grid_name: str | None = None
    seeds: str = "1"
    preset: str | None = None
    sets: tuple[str, ...] = ()
    sweeps: tuple[str, ...] = ()
    epochs: int | None = None
    limit: int | None = None
    precision: str = "fp32"
    cpu_threads: int = 1
    data_dir: Path | None = None
    lenient: bool = False
    max_cells: int = 10_000


@dataclass(frozen=True)
class Plan:
    """The cells of a request, and (when collected) the data files it lacks."""

    cells: list[CellSpec]
    missing: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ExecutorFlags:
    """The ``ratbench run`` flags that say where cells run, checked together."""

    executor: str = "local"
    device: str = "cpu"
    gpus: str | None = None
    workers: int = 1
    cells_per_gpu: int = 1
    ray_address: str | None = None
    gpus_per_cell: float = 0.0

    def check(self, cpu_threads: int, force_threads: bool = False) -> None:
        """Refuse flags the executor would ignore, and (unless ``force_threads``) more torch
        threads per cell than the cores here."""
        check_cpu_threads(cpu_threads, force_threads, self.executor, self.ray_address)
        self.ray_gpus_per_cell()

    def ray_gpus_per_cell(self) -> float:
        """Refuse the flags that the chosen executor would ignore (one line, before any cell runs);
        return the GPU fraction per Ray task: ``--device cuda`` under Ray asks one GPU per cell
        unless ``--gpus-per-cell`` says otherwise (without a GPU request Ray would train on the CPU)."""
        if self.executor == "ray":
            if self.gpus or self.cells_per_gpu != 1:
                raise RatbenchError(
                    "--gpus and --cells-per-gpu are for --executor local; under Ray use --device cuda "
                    "[--gpus-per-cell F] (0.25: four cells share a GPU)"
                )
            if self.workers != 1:
                raise RatbenchError(
                    "--workers is for --executor local; Ray runs as many cells at once as the cluster has "
                    "CPUs (--cpu-threads per cell) or GPUs (--gpus-per-cell per cell)"
                )
            if self.device not in ("cpu", "cuda"):
                raise RatbenchError(
                    f"--device {self.device} with --executor ray: Ray chooses each task's GPU; use --device cuda "
                    "(one GPU per cell, or --gpus-per-cell F)"
                )
            return 1.0 if self.device == "cuda" and not self.gpus_per_cell else self.gpus_per_cell
        if self.gpus_per_cell:
            raise RatbenchError(
                "--gpus-per-cell is for --executor ray; on this machine use --gpus and --cells-per-gpu K"
            )
        on_gpu = bool(self.gpus) or self.device.startswith("cuda")
        if on_gpu and self.workers != 1:
            raise RatbenchError(
                f"--workers counts CPU worker processes; on GPUs use --cells-per-gpu {self.workers} "
                f"({self.workers} cells at once on each GPU) instead of --workers {self.workers}"
            )
        if not on_gpu and self.cells_per_gpu != 1:
            raise RatbenchError("--cells-per-gpu needs GPUs (--gpus or --device cuda); on the CPU use --workers N")
        return self.gpus_per_cell

    @property
    def device_kind(self) -> str:
        """Where the cells train, ``cuda`` or ``cpu`` (part of the cell id): ``--gpus`` implies
        cuda, and Ray trains on a GPU with ``--gpus-per-cell``."""
        ray_gpu = self.executor == "ray" and self.ray_gpus_per_cell() > 0
        return "cuda" if self.device.startswith("cuda") or self.gpus or ray_gpu else "cpu"

    def gpu_ids(self) -> list[str] | None:
        """The GPUs a local run uses (``--gpus``, or those ``--device`` names), after checking
        the device; None on the CPU and under Ray (Ray picks each task's GPU on its node)."""
        if self.executor == "ray":
            return None
        return gpu_ids(self.device, grid.parse_names(self.gpus, "--gpus") if self.gpus else None)

    def build(self, cpu_threads: int) -> Executor:
        """The executor these flags choose (a Ray task asks for the cell's ``cpu_threads`` CPUs)."""
        from ratbench.execution.executors import LocalProcesses, Ray

        if self.executor == "ray":
            return Ray(self.ray_address, cpus_per_cell=cpu_threads, gpus_per_cell=self.ray_gpus_per_cell())
        ids = self.gpu_ids()
        return LocalProcesses(self.workers, tuple(ids) if ids else None, self.cells_per_gpu, self.device)

    def warnings(self, todo: Sequence[CellSpec], cpu_threads: int) -> list[str]:
        """Warnings about how the cells will share this machine (one line each)."""
        if self.executor != "local":
            return []
        ids = self.gpu_ids()
        if ids:
            return gpu_utilisation_warnings(todo, len(ids), self.cells_per_gpu)
        if self.workers * cpu_threads > (os.cpu_count() or 1):
            return [
                f"--workers {self.workers} x --cpu-threads {cpu_threads} is more than the {os.cpu_count()} CPU "
                "cores here; the cells will compete for them (same numbers, more time)"
            ]
        return []


@dataclass(frozen=True)
class RunReport:
    """What ``execute`` did: the grid's summary and how many finished cells it backfilled into mlflow."""

    summary: GridSummary
    backfilled: int = 0


def plan(request: RunRequest, device_kind: str = "cpu", collect_missing: bool = False) -> Plan:
    """The cells of ``request`` (training on ``device_kind``). With ``collect_missing`` a missing
    data file is collected in ``Plan.missing`` instead of raised (for ``--dry-run``)."""
    missing: list[MissingDataError] = []
    sets = [*request.sets, *(["data.lenient=true"] if request.lenient else [])]
    requests = run_requests(
        request.grid_name, request.methods, request.datasets, request.preset, sets, request.data_dir
    )
    seed_list = grid.parse_seeds(request.seeds, request.max_cells)
    axes = grid.parse_sweep_axes(request.sweeps, sets)
    # every check that needs no data comes before the sweep's product is built
    grid.check_grid_size([(m, d) for m, d, _, _ in requests], len(seed_list), axes, request.max_cells)
    for run_methods, run_datasets, _, run_sets in requests:
        grid.check_sweep_overrides(axes, run_sets, run_methods, run_datasets, request.epochs, sets)
    specs: list[CellSpec] = []
    for (run_methods, run_datasets, run_preset, run_sets), point in itertools.product(
        requests, grid.sweep_points(axes)
    ):
        grid_request = grid.GridRequest(
            methods=tuple(run_methods),
            datasets=tuple(run_datasets),
            seeds=tuple(seed_list),
            preset=run_preset,
            sets=grid.parse_sets([*run_sets, *point]),
            epochs=request.epochs,
            limit=request.limit,
            data_dir=request.data_dir,
            max_cells=request.max_cells,
            precision=request.precision,
            cpu_threads=request.cpu_threads,
            device_kind=device_kind,
        )
        specs += grid.expand_request(grid_request, on_missing=missing.append if collect_missing else None)
    filehash.save()  # the data files' content hashes, for the next run
    grid.check_sweep_encoders(axes, specs)
    unique: dict[str, CellSpec] = {}  # a sweep of one method's key repeats the grid's other methods
    for spec in specs:
        unique.setdefault(spec.cell_id, spec)
    return Plan(list(unique.values()), list(dict.fromkeys(str(problem) for problem in missing)))


def run_requests(
    grid_name: str | None,
    methods: str | None,
    datasets: str | None,
    preset: str | None,
    sets: list[str],
    data_dir: Path | None,
) -> list[tuple[list[str], list[str], str, list[str]]]:
    """``(methods, datasets, preset, --set items)`` of each part of the requested grid: the
    command-line product, or the runs of a paper grid (``--grid``) narrowed by ``--methods`` and
    ``--datasets``."""
    from ratbench.execution import paper_grids

    method_names = grid.parse_names(methods, "--methods") if methods is not None else None
    dataset_names = grid.parse_names(datasets, "--datasets") if datasets is not None else None
    if grid_name is None:
        if method_names is None or dataset_names is None:
            raise RatbenchError("give --methods and --datasets, or --grid table1|table2|table3|leaderboard")
        return [(method_names, dataset_names, preset or "paper", sets)]
    paper = paper_grids.get_grid(grid_name)
    if preset is not None and preset != paper.preset:
        raise RatbenchError(
            f"--grid {grid_name} runs with preset {paper.preset}; drop --preset {preset}, or use --methods and "
            "--datasets to run another preset"
        )
    return [
        (run_methods, run_datasets, paper.preset, run_sets)
        for run_methods, run_datasets, run_sets in paper_grids.grid_requests(
            paper, data_dir, sets, method_names, dataset_names
        )
    ]


def dry_run_lines(cells: Sequence[CellSpec], results_dir: Path, stale_after: float) -> list[str]:
    """What ``--dry-run`` prints: the count of cells per status, one line per configuration
    with its settings, and the cells a run would run. Reads the results folder only."""
    from ratbench.execution.scheduler import grid_status

    by_status = grid_status(cells, results_dir, stale_after)
    lines = [", ".join(f"{len(ids)} {name}" for name, ids in by_status.items()) + f" ({len(cells)} cells)"]
    lines += settings_lines(cells)
    to_run = by_status["todo"] + by_status["failed"] + by_status["stale"] + by_status["corrupt"]
    return lines + [f"  to run: {cell_id}" for cell_id in to_run]


def settings_lines(cells: Sequence[CellSpec]) -> list[str]:
    """One line per configuration of a grid: the method, the dataset and the settings that
    decide a table row (sparsity target, learning rate, batch size, epochs, encoder, ...)."""
    lines, seen = [], set()
    for spec in cells:
        if spec.config_id in seen:
            continue
        seen.add(spec.config_id)
        method = _key_settings(METHODS.get(spec.method).Config, spec.method_config)
        data = _key_settings(DATASETS.get(spec.dataset).Config, spec.dataset_config)
        preset = (spec.variant or {}).get("preset")
        lines.append(f"  {spec.method} on {spec.dataset}.{spec.subset} (preset {preset}): {', '.join(method + data)}")
    return lines


def _key_settings(config_class: type[Config], values: dict[str, Any]) -> list[str]:
    """``key=value`` for the config's ``key_settings`` in a cell's stored config (which leaves
    out identity-neutral values)."""
    return [f"{key}={values[key]}" for key in config_class.key_fields() if key in values]


def prepare(cells: Sequence[CellSpec], options: RunOptions) -> list[CellSpec]:
    """Before a run: check that the results folder can be written, recover each cell's folder
    (``store.recover``), and return the cells to run (every one with ``options.force``), after
    reading their embedding files once (a malformed file: one error, not one per cell)."""
    from ratbench.data.vocab import check_embedding_files

    check_writable(options.results_dir)
    for spec in cells:
        store.recover(store.cell_dir(options.results_dir, spec), options.stale_after)
    todo = [spec for spec in cells if options.force or not store.is_done(options.results_dir, spec)]
    check_embedding_files({spec.dataset_config["embeddings"] for spec in todo})
    return todo


def execute(
    cells: Sequence[CellSpec],
    todo: Sequence[CellSpec],
    options: RunOptions,
    executor: Executor,
    tracker: Tracker | None = None,
    echo: Callable[[str], None] | None = None,
) -> RunReport:
    """Run ``todo`` (from ``prepare``) on ``executor`` with a bar over the cells; mirror each
    finished cell to mlflow as it finishes, then the finished cells of ``cells`` the mirror does
    not hold yet (finished by a killed run or by another scheduler)."""
    from ratbench.execution.scheduler import CellProgress

    progress = CellProgress(len(todo))
    say = echo or progress.echo

    def on_cell(outcome: Outcome, cell_id: str) -> None:
        progress.update(outcome)
        if outcome == "done" and tracker is not None:  # mirrored by this process only: no write races
            tracker.mirror(store.cell_folder(options.results_dir, cell_id))

    done_before = len(cells) - len(todo)
    if done_before:
        say(f"{done_before} of {len(cells)} cells already done (use --force to rerun them)")
    try:
        summary = executor.run(todo, options, Events(say, on_cell))
    finally:
        progress.close()
    todo_ids = {spec.cell_id for spec in todo}
    summary.skipped = [spec.cell_id for spec in cells if spec.cell_id not in todo_ids] + summary.skipped
    summary.total = len(cells)
    backfilled = 0
    if tracker is not None:
        finished = [store.cell_folder(options.results_dir, spec) for spec in cells]
        backfilled = tracker.mirror_all([cell for cell in finished if cell.is_done()])["logged"]
    return RunReport(summary, backfilled)


def run_cells(
    cells: Sequence[CellSpec],
    results_dir: Path,
    device: str = "cpu",
    data_dir: Path | None = None,
    force: bool = False,
    echo: Callable[[str], None] = print,
) -> GridSummary:
    """Run ``cells`` in this process, as ``ratbench run`` does without tracking (for scripts,
    notebooks and tests)."""
    from ratbench.execution.executors import InProcess

    options = RunOptions(Path(results_dir), data_dir, force)
    return execute(cells, prepare(cells, options), options, InProcess(device), echo=echo).summary


def count_done(cells: Sequence[CellSpec], results_dir: Path) -> int:
    """How many of ``cells`` are done."""
    return sum(store.is_done(results_dir, spec) for spec in cells)


def available_cpus() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS and Windows have no affinity mask
        return os.cpu_count() or 1


def check_cpu_threads(cpu_threads: int, force: bool, executor: str, ray_address: str | None) -> None:
    """``--cpu-threads`` above the cores here oversubscribes every cell (1,000 threads on 2 cores
    do not finish an epoch), so it is refused unless forced; cells of a Ray cluster run elsewhere."""
    cores = available_cpus()
    if cpu_threads > cores and not force and not (executor == "ray" and ray_address):
        raise RatbenchError(
            f"--cpu-threads {cpu_threads} is more than the {cores} CPU cores available here; use "
            f"--cpu-threads {cores} or less (--workers fills more cores), or --force-threads to allow it"
        )


def gpu_ids(device: str, gpus: list[str] | None) -> list[str] | None:
    """The GPUs a run uses (``--gpus``, or those ``--device`` names), after checking the device.

    The numbers count the GPUs this process sees (``CUDA_VISIBLE_DEVICES``), as ``cuda:N`` does;
    each worker is then given the matching entry of that list (``executors.plan_slots``).
    """
    from ratbench.execution.runner import resolve_device

    resolve_device(device)
    if gpus:
        for gpu in gpus:
            if not gpu.isdigit():
                raise RatbenchError(f"malformed --gpus {','.join(gpus)}: use GPU numbers, e.g. 0,1,3")
            resolve_device(f"cuda:{gpu}")
        return gpus
    if not device.startswith("cuda"):
        return None
    import torch

    # --device cuda:N means that GPU; --device cuda means every visible one
    index = device.partition(":")[2]
    return [index] if index else [str(i) for i in range(torch.cuda.device_count())]


def gpu_utilisation_warnings(todo: Sequence[CellSpec], n_gpus: int, cells_per_gpu: int) -> list[str]:
    """One small word-encoder (GRU) cell at a time leaves a GPU mostly idle: suggest
    ``--cells-per-gpu``. Not a default, since the GPU memory a cell needs is not known here."""
    if cells_per_gpu != 1 or len(todo) <= n_gpus:
        return []
    if not all(spec.dataset_config.get("encoder", "word") == "word" for spec in todo):
        return []
    k = min(4, -(-len(todo) // n_gpus))
    return [
        f"{len(todo)} word-encoder (GRU) cells on {n_gpus} GPU(s), one at a time on each, leave the GPU mostly "
        f"idle; --cells-per-gpu {k} runs {k} at once on each GPU (--workers is for CPU runs)"
    ]


def check_writable(results_dir: Path) -> None:
    """A results folder that cannot be written is one error before any cell starts."""
    try:
        runs = store.runs_dir(results_dir)
        runs.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=runs, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise RatbenchError(
            f"cannot write to --results-dir {results_dir} ({exc.strerror or exc}); choose a folder you can write to"
        ) from None


def tracker_for(results_dir: Path, track: bool | None, uri: str | None, warn: Callable[[str], None]) -> Tracker | None:
    """The mlflow mirror for a run, or None when tracking is off (or mlflow absent by default)."""
    import importlib.util

    installed = importlib.util.find_spec("mlflow") is not None
    if track is False or (track is None and not installed):
        return None
    if not installed:
        raise RatbenchError("--track needs mlflow: pip install 'ratbench[mlflow]' (or use --no-track)")
    from ratbench.execution.tracking import Tracker

    return Tracker(results_dir, uri, warn=warn)
