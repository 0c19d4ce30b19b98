"""The benchmark table: mean and std over seeds of the headline metric, gap closed."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from pipeline.ablations import DitChange, ablation_rows, verdict
from pipeline.config import load_config
from pipeline.errors import StoreMismatchError
from pipeline.reporting import (
    benchmark_cells,
    benchmark_tables,
    paired_with_zero,
    robustness_curves,
    robustness_markdown,
    table_restorations,
)
from pipeline.restoration import RestoreSettings
from pipeline.selection import Selection, select_results
from pipeline.steps import RunSpec, restoration_key, write_report
from pipeline.training.restorer import TrainConfig
from pipeline.version import code_version
from stores.results_store import append_metrics

CORPUS = "demo-corpus"
RECIPE = load_config(None).decoder.recipe_id()  # the decoder recipe a report reads by default
BASE = {"dataset": "tags", "encoder_id": "e", "eta": 0.7, "split": "test", "n": 10, "decoder_id": RECIPE,
        "code_version": code_version()}  # fmt: skip


def _selected(root: Path) -> Selection:
    return select_results(str(root), RECIPE)


def _fill(root: Path) -> None:
    values = {"zero": [0.40, 0.42, 0.44], "dit": [0.50, 0.52, 0.54], "oracle": [0.60, 0.60, 0.60]}
    for restorer, per_seed in values.items():
        for seed, value in enumerate(per_seed):
            scores = {"f1_macro": value, "f1_micro": 0.99}  # f1_macro is the headline, not micro
            append_metrics(
                str(root), {**BASE, "restorer": restorer, "seed": seed, "missing_type": "both"}, scores
            )
    # A rerun of one seed: the latest run replaces it, it is not averaged in twice.
    append_metrics(
        str(root), {**BASE, "restorer": "dit", "seed": 0, "missing_type": "both"}, {"f1_macro": 0.52}
    )
    append_metrics(str(root), {**BASE, "eta": 0.3, "restorer": "dit", "seed": 0, "missing_type": "both"},
                   {"f1_macro": 0.9})  # fmt: skip


def _append_seeds(root: Path, values: dict[str, list[float]]) -> None:
    """One f1_macro evaluation per (restorer, seed), seeds numbered from 0."""
    for restorer, per_seed in values.items():
        for seed, value in enumerate(per_seed):
            run = {**BASE, "restorer": restorer, "seed": seed, "missing_type": "both"}
            append_metrics(str(root), run, {"f1_macro": value})


def test_cells_average_the_latest_run_of_each_seed(tmp_path: Path) -> None:
    _fill(tmp_path)
    cells = benchmark_cells(str(tmp_path), 0.7, _selected(tmp_path), {})
    dit = cells[("dit", "tags", "both")]
    assert dit.seeds == 3
    assert dit.mean == pytest.approx((0.52 + 0.52 + 0.54) / 3)
    assert cells[("zero", "tags", "both")].std == pytest.approx(0.02)


def test_pairs_with_zero_only_on_seeds_both_have() -> None:
    scores = {
        ("zero", "cls", "both"): {0: 0.30, 1: 0.40, 2: 0.50},
        ("dit", "cls", "both"): {0: 0.31, 2: 0.52},  # seed 1 not evaluated (yet)
        ("dit", "tags", "both"): {0: 0.60},  # no zero on tags: nothing to pair with
    }
    paired = paired_with_zero(scores)
    assert set(paired) == {("dit", "cls", "both")}
    dit = paired[("dit", "cls", "both")]
    assert dit.seeds == 2 and dit.mean == pytest.approx(0.015) and dit.std == pytest.approx(0.00707, abs=1e-5)


def test_the_paired_table_signs_its_differences_and_says_when_seeds_are_missing(tmp_path: Path) -> None:
    values = {"zero": [0.40, 0.42], "dit": [0.39, 0.40, 0.50], "oracle": [0.60]}  # zero lacks seed 2
    _append_seeds(tmp_path, values)
    markdown, table = benchmark_tables(str(tmp_path), 0.7, _selected(tmp_path), {})
    paired = markdown.split("## Paired with zero")[1]
    # dit - zero on seeds 0 and 1: -0.01 and -0.02; seed 2 has no zero to pair with.
    assert "| dit | -1.50 ± 0.71 (2 of 3 seeds) |" in paired
    assert "| oracle | +20.00 |" in paired  # one seed: no spread to show
    oracle = next(row for row in csv.DictReader(io.StringIO(table)) if row["restorer"] == "oracle")
    assert float(oracle["minus_zero_mean"]) == pytest.approx(0.2)
    assert oracle["std"] == oracle["minus_zero_std"] == "nan"  # one seed: no spread, not a spread of 0


def test_a_restorer_evaluated_in_two_variants_gets_a_row_per_variant(tmp_path: Path) -> None:
    values = {
        ("zero", "zero"): [0.40, 0.42],
        ("knn", "knn-k10"): [0.50, 0.52],
        ("knn", "knn-k30"): [0.60, 0.70],
    }
    for (restorer, variant), per_seed in values.items():
        for seed, value in enumerate(per_seed):
            run = {**BASE, "restorer": restorer, "variant": variant, "seed": seed, "missing_type": "both"}
            append_metrics(str(tmp_path), run, {"f1_macro": value})
    cells = benchmark_cells(str(tmp_path), 0.7, _selected(tmp_path), {})
    assert cells[("knn-k10", "tags", "both")].mean == pytest.approx(0.51)
    assert cells[("knn-k30", "tags", "both")].mean == pytest.approx(0.65)
    assert ("knn", "tags", "both") not in cells and ("zero", "tags", "both") in cells


def test_tables_and_the_report_command(tmp_path: Path) -> None:
    _fill(tmp_path)
    markdown, table = benchmark_tables(str(tmp_path), 0.7, _selected(tmp_path), {})
    assert "| dit | 52.67 ± 1.15 |" in markdown
    assert "| zero | 42.00 ± 2.00 |" in markdown
    gap = (0.52667 - 0.42) / (0.60 - 0.42)
    assert f"| dit | {gap:.2f} |" in markdown
    # Paired seed by seed: dit - zero = 0.12, 0.10, 0.10; oracle - zero = 0.20, 0.18, 0.16.
    paired = markdown.split("## Paired with zero")[1]
    assert "| dit | +10.67 ± 1.15 |" in paired and "| oracle | +18.00 ± 2.00 |" in paired
    assert "| zero |" not in paired
    assert table.splitlines()[0] == (
        "restorer,dataset,missing_type,metric,mean,std,seeds,gap_closed,gap_closed_seeds,minus_zero_mean,"
        "minus_zero_std,minus_zero_seeds"
    )
    result = CliRunner().invoke(app, ["report", "--store", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "reports" / "benchmark-eta0.70.md").read_text() == markdown
    assert (tmp_path / "reports" / "benchmark-eta0.30.csv").exists()


def test_a_report_of_another_config_goes_to_its_own_folder(tmp_path: Path) -> None:
    """report/latest (the demo config) and report/paper share a store: before, both wrote
    reports/benchmark-eta0.70.md and each overwrote the other's tables and figures."""
    _fill(tmp_path)
    other = tmp_path / "Wide Decoder.json"
    other.write_text('{"restore": {"recentre": false}}')  # the same decoder recipe: the same rows
    default = write_report(RunSpec(store=str(tmp_path)), CORPUS, 0.7)
    wide = write_report(RunSpec(store=str(tmp_path), config=str(other)), CORPUS, 0.7)
    assert default["folder"] == str(tmp_path / "reports")
    assert wide["folder"] == str(tmp_path / "reports" / "wide-decoder")
    assert set(default["files"]).isdisjoint(wide["files"])
    assert (tmp_path / "reports" / "benchmark-eta0.70.md").read_text() == default["tables"]["0.7"]
    assert (tmp_path / "reports" / "wide-decoder" / "benchmark-eta0.70.md").read_text() == wide["tables"][
        "0.7"
    ]


