"""How close restored features come to the true ones, against the DiT's training length.

Issue 3's measure: mean cosine similarity between restored and true features on the held-out
test rows of the demo's downstream datasets, both directions. For each gating variant and step
budget the demo DiT pair is trained from scratch on the store's corpus features (the demo's
recipe, epochs scaled to the budget), then restores each test row with one DDIM draw and with
the average of `--draws` draws (a Monte-Carlo estimate of the posterior mean). The baselines
(`mean`, `swap`, `swap_gap`, `knn`, `regression`) run in the same process on the same rows.
Each corpus-trained restorer (dit, knn, regression) is also scored recentred (`recentring_shift`:
swap_gap's correction, the downstream train mean of the missing modality minus the restorer's
mean output on the train rows; here over every train row, which the restorer restores for it:
two thirds more sampling than the test rows alone).

    python benchmarks/restorer_quality.py --store STORE [--device cuda] [--budgets 468,2000,8000]
        [--variants gating,none] [--prediction v_prediction] [--draws 8] [--sampling-steps 25]
        [--temperatures 1,0] [--ceiling]
    python benchmarks/restorer_quality.py --store STORE --trained STORE/restorers/ID [--draws 16] ...

`--temperatures 1,0` also scores sampling from the noise's mean (one draw; temperature 0 makes
every draw the same); `--prediction` trains eps- or v-predictors (default: the demo config's).

`--trained` scores an already-trained restorer (a run's, or one this script trained: it prints
where) instead of training the budgets.

`--ceiling` first prints what a perfect sampler would score: the demo scenes of the test rows
are captioned and rendered again (other RNG streams) and encoded with the store's demo encoder;
cosine(caption, another caption of the same scene) bounds a single i2t draw, and the cosine to
the mean of 8 other captions approximates the posterior mean's.

STORE is a store that `mmr-pipeline run` (or `extract`) filled with the demo's features.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from pipeline.config import load_config
from pipeline.models.dit import with_feature_dim
from pipeline.restoration import (
    CORPUS_RESTORERS,
    RestoreSettings,
    build_restorer,
    corpus_pairs,
    recentring_shift,
    restored_by,
)
from pipeline.restorers import DIRECTIONS, DiffusionRestorer, Restorer, mean_cosine, missing_and_available
from pipeline.training.restorer import load_restorer_models, train_restorer
from stores.feature_store import FeatureStore
from stores.fs import list_names
from stores.restorer_store import RestorerStore

DOWNSTREAM = ("demo-cls", "demo-tags")
BASELINES = ("mean", "swap", "swap_gap", "knn", "regression")


def test_rows(store: str, dataset: str, encoder_id: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    features = FeatureStore(store, dataset, encoder_id)
    splits = np.asarray(features.read_samples().column("split").to_pylist())
    return features.read_arrays(), splits


def cosines(restorer: Restorer, data: dict, recentre: bool) -> tuple[list[float], list[float]]:
    """Mean cosine to the truth on each dataset's test rows, i2t and t2i: as restored, and
    recentred on that dataset's train rows (empty when `recentre` is off)."""
    raw, recentred = [], []
    for arrays, splits in data.values():
        rows = np.flatnonzero(splits == "test")
        for direction in DIRECTIONS:
            missing, present = missing_and_available(direction)
            restored = restorer.restore(arrays[f"{present}_emb"][rows], direction, rows)
            raw.append(mean_cosine(restored, arrays[f"{missing}_emb"][rows]))
            if recentre:
                shift = recentring_shift(arrays, splits, direction, restored_by(restorer, arrays, direction))
                recentred.append(mean_cosine(restored + shift, arrays[f"{missing}_emb"][rows]))
    return raw, recentred


