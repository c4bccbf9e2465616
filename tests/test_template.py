"""The select-then-predict template (``methods/_family.py``) carries a new method in a few lines:
a multi-generator toy (MGR-style: three selectors, one predictor, summed losses) written on it
runs through the runner; built-in plugins import ``ratbench.api`` only."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
from conftest import tiny_batches, tiny_examples, tiny_method
from test_method_contract import check_contract
from torch import nn

from ratbench import _plugins
from ratbench.api import (
    RNP_PRESETS,
    Batch,
    ConfigValueError,
    Forward,
    Presets,
    SelectPredict,
    TransformerOptions,
    blocks,
    register_method,
)
from ratbench.data.batching import train_batches
from ratbench.execution import grid
from ratbench.execution.runner import prepare_data, run_cell
from ratbench.registry import METHODS


class ToyMGR(SelectPredict):
    """Three selectors share one predictor; each selector's rationale adds its cross-entropy and
    regularizers to one loss. At test, the first selector's rationale."""

    kind = "select_predict"
    description = "toy multi-generator rationalizer"

    @dataclasses.dataclass(frozen=True)
    class Config(SelectPredict.Config):
        generators: int = 3
        """Number of selectors."""

    presets: ClassVar[Presets] = RNP_PRESETS

    def build_model(self) -> nn.Module:
        model = super().build_model()
        cfg = self.config
        model.others = nn.ModuleList(
            blocks.make_selector(self.info, cfg.hidden_dim, cfg.dropout, TransformerOptions())
            for _ in range(cfg.generators - 1)
        )
        return model

    def losses(self, batch: Batch, forward: Forward) -> dict[str, torch.Tensor]:
        terms = super().losses(batch, forward)
        for selector in self.model.others:
            more = super().losses(batch, self.forward(batch, selector))
            terms = {name: terms[name] + more[name] for name in terms}
        return terms


@pytest.fixture
def toy_mgr() -> Iterator[type]:
    yield register_method("toy_mgr")(ToyMGR)
    METHODS.unregister("toy_mgr")


def test_a_multi_generator_method_is_short_and_runs_through_the_runner(
    toy_mgr: type, toy_dataset: type, tmp_path: Path
) -> None:
    assert len(inspect.getsource(ToyMGR).splitlines()) < 70
    [spec] = grid.expand(["toy_mgr"], ["toy"], [1], preset="demo", epochs=2, sets={"toy": {"n": "24"}})
    metrics = run_cell(spec, tmp_path)
    assert set(metrics["modes"]) == {"reference", "clean"}
    assert 0 < metrics["modes"]["clean"]["S"] <= 100


def test_every_selector_of_the_toy_trains(toy_mgr: type, toy_dataset: type, tmp_path: Path) -> None:
    """The summed loss reaches all three selectors and the one predictor; the contract holds."""
    [spec] = grid.expand(["toy_mgr"], ["toy"], [1], preset="demo", epochs=1, sets={"toy": {"n": "24"}})
    data = prepare_data(spec)
    method = ToyMGR(ToyMGR.Config.resolve(spec.method_config), data.info, torch.device("cpu"))
    before = {k: v.clone() for k, v in method.model.state_dict().items()}
    method.train_epoch(train_batches(data.splits["train"], 8, np.random.default_rng(0)))
    changed = {k.split(".")[0] for k, v in method.model.state_dict().items() if not torch.equal(before[k], v)}
    assert changed == {"selector", "others", "predictor"}
    others = {k.split(".")[1] for k, v in method.model.state_dict().items() if k.startswith("others.")}
    assert others == {"0", "1"}
    check_contract("toy_mgr", "word", None, tmp_path)  # type: ignore[arg-type]


