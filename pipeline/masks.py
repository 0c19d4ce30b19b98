"""Missing-modality masks, drawn once per (dataset, split, eta, missing_type, seed).

The protocol of MAP / DCP / RAGPT: a fraction eta of each split's samples lose a modality;
`image` and `text` take it from all of them, `both` takes the image from the first half and
the text from the second half of the drawn samples (disjoint). The same eta applies to train,
val and test. Every restorer reuses the same stored masks.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import numpy as np
import pyarrow as pa

from pipeline.errors import ConfigError

MissingType = Literal["image", "text", "both"]
MISSING_TYPES: tuple[MissingType, ...] = ("image", "text", "both")


def check_missing_rate(eta: float) -> None:
    """Masks, restorations and results are named by the rate in hundredths: a finer one (0.704)
    would find 0.70's and be reported as itself."""
    if not 0.0 <= eta <= 1.0:
        raise ConfigError(f"missing rate {eta} is outside [0, 1]: pass a fraction such as 0.7")
    if abs(100 * eta - round(100 * eta)) > 1e-6:
        raise ConfigError(
            f"missing rate {eta} is finer than a hundredth: pass a multiple of 0.01, such as 0.7"
        )


def mask_name(eta: float, missing_type: MissingType, seed: int) -> str:
    check_missing_rate(eta)
    return f"eta{eta:.2f}-{missing_type}-seed{seed}"


def _split_seed(dataset: str, split: str, eta: float, missing_type: str, seed: int) -> list[int]:
    key = hashlib.sha256(f"{dataset}|{split}|{eta:.6f}|{missing_type}".encode()).digest()
    return [seed, int.from_bytes(key[:8], "little")]


def draw_masks(
    dataset: str, splits: np.ndarray, eta: float, missing_type: MissingType, seed: int
) -> pa.Table:
    """One row per stored sample: which modality the protocol removes (`splits[i]` is row i's split)."""
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"missing rate {eta} is outside [0, 1]")
    n = len(splits)
    image_missing, text_missing = np.zeros(n, bool), np.zeros(n, bool)
    for split in np.unique(splits):
        rows = np.flatnonzero(splits == split)
        rng = np.random.default_rng(_split_seed(dataset, str(split), eta, missing_type, seed))
        drawn = rows[rng.permutation(len(rows))[: round(eta * len(rows))]]
        if missing_type == "image":
            image_missing[drawn] = True
        elif missing_type == "text":
            text_missing[drawn] = True
        else:
            half = len(drawn) // 2
            image_missing[drawn[:half]] = True
            text_missing[drawn[half:]] = True
    return pa.table(
        {"row": np.arange(n, dtype=np.int64), "split": splits, "image_missing": image_missing,
         "text_missing": text_missing}
    )  # fmt: skip
