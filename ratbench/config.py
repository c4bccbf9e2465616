"""Typed, frozen configs for methods and datasets, their resolution and hashing.

A config is a frozen dataclass. Values come in layers (defaults < preset < ``--set``); every
key is checked against the fields and every value against the field's type, so a typo or a
wrong type is an error, never a silent default.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import fnmatch
import functools
import hashlib
import inspect
import itertools
import json
import math
import re
import textwrap
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, TypeVar, get_args, get_origin

from ratbench.errors import RatbenchError, did_you_mean

C = TypeVar("C", bound="Config")
_INTERVAL = re.compile(r"\s*([\[(])\s*(-?inf|[-+.\deE]+)\s*,\s*(-?inf|[-+.\deE]+)\s*([\])])\s*")


class ConfigValueError(RatbenchError):
    """A config value outside its allowed range; ``key`` names the field."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key} {problem}")
        self.key = key
        self.problem = problem


def check_interval(value: float, interval: str) -> bool:
    """Whether ``value`` lies in ``interval``, written ``(0, 1)``, ``[0, 1)``, ``[1, inf)``..."""
    match = _INTERVAL.fullmatch(interval)
    if match is None:
        raise ValueError(f"malformed interval {interval!r}")
    opening, low, high, closing = match.groups()
    low_ok = value > float(low) if opening == "(" else value >= float(low)
    high_ok = value < float(high) if closing == ")" else value <= float(high)
    return low_ok and high_ok


def describe_interval(interval: str) -> str:
    """``"(0, inf)"`` -> ``"> 0"``, ``"[1, inf)"`` -> ``">= 1"``, ``"(0, 1)"`` -> ``"in (0, 1)"``."""
    match = _INTERVAL.fullmatch(interval)
    if match is not None and match.group(3) == "inf":
        return f"{'>' if match.group(1) == '(' else '>='} {match.group(2)}"
    return f"in {interval.strip()}"


@dataclasses.dataclass(frozen=True)
class Config:
    """Base of every method and dataset config. Subclasses are frozen dataclasses.

    ``bounds`` maps a field name, or a glob such as ``*_lambda``, to the interval its value must
    lie in (``"(0, 1)"``, ``"[1, inf)"``); the bounds of base classes apply to subclasses that
    have such a field, and a subclass may add or override entries. Every float must be finite.
    Subclasses with a ``__post_init__`` of their own call ``super().__post_init__()``.
    """

    bounds: ClassVar[dict[str, str]] = {}
    identity_neutral: ClassVar[dict[str, Any]] = {}
    """Fields added after cells were recorded, with the value that gives the behaviour those cells
    had: at that value a field is left out of ``identity_dict`` (the cell's stored config, which
    its id hashes), so that a new flag does not make every earlier cell stale. Merged over the
    base classes, as ``bounds``."""

    key_settings: ClassVar[tuple[str, ...]] = ()
    """Field names that tell this config's variants apart at a glance (``ratbench run --dry-run``
    prints them per configuration). Merged over the base classes, bases first."""

    def __post_init__(self) -> None:
        intervals = self.field_bounds()
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            if not math.isfinite(value):
                raise ConfigValueError(field.name, f"must be a finite number, got {value!r}")
            for interval in intervals[field.name]:
                if not check_interval(value, interval):
                    raise ConfigValueError(field.name, f"must be {describe_interval(interval)}, got {value!r}")

    @classmethod
    def field_types(cls) -> dict[str, Any]:
        """Map each field name to its resolved type annotation."""
        hints = typing.get_type_hints(cls)
        return {f.name: hints[f.name] for f in dataclasses.fields(cls)}

    @classmethod
    def resolve(cls: type[C], *layers: Mapping[str, Any], owner: str = "") -> C:
        """Build a config from the defaults updated by each layer in turn.

        Args:
            layers: mappings of field name to value; later layers win. String values are
                parsed according to the field type (so ``--set`` values can be passed as is).
            owner: name used in error messages, e.g. ``"rnp"``.

        Raises:
            RatbenchError: on an unknown key or a value of the wrong type.
        """
        types_ = cls.field_types()
        values: dict[str, Any] = {}
        for layer in layers:
            for key, value in layer.items():
                if key not in types_:
                    raise RatbenchError(
                        f"unknown config key {owner + '.' if owner else ''}{key}"
                        f"{did_you_mean(key, types_)}; known keys: {', '.join(sorted(types_))}"
                    )
                values[key] = coerce(value, types_[key], f"{owner}.{key}" if owner else key)
        try:
            return cls(**values)
        except ConfigValueError as exc:
            if not owner:
                raise
            raise ConfigValueError(f"{owner}.{exc.key}", exc.problem) from None

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a plain JSON-compatible dict."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def field_bounds(cls) -> Mapping[str, tuple[str, ...]]:
        """Each field's intervals: the ``bounds`` of the class and its bases, merged, whose name
        or glob matches it (worked out once per class)."""
        config_class: type = cls  # as a plain class: the cache keys on it (mypy sees Config's instance __hash__)
        return _field_bounds(config_class)

    @classmethod
    def field_docs(cls) -> dict[str, str]:
        """Each field's attribute docstring (the string under its declaration), from the nearest
        class that documents it; fields without one, or whose source cannot be read, are absent."""
        docs: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            with contextlib.suppress(OSError, TypeError, SyntaxError):
                docs.update(_attribute_docstrings(klass))
        names = {f.name for f in dataclasses.fields(cls)}
        return {name: doc for name, doc in docs.items() if name in names}

    @classmethod
    def key_fields(cls) -> list[str]:
        """The ``key_settings`` of the class and its bases that are fields of this class, bases'
        first, each once."""
        names = {f.name for f in dataclasses.fields(cls)}
        merged = [name for klass in reversed(cls.__mro__) for name in vars(klass).get("key_settings", ())]
        return [name for name in dict.fromkeys(merged) if name in names]

    @classmethod
    def neutral_values(cls) -> dict[str, Any]:
        """The ``identity_neutral`` entries of the class and its bases, merged."""
        return _merged(cls, "identity_neutral")

    def identity_dict(self) -> dict[str, Any]:
        """``to_dict`` without the ``identity_neutral`` fields at their neutral value (``resolve``
        of it gives this config back: those fields take their defaults)."""
        neutral = self.neutral_values()
        return {k: v for k, v in self.to_dict().items() if not (k in neutral and neutral[k] == v)}


