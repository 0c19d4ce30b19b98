"""A frozen open_clip encoder behind one small interface.

Where the weights come from (`EncoderConfig.pretrained`):
- an open_clip tag such as `openai` or `laion2b_s34b_b79k`: loaded through open_clip from the
  Hugging Face cache; offline with nothing cached, one error line says how to fix it;
- a local checkpoint path (`.safetensors`, `.pt`, `.bin`): loaded by open_clip;
- `demo`: the project's tiny model contrastively warmed up on the demo corpus (cached in the
  store, see `pipeline.encoders.warmup`);
- `random`: random initialisation with a fixed seed (benchmarks and tests only).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlparse

import torch
from pydantic import BaseModel, ConfigDict, field_validator

from pipeline.errors import EncoderUnavailableError

MODEL_CONFIG_DIR = Path(__file__).parent / "model_configs"
HF_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def open_clip_with_project_models() -> ModuleType:
    """open_clip, with the project's own model configs (e.g. `mmr-tiny`) known to it by name.
    Imported on first use: it brings torchvision and torch._dynamo, seconds that a run whose
    features are all in the store does not need."""
    import open_clip

    if "mmr-tiny" not in open_clip.list_models():
        open_clip.add_model_config(MODEL_CONFIG_DIR)
    return open_clip


class EncoderConfig(BaseModel):
    """Which frozen VLM extracts features. The defaults are the built-in demo encoder."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = "mmr-tiny"
    pretrained: str = "demo"

    @field_validator("model")
    @classmethod
    def _known_model(cls, name: str) -> str:
        if (MODEL_CONFIG_DIR / f"{name}.json").is_file():  # the project's own: no need to ask open_clip
            return name
        if name not in open_clip_with_project_models().list_models():
            raise ValueError(
                f"unknown open_clip model {name!r}: use one of `open_clip.list_models()` such as ViT-B-32"
            )
        return name

    @property
    def embed_dim(self) -> int:
        """The width of the features this model gives, read off its config without building it."""
        own = MODEL_CONFIG_DIR / f"{self.model}.json"
        if own.is_file():
            return int(json.loads(own.read_text())["embed_dim"])
        return int(open_clip_with_project_models().get_model_config(self.model)["embed_dim"])

    @property
    def source_name(self) -> str:
        """A short, path-safe name of the weights source for ids and store paths."""
        if self.pretrained in ("demo", "random") or "/" not in self.pretrained:
            return self.pretrained
        return Path(self.pretrained).stem


def state_digest(model: torch.nn.Module) -> str:
    """sha256 of every parameter and buffer, in name order: the identity of the weights."""
    return tensors_digest(model.state_dict())


def tensors_digest(state: Mapping[str, torch.Tensor]) -> str:
    """`state_digest` of a model whose state dict is `state` (a checkpoint's tensors, say)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def encoder_id(config: EncoderConfig, digest: str) -> str:
    """How features name their encoder: model, weights source and the weights' `state_digest`."""
    return f"{config.model}.{config.source_name}.{digest[:12]}"


