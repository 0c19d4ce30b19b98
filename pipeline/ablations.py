"""Ablation tables (paper Table 5 and section 4.4) from the DiT variants in the results store.

A DiT evaluation's `variant` column is its restorer key,
`dit-{gating}-s{stages}-{digest}-S{steps}-{sampler}...`, so the variants a store holds can be
told apart without extra bookkeeping. The reference DiT is the paper's method (Dynamic Modality
Gating, both training stages) at the configured step count; the benchmark table shows
only it, and the ablation tables set every other variant beside it.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from stores.fs import join, list_names, read_json
from stores.restoration_store import all_rows_key
from stores.results_store import query

if TYPE_CHECKING:
    from pipeline.restoration import RestoreSettings
    from pipeline.selection import Selection

# DDIM keys only (other solvers are variants of their own), with their starting-noise
# temperature, draws and recentring.
VARIANT_PATTERN = re.compile(
    r"^(?P<restorer_id>dit-(?P<gating>[a-z]+)-s(?P<stages>\d)-[0-9a-f]+)-S(?P<steps>\d+)-ddim(-cliprange)?"
    r"(-T(?P<temperature>[\d.e+-]+))?(-avg(?P<samples>\d+))?(?P<recentred>-rc)?-seed\d+$"
)


@dataclass(frozen=True)
class DitVariant:
    gating: str
    stages: int
    steps: int
    samples: int = 1
    recentred: bool = False
    temperature: float = 1.0
    restorer_id: str = ""  # the trained DiT (its training config is part of the id)


@dataclass(frozen=True)
class DitSampling:
    """How the benchmark table's DiT samples: the configured draws per row, recentring and
    starting-noise temperature. Evaluations that sampled otherwise (an ad-hoc `--samples 4`,
    say) are variants of their own."""

    samples: int = 1
    recentred: bool = False
    temperature: float = 1.0

    @classmethod
    def from_settings(cls, settings: RestoreSettings) -> DitSampling:
        return cls(settings.samples, settings.recentre, settings.temperature)

    def matches(self, variant: DitVariant) -> bool:
        mine = (self.samples, self.recentred, self.temperature)
        return (variant.samples, variant.recentred, variant.temperature) == mine


SINGLE_DRAW = DitSampling()  # the paper's: one DDIM draw per row from N(0, I), no recentring


def parse_variant(key: str) -> DitVariant | None:
    match = VARIANT_PATTERN.match(key or "")
    if match is None:
        return None
    samples = int(match["samples"]) if match["samples"] else 1
    temperature = float(match["temperature"]) if match["temperature"] else 1.0
    return DitVariant(
        match["gating"],
        int(match["stages"]),
        int(match["steps"]),
        samples,
        bool(match["recentred"]),
        temperature,
        match["restorer_id"],
    )


def reference_steps(
    root: str, selection: Selection, configured: int | None, sampling: DitSampling = SINGLE_DRAW
) -> int | None:
    """S of the reference DiT (gating, both stages, `sampling`): the configured S when the
    selected evaluations have it, else their most evaluated S (ties: the smaller)."""
    where, parameters = selection.where()
    _, rows = query(
        root,
        f"SELECT variant, count(*) FROM metrics WHERE restorer = 'dit' AND {where} GROUP BY variant",
        parameters,
    )
    counts: Counter = Counter()
    for key, n in rows:
        variant = parse_variant(key)
        if variant and variant.gating == "gating" and variant.stages == 2 and sampling.matches(variant):
            counts[variant.steps] += n
    if configured in counts or not counts:
        return configured
    return max(counts, key=lambda steps: (counts[steps], -steps))


def is_reference(key: str, steps: int | None, sampling: DitSampling = SINGLE_DRAW) -> bool:
    variant = parse_variant(key)
    return (
        variant is not None
        and (variant.gating, variant.stages, variant.steps) == ("gating", 2, steps)
        and sampling.matches(variant)
    )


def _dit_scores(
    root: str, eta: float, selection: Selection, metrics: dict[str, str]
) -> dict[tuple, list[float]]:
    """(dataset, missing type, variant key) -> headline values over seeds (latest run per seed)."""
    scores: dict[tuple, list[float]] = defaultdict(list)
    for dataset, metric in metrics.items():
        where, parameters = selection.where(dataset)
        _, rows = query(
            root,
            f"""SELECT missing_type, variant, seed, arg_max(value, timestamp) FROM metrics
               WHERE restorer = 'dit' AND {where} AND metric = ? AND abs(eta - ?) < 1e-9
               GROUP BY missing_type, variant, seed""",
            [*parameters, metric, eta],
        )
        for missing_type, key, _, value in rows:
            scores[(dataset, missing_type, key)].append(value)
    return scores


def sampling_ms_per_sample(root: str, dataset: str, encoder_id: str, key: str) -> float | None:
    """Wall milliseconds per restored sample when the DiT sampled every row (a recentred key
    reads the arrays, and their timings, of its key without recentring)."""
    folder = join(root, "restorations", dataset, encoder_id, all_rows_key(key), "all-rows")
    timings = [read_json(join(folder, name)) for name in list_names(folder) if name.endswith(".json")]
    rows = sum(timing["rows"] for timing in timings)
    return 1000 * sum(timing["seconds"] for timing in timings) / rows if rows else None


def ablation_tables(root: str, eta: float, selection: Selection, metrics: dict[str, str],
                    columns: list[tuple[str, str]], steps: int | None,
                    sampling: DitSampling = SINGLE_DRAW) -> str:  # fmt: skip
    """Markdown: gating variants, base vs mutual learning, and sampling steps vs score and time,
    each over the selected evaluations that sampled as the reference does (`sampling`)."""
    scores = _dit_scores(root, eta, selection, metrics)
    variants = {key: parse_variant(key) for _, _, key in scores}
    variants = {key: v for key, v in variants.items() if v and sampling.matches(v)}
    header = [f"{dataset} {missing} ({metrics[dataset]})" for dataset, missing in columns]
    scale = f"{', '.join(sorted(set(metrics.values())))} x 100, mean ± std over seeds"

    def table(title: str, label: str, rows: list[tuple[str, str]], extra: str | None = None) -> list[str]:
        if len(rows) < 2:
            return []
        names = [*header, extra] if extra else header
        labels = [label for label, _ in rows]
        # Two trained DiTs of one variant (another training config, say) would read as one row twice.
        rows = [(f"{label} ({variants[key].restorer_id})" if labels.count(label) > 1 else label, key)
                for label, key in rows]  # fmt: skip
        lines = [
            "",
            f"## {title}: {scale}",
            "",
            f"| {label} | " + " | ".join(names) + " |",
            "|---" * (len(names) + 1) + "|",
        ]
        for name, key in rows:
            cells = []
            for dataset, missing in columns:
                values = scores.get((dataset, missing, key), [])
                spread = f" ± {100 * np.std(values, ddof=1):.2f}" if len(values) > 1 else ""
                cells.append(f"{100 * np.mean(values):.2f}{spread}" if values else "—")
            if extra:
                encoders = dict(selection.encoders)
                timings = [
                    sampling_ms_per_sample(root, dataset, encoders[dataset], key) for dataset in dict(columns)
                ]
                known = [t for t in timings if t is not None]
                cells.append(f"{np.mean(known):.2f}" if known else "—")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        return lines

    def keys(predicate: object) -> list[tuple[DitVariant, str]]:
        return sorted(((v, k) for k, v in variants.items() if v and predicate(v)), key=lambda p: p[1])  # type: ignore[operator]

    gating_order = ("gating", "adaln", "concat", "none")
    gates = sorted(keys(lambda v: v.stages == 2 and v.steps == steps), key=lambda p: gating_order.index(p[0].gating)
                   if p[0].gating in gating_order else 99)  # fmt: skip
    stages = sorted(keys(lambda v: v.gating == "gating" and v.steps == steps), key=lambda p: p[0].stages)
    sampling = sorted(keys(lambda v: v.gating == "gating" and v.stages == 2), key=lambda p: p[0].steps)
    lines = table(f"Ablation: gating variants (stages 2, S = {steps}) at missing rate {eta:.0%}", "variant",
                  [(v.gating, k) for v, k in gates])  # fmt: skip
    lines += table(f"Ablation: training stages (gating, S = {steps})", "training",
                   [("base (stage 1)" if v.stages == 1 else "base + mutual (stage 2)", k) for v, k in stages])  # fmt: skip
    lines += table("Ablation: sampling steps S (gating, stages 2)", "S", [(str(v.steps), k) for v, k in sampling],
                   extra="ms / sample")  # fmt: skip
    return "\n".join(lines) + ("\n" if lines else "")
