"""The package's layers (README, "Architecture"): no module imports a layer above its own, so
the folders keep reading like the architecture."""

from __future__ import annotations

import ast
from pathlib import Path

import ratbench

PACKAGE = Path(ratbench.__file__).parent
LAYERS = ["core", "data", "evaluation", "execution", "reporting", "front"]
FRONT = {"cli", "__main__", "api"}  # the entry points: may import every layer
CONTRACTS = {"registry": "data"}  # binds plugins to the adapter contract in data/adapter.py


def layer_of(module: str) -> str:
    """The layer of ``ratbench.<...>`` module ``module`` (dotted, without the ``ratbench.``)."""
    top = module.split(".")[0]
    if top in LAYERS:
        return top
    return "front" if top in FRONT else "core"


def imported(path: Path) -> set[str]:
    """The ratbench modules ``path`` imports (at the top, in functions, under TYPE_CHECKING)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ratbench"):
            base = node.module.removeprefix("ratbench").lstrip(".")
            found |= {f"{base}.{alias.name}".lstrip(".") for alias in node.names} if not base else {base}
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("ratbench.") for a in node.names if a.name.startswith("ratbench.")}
    return found


def test_no_module_imports_a_layer_above_its_own() -> None:
    """core < data, evaluation < execution < reporting < front (cli, api)."""
    rank = {"core": 0, "data": 1, "evaluation": 1, "execution": 2, "reporting": 3, "front": 4}
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "_plugins" in path.parts:
            continue
        module = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        own = CONTRACTS.get(module, layer_of(module))
        for target in imported(path):
            other = layer_of(target)
            if rank[other] > rank[own] or (rank[other] == rank[own] and other != own):
                wrong.append(f"{module} ({own}) imports {target} ({other})")
    assert wrong == []
