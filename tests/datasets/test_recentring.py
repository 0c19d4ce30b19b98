"""Recentring through the real restore step: per-row restorations are shared by every mask, and
each mask adds the shift fitted on the train features it leaves."""

from __future__ import annotations

import numpy as np

from pipeline.restoration import (
    RestoreSettings,
    build_restorer,
    corpus_label,
    corpus_pairs,
    restore,
    train_means,
)
from stores.feature_store import FeatureStore
from stores.restoration_store import RestoredRows


def test_each_mask_recentres_the_shared_rows_on_its_own_train_features(
    tiny_demo_store: tuple[str, str],
) -> None:
    root, encoder_id = tiny_demo_store
    features = FeatureStore(root, "demo-tags", encoder_id).read_arrays()
    settings = RestoreSettings(knn_k=3, recentre=True)
    shifts = []
    for seed in (0, 1):
        result = restore(
            root, "demo-tags", encoder_id, "knn", 0.5, "text", seed, settings, corpus="demo-corpus"
        )
        knn = f"knn-k3-{corpus_label(root, 'demo-corpus', encoder_id)}"
        assert result.manifest["restorer_key"] == f"{knn}-rc"
        filled = result.store.read()
        fingerprint = FeatureStore(root, "demo-tags", encoder_id).fingerprint()
        shared = RestoredRows(root, "demo-tags", encoder_id, knn, "i2t").read(fingerprint)  # unshifted
        assert shared is not None
        rows = np.flatnonzero(filled["text_restored"])
        splits = np.asarray(
            FeatureStore(root, "demo-tags", encoder_id).read_samples().column("split").to_pylist()
        )
        left = {**features, "text_present": features["text_present"] & ~filled["text_restored"]}
        # swap_gap's correction: the text train mean left minus the restorer's mean output on the
        # train rows with an image (the text mask leaves every image).
        sources = (splits == "train") & features["image_present"]
        shift = train_means(left, splits)["text"] - shared[sources].astype(np.float32).mean(axis=0)
        np.testing.assert_allclose(
            filled["text_emb"][rows], shared[rows].astype(np.float32) + shift, atol=2e-3
        )
        shifts.append(shift)
    assert np.abs(shifts[0] - shifts[1]).max() > 1e-4  # other masks leave other train features


def test_the_restore_step_recentres_as_build_restorer_does_on_the_features_the_mask_leaves(
    tiny_demo_store: tuple[str, str],
) -> None:
    """A `both` mask removes some train images and some train texts: the shared-rows path of the
    restore step must fit each direction's shift on those, as `build_restorer` does."""
    root, encoder_id = tiny_demo_store
    store = FeatureStore(root, "demo-tags", encoder_id)
    features = store.read_arrays()
    splits = np.asarray(store.read_samples().column("split").to_pylist())
    settings = RestoreSettings(knn_k=3, recentre=True)
    filled = restore(root, "demo-tags", encoder_id, "knn", 0.5, "both", 0, settings, corpus="demo-corpus")
    filled = filled.store.read()
    train = splits == "train"
    assert (filled["image_restored"] & train).any() and (filled["text_restored"] & train).any()
    left = {
        **features,
        "image_present": features["image_present"] & ~filled["image_restored"],
        "text_present": features["text_present"] & ~filled["text_restored"],
    }
    corpus = corpus_pairs(root, "demo-corpus", encoder_id)[:2]
    expected = build_restorer("knn", settings, left, splits, corpus, None)
    for direction, missing, available in (("i2t", "text", "image"), ("t2i", "image", "text")):
        rows = np.flatnonzero(filled[f"{missing}_restored"])
        want = expected.restore(features[f"{available}_emb"][rows], direction, rows)  # type: ignore[arg-type]
        np.testing.assert_allclose(filled[f"{missing}_emb"][rows], want, atol=2e-3)
