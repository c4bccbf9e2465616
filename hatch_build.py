"""Build hook: ship the plugin folders inside the wheel, never as top-level packages.

``methods/`` and ``datasets/`` become ``ratbench/_plugins/methods`` and
``ratbench/_plugins/datasets`` in a regular wheel. Editable installs are left alone: there
``ratbench._plugins`` mounts the folders from the checkout, so edits take effect at once.
"""

from __future__ import annotations

from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class PluginFoldersHook(BuildHookInterface):
    """Force-include the plugin folders in standard (non-editable) wheels."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        """Add the folders for the ``standard`` wheel build."""
        if version != "standard":
            return
        for kind in ("methods", "datasets"):
            build_data["force_include"][f"{self.root}/{kind}"] = f"ratbench/_plugins/{kind}"
