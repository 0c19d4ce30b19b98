"""Adapter options as configuration: a config file's `datasets` section reaches every place that
builds an adapter (the flows' run spec, the CLI's extraction, `datasets check`), a bad entry is one
error line, and a store extracted with other options is refused, not mixed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest
from click.testing import Result
from test_food101 import write_food101  # a sibling test module (pytest puts tests/datasets on sys.path)
from typer.testing import CliRunner

from flows.cli import app
from flows.datasets_cli import datasets_app
from pipeline import steps
from pipeline.config import CONFIG_DIR


def write_config(path: Path, datasets: dict[str, object]) -> str:
    """demo-small (whose warmed-up encoder `store_with_encoder` holds) with a `datasets` section."""
    settings = json.loads((CONFIG_DIR / "demo-small.json").read_text())
    path.write_text(json.dumps({**settings, "datasets": datasets}))
    return str(path)


def stored_splits(store: Path) -> list[str]:
    """The splits of the food101 listing stored under `store`."""
    (samples,) = store.glob("features/food101/*/samples.parquet")
    return pq.read_table(samples, columns=["split"]).column("split").to_pylist()


def manifest_options(store: Path) -> dict[str, object]:
    (manifest,) = store.glob("features/food101/*/manifest.json")
    return json.loads(manifest.read_text())["dataset_options"]


def extract(store: Path, root: Path, config: str) -> tuple[int, str]:
    arguments = ["extract", "--dataset", "food101", "--root", str(root), "--store", str(store)]
    result = CliRunner().invoke(app, [*arguments, "--config", config])
    return result.exit_code, result.output


@pytest.fixture()
def food(tmp_path: Path, files: SimpleNamespace) -> Path:
    write_food101(tmp_path / "food", files)
    return tmp_path / "food"


def test_config_options_reach_the_flows_adapter_and_the_stored_listing(
    tmp_path: Path, food: Path, store_with_encoder: Path
) -> None:
    config = write_config(tmp_path / "keep-train.json", {"food101": {"val_percent": 0}})
    spec = steps.RunSpec(store=str(store_with_encoder), config=config)
    adapter = spec.adapter("food101", str(food))
    assert adapter.options() == {"val_percent": 0}
    assert "val" not in {sample.split for sample in adapter.samples()}
    # the defaults carve a val split from the same files
    assert "val" in {
        sample.split for sample in steps.RunSpec(store="s").adapter("food101", str(food)).samples()
    }

    planned = steps.plan_extraction(spec, "food101", str(food))  # the flows' extraction step
    assert planned["todo"] and "val" not in stored_splits(store_with_encoder)
    assert manifest_options(store_with_encoder) == {"val_percent": 0}


def test_config_options_reach_the_cli_extraction(
    tmp_path: Path, food: Path, store_with_encoder: Path
) -> None:
    config = write_config(tmp_path / "keep-train.json", {"food101": {"val_percent": 0}})
    code, output = extract(store_with_encoder, food, config)
    assert code == 0, output
    assert set(stored_splits(store_with_encoder)) == {"train", "test"}
    assert manifest_options(store_with_encoder) == {"val_percent": 0}


@pytest.mark.parametrize(
    ("datasets", "message"),
    [
        (
            {"food-101": {"val_percent": 0}},
            "is invalid: unknown dataset 'food-101': name one of coco, food101, food101-arrow, hatememes, "
            "hatememes-arrow, jsonl, mmhs11k, mmimdb, mmimdb-arrow, n24news, webdataset: fix the file",
        ),
        (
            {"food101": {"val_pct": 0}},
            "is invalid: dataset food101 has no option 'val_pct' (its options are val_percent): fix the file",
        ),
        (
            {"food101": {"val_percent": "none"}},
            "is invalid: dataset food101 option val_percent='none': input should be a valid integer: fix the file",
        ),
        (  # a value the adapter checks: refused when the adapter is built, before anything is encoded
            {"food101": {"val_percent": 150}},
            "dataset food101 option val_percent=150 must be a whole percentage from 0 to 99: "
            "fix datasets.food101 in the --config file",
        ),
    ],
)
def test_a_bad_datasets_entry_is_one_error_line(
    tmp_path: Path, food: Path, datasets: dict[str, object], message: str, refused: Callable[[Result], str]
) -> None:
    config = write_config(tmp_path / "bad.json", datasets)
    store = tmp_path / "store"
    result = CliRunner().invoke(
        app,
        ["extract", "--dataset", "food101", "--root", str(food), "--store", str(store), "--config", config],
    )
    assert message in refused(result)
    assert not (store / "features").exists()


def test_datasets_check_reads_the_config_and_its_options_override_it(
    tmp_path: Path, food: Path, refused: Callable[[Result], str]
) -> None:
    config = write_config(tmp_path / "keep-train.json", {"food101": {"val_percent": 0}})
    check = ["check", "--dataset", "food101", "--root", str(food), "--workers", "1", "--config", config]
    assert "split val has no samples" in refused(CliRunner().invoke(datasets_app, check))
    result = CliRunner().invoke(datasets_app, [*check, "--option", "val_percent=10"])
    assert result.exit_code == 0, result.output
    unknown = refused(CliRunner().invoke(datasets_app, [*check, "--option", "val_pct=0"]))
    assert unknown == (
        "dataset food101 has no option 'val_pct' (its options are val_percent): "
        "fix the --option or datasets.food101 in the --config file (docs/datasets.md lists the options)"
    )


def test_other_options_into_a_store_made_with_the_defaults_are_refused(
    tmp_path: Path, food: Path, store_with_encoder: Path
) -> None:
    defaults = write_config(tmp_path / "defaults.json", {})
    code, output = extract(store_with_encoder, food, defaults)
    assert code == 0, output
    assert "val" in stored_splits(store_with_encoder)

    other = write_config(tmp_path / "keep-train.json", {"food101": {"val_percent": 0}})
    code, output = extract(store_with_encoder, food, other)
    assert code == 2, output
    (line,) = output.strip().splitlines()
    assert "was made from other raw data than this run lists (row 1 split was 'val', is 'train'" in line
    assert "made with options {'val_percent': 10}, this run has {'val_percent': 0}" in line
    assert "val" in stored_splits(store_with_encoder)  # the store is left as it was
