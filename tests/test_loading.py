"""Loader workers: they must start cleanly from a process whose other threads hold locks."""

from __future__ import annotations

import threading

import torch
from torch.utils.data import Dataset

from pipeline.data import loading
from pipeline.data.loading import input_loader

_SHARED_LOCK = threading.Lock()


class _ItemsBehindALock(Dataset):
    """Each item takes a module-level lock, as decoding code takes its libraries' locks."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> torch.Tensor:
        with _SHARED_LOCK:
            return torch.tensor(index)


def test_workers_start_while_another_thread_holds_a_lock(monkeypatch) -> None:
    # A forked worker would inherit the lock held, wait forever and trip the timeout instead.
    monkeypatch.setattr(loading, "WORKER_TIMEOUT_S", 30.0)
    release = threading.Event()
    holder = threading.Thread(target=lambda: _SHARED_LOCK.acquire() and release.wait())
    holder.start()
    try:
        while not _SHARED_LOCK.locked():
            release.wait(0.01)
        batches = [batch.tolist() for batch in input_loader(_ItemsBehindALock(), workers=2, batch_size=2)]
    finally:
        release.set()
        holder.join()
        _SHARED_LOCK.release()
    assert batches == [[0, 1], [2, 3]]
