"""Feature extraction: raw samples -> frozen encoder -> sharded feature store, resumable.

The work is cut into shards aligned with the store's Zarr chunks. Each shard is encoded in
batches that never cross a shard boundary (so a shard's features do not depend on which
other shards run with it) and committed on its own; a rerun encodes only uncommitted shards.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import torch
from pydantic import BaseModel, ConfigDict, Field

from pipeline.data.adapter import DatasetAdapter
from pipeline.data.loading import EncoderInputs, RawRow, input_loader
from pipeline.data.sample import clean_text, reference_from_json, reference_to_json
from pipeline.encoders.frozen import FrozenEncoder
from pipeline.progress import progress_bar
from pipeline.version import code_version
from stores.feature_store import FEATURES_FORMAT, LISTING_COLUMNS, FeatureStore, ShardFeatures

log = logging.getLogger(__name__)


class ExtractionSettings(BaseModel):
    """How extraction runs. `chunk_rows` fixes the store layout; the others only its speed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    chunk_rows: int = Field(1024, ge=1)
    batch_size: int = Field(256, ge=1)
    workers: int = Field(2, ge=0)


@dataclass
class ExtractionResult:
    dataset: str
    encoder_id: str
    url: str
    n_rows: int
    shards_total: int
    shards_skipped: int
    shards_written: int
    rows_written: int
    seconds: float
    absent: Counter = field(default_factory=Counter)  # (modality, kind) -> count, whole store

    @property
    def samples_per_second(self) -> float:
        return self.rows_written / self.seconds if self.seconds > 0 else 0.0


def list_samples(adapter: DatasetAdapter, limit: int | None = None) -> tuple[pa.Table, list[RawRow]]:
    """The samples table of the store and the raw rows to encode, in adapter order (the first
    `limit` only, when given)."""
    columns: dict[str, list] = {name: [] for name in ("row", "sample_id", "split", "label", "text")}
    columns.update(image_ref=[], source=[], image_source=[])
    rows: list[RawRow] = []
    for row, sample in enumerate(itertools.islice(adapter.samples(), limit)):
        text = clean_text(sample.text)
        columns["row"].append(row)
        columns["sample_id"].append(sample.sample_id)
        columns["split"].append(sample.split)
        columns["label"].append(list(sample.label))
        columns["text"].append(text)
        columns["image_ref"].append(None if sample.image is None else sample.image.describe())
        columns["source"].append(sample.source)
        columns["image_source"].append(reference_to_json(sample.image))
        rows.append(RawRow(row, text, sample.image))
    return pa.table(columns), rows


def dataset_fingerprint(samples: pa.Table) -> str:
    """sha256 of the listing (ids, splits, labels, texts, image references), not of pixels."""
    digest = hashlib.sha256()
    for batch in samples.select(LISTING_COLUMNS).to_batches(65_536):
        for record in zip(*(column.to_pylist() for column in batch.columns), strict=True):
            digest.update(repr(record).encode())
    return digest.hexdigest()


def build_manifest(
    adapter: DatasetAdapter, encoder: FrozenEncoder, samples: pa.Table, chunk_rows: int
) -> dict[str, object]:
    return {
        "format": FEATURES_FORMAT,
        "dataset": adapter.info.name,
        "dataset_info": adapter.info.model_dump(mode="json"),
        "dataset_options": adapter.options(),
        "dataset_fingerprint": dataset_fingerprint(samples),
        "encoder": _encoder_entry(encoder),
        "preprocessing": encoder.preprocessing(),
        "embed_dim": encoder.embed_dim,
        "n_rows": samples.num_rows,
        "chunk_rows": chunk_rows,
        "code_version": code_version(),
    }


def _encoder_entry(encoder: FrozenEncoder) -> dict[str, object]:
    return {
        "id": encoder.encoder_id,
        "model": encoder.config.model,
        "pretrained": encoder.config.pretrained,
        "digest": encoder.digest,
    }


# A planned store of a generated dataset is checked against this many rows listed anew.
SPOT_CHECK_ROWS = 256


