"""Golden results: one tiny cell per built-in method must give exactly the metrics recorded in
``tests/golden/word_metrics.json``, so that refactors of the data layer, the blocks or the
runner cannot change a GRU result unnoticed.

The figures are float results of training, so they are compared only on the torch version and
CPU model they were recorded with (elsewhere the test is skipped, saying why). To record them
anew after an intended change: ``RATBENCH_UPDATE_GOLDEN=1 pytest tests/test_golden_metrics.py``.

Each method's ``version`` is recorded beside its figures. A method's cells go stale only when its
version changes, and VER, A2I, DMR, NIR-RNP... inherit RNP's code: so recording figures that
differ from the recorded ones is refused while the method's version is unchanged (bump it), and a
version that differs from the recorded one fails on any machine until the figures are recorded
again.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import pytest
import torch

from ratbench.execution import grid
from ratbench.execution.runner import run_cell
from ratbench.registry import METHODS

GOLDEN = Path(__file__).parent / "golden" / "word_metrics.json"
SETS = {"toy": {"n": "24"}, "lime": {"num_samples": "40"}}


def _machine() -> dict[str, str]:
    cpu = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")), "")
    return {"torch": torch.__version__, "cpu": cpu or platform.processor(), "machine": platform.machine()}


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def _metrics(name: str, tmp_path: Path) -> dict:
    sets = {key: value for key, value in SETS.items() if key in ("toy", name)}
    [spec] = grid.expand([name], ["toy"], [1], preset="demo", epochs=2, sets=sets)
    return run_cell(spec, tmp_path / name)["modes"]


BUILTIN = [name for name in METHODS.names() if METHODS.infos()[name].origin.startswith("builtin:")]


@pytest.mark.parametrize("name", BUILTIN)
def test_word_level_results_are_the_recorded_ones(name: str, toy_dataset: type, tmp_path: Path) -> None:
    version = METHODS.get(name).version
    golden = json.loads(GOLDEN.read_text()) if GOLDEN.is_file() else {"machine": _machine(), "methods": {}}
    versions = golden.setdefault("versions", {})
    if os.environ.get("RATBENCH_UPDATE_GOLDEN"):
        got, recorded = _metrics(name, tmp_path), golden["methods"].get(name)
        if golden["machine"] == _machine() and recorded is not None and _part(got, recorded) != recorded:
            assert versions.get(name) != version, (
                f"{name}'s results changed but its version is still {version!r}: bump {name}'s `version` "
                "(so that cells run with the old code become stale), then record again"
            )
        golden["machine"] = _machine()
        golden["methods"][name], versions[name] = got, version
        GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
        return
    assert name in golden["methods"], f"no golden metrics for {name}: record them (see the module docstring)"
    assert versions.get(name) == version, (
        f"{name} is version {version!r}, its golden metrics were recorded at {versions.get(name)!r}: "
        "record them again (see the module docstring)"
    )
    if golden["machine"] != _machine():
        pytest.skip(f"golden metrics were recorded on {golden['machine']}, this is {_machine()}")
    recorded = golden["methods"][name]
    # Every recorded figure is reproduced exactly (figures added since may come on top).
    assert _part(_metrics(name, tmp_path), recorded) == recorded, (
        f"{name}'s results changed; if that is intended, bump its `version` and record again"
    )


def _part(got: dict, recorded: dict) -> dict:
    """The figures of ``got`` that ``recorded`` has."""
    return {mode: {key: got[mode].get(key) for key in recorded[mode]} for mode in recorded}
