"""Extraction into the feature store: layout, normalisation, skipping committed shards, refusals."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zarr

from pipeline import extraction, steps
from pipeline.config import PipelineConfig
from pipeline.data import demo
from pipeline.data.map_arrow import ArrowRowImage
from pipeline.data.registry import get_adapter
from pipeline.data.sample import FileImage, reference_from_json, reference_to_json
from pipeline.data.webdataset import TarSliceImage
from pipeline.encoders.frozen import FrozenEncoder
from pipeline.errors import StoreMismatchError
from pipeline.extraction import extract, shard_batches
from pipeline.steps import RunSpec, plan_extraction
from stores.feature_store import FEATURES_FORMAT, FeatureStore
from stores.fs import read_parquet_rows, write_parquet


def _demo_cls(config: PipelineConfig):
    return get_adapter("demo-cls", options=config.demo.model_dump())


def test_batches_never_cross_shard_boundaries() -> None:
    batches = shard_batches([0, 2], chunk_rows=10, n_rows=25, batch_size=4)
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9], [20, 21, 22, 23], [24]]


def test_extract_writes_a_complete_normalised_float16_store(
    store_with_encoder: Path, small_config: PipelineConfig, demo_encoder: FrozenEncoder
) -> None:
    adapter = _demo_cls(small_config)
    result = extract(adapter, demo_encoder, str(store_with_encoder), small_config.extraction, progress=False)
    n_rows = small_config.demo.train_size + small_config.demo.val_size + small_config.demo.test_size
    assert result.n_rows == n_rows and result.shards_written == result.shards_total > 1

    store = FeatureStore(str(store_with_encoder), "demo-cls", demo_encoder.encoder_id)
    group = zarr.open_group(store.url, mode="r")
    assert group["image_emb"].dtype == np.float16 and group["image_emb"].shape == (
        n_rows,
        demo_encoder.embed_dim,
    )
    assert group["image_emb"].chunks == (small_config.extraction.chunk_rows, demo_encoder.embed_dim)
    arrays = store.read_arrays()
    for name in ("image_emb", "text_emb"):
        np.testing.assert_allclose(np.linalg.norm(arrays[name], axis=1), 1.0, atol=2e-3)
    assert arrays["image_present"].all() and arrays["text_present"].all()

    samples = store.read_samples()
    assert samples.column("row").to_pylist() == list(range(n_rows))
    assert samples.column("sample_id").to_pylist() == [s.sample_id for s in adapter.samples()]
    manifest = store.manifest()
    assert manifest["encoder"]["digest"] == demo_encoder.digest
    assert manifest["preprocessing"]["image"]["size"] == [32, 32]
    assert manifest["code_version"] and len(manifest["dataset_fingerprint"]) == 64

    # Features match a direct encoding of the same samples (rows are where they should be).
    sample = next(iter(adapter.samples()))
    direct = demo_encoder.encode_images(demo_encoder.preprocess(sample.image.open().convert("RGB"))[None])
    np.testing.assert_allclose(arrays["image_emb"][0], direct[0].numpy(), atol=2e-3)


def test_rerun_skips_committed_shards_and_redoes_only_missing_ones(
    store_with_encoder: Path, small_config: PipelineConfig, demo_encoder: FrozenEncoder
) -> None:
    adapter = _demo_cls(small_config)
    root = str(store_with_encoder)
    first = extract(adapter, demo_encoder, root, small_config.extraction, progress=False)
    store = FeatureStore(root, "demo-cls", demo_encoder.encoder_id)
    before = store.read_arrays()

    again = extract(adapter, demo_encoder, root, small_config.extraction, progress=False)
    assert (again.shards_written, again.shards_skipped) == (0, first.shards_total)

    Path(store.marker_url(1)).unlink()  # as if the process died before committing shard 1
    with pytest.raises(StoreMismatchError, match="incomplete"):
        store.read_arrays()
    repaired = extract(adapter, demo_encoder, root, small_config.extraction, progress=False)
    assert repaired.shards_written == 1
    after = store.read_arrays()
    for name, array in before.items():
        np.testing.assert_array_equal(after[name], array)


def _extracted_demo_cls(
    root: Path, config: PipelineConfig, encoder: FrozenEncoder
) -> tuple[demo.DemoAdapter, FeatureStore]:
    """demo-cls's adapter and its store under `root`, extracted in full."""
    adapter = _demo_cls(config)
    extract(adapter, encoder, str(root), config.extraction, progress=False)
    return adapter, FeatureStore(str(root), "demo-cls", encoder.encoder_id)


