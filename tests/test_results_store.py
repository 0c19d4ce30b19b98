"""Results: append-only Parquet per evaluation, DuckDB views, concurrent writers, `sql`."""

from __future__ import annotations

import json
import multiprocessing
import shutil
from pathlib import Path

from typer.testing import CliRunner

from flows.cli import app
from stores.results_store import append_metrics, query

RUN = {
    "dataset": "demo-cls",
    "encoder_id": "e",
    "eta": 0.7,
    "missing_type": "both",
    "split": "test",
    "n": 100,
}


def _write_many(root: str, restorer: str, count: int) -> None:
    for seed in range(count):
        append_metrics(root, {**RUN, "restorer": restorer, "seed": seed}, {"accuracy": seed / 100})


def test_two_processes_writing_at_once_both_land(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    writers = [
        context.Process(target=_write_many, args=(str(tmp_path), name, 25)) for name in ("dit", "zero")
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
        assert writer.exitcode == 0
    _, rows = query(
        str(tmp_path), "SELECT restorer, count(*), round(sum(value), 9) FROM metrics GROUP BY 1 ORDER BY 1"
    )
    total = round(sum(range(25)) / 100, 9)  # DuckDB may add in any order: compare rounded sums
    assert rows == [("dit", 25, total), ("zero", 25, total)]
    assert len(list((tmp_path / "results" / "metrics").glob("*.parquet"))) == 50


def test_sql_command_prints_table_csv_and_json_and_never_writes(tmp_path: Path) -> None:
    append_metrics(str(tmp_path), {**RUN, "restorer": "dit", "seed": 0}, {"accuracy": 0.75, "auroc": 0.5})
    statement = "SELECT restorer, avg(value) AS mean FROM metrics GROUP BY 1"
    table = CliRunner().invoke(app, ["sql", statement, "--store", str(tmp_path)])
    assert table.exit_code == 0 and "dit" in table.output and "0.6250" in table.output
    csv_out = CliRunner().invoke(app, ["sql", statement, "--store", str(tmp_path), "--format", "csv"])
    assert csv_out.output.splitlines() == ["restorer,mean", "dit,0.625"]
    json_out = CliRunner().invoke(app, ["sql", statement, "--store", str(tmp_path), "--format", "json"])
    assert json.loads(json_out.output) == [{"restorer": "dit", "mean": 0.625}]
    refused = CliRunner().invoke(app, ["sql", "CREATE TABLE x (a INT)", "--store", str(tmp_path)])
    assert refused.exit_code == 2 and "read-only" in refused.output


def test_sql_before_any_result_names_the_fix(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["sql", "SELECT 1", "--store", str(tmp_path)])
    assert result.exit_code == 2 and "mmr-pipeline evaluate" in result.output
    # Results cleared (the views database kept): the same line, not DuckDB's "No files found".
    append_metrics(str(tmp_path), {**RUN, "restorer": "zero", "seed": 0}, {"accuracy": 0.25})
    shutil.rmtree(tmp_path / "results" / "metrics")
    cleared = CliRunner().invoke(app, ["sql", "SELECT count(*) FROM metrics", "--store", str(tmp_path)])
    assert cleared.exit_code == 2 and "no results in" in cleared.output, cleared.output


def test_a_moved_store_queries_its_own_results(tmp_path: Path) -> None:
    first, moved = tmp_path / "first", tmp_path / "moved"
    append_metrics(str(first), {**RUN, "restorer": "zero", "seed": 0}, {"accuracy": 0.25})
    shutil.copytree(first, moved)
    shutil.rmtree(first)  # the views must not read the old place, whether or not it is still there
    append_metrics(str(moved), {**RUN, "restorer": "dit", "seed": 0}, {"accuracy": 0.5})
    _, rows = query(str(moved), "SELECT restorer, value FROM metrics ORDER BY 1")
    assert rows == [("dit", 0.5), ("zero", 0.25)]
    copy = tmp_path / "copy"  # a copy queried before anything is appended to it
    shutil.copytree(moved, copy)
    append_metrics(str(moved), {**RUN, "restorer": "mean", "seed": 0}, {"accuracy": 0.75})
    assert query(str(copy), "SELECT count(*) FROM metrics")[1] == [(2,)]