def test_a_report_of_another_dit_selection_goes_to_its_own_folder(tmp_path: Path) -> None:
    """`report --no-recentre` and `--steps` select another DiT row: before, they overwrote the
    default report's files. Options equal to the config's own select the same rows, and folder."""
    _fill(tmp_path)
    demo = load_config(None).restore  # recentres, S = 1
    store = str(tmp_path)
    same = write_report(RunSpec(store=store, recentre=demo.recentre, change=DitChange(steps=demo.steps)), CORPUS, 0.7)
    assert same["folder"] == str(tmp_path / "reports")
    assert write_report(RunSpec(store=store, recentre=False), CORPUS, 0.7)["folder"] == str(
        tmp_path / "reports" / "zero-shot"
    )
    other = write_report(RunSpec(store=store, recentre=False, change=DitChange(steps=50)), CORPUS, 0.7)
    assert other["folder"] == str(tmp_path / "reports" / "zero-shot-S50")
    assert all(path.startswith(other["folder"]) for path in other["files"])


def test_gap_table_shows_no_negative_zero_and_a_dash_where_the_oracle_does_not_beat_zero(
    tmp_path: Path,
) -> None:
    means = {  # (dataset, restorer) -> score: "tags" has a gap to close, "flat" an oracle below zero
        ("tags", "zero"): 0.40, ("tags", "dit"): 0.3999, ("tags", "oracle"): 0.60,
        ("flat", "zero"): 0.50, ("flat", "dit"): 0.45, ("flat", "oracle"): 0.48,
    }  # fmt: skip
    for (dataset, restorer), value in means.items():
        run = {**BASE, "dataset": dataset, "restorer": restorer, "seed": 0, "missing_type": "both"}
        append_metrics(str(tmp_path), run, {"f1_macro": value})
    markdown, _ = benchmark_tables(str(tmp_path), 0.7, _selected(tmp_path), {})
    gaps = markdown.split("## Gap closed")[1].split("## Paired with zero")[0]
    columns = next(line for line in gaps.splitlines() if line.startswith("| restorer |"))
    assert columns == "| restorer | flat both (f1_macro) | tags both (f1_macro) |"
    assert "| dit | — | 0.00 |" in gaps  # not 2.50 (0.45 below zero 0.50), not -0.00
    assert "-0.00" not in markdown


