"""Variants: what a user asked for when a cell was run, independent of the dataset.

A table row is one method plus one variant. The variant of a cell is the preset it was run
with plus every value of its resolved configs that differs from what that preset alone gives
(``--set`` and ``--epochs`` overrides), and ``--limit``; ``ratbench.reporting.results`` adds a
``--precision`` other than fp32 and a device other than the CPU when it loads a cell (bf16 and
GPU kernels are other computations). Values a
preset sets per dataset (the paper's batch size 128 on beer, 256 on hotel) are not part of it,
so one request over several datasets is one variant; an override that equals the preset's
value is no difference either.
Keys of the config fields every dataset shares are written ``data.<key>``, dataset-specific
ones ``<dataset>.<key>``, method keys bare (the row already names the method).

The variant is computed when the grid is expanded and stored in each cell's ``spec.json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

Variant = dict[str, Any]


def differences(resolved: Mapping[str, Any], baseline: Mapping[str, Any]) -> dict[str, Any]:
    """The items of ``resolved`` whose value differs from ``baseline`` (sorted by key)."""
    return {key: resolved[key] for key in sorted(resolved) if baseline.get(key) != resolved[key]}


def make_variant(
    preset: str,
    method_changes: Mapping[str, Any],
    data_changes: Mapping[str, Any],
    limit: int | None,
) -> Variant:
    """The variant record stored in ``spec.json``."""
    return {"preset": preset, "method": dict(method_changes), "data": dict(data_changes), "limit": limit}


def variant_key(variant: Mapping[str, Any] | None) -> str:
    """A canonical string of the variant (equal variants, equal keys)."""
    return json.dumps(variant, sort_keys=True, separators=(",", ":"))


def _text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(_text(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def items(variant: Mapping[str, Any]) -> list[str]:
    """The variant as ``key=value`` words: ``preset=demo``, ``perturb_rate=0.5``,
    ``data.max_len=128``, ``limit=300``, ``precision=bf16``, ``device=cuda``."""
    words = [f"preset={variant.get('preset')}"]
    words += [f"{key}={_text(value)}" for key, value in (variant.get("method") or {}).items()]
    words += [f"{key}={_text(value)}" for key, value in (variant.get("data") or {}).items()]
    if variant.get("limit") is not None:
        words.append(f"limit={variant['limit']}")
    if variant.get("precision") not in (None, "fp32"):
        words.append(f"precision={variant['precision']}")
    if variant.get("device") not in (None, "cpu"):
        words.append(f"device={variant['device']}")
    return words


def row_labels(method: str, variants: Sequence[Mapping[str, Any]]) -> list[str]:
    """Labels of a method's rows: the method, plus the words in which its variant differs from
    the method's other rows (``ver (perturb_rate=0.5)``); a single row is just the method."""
    worded = [items(variant) for variant in variants]
    shared = set.intersection(*(set(words) for words in worded)) if worded else set()
    labels = []
    for words in worded:
        own = [word for word in words if word not in shared]
        labels.append(f"{method} ({', '.join(own)})" if own else method)
    return labels


def describe(variant: Mapping[str, Any]) -> str:
    """All of the variant in words, for a table's notes."""
    return ", ".join(items(variant))
