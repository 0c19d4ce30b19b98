"""The paper's ablations as runs and as tables: Table 2 (modules), Table 3 (mid-stage corpus
size), Table 4 (DiT depth), Table 5 (sampling steps), each for both DiT rows.

A row is a `DitChange` to the reference DiT (the benchmark table's `dit-paper` or `dit`):
`run --ablations` trains and evaluates each changed DiT like any other restorer, and the report
finds each row's evaluations by the restoration key the change leads to, so the ablation rows
never enter the benchmark table and the table's rows never enter an ablation. Every table sets
its rows beside the reference with the difference on the same seed (same masks, same decoder
seed), and ends with a line per claim of the paper: holds or does not hold on these data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.errors import ConfigError
from pipeline.models.dit import Gating
from pipeline.restoration import RestoreSettings
from pipeline.training.restorer import TrainConfig
from stores.fs import join, list_names, read_json
from stores.restoration_store import all_rows_key


class DitChange(BaseModel):
    """What an ablation changes in a DiT restorer's training or sampling; None keeps the reference's."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gating: Gating | None = None
    stages: int | None = Field(None, ge=1, le=2)
    depth: int | None = Field(None, ge=1)
    # A share of the corpus, trained for as many steps as the whole corpus.
    corpus_fraction: float | None = Field(None, gt=0, le=1)
    steps: int | None = Field(None, ge=1)  # sampling steps S

    def training(self, train: TrainConfig) -> TrainConfig:
        """`train` with this change's training values."""
        dit = self.model_dump(include={"gating", "depth"}, exclude_none=True)
        top = self.model_dump(include={"stages", "corpus_fraction"}, exclude_none=True)
        return train.model_copy(update={"dit": train.dit.model_copy(update=dit), **top})

    def sampling(self, restore: RestoreSettings) -> RestoreSettings:
        return restore if self.steps is None else restore.model_copy(update={"steps": self.steps})


NO_CHANGE = DitChange()


def dit_change(variant: str | None, stages: int | None, steps: int | None) -> DitChange:
    """The DiT options `--variant`, `--stages` and `--steps` (a flow's `variant`, `stages` and
    `steps`) as a change, one error line naming the option for a bad value."""
    if variant is not None and variant not in get_args(Gating):
        raise ConfigError(f"--variant {variant!r}: choose one of {', '.join(get_args(Gating))}")
    try:
        return DitChange(gating=variant, stages=stages, steps=steps)  # type: ignore[arg-type]
    except ValidationError as error:
        problem = error.errors()[0]
        raise ConfigError(f"--{problem['loc'][0]} {problem['input']!r}: {problem['msg'].lower()}") from None


@dataclass(frozen=True)
class AblationRow:
    table: str  # a key of TABLE_TITLES
    label: str
    change: DitChange


TABLE_TITLES = {
    "modules": "Table 2: modules (each trained for the same steps)",
    "corpus": "Table 3: mid-stage corpus size (the same steps)",
    "depth": "Table 4: DiT depth",
    "steps": "Table 5: sampling steps S",
}
# Figure 5's missing rates.
ROBUSTNESS_RATES = (0.1, 0.3, 0.5, 0.7, 0.9)
TABLE5_STEPS = (50, 100, 200, 500)


def ablation_rows(train: TrainConfig, restore: RestoreSettings) -> list[AblationRow]:
    """The rows of the paper's Tables 2 to 5 around a reference DiT trained with `train` and
    sampled with `restore`. The reference itself is a row of each table (its change is empty).
    Depths are the paper's 16 / 20 / 24 around 20, scaled to the reference's depth."""
    depth = train.dit.depth
    depths = sorted({max(1, round(0.8 * depth)), depth, round(1.2 * depth)})
    steps = sorted({restore.steps, *TABLE5_STEPS})
    return [
        AblationRow("modules", "base", DitChange(gating="none", stages=1)),
        AblationRow("modules", "+ gating", DitChange(gating="gating", stages=1)),
        AblationRow("modules", "adaLN", DitChange(gating="adaln", stages=1)),
        AblationRow("modules", "concat", DitChange(gating="concat", stages=1)),
        AblationRow("modules", "+ mutual", DitChange(gating="none", stages=2)),
        AblationRow("modules", "all", NO_CHANGE),
        AblationRow("corpus", "25 %", DitChange(corpus_fraction=0.25)),
        AblationRow("corpus", "50 %", DitChange(corpus_fraction=0.5)),
        AblationRow("corpus", "100 %", NO_CHANGE),
        *(AblationRow("depth", str(d), DitChange(depth=d) if d != depth else NO_CHANGE) for d in depths),
        *(AblationRow("steps", str(s), DitChange(steps=s) if s != restore.steps else NO_CHANGE) for s in steps),
    ]


@dataclass(frozen=True)
class Claim:
    """A claim of the paper as a paired difference: `better` minus `worse`, on the same seed, is
    positive (or, with `negligible`, within `negligible` of zero)."""

    text: str
    table: str
    better: str
    worse: str
    negligible: float | None = None


