"""Mirror finished cells into mlflow (optional extra: ``pip install 'ratbench[mlflow]'``).

The results folder is the source of truth; mlflow is a mirror of it. Each finished cell
(a folder with ``metrics.json``) becomes exactly one FINISHED mlflow run in the experiment
``ratbench/<dataset>``, named after the cell id and tagged ``ratbench.cell_id``:

- params: ``spec.json`` flattened with dots (``method_config.lr``), values as JSON text;
- metrics: every numeric field of ``epochs.jsonl`` with ``step`` = epoch, and the final
  numbers of ``metrics.json`` (``reference.F1``, ``clean.S``, ``data.n_test``, ``wall_seconds``);
- artifacts: the cell's files (``rationales.jsonl.gz``, ``spec.json``, ``epochs.jsonl``,
  ``metrics.json``).

Logging is idempotent: a cell whose FINISHED run already holds the same ``metrics.json`` (by
hash) is skipped, so grids and ``ratbench sync-mlflow`` never duplicate runs. A broken or
unreachable store never loses a result or stops a grid: the tracker warns once, stops
mirroring, and ``ratbench sync-mlflow`` backfills later.

mlflow is imported lazily, inside functions: ``import ratbench.execution.tracking`` works without it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import math
import os
import re
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from ratbench.errors import RatbenchError
from ratbench.execution import store

EXPERIMENT_PREFIX = "ratbench/"
DB_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
TAG_CELL_ID = "ratbench.cell_id"
TAG_CONFIG_ID = "ratbench.config_id"
TAG_METRICS_HASH = "ratbench.metrics_sha256"
ARTIFACT_FILES = (store.SPEC_FILE, store.EPOCHS_FILE, store.METRICS_FILE, store.RATIONALES_FILE)
TRUNCATED = "...[truncated]"
LOCK_TIMEOUT = 300.0  # seconds to wait for the sqlite writer lock before giving up
LOCKED_RETRIES = 6  # attempts on "database is locked" (backoff 0.2 s, 0.4 s, ... 3.2 s)

Outcome = Literal["logged", "skipped", "failed"]
_logger = logging.getLogger(__name__)


class TrackingWarning(UserWarning):
    """Mirroring a cell into mlflow failed; the result itself is safe on disk."""


class _CellError(Exception):
    """The cell folder cannot be read (not finished, bad JSON): a per-cell failure."""


def default_tracking_uri(results_dir: Path) -> str:
    """``$MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<absolute results_dir>/mlflow.db``."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return "sqlite:///" + (Path(results_dir).absolute() / DB_FILE).as_posix()


def redact_uri(uri: str) -> str:
    """The URI without a password (``scheme://user:***@host``), for messages."""
    return re.sub(r"^([a-zA-Z][\w+.-]*://[^/:@]*):[^/@]*@", r"\1:***@", uri)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (``None`` for other stores and ``:memory:``)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///") :].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts to one level with dotted keys; an empty dict stays a leaf (``{}``)."""
    if not isinstance(data, dict) or (not data and prefix):
        return {prefix: data}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _key(name: str, limit: int = 250) -> str:
    """A valid mlflow param/metric key: disallowed characters become ``_``, at most ``limit`` long."""
    return re.sub(r"[^/\w.\- ]", "_", name)[:limit]


def param_value(value: Any, limit: int) -> str:
    """A param value as text (strings as is, the rest as JSON), cut to ``limit`` characters.

    A longer value keeps its first ``limit - 14`` characters followed by ``...[truncated]``:
    mlflow refuses (or silently cuts) values over its limit (6000 characters in mlflow >= 2.x).
    The full value is always in the ``spec.json`` artifact.
    """
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - len(TRUNCATED)] + TRUNCATED


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _final_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """``<mode>.<name>`` for both evaluation modes, ``data.*`` and the timings; None is skipped."""
    found = flatten(metrics.get("modes") or {})
    found |= {f"data.{k}": v for k, v in flatten(metrics.get("data", {})).items()}
    found |= {k: metrics.get(k) for k in ("seconds_per_epoch", "wall_seconds", "epochs")}
    return {_key(k): float(v) for k, v in found.items() if _numeric(v)}


