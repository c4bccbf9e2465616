"""Dataset fingerprints hash file content, cached by path, size and mtime."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ratbench.data import filehash
from ratbench.execution import grid


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RATBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(filehash, "CACHE", filehash.HashCache())
    return tmp_path / "cache"


def _hotel_fingerprint(root: Path) -> dict:
    adapter = grid.build_adapter("hotel", "cleanliness", sets={"hotel": {"annotation_file": "ann.tsv"}}, data_dir=root)
    return adapter.fingerprint()


def test_a_copy_elsewhere_keeps_the_fingerprint_and_an_edit_changes_it(shared_data: Path, tmp_path: Path) -> None:
    """Copying the data (new path, new mtime) keeps the cell ids; editing one byte changes them,
    even when size and mtime are restored and the old hash is in the cache."""
    source = shared_data / "hotel" / "hotel_Cleanliness.annotated.tsv"
    first, second = tmp_path / "a" / "hotel", tmp_path / "b" / "hotel"
    for folder in (first, second):
        folder.mkdir(parents=True)
        shutil.copy(source, folder / "ann.tsv")
    original = _hotel_fingerprint(first.parent)
    assert original["files"] and _hotel_fingerprint(second.parent) == original

    target = second / "ann.tsv"
    stat = target.stat()
    data = bytearray(target.read_bytes())
    data[-2] = ord("1") if data[-2] == ord("0") else ord("0")
    target.write_bytes(bytes(data))
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert target.stat().st_size == stat.st_size and target.stat().st_mtime_ns == stat.st_mtime_ns
    assert _hotel_fingerprint(second.parent) != original  # the cache entry is keyed on the ctime too


def test_hashes_are_computed_once_and_cached_on_disk(fresh_cache: Path, tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "data.txt"
    path.write_text("hello\n")
    digest = filehash.file_sha256(path)
    assert digest == "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
    filehash.save()
    monkeypatch.setattr(filehash, "CACHE", filehash.HashCache())
    monkeypatch.setattr(filehash.hashlib, "sha256", lambda: pytest.fail("hashed again"))
    assert filehash.file_sha256(path) == digest  # from the cache file


def test_an_unwritable_cache_only_costs_the_caching(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("RATBENCH_CACHE_DIR", str(blocker / "sub"))
    monkeypatch.setattr(filehash, "CACHE", filehash.HashCache())
    path = tmp_path / "x"
    path.write_text("x")
    assert len(filehash.file_sha256(path)) == 64
    filehash.save()  # no exception


def test_a_folder_hash_covers_names_and_contents(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_text("1")
    before = filehash.folder_sha256(tmp_path / "d")
    (tmp_path / "d" / "b").write_text("")
    assert filehash.folder_sha256(tmp_path / "d") != before


def test_expanding_a_grid_writes_no_cache_until_the_caller_saves(
    fresh_cache: Path, shared_data: Path, tmp_path: Path
) -> None:
    """``grid.expand`` fingerprints the data files but leaves writing the hashes to its caller."""
    folder = tmp_path / "data" / "hotel"
    folder.mkdir(parents=True)
    shutil.copy(shared_data / "hotel" / "hotel_Cleanliness.annotated.tsv", folder / "ann.tsv")
    sets = {"hotel": {"annotation_file": "ann.tsv"}}
    [spec] = grid.expand(
        ["rnp"], ["hotel.cleanliness"], [1], sets=sets, data_dir=folder.parent, on_missing=lambda _: None
    )
    assert spec.dataset_fingerprint["files"]
    assert not (fresh_cache / filehash.CACHE_FILE).exists()
    filehash.save()
    assert str((folder / "ann.tsv").absolute()) in (fresh_cache / filehash.CACHE_FILE).read_text()
