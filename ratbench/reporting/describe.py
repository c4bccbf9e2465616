"""What ``ratbench info NAME`` prints: for a method, how faithful it is (its reference code, the
parity test that proves it, its remaining deviations, the batch layout of its ``paper`` preset);
for a dataset, its subsets and where its files come from; for both, every setting ``--set`` can
change (default, type, range and the docstring under the field's declaration) and the presets.
"""

from __future__ import annotations

import dataclasses
import textwrap
import types
import typing
from typing import Any

from ratbench.config import Config, describe_interval
from ratbench.data.adapter import DataConfig
from ratbench.errors import RatbenchError, did_you_mean
from ratbench.method import Presets
from ratbench.registry import DATASETS, METHODS

_wrap = textwrap.TextWrapper(100, initial_indent=" " * 8, subsequent_indent=" " * 8, break_on_hyphens=False)
"""How a setting's docstring is printed: under its name, 100 columns wide."""


def describe(name: str) -> list[str]:
    """The lines ``ratbench info NAME`` prints for a method or a dataset."""
    if name in METHODS.names():
        return method_lines(name)
    if name in DATASETS.names():
        return dataset_lines(name)
    if name == "data":  # the --set scope of every dataset
        title = "data: the settings every dataset shares (--set data.KEY=VALUE sets them on all)"
        return [title, *settings_lines(DataConfig, "data")]
    choices = [*METHODS.names(), *DATASETS.names(), "data"]
    raise RatbenchError(f"unknown method or dataset {name!r}{did_you_mean(name, choices)}; `ratbench ls` lists them")


def method_lines(name: str) -> list[str]:
    """A method's faithfulness record, its settings and its presets."""
    cls = METHODS.get(name)
    lines = [f"{name} ({cls.kind}, version {cls.version}): {cls.description}", f"  encoders: {', '.join(cls.encoders)}"]
    provenance = cls.provenance
    if provenance is None:
        lines.append("  reference: not recorded (a plugin without `provenance`)")
    else:
        lines += [
            f"  reference: {provenance.reference or 'none (no public reference code)'}",
            f"  proven by: {provenance.proven_by}",
        ]
        if provenance.layout:
            lines.append(f"  paper layout: {provenance.layout}")
        deviations = provenance.deviations
        lines.append("  deviations (flag (reference value): what differs):" if deviations else "  deviations: none")
        lines += [f"    - {deviation}" for deviation in deviations]
    return lines + settings_lines(cls.Config, name) + preset_lines(cls.presets, cls.data_presets)


def dataset_lines(name: str) -> list[str]:
    """A dataset's subsets, its source, its settings and its presets."""
    cls = DATASETS.get(name)
    lines = [f"{name} (version {cls.version}): {cls.description}", f"  subsets: {', '.join(cls.subsets)}"]
    if cls.source:
        lines.append(f"  files: {cls.source}")
    return lines + settings_lines(cls.Config, name) + preset_lines(cls.presets)


def settings_lines(config: type[Config], owner: str) -> list[str]:
    """Every field of ``config``: ``name = default (type, range)`` and its docstring, wrapped."""
    types_, docs, bounds, defaults = config.field_types(), config.field_docs(), config.field_bounds(), config()
    lines = [f"  settings (--set {owner}.KEY=VALUE): KEY = default (type, range), then what it does"]
    for field in dataclasses.fields(config):
        name = field.name
        kind = ", ".join([type_name(types_[name]), *map(describe_interval, bounds[name])])
        lines.append(f"    {name} = {getattr(defaults, name)!r}  ({kind})")
        doc = " ".join(docs.get(name, "").replace("``", "`").split())
        if doc:
            lines.append(_wrap.fill(doc))
    return lines


def preset_lines(presets: Presets, data_presets: Presets | None = None) -> list[str]:
    """``--preset NAME``: what each preset changes, per scope (``*``, a dataset, ``hf/``...), in
    the config and, for a method, in the data config of its cells (``data.KEY``)."""
    tables = [(presets, ""), (data_presets or {}, "data.")]
    names = list(dict.fromkeys(name for table, _ in tables for name in table))
    lines = ["  presets (--preset NAME; scope: what it changes from the defaults):"] if names else []
    width = max(map(len, names), default=0)
    for name in names:
        for table, prefix in tables:
            for scope, values in table.get(name, {}).items():
                changes = ", ".join(f"{prefix}{key}={value!r}" for key, value in values.items())
                lines.append(f"    {name:<{width}}  {scope}: {changes or 'nothing'}")
    return lines


def type_name(annotation: Any) -> str:
    """A field's type in words: ``float``, ``one of 'max', 'cls'``, ``int or None``..."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(arg) for arg in args)
    if origin in (typing.Union, types.UnionType):
        named = [type_name(arg) for arg in args if arg is not type(None)]
        return " or ".join(named) + (" or None" if type(None) in args else "")
    if origin is None and isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")
