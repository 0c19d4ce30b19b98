"""The demo VLM: a tiny open_clip model warmed up contrastively on a generic corpus, then frozen.

No pretrained weights can be downloaded where the demo runs, so the pipeline makes its own
CLIP: open_clip's model and its own `ClipLoss`, trained on `demo-pretrain` image-caption pairs
(the demo's vocabulary without its domain's habits, as CLIP's web corpus is not the restorer's
mid-stage corpus). The result has CLIP's properties that restoration relies on (aligned
modalities, a modality gap). It is cached in the store under an id of its config, the corpus
it reads and `WARMUP_FORMAT`, so it is trained once per store, not once per release.
"""

from __future__ import annotations

import logging
import math

import torch
from pydantic import BaseModel, ConfigDict, Field

from pipeline.data.demo import DemoAdapter, DemoConfig
from pipeline.data.loading import EncoderInputs, RawRow, input_loader
from pipeline.encoders.frozen import (
    EncoderConfig,
    FrozenEncoder,
    build_encoder,
    encoder_id,
    open_clip_with_project_models,
    state_digest,
    tensors_digest,
    tiny_model,
)
from pipeline.hashing import content_id
from pipeline.progress import progress_bar
from pipeline.version import code_version
from stores.checkpoints import checkpoint_exists, load_checkpoint, save_checkpoint
from stores.fs import join

log = logging.getLogger(__name__)

# What a warm-up trains, versioned on its own: bump it when a change alters the weights a
# warm-up makes (its loop, the tiny model's config, how `demo-pretrain` is drawn). Not the code
# version: each release would warm up again (minutes), and a warm-up that is not bit-identical
# on another machine would send every feature store back to be encoded again.
WARMUP_FORMAT = 2  # 2: the fused AdamW, text read up to the batch's longest caption


class WarmupConfig(BaseModel):
    """How the demo encoder is trained. Part of its id: change any field and it retrains."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = "mmr-tiny"
    steps: int = Field(600, ge=1)
    batch_size: int = Field(128, ge=2)
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup_steps: int = 40
    seed: int = 0


def warmup_dir(store_url: str, config: WarmupConfig, demo: DemoConfig) -> str:
    corpus = demo.model_dump(include={"seed", "image_size", "corpus_size"})  # what the warm-up reads
    return join(store_url, "encoders", f"{config.model}.demo.{content_id(config, corpus, WARMUP_FORMAT)}")


def _lr_factor(step: int, config: WarmupConfig) -> float:
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * progress))


def encode_text_to_longest(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """open_clip's `CLIP.encode_text`, normalised, over the batch's columns up to its longest
    caption. The text tower is causal and reads each caption at its end-of-text token, so the
    padding after the longest one changes nothing but the cost: demo captions take 11 of the
    32 positions on average, a batch's longest 24, and the text tower is most of a step."""
    from open_clip.transformer import text_global_pool

    length = int((tokens != 0).sum(dim=1).max())  # padding is 0; start and end tokens are not
    tokens = tokens[:, :length]
    x = model.token_embedding(tokens) + model.positional_embedding[:length]
    x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask[:length, :length]))
    x = text_global_pool(x, tokens, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None))
    return torch.nn.functional.normalize(x @ model.text_projection, dim=-1)


