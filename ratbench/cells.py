"""Cell identity and the on-disk layout of one run.

A cell is one (method, resolved config, dataset, subset, seed). ``config_id`` hashes the spec
without its seed, so the seeds of one configuration share it; ``cell_id`` is
``method/dataset.subset/config_id/seedN`` and is also the cell's folder under ``runs/``:

    spec.json            the cell spec
    epochs.jsonl         one record per epoch (losses, dev metrics)
    rationales.jsonl.gz  per-example predicted masks, gold and labels, per mode
    metrics.json         installed last; a valid one means "done"
    error.txt            traceback of the last failed attempt (failed_epochs.jsonl: its epochs)
    claim.json           exists while a scheduler runs the cell (host, pid, its start, time)
    .attempt-<id>/       a run in progress: it writes the files above here, and they replace
                         the cell's only when it has finished (``commit_attempt``), so a crash
                         or Ctrl-C never costs the previous result
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from ratbench.config import stable_hash
from ratbench.errors import RatbenchError
from ratbench.types import EVAL_MODES, METRIC_COLUMNS

SPEC_FILE = "spec.json"
EPOCHS_FILE = "epochs.jsonl"
RATIONALES_FILE = "rationales.jsonl.gz"
METRICS_FILE = "metrics.json"
ERROR_FILE = "error.txt"
FAILED_EPOCHS_FILE = "failed_epochs.jsonl"
CLAIM_FILE = "claim.json"
TAKEOVER_FILE = ".claim.takeover"
ATTEMPT_PREFIX = ".attempt-"
EXPORT_DIR = "export"
# Installed from a finished attempt before metrics.json, which comes last: it marks the cell done.
RESULT_FILES = (SPEC_FILE, EPOCHS_FILE, RATIONALES_FILE)
TAKEOVER_TIMEOUT = 60.0  # seconds
DEFAULT_STALE_AFTER = 24 * 3600.0  # seconds after which any claim is presumed abandoned
METRIC_KEYS = ("cell_id", "config_id", "method", "dataset", "subset", "seed", "modes")
Status = Literal["todo", "done", "failed", "running", "stale", "corrupt"]
STATUSES: tuple[Status, ...] = ("todo", "done", "failed", "running", "stale", "corrupt")


class CorruptResult(RatbenchError):
    """A ``metrics.json`` that does not parse or lacks what a finished cell must record."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class CellSpec:
    """Everything that determines a cell's result (plain JSON values only)."""

    method: str
    method_version: str
    method_config: dict[str, Any]
    dataset: str
    dataset_version: str
    subset: str
    dataset_config: dict[str, Any]
    dataset_fingerprint: dict[str, Any]
    eval_version: str
    limit: int | None
    seed: int
    pipeline: dict[str, Any] = dataclasses.field(default_factory=dict)
    """``ratbench.versions.pipeline()``: the runner's version and result-changing constants."""
    variant: dict[str, Any] | None = dataclasses.field(default=None, compare=False)
    """What the user asked for (``ratbench.variants``): names the cell's table row. Not part of
    the identity: two requests that resolve to the same configuration are the same cell."""

    def identity(self) -> dict[str, Any]:
        """The spec without the seed and the variant: what ``config_id`` hashes."""
        data = dataclasses.asdict(self)
        del data["seed"], data["variant"]
        return data

    @property
    def config_id(self) -> str:
        """``c-`` + 10 hex digits of the sha256 of the canonical JSON of ``identity()``."""
        return "c-" + stable_hash(self.identity())

    @property
    def cell_id(self) -> str:
        """``method/dataset.subset/config_id/seedN``, also the cell's folder path."""
        return f"{self.method}/{self.dataset}.{self.subset}/{self.config_id}/seed{self.seed}"

    def to_json(self) -> dict[str, Any]:
        """The spec with its ids, as written to ``spec.json``."""
        return {**dataclasses.asdict(self), "config_id": self.config_id, "cell_id": self.cell_id}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CellSpec:
        """Inverse of ``to_json`` (the ids are recomputed, not trusted)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def cell_dir(results_dir: Path, spec: CellSpec) -> Path:
    """The folder of ``spec`` under ``results_dir``."""
    return Path(results_dir) / "runs" / spec.cell_id


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


# -- results: validation, attempts ---------------------------------------------------------


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


def read_metrics(folder: Path) -> dict[str, Any] | None:
    """The ``metrics.json`` of a cell folder: None when there is none, ``CorruptResult`` when
    it does not parse or is not a finished result."""
    path = Path(folder) / METRICS_FILE
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
    return data


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
    result stays the cell's result; then the old result's error and exports go. Idempotent and
    safe to repeat from another process: a commit cut short is finished by ``settle``.
    """
    folder = attempt.parent
    for name in RESULT_FILES:
        _replace(attempt / name, folder / name)
    _replace(attempt / METRICS_FILE, folder / METRICS_FILE)
    (folder / ERROR_FILE).unlink(missing_ok=True)
    (folder / FAILED_EPOCHS_FILE).unlink(missing_ok=True)
    shutil.rmtree(folder / EXPORT_DIR, ignore_errors=True)  # derived from the replaced result
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


def finished_cells(root: Path, on_corrupt: Callable[[CorruptResult], None] | None = None) -> list[Path]:
    """Every finished cell folder below ``root`` (a valid ``metrics.json``), sorted.

    A ``metrics.json`` that is corrupt is skipped and passed to ``on_corrupt`` (e.g. to warn).
    """
    found = []
    for path in sorted(Path(root).glob(f"**/{METRICS_FILE}")):
        if path.parent.name.startswith(ATTEMPT_PREFIX):
            continue  # an attempt not installed yet; settle() below installs a finished one
        settle(path.parent)
        try:
            if read_metrics(path.parent) is not None:
                found.append(path.parent)
        except CorruptResult as exc:
            if on_corrupt is not None:
                on_corrupt(exc)
    return found


