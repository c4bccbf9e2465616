"""A built wheel, installed (not editable) in a fresh virtual environment, lists every plugin
and does not install top-level `methods` / `datasets` packages."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ratbench.registry import DATASETS, METHODS

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_in_fresh_venv_lists_plugins(tmp_path: Path) -> None:
    """Build with hatchling (no network), install with --no-deps, list plugins from there."""
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            str(REPO),
        ],
        check=True,
    )
    [wheel] = dist.glob("ratbench-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", str(wheel)],
        check=True,
    )
    assert (venv / "bin" / "ratbench").is_file()
    # Listing needs no third-party package: run it outside the checkout, in the fresh venv.
    code = textwrap.dedent(
        """
        import importlib.util, json
        from ratbench.registry import DATASETS, METHODS
        from ratbench.execution.paper_grids import load_grids
        from ratbench.reporting.published import load_published
        from importlib import resources
        import tomllib
        claims = resources.files("ratbench").joinpath("resources", "paper_claims.toml").read_text()
        print(json.dumps({
            "grids": sorted(load_grids()),
            "published": sorted(load_published()[1]),
            "claims": len(tomllib.loads(claims)["claims"]),
            "methods": METHODS.names(),
            "datasets": DATASETS.names(),
            "origin": METHODS.check("rnp").origin,
            "top_level": [n for n in ("methods", "datasets") if importlib.util.find_spec(n)],
            "plugin_file": importlib.util.find_spec("ratbench._plugins.methods.rnp").origin,
        }))
        """
    )
    out = subprocess.run([str(python), "-I", "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    listed = json.loads(out.stdout)
    assert listed["methods"] == METHODS.names() and "ver" in listed["methods"]
    assert listed["datasets"] == DATASETS.names() and "synthetic" in listed["datasets"]
    assert listed["origin"] == "builtin:methods/rnp.py"
    assert listed["grids"] == listed["published"] == ["table1", "table2", "table3"] and listed["claims"] == 4
    assert listed["top_level"] == []
    assert (
        listed["plugin_file"].startswith(str(venv))
        and "site-packages/ratbench/_plugins/methods" in listed["plugin_file"]
    )
