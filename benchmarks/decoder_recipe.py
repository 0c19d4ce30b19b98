"""The decoder's training recipe against its scores, on restorations a run already stored.

The benchmark's decoder trains on each stored restoration as `mmr-pipeline evaluate` does
(`pipeline.evaluation.train_and_score`, seeded by the mask seed); only the recipe changes. The
config's own recipe reproduces the run's table exactly, so a row here differs from the table
by the recipe alone. Scores are the headline metric x 100, mean ± sample std over mask seeds,
and the wall time of the row's decoder runs.

    python benchmarks/decoder_recipe.py --store STORE [--datasets demo-cls,demo-tags]
        [--types image,text,both] [--restorers zero,dit,oracle] [--seeds 0,1,2]
        --recipe '{}' --recipe '{"epochs": 60, "lr": 2e-3}' ...

A recipe is JSON over the config's `DecoderTraining` (`{}` is the config's own; `decoder`
takes a `DecoderConfig`, e.g. `{"decoder": {"width": 256}}`). `dit` names the reference DiT
restoration of the store (gating, both stages, the config's S); any other name is a restorer
key under `restorations/<dataset>/<encoder>/`.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from pipeline.config import load_config
from pipeline.evaluation import DecoderTraining, train_and_score
from pipeline.masks import mask_name
from pipeline.restoration import RestoreSettings, restorer_key
from stores.feature_store import FeatureStore
from stores.fs import list_names
from stores.restoration_store import RestorationStore
from stores.restorer_store import RestorerStore


def reference_dit_key(store: str, stored: list[str], settings: RestoreSettings) -> str:
    """The stored restorer key of the reference DiT (gating, both stages) sampled as `settings` say."""
    keys = [
        key
        for restorer_id in list_names(f"{store}/restorers")
        if restorer_id.startswith("dit-gating-s2-")
        and (key := restorer_key("dit", settings, RestorerStore(store, restorer_id))) in stored
    ]
    if len(keys) != 1:
        raise SystemExit(f"expected one reference DiT restoration in {store}, found {keys}: name its key")
    return keys[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--config", help="preset or JSON file whose decoder recipe `{}` means")
    parser.add_argument("--datasets", default="demo-cls,demo-tags")
    parser.add_argument("--types", default="image,text,both")
    parser.add_argument("--restorers", default="zero,dit,oracle")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--eta", type=float, default=0.7)
    parser.add_argument("--recipe", action="append", default=[], help="JSON over DecoderTraining (repeat)")
    args = parser.parse_args()
    settings = load_config(args.config)
    base = settings.decoder.model_dump()
    texts = args.recipe or ["{}"]
    recipes = [DecoderTraining.model_validate({**base, **json.loads(text)}) for text in texts]
    restorers = args.restorers.split(",")
    seeds = [int(seed) for seed in args.seeds.split(",")]
    encoder_id = list_names(f"{args.store}/features/demo-corpus")[0]
    for recipe, text in zip(recipes, texts, strict=True):
        print(f"\nrecipe {text}: {recipe.model_dump_json()}")
        print("| dataset | missing | " + " | ".join(restorers) + " | seconds |")
        print("|---|---|" + "---|" * (len(restorers) + 1))
        for dataset in args.datasets.split(","):
            features = FeatureStore(args.store, dataset, encoder_id)
            info = features.manifest()["dataset_info"]
            samples = features.read_samples()
            labels = samples.column("label").to_pylist()
            splits = np.asarray(samples.column("split").to_pylist())
            stored = list_names(f"{args.store}/restorations/{dataset}/{encoder_id}")
            keys = {
                name: reference_dit_key(args.store, stored, settings.restore) if name == "dit" else name
                for name in restorers
            }
            for missing_type in args.types.split(","):
                started = time.perf_counter()
                cells = []
                for key in keys.values():
                    scores = []
                    for seed in seeds:
                        mask = mask_name(args.eta, missing_type, seed)
                        filled = RestorationStore(args.store, dataset, encoder_id, key, mask).read()
                        result = train_and_score(
                            filled, labels, splits, info["label_kind"], info["metric"], len(info["classes"]),
                            recipe.model_copy(update={"seed": seed}),
                        )  # fmt: skip
                        scores.append(100 * result.test_scores[info["metric"]])
                    spread = np.std(scores, ddof=1) if len(scores) > 1 else float("nan")
                    cells.append(f"{np.mean(scores):.2f} ± {spread:.2f}")
                seconds = time.perf_counter() - started
                print(
                    f"| {dataset} | {missing_type} | " + " | ".join(cells) + f" | {seconds:.0f} |", flush=True
                )


if __name__ == "__main__":
    main()
