"""Checkpoints: tensors in safetensors, everything else in a JSON file beside them.

Nothing here unpickles. `config.json` is written last and is the commit marker: a
checkpoint directory without it is incomplete and treated as absent.
"""

from __future__ import annotations

from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from stores.fs import exists, join, read_json, url_to_fs, write_bytes_atomic, write_json_atomic

TENSORS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def checkpoint_exists(directory: str) -> bool:
    return exists(join(directory, CONFIG_FILE))


def save_checkpoint(directory: str, tensors: dict[str, torch.Tensor], config: dict[str, Any]) -> None:
    contiguous = {name: tensor.detach().cpu().contiguous() for name, tensor in tensors.items()}
    write_bytes_atomic(join(directory, TENSORS_FILE), save_safetensors(contiguous))
    write_json_atomic(join(directory, CONFIG_FILE), config)


def load_checkpoint(directory: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    config = read_json(join(directory, CONFIG_FILE))
    if config is None:
        raise FileNotFoundError(f"no committed checkpoint at {directory} (config.json is missing)")
    fs, path = url_to_fs(join(directory, TENSORS_FILE))
    with fs.open(path, "rb") as handle:
        tensors = load_safetensors(handle.read())
    return tensors, config
