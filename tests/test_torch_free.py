"""The commands that only read counts and files start without torch: importing their modules in
a fresh interpreter must not load it."""

from __future__ import annotations

import subprocess
import sys

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
