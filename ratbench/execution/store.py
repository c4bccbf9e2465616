"""The results folder's one owner: where each cell lives, its files, how they are written, and
how they are read.

A results folder holds ``runs/<cell_id>/`` per cell (``ratbench.execution.cells`` gives the id):

    spec.json            the cell spec
    epochs.jsonl         one record per epoch (losses, dev metrics)
    rationales.jsonl.gz  per-example predicted masks, gold and labels, per mode
    metrics.json         installed last; a valid one means "done"
    error.txt            traceback of the last failed attempt (failed_epochs.jsonl: its epochs)
    claim.json           exists while a scheduler runs the cell (``ratbench.execution.claims``)
    .attempt-<id>/       a run in progress: it writes the files above here, and they replace
                         the cell's only when it has finished (``commit_attempt``), so a crash
                         or Ctrl-C never costs the previous result

Reading never writes: ``CellFolder`` shows a cell as it will be once an interrupted commit is
finished, and ``is_done`` / ``status`` / ``finished_cells`` only look. The writes (attempts,
commits, quarantining a corrupt result, finishing a cut-short commit with ``recover``) happen
in a run, on a claimed cell or when the run starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gzip
import json
import math
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, TypedDict, cast

from ratbench.errors import RatbenchError
from ratbench.execution import claims
from ratbench.execution.cells import CellSpec
from ratbench.types import EVAL_MODES, METRIC_COLUMNS

RUNS_DIR = "runs"
SPEC_FILE = "spec.json"
EPOCHS_FILE = "epochs.jsonl"
RATIONALES_FILE = "rationales.jsonl.gz"
METRICS_FILE = "metrics.json"
ERROR_FILE = "error.txt"
FAILED_EPOCHS_FILE = "failed_epochs.jsonl"
ATTEMPT_PREFIX = ".attempt-"
# Installed from a finished attempt before metrics.json, which comes last: it marks the cell done.
RESULT_FILES = (SPEC_FILE, EPOCHS_FILE, RATIONALES_FILE)
METRIC_KEYS = ("cell_id", "config_id", "method", "dataset", "subset", "seed", "modes")
"""The keys a finished cell's ``metrics.json`` must have besides ``status`` (``CellResult``'s
required keys), in the order a missing one is named."""
Status = Literal["todo", "done", "failed", "running", "stale", "corrupt"]
STATUSES: tuple[Status, ...] = ("todo", "done", "failed", "running", "stale", "corrupt")


class _FinishedCell(TypedDict):
    """The keys every finished cell's ``metrics.json`` has (``METRIC_KEYS`` and ``status``)."""

    status: Literal["ok"]
    cell_id: str
    config_id: str
    method: str
    dataset: str
    subset: str
    seed: int
    modes: dict[str, dict[str, Any]]
    """Per evaluation mode: the test metrics (``types.METRIC_COLUMNS`` and more)."""


class CellResult(_FinishedCell, total=False):
    """What a finished cell's ``metrics.json`` holds (``runner`` writes it, ``validate_metrics``
    checks it); cells of older versions may lack the keys declared here."""

    kind: str
    data: dict[str, Any]
    """Example counts and lengths of the splits (``runner``'s data statistics)."""
    label_names: list[str] | None
    epochs: int
    seconds_per_epoch: float
    setup_seconds: float
    wall_seconds: float
    device: str
    versions: dict[str, str | None]
    finished_at: str


