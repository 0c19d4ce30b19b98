"""The commands chain through the stores: evaluate restores, trains the decoder, appends results;
report turns them into tables and figures."""

from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from flows.cli import app


def test_evaluate_sql_and_report_on_the_store(warm_store: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(warm_store / "encoders", store / "encoders")
    arguments = [
        "--dataset",
        "demo-cls",
        "--config",
        "demo-small",
        "--store",
        str(store),
        "--missing-type",
        "text",
    ]
    first = CliRunner().invoke(app, ["evaluate", *arguments, "--restorer", "zero,dit-paper,dit,oracle"])
    assert first.exit_code == 0, first.output
    for restorer in ("zero", "dit-paper", "dit", "oracle"):
        assert f"demo-cls {restorer}" in first.output
    assert "accuracy" in first.output

    statement = "SELECT restorer, count(*) AS n, avg(value) FROM metrics GROUP BY 1 ORDER BY 1"
    result = CliRunner().invoke(app, ["sql", statement, "--store", str(store), "--format", "csv"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("restorer,n,")
    assert [line.split(",")[:2] for line in lines[1:]] == [
        ["dit", "1"], ["dit-paper", "1"], ["oracle", "1"], ["zero", "1"]
    ]  # fmt: skip

    repeated = CliRunner().invoke(app, ["evaluate", *arguments, "--restorer", "zero"])
    assert repeated.exit_code == 0 and "in the results already" in repeated.output, repeated.output
    count = "SELECT count(*) AS n FROM metrics WHERE restorer = 'zero' AND metric = 'accuracy'"
    counted = CliRunner().invoke(app, ["sql", count, "--store", str(store), "--format", "csv"])
    assert counted.output.split() == ["n", "1"]  # before: every evaluate appended another results file

    again = CliRunner().invoke(app, ["restore", *arguments, "--restorer", "zero,oracle"])
    assert again.exit_code == 0 and again.output.count("(cached)") == 2  # restorations are reused

    report = CliRunner().invoke(app, ["report", "--store", str(store), "--config", "demo-small"])
    assert report.exit_code == 0, report.output
    reports = store / "reports" / "demo-small"  # a config's own folder: the demo's report stays apart
    elsewhere = ["report", "--store", str(store), "--config", "demo-small", "--missing-rate", "0.3"]
    nothing = CliRunner().invoke(app, elsewhere)  # before: empty tables, exit 0
    assert nothing.exit_code == 2 and "evaluated rates: 0.7" in nothing.output, nothing.output
    assert not (reports / "benchmark-eta0.30.md").exists()
    table = (reports / "benchmark-eta0.70.md").read_text()
    assert "| dit |" in table and "| dit-paper |" in table  # each DiT row found by its own key
    figures = sorted(p.name for p in reports.glob("*.png"))
    assert "robustness-demo-cls-text.png" in figures and "pca-demo-cls-text-text.png" in figures
    assert any(name.startswith("gates-dit-gating") for name in figures)
    for name in figures:
        with Image.open(reports / name) as image:
            assert image.size[0] > 300 and image.size[1] > 300

    # The figures are drawn again only when the evaluations behind them change.
    drawn = {name: (reports / name).stat().st_mtime_ns for name in figures}
    assert CliRunner().invoke(app, ["report", "--store", str(store), "--config", "demo-small"]).exit_code == 0
    assert {name: (reports / name).stat().st_mtime_ns for name in figures} == drawn
    more = CliRunner().invoke(app, ["evaluate", *arguments, "--restorer", "mean"])
    assert more.exit_code == 0, more.output
    assert CliRunner().invoke(app, ["report", "--store", str(store), "--config", "demo-small"]).exit_code == 0
    robustness = reports / "robustness-demo-cls-text.png"
    assert robustness.stat().st_mtime_ns != drawn["robustness-demo-cls-text.png"]

    # --no-recentre: the paper's zero-shot DiT, a variant of its own beside the recentred one.
    zero_shot = CliRunner().invoke(app, ["evaluate", *arguments, "--restorer", "dit", "--no-recentre"])
    assert zero_shot.exit_code == 0, zero_shot.output
    statement = "SELECT DISTINCT variant FROM metrics WHERE restorer = 'dit' ORDER BY 1"
    result = CliRunner().invoke(app, ["sql", statement, "--store", str(store), "--format", "csv"])
    variants = result.output.splitlines()[1:]
    assert len(variants) == 2 and sum(v.endswith("-rc-seed0") for v in variants) == 1, variants

    # The report's DiT row follows --recentre/--no-recentre, as `run --no-recentre` evaluates.
    statement = "SELECT variant, value FROM metrics WHERE restorer = 'dit' AND metric = 'accuracy'"
    result = CliRunner().invoke(app, ["sql", statement, "--store", str(store), "--format", "csv"])
    scores = {variant.endswith("-rc-seed0"): float(value) for variant, value in
              (line.split(",") for line in result.output.splitlines()[1:])}  # fmt: skip
    assert f"{100 * scores[True]:.2f}" != f"{100 * scores[False]:.2f}"
    for option, recentred in (("--recentre", True), ("--no-recentre", False)):
        report = CliRunner().invoke(app, ["report", "--store", str(store), "--config", "demo-small", option])
        assert report.exit_code == 0, report.output
        (dit_row,) = [line for line in report.output.splitlines() if line.startswith("| dit |")][:1]
        assert f"{100 * scores[recentred]:.2f}" in dit_row, (option, dit_row, scores)
