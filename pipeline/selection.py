"""Which evaluations in the results store one report reads.

A store keeps every evaluation ever made: other decoder recipes (a `--config` with more
epochs), other encoders (the demo's and ViT-B-32's features of one dataset), older code. A
benchmark cell that averaged seeds across them, or a row whose `zero` was trained by another
recipe than its `dit`, would compare nothing, so a report reads the evaluations of this code
version and one decoder recipe, and per dataset those of one encoder. The rest stay in the
store for `mmr-pipeline sql`; the report says how many it left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.version import code_version
from stores.results_store import query


@dataclass(frozen=True)
class Selection:
    code_version: str
    decoder_id: str
    encoders: tuple[tuple[str, str], ...]  # (dataset, encoder id), sorted by dataset

    def where(self, dataset: str | None = None) -> tuple[str, list[Any]]:
        """An SQL condition (with its `?` parameters) true for the selected evaluations, of
        `dataset` only when given."""
        pairs = [(d, e) for d, e in self.encoders if dataset is None or d == dataset]
        either = " OR ".join(["(dataset = ? AND encoder_id = ?)"] * len(pairs)) or "FALSE"
        return (
            f"code_version = ? AND decoder_id = ? AND ({either})",
            [self.code_version, self.decoder_id, *(value for pair in pairs for value in pair)],
        )

    def describe(self, root: str) -> str:
        """One line for the report: what it shows, and how many evaluations it leaves out."""
        where, parameters = self.where()
        _, rows = query(
            root,
            f"SELECT count(DISTINCT run_id) FILTER (WHERE NOT coalesce({where}, FALSE)) FROM metrics",
            parameters,
        )
        encoders = ", ".join(f"{dataset}: {encoder}" for dataset, encoder in self.encoders) or "none"
        left_out = rows[0][0]
        line = f"Code version {self.code_version}, decoder recipe {self.decoder_id}, encoders {encoders}."
        if left_out == 1:
            line += " 1 evaluation of another code version, decoder recipe or encoder is not in these tables"
        elif left_out:
            line += f" {left_out} evaluations of other code versions, decoder recipes or encoders are not in these tables"
        return line + (" (`mmr-pipeline sql` reads them)." if left_out else "")


def select_results(root: str, decoder_id: str, encoder_id: str | None = None) -> Selection:
    """This code version's evaluations by the decoder recipe `decoder_id`, per dataset of
    `encoder_id`, or where None, of the encoder of the dataset's newest such evaluation."""
    columns, _ = query(root, "SELECT * FROM metrics LIMIT 0")
    if "decoder_id" not in columns:  # only results written before version 0.4.0
        return Selection(code_version(), decoder_id, ())
    condition, parameters = "code_version = ? AND decoder_id = ?", [code_version(), decoder_id]
    if encoder_id is not None:
        condition, parameters = condition + " AND encoder_id = ?", [*parameters, encoder_id]
    _, rows = query(
        root,
        f"SELECT dataset, arg_max(encoder_id, timestamp) FROM metrics WHERE {condition} GROUP BY dataset",
        parameters,
    )
    return Selection(code_version(), decoder_id, tuple(sorted(rows)))
