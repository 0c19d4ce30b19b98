"""Restorer checkpoints and training logs under `{root}/restorers/{restorer_id}/`.

    latest.json              {"checkpoint": "ckpt-00000400", "step": 400, "complete": false}
    ckpt-00000400/           model.safetensors + config.json (stores.checkpoints)
    losses/00000400.parquet  per-step losses up to that checkpoint

A checkpoint directory is complete before `latest.json` names it, so a killed writer leaves
the previous checkpoint in force. The checkpoint `latest.json` names and the newest committed
one before it are kept.

Several processes may train the same restorer at once (two runs, two workers). `latest.json`
therefore only moves forward: a save behind it, or after it is complete, leaves it alone, and
pruning only removes checkpoints older than the one it names. A pointer to a checkpoint that
is gone (a store damaged by writers without these checks) reads as the newest committed
checkpoint on disk. Re-reading and then writing `latest.json` is not atomic: two writers that
interleave within that instant can still set it back, but only to a committed checkpoint, from
which training resumes.
"""

from __future__ import annotations

import logging
from typing import Any

import pyarrow as pa

from pipeline.errors import StoreMismatchError
from stores.checkpoints import CONFIG_FILE, checkpoint_exists, load_checkpoint, save_checkpoint
from stores.fs import join, list_names, read_json, read_parquet, remove, write_json_atomic, write_parquet

log = logging.getLogger(__name__)

KEEP_CHECKPOINTS = 2
PREFIX = "ckpt-"


def _step_of(name: str) -> int:
    return int(name.removeprefix(PREFIX))


def _at_least(pointer: dict[str, Any], step: int, complete: bool) -> bool:
    """Whether `pointer` is as far as a save of `step` would take it (a finished training is final)."""
    return pointer["complete"] or pointer["step"] > step or (pointer["step"] == step and not complete)


class RestorerStore:
    def __init__(self, root: str, restorer_id: str) -> None:
        self.root = root
        self.restorer_id = restorer_id
        self.url = join(root, "restorers", restorer_id)
        self._warned_damaged = False  # one warning per store, not one per read of a damaged latest.json

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

    def _checkpoints(self) -> list[str]:
        """Checkpoint directory names, committed or not, oldest first."""
        return sorted((n for n in list_names(self.url) if n.startswith(PREFIX)), key=_step_of)

    def _committed(self, name: str) -> bool:
        return checkpoint_exists(join(self.url, name))

    def _latest_json(self) -> dict[str, Any] | None:
        """`latest.json`, if it names a committed checkpoint."""
        pointer = read_json(join(self.url, "latest.json"))
        return pointer if pointer is not None and self._committed(pointer["checkpoint"]) else None

    def _pointer(self) -> dict[str, Any] | None:
        """`latest.json`; where it names no committed checkpoint (a store damaged by writers without
        these checks), the newest committed checkpoint, as unfinished (only a trainer can tell that it
        was the last step); None when there is none."""
        pointer = self._latest_json()
        if pointer is not None:
            return pointer
        committed = [name for name in reversed(self._checkpoints()) if self._committed(name)]
        if not committed:
            return None
        if not self._warned_damaged:
            self._warned_damaged = True
            log.warning(
                "restorer %s: latest.json names no committed checkpoint; using the newest one, %s",
                self.restorer_id,
                committed[0],
            )
        return {"checkpoint": committed[0], "step": _step_of(committed[0]), "complete": False}

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

    def save(self, step: int, tensors: dict, meta: dict[str, Any], complete: bool) -> bool:
        """Commit the checkpoint of `step` and point `latest.json` at it, unless another writer of this
        restorer got as far or finished it. Returns whether the store's training is complete, so that
        a trainer overtaken by a finished run can stop."""
        pointer = self._pointer()
        if pointer is not None and _at_least(pointer, step, complete):
            return pointer["complete"]
        name = f"{PREFIX}{step:08d}"
        try:
            save_checkpoint(join(self.url, name), tensors, meta)
        except FileNotFoundError:
            # A writer that got ahead while this one wrote pruned the directory: the save is moot.
            pointer = self._pointer()
            if pointer is None or not _at_least(pointer, step, complete):
                raise
            return pointer["complete"]
        # Re-read right before writing: another writer may have moved it while the tensors were written.
        # Not `_pointer()`: its stand-in for a damaged latest.json would now be this very checkpoint.
        pointer = self._latest_json()
        if pointer is None or not _at_least(pointer, step, complete):
            write_json_atomic(
                join(self.url, "latest.json"), {"checkpoint": name, "step": step, "complete": complete}
            )
        self._prune()
        return self.is_complete()

    def _prune(self) -> None:
        """Remove checkpoints older than the one `latest.json` names, except the newest committed one of
        them (a reader that read `latest.json` just before it moved may be loading it). Newer ones are
        left alone: they may be another writer's, mid-save."""
        pointer = self._pointer()
        if pointer is None:
            return
        older = [name for name in self._checkpoints() if _step_of(name) < pointer["step"]]
        kept = [name for name in reversed(older) if self._committed(name)][: KEEP_CHECKPOINTS - 1]
        for name in older:
            if name in kept:
                continue
            try:
                # The commit marker goes first, so a removal cut short leaves a directory read as absent.
                remove(join(self.url, name, CONFIG_FILE))
                remove(join(self.url, name))
            except OSError as error:
                # Another writer is removing it too, or still (slowly) writing it: a later prune retries.
                log.debug("restorer %s: could not prune %s: %s", self.restorer_id, name, error)

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
