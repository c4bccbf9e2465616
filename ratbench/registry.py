"""Registries of method and dataset plugins.

Plugins come from two places:

* the built-in plugin folders ``methods/`` and ``datasets/`` (shipped inside the wheel as
  ``ratbench._plugins.methods`` / ``ratbench._plugins.datasets``, never as top-level
  ``methods`` / ``datasets`` packages, which would shadow Hugging Face ``datasets``);
* installed packages that declare an entry point in the group ``ratbench.methods`` or
  ``ratbench.datasets`` (``name = "package.module:Class"``).

Built-in plugin files are indexed by reading their source (``ast``), so ``ratbench ls`` lists
names, kinds and descriptions without importing torch; a file is imported the first time its
plugin is used. A plugin class registers itself with the decorator of its kind::

    @register_method("rnp")
    class RNP(Method): ...

Binding a class (by its decorator, or on the first use of an undecorated entry point class)
checks that it subclasses its kind's base and that every scope of its presets can apply to some
cell (``ratbench.execution.grid.check_method_presets`` / ``check_dataset_presets``): a bad class is never
registered. Duplicate names are an error; an unknown name says "did you mean" and lists what exists.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from ratbench.errors import RatbenchError, did_you_mean

if TYPE_CHECKING:
    from ratbench.data.adapter import DatasetAdapter
    from ratbench.method import Method


class Plugin(Protocol):
    """What binding a plugin class relies on: the name the registry gives it."""

    name: ClassVar[str]


T = TypeVar("T", bound=type[Plugin])


@dataclass
class PluginInfo:
    """What is known about a plugin before (and after) it is imported."""

    name: str
    module: str  # import name, e.g. "ratbench._plugins.methods.rnp" or "pkg.mod"
    attr: str  # class name inside the module
    origin: str  # "builtin:<file>" or "entry point <dist>"
    meta: dict[str, Any] = field(default_factory=dict)  # kind, description, subsets


class Registry(Generic[T]):
    """Name -> plugin class for one plugin kind (methods or datasets)."""

    def __init__(
        self, kind: str, decorator: str, base: str, meta_keys: tuple[str, ...], presets_check: str = ""
    ) -> None:
        self.kind = kind  # "methods" or "datasets"
        self.decorator = decorator  # decorator name looked for in plugin sources
        self.base = base  # "module:Class" every plugin must subclass
        # "module:function" called as function(name, cls) on every class bound (imported lazily:
        # ratbench.execution.grid imports this module); it raises on preset scopes that no cell can read
        self.presets_check = presets_check
        self.meta_keys = meta_keys
        self.entry_point_group = f"ratbench.{kind}"
        self._infos: dict[str, PluginInfo] | None = None
        self._classes: dict[str, T] = {}

    # -- discovery -----------------------------------------------------------------------
    def infos(self) -> dict[str, PluginInfo]:
        """All known plugins by name (discovered once, then cached)."""
        if self._infos is None:
            infos: dict[str, PluginInfo] = {}
            for info in [*self._scan_builtin(), *self._scan_entry_points()]:
                if info.name in infos:
                    raise RatbenchError(
                        f"duplicate {self.kind[:-1]} name {info.name!r}: defined by "
                        f"{infos[info.name].origin} and by {info.origin}; rename one of them"
                    )
                infos[info.name] = info
            self._infos = infos
        return self._infos

    def _scan_builtin(self) -> list[PluginInfo]:
        from ratbench import _plugins

        folder = _plugins.folder(self.kind)
        if folder is None:
            return []
        found: list[PluginInfo] = []
        for path in sorted(folder.glob("*.py")):
            if path.name.startswith("_"):
                continue
            for name, attr, meta in self._read_plugin_source(path):
                found.append(
                    PluginInfo(
                        name=name,
                        module=f"{_plugins.__name__}.{self.kind}.{path.stem}",
                        attr=attr,
                        origin=f"builtin:{self.kind}/{path.name}",
                        meta=meta,
                    )
                )
        return found

    def _read_plugin_source(self, path: Path) -> list[tuple[str, str, dict[str, Any]]]:
        """Find ``@<decorator>("name")`` classes in a plugin file and their literal metadata."""
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found = []
        for node in tree.body:
            if not isinstance(node, ast.ClassDef):
                continue
            for deco in node.decorator_list:
                if not (isinstance(deco, ast.Call) and deco.args):
                    continue
                func = deco.func
                func_name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                if func_name != self.decorator or not isinstance(deco.args[0], ast.Constant):
                    continue
                name = deco.args[0].value
                if not isinstance(name, str):
                    continue
                meta: dict[str, Any] = {}
                for stmt in node.body:
                    if isinstance(stmt, ast.Assign):
                        target, value = stmt.targets[0], stmt.value
                    elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                        target, value = stmt.target, stmt.value
                    else:
                        continue
                    if isinstance(target, ast.Name) and target.id in self.meta_keys:
                        with contextlib.suppress(ValueError):
                            meta[target.id] = ast.literal_eval(value)
                if "description" not in meta:
                    doc = ast.get_docstring(node) or ""
                    meta["description"] = doc.strip().splitlines()[0] if doc.strip() else ""
                found.append((name, node.name, meta))
        return found

    def _scan_entry_points(self) -> list[PluginInfo]:
        found = []
        for ep in importlib.metadata.entry_points(group=self.entry_point_group):
            module, _, attr = ep.value.partition(":")
            dist = ep.dist.name if ep.dist is not None else "?"
            found.append(PluginInfo(ep.name, module.strip(), attr.strip(), f"entry point of {dist}"))
        return found

    # -- lookup --------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Sorted plugin names."""
        return sorted(self.infos())

    def check(self, name: str) -> PluginInfo:
        """Return the plugin's info, or raise a did-you-mean error listing every name."""
        infos = self.infos()
        if name not in infos:
            raise RatbenchError(
                f"unknown {self.kind[:-1]} {name!r}{did_you_mean(name, infos)}; "
                f"available: {', '.join(sorted(infos)) or '(none)'}"
            )
        return infos[name]

    def get(self, name: str) -> T:
        """Return the plugin class, importing its module on first use."""
        info = self.check(name)
        if name not in self._classes:
            builtin = info.origin.startswith("builtin:")
            try:
                module = importlib.import_module(info.module)
                cls = getattr(module, info.attr)
            except Exception as exc:
                if builtin:
                    raise
                raise RatbenchError(f"{self.kind[:-1]} plugin {name!r} ({info.origin}) failed to load: {exc}") from exc
            if self._classes.get(name) is not cls:  # not bound (and checked) by its decorator on import
                self._bind(name, cls)
        cls = self._classes[name]
        info.meta.update({k: getattr(cls, k) for k in self.meta_keys if hasattr(cls, k)})
        return cls

    def _bind(self, name: str, cls: T) -> None:
        module_name, _, attr = self.base.partition(":")
        base = getattr(importlib.import_module(module_name), attr)
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise RatbenchError(f"{self.kind[:-1]} plugin {name!r} must be a subclass of {attr}, got {cls!r}")
        bound = self._classes.get(name)
        if bound is not None and bound is not cls and bound.__qualname__ != cls.__qualname__:
            raise RatbenchError(f"duplicate {self.kind[:-1]} name {name!r}: {bound!r} and {cls!r}")
        if self.presets_check:
            module_name, _, attr = self.presets_check.partition(":")
            getattr(importlib.import_module(module_name), attr)(name, cls)
        cls.name = name
        self._classes[name] = cls

    def register(self, name: str) -> Callable[[T], T]:
        """Class decorator that registers a plugin under ``name``.

        Classes defined outside the plugin folders (a script, a test) are added to the
        registry; a name that is already taken by another plugin is an error. A class that fails
        the checks of binding leaves nothing registered.
        """

        def decorator(cls: T) -> T:
            infos = self.infos()
            info = infos.get(name)
            if info is not None and info.module != cls.__module__:
                raise RatbenchError(
                    f"duplicate {self.kind[:-1]} name {name!r}: {cls.__module__}.{cls.__qualname__} "
                    f"and {info.origin}; rename one of them"
                )
            self._bind(name, cls)
            if info is None:
                infos[name] = PluginInfo(name, cls.__module__, cls.__qualname__, f"module {cls.__module__}")
            return cls

        return decorator

    def unregister(self, name: str) -> None:
        """Remove a plugin (for tests that register throw-away plugins)."""
        self.infos().pop(name, None)
        self._classes.pop(name, None)


METHODS: Registry[type[Method[Any]]] = Registry(
    "methods",
    "register_method",
    "ratbench.method:Method",
    ("kind", "description", "version", "gold_label_at_test"),
    "ratbench.execution.grid:check_method_presets",
)
DATASETS: Registry[type[DatasetAdapter[Any]]] = Registry(
    "datasets",
    "register_dataset",
    "ratbench.data.adapter:DatasetAdapter",
    ("subsets", "description", "version"),
    "ratbench.execution.grid:check_dataset_presets",
)
register_method = METHODS.register
register_dataset = DATASETS.register
