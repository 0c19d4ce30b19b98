"""Benchmark tables in the shape of the paper's Table 1, from the results store.

Rows are restorers; columns are (dataset, missing type) at one missing rate; each cell is the
mean and standard deviation over seeds of the dataset's headline metric (F1-macro for
multi-label, AUROC where reported, accuracy otherwise). A second table gives the gap closed,
(restorer - zero) / (oracle - zero), of the means over the seeds all three have; a third, each
restorer's difference from `zero` seed by seed, whose spread is free of what the masks do to both.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline import plots
from pipeline.ablations import AblationRow, Scores, ablation_markdown, sampling_ms_per_sample, verdict
from pipeline.diffusion.core import to_diffusion_space
from pipeline.hashing import content_id
from pipeline.metrics import gap_closed
from pipeline.restorers import DIT_RESTORERS, RESTORER_NAMES
from pipeline.retrieval import nearest_rows, with_retrieved
from pipeline.selection import Selection
from pipeline.training.restorer import load_restorer_models
from pipeline.version import code_version
from stores.feature_store import FeatureStore
from stores.fs import is_local, write_bytes_atomic
from stores.restoration_store import RestorationStore
from stores.restorer_store import RestorerStore
from stores.results_store import query

HEADLINE_ORDER = ("auroc", "f1_macro", "accuracy")
MISSING_ORDER = ("image", "text", "both")

# (DiT restorer, dataset) -> the restoration key of the table's row: a store holds other DiTs of
# each name too (ablations, other configs, other sampling), which the table must leave out.
DitKeys = dict[tuple[str, str], str]
# DiT restorer -> its ablation rows, each with its restoration key per dataset.
AblationKeys = dict[str, list[tuple[AblationRow, dict[str, str]]]]


@dataclass(frozen=True)
class Cell:
    mean: float
    std: float
    seeds: int

    def text(self, scale: float = 100.0, signed: bool = False) -> str:
        spread = f" ± {self.std * scale:.2f}" if self.seeds > 1 else ""
        return f"{self.mean * scale:{'+z' if signed else 'z'}.2f}{spread}"


def headline_metrics(root: str, selection: Selection) -> dict[str, str]:
    """The headline metric of each selected dataset."""
    where, parameters = selection.where()
    _, rows = query(root, f"SELECT DISTINCT dataset, metric FROM metrics WHERE {where}", parameters)
    reported: dict[str, set[str]] = defaultdict(set)
    for dataset, metric in rows:
        reported[dataset].add(metric)
    return {dataset: next(m for m in HEADLINE_ORDER if m in metrics) for dataset, metrics in reported.items()
            if any(m in metrics for m in HEADLINE_ORDER)}  # fmt: skip


def seed_scores(
    root: str, eta: float, selection: Selection, dit_keys: DitKeys
) -> dict[tuple[str, str, str], dict[int, float]]:
    """(restorer, dataset, missing type) -> {seed: headline metric} at eta, of the selected evaluations.

    When one (restorer, dataset, type, seed) was evaluated more than once, its latest run counts.
    Of each DiT restorer's evaluations only those of its `dit_keys` key count. Another restorer
    evaluated in several variants (`knn` with two k, say) gets a row per variant, named by it:
    one cell averaging both variants' seeds would mix two restorers.
    """
    by_variant: dict[tuple[str, str, str, str], dict[int, float]] = defaultdict(dict)
    for dataset, metric in headline_metrics(root, selection).items():
        where, parameters = selection.where(dataset)
        _, rows = query(
            root,
            f"""
            SELECT restorer, variant, missing_type, seed, arg_max(value, timestamp)
            FROM metrics
            WHERE {where} AND metric = ? AND abs(eta - ?) < 1e-9
            GROUP BY restorer, variant, missing_type, seed
            """,
            [*parameters, metric, eta],
        )
        for restorer, variant, missing_type, seed, value in rows:
            if restorer in DIT_RESTORERS and variant != dit_keys.get((restorer, dataset)):
                continue  # other DiTs (ablations, K-draw averages, other solvers) are not Table 1
            by_variant[(restorer, variant or restorer, dataset, missing_type)][seed] = value
    variants: dict[str, set[str]] = defaultdict(set)
    for restorer, variant, _, _ in by_variant:
        variants[restorer].add(variant)
    return {
        (variant if len(variants[restorer]) > 1 else restorer, dataset, missing_type): by_seed
        for (restorer, variant, dataset, missing_type), by_seed in by_variant.items()
    }


def _cell(values: list[float]) -> Cell:
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return Cell(float(np.mean(values)), std, len(values))


def benchmark_cells(
    root: str, eta: float, selection: Selection, dit_keys: DitKeys
) -> dict[tuple[str, str, str], Cell]:
    """(restorer, dataset, missing type) -> mean/std over seeds of the headline metric at eta."""
    return _cells(seed_scores(root, eta, selection, dit_keys))


def _cells(scores: dict[tuple[str, str, str], dict[int, float]]) -> dict[tuple[str, str, str], Cell]:
    return {key: _cell(list(by_seed.values())) for key, by_seed in scores.items()}


def paired_with_zero(
    scores: dict[tuple[str, str, str], dict[int, float]],
) -> dict[tuple[str, str, str], Cell]:
    """(restorer, dataset, missing type) -> mean/std over seeds of (restorer - zero) on the same seed.

    A seed fixes the masks and the decoder's seed, so both restorers are scored on the same
    missing rows by decoders started alike: what the masks do to both cancels in the difference,
    and the spread of the differences is the one to hold a margin against (over three seeds, a
    rough guide rather than a test).
    """
    paired = {}
    for (restorer, dataset, missing), by_seed in scores.items():
        zero = scores.get(("zero", dataset, missing), {})
        common = sorted(set(by_seed) & set(zero))
        if restorer != "zero" and common:
            paired[(restorer, dataset, missing)] = _cell([by_seed[seed] - zero[seed] for seed in common])
    return paired


def gaps_closed(
    scores: dict[tuple[str, str, str], dict[int, float]],
) -> dict[tuple[str, str, str], tuple[float, int]]:
    """(restorer, dataset, missing type) -> (gap closed, seeds it was computed on).

    Each term is averaged over the seeds that the restorer, `zero` and `oracle` all have: a
    restorer evaluated on seed 0 alone is set against zero's and oracle's seed 0, not against
    their means over seeds whose masks it never saw.
    """
    gaps = {}
    for (restorer, dataset, missing), by_seed in scores.items():
        zero = scores.get(("zero", dataset, missing), {})
        oracle = scores.get(("oracle", dataset, missing), {})
        common = sorted(set(by_seed) & set(zero) & set(oracle))
        if common:
            means = [float(np.mean([values[seed] for seed in common])) for values in (by_seed, zero, oracle)]
            gaps[(restorer, dataset, missing)] = (gap_closed(*means), len(common))
    return gaps


def _columns(cells: dict[tuple[str, str, str], Cell]) -> list[tuple[str, str]]:
    pairs = {(dataset, missing) for _, dataset, missing in cells}
    return sorted(pairs, key=lambda pair: (pair[0], MISSING_ORDER.index(pair[1])))


def _restorers(keys: Iterable[tuple[str, str, str]]) -> list[str]:
    """The restorers of (restorer, dataset, missing type) keys, in the tables' order."""
    present = {restorer for restorer, _, _ in keys}
    return [name for name in RESTORER_NAMES if name in present] + sorted(present - set(RESTORER_NAMES))