def train_demo_encoder(
    config: WarmupConfig, demo: DemoConfig, workers: int = 2, progress: bool = True
) -> torch.nn.Module:
    """Contrastive training of a fresh tiny model on the demo corpus (CPU-sized)."""
    torch.manual_seed(config.seed)
    model, preprocess = tiny_model(config.model)
    open_clip = open_clip_with_project_models()
    tokenizer = open_clip.get_tokenizer(config.model)
    corpus = DemoAdapter("demo-pretrain", demo)
    rows = [RawRow(row, sample.text, sample.image) for row, sample in enumerate(corpus.samples())]
    inputs = EncoderInputs(rows, preprocess, tokenizer, demo.image_size)
    # Decode the corpus once (in parallel workers); every epoch then reuses the tensors.
    loader = input_loader(inputs, workers, batch_size=512)
    batches = list(progress_bar(progress, iterable=loader, desc="render demo corpus", unit="batch"))
    pixels = torch.cat([batch["pixels"] for batch in batches])
    tokens = torch.cat([batch["tokens"] for batch in batches])
    generator = torch.Generator().manual_seed(config.seed)
    # fused: one kernel over all parameters. Most of them are the token embedding's 49,408 rows,
    # which the per-tensor loop of the default AdamW walks several times a step (10% of it).
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _lr_factor(step, config))
    loss_fn = open_clip.ClipLoss()
    model.train()
    bar = progress_bar(progress, total=config.steps, desc="warm-up demo encoder", unit="step")
    per_epoch = len(rows) // config.batch_size
    for step in range(config.steps):
        if step % per_epoch == 0:
            order = torch.randperm(len(rows), generator=generator)
        picked = order[(step % per_epoch) * config.batch_size : (step % per_epoch + 1) * config.batch_size]
        image_features = model.encode_image(pixels[picked], normalize=True)
        text_features = encode_text_to_longest(model, tokens[picked])
        loss = loss_fn(image_features, text_features, model.logit_scale.exp())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        with torch.no_grad():  # CLIP's clamp: keep the temperature in a sane range
            model.logit_scale.clamp_(0, math.log(100))
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if (step + 1) % 50 == 0:
            log.info("warm-up step %d loss %.4f", step + 1, loss.item())
    bar.close()
    return model.eval()


def load_demo_encoder(
    store_url: str,
    config: WarmupConfig,
    demo: DemoConfig,
    device: str | torch.device = "cpu",
    workers: int = 2,
    progress: bool = True,
) -> FrozenEncoder:
    """The warmed-up demo encoder from the store, training and caching it on first use."""
    directory = warmup_dir(store_url, config, demo)
    model, preprocess = tiny_model(config.model, device=device)
    if checkpoint_exists(directory):
        tensors, _ = load_checkpoint(directory)
        model.load_state_dict(tensors)
    else:
        trained = train_demo_encoder(config, demo, workers=workers, progress=progress)
        save_checkpoint(
            directory,
            trained.state_dict(),
            {
                "warmup": config.model_dump(mode="json"),
                "demo": demo.model_dump(),
                "format": WARMUP_FORMAT,
                "code_version": code_version(),  # the release that trained it
            },
        )
        model.load_state_dict(trained.state_dict())
    encoder_config = EncoderConfig(model=config.model, pretrained="demo")
    return FrozenEncoder(encoder_config, model, preprocess, state_digest(model))


def stored_encoder_id(
    config: EncoderConfig, store_url: str, warmup: WarmupConfig | None = None, demo: DemoConfig | None = None
) -> str | None:
    """The id `load_encoder` would give a demo encoder already warmed up in the store, from its
    checkpoint's tensors alone: a run whose features are all stored needs no more of the encoder,
    and building it costs seconds (open_clip's import, the model). Read from the weights, not
    recorded beside them: a record would outlive weights replaced in the store. None for other
    encoders, or a demo encoder not warmed up yet."""
    if config.pretrained != "demo":
        return None
    directory = warmup_dir(store_url, _for_model(warmup, config), demo or DemoConfig())
    if not checkpoint_exists(directory):
        return None
    tensors, _ = load_checkpoint(directory)
    return encoder_id(config, tensors_digest(tensors))


def _for_model(warmup: WarmupConfig | None, config: EncoderConfig) -> WarmupConfig:
    """The warm-up of `config`'s model (the demo encoder may be any open_clip architecture)."""
    return (warmup or WarmupConfig()).model_copy(update={"model": config.model})


def load_encoder(
    config: EncoderConfig,
    store_url: str,
    warmup: WarmupConfig | None = None,
    demo: DemoConfig | None = None,
    device: str | torch.device = "cpu",
    workers: int = 2,
    progress: bool = True,
) -> FrozenEncoder:
    """Any encoder the CLI can name: the demo one from the store, others from open_clip."""
    if config.pretrained == "demo":
        return load_demo_encoder(
            store_url, _for_model(warmup, config), demo or DemoConfig(), device=device, workers=workers,
            progress=progress,
        )  # fmt: skip
    return build_encoder(config, device=device)
