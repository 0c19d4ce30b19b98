"""The feature store: one Zarr v3 group per (dataset, encoder id).

    {root}/features/{dataset}/{encoder_id}/      a Zarr v3 group
        image_emb, text_emb       (N, D) float16, L2-normalised, zeros where absent
        image_present, text_present  (N,) bool
        samples.parquet           row, sample_id, split, label, text, image_ref, source, image_source
        manifest.json             encoder, weights digest, preprocessing, fingerprint, format, code version
        _shards/{layout}/{k:06d}.json  commit marker of shard k (rows, absence counts and reasons)

Shard k covers rows [k * chunk_rows, (k + 1) * chunk_rows): exactly one chunk of every array,
so concurrent writers never share a chunk. A shard counts only once its marker exists; the
marker is written after its chunks, so a killed writer leaves at most an unmarked shard that
the next run overwrites. A reader refuses a store until every shard is committed.

Each layout of the store has its own id (`layout` in the manifest) and its markers live under
it, so markers of a discarded or superseded layout never count and nothing has to delete them.
Two runs that lay out the same new store at once both write a manifest; whichever lands last
names the layout, and shards committed under the other one are encoded again. Laying out keeps
arrays that already have the right shape, so it never wipes a chunk another writer committed.
(Stores laid out before layouts had ids keep their markers in `_shards/` and read as before.)
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import zarr

from pipeline.errors import StoreMismatchError
from stores.fs import (
    join,
    list_names,
    read_json,
    read_parquet,
    read_parquet_rows,
    remove,
    write_json_atomic,
    write_parquet,
)

SAMPLES_SCHEMA = pa.schema(
    [
        ("row", pa.int64()),
        ("sample_id", pa.string()),
        ("split", pa.string()),
        ("label", pa.list_(pa.int32())),
        ("text", pa.string()),
        ("image_ref", pa.string()),
        ("source", pa.string()),
        ("image_source", pa.string()),  # the image reference as JSON, for extraction tasks
    ]
)
# The columns that say which raw data a store holds: the dataset fingerprint hashes them.
LISTING_COLUMNS = ["sample_id", "split", "label", "text", "image_ref"]
# What extraction writes, versioned on its own: bump it when the arrays, the samples table or
# the markers change. Not the code version, which moves with every release: a store refused on
# it would send every user back to re-encode features that no release changed.
FEATURES_FORMAT = 2  # 2: samples.parquet records image_source
# Manifest fields that must agree for a rerun to continue a store instead of being refused.
IDENTITY_FIELDS = ("encoder", "dataset_fingerprint", "n_rows", "embed_dim", "chunk_rows", "format")


@dataclass(frozen=True)
class ShardFeatures:
    """Everything one shard writes: its rows' features, presence flags and absence reasons."""

    shard: int
    image_emb: np.ndarray
    text_emb: np.ndarray
    image_present: np.ndarray
    text_present: np.ndarray
    absences: list[dict[str, Any]]


def features_url(root: str, dataset: str, encoder_id: str) -> str:
    return join(root, "features", dataset, encoder_id)


