"""Preset scopes are checked when a plugin's class is bound (its decorator, or its first use):
a scope that no cell reads (a typo such as ``hotle``) refuses the registration with one line
naming the plugin, the preset and the scope, and leaves nothing registered."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner
from conftest import Toy

from ratbench.cli import main
from ratbench.errors import RatbenchError
from ratbench.execution import grid
from ratbench.method import Method, Presets
from ratbench.registry import DATASETS, METHODS

VALID_SCOPES = ("*", "beer", "beer.appearance", "hf/*", "hf/eraser.fever")


def make_method(presets: dict[str, Any] | None = None, data_presets: dict[str, Any] | None = None) -> type[Method]:
    """A throw-away method class with these preset tables."""

    class ScopeMethod(Method):
        def train_epoch(self, batches):  # type: ignore[no-untyped-def]
            return {}

        def rationalize(self, batch, mode):  # type: ignore[no-untyped-def]
            raise NotImplementedError

    ScopeMethod.presets = presets or {}
    ScopeMethod.data_presets = data_presets or {}
    return ScopeMethod


@contextmanager
def registered(registry: Any, name: str, cls: type) -> Iterator[type]:
    """Register ``cls`` as ``name`` for the duration of the block."""
    registry.register(name)(cls)
    try:
        yield cls
    finally:
        registry.unregister(name)


def refused(registry: Any, name: str, cls: type) -> str:
    """The one-line error of registering ``cls`` as ``name``, after checking that nothing of it
    stayed registered."""
    with pytest.raises(RatbenchError) as raised:
        registry.register(name)(cls)
    assert name not in registry.infos() and name not in registry._classes
    assert "\n" not in str(raised.value)
    return str(raised.value)


def test_method_preset_typo_is_refused_at_registration() -> None:
    method = make_method(presets={"paper": {"*": {}, "hotle": {"epochs": 3}}})
    assert refused(METHODS, "scope_typo", method) == (
        "method scope_typo: preset paper has an unknown scope 'hotle' (did you mean 'hotel'?); a scope is *, "
        "a dataset (beer, eraser, hotel, movies_wordpiece, synthetic), dataset.subset, or one of those after "
        "an encoder prefix such as hf/"
    )
    result = CliRunner().invoke(main, ["ls"])  # the registry is left clean
    assert result.exit_code == 0, result.stderr
    assert "scope_typo" not in result.stdout


def test_data_preset_typo_is_refused_at_registration() -> None:
    method = make_method(data_presets={"demo": {"hf/eraser.fevr": {"max_len": 64}}})
    assert refused(METHODS, "scope_typo", method).startswith(
        "method scope_typo: preset demo of data_presets has an unknown scope 'hf/eraser.fevr' "
        "(did you mean 'hf/eraser.fever'?); eraser has the subsets fever, multirc, movies, boolq, "
        "evidence_inference; a scope is *"
    )


@pytest.mark.parametrize(
    ("scope", "detail"),
    [
        ("word/*", "(word cells read the scopes without a prefix)"),
        ("gpt/beer", "encoder prefix such as hf/"),
        ("beer.apperance", "(did you mean 'beer.appearance'?); beer has the subsets appearance, aroma, palate"),
        ("not_installed", "unknown scope 'not_installed'"),  # a dataset that is not registered
        ("not_installed.main", "unknown scope 'not_installed.main'"),
        ("hf/", "unknown scope 'hf/'"),
        ("beer.", "unknown scope 'beer.'"),
    ],
)
def test_other_bad_method_scopes(scope: str, detail: str) -> None:
    message = refused(METHODS, "scope_typo", make_method(presets={"paper": {scope: {}}}))
    assert message.startswith("method scope_typo: preset paper has an unknown scope")
    assert detail in message


def test_dataset_preset_with_an_unknown_subset_is_refused() -> None:
    class ScopeToy(Toy):
        presets: ClassVar[Presets] = {"demo": {"*": {"n": 8}, "mian": {"n": 4}}}

    assert refused(DATASETS, "scopetoy", ScopeToy) == (
        "dataset scopetoy: preset demo has an unknown scope 'mian' (did you mean 'main'?); "
        "a dataset preset's scope is * or one of its subsets (main)"
    )


def test_a_dataset_preset_scope_is_not_a_method_scope() -> None:
    """A dataset's own presets are scoped by subset only: ``toy.main`` would never apply."""

    class ScopeToy(Toy):
        presets: ClassVar[Presets] = {"paper": {"scopetoy.main": {"n": 8}}}

    assert "unknown scope 'scopetoy.main'" in refused(DATASETS, "scopetoy", ScopeToy)


def test_valid_scopes_register_and_run(toy_dataset: type) -> None:
    tables = {"paper": {scope: {} for scope in VALID_SCOPES}, "demo": {"*": {}, "toy": {}, "hf/toy.main": {}}}
    method = make_method(presets=tables, data_presets=tables)

    class ScopeToy(Toy):
        presets: ClassVar[Presets] = {"paper": {"*": {"n": 8}, "main": {"n": 8}}}

    with registered(METHODS, "scope_ok", method), registered(DATASETS, "scopetoy", ScopeToy):
        specs = grid.expand(["scope_ok"], ["toy", "scopetoy"], [1])
        assert [spec.dataset for spec in specs] == ["toy", "scopetoy"]
        assert specs[1].dataset_config["n"] == 8
        result = CliRunner().invoke(main, ["ls"])
        assert result.exit_code == 0, result.stderr
        assert "scope_ok" in result.stdout and "scopetoy" in result.stdout


@pytest.mark.parametrize("name", METHODS.names())
def test_every_builtin_method_passes(name: str) -> None:
    METHODS.get(name)  # binding it checks its scopes


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_builtin_dataset_passes(name: str) -> None:
    DATASETS.get(name)