class FrozenEncoder:
    """Encodes preprocessed images and tokenised texts into L2-normalised embeddings."""

    def __init__(self, config: EncoderConfig, model: torch.nn.Module, preprocess: Callable, digest: str):
        self.config = config
        self.model = model.eval().requires_grad_(False)
        self.preprocess = preprocess
        self.tokenizer = open_clip_with_project_models().get_tokenizer(config.model)
        self.digest = digest
        self.device = next(model.parameters()).device

    @property
    def encoder_id(self) -> str:
        return encoder_id(self.config, self.digest)

    @property
    def embed_dim(self) -> int:
        return int(self.model.text_projection.shape[1])

    def preprocessing(self) -> dict[str, Any]:
        """What the manifest records about how inputs were turned into tensors."""
        image_cfg = dict(getattr(self.model.visual, "preprocess_cfg", {}))
        return {
            "image": {key: list(v) if isinstance(v, tuple) else v for key, v in image_cfg.items()},
            "text": {
                "tokenizer": type(self.tokenizer).__name__,
                "context_length": int(self.tokenizer.context_length),
            },
        }

    def _autocast(self) -> torch.autocast:
        enabled = self.device.type == "cuda"
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=enabled)

    @torch.inference_mode()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            features = self.model.encode_image(pixels.to(self.device, non_blocking=True))
        return torch.nn.functional.normalize(features.float(), dim=-1)

    @torch.inference_mode()
    def encode_texts(self, tokens: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            features = self.model.encode_text(tokens.to(self.device, non_blocking=True))
        return torch.nn.functional.normalize(features.float(), dim=-1)


def _hf_offline() -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        return True
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:  # one quick probe instead of the hub client's long retry loop
        socket.create_connection(
            (endpoint.hostname or "huggingface.co", endpoint.port or 443), timeout=3
        ).close()
    except OSError:
        return True
    return False


def _cached_hf_weights(repo_id: str, filename: str) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    candidates = (filename,) if filename else HF_WEIGHT_FILES
    for candidate in candidates:
        cached = try_to_load_from_cache(repo_id, candidate)
        if isinstance(cached, str):
            return cached
    return None


def resolve_weights(model: str, pretrained: str) -> str:
    """A local file for `pretrained`: the path itself, or the cached file of an open_clip tag."""
    if Path(pretrained).expanduser().is_file():
        return str(Path(pretrained).expanduser())
    open_clip = open_clip_with_project_models()
    tag_cfg = open_clip.get_pretrained_cfg(model, pretrained)
    if not tag_cfg:
        known = ", ".join(open_clip.list_pretrained_tags_by_model(model)) or "none"
        raise EncoderUnavailableError(
            f"--pretrained {pretrained!r} is neither a file nor an open_clip tag of {model} "
            f"(tags: {known}): pass a known tag or the path of a checkpoint file"
        )
    hub = tag_cfg.get("hf_hub", "")
    repo_id, filename = os.path.split(hub)  # "org/name/" -> ("org/name", ""): the default file
    if hub:
        cached = _cached_hf_weights(repo_id, filename)
        if cached:
            return cached
    if _hf_offline():
        where = f"Hugging Face repo {repo_id}" if hub else tag_cfg.get("url", "its download URL")
        raise EncoderUnavailableError(
            f"weights {model}/{pretrained} are not cached and this machine is offline: on a connected "
            f"machine run `python -c \"import open_clip; open_clip.create_model('{model}', "
            f"pretrained='{pretrained}')\"` (downloads from {where} into the Hugging Face cache) and copy "
            f"the cache here, or pass --pretrained /path/to/checkpoint"
        )
    return open_clip.download_pretrained(tag_cfg)


def build_encoder(config: EncoderConfig, device: str | torch.device = "cpu") -> FrozenEncoder:
    """Build the model with weights from a tag, a file, or a fixed-seed random init.

    `demo` weights live in a store; `pipeline.encoders.warmup.load_demo_encoder` builds those.
    """
    open_clip = open_clip_with_project_models()
    if config.pretrained == "demo":
        raise ValueError("demo weights come from the store: use pipeline.encoders.warmup.load_demo_encoder")
    weights = None if config.pretrained == "random" else resolve_weights(config.model, config.pretrained)
    if weights is None:
        torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms(
        config.model, pretrained=weights, device=device
    )
    return FrozenEncoder(config, model, preprocess, state_digest(model))


class _RandomInitNotice(logging.Filter):
    """Drops open_clip's "No pretrained weights loaded" warning: here random init is the point."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("No pretrained weights loaded")


def tiny_model(model_name: str, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, Callable]:
    """A randomly initialised open_clip model and its eval preprocessing (warm-up starts here)."""
    open_clip = open_clip_with_project_models()
    notice = _RandomInitNotice()
    logging.getLogger().addFilter(notice)  # open_clip logs through the root logger
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            model_name, pretrained=None, device=device
        )
    finally:
        logging.getLogger().removeFilter(notice)
    return model, preprocess