class CorruptResult(RatbenchError):
    """A ``metrics.json`` that does not parse or lacks what a finished cell must record."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def runs_dir(results_dir: Path) -> Path:
    """The folder that holds every cell of ``results_dir``."""
    return Path(results_dir) / RUNS_DIR


def cell_dir(results_dir: Path, cell: CellSpec | str) -> Path:
    """The folder of a cell (its spec or its id) under ``results_dir``."""
    return runs_dir(results_dir) / (cell.cell_id if isinstance(cell, CellSpec) else cell)


# -- writing ---------------------------------------------------------------------------------


def dumps(data: Any, **options: Any) -> str:
    """``json.dumps`` that refuses NaN and infinity: every JSON file ratbench writes is strict JSON."""
    return json.dumps(data, allow_nan=False, **options)


def _file_mode() -> int:
    """``0o666`` minus the process umask: the mode ``open()`` would give a new file."""
    try:  # Linux: read it without changing it (os.umask is the only portable way, and it writes)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file in the same folder, fsync, then rename into place.

    The file gets the mode a plain ``open()`` would give it (the umask's), not the 0600 of
    temporary files, so that shared results folders stay readable.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _file_mode())
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    """``atomic_write_text`` of indented strict JSON."""
    atomic_write_text(path, dumps(data, indent=2, sort_keys=True) + "\n")


def validate_metrics(data: Any) -> str | None:
    """Why ``data`` is not the content of a finished cell's ``metrics.json`` (None if it is)."""
    if not isinstance(data, dict):
        return f"expected a JSON object, got {type(data).__name__}"
    missing = [key for key in METRIC_KEYS if key not in data]
    if missing:
        return f"missing key(s) {', '.join(missing)}"
    if data.get("status") != "ok":
        return f"status is {data.get('status')!r}, not 'ok'"
    modes = data["modes"]
    if not isinstance(modes, dict) or any(not isinstance(modes.get(mode), dict) for mode in EVAL_MODES):
        return f"modes must hold the results of {' and '.join(EVAL_MODES)}"
    for mode in EVAL_MODES:
        for column in METRIC_COLUMNS:
            value = modes[mode].get(column, "missing")
            acceptable = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
            if not acceptable and not (column == "Acc" and value is None):  # post-hoc methods have no Acc
                return f"modes.{mode}.{column} is {value!r}, not a finite number"
    return None


def read_metrics(folder: Path) -> CellResult | None:
    """The installed ``metrics.json`` of a cell folder: None when there is none,
    ``CorruptResult`` when it does not parse or is not a finished result."""
    return _read_metrics_file(Path(folder) / METRICS_FILE)


def _read_metrics_file(path: Path) -> CellResult | None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CorruptResult(path, f"cannot be read ({exc.strerror or exc})") from None
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise CorruptResult(path, f"not valid JSON ({exc})") from None
    problem = validate_metrics(data)
    if problem is not None:
        raise CorruptResult(path, problem)
    return cast(CellResult, data)


def quarantine_corrupt(folder: Path) -> Path | None:
    """Rename a corrupt ``metrics.json`` to ``metrics.json.corrupt-<time>`` (kept for inspection,
    no longer "done"); return the new path, or None when the file is absent or valid."""
    try:
        read_metrics(folder)
        return None
    except CorruptResult as exc:
        target = exc.path.with_name(f"{METRICS_FILE}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}")
        try:
            os.replace(exc.path, target)
        except FileNotFoundError:  # moved meanwhile by another scheduler
            return None
        return target


def new_attempt(folder: Path) -> Path:
    """A fresh, empty attempt folder inside the cell folder: a run writes its files there and
    ``commit_attempt`` installs them only when the run has finished."""
    attempt = Path(folder) / f"{ATTEMPT_PREFIX}{uuid.uuid4().hex[:12]}"
    attempt.mkdir(parents=True)
    return attempt


def _replace(source: Path, target: Path) -> None:
    with contextlib.suppress(FileNotFoundError):  # already moved by a concurrent settle(): same end state
        os.replace(source, target)


def commit_attempt(attempt: Path) -> None:
    """Install a finished attempt (one whose ``metrics.json`` is written) as its cell's result.

    Its files replace the cell's, ``metrics.json`` last, so until that last rename the old
    result stays the cell's result; then the old result's error goes. Idempotent and
    safe to repeat from another process: a commit cut short is finished by ``settle``.
    """
    folder = attempt.parent
    for name in RESULT_FILES:
        _replace(attempt / name, folder / name)
    _replace(attempt / METRICS_FILE, folder / METRICS_FILE)
    (folder / ERROR_FILE).unlink(missing_ok=True)
    (folder / FAILED_EPOCHS_FILE).unlink(missing_ok=True)
    shutil.rmtree(attempt, ignore_errors=True)


def settle(folder: Path) -> None:
    """Finish any commit of a finished attempt that was cut short (a crash mid-commit)."""
    finished = sorted(Path(folder).glob(f"{ATTEMPT_PREFIX}*/{METRICS_FILE}"), key=lambda p: p.stat().st_mtime)
    for metrics in finished:
        commit_attempt(metrics.parent)


