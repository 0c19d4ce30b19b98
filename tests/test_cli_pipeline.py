"""The commands chain through the stores: evaluate restores, trains the decoder, appends results."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from flows.cli import app


def test_evaluate_then_sql_on_the_store(warm_store: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(warm_store / "encoders", store / "encoders")
    arguments = ["--dataset", "demo-cls", "--config", "demo-small", "--store", str(store)]
    first = CliRunner().invoke(
        app, ["evaluate", *arguments, "--restorer", "zero,oracle", "--missing-type", "text"]
    )
    assert first.exit_code == 0, first.output
    assert (
        "demo-cls zero" in first.output and "demo-cls oracle" in first.output and "accuracy" in first.output
    )

    result = CliRunner().invoke(
        app, ["sql", "SELECT restorer, count(*) AS n, avg(value) FROM metrics GROUP BY 1 ORDER BY 1", "--store",
              str(store), "--format", "csv"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("restorer,n,")
    assert [line.split(",")[:2] for line in lines[1:]] == [["oracle", "1"], ["zero", "1"]]

    again = CliRunner().invoke(
        app, ["restore", *arguments, "--restorer", "zero,oracle", "--missing-type", "text"]
    )
    assert again.exit_code == 0 and again.output.count("(cached)") == 2  # restorations are reused
