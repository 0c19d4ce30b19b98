"""The feature store's layout under concurrent and older writers (no encoder involved)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import stores.feature_store as feature_store
from stores.feature_store import SAMPLES_SCHEMA, FeatureStore, ShardFeatures
from stores.fs import read_json, write_json_atomic

N_ROWS, DIM, CHUNK = 10, 4, 4  # three shards: rows 0-3, 4-7, 8-9


def _manifest() -> dict:
    return {
        "encoder": {"id": "enc"}, "dataset_fingerprint": "fp", "n_rows": N_ROWS, "embed_dim": DIM,
        "chunk_rows": CHUNK, "format": feature_store.FEATURES_FORMAT,
    }  # fmt: skip


def _samples() -> pa.Table:
    row = {"split": "train", "label": [0], "text": "t", "image_ref": "i", "source": "x", "image_source": "{}"}
    rows = [{**row, "row": i, "sample_id": f"s{i}"} for i in range(N_ROWS)]
    return pa.Table.from_pylist(rows, schema=SAMPLES_SCHEMA)


def _shard(shard: int) -> ShardFeatures:
    start, stop = shard * CHUNK, min((shard + 1) * CHUNK, N_ROWS)
    values = np.arange(start, stop, dtype=np.float32)[:, None] + np.arange(DIM, dtype=np.float32) / 10
    present = np.ones(stop - start, dtype=bool)
    return ShardFeatures(shard, values, -values, present, present, [])


def _expected_image_rows() -> np.ndarray:
    return np.concatenate([_shard(k).image_emb for k in range(3)]).astype(np.float16).astype(np.float32)


def test_a_shard_committed_while_another_run_lays_the_store_out_is_not_wiped_under_its_marker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run A lays the store out; run B had looked before A's manifest existed and lays it out
    too. A commits shard 0 while B is laying out. Whatever B does, no shard may count whose rows
    B's layout wiped: before layouts had ids, B removed the markers, then A committed shard 0,
    then B overwrote the arrays, and shard 0 read as committed zeros."""
    first, second = FeatureStore(str(tmp_path), "d", "enc"), FeatureStore(str(tmp_path), "d", "enc")
    first.create(_manifest(), _samples())
    monkeypatch.setattr(second, "manifest", lambda: None)  # B's look came before A's manifest

    open_group = feature_store.zarr.open_group
    racing = {"done": False}

    def open_group_after_a_commits(*args: object, **kwargs: object) -> object:
        if not racing["done"]:  # B has started laying out: A commits shard 0 now
            racing["done"] = True
            first.write_shard(_shard(0))
        return open_group(*args, **kwargs)

    monkeypatch.setattr(feature_store.zarr, "open_group", open_group_after_a_commits)
    second.create(_manifest(), _samples())
    monkeypatch.undo()

    assert racing["done"]
    todo = [k for k in range(first.n_shards()) if k not in first.committed_shards()]
    for shard in todo:
        first.write_shard(_shard(shard))
    assert first.is_complete()
    np.testing.assert_array_equal(first.read_arrays()["image_emb"], _expected_image_rows())


def test_a_shard_written_after_a_racing_layout_counts_and_keeps_its_rows(tmp_path: Path) -> None:
    """The common order: B's layout lands between A's layout and A's first shard. A's shards
    go under B's layout (the manifest that names the store) and are not encoded twice."""
    first, second = FeatureStore(str(tmp_path), "d", "enc"), FeatureStore(str(tmp_path), "d", "enc")
    first.create(_manifest(), _samples())
    first.discard()  # what B's look saw: no manifest yet
    second.create(_manifest(), _samples())
    for shard in range(3):
        first.write_shard(_shard(shard))
    assert second.committed_shards() == {0, 1, 2}
    np.testing.assert_array_equal(second.read_arrays()["image_emb"], _expected_image_rows())


def test_markers_of_a_discarded_layout_do_not_count(tmp_path: Path) -> None:
    store = FeatureStore(str(tmp_path), "d", "enc")
    store.create(_manifest(), _samples())
    store.write_shard(_shard(0))
    store.discard()
    store.create(_manifest(), _samples())
    assert store.committed_shards() == set()
    assert not store.is_complete()


def test_a_store_laid_out_before_layouts_had_ids_reads_as_before(tmp_path: Path) -> None:
    """Markers in `_shards/` and no `layout` in the manifest: the stores of earlier releases."""
    store = FeatureStore(str(tmp_path), "d", "enc")
    store.create(_manifest(), _samples())
    for shard in range(3):
        store.write_shard(_shard(shard))
    manifest = read_json(store.manifest_url)
    markers = Path(store.url) / "_shards"
    layout = markers / manifest.pop("layout")
    for marker in layout.iterdir():
        marker.rename(markers / marker.name)
    layout.rmdir()
    write_json_atomic(store.manifest_url, manifest)

    assert store.committed_shards() == {0, 1, 2}
    np.testing.assert_array_equal(store.read_arrays()["image_emb"], _expected_image_rows())
