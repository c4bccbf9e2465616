"""Expand ``--methods x --datasets x --seeds`` (with presets and ``--set``) into cell specs."""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ratbench.config import canonical_json
from ratbench.data.adapter import DataConfig, DatasetAdapter, encoder_kind
from ratbench.data.encoders import check_encoder
from ratbench.data.vocab import check_embeddings
from ratbench.errors import MissingDataError, RatbenchError, did_you_mean
from ratbench.execution.cells import CellSpec
from ratbench.execution.variants import Variant, differences, make_variant
from ratbench.registry import DATASETS, METHODS
from ratbench.versions import EVAL_VERSION, pipeline

if TYPE_CHECKING:
    from ratbench.config import Config
    from ratbench.method import Method

DATA_SCOPE = "data"  # --set data.key=value applies to every dataset in the grid


MAX_SEED = 2**32 - 1  # numpy's and torch's seeds are 32-bit
DEFAULT_MAX_CELLS = 10_000


def parse_seeds(text: str, max_count: int = DEFAULT_MAX_CELLS) -> list[int]:
    """Parse ``"1-5"``, ``"1,3,5"`` or ``"1-3,7"`` into a sorted list of distinct seeds.

    Seeds lie in 0 .. 2^32 - 1; more than ``max_count`` distinct seeds is an error raised
    before any list is built (``--seeds 1-100000000`` must not fill the memory).
    """
    ranges: list[tuple[int, int]] = []
    for part in text.split(","):
        part = part.strip()
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            raise RatbenchError(f"malformed --seeds {text!r}: use a range like 1-5 or a list like 1,3,5")
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) else low
        if high < low:
            raise RatbenchError(f"malformed --seeds {text!r}: range {part} goes backwards")
        if high > MAX_SEED:
            raise RatbenchError(f"--seeds {part}: a seed must be between 0 and {MAX_SEED}")
        ranges.append((low, high))
    merged: list[list[int]] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    count = sum(high - low + 1 for low, high in merged)
    if count > max_count:
        raise RatbenchError(
            f"--seeds {text} gives {count:,} seeds, more than the limit of {max_count:,} cells; "
            "pass --max-cells N to allow a larger grid"
        )
    return [seed for low, high in merged for seed in range(low, high + 1)]


def parse_names(text: str, option: str = "") -> list[str]:
    """Split a comma-separated list, dropping blanks and repeats but keeping the order; with
    ``option`` (e.g. ``--methods``), an empty list is an error."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names and option:
        raise RatbenchError(f"{option} is empty: give at least one name (ratbench ls lists them)")
    return list(dict.fromkeys(names))


def parse_sets(items: Sequence[str]) -> dict[str, dict[str, str]]:
    """Parse ``--set scope.key=value`` items into ``{scope: {key: value}}``."""
    parsed: dict[str, dict[str, str]] = {}
    for item in items:
        match = re.fullmatch(r"([\w-]+)\.(\w+)=(.*)", item.strip())
        if not match:
            raise RatbenchError(f"malformed --set {item!r}: use METHOD.KEY=VALUE, DATASET.KEY=VALUE or data.KEY=VALUE")
        scope, key, value = match.groups()
        parsed.setdefault(scope, {})[key] = value
    return parsed


def parse_sweep_axes(items: Sequence[str], sets: Sequence[str] = ()) -> list[list[str]]:
    """``--sweep scope.key=v1,v2,...`` items as axes: per item, the ``--set`` item of each value
    (repeated values dropped), in the order given. A key may be swept once and not also be set
    with ``--set``. The product is not built here: :func:`check_grid_size` first counts it."""
    axes: list[list[str]] = []
    swept: set[str] = set()
    fixed = {item.partition("=")[0].strip() for item in sets}
    for item in items:
        match = re.fullmatch(r"([\w-]+\.\w+)=(.+)", item.strip())
        values = [value.strip() for value in match.group(2).split(",")] if match else []
        if not match or not all(values):
            raise RatbenchError(f"malformed --sweep {item!r}: use SCOPE.KEY=V1,V2,... (e.g. ver.perturb_rate=0,0.5)")
        key = match.group(1)
        if key in swept or key in fixed:
            raise RatbenchError(f"--sweep {key}: the key is swept twice or also given with --set; give it once")
        swept.add(key)
        axes.append([f"{key}={value}" for value in dict.fromkeys(values)])
    return axes


def sweep_points(axes: Sequence[Sequence[str]]) -> list[list[str]]:
    """The ``--set`` items of each point of the axes' product (one empty point without axes)."""
    return [list(point) for point in itertools.product(*axes)]


