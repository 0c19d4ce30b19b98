"""Two processes training the same restorer: `latest.json` never moves back, pruning keeps what it
names, a store damaged by writers without these checks still resumes, and a run overtaken by a
finished one stops."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pipeline.errors import StoreMismatchError
from pipeline.models.dit import DiTConfig
from pipeline.training.restorer import TrainConfig, load_restorer_models, train_restorer
from stores.restorer_store import RestorerStore

RESTORER_ID = "dit-gating-s2-0123456789ab"
# 64 pairs in batches of 16: 4 steps an epoch, 6 in all, a checkpoint every 2.
TINY = TrainConfig(
    dit=DiTConfig(feature_dim=16, n_tokens=4, width=16, depth=1, heads=2),
    stages=1,
    stage1_epochs=1.5,
    batch_size=16,
    warmup_steps=2,
    checkpoint_every=2,
)
TOTAL = 6


def _save(store: RestorerStore, step: int, complete: bool = False) -> bool:
    return store.save(step, {"weight": torch.full((2,), float(step))}, {"step": step}, complete)


def _pointer(store: RestorerStore) -> dict[str, Any]:
    return json.loads((Path(store.url) / "latest.json").read_text())


def _checkpoints(store: RestorerStore) -> list[str]:
    return sorted(path.name for path in Path(store.url).glob("ckpt-*"))


def _features() -> tuple[np.ndarray, np.ndarray]:
    """64 L2-normalised image and text feature pairs of dimension 16."""
    features = np.random.default_rng(0).normal(size=(2, 64, 16)).astype(np.float32)
    images, texts = features / np.linalg.norm(features, axis=2, keepdims=True)
    return images, texts


def test_a_slower_writers_save_after_a_finished_training_leaves_it_final(tmp_path: Path) -> None:
    fast, slow = RestorerStore(str(tmp_path), RESTORER_ID), RestorerStore(str(tmp_path), RESTORER_ID)
    for step in (15, 30, 45, 60):
        _save(fast, step)
    _save(fast, 75, complete=True)

    finished = _save(slow, 40)
    assert _pointer(slow) == {"checkpoint": "ckpt-00000075", "step": 75, "complete": True}
    tensors, meta = slow.load(slow.latest(require_complete=True))
    assert meta == {"step": 75} and tensors["weight"].tolist() == [75.0, 75.0]
    assert "ckpt-00000040" not in _checkpoints(slow)  # a save behind the store writes nothing
    assert finished is True  # so the slow writer's trainer can stop


def test_a_save_behind_latest_leaves_it_and_its_prune_keeps_latests_checkpoint(tmp_path: Path) -> None:
    fast, slow = RestorerStore(str(tmp_path), RESTORER_ID), RestorerStore(str(tmp_path), RESTORER_ID)
    for step in (15, 30, 45, 60):
        _save(fast, step)
    assert _checkpoints(fast) == ["ckpt-00000045", "ckpt-00000060"]  # latest's and the one before
    (Path(fast.url) / "ckpt-00000090").mkdir()  # another writer, mid-save, ahead of latest.json

    finished = _save(slow, 30)
    assert _pointer(slow) == {"checkpoint": "ckpt-00000060", "step": 60, "complete": False}
    assert _checkpoints(slow) == ["ckpt-00000045", "ckpt-00000060", "ckpt-00000090"]
    assert slow.load(slow.latest())[1] == {"step": 60}
    assert finished is False

    _save(slow, 105)  # once ahead, it takes over; only checkpoints older than latest's go
    assert _pointer(slow)["checkpoint"] == "ckpt-00000105"
    assert _checkpoints(slow) == ["ckpt-00000060", "ckpt-00000105"]  # 90 never committed


def test_a_save_whose_directory_a_writer_ahead_pruned_meanwhile_is_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, slow = RestorerStore(str(tmp_path), RESTORER_ID), RestorerStore(str(tmp_path), RESTORER_ID)
    _save(fast, 15)

    def overtaken(directory: str, *args: Any) -> None:
        Path(directory).mkdir()
        monkeypatch.undo()  # the fast writer saves for real, and its prune removes `directory`
        for step in (45, 60):
            _save(fast, step, complete=step == 60)
        raise FileNotFoundError(directory)  # what writing into the removed directory raises

    monkeypatch.setattr("stores.restorer_store.save_checkpoint", overtaken)
    assert _save(slow, 30) is True
    assert _pointer(slow)["checkpoint"] == "ckpt-00000060"
    assert _checkpoints(slow) == ["ckpt-00000045", "ckpt-00000060"]


def _damage(store: RestorerStore, step: int) -> None:
    """What the unchecked writers left: latest.json naming a checkpoint that was pruned."""
    latest = {"checkpoint": f"ckpt-{step:08d}", "step": step, "complete": False}
    (Path(store.url) / "latest.json").write_text(json.dumps(latest))
    shutil.rmtree(Path(store.url) / latest["checkpoint"], ignore_errors=True)


def test_a_pointer_to_a_deleted_checkpoint_reads_as_the_newest_committed_one(tmp_path: Path) -> None:
    store = RestorerStore(str(tmp_path), RESTORER_ID)
    for step in (20, 40, 60):
        _save(store, step)
    _save(store, 75, complete=True)
    _damage(store, 40)

    assert store.latest() == "ckpt-00000075" and not store.is_complete()
    with pytest.raises(StoreMismatchError, match=r"not trained \(stopped at step 75\)"):
        store.latest(require_complete=True)
    assert _save(store, 75, complete=True) is True  # the trainer's repair: the pointer moves forward
    assert _pointer(store) == {"checkpoint": "ckpt-00000075", "step": 75, "complete": True}

    (Path(store.url) / "ckpt-00000060" / "config.json").unlink()
    shutil.rmtree(Path(store.url) / "ckpt-00000075")
    assert store.latest() is None and not store.is_complete()  # none committed: untrained
    assert store.read_losses().num_rows == 0


def test_training_resumes_a_damaged_store_from_its_newest_committed_checkpoint(tmp_path: Path) -> None:
    images, texts = _features()
    store = RestorerStore(str(tmp_path), RESTORER_ID)
    train_restorer(TINY, images, texts, store, progress=False)
    assert _checkpoints(store) == ["ckpt-00000004", "ckpt-00000006"]
    _damage(store, 2)

    result = train_restorer(TINY, images, texts, store, progress=False)
    assert (result.resumed_from, result.steps) == (TOTAL, TOTAL)
    assert store.is_complete() and store.read_losses().column("step").to_pylist() == list(range(1, TOTAL + 1))
    load_restorer_models(store)

    for name in _checkpoints(store):
        shutil.rmtree(Path(store.url) / name)
    result = train_restorer(TINY, images, texts, store, progress=False)
    assert (result.resumed_from, result.steps) == (0, TOTAL) and store.is_complete()


def test_a_run_overtaken_by_a_finished_one_stops_at_its_next_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images, texts = _features()
    other = RestorerStore(str(tmp_path / "other"), RESTORER_ID)
    train_restorer(TINY, images, texts, other, progress=False)
    store = RestorerStore(str(tmp_path / "shared"), RESTORER_ID)
    save = store.save
    saves = []

    def save_after_the_other_run_finished(step: int, *args: Any, **kwargs: Any) -> bool:
        shutil.copytree(other.url, store.url, dirs_exist_ok=True)  # it finished while this one trained
        saves.append(step)
        return save(step, *args, **kwargs)

    monkeypatch.setattr(store, "save", save_after_the_other_run_finished)
    result = train_restorer(TINY, images, texts, store, progress=False)
    assert saves == [2] and (result.resumed_from, result.steps) == (0, 2)
    assert _pointer(store) == {"checkpoint": f"ckpt-{TOTAL:08d}", "step": TOTAL, "complete": True}
    expected, _ = other.load(other.latest(require_complete=True))
    actual, _ = store.load(store.latest(require_complete=True))
    assert all(torch.equal(actual[name], expected[name]) for name in expected)
