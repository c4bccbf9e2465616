"""The commands that only read counts and files start without torch: importing their modules in
a fresh interpreter must not load it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# The plugin API too: plugins import it, and ``ratbench ls`` lists them without torch.
MODULES = [
    "ratbench.reporting.viewer",
    "ratbench.data.check",
    "ratbench.reporting.export",
    "ratbench.counts",
    "ratbench.api",
]


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_without_torch(module: str) -> None:
    code = f"import sys, {module}\nassert 'torch' not in sys.modules, 'importing {module} loaded torch'\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, (
        f"`import {module}` must not load torch (nor fail) in a fresh interpreter; stderr:\n{result.stderr}"
    )


@pytest.mark.slow
def test_show_renders_a_finished_cell_without_loading_torch(tmp_path: Path) -> None:
    """`ratbench show` reads the cell's rationales and the dataset's test split (the same
    `--limit` subset as the run, from the data layer): a second of torch import saved."""
    from conftest import tiny_synthetic_specs

    from ratbench.execution.launch import run_cells

    assert run_cells(tiny_synthetic_specs([1]), tmp_path, echo=lambda _: None).ok
    code = (
        "import sys\nfrom ratbench.cli import main\n"
        f"main(['show', {str(tmp_path)!r}, '--limit', '1'], standalone_mode=False)\n"
        "assert 'torch' not in sys.modules, 'ratbench show loaded torch'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "-- rnp seed1: predicted" in result.stdout