def _spread(cell: Cell) -> float:
    return cell.std if cell.seeds > 1 else math.nan  # one seed has no spread


def _paired_text(difference: Cell, cell: Cell) -> str:
    """Signed; says so when fewer seeds were paired than the restorer's own cell averages."""
    fewer = f" ({difference.seeds} of {cell.seeds} seeds)" if difference.seeds < cell.seeds else ""
    return difference.text(signed=True) + fewer


def _gap_text(gap: float, seeds: int, cell: Cell | None) -> str:
    if math.isnan(gap) or cell is None:
        return "—"
    return f"{gap:z.2f}" + (f" ({seeds} of {cell.seeds} seeds)" if seeds < cell.seeds else "")


def benchmark_tables(
    root: str, eta: float, selection: Selection, dit_keys: DitKeys, ablations: AblationKeys | None = None
) -> tuple[str, str]:
    """(Markdown, CSV) of the Table-1-shaped benchmark, the gap-closed and paired tables at `eta`,
    and the ablation tables of `ablations` where their rows were evaluated."""
    scores = seed_scores(root, eta, selection, dit_keys)
    cells = _cells(scores)
    paired, gaps = paired_with_zero(scores), gaps_closed(scores)
    columns, restorers = _columns(cells), _restorers(cells)
    metrics = headline_metrics(root, selection)
    header = [f"{dataset} {missing} ({metrics[dataset]})" for dataset, missing in columns]
    lines = [f"## Missing rate {eta:.0%}: {', '.join(sorted(set(metrics.values())))} x 100, mean ± std over seeds",
             "", selection.describe(root),
             "", "| restorer | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|"]  # fmt: skip
    sink = io.StringIO()
    writer = csv.writer(sink)
    writer.writerow(["restorer", "dataset", "missing_type", "metric", "mean", "std", "seeds", "gap_closed",
                     "gap_closed_seeds", "minus_zero_mean", "minus_zero_std",
                     "minus_zero_seeds"])  # fmt: skip
    table_head = ["", "| restorer | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|"]
    gap_lines = [
        "",
        "## Gap closed: (restorer - zero) / (oracle - zero), each over the seeds all three have",
        *table_head,
    ]
    paired_lines = ["", "## Paired with zero: restorer - zero on the same seed (same masks, same decoder seed), "
                    "x 100, mean ± std over seeds", *table_head]  # fmt: skip
    for restorer in restorers:
        row, gap_row, paired_row = [], [], []
        for dataset, missing in columns:
            cell = cells.get((restorer, dataset, missing))
            difference = paired.get((restorer, dataset, missing))
            gap, gap_seeds = gaps.get((restorer, dataset, missing), (math.nan, 0))
            row.append(cell.text() if cell else "—")
            gap_row.append(_gap_text(gap, gap_seeds, cell))
            paired_row.append(_paired_text(difference, cell) if difference and cell else "—")
            if cell:
                writer.writerow([restorer, dataset, missing, metrics[dataset], cell.mean, _spread(cell), cell.seeds,
                                 gap, gap_seeds, difference.mean if difference else math.nan,
                                 _spread(difference) if difference else math.nan,
                                 difference.seeds if difference else 0])  # fmt: skip
        lines.append(f"| {restorer} | " + " | ".join(row) + " |")
        gap_lines.append(f"| {restorer} | " + " | ".join(gap_row) + " |")
        if restorer != "zero":
            paired_lines.append(f"| {restorer} | " + " | ".join(paired_row) + " |")
    markdown = "\n".join(lines + gap_lines + paired_lines) + "\n"
    for restorer, rows in (ablations or {}).items():
        markdown += ablation_markdown(
            restorer, [row for row, _ in rows], _row_scores(root, eta, selection, restorer, dict(rows)),
            columns, header, _row_timing(root, selection, dict(rows)),
        )  # fmt: skip
    return markdown, sink.getvalue()


