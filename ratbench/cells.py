"""Cell identity and the on-disk layout of one run.

A cell is one (method, resolved config, dataset, subset, seed). ``config_id`` hashes the spec
without its seed, so the seeds of one configuration share it; ``cell_id`` is
``method/dataset.subset/config_id/seedN`` and is also the cell's folder under ``runs/``:

    spec.json            written first
    epochs.jsonl         one record per epoch (losses, dev metrics), appended
    rationales.jsonl.gz  per-example predicted masks, gold and labels, per mode
    metrics.json         written last and atomically; its presence means "done"
    error.txt            traceback of a failed attempt
    claim.json           exists while a scheduler runs the cell (host, pid, start time)
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Literal

from ratbench.config import stable_hash

SPEC_FILE = "spec.json"
EPOCHS_FILE = "epochs.jsonl"
RATIONALES_FILE = "rationales.jsonl.gz"
METRICS_FILE = "metrics.json"
ERROR_FILE = "error.txt"
CLAIM_FILE = "claim.json"
TAKEOVER_FILE = ".claim.takeover"
TAKEOVER_TIMEOUT = 60.0  # seconds
DEFAULT_STALE_AFTER = 24 * 3600.0  # seconds after which any claim is presumed abandoned
Status = Literal["todo", "done", "failed", "running", "stale"]


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

    def identity(self) -> dict[str, Any]:
        """The spec without the seed: what ``config_id`` hashes."""
        data = dataclasses.asdict(self)
        del data["seed"]
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


def finished_cells(root: Path) -> list[Path]:
    """Every finished cell folder (one holding ``metrics.json``) below ``root``, sorted."""
    return sorted(path.parent for path in Path(root).glob(f"**/{METRICS_FILE}"))


def is_done(results_dir: Path, spec: CellSpec) -> bool:
    """A cell is done exactly when its ``metrics.json`` exists."""
    return (cell_dir(results_dir, spec) / METRICS_FILE).is_file()


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file in the same folder, fsync, then rename into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    """``atomic_write_text`` of indented JSON (NaN is refused: it is not valid JSON)."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def read_claim(folder: Path) -> dict[str, Any] | None:
    """The claim of a cell folder, or None if it has none (or it vanished meanwhile)."""
    try:
        return json.loads((folder / CLAIM_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def claim_is_stale(claim: dict[str, Any], stale_after: float) -> bool:
    """A claim is stale when its process is dead on this host, or it is older than ``stale_after``."""
    if time.time() - float(claim.get("started", 0)) > stale_after:
        return True
    return claim.get("host") == socket.gethostname() and not _pid_alive(int(claim.get("pid", -1)))


def _create_exclusive(path: Path, data: dict[str, Any]) -> bool:
    """Create ``path`` with ``data`` unless it exists; readers never see a partial file."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    try:
        os.link(tmp, path)  # atomic, and fails if the name exists (like O_EXCL)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def try_claim(folder: Path, stale_after: float = DEFAULT_STALE_AFTER) -> bool:
    """Claim a cell for this process; take over a stale claim. Return whether we hold it.

    Two schedulers on one results folder never both hold a cell: the claim is created
    exclusively, and a stale claim is replaced only under a short-lived takeover lock.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path, lock = folder / CLAIM_FILE, folder / TAKEOVER_FILE
    mine = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
    if _create_exclusive(path, mine):
        return True
    current = read_claim(folder)
    if current is None or not claim_is_stale(current, stale_after):
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


def status(results_dir: Path, spec: CellSpec, stale_after: float = DEFAULT_STALE_AFTER) -> Status:
    """``done`` (metrics.json), ``running`` (live claim), ``stale`` (abandoned claim),
    ``failed`` (error.txt) or ``todo``."""
    folder = cell_dir(results_dir, spec)
    if (folder / METRICS_FILE).is_file():
        return "done"
    claim = read_claim(folder)
    if claim is not None:
        return "stale" if claim_is_stale(claim, stale_after) else "running"
    if (folder / ERROR_FILE).is_file():
        return "failed"
    return "todo"
