"""Restorer checkpoints and training logs under `{root}/restorers/{restorer_id}/`.

    latest.json              {"checkpoint": "ckpt-00000400", "step": 400, "complete": false}
    ckpt-00000400/           model.safetensors + config.json (stores.checkpoints)
    losses/00000400.parquet  per-step losses up to that checkpoint

A checkpoint directory is complete before `latest.json` names it, so a killed writer leaves
the previous checkpoint in force. The two newest checkpoints are kept.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from pipeline.errors import StoreMismatchError
from stores.checkpoints import load_checkpoint, save_checkpoint
from stores.fs import join, list_names, read_json, read_parquet, url_to_fs, write_json_atomic, write_parquet

KEEP_CHECKPOINTS = 2


class RestorerStore:
    def __init__(self, root: str, restorer_id: str) -> None:
        self.root = root
        self.restorer_id = restorer_id
        self.url = join(root, "restorers", restorer_id)

    @classmethod
    def at(cls, url: str) -> RestorerStore:
        """The restorer whose directory is `url`, i.e. `{root}/restorers/{restorer_id}`."""
        root, marker, restorer_id = url.rstrip("/").rpartition("/restorers/")
        if not marker or not root or not restorer_id or "/" in restorer_id:
            raise StoreMismatchError(
                f"{url!r} is not a trained restorer's directory: pass STORE/restorers/ID "
                "(`ls STORE/restorers` lists the ids)"
            )
        return cls(root, restorer_id)

    def _pointer(self) -> dict[str, Any] | None:
        return read_json(join(self.url, "latest.json"))

    def latest(self, require_complete: bool = False) -> str | None:
        """The newest committed checkpoint's name (or None); with `require_complete`, raise if
        training has not finished."""
        pointer = self._pointer()
        if require_complete and (pointer is None or not pointer["complete"]):
            state = "never started" if pointer is None else f"stopped at step {pointer['step']}"
            raise StoreMismatchError(
                f"restorer {self.restorer_id} in {self.root} is not trained ({state}): run "
                f"`mmr-pipeline train --store {self.root}` with the same settings to finish it"
            )
        return None if pointer is None else pointer["checkpoint"]

    def is_complete(self) -> bool:
        pointer = self._pointer()
        return bool(pointer and pointer["complete"])

    def load(self, checkpoint: str) -> tuple[dict, dict[str, Any]]:
        return load_checkpoint(join(self.url, checkpoint))

    def save(self, step: int, tensors: dict, meta: dict[str, Any], complete: bool) -> None:
        name = f"ckpt-{step:08d}"
        save_checkpoint(join(self.url, name), tensors, meta)
        write_json_atomic(
            join(self.url, "latest.json"), {"checkpoint": name, "step": step, "complete": complete}
        )
        fs, _ = url_to_fs(self.url)
        for old in [n for n in list_names(self.url) if n.startswith("ckpt-")][:-KEEP_CHECKPOINTS]:
            fs.rm(url_to_fs(join(self.url, old))[1], recursive=True)

    def write_losses(self, table: pa.Table, step: int) -> None:
        write_parquet(join(self.url, "losses", f"{step:08d}.parquet"), table)

    def read_losses(self) -> pa.Table:
        """Per-step losses up to the latest checkpoint (parts from an unfinished interval dropped)."""
        pointer = self._pointer()
        last = pointer["step"] if pointer else 0
        parts = []
        for name in list_names(join(self.url, "losses")):
            if name.endswith(".parquet") and int(name.split(".")[0]) <= last:
                parts.append(read_parquet(join(self.url, "losses", name)))
        return pa.concat_tables(parts) if parts else pa.table({"step": pa.array([], pa.int64())})
