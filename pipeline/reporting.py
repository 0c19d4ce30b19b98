"""Benchmark tables in the shape of the paper's Table 1, from the results store.

Rows are restorers; columns are (dataset, missing type) at one missing rate; each cell is the
mean and standard deviation over seeds of the dataset's headline metric (F1-macro for
multi-label, AUROC where reported, accuracy otherwise). A second table gives the gap closed,
(restorer - zero) / (oracle - zero), of the seed means.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from dataclasses import dataclass

from pipeline.metrics import gap_closed
from pipeline.restorers import RESTORER_NAMES
from stores.results_store import query

HEADLINE_ORDER = ("auroc", "f1_macro", "accuracy")
MISSING_ORDER = ("image", "text", "both")


@dataclass(frozen=True)
class Cell:
    mean: float
    std: float
    seeds: int

    def text(self, scale: float = 100.0) -> str:
        spread = f" ± {self.std * scale:.2f}" if self.seeds > 1 else ""
        return f"{self.mean * scale:.2f}{spread}"


def headline_metrics(root: str) -> dict[str, str]:
    """The headline metric of each evaluated dataset."""
    _, rows = query(root, "SELECT DISTINCT dataset, metric FROM metrics")
    reported: dict[str, set[str]] = defaultdict(set)
    for dataset, metric in rows:
        reported[dataset].add(metric)
    return {dataset: next(m for m in HEADLINE_ORDER if m in metrics) for dataset, metrics in reported.items()
            if any(m in metrics for m in HEADLINE_ORDER)}  # fmt: skip


def benchmark_cells(root: str, eta: float) -> dict[tuple[str, str, str], Cell]:
    """(restorer, dataset, missing type) -> mean/std over seeds of the headline metric at eta.

    When one (restorer, dataset, type, seed) was evaluated more than once, its latest run counts.
    """
    cells = {}
    for dataset, metric in headline_metrics(root).items():
        _, rows = query(
            root,
            """
            WITH latest AS (
                SELECT restorer, missing_type, seed, arg_max(value, timestamp) AS value
                FROM metrics
                WHERE dataset = ? AND metric = ? AND abs(eta - ?) < 1e-9
                GROUP BY restorer, missing_type, seed
            )
            SELECT restorer, missing_type, avg(value), coalesce(stddev_samp(value), 0), count(*)
            FROM latest GROUP BY restorer, missing_type
            """,
            [dataset, metric, eta],
        )
        for restorer, missing_type, mean, std, seeds in rows:
            cells[(restorer, dataset, missing_type)] = Cell(mean, std, seeds)
    return cells


def _columns(cells: dict[tuple[str, str, str], Cell]) -> list[tuple[str, str]]:
    pairs = {(dataset, missing) for _, dataset, missing in cells}
    return sorted(pairs, key=lambda pair: (pair[0], MISSING_ORDER.index(pair[1])))


def _restorers(cells: dict[tuple[str, str, str], Cell]) -> list[str]:
    present = {restorer for restorer, _, _ in cells}
    return [name for name in RESTORER_NAMES if name in present] + sorted(present - set(RESTORER_NAMES))


def benchmark_tables(root: str, eta: float) -> tuple[str, str]:
    """(Markdown, CSV) of the Table-1-shaped benchmark and the gap-closed table at `eta`."""
    cells = benchmark_cells(root, eta)
    columns, restorers = _columns(cells), _restorers(cells)
    metrics = headline_metrics(root)
    header = [f"{dataset} {missing} ({metrics[dataset]})" for dataset, missing in columns]
    lines = [f"## Missing rate {eta:.0%}: {', '.join(sorted(set(metrics.values())))} x 100, mean ± std over seeds",
             "", "| restorer | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|"]  # fmt: skip
    sink = io.StringIO()
    writer = csv.writer(sink)
    writer.writerow(["restorer", "dataset", "missing_type", "metric", "mean", "std", "seeds", "gap_closed"])
    gap_lines = ["", "## Gap closed: (restorer - zero) / (oracle - zero)", "",
                 "| restorer | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|"]  # fmt: skip
    for restorer in restorers:
        row, gap_row = [], []
        for dataset, missing in columns:
            cell = cells.get((restorer, dataset, missing))
            zero, oracle = cells.get(("zero", dataset, missing)), cells.get(("oracle", dataset, missing))
            gap = gap_closed(cell.mean, zero.mean, oracle.mean) if cell and zero and oracle else math.nan
            row.append(cell.text() if cell else "—")
            gap_row.append("—" if math.isnan(gap) else f"{gap:.2f}")
            if cell:
                writer.writerow(
                    [restorer, dataset, missing, metrics[dataset], cell.mean, cell.std, cell.seeds, gap]
                )
        lines.append(f"| {restorer} | " + " | ".join(row) + " |")
        gap_lines.append(f"| {restorer} | " + " | ".join(gap_row) + " |")
    return "\n".join(lines + gap_lines) + "\n", sink.getvalue()


def evaluated_missing_rates(root: str) -> list[float]:
    _, rows = query(root, "SELECT DISTINCT eta FROM metrics ORDER BY eta")
    return [row[0] for row in rows]