def _finished_ms(metrics: dict[str, Any], metrics_path: Path) -> int:
    try:
        return int(dt.datetime.strptime(metrics["finished_at"], "%Y-%m-%dT%H:%M:%S%z").timestamp() * 1000)
    except (KeyError, TypeError, ValueError):
        return int(metrics_path.stat().st_mtime * 1000)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}".rstrip(": ")


class _Cell:
    """What one finished cell folder holds, read up front (before touching the store)."""

    def __init__(self, folder: Path | store.CellFolder) -> None:
        self.cell = folder if isinstance(folder, store.CellFolder) else store.CellFolder(Path(folder))
        self.folder = self.cell.path
        metrics_path = self.cell.file(store.METRICS_FILE)
        try:
            raw = metrics_path.read_bytes()
            self.metrics: dict[str, Any] = json.loads(raw)
            self.spec: dict[str, Any] = self.cell.spec_json()
            self.epochs = [json.loads(line) for line in self.cell.epoch_lines() if line.strip()]
        except (OSError, ValueError) as exc:
            raise _CellError(f"cannot read finished cell {self.folder}: {_one_line(exc)}") from exc
        self.metrics_hash = hashlib.sha256(raw).hexdigest()
        self.cell_id = str(self.spec.get("cell_id") or self.metrics.get("cell_id"))
        self.dataset = str(self.spec.get("dataset") or self.metrics.get("dataset"))
        self.end_ms = _finished_ms(self.metrics, metrics_path)
        wall = self.metrics.get("wall_seconds")
        self.start_ms = self.end_ms - int(1000 * wall) if _numeric(wall) and math.isfinite(wall) else self.end_ms

    def tags(self) -> dict[str, str]:
        get = lambda key: self.spec.get(key, self.metrics.get(key))  # noqa: E731
        tags = {
            TAG_CELL_ID: self.cell_id,
            TAG_CONFIG_ID: get("config_id"),
            TAG_METRICS_HASH: self.metrics_hash,
            "method": get("method"),
            "dataset": get("dataset"),
            "subset": get("subset"),
            "seed": get("seed"),
            "kind": self.metrics.get("kind"),
            "ratbench.version": self.metrics.get("versions", {}).get("ratbench"),
            "ratbench.cell_dir": str(self.folder.absolute()),
        }
        return {k: str(v) for k, v in tags.items() if v is not None}

    def params(self, limit: int) -> dict[str, str]:
        return {_key(k): param_value(v, limit) for k, v in flatten(self.spec).items()}

    def epoch_metrics(self) -> list[tuple[str, float, int]]:
        found = []
        for position, record in enumerate(self.epochs, start=1):
            step = record.get("epoch", position)
            step = int(step) if _numeric(step) else position
            found += [(_key(k), float(v), step) for k, v in flatten(record).items() if k != "epoch" and _numeric(v)]
        return found


@contextlib.contextmanager
def _file_lock(path: Path, timeout: float) -> Iterator[None]:
    """An exclusive lock on ``path`` shared by every process on this host (POSIX ``flock``)."""
    try:
        import fcntl
    except ImportError:  # Windows: no inter-process lock; the "database is locked" retries remain
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"waited {timeout:.0f}s for the tracking store lock {path}") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _is_locked_error(exc: BaseException) -> bool:
    return "database is locked" in str(exc) or "database table is locked" in str(exc)