def print_ceiling(store: str, n: int = 500) -> None:
    import torch

    from pipeline.data.demo import _rng, make_caption, make_scene, render_scene
    from pipeline.encoders.warmup import load_demo_encoder

    settings = load_config(None)
    encoder = load_demo_encoder(store, settings.warmup, settings.demo, progress=False)

    def texts(seed: int, scenes: list) -> np.ndarray:
        captions = [make_caption(seed, name, "test", i, scene) for i, scene in enumerate(scenes)]
        return encoder.encode_texts(encoder.tokenizer(captions)).numpy()

    def images(seed: int, scenes: list) -> np.ndarray:
        size = settings.demo.image_size
        pixels = [
            encoder.preprocess(render_scene(sc, size, _rng(seed, name, "test", i, 2)))
            for i, sc in enumerate(scenes)
        ]
        return encoder.encode_images(torch.stack(pixels)).numpy()

    print("| ceiling | " + " | ".join(DOWNSTREAM) + " |\n|---|" + "---|" * len(DOWNSTREAM))
    found: dict[str, list[float]] = {"text: another caption": [], "text: mean of 8 other captions": [],
                                     "image: another rendering": []}  # fmt: skip
    for name in DOWNSTREAM:
        scenes = [
            make_scene(settings.demo.seed, name, "test", i, settings.demo.typical_colour_p) for i in range(n)
        ]
        caption = texts(settings.demo.seed, scenes)
        others = np.mean([texts(100 + k, scenes) for k in range(8)], axis=0)
        found["text: another caption"].append(mean_cosine(caption, texts(77, scenes)))
        found["text: mean of 8 other captions"].append(mean_cosine(caption, others))
        found["image: another rendering"].append(
            mean_cosine(images(settings.demo.seed, scenes), images(77, scenes))
        )
    for label, values in found.items():
        print(f"| {label} | " + " | ".join(f"{v:.3f}" for v in values) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--budgets", default="468,2000,8000", help="training steps per run")
    parser.add_argument("--variants", default="gating,none")
    parser.add_argument("--draws", type=int, default=8)
    parser.add_argument("--sampling-steps", type=int, default=25)
    parser.add_argument("--baselines", default=",".join(BASELINES), help="comma list; empty for none")
    parser.add_argument("--ceiling", action="store_true", help="first print a perfect sampler's scores")
    parser.add_argument("--trained", help="score this trained restorer (ROOT/restorers/ID), train nothing")
    parser.add_argument("--temperatures", default="1", help="starting-noise scales to score, e.g. 1,0")
    parser.add_argument("--prediction", help="epsilon or v_prediction (default: the demo config's)")
    args = parser.parse_args()
    if args.ceiling:
        print_ceiling(args.store)
    encoder_id = list_names(f"{args.store}/features/demo-corpus")[0]
    images, texts, _ = corpus_pairs(args.store, "demo-corpus", encoder_id)
    data = {name: test_rows(args.store, name, encoder_id) for name in DOWNSTREAM}
    header = " | ".join(f"{name} {direction}" for name in DOWNSTREAM for direction in DIRECTIONS)
    print(f"corpus pairs {len(images)}, encoder {encoder_id}, device {args.device}")
    print(f"| restorer | train steps | train s | {header} |")
    print("|---|---|---|" + "---|" * 2 * len(DOWNSTREAM))

    def row(name: str, steps: str, seconds: str, values: list[float]) -> None:
        print(
            f"| {name} | {steps} | {seconds} | " + " | ".join(f"{v:.3f}" for v in values) + " |", flush=True
        )

    def rows(label: str, steps: str, seconds: str, restorer: Restorer, corpus_trained: bool) -> None:
        raw, recentred = cosines(restorer, data, corpus_trained)
        row(label, steps, seconds, raw)
        if corpus_trained:
            row(f"{label}, recentred", steps, seconds, recentred)

    settings = RestoreSettings()
    for name in filter(None, args.baselines.split(",")):
        arrays, splits = data["demo-cls"]  # corpus-fitted restorers ignore the dataset's arrays
        if name in ("mean", "swap_gap"):  # fitted on each dataset's train split
            values = []
            for arrays, splits in data.values():
                restorer = build_restorer(name, settings, arrays, splits, None, None)
                values += cosines(restorer, {"one": (arrays, splits)}, False)[0]
            row(name, "", "", values)
            continue
        restorer = build_restorer(name, settings, arrays, splits, (images, texts), None)
        rows(name, "", "", restorer, name in CORPUS_RESTORERS)

    # The CPU is fastest at 256 rows per DDIM batch (BENCHMARKS.md); a GPU takes them all at once.
    batch_size = 4096 if args.device.startswith("cuda") else settings.batch_size

    def score_dit(trained: RestorerStore, label: str, steps: str, seconds: str) -> None:
        loaded = load_restorer_models(trained, args.device)
        models, train_config = loaded.models, loaded.config
        for temperature in (float(value) for value in args.temperatures.split(",")):
            for draws in sorted({1, args.draws}) if temperature else [1]:
                restorer = DiffusionRestorer(
                    models, train_config.diffusion, steps=args.sampling_steps, batch_size=batch_size,
                    device=args.device, n_samples=draws, temperature=temperature,
                    corpus=(images, texts), retrieved=train_config.dit.retrieved,
                )  # fmt: skip
                drawn = "1 draw" if draws == 1 else f"mean of {draws} draws"
                start = f", temperature {temperature:g}" if temperature != 1 else ""
                rows(f"{label} ({train_config.diffusion.prediction}), S = {args.sampling_steps}{start}, {drawn}",
                     steps, seconds, restorer, True)  # fmt: skip

    if args.trained:
        trained = RestorerStore.at(args.trained)
        steps = trained.load(trained.latest(True))[1]["step"]
        score_dit(trained, f"dit {trained.restorer_id}", str(steps), "")
        return
    demo = load_config(None).restorer
    per_epoch = demo.steps_per_epoch(len(images))
    demo_steps = demo.total_steps(len(images))
    for variant in args.variants.split(","):
        for budget in (int(b) for b in args.budgets.split(",") if b):
            scale = budget / demo_steps
            prediction = args.prediction or demo.diffusion.prediction
            config = demo.model_copy(
                update={
                    "dit": with_feature_dim(demo.dit.model_copy(update={"gating": variant}), images.shape[1]),
                    "diffusion": demo.diffusion.model_copy(update={"prediction": prediction}),
                    "stage1_epochs": demo.stage1_epochs * scale,
                    "stage2_epochs": demo.stage2_epochs * scale,
                    "checkpoint_every": max(budget, per_epoch),
                }
            )
            trained = RestorerStore(tempfile.mkdtemp(prefix="quality-"), f"dit-{variant}-{budget}")
            result = train_restorer(config, images, texts, trained, device=args.device, progress=False)
            print(f"trained: {trained.url}", flush=True)
            score_dit(trained, f"dit {variant}", str(result.steps), f"{result.seconds:.0f}")


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - started:.0f} s")
