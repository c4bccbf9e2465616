"""Cell identity and the on-disk layout of one run.

A cell is one (method, resolved config, dataset, subset, seed). ``config_id`` hashes the spec
without its seed, so the seeds of one configuration share it; ``cell_id`` is
``method/dataset.subset/config_id/seedN`` and is also the cell's folder under ``runs/``:

    spec.json            written first
    epochs.jsonl         one record per epoch (losses, dev metrics), appended
    rationales.jsonl.gz  per-example predicted masks, gold and labels, per mode
    metrics.json         written last and atomically; its presence means "done"
    error.txt            traceback of a failed attempt
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ratbench.config import stable_hash

SPEC_FILE = "spec.json"
EPOCHS_FILE = "epochs.jsonl"
RATIONALES_FILE = "rationales.jsonl.gz"
METRICS_FILE = "metrics.json"
ERROR_FILE = "error.txt"


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