def parse_sweeps(items: Sequence[str], sets: Sequence[str] = ()) -> list[list[str]]:
    """``--sweep scope.key=v1,v2,...`` items as the ``--set`` items of each point of their
    product (one empty point without sweeps), in the order given. A key may be swept once and
    not also be set with ``--set``."""
    return sweep_points(parse_sweep_axes(items, sets))


def _axis_key(axis: Sequence[str]) -> str:
    """``scope.key`` of a sweep axis (its items are ``scope.key=value``)."""
    return axis[0].partition("=")[0]


def grid_size(
    requests: Sequence[tuple[Sequence[str], Sequence[str]]], n_seeds: int, axes: Sequence[Sequence[str]]
) -> int:
    """The number of cells of ``(methods, datasets)`` requests over ``n_seeds`` seeds and the
    sweep ``axes``, counted without building anything: a method's cells multiply by the axes of
    every scope except the other methods' (a sweep of ``ver.*`` runs the grid's ``rnp`` once)."""
    size = 0
    for methods, datasets in requests:
        for name in methods:  # an unknown method is reported before an unknown dataset, as in expand
            METHODS.check(name)
        targets = len(dataset_targets(datasets))
        for method in methods:
            others = set(methods) - {method}
            points = math.prod(len(axis) for axis in axes if _axis_key(axis).partition(".")[0] not in others)
            size += targets * n_seeds * points
    return size


def check_grid_size(
    requests: Sequence[tuple[Sequence[str], Sequence[str]]],
    n_seeds: int,
    axes: Sequence[Sequence[str]],
    max_cells: int = DEFAULT_MAX_CELLS,
) -> None:
    """Refuse a grid of more than ``max_cells`` cells, sweep points included, before any point,
    adapter or spec is built (three 200-value sweeps are 8 million points)."""
    size = grid_size(requests, n_seeds, axes)
    if size > max_cells:
        points = math.prod(len(axis) for axis in axes)
        raise RatbenchError(
            f"the grid has {size:,} cells (methods x dataset subsets x {n_seeds:,} seeds x {points:,} sweep points), "
            f"more than the limit of {max_cells:,}; pass --max-cells N to allow it"
        )


def check_sweep_overrides(
    axes: Sequence[Sequence[str]],
    sets: Sequence[str],
    methods: Sequence[str],
    datasets: Sequence[str],
    epochs: int | None,
    user_sets: Sequence[str] = (),
) -> None:
    """Refuse a sweep that a more specific setting would collapse to one point: ``--epochs``
    over a swept ``<method>.epochs``, or ``<dataset>.key`` (in ``sets``: the user's ``--set`` and a
    paper grid's items) over a swept ``data.key``, since a dataset's own key wins over ``data.*``."""
    dataset_names = {name.partition(".")[0] for name in datasets}
    fixed = {}
    for item in sets:
        key, _, value = item.partition("=")
        fixed[key.strip()] = (item.strip(), value.strip())
    for axis in axes:
        key = _axis_key(axis)
        scope, _, name = key.partition(".")
        if name == "epochs" and scope in methods and epochs is not None:
            raise RatbenchError(
                f"--sweep {key} is overridden by --epochs {epochs} (which sets every method's epochs), so every "
                "point would run the same epochs; drop --epochs or the sweep"
            )
        if scope != DATA_SCOPE:
            continue
        for dataset in sorted(dataset_names):
            if f"{dataset}.{name}" in fixed:
                item, value = fixed[f"{dataset}.{name}"]
                origin = "--set" if item in {s.strip() for s in user_sets} else "the grid's setting"
                raise RatbenchError(
                    f"--sweep {key} is overridden by {origin} {item} (a dataset's own key wins over data.*), so "
                    f"every point would run at {value}; sweep {dataset}.{name} instead, or drop that setting"
                )