def discard_attempts(folder: Path, keep: Path | None = None) -> None:
    """Remove unfinished attempts left by dead runs (call only while holding the cell's claim)."""
    settle(folder)
    for attempt in Path(folder).glob(f"{ATTEMPT_PREFIX}*"):
        if attempt != keep:
            shutil.rmtree(attempt, ignore_errors=True)


def recover(folder: Path, stale_after: float = claims.DEFAULT_STALE_AFTER) -> None:
    """At the start of a run: finish a commit that a crash cut short, and drop the stale claim
    that a run killed between finishing the cell and releasing it left on a done cell."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    settle(folder)
    with contextlib.suppress(CorruptResult):
        if read_metrics(folder) is not None:
            claims.clear_stale_claim(folder, stale_after)


# -- reading (never writes) ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CellFolder:
    """A read-only view of one cell folder, as it will be once an interrupted commit is
    finished: a file of a finished but uninstalled attempt counts as the cell's."""

    path: Path

    @property
    def cell_id(self) -> str:
        """The folder's path below ``runs/`` (its cell id when it lies in a results folder)."""
        parts = self.path.parts
        return "/".join(parts[parts.index(RUNS_DIR) + 1 :]) if RUNS_DIR in parts else str(self.path)

    @functools.cached_property
    def _pending(self) -> Path | None:
        """The newest finished attempt that is not installed yet (None: there is none); looked up
        once per view, not once per file read."""
        finished = sorted(
            self.path.glob(f"{ATTEMPT_PREFIX}*/{METRICS_FILE}"), key=lambda p: (p.stat().st_mtime, str(p))
        )
        return finished[-1].parent if finished else None

    def file(self, name: str) -> Path:
        """Where the cell's file ``name`` is (it need not exist)."""
        pending = self._pending
        if pending is not None and (pending / name).exists():
            return pending / name
        return self.path / name

    def metrics(self) -> CellResult | None:
        """The finished result: None when there is none; ``CorruptResult`` when its
        ``metrics.json`` does not parse or is not a finished result."""
        return _read_metrics_file(self.file(METRICS_FILE))

    def result(self) -> CellResult:
        """The finished result of a cell known to be finished (``CorruptResult`` otherwise)."""
        result = self.metrics()
        if result is None:
            raise CorruptResult(self.file(METRICS_FILE), "missing (the cell is not finished)")
        return result

    def is_done(self) -> bool:
        """Whether the cell holds a valid finished result."""
        try:
            return self.metrics() is not None
        except CorruptResult:
            return False

    def spec_json(self) -> dict[str, Any]:
        """``spec.json`` as written (``OSError`` / ``ValueError`` when it cannot be read)."""
        return json.loads(self.file(SPEC_FILE).read_text(encoding="utf-8"))

    def spec(self) -> CellSpec:
        """The cell's spec."""
        return CellSpec.from_json(self.spec_json())

    def epoch_lines(self) -> list[str]:
        """The lines of ``epochs.jsonl`` ([] when there is none)."""
        path = self.file(EPOCHS_FILE)
        return path.read_text(encoding="utf-8").splitlines() if path.is_file() else []

    def rationales(self, mode: str | None = None) -> Iterator[dict[str, Any]]:
        """The per-example records of ``rationales.jsonl.gz`` (of one mode, when given)."""
        with gzip.open(self.file(RATIONALES_FILE), "rt", encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                if mode is None or record["mode"] == mode:
                    yield record

    def error(self) -> str | None:
        """The traceback of the last failed attempt, when the cell has no newer result."""
        if self._pending is not None:
            return None  # the finished attempt's commit removes error.txt
        path = self.path / ERROR_FILE
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else None


def cell_folder(results_dir: Path, cell: CellSpec | str) -> CellFolder:
    """The read-only view of a cell of ``results_dir``."""
    return CellFolder(cell_dir(results_dir, cell))


def _cell_folders(root: Path) -> list[CellFolder]:
    """Every folder below ``root`` that has a ``metrics.json``, installed or in a finished
    attempt (the attempt's folder is not a cell), sorted by path."""
    folders = set()
    for path in Path(root).glob(f"**/{METRICS_FILE}"):
        folder = path.parent
        folders.add(folder.parent if folder.name.startswith(ATTEMPT_PREFIX) else folder)
    return [CellFolder(folder) for folder in sorted(folders)]


def finished_cells(root: Path, on_corrupt: Callable[[CorruptResult], None] | None = None) -> list[CellFolder]:
    """Every finished cell below ``root`` (a valid ``metrics.json``), sorted by path.

    A ``metrics.json`` that is corrupt is skipped and passed to ``on_corrupt`` (e.g. to warn).
    """
    found = []
    for cell in _cell_folders(root):
        try:
            if cell.metrics() is not None:
                found.append(cell)
        except CorruptResult as exc:
            if on_corrupt is not None:
                on_corrupt(exc)
    return found


def finished_results(results_dir: Path, warn: Callable[[str], None] | None = None) -> list[CellFolder]:
    """The finished cells of a results folder; each corrupt one is named to ``warn`` in one line."""
    return finished_cells(runs_dir(results_dir), _warning(warn))


def find_cells(path: Path, warn: Callable[[str], None] | None = None) -> list[CellFolder]:
    """``path`` itself if it is a finished cell folder, else every finished cell below it (below
    ``path/runs`` for a results folder: the mlflow store's artifact copies are not cells); a
    corrupt ``metrics.json`` below ``path`` is skipped and reported to ``warn``."""
    cell = CellFolder(Path(path))
    if cell.file(METRICS_FILE).is_file():
        cell.metrics()  # a corrupt result raises CorruptResult: a one-line error
        return [cell]
    found = finished_results(path, warn) if runs_dir(path).is_dir() else finished_cells(path, _warning(warn))
    if not found:
        raise RatbenchError(f"no finished cell (a folder with a valid {METRICS_FILE}) in {path}")
    return found


def _warning(warn: Callable[[str], None] | None) -> Callable[[CorruptResult], None]:
    """An ``on_corrupt`` that names the corrupt file to ``warn`` in one line."""

    def on_corrupt(exc: CorruptResult) -> None:
        if warn is not None:
            warn(f"skipping {exc} (rerun the cell with `ratbench run`)")

    return on_corrupt


def failed_cells(results_dir: Path) -> list[tuple[str, str]]:
    """``(cell id, first line of error.txt)`` of every cell that failed and has no result."""
    failed = []
    for error in sorted(runs_dir(results_dir).glob(f"**/{ERROR_FILE}")):
        cell = CellFolder(error.parent)
        text = cell.error()
        if text is None or cell.file(METRICS_FILE).is_file():
            continue
        lines = text.strip().splitlines()
        failed.append((cell.cell_id, lines[0] if lines else "(no message)"))
    return failed


def corrupt_cells(results_dir: Path) -> list[tuple[str, str]]:
    """``(cell id, what is wrong)`` of every cell whose ``metrics.json`` is corrupt."""
    corrupt = []
    for cell in _cell_folders(runs_dir(results_dir)):
        try:
            cell.metrics()
        except CorruptResult as exc:
            corrupt.append((cell.cell_id, exc.reason))
    return corrupt


def is_done(results_dir: Path, spec: CellSpec) -> bool:
    """A cell is done exactly when its ``metrics.json`` is a valid finished result."""
    return cell_folder(results_dir, spec).is_done()


def status(results_dir: Path, spec: CellSpec, stale_after: float = claims.DEFAULT_STALE_AFTER) -> Status:
    """``done`` (a valid metrics.json), ``running`` (live claim), ``stale`` (abandoned claim),
    ``corrupt`` (a metrics.json that is not a valid result), ``failed`` (error.txt) or ``todo``."""
    cell = cell_folder(results_dir, spec)
    try:
        if cell.metrics() is not None:
            return "done"
        corrupt = False
    except CorruptResult:
        corrupt = True
    claim = claims.read_claim(cell.path)
    if claim is not None:
        return "stale" if claims.claim_is_stale(claim, stale_after) else "running"
    if corrupt:
        return "corrupt"
    if cell.error() is not None:
        return "failed"
    return "todo"
