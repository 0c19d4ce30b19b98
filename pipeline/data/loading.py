"""Turns raw samples into model inputs inside data-loader workers (image decode is the slow part)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch.utils.data import DataLoader, Dataset

from pipeline.data.sample import ImageRef, clean_text, open_rgb
from pipeline.workers import FORK_SERVER, exit_when_gone


@dataclass(frozen=True)
class RawRow:
    """What one stored row needs for encoding: its row number, text and image reference."""

    row: int
    text: str | None
    image: ImageRef | None


class EncoderInputs(Dataset):
    """Pixels and tokens of each row, with flags (and reasons) for absent modalities.

    An absent image yields zeros of the right shape and `image_ok = False`; the encoder skips it.
    """

    def __init__(
        self,
        rows: Sequence[RawRow],
        preprocess: Callable,
        tokenizer: Callable,
        image_size: int,
    ) -> None:
        self.rows = rows
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.blank_pixels = torch.zeros(3, image_size, image_size)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, object]:
        raw = self.rows[index]
        image, absence_kind, absence_detail = open_rgb(raw.image)
        text = clean_text(raw.text)
        return {
            "row": raw.row,
            "pixels": self.blank_pixels if image is None else self.preprocess(image),
            "image_ok": image is not None,
            "image_absence": absence_kind,
            "image_detail": absence_detail,
            "tokens": self.tokenizer([text or ""])[0],
            "text_ok": text is not None,
        }


# Loader workers start from the fork server (`pipeline.workers`), never by forking this
# process. The server imports the decoding code once, so a loader's workers start in under a
# second. As with any non-fork start, a worker imports the main module: a script that extracts
# must keep its work under `if __name__ == "__main__":`.
FORK_SERVER.set_forkserver_preload(["pipeline.data.loading", "open_clip"])

# No batch of a few hundred samples takes this long; a worker that does is stuck, so fail loudly.
WORKER_TIMEOUT_S = 600.0


def _exit_with(owner: int, worker_id: int) -> None:
    """Loader-worker init (torch passes the worker id): end with the loader's process."""
    exit_when_gone(owner)


def input_loader(
    inputs: Dataset,
    workers: int,
    batch_size: int | None = None,
    batch_sampler: Sequence[Sequence[int]] | None = None,
    pin_memory: bool = False,
) -> DataLoader:
    """A loader over `inputs` whose `workers` decode in parallel (0: decode in this thread)."""
    return DataLoader(
        inputs,
        batch_size=batch_size if batch_sampler is None else 1,
        batch_sampler=batch_sampler,
        num_workers=workers,
        pin_memory=pin_memory,
        multiprocessing_context=FORK_SERVER if workers else None,
        timeout=WORKER_TIMEOUT_S if workers else 0,
        worker_init_fn=partial(_exit_with, os.getpid()) if workers else None,
    )