def test_gap_closed_sets_a_restorer_against_zero_and_oracle_on_its_own_seeds(tmp_path: Path) -> None:
    # Seed 1's masks are harder for everyone; dit was evaluated on seed 0 only.
    values = {"zero": [0.40, 0.20], "oracle": [0.60, 0.40], "dit": [0.50]}
    _append_seeds(tmp_path, values)
    markdown, table = benchmark_tables(str(tmp_path), 0.7, _selected(tmp_path), {})
    gaps = markdown.split("## Gap closed")[1].split("## Paired with zero")[0]
    # On seed 0: (0.50 - 0.40) / (0.60 - 0.40) = 0.50. Against the two-seed means of zero and
    # oracle it would read (0.50 - 0.30) / (0.50 - 0.30) = 1.00.
    assert "| dit | 0.50 |" in gaps
    assert "| zero | 0.00 |" in gaps and "| oracle | 1.00 |" in gaps
    dit = next(row for row in csv.DictReader(io.StringIO(table)) if row["restorer"] == "dit")
    assert float(dit["gap_closed"]) == pytest.approx(0.5)


def test_gap_closed_says_when_it_uses_fewer_seeds_than_the_restorer_has(tmp_path: Path) -> None:
    values = {"zero": [0.40, 0.40], "oracle": [0.60], "dit": [0.50, 0.70]}  # oracle lacks seed 1
    _append_seeds(tmp_path, values)
    markdown, table = benchmark_tables(str(tmp_path), 0.7, _selected(tmp_path), {})
    gaps = markdown.split("## Gap closed")[1].split("## Paired with zero")[0]
    assert "| dit | 0.50 (1 of 2 seeds) |" in gaps
    dit = next(row for row in csv.DictReader(io.StringIO(table)) if row["restorer"] == "dit")
    assert (dit["seeds"], dit["gap_closed_seeds"], dit["minus_zero_seeds"]) == ("2", "1", "2")


def _dit_key(gating: str, stages: int, steps: int) -> str:
    return f"dit-{gating}-s{stages}-0123456789ab-S{steps}-ddim-cliprange-seed0"


def _ablation_store(root: Path) -> tuple[dict[str, dict[str, str]], list]:
    """Evaluations of a reference DiT and three of Table 2's rows, seeds 0-2, each row's key its
    label's; returns the keys per dataset and the rows."""
    rows = [row for row in ablation_rows(TrainConfig(), RestoreSettings()) if row.table == "modules"]
    values = {"all": 0.60, "+ gating": 0.55, "base": 0.50, "adaLN": 0.56}  # concat, + mutual: not evaluated
    for row in rows:
        for seed in range(3) if row.label in values else ():
            run = {**BASE, "restorer": "dit", "variant": f"key-{row.label}", "seed": seed, "missing_type": "both"}
            append_metrics(str(root), run, {"f1_macro": values[row.label] + seed * 0.01 * (row.label != "adaLN")})
    return {row.label: {"tags": f"key-{row.label}"} for row in rows}, rows


