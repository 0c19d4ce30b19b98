"""A restoration answers only for the features it was made from: features encoded again from
other raw data (as a refused store's error suggests) are restored and evaluated again."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.data.demo import DemoAdapter, DemoConfig
from pipeline.restoration import RestoreSettings, corpus_label, restore
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
    rows = RestoredRows(
        root, "demo-tags", encoder_id, f"knn-k3-{corpus_label(root, 'demo-corpus', encoder_id)}", "i2t"
    )
    assert rows.read(old) is None and rows.read(new) is not None
    filled, text = second.store.read(), features.read_arrays()["text_emb"]
    kept = ~filled["text_restored"]
    np.testing.assert_allclose(filled["text_emb"][kept], text[kept], atol=1e-3)  # the new features
    assert evaluation_id(spec, second.manifest, 0) != evaluation_id(spec, first.manifest, 0)
    assert restore(*arguments, corpus="demo-corpus").cached


def test_a_corpus_restorer_fitted_on_another_corpus_is_another_restoration(
    tiny_demo_store: tuple[str, str],
) -> None:
    """Before, `knn` and `regression` were named without their corpus: `--corpus B` after a run
    with corpus A found A's restoration (and its evaluations) and reported them as B's."""
    root, encoder_id = tiny_demo_store
    arguments = (
        root,
        "demo-tags",
        encoder_id,
        "knn",
        0.5,
        "text",
        0,
        RestoreSettings(knn_k=3, recentre=False),
    )
    on_corpus = restore(*arguments, corpus="demo-corpus")
    on_tags = restore(*arguments, corpus="demo-tags")  # the task's own pairs stand in for a corpus
    assert not on_tags.cached
    assert on_tags.manifest["restorer_key"] != on_corpus.manifest["restorer_key"]
    rows = on_tags.store.read()["text_restored"]
    assert not np.allclose(on_tags.store.read()["text_emb"][rows], on_corpus.store.read()["text_emb"][rows])
    assert restore(*arguments, corpus="demo-corpus").cached
