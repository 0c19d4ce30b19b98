"""The `mmr-pipeline` command line."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from flows.cli_errors import ClickException, NoArgsIsHelpError, UsageError, one_line_errors
from flows.datasets_cli import datasets_app
from pipeline.runtime import BENCHMARK_RESTORERS, default_store, resolve_device

if TYPE_CHECKING:
    from pipeline.restoration import RestoreResult

Number = TypeVar("Number", int, float)

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)

StoreOption = Annotated[
    str,
    typer.Option(help="Store root: a directory or fsspec URL (s3://bucket/prefix). Env: MMR_STORE."),
]
ConfigOption = Annotated[
    str | None,
    typer.Option(
        help="Named preset in configs/ (demo, demo-small, paper) or a JSON file of overrides "
        "(its `datasets` section holds adapter options, docs/datasets.md)."
    ),
]


@app.callback()
def cli() -> None:
    """mmr-pipeline: restore missing image or text features with a gated conditional DiT."""


def _setup_logging() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    for name in ("pipeline", "stores", "flows"):
        logging.getLogger(name).setLevel(logging.INFO)


def _announce_new_store(root: str) -> None:
    """Say so when the first step is about to start a new store (after the options are checked):
    a mistyped --store would otherwise build one nobody asked for, warm-up minutes first.

    Local stores only: fsspec's `exists` answers False on any error for an object store, so an
    existing one out of reach (credentials, network) would be announced as new."""
    from fsspec.implementations.local import LocalFileSystem

    from stores.fs import url_to_fs

    fs, path = url_to_fs(root)
    if isinstance(fs, LocalFileSystem) and not fs.exists(path):
        # fsspec's local path is absolute: a relative root (the default, mmr-store) is named where it lands.
        typer.echo(
            f"new store at {path}: nothing is there yet (meant another? pass --store or set MMR_STORE)",
            err=True,
        )


def _features(
    datasets: list[tuple[str, str | None]], store: str, model: str, pretrained: str, config: str | None,
    device: str, workers: int | None = None, batch_size: int | None = None, quiet_skips: bool = False,
) -> str:  # fmt: skip
    """Extract (or find already extracted) features of (name, raw root) pairs; returns the encoder id."""
    from pipeline.config import load_config, overridden
    from pipeline.data.registry import configured_adapter
    from pipeline.encoders.frozen import EncoderConfig
    from pipeline.encoders.warmup import load_encoder
    from pipeline.extraction import extract as run_extraction

    settings = load_config(config)
    extraction = overridden(settings.extraction, workers=workers, batch_size=batch_size)
    adapters = [configured_adapter(name, root, settings) for name, root in datasets]
    resolved_device = resolve_device(device)
    _announce_new_store(store)
    encoder = load_encoder(
        EncoderConfig(model=model, pretrained=pretrained),
        store,
        warmup=settings.warmup,
        demo=settings.demo,
        device=resolved_device,
        workers=extraction.workers,
    )
    for adapter in adapters:
        result = run_extraction(adapter, encoder, store, extraction)
        if quiet_skips and not result.shards_written:
            continue
        absent = ", ".join(f"{modality} {kind}: {n}" for (modality, kind), n in sorted(result.absent.items()))
        speed = f" ({result.samples_per_second:,.0f} samples/s)" if result.shards_written else ""
        typer.echo(
            f"{result.dataset}: {result.n_rows} rows, {result.shards_total} shards "
            f"({result.shards_skipped} already committed, {result.shards_written} written) "
            f"in {result.seconds:.1f} s{speed} -> {result.url}"
        )
        typer.echo(f"  absent modalities: {absent or 'none'}")
    return encoder.encoder_id


ModelOption = Annotated[str, typer.Option(help="open_clip model name, e.g. ViT-B-32.")]
PretrainedOption = Annotated[
    str, typer.Option(help="open_clip tag (openai), checkpoint path, `demo` or `random`.")
]
DeviceOption = Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1 ...")]


@app.command()
@one_line_errors
def extract(
    dataset: Annotated[str, typer.Option(help="Dataset name, or `demo` for all demo datasets.")] = "demo",
    root: Annotated[str | None, typer.Option(help="Raw dataset folder (not needed for demo).")] = None,
    store: StoreOption = "",
    model: ModelOption = "mmr-tiny",
    pretrained: PretrainedOption = "demo",
    config: ConfigOption = None,
    device: DeviceOption = "auto",
    workers: Annotated[int | None, typer.Option(help="Image-decoding worker processes.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Samples per encoder batch.")] = None,
) -> None:
    """Extract frozen-encoder features of a dataset into the feature store (resumable)."""
    _setup_logging()
    from pipeline.data.registry import expand

    names = [(name, root) for name in expand(dataset)]
    _features(names, store or default_store(), model, pretrained, config, device, workers, batch_size)


@app.command()
@one_line_errors
def train(
    corpus: Annotated[str, typer.Option(help="Mid-stage corpus: `demo`, `webdataset`, `coco`...")] = "demo",
    root: Annotated[str | None, typer.Option(help="Raw corpus folder (not needed for demo).")] = None,
    store: StoreOption = "",
    model: ModelOption = "mmr-tiny",
    pretrained: PretrainedOption = "demo",
    config: ConfigOption = None,
    variant: Annotated[str | None, typer.Option(help="gating (ours), adaln, concat or none.")] = None,
    stages: Annotated[int | None, typer.Option(help="1: L_base only; 2: then L_mutual too.")] = None,
    preset: Annotated[str | None, typer.Option(help="DiT size preset: demo or paper.")] = None,
    restorer: Annotated[
        str, typer.Option(help="dit (this project's variant) or dit-paper (the paper's method).")
    ] = "dit",
    device: DeviceOption = "auto",
) -> None:
    """Train the I2T and T2I restorers on the corpus features (extracts them first if needed)."""
    _setup_logging()
    from pipeline.ablations import dit_change
    from pipeline.data.registry import corpus_dataset
    from pipeline.encoders.frozen import EncoderConfig
    from pipeline.errors import ConfigError
    from pipeline.models.dit import DIT_PRESETS, with_feature_dim
    from pipeline.restoration import train as run_training
    from pipeline.restorers import DIT_RESTORERS
    from pipeline.steps import RunSpec, training_config

    if restorer not in DIT_RESTORERS:
        raise ConfigError(f"--restorer {restorer!r}: choose one of {', '.join(DIT_RESTORERS)}")
    if preset is not None and preset not in DIT_PRESETS:
        raise ConfigError(f"--preset {preset!r}: choose one of {', '.join(DIT_PRESETS)}")
    store = store or default_store()
    name = corpus_dataset(corpus)
    spec = RunSpec(store=store, model=model, pretrained=pretrained, config=config,
                   change=dit_change(variant, stages, None))  # fmt: skip
    train_config = training_config(spec, restorer)
    if preset is not None:
        train_config = train_config.model_copy(update={"dit": train_config.dit.model_copy(update=DIT_PRESETS[preset])})
    # Tokens that do not divide the encoder's width fail before any extraction.
    with_feature_dim(train_config.dit, EncoderConfig(model=model, pretrained=pretrained).embed_dim)
    encoder_id = _features([(name, root)], store, model, pretrained, config, device, quiet_skips=True)
    trained, result = run_training(store, name, encoder_id, train_config, device=resolve_device(device))
    if result is None:
        typer.echo(f"restorer {trained.restorer_id}: already trained -> {trained.url}")
        return
    losses = ", ".join(f"{key} {value:.4f}" for key, value in result.final_losses.items())
    typer.echo(
        f"restorer {trained.restorer_id}: steps {result.resumed_from} -> {result.steps} in {result.seconds:.1f} s"
        f" ({losses}) -> {trained.url}"
    )


DownstreamOption = Annotated[str, typer.Option(help="Downstream dataset, or `demo` for both demo tasks.")]
RootOption = Annotated[str | None, typer.Option(help="Raw dataset folder (not needed for demo).")]
MissingRateOption = Annotated[float, typer.Option(help="Fraction eta of samples missing a modality.")]
MaskSeedOption = Annotated[int, typer.Option(help="Mask seed (the decoder's seed follows it).")]
StepsOption = Annotated[int | None, typer.Option(help="Sampling steps S for dit.")]
CorpusOption = Annotated[str, typer.Option(help="The mid-stage corpus the restorers learn from.")]
CorpusRootOption = Annotated[str | None, typer.Option(help="Raw corpus folder (not needed for demo).")]
MissingTypeOption = Annotated[str, typer.Option(help="image, text or both.")]
RecentreOption = Annotated[
    bool | None,
    typer.Option(
        "--recentre/--no-recentre",
        help="dit, knn, regression: add swap_gap's correction, fitted on the downstream train split "
        "(default: the config's; the demo's recentres).",
    ),
]
RestorerOption = Annotated[
    str,
    typer.Option(
        help="dit-paper, dit, zero, mean, swap, swap_gap, knn, regression, oracle, a comma list, or all."
    ),
]


def _restorations(
    dataset: str, root: str | None, missing_rate: float, missing_type: str, restorer: str, seed: int,
    steps: int | None, samples: int | None, corpus: str, corpus_root: str | None, store: str, model: str,
    pretrained: str, config: str | None, variant: str | None, stages: int | None, device: str,
    recentre: bool | None = None,
) -> Iterator[tuple[str, str, RestoreResult]]:  # fmt: skip
    """Restore every (downstream dataset, restorer) pair, running upstream steps as needed."""
    from pipeline.ablations import dit_change
    from pipeline.config import overridden
    from pipeline.data.registry import corpus_dataset, downstream
    from pipeline.restoration import restore as run_restore
    from pipeline.restoration import train as run_training
    from pipeline.restorers import DIT_RESTORERS, RESTORER_NAMES
    from pipeline.steps import (
        RunSpec,
        check_choices,
        check_feature_width,
        distinct_restorers,
        restore_settings,
        training_config,
    )

    spec = RunSpec(store=store, model=model, pretrained=pretrained, config=config, recentre=recentre,
                   change=dit_change(variant, stages, steps))  # fmt: skip
    chosen = list(RESTORER_NAMES) if restorer == "all" else restorer.split(",")
    check_choices(chosen, [missing_type], [missing_rate])
    restorers = distinct_restorers(spec, chosen)
    check_feature_width(spec, restorers)
    settings = {name: overridden(restore_settings(spec, name), samples=samples) for name in restorers}
    train_configs = {name: training_config(spec, name) for name in restorers if name in DIT_RESTORERS}
    names = downstream([dataset])
    corpus_name = corpus_dataset(corpus)
    datasets = [(name, root) for name in names] + [(corpus_name, corpus_root)]
    encoder_id = _features(datasets, store, model, pretrained, config, device, quiet_skips=True)
    trained = {
        name: run_training(store, corpus_name, encoder_id, train_config, device=resolve_device(device))[0]
        for name, train_config in train_configs.items()
    }
    for name in names:
        for restorer_name in restorers:
            result = run_restore(store, name, encoder_id, restorer_name, missing_rate, missing_type, seed,  # type: ignore[arg-type]
                                 settings[restorer_name], corpus=corpus_name, trained=trained.get(restorer_name),
                                 device=resolve_device(device))  # fmt: skip
            yield name, encoder_id, result


@app.command()
@one_line_errors
def restore(
    dataset: DownstreamOption = "demo",
    root: RootOption = None,
    missing_rate: MissingRateOption = 0.7,
    missing_type: MissingTypeOption = "both",
    restorer: RestorerOption = "dit",
    seed: MaskSeedOption = 0,
    steps: StepsOption = None,
    samples: Annotated[
        int | None, typer.Option(help="dit: average this many DDIM draws (default 1).")
    ] = None,
    corpus: CorpusOption = "demo",
    corpus_root: CorpusRootOption = None,
    store: StoreOption = "",
    model: ModelOption = "mmr-tiny",
    pretrained: PretrainedOption = "demo",
    config: ConfigOption = None,
    variant: Annotated[str | None, typer.Option(help="DiT gating variant.")] = None,
    stages: Annotated[int | None, typer.Option(help="DiT training stages.")] = None,
    device: DeviceOption = "auto",
    recentre: RecentreOption = None,
) -> None:
    """Fill masked modalities with a restorer and report cosine similarity to the truth."""
    _setup_logging()
    for name, _, result in _restorations(
        dataset, root, missing_rate, missing_type, restorer, seed, steps, samples, corpus, corpus_root,
        store or default_store(), model, pretrained, config, variant, stages, device, recentre,
    ):  # fmt: skip
        quality = result.manifest["quality"]
        figures = ", ".join(
            f"{k.removeprefix('cosine_')} {v:.3f}" for k, v in sorted(quality.items()) if "test" in k
        )
        cached = " (cached)" if result.cached else ""
        typer.echo(f"{name} {result.manifest['restorer']:<10} cosine to truth: {figures}{cached}")


@app.command()
@one_line_errors
def evaluate(
    dataset: DownstreamOption = "demo",
    root: RootOption = None,
    missing_rate: MissingRateOption = 0.7,
    missing_type: MissingTypeOption = "both",
    restorer: RestorerOption = "dit",
    seed: MaskSeedOption = 0,
    steps: StepsOption = None,
    corpus: CorpusOption = "demo",
    corpus_root: CorpusRootOption = None,
    store: StoreOption = "",
    model: ModelOption = "mmr-tiny",
    pretrained: PretrainedOption = "demo",
    config: ConfigOption = None,
    device: DeviceOption = "auto",
    recentre: RecentreOption = None,
) -> None:
    """Restore, train the decoder on the train split, score the test split, append the results."""
    _setup_logging()
    from pipeline.steps import RunSpec
    from pipeline.steps import evaluate as run_evaluation

    store = store or default_store()
    spec = RunSpec(store=store, model=model, pretrained=pretrained, config=config)
    for name, _, restoration in _restorations(
        dataset, root, missing_rate, missing_type, restorer, seed, steps, None, corpus, corpus_root,
        store, model, pretrained, config, None, None, device, recentre,
    ):  # fmt: skip
        # The flows' step: an evaluation already in the results is shown, not appended again.
        evaluation = run_evaluation(spec, restoration.manifest, in_process=True)
        how = (
            "in the results already" if evaluation["cached"] else f"best epoch {evaluation['best_epoch'] + 1}"
        )
        listed = ", ".join(f"{metric} {value:.4f}" for metric, value in evaluation["scores"].items())
        typer.echo(
            f"{name} {restoration.manifest['restorer']:<10} eta {missing_rate} {missing_type}: {listed} "
            f"(n={evaluation['n']}, {how}, run {evaluation['run_id']})"
        )


@app.command()
@one_line_errors
def report(
    store: StoreOption = "",
    missing_rate: Annotated[
        float | None, typer.Option(help="Only this eta (default: every evaluated one).")
    ] = None,
    config: ConfigOption = None,
    steps: Annotated[
        int | None, typer.Option(help="S of the DiT in the main table (default: the config's).")
    ] = None,
    encoder_id: Annotated[
        str | None,
        typer.Option(help="Features' encoder, as the report names it (default: each dataset's newest)."),
    ] = None,
    recentre: Annotated[
        bool | None,
        typer.Option(
            "--recentre/--no-recentre",
            help="The table's DiT: recentred or zero-shot (default: the config's).",
        ),
    ] = None,
    corpus: CorpusOption = "demo",
) -> None:
    """Write the benchmark tables (Markdown + CSV, the shape of the paper's Table 1) under the store.

    They show this code version's evaluations by the config's decoder recipe; the report says
    how many others the store holds."""
    from pipeline.ablations import dit_change
    from pipeline.data.registry import corpus_dataset
    from pipeline.steps import RunSpec, write_report
    from stores.fs import is_local

    store = store or default_store()
    spec = RunSpec(store=store, config=config, recentre=recentre, change=dit_change(None, None, steps))
    written = write_report(spec, corpus_dataset(corpus), missing_rate, encoder_id)
    for markdown in written["tables"].values():
        typer.echo(markdown)
    for path in written["files"]:
        typer.echo(f"written: {path}")
    if not is_local(store):
        typer.echo("figures: not drawn, they are drawn for local stores only (copy the store to a disk)")


@app.command()
@one_line_errors
def sql(
    statement: Annotated[
        str, typer.Argument(help='e.g. "SELECT restorer, avg(value) FROM metrics GROUP BY 1"')
    ],
    store: StoreOption = "",
    format: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """Query the results (view `metrics`) with DuckDB, read-only."""
    import csv
    import json
    import sys

    import duckdb
    from rich.console import Console
    from rich.table import Table

    from pipeline.errors import ConfigError
    from stores.results_store import query

    if format not in ("table", "csv", "json"):
        raise ConfigError(f"--format {format!r}: use table, csv or json")
    if not statement.strip():
        raise ConfigError('the SQL statement is empty: pass one, e.g. "SELECT * FROM metrics LIMIT 5"')
    try:
        columns, rows = query(store or default_store(), statement)
    except duckdb.Error as error:
        raise ConfigError(f"SQL failed: {str(error).splitlines()[0]}") from None
    if format == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(rows)
    elif format == "json":
        typer.echo(json.dumps([dict(zip(columns, row, strict=True)) for row in rows], default=str, indent=2))
    else:
        table = Table(*columns)
        for row in rows:
            table.add_row(*(f"{value:.4f}" if isinstance(value, float) else str(value) for value in row))
        Console().print(table)


def _prefect_environment(store: str) -> None:
    """Prefect's ephemeral mode with its state under a local store, unless a server is configured."""
    from stores.fs import is_local

    if "PREFECT_API_URL" not in os.environ and is_local(store):
        home = os.path.abspath(os.path.join(store.removeprefix("file://"), ".prefect"))
        os.makedirs(home, exist_ok=True)  # Prefect makes only the last folder of its home
        os.environ["PREFECT_HOME"] = home
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The ephemeral server takes ~20 s to start on 2 cores; Prefect's default gives up sooner.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # progress bars and the table say enough


def _split(values: str) -> list[str]:
    return [value.strip() for value in values.split(",") if value.strip()]


def _numbers(values: str, kind: type[Number], option: str, example: str) -> list[Number]:
    """A comma list option's numbers; a ConfigError naming the option and its bad entry."""
    from pipeline.errors import ConfigError

    numbers = []
    for value in _split(values):
        try:
            numbers.append(kind(value))
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise ConfigError(
                f"{option} {values!r}: {value!r} is not {what}; write a comma list, e.g. {option} {example}"
            ) from None
    return numbers


@app.command()
@one_line_errors
def run(
    missing_rate: Annotated[
        str, typer.Option(help="Missing rate eta, or a comma list (0.1,0.5,0.7).")
    ] = "0.7",
    dataset: Annotated[
        str, typer.Option(help="Downstream datasets, comma list (`demo` = both demo tasks).")
    ] = "demo",
    root: Annotated[
        list[str] | None, typer.Option(help="NAME=PATH raw folder of a real dataset; repeatable.")
    ] = None,
    restorers: Annotated[
        str, typer.Option(help="Comma list of restorers, or `all` (adds swap, swap_gap, knn, regression).")
    ] = ",".join(BENCHMARK_RESTORERS),
    missing_types: Annotated[str, typer.Option(help="Comma list of image, text, both.")] = "image,text,both",
    seeds: Annotated[str, typer.Option(help="Comma list of mask seeds.")] = "0,1,2",
    steps: StepsOption = None,
    corpus: CorpusOption = "demo",
    corpus_root: CorpusRootOption = None,
    store: StoreOption = "",
    model: ModelOption = "mmr-tiny",
    pretrained: PretrainedOption = "demo",
    config: ConfigOption = None,
    device: DeviceOption = "auto",
    workers: Annotated[
        int, typer.Option(help="Tasks run at once (threads; decoders train in as many processes).")
    ] = 2,
    dask_address: Annotated[
        str | None, typer.Option(help="Run tasks on this Dask scheduler instead.")
    ] = None,
    ablations: Annotated[
        bool,
        typer.Option(
            help="Also run the paper's ablations for each DiT row (Tables 2 to 5: modules, corpus size, "
            "depth, sampling steps) and Figure 5's missing rates 0.1 to 0.9 for every restorer."
        ),
    ] = False,
    recentre: RecentreOption = None,
) -> None:
    """Run the whole benchmark (extract, train, restore, evaluate, report) as a Prefect flow."""
    from pipeline.errors import ConfigError

    store = store or default_store()
    rates = _numbers(missing_rate, float, "--missing-rate", "0.1,0.7")
    seed_list = _numbers(seeds, int, "--seeds", "0,1,2")
    roots = {}
    for pair in root or []:
        name, sep, path = pair.partition("=")
        if not sep:
            raise ConfigError(f"--root {pair!r}: write NAME=PATH, e.g. --root mmimdb=/data/mmimdb")
        roots[name] = path
    from pipeline.ablations import dit_change
    from pipeline.restorers import RESTORER_NAMES
    from pipeline.steps import RunSpec, check_run

    chosen = list(RESTORER_NAMES) if restorers == "all" else _split(restorers)
    spec = RunSpec(store=store, model=model, pretrained=pretrained, config=config,
                   device=resolve_device(device), recentre=recentre, change=dit_change(None, None, steps))  # fmt: skip
    # Before Prefect's server starts (~20 s): a typo is one line, not a flow run's traceback.
    check_run(spec, _split(dataset), corpus, chosen, _split(missing_types), rates, roots, corpus_root)
    _announce_new_store(store)
    _prefect_environment(store)  # before Prefect is imported: it reads its home then
    from flows.flows import benchmark_flow
    from flows.runners import task_runner

    result = benchmark_flow.with_options(task_runner=task_runner(workers, dask_address))(
        datasets=_split(dataset), missing_rates=rates, missing_types=_split(missing_types), seeds=seed_list,
        restorers=chosen, corpus=corpus, corpus_root=corpus_root, roots=roots or None, store=store,
        model=model, pretrained=pretrained, config=config, device=device, steps=steps, ablations=ablations,
        recentre=recentre,
    )  # fmt: skip
    for name, training in result["trainings"].items():
        if training["trained_now"]:
            typer.echo(f"{name} restorer {training['restorer_id']}: trained steps {training['resumed_from']} -> "
                       f"{training['steps']} in {training['seconds']:.0f} s")  # fmt: skip
        else:
            typer.echo(f"{name} restorer {training['restorer_id']}: already trained")
    for markdown in result["tables"].values():
        typer.echo(markdown)
    if result["robustness"]:
        typer.echo(result["robustness"])
    typer.echo(f"{result['evaluations']} evaluations, {result['computed']} computed now; report in "
               f"{result['folder']}")  # fmt: skip


app.add_typer(datasets_app, name="datasets")


def main() -> None:
    """The console entry point. A mistyped command line (an unknown option, a value of the wrong
    type) is one `error:` line, as the commands' own checks are, not click's usage text in a box."""
    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as error:  # `mmr-pipeline` or a group alone: its help
        help_text = error.format_message()  # empty where typer has printed it (with rich) already
        if help_text:
            typer.echo(help_text)
        raise SystemExit(0) from None
    except UsageError as error:
        command = error.ctx.command_path if error.ctx else "mmr-pipeline"
        typer.echo(f"error: {error.format_message()} (see `{command} --help`)", err=True)
        raise SystemExit(2) from None
    except ClickException as error:
        typer.echo(f"error: {error.format_message()}", err=True)
        raise SystemExit(error.exit_code) from None
    except typer.Abort:
        typer.echo("aborted", err=True)
        raise SystemExit(1) from None
    # Not standalone, click returns a command's exit code (typer.Exit) instead of exiting.
    raise SystemExit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
