"""Turns raw samples into model inputs inside data-loader workers (image decode is the slow part)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from pipeline.data.sample import ImageRef, clean_text, open_rgb


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
