"""Claims: which scheduler runs a cell right now.

A claim is ``claim.json`` in the cell folder (host, pid, the process's start time, when it was
taken). It is created exclusively, so two schedulers on one results folder never both hold a
cell; a claim whose process is gone (on this host) or that is older than ``stale_after`` seconds
is stale and may be taken over, under a short-lived takeover lock.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

CLAIM_FILE = "claim.json"
TAKEOVER_FILE = ".claim.takeover"
TAKEOVER_TIMEOUT = 60.0  # seconds
DEFAULT_STALE_AFTER = 24 * 3600.0  # seconds after which any claim is presumed abandoned


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
    tmp.write_text(json.dumps(data), encoding="utf-8")
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
