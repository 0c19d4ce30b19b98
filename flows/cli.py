"""The `mmr-pipeline` command line."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from pipeline.errors import MMRError

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)

StoreOption = Annotated[
    str,
    typer.Option(help="Store root: a directory or fsspec URL (s3://bucket/prefix). Env: MMR_STORE."),
]
ConfigOption = Annotated[
    str | None, typer.Option(help="Named preset in configs/ (demo, demo-small) or a JSON file.")
]


@app.callback()
def cli() -> None:
    """mmr-pipeline: restore missing image or text features with a gated conditional DiT."""


def default_store() -> str:
    return os.environ.get("MMR_STORE", "mmr-store")


def one_line_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Report a user's mistake as one `error:` line and exit 2; bugs keep their traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except MMRError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2) from None
        except ValidationError as error:
            problem = error.errors()[0]
            where = ".".join(str(part) for part in problem["loc"]) or "input"
            typer.echo(f"error: {where}: {problem['msg']}", err=True)
            raise typer.Exit(2) from None

    return wrapper


def _setup_logging() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    for name in ("pipeline", "stores", "flows"):
        logging.getLogger(name).setLevel(logging.INFO)


def _device(name: str) -> str:
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@app.command()
@one_line_errors
def extract(
    dataset: Annotated[str, typer.Option(help="Dataset name, or `demo` for all demo datasets.")] = "demo",
    root: Annotated[str | None, typer.Option(help="Raw dataset folder (not needed for demo).")] = None,
    store: StoreOption = "",
    model: Annotated[str, typer.Option(help="open_clip model name, e.g. ViT-B-32.")] = "mmr-tiny",
    pretrained: Annotated[
        str, typer.Option(help="open_clip tag (openai), checkpoint path, `demo` or `random`.")
    ] = "demo",
    config: ConfigOption = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1 ...")] = "auto",
    workers: Annotated[int | None, typer.Option(help="Image-decoding worker processes.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Samples per encoder batch.")] = None,
) -> None:
    """Extract frozen-encoder features of a dataset into the feature store (resumable)."""
    _setup_logging()
    from pipeline.config import load_config
    from pipeline.data.registry import expand, get_adapter
    from pipeline.encoders.frozen import EncoderConfig
    from pipeline.encoders.warmup import load_encoder
    from pipeline.extraction import extract as run_extraction

    store = store or default_store()
    names = expand(dataset)
    settings = load_config(config)
    overrides = {key: value for key, value in {"workers": workers, "batch_size": batch_size}.items() if value}
    extraction = settings.extraction.model_copy(update=overrides)
    adapters = [
        get_adapter(name, root, settings.demo.model_dump() if name.startswith("demo") else None)
        for name in names
    ]
    encoder = load_encoder(
        EncoderConfig(model=model, pretrained=pretrained),
        store,
        warmup=settings.warmup,
        demo=settings.demo,
        device=_device(device),
        workers=extraction.workers,
    )
    for adapter in adapters:
        result = run_extraction(adapter, encoder, store, extraction)
        absent = ", ".join(f"{modality} {kind}: {n}" for (modality, kind), n in sorted(result.absent.items()))
        speed = f" ({result.samples_per_second:,.0f} samples/s)" if result.shards_written else ""
        typer.echo(
            f"{result.dataset}: {result.n_rows} rows, {result.shards_total} shards "
            f"({result.shards_skipped} already committed, {result.shards_written} written) "
            f"in {result.seconds:.1f} s{speed} -> {result.url}"
        )
        typer.echo(f"  absent modalities: {absent or 'none'}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
