"""Files a command writes at a path the user gave (``show --html``, ``report --out``, ``plot --out``,
``table --out``): atomically, through a symlink to its target, never over something that is not
a regular file, and without leaving temporary files behind.

A temporary file in the target's folder is written and then renamed over the target, so a kill
leaves the previous file intact; a symlink keeps pointing at its target, which gets the new
content; a FIFO, a device node or a folder at the path is refused with one line (replacing it
would destroy it). Temporary files of earlier writes that were killed before their rename
(``.<name>.*.tmp*`` older than ``STALE_TEMP_SECONDS``) are removed on the next write.
"""

from __future__ import annotations

import os
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ratbench.errors import RatbenchError

STALE_TEMP_SECONDS = 600  # a write takes seconds; older temporary files were left by a kill


def _cannot_write(what: str, exc: OSError) -> RatbenchError:
    return RatbenchError(f"cannot write {what}: {exc.strerror or exc}")


def output_target(path: Path, option: str = "--out", what: str | None = None) -> Path:
    """The file a write to ``path`` should replace: ``path`` itself, or the final target of a
    symlink; raises ``RatbenchError`` if something other than a regular file is there, or if the
    path cannot be looked at (``cannot write WHAT: ...``, ``what`` defaulting to the path)."""
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        return target
    except OSError as exc:
        raise _cannot_write(what or str(path), exc) from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a FIFO, a device or a socket)"
        raise RatbenchError(f"{option} {path}: {kind}; give the path of a file to write")
    return target


def _remove_stale_temps(target: Path) -> None:
    now = time.time()
    for leftover in target.parent.glob(f".{target.name}.*.tmp*"):
        try:
            if now - leftover.stat().st_mtime > STALE_TEMP_SECONDS:
                leftover.unlink()
        except OSError:
            pass  # removed by another process, or not ours to remove


def write_output(path: Path, write: Callable[[Path], None], option: str = "--out", what: str | None = None) -> Path:
    """Write a user-named output file atomically: ``write(tmp)`` fills a temporary file in the
    target's folder, which then replaces the target (see the module docstring). Returns the
    file written (the symlink's target for a symlink). An ``OSError`` becomes one
    ``RatbenchError`` line, ``cannot write WHAT: reason`` (``what`` defaults to the path)."""
    target = output_target(path, option, what)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(target)
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=f".tmp{target.suffix}")
    except OSError as exc:
        raise _cannot_write(what or str(path), exc) from None
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # the mode a plain open() gives, not mkstemp's 0600
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _cannot_write(what or str(path), exc) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def write_output_text(path: Path, text: str, option: str = "--out", what: str | None = None) -> Path:
    """``write_output`` of a text (UTF-8), fsynced before the rename."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())

    return write_output(path, write, option, what)