def _merged(klass: type, attribute: str) -> dict[str, Any]:
    """The dict class attribute ``attribute`` of ``klass`` and its bases, merged (a subclass's
    entry wins)."""
    merged: dict[str, Any] = {}
    for base in reversed(klass.__mro__):
        merged.update(vars(base).get(attribute, {}))
    return merged


@functools.cache
def _field_bounds(config: type) -> dict[str, tuple[str, ...]]:
    rules = _merged(config, "bounds")
    fields = dataclasses.fields(config)
    return {f.name: tuple(rule for glob, rule in rules.items() if fnmatch.fnmatchcase(f.name, glob)) for f in fields}


@functools.cache
def _attribute_docstrings(klass: type) -> dict[str, str]:
    """``{name: docstring}`` of the annotated attributes of ``klass``'s own body that are followed
    by a string literal (PEP 257's attribute docstrings), read from its source."""
    if klass is object or klass.__module__ == "builtins":
        return {}
    tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs = {}
    for declaration, following in itertools.pairwise(body):
        if (
            isinstance(declaration, ast.AnnAssign)
            and isinstance(declaration.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[declaration.target.id] = inspect.cleandoc(following.value.value)
    return docs


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def coerce(value: Any, annotation: Any, name: str) -> Any:
    """Return ``value`` converted to ``annotation``, parsing strings; raise on a mismatch."""
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        if is_none and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, name)
            except RatbenchError as exc:
                errors.append(str(exc))
        raise RatbenchError(errors[0] if errors else f"{name}: cannot be None")
    if origin is Literal:
        for choice in args:
            if value == choice or (isinstance(value, str) and str(choice) == value):
                return choice
        raise RatbenchError(f"{name} must be one of {', '.join(map(repr, args))}, got {value!r}")
    if origin is tuple:
        items = value.split(",") if isinstance(value, str) else list(value)
        item_type = args[0] if args else str
        return tuple(coerce(item.strip() if isinstance(item, str) else item, item_type, name) for item in items)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        raise RatbenchError(f"{name} expects true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise RatbenchError(f"{name} expects an integer, got {value!r}")
    if annotation is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            with contextlib.suppress(ValueError):
                number = float(value)
        if number is None:
            raise RatbenchError(f"{name} expects a number, got {value!r}")
        if not math.isfinite(number):
            raise RatbenchError(f"{name} expects a finite number, got {value!r}")
        return number
    if annotation is str:
        if isinstance(value, str):
            return value
        raise RatbenchError(f"{name} expects a string, got {value!r}")
    raise TypeError(f"{name}: unsupported config field type {annotation!r}")


def canonical_json(obj: Any) -> str:
    """Serialize deterministically: sorted keys, no whitespace, floats via ``repr``."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def stable_hash(obj: Any, length: int = 10) -> str:
    """Return the first ``length`` hex digits of the sha256 of ``canonical_json(obj)``."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]
