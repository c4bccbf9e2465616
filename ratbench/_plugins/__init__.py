"""Home of the built-in plugin packages ``ratbench._plugins.methods`` and ``.datasets``.

In a built wheel the top-level ``methods/`` and ``datasets/`` folders are shipped here as real
sub-packages. In a source checkout (or an editable install) they stay at the repository root,
and this module mounts them under the same private names, so plugin modules have one import
name everywhere and ``methods`` / ``datasets`` never become top-level import names.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

KINDS = ("methods", "datasets")


def folder(kind: str) -> Path | None:
    """The folder holding the built-in plugins of ``kind``, or None if there is none."""
    inside = Path(__file__).parent / kind
    if (inside / "__init__.py").is_file():
        return inside
    checkout = Path(__file__).resolve().parents[2] / kind
    if (checkout / "__init__.py").is_file():
        return checkout
    return None


def _mount(kind: str) -> None:
    path = folder(kind)
    name = f"{__name__}.{kind}"
    # Nothing to do in the wheel layout, where the folder is a normal sub-package.
    if path is None or name in sys.modules or path.parent == Path(__file__).parent:
        return
    spec = importlib.util.spec_from_file_location(name, path / "__init__.py", submodule_search_locations=[str(path)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


for _kind in KINDS:
    _mount(_kind)
