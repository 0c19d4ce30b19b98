"""Results on a remote store (an fsspec URL; memory:// stands in for s3://): append, query,
select, report, and `sql` that reads the store but writes nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from pipeline.ablations import sampling_ms_per_sample
from pipeline.config import load_config
from pipeline.errors import StoreMismatchError
from pipeline.reporting import report_figures
from pipeline.selection import select_results
from pipeline.steps import RunSpec, write_report
from pipeline.version import code_version
from stores.fs import join, list_names, read_bytes, remove, write_json_atomic
from stores.results_store import append_metrics, query

RECIPE = load_config(None).decoder.recipe_id()  # the decoder recipe a report reads by default
BASE = {"dataset": "tags", "encoder_id": "e", "eta": 0.7, "split": "test", "n": 10, "missing_type": "both",
        "decoder_id": RECIPE, "code_version": code_version()}  # fmt: skip


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh remote store; the working folder is empty, so any local file it made shows."""
    monkeypatch.chdir(tmp_path)
    root = f"memory://remote-results-{uuid.uuid4().hex}"
    yield root
    remove(root)


def _evaluate(root: str, restorer: str, values: list[float]) -> None:
    for seed, value in enumerate(values):
        append_metrics(root, {**BASE, "restorer": restorer, "seed": seed}, {"f1_macro": value})


def test_appended_results_are_queried_and_selected(store: str, tmp_path: Path) -> None:
    _evaluate(store, "zero", [0.25])
    _evaluate(store, "dit", [0.5])
    assert len(list_names(join(store, "results", "metrics"))) == 2
    _, rows = query(store, "SELECT restorer, value FROM metrics WHERE seed = ? ORDER BY 1", [0])
    assert rows == [("dit", 0.5), ("zero", 0.25)]
    selection = select_results(store, RECIPE)
    assert selection.encoders == (("tags", "e"),)
    assert selection.describe(store).startswith(f"Code version {code_version()}, decoder recipe {RECIPE}")
    assert list(tmp_path.iterdir()) == []  # no views database, nor a folder named after the URL


def test_a_remote_store_without_results_names_the_fix(store: str) -> None:
    with pytest.raises(StoreMismatchError, match=r"no results in memory://remote-results-\w+ yet"):
        query(store, "SELECT 1")
    result = CliRunner().invoke(app, ["sql", "SELECT count(*) FROM metrics", "--store", store])
    assert result.exit_code == 2 and "no results in" in result.output, result.output


def test_sql_on_a_remote_store_reads_it_and_writes_no_file(store: str, tmp_path: Path) -> None:
    _evaluate(store, "zero", [0.25, 0.75])
    result = CliRunner().invoke(app, ["sql", "SELECT avg(value) AS mean FROM metrics", "--store", store,
                                      "--format", "csv"])  # fmt: skip
    assert result.output.splitlines() == ["mean", "0.5"]
    metrics = join(store, "results", "metrics")
    before = list_names(metrics)
    writes = [
        f"COPY (SELECT * FROM metrics) TO '{metrics}/forged.parquet'",  # would join the view
        f"COPY (SELECT 1 AS a, 2 AS b) TO '{metrics}' (FORMAT parquet, PARTITION_BY (a), OVERWRITE)",
        f"COPY (SELECT 1) TO '{tmp_path / 'out.csv'}'",
        "SET lock_configuration = false",
    ]
    for statement in writes:
        refused = CliRunner().invoke(app, ["sql", statement, "--store", store])
        assert refused.exit_code == 2 and len(refused.output.splitlines()) == 1, refused.output
    assert "read-only" in CliRunner().invoke(app, ["sql", writes[0], "--store", store]).output
    assert list_names(metrics) == before and list(tmp_path.iterdir()) == []


def test_the_report_tables_are_written_to_a_remote_store(store: str, tmp_path: Path) -> None:
    _evaluate(store, "zero", [0.40, 0.42])
    _evaluate(store, "dit", [0.50, 0.54])
    _evaluate(store, "oracle", [0.60, 0.60])
    written = write_report(RunSpec(store=store), "demo-corpus", 0.7)
    markdown = written["tables"]["0.7"]
    assert "| dit | 52.00 ± 2.83 |" in markdown and "| zero | 41.00 ± 1.41 |" in markdown
    stem = join(store, "reports", "benchmark-eta0.70")
    assert written["files"] == [f"{stem}.md", f"{stem}.csv"]  # no figures: they are local-only
    assert read_bytes(f"{stem}.md").decode() == markdown
    assert list(tmp_path.iterdir()) == []
    result = CliRunner().invoke(app, ["report", "--store", store])  # says so instead of drawing nothing
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1].startswith(
        "figures: not drawn, they are drawn for local stores only"
    )


def test_sampling_timings_are_read_from_a_remote_store(store: str) -> None:
    folder = join(store, "restorations", "tags", "e", "dit-key", "all-rows")
    write_json_atomic(join(folder, "i2t.json"), {"rows": 100, "seconds": 2.0})
    write_json_atomic(join(folder, "t2i.json"), {"rows": 300, "seconds": 6.0})
    assert sampling_ms_per_sample(store, "tags", "e", "dit-key") == pytest.approx(20.0)


def test_a_recentred_dit_reads_the_timings_of_the_rows_it_shares(store: str) -> None:
    """The demo recentres: its evaluations' key ends `-rc-seed0`, the rows they share (and their
    timings) live under the key without `-rc`; the report's ms / sample showed "—" before."""
    folder = join(store, "restorations", "tags", "e", "dit-x-S1-ddim-T0-seed0", "all-rows")
    write_json_atomic(join(folder, "i2t.json"), {"rows": 100, "seconds": 1.0})
    assert sampling_ms_per_sample(store, "tags", "e", "dit-x-S1-ddim-T0-rc-seed0") == pytest.approx(10.0)


def test_figures_refuse_a_remote_store_instead_of_drawing_nothing_locally(store: str, tmp_path: Path) -> None:
    _evaluate(store, "zero", [0.4])
    with pytest.raises(ValueError, match="local stores only"):
        report_figures(store, 0.7, select_results(store, RECIPE), {})
    assert list(tmp_path.iterdir()) == []
