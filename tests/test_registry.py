"""Plugin discovery: built-in folders, entry points, duplicates, unknown names, cheap listing."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ratbench import registry
from ratbench.errors import RatbenchError
from ratbench.registry import DATASETS, METHODS, Registry


def _fresh_methods() -> Registry[type]:
    return Registry("methods", "register_method", "ratbench.method:Method", ("kind", "description", "version"))


def _fake_entry_points(monkeypatch: pytest.MonkeyPatch, group: str, entries: dict[str, str]) -> None:
    eps = [importlib.metadata.EntryPoint(name, value, group) for name, value in entries.items()]

    def entry_points(group: str = "") -> list[importlib.metadata.EntryPoint]:
        return [ep for ep in eps if ep.group == group]

    monkeypatch.setattr(registry.importlib.metadata, "entry_points", entry_points)


def test_builtin_plugins_are_found_under_private_names() -> None:
    """rnp, ver and synthetic come from the plugin folders, imported as ratbench._plugins.*."""
    assert {"rnp", "ver"} <= set(METHODS.names())
    assert "synthetic" in DATASETS.names()
    assert METHODS.check("ver").module == "ratbench._plugins.methods.ver"
    cls = METHODS.get("ver")
    assert cls.__module__ == "ratbench._plugins.methods.ver"
    assert cls.name == "ver" and cls.kind == "select_predict"
    assert "methods" not in sys.modules and "datasets" not in sys.modules


def test_unknown_name_suggests_and_lists() -> None:
    """An unknown name gives 'did you mean' and the list of available names."""
    with pytest.raises(RatbenchError, match=r"unknown method 'vre' \(did you mean 'ver'\?\); available: .*rnp.*ver"):
        METHODS.check("vre")
    with pytest.raises(RatbenchError, match=r"unknown dataset 'synthetc' \(did you mean 'synthetic'\?\)"):
        DATASETS.check("synthetc")


def test_entry_point_plugin_loads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A package's entry point in group ratbench.methods is listed and loads its class."""
    (tmp_path / "extplugin.py").write_text(
        textwrap.dedent(
            """
            from ratbench.method import Method

            class Mine(Method):
                kind = "post_hoc"
                description = "an external method"
                def train_epoch(self, batches): return {}
                def rationalize(self, batch, mode): raise NotImplementedError
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    _fake_entry_points(monkeypatch, "ratbench.methods", {"mine": "extplugin:Mine"})
    methods = _fresh_methods()
    assert "mine" in methods.names() and "rnp" in methods.names()
    assert methods.check("mine").origin.startswith("entry point")
    cls = methods.get("mine")
    assert cls.__name__ == "Mine" and cls.name == "mine"
    assert methods.check("mine").meta["kind"] == "post_hoc"


def test_entry_point_clashing_with_builtin_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two plugins with one name are an error naming both origins."""
    _fake_entry_points(monkeypatch, "ratbench.methods", {"rnp": "somewhere:Other"})
    with pytest.raises(RatbenchError, match=r"duplicate method name 'rnp': defined by builtin:methods/rnp.py"):
        _fresh_methods().names()


def test_entry_point_that_fails_to_import_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken external plugin is listed but using it raises a RatbenchError, not a traceback."""
    _fake_entry_points(monkeypatch, "ratbench.methods", {"broken": "no_such_module_xyz:Cls"})
    methods = _fresh_methods()
    assert "broken" in methods.names()
    with pytest.raises(RatbenchError, match=r"method plugin 'broken'.*failed to load"):
        methods.get("broken")


def test_decorator_rejects_taken_names_and_wrong_bases() -> None:
    """Registering a second 'rnp' or a non-Method class fails."""
    from ratbench.method import Method

    class Other(Method):
        def train_epoch(self, batches):  # type: ignore[no-untyped-def]
            return {}

        def rationalize(self, batch, mode):  # type: ignore[no-untyped-def]
            raise NotImplementedError

    with pytest.raises(RatbenchError, match="duplicate method name 'rnp'"):
        METHODS.register("rnp")(Other)
    with pytest.raises(RatbenchError, match="must be a subclass of Method"):
        METHODS.register("not_a_method")(dict)  # type: ignore[arg-type]
    METHODS.unregister("not_a_method")
    METHODS.register("other_test_method")(Other)
    try:
        assert METHODS.get("other_test_method") is Other
    finally:
        METHODS.unregister("other_test_method")


def test_ls_lists_plugins_without_importing_torch() -> None:
    """`ratbench ls` prints kinds, descriptions and subsets and never imports torch."""
    code = textwrap.dedent(
        """
        import sys
        from click.testing import CliRunner
        from ratbench.cli import main
        result = CliRunner().invoke(main, ["ls"])
        print(result.output)
        print("TORCH_IMPORTED" if "torch" in sys.modules else "TORCH_NOT_IMPORTED")
        sys.exit(result.exit_code)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "TORCH_NOT_IMPORTED" in out
    assert "rnp" in out and "ver" in out and "select_predict" in out
    assert "synthetic" in out and "appearance" in out
