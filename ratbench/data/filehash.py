"""Content hashes of data files, cached by path, size and modification time.

A dataset's fingerprint (part of every cell id) hashes the content of its files, so a copy of
the data on another machine gives the same cell ids and an edit that keeps size and mtime is
still seen. Hashing a large file takes seconds, so each hash is kept in a small JSON cache
(``$RATBENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/ratbench``, else ``~/.cache/ratbench``) under
the file's absolute path with its size, mtime, inode and ctime: an unchanged file is hashed
once, and any write to it (which sets its ctime, whatever is done to its mtime) hashes it
anew. An unwritable cache folder only costs the caching.

Hashing only fills the cache in memory; whoever computes hashes writes them back with
:func:`save` when it is done (``ratbench run`` after expanding its grid, ``ratbench show``
after checking its files), so that a pure step such as ``grid.expand`` writes nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

CACHE_FILE = "sha256-cache.json"
_CHUNK = 1 << 20


def cache_dir() -> Path:
    """Where the hash cache lives."""
    if os.environ.get("RATBENCH_CACHE_DIR"):
        return Path(os.environ["RATBENCH_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ratbench"


class HashCache:
    """The content hashes of files by absolute path, read from ``cache_dir()`` on first use and
    written back by :meth:`save` (only when a hash was added)."""

    def __init__(self) -> None:
        self._entries: dict[str, list[Any]] | None = None  # path -> [size, mtime_ns, inode, ctime_ns, sha256]
        self._dirty = False

    def _load(self) -> dict[str, list[Any]]:
        if self._entries is None:
            try:
                loaded = json.loads((cache_dir() / CACHE_FILE).read_text(encoding="utf-8"))
                self._entries = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError):
                self._entries = {}
        return self._entries

    def save(self) -> None:
        """Write new cache entries to disk (atomically; failures are ignored: it is only a cache)."""
        if not self._dirty or self._entries is None:
            return
        folder = cache_dir()
        with contextlib.suppress(OSError):
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{CACHE_FILE}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(self._entries, handle)
                os.replace(tmp, folder / CACHE_FILE)
                self._dirty = False
            finally:
                Path(tmp).unlink(missing_ok=True)

    def file_sha256(self, path: Path) -> str:
        """The sha256 of ``path``'s content (from the cache when the file is unchanged)."""
        path = Path(path).absolute()
        stat = path.stat()
        key = [stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns]
        entries = self._load()
        entry = entries.get(str(path))
        if isinstance(entry, list) and len(entry) == len(key) + 1 and entry[:-1] == key:
            return str(entry[-1])
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        entries[str(path)] = [*key, digest.hexdigest()]
        self._dirty = True
        return digest.hexdigest()


CACHE = HashCache()
"""The process's cache: every hash below goes through it; ``save()`` writes it back."""


def save() -> None:
    """Write the new entries of the process's cache to disk (``HashCache.save``)."""
    CACHE.save()


def file_sha256(path: Path) -> str:
    """The sha256 of ``path``'s content (from the cache when the file is unchanged)."""
    return CACHE.file_sha256(path)


def folder_sha256(path: Path) -> str:
    """One sha256 over the relative names and content hashes of every file below ``path``."""
    path = Path(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path).as_posix()}\0{file_sha256(file)}\n".encode())
    return digest.hexdigest()


def content_sha256(path: Path) -> str:
    """``file_sha256`` of a file, ``folder_sha256`` of a folder."""
    return folder_sha256(path) if Path(path).is_dir() else file_sha256(path)