class FeatureStore:
    """Read and write one (dataset, encoder id) group."""

    def __init__(self, root: str, dataset: str, encoder_id: str) -> None:
        self.root = root
        self.dataset = dataset
        self.encoder_id = encoder_id
        self.url = features_url(root, dataset, encoder_id)

    # ----- layout -----------------------------------------------------------------------
    @property
    def manifest_url(self) -> str:
        return join(self.url, "manifest.json")

    @property
    def samples_url(self) -> str:
        return join(self.url, "samples.parquet")

    def _markers_url(self, manifest: dict[str, Any]) -> str:
        """The folder of the markers of the layout `manifest` names (module doc)."""
        layout = manifest.get("layout")
        return join(self.url, "_shards", layout) if layout else join(self.url, "_shards")

    def _marker_url(self, manifest: dict[str, Any], shard: int) -> str:
        return join(self._markers_url(manifest), f"{shard:06d}.json")

    def marker_url(self, shard: int) -> str:
        return self._marker_url(self._require_manifest(), shard)

    def manifest(self) -> dict[str, Any] | None:
        return read_json(self.manifest_url)

    # ----- writing ----------------------------------------------------------------------
    def create(self, manifest: dict[str, Any], samples: pa.Table) -> None:
        """Lay out an empty store, or check that an existing one was made from the same inputs."""
        existing = self.manifest()
        if existing is not None:
            self._check_same(existing, manifest, samples)
            return
        n_rows, dim, chunk = manifest["n_rows"], manifest["embed_dim"], manifest["chunk_rows"]
        group = zarr.open_group(self.url, mode="a", zarr_format=3)
        layout = {
            "image_emb": ((n_rows, dim), (chunk, dim), np.dtype("float16")),
            "text_emb": ((n_rows, dim), (chunk, dim), np.dtype("float16")),
            "image_present": ((n_rows,), (chunk,), np.dtype("bool")),
            "text_present": ((n_rows,), (chunk,), np.dtype("bool")),
        }
        for name, (shape, chunks, dtype) in layout.items():
            found = group.get(name)
            if found is not None and (found.shape, found.chunks, found.dtype) == (shape, chunks, dtype):
                continue  # rows a racing writer committed stay; only this layout's markers count
            group.create_array(name, shape=shape, chunks=chunks, dtype=dtype, overwrite=True)
        # One row group per shard: an extraction task reads its shards' rows, not the whole listing.
        write_parquet(self.samples_url, samples.cast(SAMPLES_SCHEMA), row_group_size=chunk)
        # Last: the store exists once this does, with a fresh layout id for its markers.
        write_json_atomic(self.manifest_url, {**manifest, "layout": uuid.uuid4().hex[:12]})

    def update_manifest(self, **fields: Any) -> None:
        """Rewrite manifest fields that are not part of the store's identity (atomically)."""
        if set(fields) & set(IDENTITY_FIELDS):
            raise ValueError(f"{sorted(set(fields) & set(IDENTITY_FIELDS))} decide what the store holds")
        write_json_atomic(self.manifest_url, {**self._require_manifest(), **fields})

    def discard(self) -> None:
        """Forget the layout: the next `create` lays the store out anew (its manifest goes
        first, so a crash halfway leaves a store that is not there, never a mixed one)."""
        remove(self.manifest_url)

    def _check_same(self, existing: dict[str, Any], wanted: dict[str, Any], samples: pa.Table) -> None:
        for field in IDENTITY_FIELDS:
            if existing.get(field) == wanted.get(field):
                continue
            if field in ("dataset_fingerprint", "n_rows"):
                then = existing.get("dataset_options")
                now = json.loads(json.dumps(wanted.get("dataset_options")))  # as a manifest holds them
                options = "" if then == now else f"; made with options {then}, this run has {now}"
                fix = "and the config's `datasets` options " if options else ""
                raise StoreMismatchError(
                    f"store {self.url} was made from other raw data than this run lists "
                    f"({self._first_change(samples)}{options}): pass the --root {fix}it was made from, "
                    f"or delete {self.url} to rebuild it"
                )
            if field == "encoder":
                raise StoreMismatchError(
                    f"store {self.url} was written by encoder {existing['encoder'].get('id')} "
                    f"(weights {existing['encoder'].get('digest', '')[:12]}), not "
                    f"{wanted['encoder'].get('id')}: pass another --store or delete {self.url}"
                )
            raise StoreMismatchError(
                f"store {self.url} was made with {field}={existing.get(field)!r}, this run has "
                f"{wanted.get(field)!r}: delete {self.url} to rebuild it, or pass another --store"
            )

    def _first_change(self, samples: pa.Table) -> str:
        """Where the stored listing and `samples` first differ, in words."""
        stored = read_parquet(self.samples_url)
        if stored.num_rows != samples.num_rows:
            return f"{stored.num_rows} samples then, {samples.num_rows} now"
        listed = zip(stored.select(LISTING_COLUMNS).to_pylist(), samples.select(LISTING_COLUMNS).to_pylist(),
                     strict=True)  # fmt: skip
        for row, (then, now) in enumerate(listed):
            if then != now:
                column = next(name for name in LISTING_COLUMNS if then[name] != now[name])
                return f"row {row} {column} was {then[column]!r}, is {now[column]!r}"
        return "the same samples, listed by another code version"

    def write_shard(self, features: ShardFeatures) -> None:
        manifest = self._require_manifest()
        chunk = manifest["chunk_rows"]
        start = features.shard * chunk
        stop = min(start + chunk, manifest["n_rows"])
        if features.image_emb.shape[0] != stop - start:
            raise ValueError(
                f"shard {features.shard} needs {stop - start} rows, got {features.image_emb.shape[0]}"
            )
        group = zarr.open_group(self.url, mode="r+", zarr_format=3)
        group["image_emb"][start:stop] = features.image_emb.astype(np.float16)
        group["text_emb"][start:stop] = features.text_emb.astype(np.float16)
        group["image_present"][start:stop] = features.image_present
        group["text_present"][start:stop] = features.text_present
        write_json_atomic(  # under the layout read before the chunks were written (module doc)
            self._marker_url(manifest, features.shard),
            {
                "shard": features.shard,
                "rows": [start, stop],
                "image_absent": int((~features.image_present).sum()),
                "text_absent": int((~features.text_present).sum()),
                "absences": features.absences,
            },
        )

    # ----- reading ----------------------------------------------------------------------
    def _require_manifest(self) -> dict[str, Any]:
        manifest = self.manifest()
        if manifest is None:
            siblings = [name for name in list_names(join(self.root, "features", self.dataset))]
            found = f" (features there: {', '.join(siblings)})" if siblings else ""
            raise StoreMismatchError(
                f"no features of {self.dataset} by encoder {self.encoder_id} in {self.root}{found}: "
                f"run `mmr-pipeline extract --dataset {self.dataset} --store {self.root}` with that encoder"
            )
        return manifest

    def fingerprint(self) -> str:
        """The dataset fingerprint of the stored features: restorations record what they restored."""
        return self._require_manifest()["dataset_fingerprint"]

    def n_shards(self) -> int:
        return _shard_count(self._require_manifest())

    def committed_shards(self) -> set[int]:
        return self._committed(self._require_manifest())

    def _committed(self, manifest: dict[str, Any]) -> set[int]:
        names = list_names(self._markers_url(manifest))
        return {int(name.split(".")[0]) for name in names if name.endswith(".json")}

    def is_complete(self) -> bool:
        manifest = self.manifest()  # one read: on an object store each is a request
        return manifest is not None and len(self._committed(manifest)) == _shard_count(manifest)

    def shard_markers(self) -> list[dict[str, Any]]:
        manifest = self._require_manifest()
        return [read_json(self._marker_url(manifest, shard)) for shard in sorted(self._committed(manifest))]

    def read_samples(self) -> pa.Table:
        return read_parquet(self.samples_url)

    def read_sample_rows(self, start: int, stop: int, columns: list[str]) -> pa.Table:
        return read_parquet_rows(self.samples_url, start, stop, columns)

    def read_arrays(self) -> dict[str, np.ndarray]:
        """All four arrays (features as float32). Refuses a store with uncommitted shards."""
        if not self.is_complete():
            missing = self.n_shards() - len(self.committed_shards())
            raise StoreMismatchError(
                f"store {self.url} is incomplete ({missing} shards not committed): rerun "
                f"`mmr-pipeline extract --dataset {self.dataset} --store {self.root}` to finish it"
            )
        group = zarr.open_group(self.url, mode="r", zarr_format=3)
        arrays = {name: group[name][:] for name in ("image_emb", "text_emb", "image_present", "text_present")}
        arrays["image_emb"] = arrays["image_emb"].astype(np.float32)
        arrays["text_emb"] = arrays["text_emb"].astype(np.float32)
        return arrays


def _shard_count(manifest: dict[str, Any]) -> int:
    return -(-manifest["n_rows"] // manifest["chunk_rows"])
