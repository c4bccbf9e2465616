"""The ``ratbench`` command line. Parsing and printing only; the work is done elsewhere."""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ratbench.errors import RatbenchError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_RESULTS = Path("results")
EXIT_USAGE = 2
EXIT_FAILED_CELLS = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


def friendly_errors(func: F) -> F:
    """Turn a ``RatbenchError`` into one line on stderr and exit code 2 (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except RatbenchError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_USAGE)

    return wrapper  # type: ignore[return-value]  # functools.wraps keeps F's signature; mypy cannot see it


D = TypeVar("D", bound="DataclassInstance")


def _from_options(cls: type[D]) -> D:
    """A dataclass of the current command's options (its fields are named as the options are)."""
    params = click.get_current_context().params
    return cls(**{field.name: params[field.name] for field in dataclasses.fields(cls)})


def _warn(message: str) -> None:
    """One plain line on stderr (no Python warning format, no source line)."""
    click.echo(f"warning: {message}", err=True)


results_option = click.option(
    "--results-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_RESULTS,
    show_default=True,
    help="Output root: runs/<cell_id>/ is written below it.",
)


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=lambda: os.environ.get("RATBENCH_DATA"),
    help="Root of the dataset files [env RATBENCH_DATA; default ./data].",
)

tracking_uri_option = click.option(
    "--tracking-uri",
    default=None,
    help="mlflow tracking URI [env MLFLOW_TRACKING_URI; default sqlite:///<results-dir>/mlflow.db].",
)
mode_option = click.option(
    "--mode",
    type=click.Choice(["reference", "clean"]),
    default="reference",
    show_default=True,
    help="The evaluation protocol: reference (the reference code's) or clean (deterministic, no padding).",
)
lenient_option = click.option(
    "--lenient", is_flag=True, help="Skip malformed data lines and report their count (= --set data.lenient=true)."
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ratbench", message="%(prog)s %(version)s")
def main() -> None:
    """ratbench: benchmark harness for selective rationalization.

    \b
    Examples:
      ratbench ls
      ratbench info ver
      ratbench run --methods ver,rnp --datasets synthetic.appearance --seeds 1-3 --preset demo
      ratbench table --mode reference
    """


@main.command()
@click.option(
    "--grid",
    "grid_name",
    metavar="NAME",
    help="One of the paper's grids (table1, table2, table3) or leaderboard (every built-in select-then-predict "
    "method on Table 1's datasets): its methods, datasets, preset and settings; "
    "--methods/--datasets then pick a part of it, --set values still apply.",
)
@click.option("--methods", help="Comma-separated method names, e.g. ver,rnp (required without --grid).")
@click.option(
    "--datasets", help="Comma-separated datasets: NAME (all subsets) or NAME.SUBSET (required without --grid)."
)
@click.option("--seeds", default="1", show_default=True, help="Seeds: a range 1-5, a list 1,3,5, or both.")
@click.option("--preset", help="Named hyperparameter set: paper or demo [default: paper; a grid names its own].")
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="SCOPE.KEY=VALUE",
    help="Override a config value; SCOPE is a method, a dataset or 'data' (all datasets); "
    "`ratbench info SCOPE` lists the keys. Repeatable.",
)
@click.option(
    "--sweep",
    "sweeps",
    multiple=True,
    metavar="SCOPE.KEY=V1,V2,...",
    help="Run every value of a config key, each a row of its own (e.g. ver.perturb_rate=0,0.3,0.5); "
    "several --sweep make a product.",
)
@click.option("--epochs", type=click.IntRange(min=1), help="Override the number of epochs of every method.")
@click.option("--limit", type=click.IntRange(min=1), help="Use at most N examples per split (smoke runs).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option(
    "--precision",
    type=click.Choice(["fp32", "bf16"]),
    default="fp32",
    show_default=True,
    help="bf16: train and evaluate under bfloat16 autocast (for CUDA GPUs); part of the cell id.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="CPU worker processes running cells at once, each cell with --cpu-threads torch threads "
    "(on GPUs use --cells-per-gpu).",
)
@click.option(
    "--cpu-threads",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="torch CPU threads per cell; part of the cell id, since the numbers depend on it "
    "(use --workers to fill the cores). At most the CPU cores available here, unless --force-threads.",
)
@click.option(
    "--force-threads",
    is_flag=True,
    help="Allow --cpu-threads above the CPU cores available here (e.g. to recreate another machine's cell ids).",
)
@click.option(
    "--gpus",
    help="GPUs to use, e.g. 0,1,3, counted among the visible ones (CUDA_VISIBLE_DEVICES) as cuda:N is "
    "(implies --device cuda; default: all visible with cuda).",
)
@click.option(
    "--cells-per-gpu",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Cells sharing one GPU at a time (small GRU cells: try 4).",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: worker processes on this machine; ray: one Ray task per cell (a cluster with --ray-address).",
)
@click.option("--ray-address", help="Address of a running Ray cluster (default: start a local Ray instance).")
@click.option(
    "--gpus-per-cell",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Ray: GPU fraction requested per cell (0.25 = four cells per GPU); 0 trains on CPU, "
    "unless --device cuda (then 1).",
)
@data_dir_option
@lenient_option
@results_option
@click.option("--force", is_flag=True, help="Rerun cells that are already done.")
@click.option(
    "--track/--no-track",
    default=None,
    help="Mirror finished cells into mlflow (default: on when mlflow is installed).",
)
@tracking_uri_option
@click.option(
    "--dry-run", is_flag=True, help="Count todo/done/failed/running/stale/corrupt cells; list the ones to run."
)
@click.option(
    "--max-cells",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Refuse a grid of more cells than this (a typo in --seeds must not start a million cells).",
)
@click.option(
    "--stale-after",
    type=click.FloatRange(min=0),
    default=24 * 3600.0,
    show_default=True,
    help="Seconds after which another scheduler's claim on a cell is presumed abandoned.",
)
@friendly_errors
def run(
    grid_name: str | None,
    methods: str | None,
    datasets: str | None,
    seeds: str,
    preset: str | None,
    sets: tuple[str, ...],
    sweeps: tuple[str, ...],
    epochs: int | None,
    limit: int | None,
    device: str,
    precision: str,
    workers: int,
    cpu_threads: int,
    force_threads: bool,
    gpus: str | None,
    cells_per_gpu: int,
    executor: str,
    ray_address: str | None,
    gpus_per_cell: float,
    data_dir: Path | None,
    lenient: bool,
    results_dir: Path,
    force: bool,
    track: bool | None,
    tracking_uri: str | None,
    dry_run: bool,
    max_cells: int,
    stale_after: float,
) -> None:
    """Train and evaluate every method x dataset.subset x seed cell that is not done yet.

    \b
    Examples:
      ratbench run --methods ver,rnp --datasets beer,hotel --seeds 1-5
      ratbench run --grid table1 --seeds 1-5 --data-dir DIR --dry-run
    """
    from ratbench.execution import launch, store

    request, flags = _from_options(launch.RunRequest), _from_options(launch.ExecutorFlags)
    flags.check(cpu_threads, force_threads)
    plan = launch.plan(request, flags.device_kind, collect_missing=dry_run)
    if dry_run:
        click.echo("\n".join(launch.dry_run_lines(plan.cells, results_dir, stale_after)))
        for problem in plan.missing:
            click.echo(f"missing: {problem}", err=True)
        if plan.missing:
            click.echo(
                f"error: {len(plan.missing)} required file(s) or model(s) missing (listed above); the cell ids "
                "above will change once they are there",
                err=True,
            )
            sys.exit(EXIT_USAGE)
        return
    options = _from_options(launch.RunOptions)
    todo = launch.prepare(plan.cells, options)
    for warning in flags.warnings(todo, cpu_threads):
        _warn(warning)
    tracker = launch.tracker_for(results_dir, track, tracking_uri, warn=_warn)
    try:
        report = launch.execute(plan.cells, todo, options, flags.build(cpu_threads), tracker)
    except KeyboardInterrupt:
        click.echo(
            f"interrupted: {launch.count_done(plan.cells, results_dir)} of {len(plan.cells)} cells are done, the "
            "claims of the others are released; run the same command again to resume",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)
    summary = report.summary
    if report.backfilled:
        click.echo(f"mlflow: mirrored {report.backfilled} finished cell(s) that the store did not hold yet")
    click.echo(
        f"{summary.total} cells: {len(summary.finished)} ran, {len(summary.skipped)} already done, "
        f"{len(summary.elsewhere)} left to other schedulers, {len(summary.failed)} failed. "
        f"Results in {store.runs_dir(results_dir)}"
    )
    for cell_id, reason in summary.failed:
        click.echo(f"  failed: {cell_id}: {reason}", err=True)
    if summary.failed:
        sys.exit(EXIT_FAILED_CELLS)