def _row_scores(root: str, eta: float, selection: Selection, restorer: str,
                keys: dict[AblationRow, dict[str, str]]) -> Callable[[AblationRow], Scores]:  # fmt: skip
    """An ablation row's evaluations at eta: (dataset, missing type) -> {seed: headline metric}."""
    metrics = headline_metrics(root, selection)

    def scores(row: AblationRow) -> Scores:
        found: Scores = defaultdict(dict)
        for dataset, key in keys[row].items():
            if dataset not in metrics:
                continue
            where, parameters = selection.where(dataset)
            _, rows = query(
                root,
                f"""SELECT missing_type, seed, arg_max(value, timestamp) FROM metrics
                   WHERE {where} AND restorer = ? AND variant = ? AND metric = ? AND abs(eta - ?) < 1e-9
                   GROUP BY missing_type, seed""",
                [*parameters, restorer, key, metrics[dataset], eta],
            )
            for missing_type, seed, value in rows:
                found[(dataset, missing_type)][seed] = value
        return dict(found)

    return scores


def _row_timing(root: str, selection: Selection,
                keys: dict[AblationRow, dict[str, str]]) -> Callable[[AblationRow], float | None]:  # fmt: skip
    """An ablation row's sampling milliseconds per sample, averaged over the datasets that have one."""
    encoders = dict(selection.encoders)

    def timing(row: AblationRow) -> float | None:
        known = [ms for dataset, key in keys[row].items() if dataset in encoders
                 if (ms := sampling_ms_per_sample(root, dataset, encoders[dataset], key)) is not None]  # fmt: skip
        return float(np.mean(known)) if known else None

    return timing


