"""Which of the missing modality's attributes a restoration carries, on the demo.

Cosine to the truth scores a restoration as a whole; a decoder reads particular attributes
from it. Here logistic-regression probes (scikit-learn) for an object's colour and shape are
fitted on the TRUE features of the store's corpus scenes that hold one object, one probe per
attribute and modality, and then read the restored features of demo-cls's test rows (one
object each). A probe that reads the restoration as well as the true missing feature (`oracle`)
means the restorer carried that attribute over. Three groups of rows:

- i2t, colour image: the restored caption of an image that shows the colour and the shape;
- i2t, greyscale image: the image hides the colour, so only the corpus's habit (each kind of
  object's usual colour) can put it into the restored caption;
- t2i, no colour word: the restored image of a caption that leaves the colour out.

    python benchmarks/attribute_probe.py --store STORE [--restorers oracle,knn,regression,dit]
        [--trained STORE/restorers/ID] [--config demo]

STORE is a store `mmr-pipeline run` filled; `dit` restores with `--trained` (default: the
store's only trained restorer) as the config's restore settings say, except that no restorer
is recentred: the probes are fitted on corpus features, in the corpus's frame.
"""

from __future__ import annotations

import argparse
import re
import time

import numpy as np
from sklearn.linear_model import LogisticRegression

from pipeline.config import load_config
from pipeline.data.demo import COLOURS, SHAPES, SYNONYMS, Scene, make_caption, make_scene
from pipeline.restoration import build_restorer, corpus_pairs
from pipeline.restorers import Restorer, missing_and_available
from stores.feature_store import FeatureStore
from stores.fs import list_names
from stores.restorer_store import RestorerStore

ATTRIBUTES = ("colour", "shape")


def first_object_attributes(scenes: list[Scene]) -> dict[str, np.ndarray]:
    """attribute -> each scene's first object's value of it."""
    return {
        attribute: np.array([getattr(scene.objects[0], attribute) for scene in scenes])
        for attribute in ATTRIBUTES
    }


def fit_probes(store: str, encoder_id: str, seed: int, typical_colour_p: float) -> dict:
    """(modality, attribute) -> a probe fitted on the corpus's true single-object features."""
    arrays = FeatureStore(store, "demo-corpus", encoder_id).read_arrays()
    scenes = [
        make_scene(seed, "demo-corpus", "corpus", i, typical_colour_p)
        for i in range(len(arrays["image_emb"]))
    ]
    single = np.array([len(scene.objects) == 1 for scene in scenes])
    single &= arrays["image_present"] & arrays["text_present"]
    targets = first_object_attributes(scenes)
    return {
        (modality, attribute): LogisticRegression(max_iter=2000, C=10.0).fit(
            arrays[f"{modality}_emb"][single], targets[attribute][single]
        )
        for modality in ("image", "text")
        for attribute in ATTRIBUTES
    }


def test_groups(store: str, encoder_id: str, seed: int, typical_colour_p: float) -> tuple:
    """demo-cls features and splits, the test rows, their colour and shape, and the row groups."""
    features = FeatureStore(store, "demo-cls", encoder_id)
    arrays, samples = features.read_arrays(), features.read_samples()
    splits = np.asarray(samples.column("split").to_pylist())
    rows = np.flatnonzero(splits == "test")
    indices = [int(sample_id.rsplit("-", 1)[1]) for sample_id in samples.column("sample_id").to_pylist()]
    scenes = [make_scene(seed, "demo-cls", "test", indices[row], typical_colour_p) for row in rows]
    captions = [
        make_caption(seed, "demo-cls", "test", indices[row], scene)
        for row, scene in zip(rows, scenes, strict=True)
    ]
    truth = first_object_attributes(scenes)
    greyscale = np.array([scene.greyscale for scene in scenes])
    colour_named = np.array(
        [any(re.search(rf"\b{word}\b", caption) for word in SYNONYMS[scene.objects[0].colour])
         for caption, scene in zip(captions, scenes, strict=True)]
    )  # fmt: skip
    groups = {
        "i2t, colour image": ("i2t", ~greyscale),
        "i2t, greyscale image": ("i2t", greyscale),
        "t2i, no colour word": ("t2i", ~colour_named),
    }
    return arrays, splits, rows, truth, groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--restorers", default="oracle,knn,regression,dit")
    parser.add_argument("--trained", help="ROOT/restorers/ID for dit (default: the store's only one)")
    parser.add_argument("--config", help="preset or JSON file (restore settings, demo seed)")
    args = parser.parse_args()
    config = load_config(args.config)
    encoder_id = list_names(f"{args.store}/features/demo-corpus")[0]
    seed, habit_p = config.demo.seed, config.demo.typical_colour_p
    started = time.perf_counter()
    probes = fit_probes(args.store, encoder_id, seed, habit_p)
    arrays, splits, rows, truth, groups = test_groups(args.store, encoder_id, seed, habit_p)
    corpus = corpus_pairs(args.store, "demo-corpus", encoder_id)[:2]
    print(
        f"probes fitted in {time.perf_counter() - started:.0f} s; "
        f"chance: colour 1/{len(COLOURS)}, shape 1/{len(SHAPES)}"
    )
    header = " | ".join(f"{group} {attribute}" for group in groups for attribute in ATTRIBUTES)
    print(f"| restorer | {header} |\n|---|" + "---|" * 2 * len(groups))
    for name in args.restorers.split(","):
        trained = None
        if name == "dit":
            trained = (
                RestorerStore.at(args.trained)
                if args.trained
                else RestorerStore(args.store, list_names(f"{args.store}/restorers")[0])
            )
        zero_shot = config.restore.model_copy(update={"recentre": False})  # the probes' frame: the corpus's
        restorer: Restorer = build_restorer(name, zero_shot, arrays, splits, corpus, trained)
        restored = {  # both i2t groups read one restoration
            direction: restorer.restore(
                arrays[f"{missing_and_available(direction)[1]}_emb"][rows], direction, rows
            )
            for direction in ("i2t", "t2i")
        }
        cells = []
        for direction, subset in groups.values():
            missing = missing_and_available(direction)[0]
            for attribute in ATTRIBUTES:
                read = probes[missing, attribute].predict(restored[direction][subset])
                cells.append(f"{np.mean(read == truth[attribute][subset]):.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    print("rows per group: " + ", ".join(f"{g} {int(s.sum())}" for g, (_, s) in groups.items()))


if __name__ == "__main__":
    main()