@main.command(name="sync-mlflow")
@results_option
@tracking_uri_option
@friendly_errors
def sync_mlflow(results_dir: Path, tracking_uri: str | None) -> None:
    """Mirror every finished cell into mlflow (one run per cell; cells already there are skipped)."""
    from ratbench.execution.tracking import default_tracking_uri, redact_uri, sync

    uri = tracking_uri or default_tracking_uri(results_dir)
    logged, skipped, failed = sync(results_dir, uri, warn=_warn)
    click.echo(f"mlflow {redact_uri(uri)}: {logged} logged, {skipped} already there, {failed} failed")
    if failed:
        sys.exit(EXIT_FAILED_CELLS)


@main.command()
@results_option
@mode_option
@click.option(
    "--layout",
    type=click.Choice(["generic", "table1", "table2", "table3", "leaderboard"]),
    default="generic",
    show_default=True,
    help="generic: every dataset found; table1/2/3: the paper's table (its datasets, columns, encoder, row order); "
    "leaderboard: F1 and S of every built-in select-then-predict method beside its published F1.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["github", "latex", "csv", "html"]), default="github", show_default=True
)
@click.option("--metrics", help="Columns per dataset, e.g. S,Acc,F1,iou_F1,sentence_F1,AUPRC (default: the layout's).")
@click.option(
    "--level",
    type=click.Choice(["word", "piece"]),
    help="What S, P, R, F1 count: document words or word pieces (default: word; piece for table2/3).",
)
@click.option("--methods", "method_filter", help="Only these methods (comma-separated).")
@click.option("--datasets", "dataset_filter", help="Only these datasets: NAME or NAME.SUBSET (comma-separated).")
@click.option("--with-paper", is_flag=True, help="Add the paper's published rows, F1 differences and p-values.")
@click.option(
    "--seeds",
    help="Only the cells of these seeds, e.g. 1-5 or 1,3 (as in run); rows with fewer are marked [n=k] "
    "[default: every seed; [n=k] below the most found].",
)
@click.option(
    "--include-stale",
    is_flag=True,
    help="Also show stale cells (older versions, superseded configurations) as rows of their own.",
)
@click.option(
    "--compare",
    help="BETTER,WORSE (e.g. ver,rnp): under the table, the mean difference of --compare-metric and a "
    "paired t-test over seeds, per dataset.",
)
@click.option("--compare-metric", default="F1", show_default=True, help="The metric --compare tests.")
@friendly_errors
def table(
    results_dir: Path,
    mode: str,
    layout: str,
    fmt: str,
    metrics: str | None,
    level: str | None,
    method_filter: str | None,
    dataset_filter: str | None,
    with_paper: bool,
    seeds: str | None,
    include_stale: bool,
    compare: str | None,
    compare_metric: str,
) -> None:
    """Render the results as a table: a row per method and variant, mean (std) over seeds.

    \b
    Examples:
      ratbench table --layout table1 --with-paper
      ratbench table --layout table3 --metrics S,Acc,F1,iou_F1 --format latex
      ratbench table --compare ver,rnp
    """
    from ratbench.execution.grid import parse_names, parse_seeds
    from ratbench.reporting.layouts import parse_metrics
    from ratbench.reporting.results import load_results
    from ratbench.reporting.tables import TableRequest, prose, render

    seed_list = parse_seeds(seeds) if seeds is not None else None
    frame = load_results(results_dir, warn=_warn)
    verdicts: list[str] = []
    if compare is not None:  # before the table: a bad --compare prints nothing but its one line
        from ratbench.reporting.report import compare_lines

        pair = parse_names(compare, "--compare")
        if len(pair) != 2:
            raise RatbenchError(f"--compare {compare}: give two methods, BETTER,WORSE (e.g. ver,rnp)")
        verdicts = compare_lines(frame, mode, pair[0], pair[1], compare_metric, seed_list)
    request = TableRequest(
        mode=mode,
        layout=layout,
        fmt=fmt,  # type: ignore[arg-type]  # click.Choice gives one of TableFormat's values
        metrics=parse_metrics(metrics) if metrics is not None else None,
        level=level,
        methods=parse_names(method_filter, "--methods") if method_filter is not None else None,
        datasets=parse_names(dataset_filter, "--datasets") if dataset_filter is not None else None,
        seeds=seed_list,
        include_stale=include_stale,
        with_paper=with_paper,
    )
    text = render(frame, request)
    click.echo(text, nl=False)
    if verdicts and fmt == "csv":
        click.echo(prose(verdicts, fmt), err=True, nl=False)  # CSV has no place for prose: stdout stays CSV
    elif verdicts:
        click.echo("\n" + prose(verdicts, fmt), nl=False)


