"""Where a run's defaults come from: the store root and the device (no heavy imports)."""

from __future__ import annotations

import os


def default_store() -> str:
    """The store root: `$MMR_STORE`, else `./mmr-store`."""
    return os.environ.get("MMR_STORE", "mmr-store")


def resolve_device(name: str) -> str:
    """`auto` is CUDA when there is one, else the CPU; any other name is used as given."""
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
