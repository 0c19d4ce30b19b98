"""Restored features and masks.

{root}/masks/{dataset}/{fingerprint12}/{mask_name}.parquet     row, split, image_missing, text_missing
{root}/restorations/{dataset}/{encoder_id}/{restorer_key}/{mask_name}/   a Zarr v3 group
    image_emb, text_emb            (N, D) float16: the available features, restored ones filled in
    image_restored, text_restored  (N,) bool: which entries were restored
    manifest.json                  settings, ids and quality figures; written last (commit marker)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import zarr

from stores.fs import exists, join, read_json, write_json_atomic

ARRAYS = ("image_emb", "text_emb", "image_restored", "text_restored")


def mask_url(root: str, dataset: str, fingerprint: str, name: str) -> str:
    return join(root, "masks", dataset, fingerprint[:12], f"{name}.parquet")


class RestorationStore:
    def __init__(self, root: str, dataset: str, encoder_id: str, restorer_key: str, mask: str) -> None:
        self.url = join(root, "restorations", dataset, encoder_id, restorer_key, mask)

    def is_complete(self) -> bool:
        return exists(join(self.url, "manifest.json"))

    def manifest(self) -> dict[str, Any] | None:
        return read_json(join(self.url, "manifest.json"))

    def write(self, arrays: dict[str, np.ndarray], manifest: dict[str, Any]) -> None:
        group = zarr.open_group(self.url, mode="w", zarr_format=3)
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