def test_a_store_from_other_weights_or_data_is_refused(
    store_with_encoder: Path, small_config: PipelineConfig, demo_encoder: FrozenEncoder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    adapter, store = _extracted_demo_cls(store_with_encoder, small_config, demo_encoder)
    root = str(store_with_encoder)
    manifest_path = Path(store.manifest_url)
    original = json.loads(manifest_path.read_text())

    manifest = json.loads(manifest_path.read_text())
    manifest["encoder"]["digest"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(StoreMismatchError, match="written by encoder"):
        extract(adapter, demo_encoder, root, small_config.extraction, progress=False)

    manifest = dict(original, dataset_fingerprint="f" * 64)
    manifest_path.write_text(json.dumps(manifest))
    monkeypatch.setattr(demo.DemoAdapter, "generated", False)  # read from files: fingerprinted in full
    with pytest.raises(StoreMismatchError, match="other raw data than this run lists"):
        extract(adapter, demo_encoder, root, small_config.extraction, progress=False)


def test_reading_features_of_an_encoder_that_never_ran_names_the_fix(
    store_with_encoder: Path, small_config: PipelineConfig, demo_encoder: FrozenEncoder
) -> None:
    extract(
        _demo_cls(small_config),
        demo_encoder,
        str(store_with_encoder),
        small_config.extraction,
        progress=False,
    )
    other = FeatureStore(str(store_with_encoder), "demo-cls", "ViT-B-32.openai.000000000000")
    with pytest.raises(
        StoreMismatchError, match=rf"features there: {demo_encoder.encoder_id}.*mmr-pipeline extract"
    ):
        other.read_arrays()


def _record_listings(monkeypatch: pytest.MonkeyPatch) -> list[int | None]:
    """From now on, each listing's `limit` (None: the whole dataset), in order."""
    listed: list[int | None] = []
    list_all_or_some = extraction.list_samples

    def recording(adapter: object, limit: int | None = None) -> object:
        listed.append(limit)
        return list_all_or_some(adapter, limit)  # type: ignore[arg-type]

    monkeypatch.setattr(extraction, "list_samples", recording)
    return listed


def test_a_planned_demo_store_is_checked_without_listing_all_of_the_demo_again(
    store_with_encoder: Path, demo_encoder: FrozenEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = RunSpec(store=str(store_with_encoder), config="demo-small")
    first = plan_extraction(spec, "demo-cls", None)
    listed = _record_listings(monkeypatch)
    assert plan_extraction(spec, "demo-cls", None) == first
    assert listed == [extraction.SPOT_CHECK_ROWS]  # the first rows only

    # Other options, code version or encoder weights in the manifest: listed in full and checked.
    store = FeatureStore(spec.store, "demo-cls", demo_encoder.encoder_id)
    manifest_path = Path(store.manifest_url)
    original = json.loads(manifest_path.read_text())
    for changed in ({"code_version": "0"}, {"dataset_options": {**original["dataset_options"], "seed": 1}},
                    {"encoder": {**original["encoder"], "digest": "0" * 64}}):  # fmt: skip
        manifest_path.write_text(json.dumps({**original, **changed}))
        listed.clear()
        with contextlib.suppress(StoreMismatchError):  # the full check refuses what differs
            plan_extraction(spec, "demo-cls", None)
        assert None in listed, changed
    manifest_path.write_text(json.dumps(original))

    # The generator changed without a version bump: the first rows differ, the full check refuses.
    make_caption = demo.make_caption
    monkeypatch.setattr(demo, "make_caption", lambda *args: make_caption(*args) + " again")
    with pytest.raises(StoreMismatchError, match=r"\(row 0 text was '[^']+', is '[^']+ again'\)"):
        plan_extraction(spec, "demo-cls", None)
    monkeypatch.setattr(demo, "make_caption", make_caption)

    monkeypatch.setattr(demo.DemoAdapter, "generated", False)  # as a dataset read from files
    listed.clear()
    assert plan_extraction(spec, "demo-cls", None) == first
    assert listed == [None]


def test_every_stored_reference_kind_survives_the_listing_and_nothing_else_is_rebuilt() -> None:
    references = [
        FileImage("s3://bucket/mmimdb/dataset/0001.jpeg"),
        ArrowRowImage("/data/food101_train.arrow", 7, "v1", "image"),
        TarSliceImage("/data/cc3m/00000.tar", "00000001.jpg", 1536, 20_480),
        demo.DemoImage("demo-cls", "test", 3, 0, 32, 0.8),
    ]
    for reference in references:
        assert reference_from_json(reference_to_json(reference)) == reference
    assert reference_to_json(None) is None and reference_from_json(None) is None
    unknown = json.dumps({"kind": "os:system", "fields": {"command": "true"}})
    with pytest.raises(ValueError, match="unknown image reference 'os:system'"):
        reference_from_json(unknown)


def test_extraction_tasks_encode_from_the_stored_listing_without_listing_again(
    store_with_encoder: Path, small_config: PipelineConfig, demo_encoder: FrozenEncoder,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:  # fmt: skip
    """One task per few shards, each listing the whole dataset again, would read every tar
    header of a web-scale corpus once per task; the plan step's listing serves them all."""
    spec = RunSpec(store=str(store_with_encoder), config="demo-small")
    plan = plan_extraction(spec, "demo-cls", None)
    _, listed = extraction.list_samples(_demo_cls(small_config))
    store = FeatureStore(spec.store, "demo-cls", demo_encoder.encoder_id)
    assert extraction.stored_rows(store, range(plan["shards_total"])) == {row.row: row for row in listed}
    assert pq.ParquetFile(store.samples_url).num_row_groups == plan["shards_total"]  # a task reads its own

    def no_listing(*args: object, **kwargs: object) -> None:
        raise AssertionError("an extraction task listed the dataset")

    monkeypatch.setattr(extraction, "list_samples", no_listing)
    todo = plan["todo"]
    assert steps.extract_shards(spec, "demo-cls", todo[-1:]) + steps.extract_shards(
        spec, "demo-cls", todo[:-1]
    ) == len(listed)
    assert store.is_complete()
    monkeypatch.undo()
    extract(_demo_cls(small_config), demo_encoder, str(tmp_path), small_config.extraction, progress=False)
    direct = FeatureStore(str(tmp_path), "demo-cls", demo_encoder.encoder_id).read_arrays()
    for name, values in store.read_arrays().items():
        np.testing.assert_array_equal(values, direct[name])


def test_a_store_of_another_release_is_continued_and_one_of_an_older_format_is_rebuilt_or_refused(
    store_with_encoder: Path, small_config: PipelineConfig, demo_encoder: FrozenEncoder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Features depend on the encoder, the data and what extraction writes, not on the release:
    every version bump used to refuse every store, the user's default one included."""
    adapter, store = _extracted_demo_cls(store_with_encoder, small_config, demo_encoder)
    root = str(store_with_encoder)
    manifest_path = Path(store.manifest_url)
    original = json.loads(manifest_path.read_text())
    assert original["format"] == FEATURES_FORMAT
    before = store.read_arrays()

    monkeypatch.setattr(demo.DemoAdapter, "generated", False)  # as a dataset read from files
    manifest_path.write_text(json.dumps({**original, "code_version": "0.1.0"}))
    Path(store.marker_url(1)).unlink()  # and the older release was killed before shard 1
    resumed = extract(adapter, demo_encoder, root, small_config.extraction, progress=False)
    assert (resumed.shards_written, resumed.shards_skipped) == (1, resumed.shards_total - 1)

    manifest_path.write_text(json.dumps({**original, "format": 1}))
    with pytest.raises(StoreMismatchError, match="format=1, this run has 2: delete"):
        extract(adapter, demo_encoder, root, small_config.extraction, progress=False)

    monkeypatch.setattr(demo.DemoAdapter, "generated", True)  # generated data is encoded again
    rebuilt = extract(adapter, demo_encoder, root, small_config.extraction, progress=False)
    assert (rebuilt.shards_written, rebuilt.shards_skipped) == (rebuilt.shards_total, 0)
    assert json.loads(manifest_path.read_text())["format"] == FEATURES_FORMAT
    for name, array in store.read_arrays().items():
        np.testing.assert_array_equal(array, before[name])


def test_a_demo_store_listed_in_full_by_a_new_release_takes_the_fast_path_after(
    store_with_encoder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = RunSpec(store=str(store_with_encoder), config="demo-small")
    plan_extraction(spec, "demo-cls", None)
    manifest_path = next((store_with_encoder / "features" / "demo-cls").glob("*/manifest.json"))
    manifest_path.write_text(json.dumps({**json.loads(manifest_path.read_text()), "code_version": "0.1.0"}))
    listed = _record_listings(monkeypatch)
    plan_extraction(spec, "demo-cls", None)
    plan_extraction(spec, "demo-cls", None)
    assert listed == [None, extraction.SPOT_CHECK_ROWS]  # in full once, then the first rows only


def test_rows_of_a_parquet_file_come_from_the_row_groups_that_hold_them(tmp_path: Path) -> None:
    url = str(tmp_path / "rows.parquet")
    table = pa.table({"row": list(range(25)), "text": [f"t{i}" for i in range(25)]})
    for group_size in (10, None):  # shard-sized groups, and one group (any Parquet file)
        write_parquet(url, table, row_group_size=group_size)
        for start, stop in ((0, 10), (10, 20), (20, 25), (5, 15), (0, 25), (24, 25)):
            assert read_parquet_rows(url, start, stop, ["row"]).column("row").to_pylist() == list(
                range(start, stop)
            )