@main.command()
@results_option
@mode_option
@click.option(
    "--grid", "grid_name", metavar="NAME", help="The paper grid that was run (table1, ...): lists missing cells."
)
@click.option(
    "--seeds",
    help="Only the cells of these seeds, e.g. 1-5 or 1,3 (as in run); with --grid, the seeds it was run with "
    "[default: every seed; 1-5 for the grid].",
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the report here (default: print it)."
)
@friendly_errors
def report(results_dir: Path, mode: str, grid_name: str | None, seeds: str | None, out: Path | None) -> None:
    """Write a Markdown reproduction report: what ran, the paper's tables beside its numbers,
    and a verdict per claim of the paper that the cells cover.

    \b
    Examples:
      ratbench report --results-dir results/demo
      ratbench report --grid table1 --seeds 1-5 --out report.md
    """
    from ratbench.execution import grid, paper_grids
    from ratbench.outputs import output_target, write_output_text
    from ratbench.reporting.report import build_report
    from ratbench.reporting.results import load_results

    paper = paper_grids.get_grid(grid_name) if grid_name is not None else None
    seed_list = grid.parse_seeds(seeds) if seeds is not None else None
    what = f"the report to {out}"
    if out is not None:
        output_target(out, "--out", what)  # a FIFO or folder there is refused before the report is built
    text = build_report(results_dir, load_results(results_dir, warn=_warn), mode, paper, seed_list)
    if out is None:
        click.echo(text, nl=False)
        return
    write_output_text(out, text, "--out", what)  # atomic, through a symlink, never over a FIFO or device
    click.echo(f"report written to {out}")


