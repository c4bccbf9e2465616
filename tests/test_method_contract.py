"""The method contract, checked for every registered method on a tiny dataset on CPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ratbench.data.batching import eval_batches, train_batches
from ratbench.errors import RatbenchError
from ratbench.evaluation.evaluator import binarize
from ratbench.execution import cells, grid
from ratbench.execution.runner import prepare_data, run_cell, seed_everything
from ratbench.registry import METHODS

SETS = {"toy": {"n": "24"}}


def _built(name: str, spec: cells.CellSpec) -> tuple:
    data = prepare_data(spec)
    cls = METHODS.get(name)
    method = cls(cls.Config.resolve(spec.method_config), data.info, torch.device("cpu"))
    return method, data


@pytest.mark.parametrize("encoder", ["word", "hf"])
@pytest.mark.parametrize("name", METHODS.names())
def test_method_contract(
    name: str, encoder: str, toy_dataset: type, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    check_contract(name, encoder, request, tmp_path)


def check_contract(name: str, encoder: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The contract of method ``name`` on the ``toy`` dataset (the ``toy_dataset`` fixture must be
    active), on both encoders: shapes and dtypes, no padding or special token in a rationale,
    state_dict round trip, same seed same metrics; or, for a method that has no transformer
    form, a clear refusal before any cell. Also used for the README's example method."""
    sets = SETS
    if encoder == "hf":
        sets = {**SETS, "data": {"encoder": f"hf:{request.getfixturevalue('tiny_hf_model')}"}}
        if "hf" not in METHODS.get(name).encoders:
            with pytest.raises(RatbenchError, match=f"method {name} runs on the word encoder only"):
                grid.expand([name], ["toy"], [1], preset="demo", epochs=2, sets=sets)
            return
    [spec] = grid.expand([name], ["toy"], [1], preset="demo", epochs=2, sets=sets)
    seed_everything(1)
    method, data = _built(name, spec)
    losses = method.train_epoch(train_batches(data.splits["train"], 8, np.random.default_rng(0)))
    assert losses and all(np.isfinite(v) for v in losses.values())
    batch = next(eval_batches(data.splits["test"], 16))
    for mode in ("reference", "clean"):
        out = method.rationalize(batch, mode)
        if METHODS.get(name).kind == "post_hoc":
            assert out.logits is None and out.scores is not None and out.scores.shape == batch.mask.shape
        else:
            assert out.logits.shape == (16, 2) and out.logits.dtype == torch.float32
            assert out.mask is not None and out.mask.shape == batch.mask.shape
            assert set(out.mask.unique().tolist()) <= {0.0, 1.0}
        pred = binarize(out, batch, mode, getattr(method.config, "sparsity", None))
        if mode == "clean":
            assert not (pred * (1 - batch.mask)).any(), "padding selected in the clean mode"
        assert not (pred * batch.context).any(), "a special token in the rationale"

    state = method.state_dict()
    clone, _ = _built(name, spec)
    clone.load_state_dict(state)
    for key, value in method.model.state_dict().items():
        assert torch.equal(value, clone.model.state_dict()[key]), key
    full = batch.mask
    assert torch.equal(method.predict(batch, full), clone.predict(batch, full))

    first = run_cell(spec, tmp_path / "a")
    second = run_cell(spec, tmp_path / "b")
    assert json.dumps(first["modes"], sort_keys=True) == json.dumps(second["modes"], sort_keys=True)


def test_every_builtin_method_is_listed() -> None:
    """The built-in plugin folder provides at least these methods."""
    assert {"rnp", "ver", "nir", "dmr", "a2i", "inter_rat", "attention", "lime"} <= set(METHODS.names())


def test_attention_weights_are_a_softmax_over_real_tokens(toy_dataset: type) -> None:
    """Attention scores sum to 1 over the real tokens of each row and are 0 at padding."""
    [spec] = grid.expand(["attention"], ["toy"], [1], preset="demo", sets=SETS)
    seed_everything(1)
    method, data = _built("attention", spec)
    batch = next(eval_batches(data.splits["test"], 16))
    assert batch.mask.min() == 0, "the batch should contain padding"
    scores = method.rationalize(batch, "clean").scores
    assert torch.allclose(scores.sum(dim=1), torch.ones(16), atol=1e-5)
    assert (scores[batch.mask == 0] == 0).all() and (scores[batch.mask == 1] > 0).all()
