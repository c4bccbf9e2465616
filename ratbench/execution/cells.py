"""Cell identity.

A cell is one (method, resolved config, dataset, subset, seed). ``config_id`` hashes the spec
without its seed, so the seeds of one configuration share it; ``cell_id`` is
``method/dataset.subset/config_id/seedN`` and is also the cell's folder under the results
folder's ``runs/`` (``ratbench.execution.store`` owns that folder and its files).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ratbench.config import stable_hash


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
    """What the user asked for (``ratbench.execution.variants``): names the cell's table row. Not part of
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
