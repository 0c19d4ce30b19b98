"""Where a run's defaults come from: the store root and the device (no heavy imports)."""

from __future__ import annotations

import os


def default_store() -> str:
    """The store root: `$MMR_STORE`, else `./mmr-store`."""
    return os.environ.get("MMR_STORE", "mmr-store")


# What a benchmark restores when not told: `run` and the benchmark flow (nightly) alike: the
# paper's method and this project's variant side by side. The other four (swap, swap_gap, knn,
# regression) come with `all`.
BENCHMARK_RESTORERS = ("zero", "mean", "dit-paper", "dit", "oracle")


def resolve_device(name: str) -> str:
    """`auto` is CUDA when there is one, else the CPU; any other name is checked and used as given."""
    import torch

    from pipeline.errors import ConfigError

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device {name!r} is not a device: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA devices: "
                          "use --device cpu, or auto")  # fmt: skip
    return name