def evaluated_missing_rates(root: str, selection: Selection) -> list[float]:
    where, parameters = selection.where()
    _, rows = query(root, f"SELECT DISTINCT eta FROM metrics WHERE {where} ORDER BY eta", parameters)
    return [row[0] for row in rows]


def _local_folder(root: str) -> Path:
    """The folder of a local store. Figures are drawn into local files, from the restorations
    found on local disk, so they are made for local stores only: a remote root would otherwise
    read as a relative folder named after its URL, and find nothing."""
    if not is_local(root):
        raise ValueError(f"figures are drawn for local stores only; {root} is remote")
    return Path(root.removeprefix("file://"))


def table_restorations(root: str, eta: float, selection: Selection, dit_keys: DitKeys) -> list[dict]:
    """Manifests (with their folder) of the stored restorations of the table's `dit` at `eta`
    (its key, so not another release's, config's or ablation's, which the store may also hold),
    of the selected encoders; local stores only."""
    folder = _local_folder(root)
    where, parameters = selection.where()
    _, rows = query(
        root,
        f"SELECT DISTINCT dataset, variant FROM metrics WHERE restorer = 'dit' AND {where} AND abs(eta - ?) < 1e-9",
        [*parameters, eta],
    )
    evaluated = {(dataset, key) for dataset, key in rows if key == dit_keys.get(("dit", dataset))}
    encoders = dict(selection.encoders)
    found = []
    for path in sorted(folder.glob("restorations/*/*/*/*/manifest.json")):
        manifest = json.loads(path.read_text())
        if (
            (manifest["dataset"], manifest["restorer_key"]) in evaluated
            and encoders.get(manifest["dataset"]) == manifest["encoder_id"]
            and abs(manifest["eta"] - eta) < 1e-9
        ):
            found.append({**manifest, "folder": str(path.parent)})
    return found


