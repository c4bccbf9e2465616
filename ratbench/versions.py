"""Versions of the shared machinery, which enter every cell's identity (no torch import).

Bump ``EVAL_VERSION`` when the evaluator's numbers change for the same predictions, and
``PIPELINE_VERSION`` when the runner, batching or encoding change the result of the same
config (training loop, model selection, seeding order). Cells of an older version get new
ids, and tables hide the old ones as stale. Constants that change results and belong to no
config are listed in ``pipeline()`` by value, so changing one changes every cell id.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Any

EVAL_VERSION = "2"  # 2: acc_gold_rationale pools the predictor over the gold positions (reference)
PIPELINE_VERSION = "3"  # 3: a repeated GloVe word takes its last line (2: attempts, non-finite checks, ...)
LIMIT_SHUFFLE_SEED = 0  # --limit keeps the same examples whatever the run seed


DEVICE_KINDS = ("cpu", "cuda")


def pipeline(precision: str = "fp32", cpu_threads: int = 1, device_kind: str = "cpu") -> dict[str, Any]:
    """The pipeline part of a cell's identity: ``precision`` (``fp32``, or ``bf16`` autocast)
    and ``cpu_threads``, torch's intra-op thread count, which changes the order of float
    reductions and so, after a few epochs, the numbers (measured: 3 demo epochs of RNP give
    Acc 55.0 with one thread and 54.2 with two).

    ``device_kind`` (``cpu`` or ``cuda``; the kind, not the GPU index, which changes nothing)
    enters only when it is not ``cpu``: a GPU computes other numbers (other kernels, other RNG
    streams), so its cells are other cells, while CPU cells keep the ids they had before the
    device was recorded (a spec without ``device`` is a CPU cell). A ``cuda`` cell also names
    its TF32 policy, ``tf32: False``: the runner turns TF32 off for cuBLAS and cuDNN (cuDNN RNNs
    default to TF32), so that "fp32" cells compute in IEEE fp32."""
    if device_kind not in DEVICE_KINDS:
        raise ValueError(f"device_kind must be one of {DEVICE_KINDS}, got {device_kind!r}")
    identity: dict[str, Any] = {
        "version": PIPELINE_VERSION,
        "limit_shuffle_seed": LIMIT_SHUFFLE_SEED,
        "precision": precision,
        "cpu_threads": cpu_threads,
    }
    if device_kind != "cpu":
        identity |= {"device": device_kind, "tf32": False}
    return identity


@functools.cache
def source_revision() -> str | None:
    """The git revision of the ratbench checkout this code runs from (``abc123def456``, with
    ``+dirty`` when tracked files differ from it), or None outside a git checkout."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=False)

    try:
        head = git("rev-parse", "--short=12", "HEAD")
        if head.returncode != 0 or not (root / ".git").exists():
            return None
        dirty = git("diff", "--quiet", "HEAD", "--").returncode != 0
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty else "")