def plan_store(
    adapter: DatasetAdapter, encoder: FrozenEncoder, root: str, chunk_rows: int
) -> tuple[FeatureStore, list[RawRow] | None]:
    """The dataset's feature store, laid out now or checked against the dataset as it lists now;
    and the raw rows when it listed them all.

    A dataset read from files is listed in full and its fingerprint compared, since its files
    may have changed. A generated one (the demo) is a function of its options and the code; when
    the manifest records the same options, code version, encoder and layout, and the first
    `SPOT_CHECK_ROWS` samples listed now equal the stored ones, its store is taken as it is:
    listing all of the demo's 26,000 samples took about 7 s of every cached rerun. The rows are
    compared as well because the demo's generator has changed before without a version bump.
    A store of an older features format is encoded again when its data is generated, and
    refused otherwise (the error names the fix): real features cost GPU hours.
    """
    store = FeatureStore(root, adapter.info.name, encoder.encoder_id)
    if _generated_store_matches(adapter, encoder, store, chunk_rows):
        return store, None
    samples, rows = list_samples(adapter)
    existing = store.manifest()
    if adapter.generated and existing is not None and existing.get("format") != FEATURES_FORMAT:
        log.info("%s: store %s has features format %s, this code writes %d: encoding the generated data again",
                 adapter.info.name, store.url, existing.get("format"), FEATURES_FORMAT)  # fmt: skip
        store.discard()
    store.create(build_manifest(adapter, encoder, samples, chunk_rows), samples)
    if adapter.generated and store.manifest()["code_version"] != code_version():
        # Listed in full by this release and found the same: its next plans take the fast path.
        store.update_manifest(code_version=code_version())
    return store, rows


def _generated_store_matches(
    adapter: DatasetAdapter, encoder: FrozenEncoder, store: FeatureStore, chunk_rows: int
) -> bool:
    manifest = store.manifest() if adapter.generated else None
    if manifest is None:
        return False
    now = {"dataset_options": adapter.options(), "code_version": code_version(), "chunk_rows": chunk_rows,
           "encoder": _encoder_entry(encoder), "embed_dim": encoder.embed_dim, "format": FEATURES_FORMAT}  # fmt: skip
    now = json.loads(json.dumps(now))  # as the manifest holds them (tuples become lists)
    if any(manifest.get(field) != value for field, value in now.items()):
        return False
    first, _ = list_samples(adapter, limit=SPOT_CHECK_ROWS)
    stored = store.read_sample_rows(0, min(SPOT_CHECK_ROWS, manifest["n_rows"]), LISTING_COLUMNS)
    return stored.select(LISTING_COLUMNS).to_pylist() == first.select(LISTING_COLUMNS).to_pylist()


def stored_rows(store: FeatureStore, shards: Sequence[int]) -> dict[int, RawRow]:
    """The raw rows of `shards`, rebuilt from the store's listing, without listing the dataset."""
    manifest = store.manifest()
    chunk, n_rows = manifest["chunk_rows"], manifest["n_rows"]
    rows = {}
    for shard in shards:
        start, stop = shard * chunk, min((shard + 1) * chunk, n_rows)
        part = store.read_sample_rows(start, stop, ["row", "text", "image_source"]).to_pydict()
        for row, text, image in zip(part["row"], part["text"], part["image_source"], strict=True):
            rows[row] = RawRow(row, text, reference_from_json(image))
    return rows


def shard_batches(shards: Sequence[int], chunk_rows: int, n_rows: int, batch_size: int) -> list[list[int]]:
    """Row batches of the given shards; no batch crosses a shard boundary."""
    batches = []
    for shard in shards:
        start, stop = shard * chunk_rows, min((shard + 1) * chunk_rows, n_rows)
        batches.extend(list(range(b, min(b + batch_size, stop))) for b in range(start, stop, batch_size))
    return batches


def _image_size(encoder: FrozenEncoder) -> int:
    size = encoder.model.visual.image_size
    return int(size[0] if isinstance(size, tuple | list) else size)