def test_ablation_rows_leave_the_benchmark_table_for_their_own_tables_with_a_verdict_per_claim(
    tmp_path: Path,
) -> None:
    keys, rows = _ablation_store(tmp_path)
    markdown, _ = benchmark_tables(
        str(tmp_path), 0.7, _selected(tmp_path), {("dit", "tags"): "key-all"},
        {"dit": [(row, keys[row.label]) for row in rows]},
    )  # fmt: skip
    assert "| dit | 61.00 ± 1.00 |" in markdown  # the reference's own evaluations only
    table = markdown.split("### dit, Table 2: modules")[1]
    # Each row beside the reference, and its difference from it on the same seed.
    assert "| all (reference) | 61.00 ± 1.00 |" in table
    assert "| + gating | 56.00 ± 1.00 (-5.00 ± 0.00) |" in table
    assert "| concat | — |" in table
    assert (
        "- gating beats the base (section 4.4) (+ gating - base): holds in 1 of 1 cells; "
        "tags both (f1_macro) +5.00 ± 0.00 (holds)"
    ) in table
    # adaLN's seeds are 56, 56, 56 against + gating's 55, 56, 57: the same mean.
    assert (
        "- gating beats adaLN (Table 2) (+ gating - adaLN): holds in 0 of 1 cells; "
        "tags both (f1_macro) +0.00 ± 1.00 (does not hold)"
    ) in table
    assert "gating beats concat (Table 2) (+ gating - concat): not evaluated" in table


def test_a_claim_holds_when_its_difference_clears_the_seed_spread() -> None:
    assert verdict([0.02, 0.03, 0.01]) == "holds"
    assert verdict([0.02, -0.01, 0.01]) == "does not hold"  # mean 0.0067 within its spread 0.015
    assert verdict([-0.02, -0.03]) == "does not hold"
    assert verdict([0.02]) == "one seed: no verdict"
    assert verdict([0.001, -0.002, 0.003], negligible=0.005) == "holds"  # "S changes little"
    assert verdict([0.01, 0.01], negligible=0.005) == "does not hold"


def test_the_table_dit_is_the_one_its_key_names(tmp_path: Path) -> None:
    """Other DiTs of one name (an ad-hoc 4-draw sampling, an ablation) stay out of the table."""
    keys = {"reference": _dit_key("gating", 2, 50), "avg4": "dit-gating-s2-0123456789ab-S50-ddim-avg4-seed0",
            "ablation": _dit_key("none", 1, 50)}  # fmt: skip
    values = {"reference": 0.50, "avg4": 0.70, "ablation": 0.30}
    for seed in (0, 1):
        for name, key in keys.items():
            run = {**BASE, "restorer": "dit", "variant": key, "seed": seed, "missing_type": "both"}
            append_metrics(str(tmp_path), run, {"f1_macro": values[name] + seed * 0.02})
    for name, key in keys.items():
        cells = benchmark_cells(str(tmp_path), 0.7, _selected(tmp_path), {("dit", "tags"): key})
        assert cells[("dit", "tags", "both")].mean == pytest.approx(values[name] + 0.01)