class Tracker:
    """Mirrors finished cells of one results folder into one mlflow tracking store.

    Writers to a sqlite store take an exclusive lock file next to the database
    (``mlflow.db.lock``), so several processes (grids, ``sync-mlflow``) can log at once: the
    store is created once, by whoever comes first, and writes never collide. "database is
    locked" (e.g. from a reader such as ``mlflow ui``) is retried with backoff.

    Failure policy: ``mirror`` never raises. A failure is reported once per tracker, to
    ``warn`` (one line; default: a ``TrackingWarning``), naming the URI and ``ratbench
    sync-mlflow``; after a store failure the tracker stops trying (``disabled``) unless
    ``stop_after_failure=False``, so an unreachable server cannot slow a grid down. An
    unreadable cell folder is a failure of that cell only.
    """

    def __init__(
        self,
        results_dir: Path,
        uri: str | None = None,
        *,
        stop_after_failure: bool = True,
        lock_timeout: float = LOCK_TIMEOUT,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.results_dir = Path(results_dir)
        self.warn_callback = warn
        self.uri = uri or default_tracking_uri(self.results_dir)
        self.stop_after_failure = stop_after_failure
        self.lock_timeout = lock_timeout
        self.disabled = False
        self.warned = False
        self._client: Any = None
        self._experiments: dict[str, str] = {}
        db = sqlite_path(self.uri)
        self._db = db if db is None or db.is_absolute() else db.absolute()

    def mirror(self, cell_dir: Path | store.CellFolder) -> Outcome:
        """Mirror one finished cell: ``logged``, ``skipped`` (already mirrored) or ``failed``."""
        if self.disabled:
            return "failed"
        try:
            cell = _Cell(cell_dir)
        except _CellError as exc:
            self._warn(f"{exc}; not mirrored to mlflow")
            return "failed"
        try:
            import mlflow  # noqa: F401  (the slow import happens before taking the store lock)

            return self._with_retries(cell)
        except Exception as exc:  # a broken store must never crash a grid
            self.disabled = self.stop_after_failure
            reason = f"mlflow tracking to {redact_uri(self.uri)} failed for {cell.cell_id} ({_one_line(exc)})"
            self._warn(f"{reason}; the result is safe on disk: run `ratbench sync-mlflow` later to backfill")
            return "failed"

    def mirror_all(self, folders: Sequence[Path | store.CellFolder]) -> dict[Outcome, int]:
        """Mirror every finished cell of ``folders`` that the store does not hold yet; return the
        count of each outcome. One search per experiment finds the cells already mirrored, so a
        sweep over a large grid costs no query per cell."""
        counts: dict[Outcome, int] = {"logged": 0, "skipped": 0, "failed": 0}
        readable: list[_Cell] = []
        for folder in folders:
            try:
                readable.append(_Cell(folder))
            except _CellError as exc:
                self._warn(f"{exc}; not mirrored to mlflow")
                counts["failed"] += 1
        present = self._mirrored({cell.dataset for cell in readable}) if readable and not self.disabled else set()
        for cell in readable:
            if (cell.cell_id, cell.metrics_hash) in present:
                counts["skipped"] += 1
            else:
                counts[self.mirror(cell.cell)] += 1
        return counts

    def _mirrored(self, datasets: set[str]) -> set[tuple[str, str]]:
        """``(cell_id, metrics hash)`` of every FINISHED run in the experiments of ``datasets``
        (empty when the store cannot be read: ``mirror`` then reports the failure per cell)."""
        found: set[tuple[str, str]] = set()
        try:
            import mlflow  # noqa: F401

            with self._locked():
                client = self.client()
                for dataset in sorted(datasets):
                    experiment = client.get_experiment_by_name(EXPERIMENT_PREFIX + dataset)
                    token = None
                    while experiment is not None:
                        page = client.search_runs(
                            [experiment.experiment_id],
                            filter_string="attributes.status = 'FINISHED'",
                            max_results=1000,
                            page_token=token,
                        )
                        found |= {(r.data.tags.get(TAG_CELL_ID), r.data.tags.get(TAG_METRICS_HASH)) for r in page}
                        token = page.token
                        if not token:
                            break
        except Exception as exc:  # reported by the per-cell attempts that follow
            _logger.debug("cannot list mirrored runs: %s", exc)
            return set()
        return found

    def _warn(self, message: str) -> None:
        if self.warned:
            _logger.warning(message)
        elif self.warn_callback is not None:
            self.warned = True
            self.warn_callback(message)
        else:
            self.warned = True
            warnings.warn(message, TrackingWarning, stacklevel=3)

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        if self._db is None:
            return contextlib.nullcontext()
        return _file_lock(self._db.with_name(self._db.name + ".lock"), self.lock_timeout)

    def _with_retries(self, cell: _Cell) -> Outcome:
        for attempt in range(LOCKED_RETRIES):
            try:
                with self._locked():
                    return self._mirror(cell)
            except Exception as exc:
                if attempt == LOCKED_RETRIES - 1 or not _is_locked_error(exc):
                    raise
                time.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    def client(self) -> Any:
        """The ``MlflowClient`` (created, with its store, on first use)."""
        if self._client is None:
            from mlflow import MlflowClient

            if self._db is not None:
                self._db.parent.mkdir(parents=True, exist_ok=True)
            client = MlflowClient(tracking_uri=self.uri)
            client.search_experiments(max_results=1)  # creates/migrates a sqlite store now, under the lock
            self._client = client
        return self._client

    def experiment_id(self, dataset: str) -> str:
        """The id of experiment ``ratbench/<dataset>``, created (or restored) on first use."""
        name = EXPERIMENT_PREFIX + dataset
        if name in self._experiments:
            return self._experiments[name]
        client = self.client()
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            location = None
            if self._db is not None:  # artifacts next to the database, not in ./mlruns of the cwd
                location = (self._db.parent / ARTIFACTS_DIR / _key(dataset)).as_uri()
            try:
                experiment_id = client.create_experiment(name, artifact_location=location)
            except Exception:  # created meanwhile by another process
                experiment = client.get_experiment_by_name(name)
                if experiment is None:
                    raise
                experiment_id = experiment.experiment_id
        else:
            experiment_id = experiment.experiment_id
            if experiment.lifecycle_stage == "deleted":
                client.restore_experiment(experiment_id)
        self._experiments[name] = experiment_id
        return experiment_id

    def _mirror(self, cell: _Cell) -> Outcome:
        from mlflow.entities import Metric, Param, RunStatus

        try:
            from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH as limit
        except ImportError:  # pragma: no cover - very old mlflow
            limit = 500

        client = self.client()
        experiment_id = self.experiment_id(cell.dataset)
        cell_filter = "tags.`{}` = '{}'".format(TAG_CELL_ID, cell.cell_id.replace("'", "\\'"))
        existing = client.search_runs([experiment_id], filter_string=cell_filter, max_results=100)
        current = [
            run
            for run in existing
            if run.info.status == RunStatus.to_string(RunStatus.FINISHED)
            and run.data.tags.get(TAG_METRICS_HASH) == cell.metrics_hash
        ]
        if current:
            return "skipped"
        for run in existing:  # a crashed earlier attempt, or the mirror of an older result (--force)
            client.delete_run(run.info.run_id)

        run = client.create_run(experiment_id, start_time=cell.start_ms, tags=cell.tags(), run_name=cell.cell_id)
        run_id = run.info.run_id
        try:
            ms = cell.end_ms
            params = [Param(k, v) for k, v in cell.params(limit).items()]
            metrics = [Metric(k, v, ms, step) for k, v, step in cell.epoch_metrics()]
            metrics += [Metric(k, v, ms, 0) for k, v in _final_metrics(cell.metrics).items()]
            client.log_batch(run_id, metrics=metrics, params=params, synchronous=True)
            for name in ARTIFACT_FILES:
                if cell.cell.file(name).is_file():
                    client.log_artifact(run_id, str(cell.cell.file(name)))
            client.set_terminated(run_id, "FINISHED", end_time=cell.end_ms)
        except BaseException:
            with contextlib.suppress(Exception):  # the next attempt deletes it and logs anew
                client.set_terminated(run_id, "FAILED")
            raise
        return "logged"


def sync(results_dir: Path, uri: str | None = None, warn: Callable[[str], None] | None = None) -> tuple[int, int, int]:
    """Backfill every finished cell of ``results_dir`` into mlflow: ``(logged, skipped, failed)``.

    Raises ``RatbenchError`` when mlflow is not installed or there is no ``runs/`` folder; a
    broken store warns once and counts the cells it did not reach as failed. A corrupt
    ``metrics.json`` is no finished cell: it is reported to ``warn`` and not mirrored.
    """
    try:
        import mlflow  # noqa: F401
    except ImportError as exc:
        raise RatbenchError("mlflow is not installed: pip install 'ratbench[mlflow]'") from exc
    if not store.runs_dir(results_dir).is_dir():
        raise RatbenchError(f"no {store.RUNS_DIR}/ folder under {results_dir}: nothing to sync")
    tracker = Tracker(results_dir, uri, warn=warn)
    counts = tracker.mirror_all(store.finished_results(results_dir, warn))
    return counts["logged"], counts["skipped"], counts["failed"]