def encode_shards(
    store: FeatureStore,
    encoder: FrozenEncoder,
    rows: Mapping[int, RawRow] | Sequence[RawRow],
    shards: Sequence[int],
    settings: ExtractionSettings,
    progress: bool = True,
) -> None:
    """Encode and commit `shards` of a created store (`rows` holds at least theirs); decoding
    runs in loader workers."""
    if not shards:
        return
    chunk, n_rows, dim = settings.chunk_rows, store.manifest()["n_rows"], encoder.embed_dim
    batches = shard_batches(shards, chunk, n_rows, settings.batch_size)
    # The loader sees only the rows of these shards: its workers receive a pickled copy.
    wanted = [rows[row] for batch in batches for row in batch]
    inputs = EncoderInputs(wanted, encoder.preprocess, encoder.tokenizer, _image_size(encoder))
    ends = np.cumsum([len(batch) for batch in batches]).tolist()
    positions = [list(range(end - len(batch), end)) for end, batch in zip(ends, batches, strict=True)]
    loader = input_loader(
        inputs, settings.workers, batch_sampler=positions, pin_memory=encoder.device.type == "cuda"
    )
    pending: dict[int, ShardFeatures] = {}
    filled: Counter = Counter()
    bar = progress_bar(
        progress, total=sum(len(b) for b in batches), desc=f"extract {store.dataset}", unit="sample"
    )
    for batch in loader:
        batch_rows = batch["row"].numpy()
        shard = int(batch_rows[0]) // chunk
        if shard not in pending:
            size = min(chunk, n_rows - shard * chunk)
            pending[shard] = ShardFeatures(
                shard=shard,
                image_emb=np.zeros((size, dim), np.float32),
                text_emb=np.zeros((size, dim), np.float32),
                image_present=np.zeros(size, bool),
                text_present=np.zeros(size, bool),
                absences=[],
            )
        target = pending[shard]
        local = batch_rows - shard * chunk
        image_ok, text_ok = batch["image_ok"].numpy(), batch["text_ok"].numpy()
        if image_ok.any():
            target.image_emb[local[image_ok]] = encoder.encode_images(batch["pixels"][image_ok]).cpu().numpy()
        if text_ok.any():
            target.text_emb[local[text_ok]] = encoder.encode_texts(batch["tokens"][text_ok]).cpu().numpy()
        target.image_present[local] = image_ok
        target.text_present[local] = text_ok
        for i, row in enumerate(batch_rows.tolist()):
            if not image_ok[i]:
                target.absences.append(
                    {
                        "row": row,
                        "modality": "image",
                        "kind": batch["image_absence"][i],
                        "detail": batch["image_detail"][i],
                    }
                )
            if not text_ok[i]:
                target.absences.append(
                    {"row": row, "modality": "text", "kind": "empty or missing", "detail": ""}
                )
        filled[shard] += len(batch_rows)
        if filled[shard] == target.image_emb.shape[0]:
            store.write_shard(pending.pop(shard))
        bar.update(len(batch_rows))
    bar.close()


def _absence_counts(store: FeatureStore) -> Counter:
    return Counter(
        (absence["modality"], absence["kind"])
        for marker in store.shard_markers()
        for absence in marker["absences"]
    )


def extract(
    adapter: DatasetAdapter,
    encoder: FrozenEncoder,
    root: str,
    settings: ExtractionSettings | None = None,
    progress: bool = True,
) -> ExtractionResult:
    """Build (or finish) the store of `adapter`'s dataset under `root`."""
    settings = settings or ExtractionSettings()
    started = time.perf_counter()
    store, rows = plan_store(adapter, encoder, root, settings.chunk_rows)
    n_rows = store.manifest()["n_rows"]
    total = store.n_shards()
    done = store.committed_shards()
    todo = [shard for shard in range(total) if shard not in done]
    if todo:
        log.info(
            "%s: %d of %d shards to encode (%d committed)", adapter.info.name, len(todo), total, len(done)
        )
    else:
        log.info("%s: all %d shards already committed, nothing to encode", adapter.info.name, total)
    if todo:
        rows = rows if rows is not None else stored_rows(store, todo)
        with torch.inference_mode():
            encode_shards(store, encoder, rows, todo, settings, progress=progress)
    return ExtractionResult(
        dataset=adapter.info.name,
        encoder_id=encoder.encoder_id,
        url=store.url,
        n_rows=n_rows,
        shards_total=total,
        shards_skipped=len(done),
        shards_written=len(todo),
        rows_written=sum(min(settings.chunk_rows, n_rows - shard * settings.chunk_rows) for shard in todo),
        seconds=time.perf_counter() - started,
        absent=_absence_counts(store),
    )
