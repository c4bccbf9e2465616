"""Mixed precision on the word encoder (issue 19, item 1): every GRU method trains and evaluates
under autocast, with the GRUs, the select/score heads and the Gumbel noise in float32.

CUDA autocast runs cuDNN RNNs in float16 whatever the autocast dtype (upstream
``aten/src/ATen/cudnn/AutocastRNN.cpp``); CPU autocast leaves ``nn.GRU`` in float32. The
``cuda_like_gru`` fixture emulates the CUDA rule on CPU, so these tests fail where a bf16 cell
would fail on a GPU (the masked max-pool's -1e6 fill overflowed float16 before the fix).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from conftest import tiny_batches, tiny_examples, tiny_method
from torch import nn

from ratbench._plugins.methods._blocks import (
    POOL_FILL,
    AttentionClassifier,
    Predictor,
    Selector,
    eval_selection,
    gumbel_sample,
    in_fp32,
    pool_fill,
)
from ratbench.evaluation.evaluator import binarize
from ratbench.registry import METHODS

AUTOCAST_DTYPES = [torch.float16, torch.bfloat16]


@pytest.fixture
def cuda_like_gru(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[torch.dtype]]:
    """``nn.GRU`` as CUDA autocast runs it: while autocast is on, input, hidden state and weights
    are cast to float16 (any autocast dtype). Yields the dtype of every GRU output."""
    original = nn.GRU.forward
    outputs: list[torch.dtype] = []

    def forward(self: nn.GRU, input: torch.Tensor, hx: torch.Tensor | None = None) -> tuple:
        if isinstance(input, torch.Tensor) and torch.is_autocast_enabled(input.device.type):
            with torch.autocast(input.device.type, enabled=False):
                half = {name: p.half() for name, p in self.named_parameters()}
                args = (input.half(), None if hx is None else hx.half())
                result = torch.func.functional_call(self, half, args)  # re-enters with autocast off
            outputs[-1] = result[0].dtype
            return result
        result = original(self, input, hx)
        data = result[0].data if isinstance(result[0], nn.utils.rnn.PackedSequence) else result[0]
        outputs.append(data.dtype)
        return result

    monkeypatch.setattr(nn.GRU, "forward", forward)
    yield outputs


def test_the_emulation_runs_a_gru_in_float16_under_autocast(cuda_like_gru: list[torch.dtype]) -> None:
    """The fixture is what CUDA does: a bare ``nn.GRU`` under bf16 autocast gives float16 states,
    where -1e6 (the reference's pool fill) does not fit."""
    gru = nn.GRU(4, 3, batch_first=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        states = gru(torch.randn(2, 5, 4))[0]
    assert states.dtype == torch.float16 and cuda_like_gru == [torch.float16]
    with pytest.raises(RuntimeError, match="overflow"):
        states.masked_fill(torch.ones_like(states, dtype=torch.bool), POOL_FILL)


def _models(method: object) -> list[nn.Module]:
    return [value for value in vars(method).values() if isinstance(value, nn.Module)]


@pytest.mark.parametrize("dtype", AUTOCAST_DTYPES, ids=str)
@pytest.mark.parametrize("name", METHODS.names())
def test_every_gru_method_trains_and_evaluates_under_autocast(
    name: str, dtype: torch.dtype, cuda_like_gru: list[torch.dtype]
) -> None:
    """``train_epoch``, ``rationalize`` (both modes) and ``predict`` under autocast: no error,
    finite numbers, every GRU in float32, float32 rationales and scores."""
    examples = tiny_examples(8)
    extra = {"num_samples": 20} if name == "lime" else {}
    method = tiny_method(name, tuple(examples), **extra)
    batches = tiny_batches(examples)
    with torch.autocast("cpu", dtype=dtype):
        losses = method.train_epoch(batches)
        assert losses and all(np.isfinite(value) for value in losses.values()), losses
        for mode in ("reference", "clean"):
            out = method.rationalize(batches[0], mode)
            for part in (out.mask, out.scores):
                assert part is None or (part.dtype == torch.float32 and torch.isfinite(part).all())
            if out.logits is not None:
                assert torch.isfinite(out.logits).all()
            rationale = binarize(out, batches[0], mode, getattr(method.config, "sparsity", None))
            logits = method.predict(batches[0], rationale)
            assert logits is None or torch.isfinite(logits).all()
    assert cuda_like_gru, "no GRU ran"
    assert set(cuda_like_gru) == {torch.float32}, "a GRU ran in half precision under autocast"
    for model in _models(method):
        assert all(p.dtype == torch.float32 for p in model.parameters())


@pytest.mark.parametrize("dtype", AUTOCAST_DTYPES, ids=str)
def test_gumbel_noise_is_drawn_in_float32_under_autocast(dtype: torch.dtype) -> None:
    """Half-precision logits under autocast: the same fp32 draw as from their float32 copy."""
    logits = torch.randn(4, 7, 2).to(dtype)
    torch.manual_seed(3)
    with torch.autocast("cpu", dtype=dtype):
        soft, index = gumbel_sample(logits, 1.0)
        sample = eval_selection(logits, "reference", 1.0)
        clean = eval_selection(logits, "clean", 1.0)
    torch.manual_seed(3)
    expected_soft, expected_index = gumbel_sample(logits.float(), 1.0)
    assert soft.dtype == torch.float32 and torch.equal(soft, expected_soft) and torch.equal(index, expected_index)
    assert sample.dtype == clean.dtype == torch.float32


@pytest.mark.parametrize("dtype", AUTOCAST_DTYPES, ids=str)
def test_selector_and_attention_scores_are_float32_under_autocast(
    dtype: torch.dtype, cuda_like_gru: list[torch.dtype]
) -> None:
    """The select/skip logits and the attention weights stay float32 (bf16 ties would move
    top-k rationales toward the start of the text)."""
    torch.manual_seed(0)
    selector, attention = Selector(6, 8, 0.0), AttentionClassifier(6, 8, 2, 0.0, "additive")
    embedded, mask = torch.randn(3, 5, 6), torch.ones(3, 5)
    with torch.autocast("cpu", dtype=dtype):
        assert selector(embedded).dtype == torch.float32
        _, weights = attention(embedded, mask)
    assert weights.dtype == torch.float32
    assert set(cuda_like_gru) == {torch.float32}


class _HalfStates(nn.Module):
    """A stand-in encoder with float16 states (a transformer in half precision)."""

    output_dim = 4

    def states(self, x: torch.Tensor, mask: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        return (x * keep.unsqueeze(-1)).half()


def test_the_pool_fill_fits_the_dtype() -> None:
    """-1e6 where it fits (the fp32 numbers are the reference's), float16's minimum otherwise."""
    assert pool_fill(torch.float32) == pool_fill(torch.bfloat16) == POOL_FILL
    assert pool_fill(torch.float16) == torch.finfo(torch.float16).min
    predictor = Predictor(4, 4, 2, 0.0, _HalfStates())
    x, mask = torch.randn(2, 3, 4), torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    features = predictor.features(x, torch.ones_like(mask), mask)
    assert torch.equal(features[0], x[0, :2].half().max(dim=0).values)


def test_in_fp32_changes_nothing_outside_autocast() -> None:
    """Outside autocast ``in_fp32`` is a plain call (fp32 cells give the same numbers)."""
    x = torch.randn(3, 4, dtype=torch.float64)
    assert in_fp32(torch.tanh, x).dtype == torch.float64
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert in_fp32(nn.Linear(4, 2).double().float(), x).dtype == torch.float32
