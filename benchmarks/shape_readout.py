"""Why a learned restorer misses an object's shape on the demo, while `knn` carries it.

`attribute_probe.py` shows that the DiT's and the `regression` MLP's captions restored from an
image name the object's shape far less often than `knn`'s. This script asks where the shape is
lost, on demo-cls's test rows and the store's corpus features (i2t; cosine to the true caption
over all test rows; shape read from a restored caption by the probe of `attribute_probe.py`, on
the rows with a colour image). The store must be a default demo store (its encoder is loaded):

1. Is it in the image feature? Classifiers fitted on the corpus's one-object scenes with their
   true shape (labels the restorers never see) read it from the test rows' image features.
2. Does a better conditional mean exist? `knn` with k from 1 to 300: the mean caption of more
   neighbours is a better estimate of E[caption | image] (cosine to the true caption), until the
   neighbours stop sharing the shape.
3. Is the corpus's one noisy caption per image the limit? The `regression` MLP fitted on each
   image's true caption, and on the mean of M other captions of the same scene (the demo's
   generator with other caption seeds, encoded by the store's encoder).
4. Is the input's conditioning the limit? The MLP on standardised and PCA-whitened image
   features.

    python benchmarks/shape_readout.py --store STORE [--captions 8]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from attribute_probe import first_object_attributes, fit_probes, test_groups
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier

from pipeline.config import load_config
from pipeline.data.demo import Scene, make_caption, make_scene
from pipeline.encoders.warmup import load_demo_encoder
from pipeline.restorers import KnnRestorer, RegressionRestorer, mean_cosine
from stores.feature_store import FeatureStore
from stores.fs import list_names


def other_captions_mean(
    store: str, encoder_id: str, indices: np.ndarray, scenes: list[Scene], m: int
) -> np.ndarray:
    """Per corpus sample, the mean feature of m other captions of the same scene."""
    config = load_config(None)
    encoder = load_demo_encoder(store, config.warmup, config.demo, progress=False)
    if encoder.encoder_id != encoder_id:  # the captions must land in the store's feature space
        raise SystemExit(f"the store's features are by {encoder_id}, the default demo encoder is "
                         f"{encoder.encoder_id}: pass a default demo store")  # fmt: skip
    total = np.zeros((len(indices), encoder.embed_dim), dtype=np.float32)
    with torch.inference_mode():
        for k in range(m):
            captions = [
                make_caption(100 + k, "demo-corpus", "corpus", int(i), s)
                for i, s in zip(indices, scenes, strict=True)
            ]
            for start in range(0, len(captions), 2048):
                tokens = encoder.tokenizer(captions[start : start + 2048])
                total[start : start + 2048] += encoder.encode_texts(tokens).numpy()
    return total / m


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--captions", type=int, default=8, help="other captions per scene in step 3")
    args = parser.parse_args()
    torch.set_num_threads(2)
    config = load_config(None)
    seed, habit_p = config.demo.seed, config.demo.typical_colour_p
    encoder_id = list_names(f"{args.store}/features/demo-corpus")[0]
    probes = fit_probes(args.store, encoder_id, seed, habit_p)
    arrays, _, rows, truth, groups = test_groups(args.store, encoder_id, seed, habit_p)
    colour_image = groups["i2t, colour image"][1]
    corpus = FeatureStore(args.store, "demo-corpus", encoder_id).read_arrays()
    kept = np.flatnonzero(corpus["image_present"] & corpus["text_present"])  # the pairs restorers learn from
    corpus_image, corpus_text = corpus["image_emb"][kept], corpus["text_emb"][kept]
    scenes = [make_scene(seed, "demo-corpus", "corpus", int(i), habit_p) for i in kept]
    test_image, test_text = arrays["image_emb"][rows], arrays["text_emb"][rows]

    print("1. shape from the image feature, classifiers fitted on the corpus's true shapes")
    single = np.array([len(scene.objects) == 1 for scene in scenes])
    shapes = first_object_attributes(scenes)["shape"]
    print("| classifier | shape, colour images |\n|---|---|")
    classifiers = {
        "logistic regression": LogisticRegression(max_iter=3000, C=10.0),
        "10 nearest neighbours": KNeighborsClassifier(10),
        "MLP 512 x 512": MLPClassifier((512, 512), max_iter=60, early_stopping=True, random_state=0),
    }
    for name, classifier in classifiers.items():
        classifier.fit(corpus_image[single], shapes[single])
        read = classifier.predict(test_image[colour_image])
        print(f"| {name} | {np.mean(read == truth['shape'][colour_image]):.3f} |", flush=True)

    def row(label: str, restored: np.ndarray) -> None:
        shape = probes["text", "shape"].predict(restored[colour_image]) == truth["shape"][colour_image]
        print(f"| {label} | {mean_cosine(restored, test_text):.3f} | {np.mean(shape):.3f} |", flush=True)

    print("\n2. to 4. restored captions (i2t): cosine to the true caption, shape read by the probe")
    print("| restorer | cosine | shape, colour images |\n|---|---|---|")
    for k in (1, 3, 10, 30, 100, 300):
        row(f"knn, k = {k}", KnnRestorer(corpus_image, corpus_text, k=k).restore(test_image, "i2t", rows))
    started = time.perf_counter()
    cleaner = other_captions_mean(args.store, encoder_id, kept, scenes, args.captions)
    print(f"| (mean of {args.captions} other captions per scene, encoded in {time.perf_counter() - started:.0f} s;"
          f" its cosine to the corpus caption {mean_cosine(cleaner, corpus_text):.3f}) | | |")  # fmt: skip
    row(f"knn, k = 10, mean of {args.captions} captions", KnnRestorer(corpus_image, cleaner, k=10).restore(
        test_image, "i2t", rows))  # fmt: skip
    centre = corpus_image.mean(axis=0)
    scale = (corpus_image - centre).std(axis=0).clip(1e-8)
    variances, axes = np.linalg.eigh(np.cov(corpus_image - centre, rowvar=False))
    inputs: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "image feature": lambda x: x,
        "standardised": lambda x: (x - centre) / scale,
        "PCA-whitened": lambda x: (x - centre) @ axes / np.sqrt(variances + 1e-8 * variances.max()),
    }
    for epochs in (3, 30):
        targets = {"its caption": corpus_text, f"mean of {args.captions} captions": cleaner}
        for target_name, target in targets.items():
            for input_name, transform in inputs.items():
                if input_name != "image feature" and target is cleaner:
                    continue  # one change at a time
                fitted = RegressionRestorer.fit(
                    transform(corpus_image).astype(np.float32), target, epochs=epochs
                )
                restored = fitted.restore(transform(test_image).astype(np.float32), "i2t", rows)
                row(f"regression, {epochs} epochs, {input_name} -> {target_name}", restored)


if __name__ == "__main__":
    main()