@main.command()
@click.option(
    "--figure",
    type=click.Choice(["curves", "sweep", "gold", "sparsity"]),
    required=True,
    help="curves: a per-epoch quantity; sweep: F1/Acc against a swept key; gold: predictor on human "
    "rationales; sparsity: F1 against achieved S.",
)
@results_option
@mode_option
@click.option(
    "--metric",
    default="",
    help="curves only: the per-epoch number of epochs.jsonl to draw, e.g. loss [default: diag_annotation_F1].",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="FILE.png, FILE.pdf or FILE.svg (the suffix picks the format); replaced atomically.",
)
@friendly_errors
def plot(figure: str, results_dir: Path, mode: str, metric: str, out: Path) -> None:
    """Draw one of the paper's figures from a results folder (needs the plot extra).

    \b
    Examples:
      ratbench plot --figure curves --results-dir results/demo --out curves.png
      ratbench plot --figure curves --metric loss --out loss.svg
      ratbench plot --figure sweep --out sweep.pdf
    """
    from ratbench.reporting.plots import check_request
    from ratbench.reporting.plots import plot as draw
    from ratbench.reporting.results import load_results

    check_request(figure, out, metric)  # before reading the results
    draw(results_dir, load_results(results_dir, warn=_warn), figure, out, mode, metric, warn=_warn)
    click.echo(f"{figure} figure written to {out}")


@main.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["eraser"]), default="eraser", show_default=True)
@mode_option
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("export"),
    show_default=True,
    help="Folder to write <cell_id>/eraser.<mode>.jsonl into (PATH itself is never written).",
)
@friendly_errors
def export(path: Path, fmt: str, mode: str, out: Path) -> None:
    """Export the predictions of PATH (a results folder or one cell) for external scorers."""
    from ratbench.reporting.export import export_eraser

    written, failed = export_eraser(path, mode, out, warn=_warn)
    for target in written:
        click.echo(target)
    if failed:
        sys.exit(EXIT_FAILED_CELLS)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@mode_option