def is_done(results_dir: Path, spec: CellSpec) -> bool:
    """A cell is done exactly when its ``metrics.json`` is a valid finished result."""
    folder = cell_dir(results_dir, spec)
    settle(folder)
    try:
        done = read_metrics(folder) is not None
    except CorruptResult:
        return False
    if done:  # a run killed between finishing the cell and releasing it left its claim
        clear_stale_claim(folder)
    return done


# -- claims ---------------------------------------------------------------------------------


def process_start(pid: int) -> str | None:
    """When process ``pid`` started, in the kernel's clock ticks since boot (Linux ``/proc``),
    or None where that cannot be read. With the pid it names one process: a pid reused by a
    later process has another start time."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # after "pid (comm)", which may contain spaces
    return fields[19] if len(fields) > 19 else None  # field 22 of proc(5): starttime


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except (OverflowError, ValueError):
        return False
    return True


def read_claim(folder: Path) -> dict[str, Any] | None:
    """The claim of a cell folder, or None if it has none (or it vanished meanwhile).

    A claim that cannot be read or lacks a valid host, pid and start time is returned as
    ``{"unreadable": True, "started": <file mtime>}``: it blocks the cell until it is stale.
    """
    path = folder / CLAIM_FILE
    try:
        raw = path.read_bytes()
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return None
    except OSError:
        return {"unreadable": True, "started": 0.0}
    try:
        claim = json.loads(raw)
        valid = (
            isinstance(claim, dict)
            and isinstance(claim.get("host"), str)
            and isinstance(claim.get("pid"), int)
            and not isinstance(claim.get("pid"), bool)
            and isinstance(claim.get("started"), int | float)
            and math.isfinite(claim["started"])
        )
    except (UnicodeDecodeError, ValueError):
        valid = False
    return claim if valid else {"unreadable": True, "started": mtime}


def claim_is_stale(claim: dict[str, Any], stale_after: float) -> bool:
    """A claim is stale when it is older than ``stale_after`` seconds (also an unreadable one,
    by its file's age), or when its process is no longer running on this host: dead, or its pid
    reused by a process that started later."""
    if time.time() - float(claim["started"]) >= stale_after:
        return True
    if claim.get("unreadable") or claim["host"] != socket.gethostname():
        return False
    if not _pid_alive(claim["pid"]):
        return True
    recorded, current = claim.get("pid_start"), process_start(claim["pid"])
    return recorded is not None and current is not None and recorded != current


def _create_exclusive(path: Path, data: dict[str, Any]) -> bool:
    """Create ``path`` with ``data`` unless it exists; readers never see a partial file."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(dumps(data), encoding="utf-8")
    try:
        os.link(tmp, path)  # atomic, and fails if the name exists (like O_EXCL)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def _my_claim() -> dict[str, Any]:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "pid_start": process_start(pid), "started": time.time()}


def try_claim(folder: Path, stale_after: float = DEFAULT_STALE_AFTER) -> bool:
    """Claim a cell for this process; take over a stale claim. Return whether we hold it.

    Two schedulers on one results folder never both hold a cell: the claim is created
    exclusively, and a stale claim is replaced only under a short-lived takeover lock.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path, lock = folder / CLAIM_FILE, folder / TAKEOVER_FILE
    mine = _my_claim()
    if _create_exclusive(path, mine):
        return True
    current = read_claim(folder)
    if current is None:  # released in the meantime
        return _create_exclusive(path, mine)
    if not claim_is_stale(current, stale_after):
        return False
    if not _create_exclusive(lock, mine):
        try:  # a takeover lock left by a killed scheduler expires after a minute
            if time.time() - lock.stat().st_mtime < TAKEOVER_TIMEOUT:
                return False
        except FileNotFoundError:
            return False
        lock.unlink(missing_ok=True)
        if not _create_exclusive(lock, mine):
            return False
    try:
        current = read_claim(folder)
        if current is not None and not claim_is_stale(current, stale_after):
            return False
        path.unlink(missing_ok=True)
        return _create_exclusive(path, mine)
    finally:
        lock.unlink(missing_ok=True)


def release_claim(folder: Path) -> None:
    """Remove this process's claim (a claim of another process is left alone)."""
    claim = read_claim(folder)
    if claim is not None and claim.get("pid") == os.getpid() and claim.get("host") == socket.gethostname():
        (folder / CLAIM_FILE).unlink(missing_ok=True)


def clear_stale_claim(folder: Path, stale_after: float = DEFAULT_STALE_AFTER) -> None:
    """Remove a stale claim (e.g. left by a run killed between finishing a cell and releasing
    it). It is taken over first, under the takeover lock, so a live claim is never removed."""
    claim = read_claim(folder)
    if claim is not None and claim_is_stale(claim, stale_after) and try_claim(folder, stale_after):
        release_claim(folder)


def status(results_dir: Path, spec: CellSpec, stale_after: float = DEFAULT_STALE_AFTER) -> Status:
    """``done`` (a valid metrics.json), ``running`` (live claim), ``stale`` (abandoned claim),
    ``corrupt`` (a metrics.json that is not a valid result), ``failed`` (error.txt) or ``todo``."""
    folder = cell_dir(results_dir, spec)
    settle(folder)
    try:
        if read_metrics(folder) is not None:
            return "done"
        corrupt = False
    except CorruptResult:
        corrupt = True
    claim = read_claim(folder)
    if claim is not None:
        return "stale" if claim_is_stale(claim, stale_after) else "running"
    if corrupt:
        return "corrupt"
    if (folder / ERROR_FILE).is_file():
        return "failed"
    return "todo"
