"""Fixtures of the dataset-adapter tests: a random-init tiny encoder, image writers that make good,
corrupt and truncated files, `datasets check` through the CLI, and extraction into a fresh store.

Every test writes its own tiny copy of a public layout; nothing is downloaded.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import Result
from PIL import Image
from typer.testing import CliRunner

from flows.datasets_cli import datasets_app
from pipeline.data.adapter import DatasetAdapter
from pipeline.data.demo import DemoAdapter, DemoConfig
from pipeline.encoders.frozen import EncoderConfig, FrozenEncoder, build_encoder
from pipeline.evaluation import DecoderTraining, evaluate_restoration
from pipeline.extraction import ExtractionResult, ExtractionSettings, extract
from pipeline.models.decoder import DecoderConfig
from pipeline.restoration import RestoreSettings, restore
from stores.results_store import query


def image_bytes(colour: tuple[int, int, int] = (200, 40, 40), fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), colour).save(buffer, format=fmt)
    return buffer.getvalue()


def write_image(path: Path, colour: tuple[int, int, int] = (200, 40, 40)) -> Path:
    """A valid image whose format follows the suffix (.jpg, .jpeg, .png)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "PNG" if path.suffix == ".png" else "JPEG"
    path.write_bytes(image_bytes(colour, fmt))
    return path


def write_garbage(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not an image")
    return path


def write_truncated(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = image_bytes((30, 30, 200))
    path.write_bytes(data[: len(data) // 3])
    return path


@pytest.fixture()
def files() -> SimpleNamespace:
    """The image writers: files.image(path), files.garbage(path), files.truncated(path), files.encoded()."""
    return SimpleNamespace(
        image=write_image, garbage=write_garbage, truncated=write_truncated, encoded=image_bytes
    )


@pytest.fixture(scope="session")
def tiny_encoder() -> FrozenEncoder:
    return build_encoder(EncoderConfig(model="mmr-tiny", pretrained="random"))


@pytest.fixture()
def run_extract(tmp_path: Path, tiny_encoder: FrozenEncoder) -> Callable[..., ExtractionResult]:
    """Extract an adapter into a fresh store; `workers=1` sends the image refs through pickling."""

    def run(adapter: DatasetAdapter, workers: int = 0) -> ExtractionResult:
        settings = ExtractionSettings(chunk_rows=4, batch_size=3, workers=workers)
        return extract(adapter, tiny_encoder, str(tmp_path / "store"), settings, progress=False)

    return run


@pytest.fixture()
def run_evaluate(tmp_path: Path, tiny_encoder: FrozenEncoder) -> Callable[..., dict[str, float]]:
    """After `run_extract`: mask (eta 0.5, both), restore with `zero`, train the decoder, score
    the test split and append the scores to the results; returns the test scores."""

    def run(adapter: DatasetAdapter) -> dict[str, float]:
        root = str(tmp_path / "store")
        restored = restore(
            root, adapter.info.name, tiny_encoder.encoder_id, "zero", 0.5, "both", 0, RestoreSettings()
        )
        training = DecoderTraining(decoder=DecoderConfig(width=16, heads=2), epochs=2, batch_size=4)
        _, result = evaluate_restoration(root, adapter.info.name, tiny_encoder.encoder_id, restored, training)
        _, rows = query(root, "SELECT DISTINCT dataset, metric FROM metrics")
        assert (adapter.info.name, adapter.info.metric) in rows  # the headline metric reached the results
        return result.test_scores

    return run


@pytest.fixture()
def run_check() -> Callable[..., Result]:
    """`datasets check --dataset NAME --root ROOT [--option KEY=VALUE ...]` through the CLI."""

    def run(dataset: str, root: Path | str, *options: str) -> Result:
        arguments = ["check", "--dataset", dataset, "--root", str(root), "--workers", "2"]
        for option in options:
            arguments += ["--option", option]
        return CliRunner().invoke(datasets_app, arguments)

    return run


def error_line(result: Result) -> str:
    """The one `error:` line of a refused command (exit status 2), without the prefix."""
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0].removeprefix("error: ")


@pytest.fixture()
def refused() -> Callable[[Result], str]:
    return error_line


@pytest.fixture()
def tiny_demo() -> DemoConfig:
    """A demo small enough to extract in a second: 24 corpus pairs, 28 demo-tags rows."""
    return DemoConfig(corpus_size=24, train_size=16, val_size=4, test_size=8, image_size=16)


@pytest.fixture()
def tiny_demo_store(
    tmp_path: Path, run_extract: Callable, tiny_encoder: FrozenEncoder, tiny_demo: DemoConfig
) -> tuple[str, str]:
    """`run_extract`'s store holding `tiny_demo`'s demo-corpus and demo-tags: (root, encoder id)."""
    for name in ("demo-corpus", "demo-tags"):
        run_extract(DemoAdapter(name, tiny_demo))
    return str(tmp_path / "store"), tiny_encoder.encoder_id