def _imports(path: Path) -> list[str]:
    """The modules a file imports: absolute names, and relative ones as ``.name``."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append("." * node.level + (node.module or ""))
    return names


def test_builtin_plugins_import_the_api_only() -> None:
    """Plugin files and their ``_*`` helpers import no ratbench module but ``ratbench.api``, so
    internal moves do not break them; relative imports stay inside the plugin folder."""
    folder = _plugins.folder("methods")
    assert folder is not None
    for path in sorted(folder.glob("*.py")):
        internal = [name for name in _imports(path) if name.startswith("ratbench") and name != "ratbench.api"]
        assert not internal, f"methods/{path.name} imports {internal}; import them from ratbench.api"
        for name in _imports(path):
            if name.startswith("."):
                assert (folder / f"{name.lstrip('.')}.py").is_file(), f"methods/{path.name}: {name}"


def test_each_builtin_method_file_registers_one_method() -> None:
    folder = _plugins.folder("methods")
    assert folder is not None
    for path in sorted(folder.glob("[!_]*.py")):
        registered = [name for name, info in METHODS.infos().items() if info.origin == f"builtin:methods/{path.name}"]
        assert len(registered) == 1, f"methods/{path.name} registers {registered}"


@pytest.mark.parametrize("name", ["ver", "a2i"])
def test_fr_and_dr_are_flags_of_the_rnp_family(name: str) -> None:
    """``share_encoder`` gives the predictor the selector's encoder (no GRU of its own, one
    Adam entry per weight); ``dis_lr=1`` moves the predictor's learning rate with the batch."""
    method = tiny_method(name, share_encoder=True, dis_lr=1.0)
    assert not any(n.startswith("predictor.encoder") for n, _ in method.model.named_parameters())
    stepped = [p for group in method.optimizers[0].param_groups for p in group["params"]]
    assert len(stepped) == len({id(p) for p in stepped})
    [coupled] = [group for group in method.optimizers[0].param_groups if group.get("coupled")]
    method.train_epoch(tiny_batches(tiny_examples(8)))
    assert coupled["lr"] != coupled["base_lr"] and coupled["base_lr"] == method.config.lr / getattr(
        method.config, "pred_lr_rate", 1.0
    )


def test_the_fr_and_dr_flags_leave_earlier_cell_ids_alone() -> None:
    """At their neutral values the flags stay out of the stored config (so out of the id): an
    RNP cell keeps the id it had before they existed; set, they are in it, and the stored config
    resolves back to the same config either way."""
    [plain] = grid.expand(["rnp"], ["synthetic.aroma"], [1], preset="demo")
    assert "share_encoder" not in plain.method_config and "dis_lr" not in plain.method_config
    [coupled] = grid.expand(["rnp"], ["synthetic.aroma"], [1], preset="demo", sets={"rnp": {"dis_lr": "1"}})
    assert coupled.method_config["dis_lr"] == 1.0 and coupled.config_id != plain.config_id
    config = METHODS.get("rnp").Config.resolve(plain.method_config)
    assert (config.share_encoder, config.dis_lr) == (False, 0.0)
    assert config.identity_dict() == plain.method_config
    [fr] = grid.expand(["fr"], ["synthetic.aroma"], [1], preset="demo")
    assert fr.method_config["share_encoder"] is True  # FR's default is not the neutral value


RNP_FAMILY = [name for name in METHODS.names() if issubclass(METHODS.get(name), METHODS.get("rnp"))]


@pytest.mark.parametrize("name", RNP_FAMILY)
def test_every_rnp_family_method_honours_or_refuses_the_fr_and_dr_flags(name: str) -> None:
    """A method built on RNP either trains with FR's sharing and DR's coupling, or refuses them
    with a config error naming the flag; never ignores them."""
    cls = METHODS.get(name)
    for flag, value in (("share_encoder", True), ("dis_lr", 1.0)):
        if flag in cls.Config.refused_flags:
            with pytest.raises(ConfigValueError, match=f"^{flag} is not supported"):
                cls.Config(**{flag: value})
            continue
        extra = {"teacher_epochs": 1} if "teacher_epochs" in cls.Config.field_types() else {}
        method = tiny_method(name, **{flag: value}, **extra)
        if flag == "share_encoder":
            assert not any(n.startswith("predictor.encoder.encoder") for n, _ in method.model.named_parameters())
            assert any(isinstance(m, blocks.NormedEncoder) for m in method.model.predictor.modules())
        coupled = [g for g in method.optimizers[0].param_groups if g.get("coupled")]
        assert np.isfinite(method.train_epoch(tiny_batches(tiny_examples(8)))["loss"])
        if flag == "dis_lr":
            assert coupled and all(g["lr"] != g["base_lr"] for g in coupled)