def transformer_only_fields(method: str) -> set[str]:
    """The config fields of ``method`` that only a transformer encoder reads (those of its
    ``TransformerOptions`` base; none for a method without one)."""
    for base in METHODS.get(method).Config.__mro__:
        if base.__name__ == "TransformerOptions" and dataclasses.is_dataclass(base):
            return {f.name for f in dataclasses.fields(base)}
    return set()


def check_sweep_encoders(axes: Sequence[Sequence[str]], specs: Sequence[CellSpec]) -> None:
    """Refuse a sweep of a transformer-only key (``rnp.pooling``) over cells on the word encoder,
    which ignores it: every point would train the same model again, as rows that look different."""
    for axis in axes:
        key = _axis_key(axis)
        method, _, name = key.partition(".")
        if method not in METHODS.names() or name not in transformer_only_fields(method):
            continue
        for spec in specs:
            if spec.method == method and spec.dataset_config.get("encoder") == "word":
                raise RatbenchError(
                    f"--sweep {key}: {name} is a transformer setting that the word encoder ignores, so every point "
                    f"would train the same {method} on {spec.dataset}.{spec.subset}; sweep it with --set "
                    "data.encoder=hf:..., or drop it"
                )


def dataset_targets(names: Sequence[str]) -> list[tuple[str, str]]:
    """``["synthetic", "beer.aroma"]`` -> ``[(dataset, subset), ...]`` (a bare name = all subsets)."""
    targets: list[tuple[str, str]] = []
    for name in names:
        dataset, _, subset = name.partition(".")
        subsets = dataset_subsets(dataset)
        if subset and subset not in subsets:
            raise RatbenchError(
                f"unknown subset {subset!r} of dataset {dataset!r}{did_you_mean(subset, subsets)}; "
                f"available: {', '.join(subsets)}"
            )
        for chosen in (subset,) if subset else subsets:
            if (dataset, chosen) not in targets:
                targets.append((dataset, chosen))
    return targets


def preset_layers(
    presets: Mapping[str, Mapping[str, Mapping[str, Any]]],
    preset: str,
    scopes: Sequence[str],
    owner: str,
    required: bool = True,
) -> list[Mapping[str, Any]]:
    """The override layers of ``preset`` that apply, least specific first.

    ``paper`` is always valid (class defaults plus any overrides); another preset must exist
    when ``required`` (methods), and means "defaults" otherwise (datasets).
    """
    if preset not in presets:
        if preset == "paper" or not required:
            return []
        raise RatbenchError(
            f"{owner} has no preset {preset!r}{did_you_mean(preset, presets)}; "
            f"available: {', '.join(sorted({'paper', *presets}))}"
        )
    table = presets[preset]
    return [table[scope] for scope in scopes if scope in table]