def test_the_report_takes_each_dit_rows_key_from_the_config(tmp_path: Path) -> None:
    """The demo's `dit` restores from the noise's mean (T0), recentred, with a clip; a config
    that draws from N(0, I) without them picks those evaluations instead; `dit-paper` is the
    paper's S = 50 whatever the config samples. The keys come from the trained restorers' ids,
    which the report works out from the config and the corpus features."""
    store = tmp_path / "store"
    corpus = tmp_path / "store" / "features" / CORPUS / "e"
    corpus.mkdir(parents=True)
    (corpus / "manifest.json").write_text(json.dumps({"embed_dim": 128, "dataset_fingerprint": "f"}))
    one_draw = tmp_path / "one-draw.json"
    one_draw.write_text('{"restore": {"temperature": 1.0, "recentre": false, "clip_x0": false}}')
    demo_key = restoration_key(RunSpec(store=str(store)), "dit", CORPUS, "e")
    one_draw_key = restoration_key(RunSpec(store=str(store), config=str(one_draw)), "dit", CORPUS, "e")
    paper_key = restoration_key(RunSpec(store=str(store)), "dit-paper", CORPUS, "e")
    assert demo_key.endswith("-S1-ddim-cliprange-T0-rc-seed0") and one_draw_key.endswith("-S1-ddim-seed0")
    assert paper_key.endswith("-S50-ddim-seed0") and paper_key.split("-S")[0] != demo_key.split("-S")[0]
    for restorer, key, value in (("dit", demo_key, 0.30), ("dit", one_draw_key, 0.50), ("dit-paper", paper_key, 0.40)):
        for seed in (0, 1):
            run = {**BASE, "restorer": restorer, "variant": key, "seed": seed, "missing_type": "both"}
            append_metrics(str(store), run, {"f1_macro": value})
    for config, expected in ((None, "| dit | 30.00 ± 0.00 |"), (str(one_draw), "| dit | 50.00 ± 0.00 |")):
        markdown = write_report(RunSpec(store=str(store), config=config), CORPUS, 0.7)["tables"]["0.7"]
        assert expected in markdown and "| dit-paper | 40.00 ± 0.00 |" in markdown, markdown


def test_a_report_reads_one_decoder_recipe_one_encoder_per_dataset_and_this_code(tmp_path: Path) -> None:
    """A `zero` trained by a longer decoder recipe, features of another encoder, or results of
    older code would each move a cell they do not belong to; the report leaves them out and
    says how many it left."""
    store = str(tmp_path)
    for seed, value in enumerate([0.40, 0.42]):
        for restorer, shift in (("zero", 0.0), ("dit", 0.1)):
            run = {**BASE, "restorer": restorer, "seed": seed, "missing_type": "both"}
            append_metrics(store, run, {"f1_macro": value + shift})
    strays = [{"decoder_id": "dec-longer"}, {"code_version": "0.0.1"}]
    for stray in strays:  # newer than the selected runs, so a latest-per-seed read would take them
        run = {**BASE, "restorer": "zero", "seed": 0, "missing_type": "both", **stray}
        append_metrics(store, run, {"f1_macro": 0.99})
    cells = benchmark_cells(store, 0.7, _selected(tmp_path), {})
    assert cells[("zero", "tags", "both")].mean == pytest.approx(0.41)
    # Another encoder's features of the same dataset: the newest encoder is the default...
    for seed in (0, 1):
        run = {**BASE, "encoder_id": "e2", "restorer": "zero", "seed": seed, "missing_type": "both"}
        append_metrics(store, run, {"f1_macro": 0.20})
    newest = _selected(tmp_path)
    assert newest.encoders == (("tags", "e2"),)
    assert set(benchmark_cells(store, 0.7, newest, {})) == {("zero", "tags", "both")}
    # ...and a run's report asks for its own.
    chosen = select_results(store, RECIPE, encoder_id="e")
    assert benchmark_cells(store, 0.7, chosen, {})[("zero", "tags", "both")].mean == pytest.approx(0.41)
    markdown, _ = benchmark_tables(store, 0.7, chosen, {})
    assert f"decoder recipe {RECIPE}, encoders tags: e." in markdown
    assert (
        "4 evaluations of other code versions, decoder recipes or encoders are not in these tables"
        in markdown
    )
    written = write_report(RunSpec(store=store), CORPUS, 0.7, encoder_id="e")["tables"]["0.7"]
    assert "| zero | 41.00 ± 1.41 |" in written and "| dit | 51.00 ± 1.41 |" in written


def test_the_robustness_curves_are_the_table_rows(tmp_path: Path) -> None:
    """An ablation variant evaluated at one eta is not averaged into the DiT's curve there."""
    store = str(tmp_path)
    reference, ablated = _dit_key("gating", 2, 50), _dit_key("none", 2, 50)
    for eta, value in ((0.3, 0.60), (0.7, 0.50)):
        run = {**BASE, "eta": eta, "restorer": "dit", "variant": reference, "seed": 0, "missing_type": "both"}
        append_metrics(store, run, {"f1_macro": value})
    run = {**BASE, "restorer": "dit", "variant": ablated, "seed": 0, "missing_type": "both"}
    append_metrics(store, run, {"f1_macro": 0.10})
    curves = robustness_curves(store, _selected(tmp_path), {("dit", "tags"): reference})
    assert curves[("tags", "both")]["dit"] == [(0.3, pytest.approx(0.60)), (0.7, pytest.approx(0.50))]


