"""The one import of plugin authors: everything a method or dataset plugin needs.

    from ratbench.api import Method, MethodConfig, Presets, register_method, ...

Names here stay stable when the modules behind them move. Importing this module does not
import torch; the names that need torch (the select-then-predict template, the building
blocks, ``top_k_mask``) are loaded on first use:

* ``SelectPredict``, ``Forward``: the template of the select-then-predict family (one training
  loop with named hooks; ``docs/adding_a_method.md``);
* ``blocks``: the networks and functions the built-in methods are made of (``Selector``,
  ``Predictor``, ``make_selector``, ``gumbel_sample``, ``visible``, ``document_part``...);
* ``top_k_mask``: the evaluator's top-k rule for token scores.

The config pieces (``GRUOptions``, ``SelectionOptions``, ``TransformerOptions``,
``PerturbOptions``) and the shared presets (``TRAINING_PRESETS``, ``RNP_PRESETS``) are plain
dataclasses and dicts.
"""

from __future__ import annotations

import importlib
from typing import Any

from ratbench.config import Config, ConfigValueError
from ratbench.data.adapter import DataConfig, DatasetAdapter
from ratbench.errors import DataFormatError, MissingDataError, RatbenchError
from ratbench.method import Kind, Method, MethodConfig, Presets, Provenance, merge_presets
from ratbench.registry import DATASETS, METHODS, register_dataset, register_method
from ratbench.types import Batch, DataInfo, EncodedExample, EvalMode, Example, RationaleOutput, Split

_PLUGINS = "ratbench._plugins.methods"
# name -> (module, attribute or None for the module itself), imported on first use (torch)
_LAZY = {
    "SelectPredict": (f"{_PLUGINS}._family", "SelectPredict"),
    "Forward": (f"{_PLUGINS}._family", "Forward"),
    "blocks": (f"{_PLUGINS}._blocks", None),
    "top_k_mask": ("ratbench.evaluation.evaluator", "top_k_mask"),
    "GRUOptions": (f"{_PLUGINS}._options", "GRUOptions"),
    "SelectionOptions": (f"{_PLUGINS}._options", "SelectionOptions"),
    "TransformerOptions": (f"{_PLUGINS}._options", "TransformerOptions"),
    "PerturbOptions": (f"{_PLUGINS}._options", "PerturbOptions"),
    "TRAINING_PRESETS": (f"{_PLUGINS}._presets", "TRAINING_PRESETS"),
    "RNP_PRESETS": (f"{_PLUGINS}._presets", "RNP_PRESETS"),
}

__all__ = [
    "DATASETS",
    "METHODS",
    "Batch",
    "Config",
    "ConfigValueError",
    "DataConfig",
    "DataFormatError",
    "DataInfo",
    "DatasetAdapter",
    "EncodedExample",
    "EvalMode",
    "Example",
    "Kind",
    "Method",
    "MethodConfig",
    "MissingDataError",
    "Presets",
    "Provenance",
    "RationaleOutput",
    "RatbenchError",
    "Split",
    "merge_presets",
    "register_dataset",
    "register_method",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    """The names of ``_LAZY``, imported when first asked for."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import ratbench._plugins  # noqa: F401  (mounts the built-in plugin folders)

    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
