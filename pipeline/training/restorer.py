"""Mid-stage training of the two restorer directions on cached corpus features.

Stage 1 minimises L_base for I2T and T2I; stage 2 adds L_mutual (t < tau), i.e.
L_total = L_mutual + L_base_i2t + L_base_t2i (paper 3.3). One AdamW over both models, linear
warm-up then cosine decay, gradient clipping, bf16 autocast on CUDA.

Resumable: every `checkpoint_every` steps the models, the optimizer state and the step go
to a new checkpoint directory (safetensors + JSON) and `latest.json` is pointed at it last.
Batches and noise come from generators seeded by (seed, step), so a resumed run draws
exactly what the uninterrupted run would have drawn. Per-step losses go to Parquet parts
written with each checkpoint. Another run training the same restorer at the same time is
tolerated: the store's `latest.json` only moves forward, and a run that finds at a checkpoint
that the other one has finished stops there.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import torch
from pydantic import BaseModel, ConfigDict, Field

from pipeline.diffusion.core import DiffusionConfig, to_diffusion_space, training_scheduler
from pipeline.errors import ConfigError
from pipeline.models.dit import DIT_PRESETS, ConditionalDiT, DiTConfig
from pipeline.progress import progress_bar
from pipeline.retrieval import nearest_rows, retrieved_partners
from pipeline.training.losses import base_loss, mutual_terms
from stores.restorer_store import RestorerStore

log = logging.getLogger(__name__)


# Which samples the stage-2 mutual terms (eq. 9) see. `batch`, the paper's: the batch's own
# samples whose timestep is below tau, at their x_t (about tau / T of the batch). `resampled`:
# the batch's rows again, at a timestep drawn in [0, tau) and fresh noise, so every row counts.
MutualTimesteps = Literal["batch", "resampled"]


class TrainConfig(BaseModel):
    """Everything that decides the trained weights (so it is part of the restorer id)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dit: DiTConfig = DiTConfig(**DIT_PRESETS["demo"])
    diffusion: DiffusionConfig = DiffusionConfig()
    stages: int = Field(2, ge=1, le=2)
    stage1_epochs: float = Field(40, gt=0)
    stage2_epochs: float = Field(20, ge=0)
    batch_size: int = Field(256, ge=2)
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = 0.0
    warmup_steps: int = Field(500, ge=0)
    grad_clip: float = 1.0
    tau: int = Field(50, ge=1)
    # Rows of each stage-2 batch that the mutual terms see (its first ones, a random subset, since
    # batches are random permutations); None: all of them. Four more passes through both DiTs make
    # a stage-2 step three times a stage-1 step when they see the whole batch.
    mutual_rows: int | None = Field(None, ge=1)
    mutual_timesteps: MutualTimesteps = "batch"
    # The share of the corpus pairs trained on (and retrieved from): a fixed random subset, for
    # the corpus-size ablation (the paper's Table 3). The steps stay those of the whole corpus,
    # so that only the data differs.
    corpus_fraction: float = Field(1.0, gt=0, le=1)
    seed: int = 0
    checkpoint_every: int = Field(200, ge=1)

    def steps_per_epoch(self, n_pairs: int) -> int:
        return max(1, n_pairs // self.batch_size)

    def total_steps(self, n_pairs: int) -> int:
        epochs = self.stage1_epochs + (self.stage2_epochs if self.stages == 2 else 0)
        return max(1, round(epochs * self.steps_per_epoch(n_pairs)))

    def stage2_start(self, n_pairs: int) -> int:
        return round(self.stage1_epochs * self.steps_per_epoch(n_pairs)) if self.stages == 2 else 1 << 62


def training_pairs(
    images: np.ndarray, texts: np.ndarray, config: TrainConfig
) -> tuple[np.ndarray, np.ndarray]:
    """The corpus pairs `config` trains on: all of them, or its `corpus_fraction`, drawn by its seed."""
    if config.corpus_fraction == 1:
        return images, texts
    kept = np.random.default_rng(config.seed).permutation(len(images))[: round(config.corpus_fraction * len(images))]
    kept.sort()
    return images[kept], texts[kept]


@dataclass
class TrainResult:
    steps: int
    resumed_from: int
    seconds: float
    final_losses: dict[str, float]


def lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


def _step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def batch_indices(n_pairs: int, batch_size: int, seed: int, step: int) -> torch.Tensor:
    """Rows of `step`'s batch: epoch-wise permutations fixed by (seed, epoch)."""
    per_epoch = max(1, n_pairs // batch_size)
    epoch, position = divmod(step, per_epoch)
    order = torch.randperm(n_pairs, generator=torch.Generator().manual_seed(seed * 7919 + epoch))
    return order[position * batch_size : (position + 1) * batch_size]


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into tensors (for safetensors) and JSON-able rest."""
    state = optimizer.state_dict()
    tensors = {
        f"optimizer.{param}.{name}": value
        for param, entries in state["state"].items()
        for name, value in entries.items()
        if isinstance(value, torch.Tensor)
    }
    return tensors, {"param_groups": state["param_groups"]}


def _load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, param, name = key.split(".", 2)
            state.setdefault(int(param), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def build_models(config: TrainConfig, device: torch.device | str = "cpu") -> dict[str, ConditionalDiT]:
    torch.manual_seed(config.seed)
    return {"i2t": ConditionalDiT(config.dit).to(device), "t2i": ConditionalDiT(config.dit).to(device)}


def train_restorer(
    config: TrainConfig,
    image_features: np.ndarray,
    text_features: np.ndarray,
    store: RestorerStore,
    device: torch.device | str = "cpu",
    progress: bool = True,
    stop_after: int | None = None,
) -> TrainResult:
    """Train (or resume training) both directions on paired, L2-normalised corpus features.

    `stop_after` ends the run early after that many steps in total (used to test resuming).
    """
    device = torch.device(device)
    started = time.perf_counter()
    # Steps are those of the whole corpus, whatever share of it trains.
    total, stage2_from = config.total_steps(len(image_features)), config.stage2_start(len(image_features))
    image_features, text_features = training_pairs(image_features, text_features, config)
    images = to_diffusion_space(torch.from_numpy(np.ascontiguousarray(image_features, np.float32))).to(device)
    texts = to_diffusion_space(torch.from_numpy(np.ascontiguousarray(text_features, np.float32))).to(device)
    if config.dit.dim != images.shape[1]:
        raise ConfigError(
            f"restorer config is for {config.dit.dim}-d features, the corpus's are {images.shape[1]}-d: "
            "build it with restoration.resolved_training(), which reads the width off the feature store"
        )
    n_pairs = images.shape[0]
    # The largest coordinate each direction's target takes in training (diffusion space): a
    # sampler that clips its x0 estimate clips to it, so no feature like a trained one is altered.
    x0_range = {"i2t": float(texts.abs().max()), "t2i": float(images.abs().max())}
    scheduler = training_scheduler(config.diffusion)
    models = build_models(config, device)
    retrieved = config.dit.retrieved
    if retrieved:
        # Each pair's partners are those of its nearest OTHER pairs: at restore time a sample is
        # never in the corpus it retrieves from, so its own partner must not be there in training.
        nearest = {
            "i2t": nearest_rows(images, images, retrieved, leave_out_self=True),
            "t2i": nearest_rows(texts, texts, retrieved, leave_out_self=True),
        }
    parameters = [p for model in models.values() for p in model.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)

    start = 0
    latest = store.latest()
    if latest is not None:
        tensors, meta = store.load(latest)
        for name, model in models.items():
            model.load_state_dict(
                {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith(f"{name}.")}
            )
        _load_optimizer(optimizer, tensors, meta["optimizer"])
        start = meta["step"]
        log.info("resuming restorer training at step %d of %d", start, total)
        if start == total and not store.is_complete():
            # Its final checkpoint was found without latest.json naming it (a store damaged by
            # concurrent writers): nothing is left to train, only the completion to record.
            _checkpoint(store, models, optimizer, total, total, config, [], x0_range)

    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    end = total if stop_after is None else min(total, stop_after)
    rows: list[dict[str, float]] = []
    bar = progress_bar(progress, total=total, initial=start, desc="train restorer", unit="step")
    for model in models.values():
        model.train()
    for step in range(start, end):
        for group in optimizer.param_groups:
            group["lr"] = config.lr * lr_factor(step, total, config.warmup_steps)
        generator = _step_generator(config.seed, step)
        picked = batch_indices(n_pairs, config.batch_size, config.seed, step).to(device)
        image, text = images[picked], texts[picked]
        # Each row's condition is its own feature followed by these (`with_retrieved`); they are
        # kept apart because the mutual terms swap the own feature for the other direction's x0_hat.
        partners_i2t = retrieved_partners(texts, nearest["i2t"][picked]) if retrieved else image[:, :0]
        partners_t2i = retrieved_partners(images, nearest["t2i"][picked]) if retrieved else text[:, :0]
        size = (image.shape[0],)
        t = torch.randint(0, config.diffusion.train_steps, size, generator=generator).to(device)
        noise_image = torch.randn(image.shape, generator=generator).to(device)
        noise_text = torch.randn(text.shape, generator=generator).to(device)
        with autocast:
            loss_i2t = base_loss(
                models["i2t"], scheduler, text, torch.cat([image, partners_i2t], 1), t, noise_text
            )
            loss_t2i = base_loss(
                models["t2i"], scheduler, image, torch.cat([text, partners_t2i], 1), t, noise_image
            )
            loss = loss_i2t + loss_t2i
            loss_mutual = torch.zeros((), device=device)
            if step >= stage2_from:
                mutual = slice(0, config.mutual_rows)
                mutual_image, mutual_text = image[mutual], text[mutual]
                if config.mutual_timesteps == "batch":  # eq. 9 on the samples drawn at t < tau
                    t_mutual, noise_image, noise_text = t[mutual], noise_image[mutual], noise_text[mutual]
                else:
                    mutual_size = mutual_image.shape[:1]
                    t_mutual = torch.randint(0, config.tau, mutual_size, generator=generator).to(device)
                    noise_image = torch.randn(mutual_image.shape, generator=generator).to(device)
                    noise_text = torch.randn(mutual_text.shape, generator=generator).to(device)
                i2t_term, t2i_term = mutual_terms(
                    models["i2t"], models["t2i"], scheduler, mutual_image, mutual_text, t_mutual, noise_image,
                    noise_text, config.tau, partners_i2t[mutual], partners_t2i[mutual],
                )  # fmt: skip
                loss_mutual = i2t_term + t2i_term
                loss = loss + loss_mutual
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip)
        optimizer.step()
        rows.append(
            {
                "step": step + 1,
                "stage": 2 if step >= stage2_from else 1,
                "lr": optimizer.param_groups[0]["lr"],
                "loss_base_i2t": loss_i2t.item(),
                "loss_base_t2i": loss_t2i.item(),
                "loss_mutual": loss_mutual.item(),
                "loss_total": loss.item(),
            }
        )
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}", stage=rows[-1]["stage"])
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == end:
            finished = _checkpoint(store, models, optimizer, step + 1, total, config, rows, x0_range)
            rows = []
            if finished and step + 1 < total:
                # Another run of this restorer finished it meanwhile: its weights are final, so the
                # rest of this run would only cost time.
                log.info(
                    "restorer %s was finished by another run; stopping at step %d",
                    store.restorer_id,
                    step + 1,
                )
                end = step + 1
                break
    bar.close()
    losses = store.read_losses()
    last = losses.slice(losses.num_rows - 1).to_pylist()[0] if losses.num_rows else {}
    return TrainResult(
        steps=end,
        resumed_from=start,
        seconds=time.perf_counter() - started,
        final_losses={key: float(value) for key, value in last.items() if key.startswith("loss")},
    )


def _checkpoint(
    store: RestorerStore,
    models: dict[str, ConditionalDiT],
    optimizer: torch.optim.Optimizer,
    step: int,
    total: int,
    config: TrainConfig,
    rows: list[dict[str, float]],
    x0_range: dict[str, float],
) -> bool:
    """Save a checkpoint; returns whether the store's training is complete (by this run or another)."""
    tensors = {
        f"{name}.{key}": value for name, model in models.items() for key, value in model.state_dict().items()
    }
    optimizer_tensors, optimizer_meta = _optimizer_tensors(optimizer)
    tensors.update(optimizer_tensors)
    if rows:
        store.write_losses(pa.Table.from_pylist(rows), step)
    meta = {
        "step": step,
        "total_steps": total,
        "config": config.model_dump(mode="json"),
        "x0_range": x0_range,
        "optimizer": optimizer_meta,
    }
    return store.save(step, tensors, meta, complete=step == total)


@dataclass
class TrainedRestorer:
    """A completed training run: both directions' models (eval mode), their config, and the
    largest coordinate of each direction's training targets in diffusion space."""

    models: dict[str, ConditionalDiT]
    config: TrainConfig
    x0_range: dict[str, float]


def load_restorer_models(store: RestorerStore, device: torch.device | str = "cpu") -> TrainedRestorer:
    """The trained I2T and T2I models of a completed training run."""
    latest = store.latest(require_complete=True)
    tensors, meta = store.load(latest)
    config = TrainConfig.model_validate(meta["config"])
    models = build_models(config, device)
    for name, model in models.items():
        model.load_state_dict({k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith(f"{name}.")})
        model.eval().requires_grad_(False)
    return TrainedRestorer(models, config, meta["x0_range"])
