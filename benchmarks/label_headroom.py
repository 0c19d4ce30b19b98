"""Does a restorer make a task's labels easier to learn? A linear probe at the demo's label budget.

A restored feature is a function of the available one: it holds nothing about the sample that
the available feature lacks. It can help the decoder only through what the restorer learnt from
the corpus, a map under which the label is easier to learn from few labelled rows. This measures
that directly and in seconds, with a logistic-regression probe (scikit-learn) in place of the
decoder. For each downstream dataset and missing modality, the probe is fitted on n labelled
rows drawn from train + val, on

    available only | [available; restored] for each restorer | [available; true] (the oracle)

and scored on every test row with the task's headline metric (`pipeline.metrics.task_scores`),
mean ± std over draws of the n rows. Every row holds both modalities here (no mask): the
question is the readability of the label, not the missing-rate protocol. A restorer whose row
does not beat "available only" cannot beat zero-filling downstream, whatever the decoder.

    python benchmarks/label_headroom.py --store STORE [--sizes 100,300,1000] [--draws 3]
        [--restorers swap_gap,knn,regression] [--dit-key KEY]

`--dit-key` reads the DiT's stored per-row restorations (`restorations/<dataset>/<encoder>/
KEY/all-rows`, written by `mmr-pipeline run` or `restore`), e.g.
`dit-gating-s2-<id>-S10-ddim-seed0`. STORE is a store that `mmr-pipeline run` filled.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.evaluation import label_targets
from pipeline.metrics import task_scores
from pipeline.restoration import CORPUS_RESTORERS, RestoreSettings, build_restorer, corpus_pairs
from pipeline.restorers import DIRECTIONS, Restorer, missing_and_available
from stores.feature_store import FeatureStore
from stores.fs import list_names
from stores.restoration_store import RestoredRows

DOWNSTREAM = ("demo-cls", "demo-tags")


def probe_score(
    inputs: np.ndarray, targets: np.ndarray, fit_rows: np.ndarray, test_rows: np.ndarray, label_kind: str,
    metric: str,
) -> float:  # fmt: skip
    """Fit a standardised logistic regression on `fit_rows`, return the metric on `test_rows`."""
    linear = LogisticRegression(max_iter=1000)
    probe = make_pipeline(StandardScaler(), OneVsRestClassifier(linear) if label_kind == "multi" else linear)
    with warnings.catch_warnings():  # a tag absent from a small draw, or a slow fit, is not an error here
        warnings.simplefilter("ignore", (ConvergenceWarning, UserWarning))
        probe.fit(inputs[fit_rows], targets[fit_rows])
        probabilities = probe.predict_proba(inputs[test_rows])
    if label_kind != "multi":  # columns for every class, also those absent from the draw
        full = np.zeros((len(test_rows), int(targets.max()) + 1))
        full[:, probe.classes_] = probabilities
        probabilities = full
    return task_scores(label_kind, metric, targets[test_rows], probabilities)[metric]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--sizes", default="100,300,1000", help="labelled rows per probe")
    parser.add_argument("--draws", type=int, default=3, help="draws of the labelled rows per size")
    parser.add_argument("--restorers", default="swap_gap,knn,regression", help="comma list")
    parser.add_argument("--dit-key", help="restorer key of the DiT's stored per-row restorations")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    encoder_id = list_names(f"{args.store}/features/demo-corpus")[0]
    corpus = corpus_pairs(args.store, "demo-corpus", encoder_id)[:2]
    settings = RestoreSettings()
    header = " | ".join(f"n = {size}" for size in sizes)
    fitted_on_corpus: dict[str, Restorer] = {}  # knn and regression do not depend on the dataset
    for dataset in DOWNSTREAM:
        store = FeatureStore(args.store, dataset, encoder_id)
        info = store.manifest()["dataset_info"]
        samples = store.read_samples()
        features = store.read_arrays()
        splits = np.asarray(samples.column("split").to_pylist())
        targets = label_targets(samples.column("label").to_pylist(), info["label_kind"], len(info["classes"]))
        # Rows the decoder trains and scores on: a single-label sample without a label has none.
        scored = np.ones(len(splits), bool) if info["label_kind"] == "multi" else targets >= 0
        labelled, test = (
            np.flatnonzero(scored & (splits != "test")),
            np.flatnonzero(scored & (splits == "test")),
        )
        every_row = np.arange(len(splits))
        for direction in DIRECTIONS:
            missing, present = missing_and_available(direction)
            available = features[f"{present}_emb"]
            candidates: dict[str, np.ndarray | None] = {"available only": None}
            for name in filter(None, args.restorers.split(",")):
                if name not in CORPUS_RESTORERS:
                    restorer = build_restorer(name, settings, features, splits, corpus, None)
                elif name in fitted_on_corpus:
                    restorer = fitted_on_corpus[name]
                else:
                    restorer = fitted_on_corpus[name] = build_restorer(
                        name, settings, features, splits, corpus, None
                    )
                candidates[name] = restorer.restore(available, direction, every_row)
            if args.dit_key:
                stored = RestoredRows(args.store, dataset, encoder_id, args.dit_key, direction).read()
                if stored is None:
                    raise SystemExit(
                        f"no stored rows of {args.dit_key} for {dataset}: run the restore step first"
                    )
                candidates["dit (stored rows)"] = stored.astype(np.float32)
            candidates["oracle"] = features[f"{missing}_emb"]
            print(
                f"\n{dataset}, {missing} missing ({info['metric']} x 100, mean ± std over {args.draws} draws)"
            )
            print(f"| probe input | {header} |\n|---|" + "---|" * len(sizes))
            for label, restored in candidates.items():
                inputs = available if restored is None else np.concatenate([available, restored], axis=1)
                started = time.perf_counter()
                cells = []
                for size in sizes:
                    draws = np.random.default_rng(size)  # the same labelled rows for every input
                    scores = [
                        probe_score(inputs, targets, draws.choice(labelled, size, replace=False), test,
                                    info["label_kind"], info["metric"])
                        for _ in range(args.draws)
                    ]  # fmt: skip
                    cells.append(f"{100 * np.mean(scores):.1f} ± {100 * np.std(scores):.1f}")
                print(f"| {label} | " + " | ".join(cells) + f" |  ({time.perf_counter() - started:.0f} s)",
                      flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