def claims(rows: list[AblationRow]) -> list[Claim]:
    """The paper's claims about the tables `rows` fill."""
    found = [
        Claim("gating beats the base (section 4.4)", "modules", "+ gating", "base"),
        Claim("gating beats adaLN (Table 2)", "modules", "+ gating", "adaLN"),
        Claim("gating beats concat (Table 2)", "modules", "+ gating", "concat"),
        Claim("mutual learning beats the base (Table 2)", "modules", "+ mutual", "base"),
        Claim("gating and mutual learning together beat gating alone", "modules", "all", "+ gating"),
        Claim("gating and mutual learning together beat mutual learning alone", "modules", "all", "+ mutual"),
        Claim("more corpus data scores higher: 100 % over 50 % (section 4.5)", "corpus", "100 %", "50 %"),
        Claim("more corpus data scores higher: 50 % over 25 %", "corpus", "50 %", "25 %"),
    ]
    depths = [row for row in rows if row.table == "depth"]
    if depths:
        reference = next(row.label for row in depths if row.change == NO_CHANGE)
        shallowest = str(min(int(row.label) for row in depths))
        found.append(Claim(f"depth {reference} beats {shallowest} (Table 4)", "depth", reference, shallowest))
    steps = [row for row in rows if row.table == "steps"]
    if steps:
        most = str(max(int(row.label) for row in steps))
        found.append(Claim(f"S = {most} scores within 0.5 points of S = 50 (A.1)", "steps", most, "50", 0.005))
    return found


def verdict(differences: list[float], negligible: float | None = None) -> str:
    """`holds` when the mean paired difference clears its seed spread (for a `negligible` claim:
    when the mean is within it), `does not hold` otherwise."""
    if len(differences) < 2:
        return "one seed: no verdict"
    mean, spread = float(np.mean(differences)), float(np.std(differences, ddof=1))
    if negligible is not None:
        return "holds" if abs(mean) <= negligible else "does not hold"
    return "holds" if mean > spread else "does not hold"


def sampling_ms_per_sample(root: str, dataset: str, encoder_id: str, key: str) -> float | None:
    """Wall milliseconds per restored sample when the DiT sampled every row (a recentred key
    reads the arrays, and their timings, of its key without recentring)."""
    folder = join(root, "restorations", dataset, encoder_id, all_rows_key(key), "all-rows")
    timings = [read_json(join(folder, name)) for name in list_names(folder) if name.endswith(".json")]
    rows = sum(timing["rows"] for timing in timings)
    return 1000 * sum(timing["seconds"] for timing in timings) / rows if rows else None


Scores = dict[tuple[str, str], dict[int, float]]  # (dataset, missing type) -> {seed: value}


def ablation_markdown(
    restorer: str,
    rows: list[AblationRow],
    scores: Callable[[AblationRow], Scores],
    columns: list[tuple[str, str]],
    header: list[str],
    timing: Callable[[AblationRow], float | None],
) -> str:
    """Markdown of `restorer`'s ablation tables: each row's mean ± std over seeds, its difference
    from the reference on the same seed, and a line per claim; tables with no evaluated row
    besides the reference are left out. `scores(row)` reads a row's evaluations, `timing(row)`
    its sampling milliseconds per sample."""
    by_row = {row: scores(row) for row in rows}
    lines: list[str] = []
    for table, title in TABLE_TITLES.items():
        table_rows = [row for row in rows if row.table == table]
        if sum(bool(by_row[row]) for row in table_rows) < 2:
            continue
        reference = by_row[next(row for row in table_rows if row.change == NO_CHANGE)]
        extra = ["ms / sample"] if table == "steps" else []
        lines += ["", f"### {restorer}, {title}", "", f"| {table} | " + " | ".join(header + extra) + " |",
                  "|---" * (len(header) + len(extra) + 1) + "|"]  # fmt: skip
        for row in table_rows:
            cells = [_cell_text(by_row[row].get(column, {}), reference.get(column, {}), row.change == NO_CHANGE)
                     for column in columns]  # fmt: skip
            if extra:
                ms = timing(row)
                cells.append(f"{ms:.2f}" if ms is not None else "—")
            label = f"{row.label} (reference)" if row.change == NO_CHANGE else row.label
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        named = {row.label: by_row[row] for row in table_rows}
        lines.append("")
        for claim in (claim for claim in claims(rows) if claim.table == table):
            lines.append(_claim_line(claim, named.get(claim.better, {}), named.get(claim.worse, {}), columns, header))
    return "\n".join(lines) + ("\n" if lines else "")


def _cell_text(values: dict[int, float], reference: dict[int, float], is_reference: bool) -> str:
    if not values:
        return "—"
    mean = 100 * np.mean(list(values.values()))
    spread = f" ± {100 * np.std(list(values.values()), ddof=1):.2f}" if len(values) > 1 else ""
    common = sorted(set(values) & set(reference))
    if is_reference or not common:
        return f"{mean:.2f}{spread}"
    differences = [100 * (values[seed] - reference[seed]) for seed in common]
    paired = f"{np.mean(differences):+z.2f}" + (f" ± {np.std(differences, ddof=1):.2f}" if len(common) > 1 else "")
    return f"{mean:.2f}{spread} ({paired})"


def _claim_line(claim: Claim, better: Scores, worse: Scores, columns: list[tuple[str, str]],
                header: list[str]) -> str:  # fmt: skip
    """`- claim: holds in k of n cells` and each cell's paired difference."""
    cells, held = [], 0
    for column, name in zip(columns, header, strict=True):
        common = sorted(set(better.get(column, {})) & set(worse.get(column, {})))
        if not common:
            continue
        differences = [better[column][seed] - worse[column][seed] for seed in common]
        outcome = verdict(differences, claim.negligible)
        held += outcome == "holds"
        spread = f" ± {100 * np.std(differences, ddof=1):.2f}" if len(common) > 1 else ""
        cells.append(f"{name} {100 * np.mean(differences):+z.2f}{spread} ({outcome})")
    if not cells:
        return f"- {claim.text} ({claim.better} - {claim.worse}): not evaluated"
    return f"- {claim.text} ({claim.better} - {claim.worse}): holds in {held} of {len(cells)} cells; " + "; ".join(
        cells
    )