def test_a_report_with_nothing_to_show_says_why_instead_of_printing_nothing(tmp_path: Path) -> None:
    """Results of releases before 0.4.0 have no decoder_id column; results of another recipe
    have one that does not match. Either way the report names the fix."""
    legacy = {key: value for key, value in BASE.items() if key != "decoder_id"}
    append_metrics(str(tmp_path / "old"), {**legacy, "restorer": "zero", "seed": 0, "missing_type": "both"},
                   {"f1_macro": 0.4})  # fmt: skip
    other = {**BASE, "decoder_id": "dec-longer", "restorer": "zero", "seed": 0, "missing_type": "both"}
    append_metrics(str(tmp_path / "other"), other, {"f1_macro": 0.4})
    for store in ("old", "other"):
        with pytest.raises(StoreMismatchError, match=rf"no evaluations in .*{store} by code version .* with the "
                           rf"decoder recipe of --config demo \({RECIPE}\): evaluate with this code"):  # fmt: skip
            write_report(RunSpec(store=str(tmp_path / store)), CORPUS, 0.7)


def test_figures_draw_the_restorations_of_the_table_dit_only(tmp_path: Path) -> None:
    """The store also holds an older release's DiT restorations (same gating, stages and S);
    the PCA, class-cosine and gate figures must not draw them beside this table."""
    store = str(tmp_path)
    reference, older = _dit_key("gating", 2, 50), "dit-gating-s2-fedcba987654-S50-ddim-cliprange-seed0"
    run = {**BASE, "restorer": "dit", "variant": reference, "seed": 0, "missing_type": "both"}
    append_metrics(store, run, {"f1_macro": 0.5})
    append_metrics(store, {**run, "variant": older, "code_version": "0.0.1"}, {"f1_macro": 0.4})
    for key in (reference, older):
        folder = tmp_path / "restorations" / "tags" / "e" / key / "mask"
        folder.mkdir(parents=True)
        manifest = {"restorer": "dit", "dataset": "tags", "encoder_id": "e", "restorer_key": key, "eta": 0.7,
                    "missing_type": "both"}  # fmt: skip
        (folder / "manifest.json").write_text(json.dumps(manifest))
    found = table_restorations(store, 0.7, _selected(tmp_path), {("dit", "tags"): reference})
    assert [restoration["restorer_key"] for restoration in found] == [reference]


def test_the_robustness_table_sets_each_dit_rows_fall_over_eta_against_the_baselines(tmp_path: Path) -> None:
    """Figure 5's claim: the restorer loses less from the lowest to the highest missing rate."""
    falls = {"zero": (0.60, 0.40), "mean": (0.60, 0.55), "dit": (0.62, 0.55)}  # at eta 0.1 and 0.9
    for restorer, (low, high) in falls.items():
        for eta, value in ((0.1, low), (0.9, high)):
            for seed in range(3):
                run = {**BASE, "eta": eta, "restorer": restorer, "seed": seed, "missing_type": "both"}
                append_metrics(str(tmp_path), run, {"f1_macro": value + 0.01 * seed * (restorer == "dit") * eta})
    markdown = robustness_markdown(str(tmp_path), _selected(tmp_path), {})
    assert "| restorer | eta 0.1 | eta 0.9 |" in markdown
    assert "| zero | 60.00 | 40.00 |" in markdown
    # zero falls 20 points, dit 7 (and a little less on later seeds): the claim holds against it...
    assert (
        "- dit falls less than zero from eta 0.1 to 0.9 (Figure 5): zero's fall minus dit's +13.80 ± 0.80 (holds)"
    ) in markdown
    # ...and not against mean, which falls 5.
    assert (
        "- dit falls less than mean from eta 0.1 to 0.9 (Figure 5): mean's fall minus dit's -1.20 ± 0.80 "
        "(does not hold)"
    ) in markdown
    one_rate = tmp_path / "one-rate"
    append_metrics(str(one_rate), {**BASE, "restorer": "zero", "seed": 0, "missing_type": "both"}, {"f1_macro": 0.4})
    assert robustness_markdown(str(one_rate), _selected(one_rate), {}) == ""
