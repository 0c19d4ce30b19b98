"""What the paper's sampling makes of a trained DiT: cosine to the truth and norm of its restorations.

A trained DiT pair (`--trained STORE/restorers/ID`, e.g. the `dit-paper` restorer of the
README's run) restores the available feature of every test row of the demo's downstream
datasets, both directions, sampled as the paper does (DDIM, S = 50, one draw from N(0, I), no
clip) and with DDIM's x0 estimate clipped to the training targets' range (the only change). CLIP
features are unit vectors; a restoration whose norm is far from 1 has left the data.

    python benchmarks/paper_sampling.py --store STORE --trained STORE/restorers/ID [--steps 50]
"""

from __future__ import annotations

import argparse

import numpy as np

from pipeline.restorers import DIRECTIONS, DiffusionRestorer, mean_cosine, missing_and_available
from pipeline.training.restorer import load_restorer_models
from stores.feature_store import FeatureStore
from stores.fs import list_names
from stores.restorer_store import RestorerStore

DOWNSTREAM = ("demo-cls", "demo-tags")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", required=True)
    parser.add_argument("--trained", required=True, help="STORE/restorers/ID of a trained DiT pair")
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    trained = load_restorer_models(RestorerStore.at(args.trained))
    print(f"restorer {args.trained}: {trained.config.diffusion.prediction}, "
          f"{trained.config.diffusion.beta_schedule} schedule; x0 range {trained.x0_range}")  # fmt: skip
    print("| dataset | direction | sampling | cosine to truth | norm: mean | median | max |")
    print("|---|---|---|---|---|---|---|")
    for dataset in DOWNSTREAM:
        (encoder_id,) = list_names(f"{args.store}/features/{dataset}")
        store = FeatureStore(args.store, dataset, encoder_id)
        arrays = store.read_arrays()
        test = np.asarray(store.read_samples().column("split").to_pylist()) == "test"
        for direction in DIRECTIONS:
            missing, available = missing_and_available(direction)
            rows = np.flatnonzero(test & arrays[f"{missing}_present"] & arrays[f"{available}_present"])
            for label, clip in (("paper (no clip)", None), ("x0 clipped to training range", trained.x0_range)):
                restorer = DiffusionRestorer(trained.models, trained.config.diffusion, steps=args.steps,
                                             batch_size=256, clip_x0=clip)  # fmt: skip
                restored = restorer.restore(arrays[f"{available}_emb"][rows].astype(np.float32), direction, rows)
                norms = np.linalg.norm(restored, axis=1)
                cosine = mean_cosine(restored, arrays[f"{missing}_emb"][rows].astype(np.float32))
                print(f"| {dataset} | {direction} | {label}, S = {args.steps} | {cosine:.3f} | {norms.mean():.2f} "
                      f"| {np.median(norms):.2f} | {norms.max():.1f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
