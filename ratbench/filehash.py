"""Content hashes of data files, cached by path, size and modification time.

A dataset's fingerprint (part of every cell id) hashes the content of its files, so a copy of
the data on another machine gives the same cell ids and an edit that keeps size and mtime is
still seen. Hashing a large file takes seconds, so each hash is kept in a small JSON cache
(``$RATBENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/ratbench``, else ``~/.cache/ratbench``) under
the file's absolute path with its size, mtime, inode and ctime: an unchanged file is hashed
once, and any write to it (which sets its ctime, whatever is done to its mtime) hashes it
anew. An unwritable cache folder only costs the caching.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

CACHE_FILE = "sha256-cache.json"
_CHUNK = 1 << 20
_cache: dict[str, list] | None = None  # path -> [size, mtime_ns, inode, ctime_ns, sha256]
_dirty = False


def cache_dir() -> Path:
    """Where the hash cache lives."""
    if os.environ.get("RATBENCH_CACHE_DIR"):
        return Path(os.environ["RATBENCH_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ratbench"


def _load() -> dict[str, list]:
    global _cache
    if _cache is None:
        try:
            loaded = json.loads((cache_dir() / CACHE_FILE).read_text(encoding="utf-8"))
            _cache = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            _cache = {}
    return _cache


def save() -> None:
    """Write new cache entries to disk (atomically; failures are ignored: it is only a cache)."""
    global _dirty
    if not _dirty or _cache is None:
        return
    folder = cache_dir()
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{CACHE_FILE}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(_cache, handle)
            os.replace(tmp, folder / CACHE_FILE)
            _dirty = False
        finally:
            Path(tmp).unlink(missing_ok=True)


def file_sha256(path: Path) -> str:
    """The sha256 of ``path``'s content (from the cache when the file is unchanged)."""
    global _dirty
    path = Path(path).absolute()
    stat = path.stat()
    key = [stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns]
    cache = _load()
    entry = cache.get(str(path))
    if isinstance(entry, list) and len(entry) == len(key) + 1 and entry[:-1] == key:
        return str(entry[-1])
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    cache[str(path)] = [*key, digest.hexdigest()]
    _dirty = True
    return digest.hexdigest()


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