def data_config_layers(
    dataset: str,
    subset: str,
    preset: str = "paper",
    sets: Mapping[str, Mapping[str, str]] | None = None,
    method: str | None = None,
    encoder: str | None = None,
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """The override layers of ``dataset.subset``'s config: the preset's (the dataset's own, then,
    for a cell of ``method``, the data settings of that method's reference pipeline,
    ``Method.data_presets``, scoped by the cell's ``encoder``: by default the one the other
    layers give), then the user's (``--set data.*`` < ``--set <dataset>.*``)."""
    sets = sets or {}
    adapter_cls = DATASETS.get(dataset)
    layers = preset_layers(adapter_cls.presets, preset, ("*", subset), f"dataset {dataset}", required=False)
    user = [sets.get(DATA_SCOPE, {}), sets.get(dataset, {})]
    if method is not None:
        table = METHODS.get(method).data_presets.get(preset, {})
        if table:
            encoder = encoder or adapter_cls.Config.resolve(*layers, *user, owner=dataset).encoder
            scopes = preset_scopes(dataset, subset, encoder_kind(encoder))
            layers += [table[scope] for scope in scopes if scope in table]
    return layers, user


def preset_scopes(dataset: str, subset: str, encoder: str = "word") -> tuple[str, ...]:
    """The scopes of a method preset that apply to a cell, least specific first: ``*``, the
    dataset, ``dataset.subset``, each followed by its encoder-qualified form (``hf/*``,
    ``hf/eraser``, ``hf/eraser.fever``) when the cell's encoder is not ``word``, so that a preset
    can hold the transformer settings of a benchmark beside its GRU settings."""
    scopes: list[str] = []
    for scope in ("*", dataset, f"{dataset}.{subset}"):
        scopes.append(scope)
        if encoder != "word":
            scopes.append(f"{encoder}/{scope}")
    return tuple(scopes)


SCOPE_ENCODERS = ("hf",)
"""The encoder kinds whose cells also read the qualified scopes of a method preset (``hf/*``,
:func:`preset_scopes`); ``word`` cells read the plain scopes only, so it has no prefix form."""


def dataset_subsets(dataset: str) -> tuple[str, ...]:
    """The subsets of a registered dataset, from the metadata of its source when it gives them
    (no import), else from its class."""
    return tuple(DATASETS.check(dataset).meta.get("subsets") or DATASETS.get(dataset).subsets)


def is_method_scope(scope: Any) -> bool:
    """Whether ``scope`` of a method's ``presets`` or ``data_presets`` can apply to some cell
    (:func:`preset_scopes`): ``*``, a registered dataset or ``dataset.subset``, each optionally
    after an encoder prefix such as ``hf/``."""
    if not isinstance(scope, str):
        return False
    kind, slash, rest = scope.partition("/")
    if not slash:
        rest = scope
    elif kind not in SCOPE_ENCODERS:
        return False
    if rest == "*":
        return True
    dataset, dot, subset = rest.partition(".")
    if dataset not in DATASETS.infos():
        return False
    return not dot or subset in dataset_subsets(dataset)


def method_scope_hint(scope: Any) -> str:
    """The valid forms of a method preset's scope, for the message about ``scope``."""
    hint = (
        f"a scope is *, a dataset ({', '.join(DATASETS.names())}), dataset.subset, or one of those "
        f"after an encoder prefix such as {', '.join(f'{kind}/' for kind in SCOPE_ENCODERS)}"
    )
    if not isinstance(scope, str):
        return hint
    kind, slash, rest = scope.partition("/")
    dataset, dot, _ = (rest if slash else scope).partition(".")
    if slash and kind == "word":
        hint += " (word cells read the scopes without a prefix)"
    elif dot and dataset in DATASETS.infos():
        hint = f"{dataset} has the subsets {', '.join(dataset_subsets(dataset))}; {hint}"
    return hint


def check_method_presets(name: str, cls: type[Method] | None = None) -> None:
    """Refuse a method whose ``presets`` or ``data_presets`` hold a scope that no cell can read
    (a typo such as ``hotle`` would otherwise be silently ignored), with one line naming the
    method, the preset, the scope and the valid forms. A scope of a dataset that is not
    registered is an error too. The registry calls it on every class it binds, with ``cls``
    (``METHODS.get(name)`` would recurse there)."""
    cls = cls if cls is not None else METHODS.get(name)
    for attribute, where in (("presets", ""), ("data_presets", " of data_presets")):
        for preset, table in getattr(cls, attribute).items():
            for scope in table:
                if not is_method_scope(scope):
                    plain = ["*"]
                    for dataset in DATASETS.names():
                        plain += [dataset, *(f"{dataset}.{subset}" for subset in dataset_subsets(dataset))]
                    choices = [*plain, *(f"{kind}/{each}" for kind in SCOPE_ENCODERS for each in plain)]
                    raise RatbenchError(
                        f"method {name}: preset {preset}{where} has an unknown scope {scope!r}"
                        f"{did_you_mean(str(scope), choices)}; {method_scope_hint(scope)}"
                    )


def check_dataset_presets(name: str, cls: type[DatasetAdapter] | None = None) -> None:
    """Refuse a dataset whose ``presets`` hold a scope other than ``*`` or one of its subsets
    (the only scopes its cells read, :func:`data_config_layers`), with one line naming the
    dataset, the preset, the scope and the valid forms. The registry calls it on every class it
    binds, with ``cls``."""
    cls = cls if cls is not None else DATASETS.get(name)
    subsets = tuple(cls.subsets)
    for preset, table in cls.presets.items():
        for scope in table:
            if scope != "*" and scope not in subsets:
                raise RatbenchError(
                    f"dataset {name}: preset {preset} has an unknown scope {scope!r}"
                    f"{did_you_mean(str(scope), ['*', *subsets])}; a dataset preset's scope is * or one of "
                    f"its subsets ({', '.join(subsets)})"
                )


def build_adapter(
    dataset: str,
    subset: str,
    preset: str = "paper",
    sets: Mapping[str, Mapping[str, str]] | None = None,
    data_dir: Path | None = None,
    on_missing: Callable[[MissingDataError], None] | None = None,
    method: str | None = None,
) -> DatasetAdapter:
    """The adapter of ``dataset.subset`` with its resolved config (defaults < preset, with the
    data settings of ``method``'s reference pipeline < ``--set data.*`` < ``--set <dataset>.*``);
    checks the embeddings choice and the model, not the data files. A missing embedding file or
    model goes to ``on_missing`` when given (a dry run lists them all), else it is raised."""
    adapter_cls = DATASETS.get(dataset)
    preset_part, user_part = data_config_layers(dataset, subset, preset, sets, method)
    config = adapter_cls.Config.resolve(*preset_part, *user_part, owner=dataset)
    checks: list[Callable[[], object]] = [lambda: check_embeddings(config.embeddings), lambda: check_encoder(config)]
    for check in checks:
        try:
            check()
        except MissingDataError as exc:
            if on_missing is None:
                raise
            on_missing(exc)
    return adapter_cls(subset, config, data_dir)


def data_changes(adapter: DatasetAdapter, preset: str, method: str | None = None) -> dict[str, Any]:
    """What the adapter's config changes with respect to its preset alone (with ``method``'s
    reference data settings), as variant items: ``data.<key>`` for the fields every dataset
    shares, ``<dataset>.<key>`` for its own."""
    preset_part, _ = data_config_layers(adapter.name, adapter.subset, preset, None, method, adapter.config.encoder)
    baseline = type(adapter.config).resolve(*preset_part, owner=adapter.name).to_dict()
    shared = {f.name for f in dataclasses.fields(DataConfig)}
    changed = differences(adapter.config.to_dict(), baseline)
    return {f"{DATA_SCOPE if key in shared else adapter.name}.{key}": value for key, value in changed.items()}


@dataclasses.dataclass(frozen=True)
class GridRequest:
    """One ``methods x datasets x seeds`` grid and the settings every cell of it shares (the
    parameters of :func:`expand`; :func:`expand_request` takes it whole)."""

    methods: tuple[str, ...]
    datasets: tuple[str, ...]  # names or dataset.subset
    seeds: tuple[int, ...]
    preset: str = "paper"
    sets: Mapping[str, Mapping[str, str]] = dataclasses.field(default_factory=dict)  # scope -> key -> value
    epochs: int | None = None  # --epochs: every method's epochs
    limit: int | None = None
    data_dir: Path | None = None
    max_cells: int = DEFAULT_MAX_CELLS
    precision: str = "fp32"
    cpu_threads: int = 1
    device_kind: str = "cpu"  # cpu or cuda: part of the pipeline identity

    def pipeline(self) -> dict[str, Any]:
        """The ``pipeline`` of every cell of the grid (``versions.pipeline``)."""
        return pipeline(self.precision, self.cpu_threads, self.device_kind)


@dataclasses.dataclass(frozen=True)
class _SharedData:
    """A resolved adapter and the fingerprint of its files, shared by the methods whose
    reference pipelines give it the same config."""

    adapter: DatasetAdapter
    fingerprint: dict[str, Any]


def expand(
    methods: Sequence[str],
    datasets: Sequence[str],
    seeds: Sequence[int],
    preset: str = "paper",
    sets: Mapping[str, Mapping[str, str]] | None = None,
    epochs: int | None = None,
    limit: int | None = None,
    data_dir: Path | None = None,
    max_cells: int = DEFAULT_MAX_CELLS,
    precision: str = "fp32",
    cpu_threads: int = 1,
    on_missing: Callable[[MissingDataError], None] | None = None,
    device_kind: str = "cpu",
) -> list[CellSpec]:
    """All cells of the grid, in method, dataset, subset, seed order (:func:`expand_request`
    with the request's fields as arguments)."""
    request = GridRequest(
        methods=tuple(methods),
        datasets=tuple(datasets),
        seeds=tuple(seeds),
        preset=preset,
        sets=dict(sets or {}),
        epochs=epochs,
        limit=limit,
        data_dir=data_dir,
        max_cells=max_cells,
        precision=precision,
        cpu_threads=cpu_threads,
        device_kind=device_kind,
    )
    return expand_request(request, on_missing)


def expand_request(
    request: GridRequest, on_missing: Callable[[MissingDataError], None] | None = None
) -> list[CellSpec]:
    """All cells of ``request``'s grid, in method, dataset, subset, seed order.

    Config precedence: class defaults < preset (``*`` < dataset < dataset.subset) < ``--set``
    (and ``--epochs``, which is ``--set <every method>.epochs``). A grid of more than
    ``max_cells`` cells is an error (raised before any cell is built). A missing data file,
    embedding file or model is raised, or, with ``on_missing``, passed to it (every one of
    them); the cell ids then hash only the files that are there. A method or dataset whose
    preset scopes no cell can read fails when its class is loaded (the registry checks every class
    it binds, :func:`check_method_presets`), before any data file is looked at. ``device_kind``
    (``cpu`` or ``cuda``) is part of the pipeline identity (``versions.pipeline``): CPU cells keep
    their ids.

    Expanding writes nothing: the content hashes of the data files stay in the process's cache
    until the caller saves them (``filehash.save()``).
    """
    targets = _checked_targets(request)
    shared = _shared_data(request, targets, on_missing)
    specs: list[CellSpec] = []
    for method in request.methods:
        method_cls = _checked_method(method)
        for dataset, subset in targets:
            specs += _target_specs(request, method, method_cls, dataset, subset, shared[method, dataset, subset])
    return specs


def _checked_targets(request: GridRequest) -> list[tuple[str, str]]:
    """The grid's ``(dataset, subset)`` targets, after every check that reads no data file: known
    names, the grid's size, the ``--set`` scopes and ``--limit``; loading each class checks its
    preset scopes."""
    for name in request.methods:
        METHODS.check(name)
    targets = dataset_targets(request.datasets)
    methods, seeds = request.methods, request.seeds
    size = len(methods) * len(targets) * len(seeds)
    if size > request.max_cells:
        raise RatbenchError(
            f"the grid has {size:,} cells ({len(methods)} methods x {len(targets)} dataset subsets x "
            f"{len(seeds)} seeds), more than the limit of {request.max_cells:,}; pass --max-cells N to allow it"
        )
    dataset_names = {dataset for dataset, _ in targets}
    for scope in request.sets:
        if scope not in methods and scope not in dataset_names and scope != DATA_SCOPE:
            raise RatbenchError(
                f"--set/--sweep {scope}.…: {scope!r} is not a method or dataset of this grid; "
                f"use one of {', '.join([*methods, *sorted(dataset_names), DATA_SCOPE])}"
            )
    if request.limit is not None and request.limit < 1:
        raise RatbenchError(f"--limit must be at least 1, got {request.limit}")
    for name in methods:  # loading a class checks its preset scopes, before any data file is looked at
        METHODS.get(name)
    for dataset in dict.fromkeys(dataset for dataset, _ in targets):
        DATASETS.get(dataset)
    return targets


def _shared_data(
    request: GridRequest,
    targets: Sequence[tuple[str, str]],
    on_missing: Callable[[MissingDataError], None] | None,
) -> dict[tuple[str, str, str], _SharedData]:
    """The adapter and fingerprint of each ``(method, dataset, subset)``.

    Each method reads the data through its reference pipeline (``Method.data_presets``), so an
    adapter is resolved per method; methods with the same data config share one adapter (its
    files checked and fingerprinted once), and a missing file is reported once: raised without
    ``on_missing``."""
    by_config: dict[tuple[str, str, str], _SharedData] = {}
    shared: dict[tuple[str, str, str], _SharedData] = {}
    reported: set[str] = set()

    def report(problem: MissingDataError) -> None:
        if str(problem) not in reported:
            reported.add(str(problem))
            if on_missing is None:
                raise problem
            on_missing(problem)

    for method, (dataset, subset) in itertools.product(request.methods, targets):
        adapter = build_adapter(dataset, subset, request.preset, request.sets, request.data_dir, report, method)
        key = (dataset, subset, canonical_json(adapter.config.to_dict()))
        if key not in by_config:
            for problem in adapter.missing_files():
                report(problem)
            by_config[key] = _SharedData(adapter, adapter.fingerprint())
        shared[method, dataset, subset] = by_config[key]
    return shared


def _checked_method(method: str) -> type[Method]:
    """The class of ``method``; a post-hoc method must have a ``sparsity`` field."""
    method_cls = METHODS.get(method)
    if method_cls.kind == "post_hoc" and "sparsity" not in method_cls.Config.field_types():
        raise RatbenchError(
            f"method {method} is post-hoc but its config has no `sparsity` field: add one (the share of "
            "tokens the evaluator keeps from its scores)"
        )
    return method_cls


def _target_specs(
    request: GridRequest, method: str, method_cls: type[Method], dataset: str, subset: str, data: _SharedData
) -> list[CellSpec]:
    """The cells of ``method`` on ``dataset.subset``, one per seed."""
    config, variant = _method_config(request, method, method_cls, dataset, subset, data.adapter)
    return [
        CellSpec(
            method=method,
            method_version=method_cls.version,
            method_config=config.identity_dict(),
            dataset=dataset,
            dataset_version=type(data.adapter).version,
            subset=subset,
            dataset_config=data.adapter.config.to_dict(),
            dataset_fingerprint=data.fingerprint,
            eval_version=EVAL_VERSION,
            limit=request.limit,
            seed=seed,
            pipeline=request.pipeline(),
            variant=variant,
        )
        for seed in request.seeds
    ]


def _method_config(
    request: GridRequest, method: str, method_cls: type[Method], dataset: str, subset: str, adapter: DatasetAdapter
) -> tuple[Config, Variant]:
    """The config of ``method`` on ``dataset.subset`` (its preset's scopes for the adapter's
    encoder < ``--set <method>.*`` < ``--epochs``) and the cell's variant: what the config and
    the data config change from the preset alone."""
    encoder = encoder_kind(adapter.config.encoder)
    if encoder not in method_cls.encoders:
        raise RatbenchError(
            f"method {method} runs on the {' or '.join(method_cls.encoders)} encoder only, not on "
            f"data.encoder={adapter.config.encoder}; run it in a grid without that setting"
        )
    scopes = preset_scopes(dataset, subset, encoder)
    layers = preset_layers(method_cls.presets, request.preset, scopes, f"method {method}")
    extra = {"epochs": request.epochs} if request.epochs is not None else {}
    config = method_cls.Config.resolve(*layers, request.sets.get(method, {}), extra, owner=method)
    baseline = method_cls.Config.resolve(*layers, owner=method)
    variant = make_variant(
        request.preset,
        differences(config.to_dict(), baseline.to_dict()),
        data_changes(adapter, request.preset, method),
        request.limit,
    )
    return config, variant