def robustness_curves(
    root: str, selection: Selection, dit_keys: DitKeys
) -> dict[tuple[str, str], dict[str, list[tuple[float, float]]]]:
    """(dataset, missing type) -> table row -> [(eta, seed mean)] over the evaluated missing
    rates: the benchmark table's rows, so no DiT ablation variant is averaged into `dit`."""
    curves: dict[tuple[str, str], dict[str, list[tuple[float, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for eta in evaluated_missing_rates(root, selection):
        for (row, dataset, missing_type), cell in benchmark_cells(root, eta, selection, dit_keys).items():
            curves[(dataset, missing_type)][row].append((eta, cell.mean))
    return curves


def robustness_markdown(root: str, selection: Selection, dit_keys: DitKeys) -> str:
    """Figure 5 as a table: each restorer's seed mean per missing rate, per (dataset, missing
    type), and a line per DiT row for the paper's claim that the restorer's score falls less
    from the lowest to the highest rate than the baselines' (paired by seed). Empty with one rate."""
    rates = evaluated_missing_rates(root, selection)
    if len(rates) < 2:
        return ""
    by_rate = {eta: seed_scores(root, eta, selection, dit_keys) for eta in rates}
    low, high = rates[0], rates[-1]
    metrics = headline_metrics(root, selection)
    cells = sorted({(dataset, missing) for scores in by_rate.values() for _, dataset, missing in scores},
                   key=lambda pair: (pair[0], MISSING_ORDER.index(pair[1])))  # fmt: skip
    lines = [f"## Robustness (Figure 5): {', '.join(sorted(set(metrics.values())))} x 100, mean over seeds"]
    for dataset, missing in cells:
        keys = [key for scores in by_rate.values() for key in scores if key[1:] == (dataset, missing)]
        restorers = _restorers(keys)
        lines += ["", f"### {dataset}, missing {missing}", "",
                  "| restorer | " + " | ".join(f"eta {eta:g}" for eta in rates) + " |", "|---" * (len(rates) + 1) + "|"]  # fmt: skip
        for restorer in restorers:
            values = [by_rate[eta].get((restorer, dataset, missing), {}) for eta in rates]
            lines.append(f"| {restorer} | " + " | ".join(f"{100 * np.mean(list(v.values())):.2f}" if v else "—"
                                                         for v in values) + " |")  # fmt: skip
        lines.append("")
        for dit in (name for name in DIT_RESTORERS if name in restorers):
            for baseline in (name for name in ("zero", "mean") if name in restorers):
                drops = {name: _drops(by_rate, name, dataset, missing, low, high) for name in (dit, baseline)}
                common = sorted(set(drops[dit]) & set(drops[baseline]))
                if not common:
                    continue
                gained = [drops[baseline][seed] - drops[dit][seed] for seed in common]
                spread = f" ± {100 * np.std(gained, ddof=1):.2f}" if len(gained) > 1 else ""
                lines.append(
                    f"- {dit} falls less than {baseline} from eta {low:g} to {high:g} (Figure 5): "
                    f"{baseline}'s fall minus {dit}'s {100 * np.mean(gained):+z.2f}{spread} ({verdict(gained)})"
                )
    return "\n".join(lines) + "\n"


def _drops(by_rate: dict[float, dict[tuple[str, str, str], dict[int, float]]], restorer: str, dataset: str,
           missing: str, low: float, high: float) -> dict[int, float]:  # fmt: skip
    """Seed -> the restorer's score at `low` minus at `high`."""
    at_low = by_rate[low].get((restorer, dataset, missing), {})
    at_high = by_rate[high].get((restorer, dataset, missing), {})
    return {seed: at_low[seed] - at_high[seed] for seed in set(at_low) & set(at_high)}


def _robustness_figures(root: str, out: Path, selection: Selection, dit_keys: DitKeys) -> list[Path]:
    metrics = headline_metrics(root, selection)
    paths = []
    for (dataset, missing_type), by_restorer in sorted(robustness_curves(root, selection, dit_keys).items()):
        path = out / f"robustness-{dataset}-{missing_type}.png"
        metric = metrics[dataset]
        plots.robustness_plot(
            by_restorer, metric, f"{dataset}, missing {missing_type}: {metric} vs missing rate", path
        )
        paths.append(path)
    return paths


def _feature_figures(root: str, restoration: dict, out: Path) -> list[Path]:
    dataset, encoder_id = restoration["dataset"], restoration["encoder_id"]
    store = FeatureStore(root, dataset, encoder_id)
    arrays, samples, info = store.read_arrays(), store.read_samples(), store.manifest()["dataset_info"]
    restored = RestorationStore(
        root, dataset, encoder_id, restoration["restorer_key"], Path(restoration["folder"]).name
    ).read()
    splits = np.asarray(samples.column("split").to_pylist())
    labels = samples.column("label").to_pylist()
    paths = []
    for modality in ("text", "image"):
        rows = np.flatnonzero(
            restored[f"{modality}_restored"] & arrays[f"{modality}_present"] & (splits == "test")
        )[:1000]
        if len(rows) < 10:
            continue
        true, fake = arrays[f"{modality}_emb"][rows], restored[f"{modality}_emb"][rows]
        tag = f"{dataset}-{restoration['missing_type']}-{modality}"
        path = out / f"pca-{tag}.png"
        plots.pca_plot(true, fake, f"{dataset}: restored vs true {modality} features (test, PCA)", path)
        paths.append(path)
        single = np.array([len(labels[r]) == 1 for r in rows])
        if info["classes"] and single.sum() >= 10:
            first = np.array([labels[r][0] for r in rows[single]])
            path = out / f"class-cosine-{tag}.png"
            plots.class_similarity_plot(true[single], fake[single], first, list(info["classes"]),
                                        f"{dataset}: class-wise cosine of {modality} features", path)  # fmt: skip
            paths.append(path)
    return paths


def _gate_figure(root: str, restoration: dict, out: Path) -> list[Path]:
    restorer_id = restoration["restorer_key"].split("-S")[0]
    trained = load_restorer_models(RestorerStore(root, restorer_id))
    models, config = trained.models, trained.config
    if config.dit.gating != "gating":
        return []
    features = FeatureStore(root, restoration["dataset"], restoration["encoder_id"]).read_arrays()
    both = features["image_present"] & features["text_present"]
    images = to_diffusion_space(torch.from_numpy(features["image_emb"][both]))
    cond = images[:512]
    if config.dit.retrieved:
        # Partners retrieved from this dataset's other rows, not from the restorer's corpus (whose
        # name its id does not hold): the gates read conditions of the same kind.
        texts = to_diffusion_space(torch.from_numpy(features["text_emb"][both]))
        cond = with_retrieved(
            cond, texts, nearest_rows(cond, images, config.dit.retrieved, leave_out_self=True)
        )
    model = models["i2t"]
    attention, mlp = [], []
    with torch.no_grad():
        for t in (10, 250, 500, 750, 990):
            gate_vector = model.gate_vector(cond, torch.full((len(cond),), t), cond)
            gates = [block.gates(gate_vector) for block in model.blocks]
            attention.append(np.stack([z_attn[:, 0].mean(0).numpy() for z_attn, _ in gates]))
            mlp.append(np.stack([z_mlp[:, 0].mean(0).numpy() for _, z_mlp in gates]))
    path = out / f"gates-{restorer_id}.png"
    plots.gate_plot(
        np.mean(attention, axis=0), np.mean(mlp, axis=0), f"{restorer_id}: gate activations (I2T)", path
    )
    return [path]


def report_figures(
    root: str, eta: float, selection: Selection, dit_keys: DitKeys, reports: str = "reports"
) -> list[Path]:
    """Every figure the selected results and their restorations allow, under {root}/{reports}/.

    Drawing them takes most of a report's time (13 s for the demo's 19 PNGs), so they are
    drawn again only when the evaluations they come from change: every evaluation adds one
    results file, and the figures' index records the set of files they were drawn from.
    Local stores only.
    """
    folder = _local_folder(root)
    out = folder / reports
    out.mkdir(parents=True, exist_ok=True)
    evaluations = sorted(path.name for path in (folder / "results" / "metrics").glob("*.parquet"))
    inputs = content_id(evaluations, eta, selection, sorted(dit_keys.items()), code_version())
    index = out / f"figures-eta{eta:.2f}.json"
    if index.exists():
        drawn = json.loads(index.read_text())
        paths = [Path(path) for path in drawn["paths"]]
        if drawn["inputs"] == inputs and all(path.exists() for path in paths):
            return paths
    paths = _robustness_figures(root, out, selection, dit_keys)
    restorations = table_restorations(root, eta, selection, dit_keys)
    for restoration in {(r["dataset"], r["missing_type"]): r for r in restorations}.values():
        paths += _feature_figures(root, restoration, out)
    if restorations:
        paths += _gate_figure(root, restorations[0], out)
    write_bytes_atomic(str(index), json.dumps({"inputs": inputs, "paths": [str(p) for p in paths]}).encode())
    return paths
