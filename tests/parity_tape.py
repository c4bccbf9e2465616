"""Random draws in call order: recorded from a reference implementation, replayed into ratbench.

A parity fixture (``tests/golden/parity/``) holds, besides inputs, weights and the reference's
outputs, every random number the reference drew while it trained and evaluated. ``DrawTape``
records them by patching torch's entry points that the rationalizers draw from, and replays
them through the same entry points, in the same order, into ratbench's real code:

* ``Tensor.exponential_`` (Gumbel noise: ``F.gumbel_softmax`` and ``methods._blocks.gumbel_sample``);
* ``torch.rand`` (VER's perturbation), ``torch.randn``;
* ``torch.multinomial`` (VER's 0 -> 1 flips; the drawn indices are recorded);
* ``torch.bernoulli`` (NIR's replacement decisions; the 0/1 outcomes, stored as bool);
* ``torch.nn.functional.dropout`` (``nn.Dropout`` calls it): replaced by the same arithmetic
  with an explicit keep-mask, ``x * keep / (1 - p)``, on both sides, so the mask is the draw
  (stored as bool).

A reference that draws outside torch (NIR's numpy generator) appends its draws with ``add``;
the replaying test translates them into the draws ratbench makes before it replays.

A replayed draw must have the kind and the number of elements of the recorded one (it takes
the requested shape); anything else means the two codes draw differently, and the replay stops
with an error that says where. ``finish()`` checks that every recorded draw was used.

Recording scripts (``benchmarks/parity/``) import this module too; it holds no reference code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import torch
import torch.nn.functional as F


class DrawMismatch(AssertionError):
    """The replaying code asked for a draw the recording did not make at this point."""


def _shape(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[int, ...]:
    if "size" in kwargs:
        return tuple(kwargs["size"])
    if len(args) == 1 and isinstance(args[0], (tuple, list, torch.Size)):
        return tuple(args[0])
    return tuple(int(a) for a in args)


class DrawTape:
    """The draws of one run, as ``[(kind, tensor), ...]``; see the module docstring."""

    def __init__(self, draws: list[tuple[str, torch.Tensor]] | None = None) -> None:
        self.draws: list[tuple[str, torch.Tensor]] = list(draws or [])
        self.position = 0
        self.replaying = False

    # -- serialisation (torch.save / torch.load(weights_only=True) friendly) ------------------
    def to_state(self) -> dict[str, Any]:
        """A plain dict of the draws."""
        return {"kinds": [kind for kind, _ in self.draws], "values": [value for _, value in self.draws]}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> DrawTape:
        """The tape ``to_state`` wrote."""
        return cls(list(zip(state["kinds"], state["values"], strict=True)))

    # -- one draw ----------------------------------------------------------------------------
    def _draw(self, kind: str, make: Any, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        if not self.replaying:
            value = make()
            self.draws.append((kind, value.detach().clone()))
            return value
        if self.position >= len(self.draws):
            raise DrawMismatch(f"draw {self.position}: {kind}{list(shape)} asked for, but the recording has ended")
        recorded_kind, value = self.draws[self.position]
        if recorded_kind != kind or value.numel() != int(torch.Size(shape).numel()):
            raise DrawMismatch(
                f"draw {self.position}: {kind}{list(shape)} asked for, the recording has "
                f"{recorded_kind}{list(value.shape)}"
            )
        self.position += 1
        return value.reshape(shape).to(dtype).clone()

    def add(self, kind: str, value: torch.Tensor) -> None:
        """Append a draw made outside the patched entry points (a reference's numpy generator)."""
        self.draws.append((kind, value.detach().clone()))

    def finish(self) -> None:
        """Raise unless every recorded draw was replayed."""
        if self.replaying and self.position != len(self.draws):
            raise DrawMismatch(f"{len(self.draws) - self.position} recorded draws were never asked for")

    # -- patches -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _patched(self) -> Iterator[DrawTape]:
        tape = self
        originals = {
            "exponential_": torch.Tensor.exponential_,
            "rand": torch.rand,
            "randn": torch.randn,
            "multinomial": torch.multinomial,
            "dropout": F.dropout,
            "bernoulli": torch.bernoulli,
        }

        def exponential_(self: torch.Tensor, lambd: float = 1.0, *, generator: Any = None) -> torch.Tensor:
            value = tape._draw(
                "exponential",
                lambda: originals["exponential_"](torch.empty_like(self), lambd),
                tuple(self.shape),
                self.dtype,
            )
            with torch.no_grad():
                self.copy_(value)
            return self

        def uniform(kind: str) -> Any:
            def draw(*args: Any, out: torch.Tensor | None = None, dtype: Any = None, device: Any = None, **kw: Any):
                shape = _shape(args, kw)
                kw.pop("size", None)
                dtype = dtype or (out.dtype if out is not None else torch.get_default_dtype())
                value = tape._draw(kind, lambda: originals[kind](shape, dtype=dtype), shape, dtype)
                value = value.to(device) if device is not None else value
                if out is not None:
                    out.resize_(value.shape).copy_(value)
                    return out
                return value.requires_grad_(bool(kw.get("requires_grad", False)))

            return draw

        def multinomial(
            input: torch.Tensor, num_samples: int, replacement: bool = False, *, generator: Any = None, out: Any = None
        ) -> torch.Tensor:
            shape = (*input.shape[:-1], num_samples)
            value = tape._draw(
                "multinomial",
                lambda: originals["multinomial"](input, num_samples, replacement),
                shape,
                torch.long,
            )
            if out is not None:
                out.resize_(value.shape).copy_(value)
                return out
            return value

        def dropout(input: torch.Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> torch.Tensor:
            if not training or p == 0:
                return input
            # The keep-mask is drawn and stored as bool (a quarter of float32 in a fixture) and
            # used in the input's dtype, so the arithmetic is the same whichever side drew it.
            keep = tape._draw(
                "dropout",
                lambda: torch.empty_like(input, dtype=torch.float32).bernoulli_(1 - p).bool(),
                tuple(input.shape),
                torch.bool,
            )
            return input * keep.to(input.dtype) / (1 - p)

        def bernoulli(input: torch.Tensor, *args: Any, generator: Any = None, out: Any = None) -> torch.Tensor:
            outcome = tape._draw(
                "bernoulli",
                lambda: originals["bernoulli"](input, *args).bool(),
                tuple(input.shape),
                torch.bool,
            )
            value = outcome.to(input.dtype)
            if out is not None:
                out.resize_(value.shape).copy_(value)
                return out
            return value

        torch.Tensor.exponential_ = exponential_  # type: ignore[method-assign]
        torch.rand = uniform("rand")  # type: ignore[assignment]
        torch.randn = uniform("randn")  # type: ignore[assignment]
        torch.multinomial = multinomial  # type: ignore[assignment]
        F.dropout = dropout  # type: ignore[assignment]
        torch.bernoulli = bernoulli  # type: ignore[assignment]
        try:
            yield self
        finally:
            torch.Tensor.exponential_ = originals["exponential_"]  # type: ignore[method-assign]
            torch.rand = originals["rand"]  # type: ignore[assignment]
            torch.randn = originals["randn"]  # type: ignore[assignment]
            torch.multinomial = originals["multinomial"]  # type: ignore[assignment]
            F.dropout = originals["dropout"]  # type: ignore[assignment]
            torch.bernoulli = originals["bernoulli"]  # type: ignore[assignment]

    @contextlib.contextmanager
    def record(self) -> Iterator[DrawTape]:
        """Append every draw made inside the block (real random numbers from torch's generator)."""
        self.replaying = False
        with self._patched():
            yield self

    @contextlib.contextmanager
    def replay(self) -> Iterator[DrawTape]:
        """Answer every draw made inside the block with the next recorded one."""
        self.replaying = True
        with self._patched():
            yield self


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one thread, as every fixture is recorded (a reduction split over threads rounds
    differently), restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def fingerprint(tensors: Iterable[torch.Tensor | None]) -> torch.Tensor:
    """Per tensor: sum, sum of |x|, sum of x^2 (float64) and 8 entries at fixed flat positions,
    ``[N, 11]`` float64, a row of NaN for a missing one (a gradient the loss does not reach): a
    compact, exact summary of large gradients and weights for a fixture."""
    rows = []
    for value in tensors:
        if value is None:
            rows.append(torch.full((11,), torch.nan, dtype=torch.float64))
            continue
        flat = value.detach().double().flatten()
        picks = flat[(torch.arange(8) * 7919) % flat.numel()]
        rows.append(torch.cat([torch.stack([flat.sum(), flat.abs().sum(), (flat * flat).sum()]), picks]))
    return torch.stack(rows)