@click.option("--methods", help="Only the cells of these methods, e.g. rnp,ver.")
@click.option("--dataset", help="The dataset (or dataset.subset) to show when the cells are of several.")
@click.option("--seeds", help="Only the cells of these seeds, e.g. 1 or 1-3.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    help="Examples to show [default: 5 in the terminal, every one with --html].",
)
@click.option("--only-wrong", is_flag=True, help="Only examples that some shown cell predicts wrongly.")
@click.option("--example", "example_ids", multiple=True, help="Show this test example id (repeatable).")
@click.option(
    "--html",
    "html_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write one self-contained page with every chosen example and a cell picker per pane, instead.",
)
@click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Terminal colours (never: [selected and gold] {selected, not gold} _gold, missed_).",
)
@data_dir_option
@friendly_errors
def show(
    paths: tuple[Path, ...],
    mode: str,
    methods: str | None,
    dataset: str | None,
    seeds: str | None,
    limit: int | None,
    only_wrong: bool,
    example_ids: tuple[str, ...],
    html_out: Path | None,
    color: str,
    data_dir: Path | None,
) -> None:
    """Show test examples of finished cells with their rationale against the human one.

    PATHS are cell folders or results folders (every finished cell below, of one dataset).
    The words are read again from the dataset, so --data-dir must hold the cells' data.

    \b
    Examples:
      ratbench show results/demo --methods rnp,ver --only-wrong
      ratbench show results/demo --methods rnp,ver --html demo.html
    """
    from ratbench import outputs
    from ratbench.execution import grid
    from ratbench.reporting import viewer

    if html_out is not None:
        outputs.output_target(html_out, "--html")  # a FIFO or device there: refused before any work
    names = grid.parse_names(methods, "--methods") if methods else None
    seed_list = grid.parse_seeds(seeds) if seeds else None
    shown = viewer.load_cells(paths, mode, names, dataset, warn=_warn, seeds=seed_list)
    documents = viewer.load_documents(shown, data_dir)
    if limit is None and html_out is None:  # a terminal shows a few; the page, every example
        limit = 5
    chosen = viewer.choose_examples(shown, documents, example_ids, only_wrong, limit)
    if not chosen:
        raise RatbenchError("no example to show" + (" (no cell predicts any wrongly)" if only_wrong else ""))
    if html_out is not None:
        spec = shown[0].spec
        cells_shown = viewer.plural(len(shown), "cell")
        title = f"ratbench show: {spec.dataset}.{spec.subset}, {mode} mode, {cells_shown}"
        outputs.write_output_text(html_out, viewer.render_html(shown, documents, chosen, title), option="--html")
        click.echo(f"{viewer.plural(len(chosen), 'example')} of {cells_shown} written to {html_out}")
        return
    colour = color == "always" or (color == "auto" and sys.stdout.isatty())
    click.echo(viewer.render_terminal(shown, documents, chosen, colour), color=colour)


@main.group()
def data() -> None:
    """Inspect and validate datasets."""


@data.command(name="check")
@click.argument("name")
@click.option("--preset", default="paper", show_default=True, help="Dataset preset to apply.")
@click.option("--set", "sets", multiple=True, metavar="SCOPE.KEY=VALUE", help="Dataset config override (repeatable).")
@data_dir_option
@lenient_option
@friendly_errors
def data_check(name: str, preset: str, sets: tuple[str, ...], data_dir: Path | None, lenient: bool) -> None:
    """Validate NAME[.SUBSET]'s files and print counts, lengths, OOV, gold sparsity and overlap."""
    from ratbench.data import check as datacheck
    from ratbench.execution import grid

    overrides = grid.parse_sets([*sets, "data.lenient=true"] if lenient else sets)
    unreadable = []
    for dataset, subset in grid.dataset_targets([name]):
        adapter = grid.build_adapter(dataset, subset, preset, overrides, data_dir)
        report = datacheck.check(adapter)
        click.echo(datacheck.render(report, adapter.config.embeddings))
        if not any(split.n for split in report.splits):
            unreadable.append(report.name)
    if unreadable:
        raise RatbenchError(
            f"{', '.join(unreadable)}: no split has any example (every file missing or empty); "
            "check --data-dir and the dataset's README"
        )


@main.command(name="ls")
@friendly_errors
def list_plugins() -> None:
    """List the registered methods and datasets (without importing torch)."""
    from ratbench.registry import DATASETS, METHODS

    lines = ["methods:"]
    for name, info in sorted(METHODS.infos().items()):
        meta = info.meta if "kind" in info.meta else {**info.meta, "kind": METHODS.get(name).kind}
        lines.append(f"  {name:<12} {meta['kind']:<15} {meta.get('description', '')}")
    lines.append("datasets:")
    for name, info in sorted(DATASETS.infos().items()):
        subsets = info.meta.get("subsets") or DATASETS.get(name).subsets
        lines.append(f"  {name:<12} subsets: {', '.join(subsets):<40} {info.meta.get('description', '')}")
    click.echo("\n".join(lines))


@main.command(name="info")
@click.argument("name")
@friendly_errors
def plugin_info(name: str) -> None:
    """What NAME (a method or a dataset) is and what it can be set to. A method: its reference
    code, the parity test that proves it, its remaining deviations (each a config flag) and the
    batch layout of its `paper` preset. Both: every `--set` key with its default (the paper's),
    type, range and meaning, and the presets."""
    from ratbench.reporting.describe import describe

    click.echo("\n".join(describe(name)))


if __name__ == "__main__":
    main()
