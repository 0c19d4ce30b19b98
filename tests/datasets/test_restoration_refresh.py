"""A restoration answers only for the features it was made from: features encoded again from
other raw data (as a refused store's error suggests) are restored and evaluated again."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.data.demo import DemoAdapter, DemoConfig
from pipeline.restoration import RestoreSettings, restore
from pipeline.steps import RunSpec, evaluation_id, restoration_stored
from stores.feature_store import FeatureStore
from stores.restoration_store import RestoredRows


def test_features_encoded_again_from_other_data_are_restored_again(
    tmp_path: Path, run_extract: Callable, tiny_demo: DemoConfig, tiny_demo_store: tuple[str, str]
) -> None:
    root, encoder_id = tiny_demo_store
    settings = RestoreSettings(knn_k=3, recentre=False)
    arguments = (root, "demo-tags", encoder_id, "knn", 0.5, "text", 0, settings)
    first = restore(*arguments, corpus="demo-corpus")
    old = FeatureStore(root, "demo-tags", encoder_id).fingerprint()
    assert first.manifest["features"] == old and not first.cached
    assert restore(*arguments, corpus="demo-corpus").cached
    config = tmp_path / "knn3.json"
    config.write_text('{"restore": {"knn_k": 3, "recentre": false}}')
    spec = RunSpec(store=root, config=str(config))
    stored = (spec, "demo-tags", encoder_id, "knn", 0.5, "text", 0, "demo-corpus")
    assert restoration_stored(*stored)  # what the Prefect record of the restore task asks

    features = FeatureStore(root, "demo-tags", encoder_id)
    shutil.rmtree(features.url)  # the raw data changed: the features are encoded anew
    run_extract(DemoAdapter("demo-tags", tiny_demo.model_copy(update={"seed": 1})))
    new = features.fingerprint()
    assert new != old
    assert not restoration_stored(*stored)

    second = restore(*arguments, corpus="demo-corpus")
    assert not second.cached and second.manifest["features"] == new
    rows = RestoredRows(root, "demo-tags", encoder_id, "knn-k3", "i2t")
    assert rows.read(old) is None and rows.read(new) is not None
    filled, text = second.store.read(), features.read_arrays()["text_emb"]
    kept = ~filled["text_restored"]
    np.testing.assert_allclose(filled["text_emb"][kept], text[kept], atol=1e-3)  # the new features
    assert evaluation_id(spec, second.manifest, 0) != evaluation_id(spec, first.manifest, 0)
    assert restore(*arguments, corpus="demo-corpus").cached
