"""Restored features and masks.

{root}/masks/{dataset}/{fingerprint12}/{mask_name}.parquet     row, split, image_missing, text_missing
{root}/restorations/{dataset}/{encoder_id}/{restorer_key}/{mask_name}/   a Zarr v3 group
    image_emb, text_emb            (N, D) float16: the available features, restored ones filled in
    image_restored, text_restored  (N,) bool: which entries were restored
    manifest.json                  settings, ids and quality figures; written last (commit marker)
                                   `features`: the dataset fingerprint of the features restored
{root}/restorations/{dataset}/{encoder_id}/{all_rows_key}/all-rows/{direction}.npy, .json
    a sampling restorer's output for every row that has the source modality, shared by all masks,
    and its timing (rows, steps, seconds) and `features` fingerprint; `all_rows_key` is the
    restorer key without recentring, which is added per mask

A restoration answers only for the features it was made from: a feature store deleted and
encoded again from other raw data (as its refusal suggests) has another fingerprint, and the
restorations of the old data are made again. Ones written before the fingerprint was recorded
are taken as they are.
"""

from __future__ import annotations

import io
import re
from typing import Any

import numpy as np
import zarr

from stores.fs import exists, join, read_bytes, read_json, remove, write_bytes_atomic, write_json_atomic

ARRAYS = ("image_emb", "text_emb", "image_restored", "text_restored")


def all_rows_key(restorer_key: str) -> str:
    """The key whose every-row arrays a restoration reads. Recentring is added per mask, after
    selection, so a recentred key (`-rc`, which `pipeline.restoration.restorer_key` puts last or
    right before a DiT's `-seed`) shares the arrays of the same key without it."""
    return re.sub(r"-rc(-seed\d+)?$", r"\1", restorer_key)


def mask_url(root: str, dataset: str, fingerprint: str, name: str) -> str:
    return join(root, "masks", dataset, fingerprint[:12], f"{name}.parquet")


class RestorationStore:
    def __init__(self, root: str, dataset: str, encoder_id: str, restorer_key: str, mask: str) -> None:
        self.restorer_key = restorer_key
        self.url = join(root, "restorations", dataset, encoder_id, restorer_key, mask)

    def manifest(self) -> dict[str, Any] | None:
        return read_json(join(self.url, "manifest.json"))

    def finished(self, features: str) -> dict[str, Any] | None:
        """The manifest of a committed restoration of the features with fingerprint `features`."""
        manifest = self.manifest()
        return manifest if manifest is not None and manifest.get("features", features) == features else None

    def write(self, arrays: dict[str, np.ndarray], manifest: dict[str, Any]) -> None:
        if self.finished(manifest["features"]) is not None:
            return  # another run committed this restoration meanwhile (a restoration is deterministic)
        # Uncommit first, so a crash halfway leaves no restoration rather than a mixed one, and
        # never wipe the group (mode "w"): a reader of the committed arrays would find none.
        remove(join(self.url, "manifest.json"))
        group = zarr.open_group(self.url, mode="a", zarr_format=3)
        for name in ARRAYS:
            data = arrays[name].astype(np.float16) if name.endswith("emb") else arrays[name]
            group.create_array(name, data=data, chunks=data.shape, overwrite=True)
        write_json_atomic(join(self.url, "manifest.json"), manifest)

    def read(self) -> dict[str, np.ndarray]:
        group = zarr.open_group(self.url, mode="r", zarr_format=3)
        arrays = {name: group[name][:] for name in ARRAYS}
        for name in ("image_emb", "text_emb"):
            arrays[name] = arrays[name].astype(np.float32)
        return arrays


class RestoredRows:
    """One direction's restorations of every row of a dataset, for restorers that are costly to run.

    A DiT restoration of a row depends only on its available feature, the direction and its
    seed, never on the mask, so every (missing type, mask seed) selects from one shared array.
    """

    def __init__(self, root: str, dataset: str, encoder_id: str, restorer_key: str, direction: str) -> None:
        self.url = join(
            root, "restorations", dataset, encoder_id, restorer_key, "all-rows", f"{direction}.npy"
        )

    def read(self, features: str) -> np.ndarray | None:
        """The rows, if stored from the features with fingerprint `features`."""
        if not exists(self.url):
            return None
        made = read_json(self.url.removesuffix(".npy") + ".json") or {}
        if made.get("features", features) != features:
            return None
        return np.load(io.BytesIO(read_bytes(self.url)))

    def write(self, restored: np.ndarray, timing: dict[str, Any]) -> None:
        """Store the array as given (the caller uses the values it stores), how long it took and
        the `features` fingerprint it was restored from."""
        remove(self.url)  # uncommit rows of other features before their record is replaced
        write_json_atomic(self.url.removesuffix(".npy") + ".json", timing)
        buffer = io.BytesIO()
        np.save(buffer, restored)
        write_bytes_atomic(self.url, buffer.getvalue())  # last: its presence marks the rows done
