"""`mmr-pipeline datasets ...`: inspect raw dataset layouts before extracting them."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from flows.cli_errors import one_line_errors
from pipeline.data.check import CheckReport, check_dataset
from pipeline.errors import ConfigError, DatasetLayoutError

datasets_app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


@datasets_app.callback()
def datasets() -> None:
    """Inspect raw dataset layouts before extracting them."""


def parse_options(pairs: list[str]) -> dict[str, object]:
    """`KEY=VALUE` pairs; a VALUE that parses as JSON (numbers, lists) is taken as JSON."""
    options: dict[str, object] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key.strip():
            raise ConfigError(f"--option {pair!r} is not KEY=VALUE (e.g. --option val_percent=5)")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return options


def _print_report(report: CheckReport) -> None:
    info, console = report.info, Console()
    kind = {"single": "single-label", "multi": "multi-label", "none": "unlabelled"}[info.label_kind]
    console.print(
        f"[bold]{info.name}[/] at {report.root}: {kind}, metric {info.metric}, {len(info.classes)} classes",
        soft_wrap=True,
    )
    table = Table(
        "split", "samples", "image ok", "missing", "unreadable", "no image", "empty text", "no label"
    )
    columns = (
        "samples",
        "image_ok",
        "image_missing",
        "image_unreadable",
        "image_absent",
        "empty_text",
        "unlabelled",
    )
    for split, counts in report.splits.items():
        table.add_row(split, *(f"{getattr(counts, name):,}" for name in columns))
    overall = report.overall
    table.add_row("all", *(f"{getattr(overall, name):,}" for name in columns), style="bold")
    console.print(table)
    if report.labels:
        splits = list(report.splits)
        labels = Table("class", *splits, title="samples per label")
        for name in info.classes:
            labels.add_row(name, *(f"{report.labels[split, name]:,}" for split in splits))
        console.print(labels)
    for line in report.bad_images:
        console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
    for note, count in report.notes.items():
        console.print(f"note: {count:,} {note}", markup=False, highlight=False, soft_wrap=True)


@datasets_app.command()
@one_line_errors
def check(
    dataset: Annotated[
        str, typer.Option(help="Dataset name: mmimdb, food101, n24news, mmhs11k, hatememes...")
    ],
    root: Annotated[str, typer.Option(help="The folder you downloaded: a directory or fsspec URL.")],
    option: Annotated[
        list[str] | None,
        typer.Option(
            help="Adapter option KEY=VALUE, repeatable (e.g. text_fields=headline,body); "
            "laid over the --config file's options for the dataset."
        ),
    ] = None,
    config: Annotated[
        str | None,
        typer.Option(
            help="Named preset in configs/ or a JSON file: its `datasets` section holds adapter options "
            "(docs/datasets.md)."
        ),
    ] = None,
    workers: Annotated[int, typer.Option(help="Threads decoding images.")] = 8,
) -> None:
    """Validate a raw layout: counts per split and label, missing or unreadable images, empty texts.

    Exits 0 when the layout can be extracted; otherwise prints one `error:` line with the fix.
    """
    from pipeline.data.registry import get_adapter

    configured = {}
    if config is not None:  # pipeline.config imports torch: only when a config is given
        from pipeline.config import load_config

        configured = load_config(config).datasets.get(dataset, {})
    options = {**configured, **parse_options(option or [])}
    fix = f"fix the --option or datasets.{dataset} in the --config file (docs/datasets.md lists the options)"
    adapter = get_adapter(dataset, root, options, fix)
    report = check_dataset(adapter, root, workers=workers, progress=sys.stderr.isatty())
    problems = report.problems
    if problems:
        more = f" ({len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise DatasetLayoutError(f"{problems[0]}{more}")
    _print_report(report)
