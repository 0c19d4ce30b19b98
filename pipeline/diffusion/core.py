"""Diffusion glue over `diffusers` schedulers: noising, eps loss, x0 estimate, batched sampling.

The schedules themselves come from diffusers (DDPM for training noise, DDIM or a faster
solver for sampling); this module only adapts them to feature vectors:

- features enter as x0 = sqrt(D) * z (unit per-dimension variance) and leave as x0 / sqrt(D);
- the network predicts the noise eps (the paper's) or the velocity
  v = sqrt(abar_t) eps - sqrt(1 - abar_t) x0 (`prediction`, a diffusers prediction type);
- eq. 8 of the paper with the cumulative abar_t:
  x0_hat = x_t / sqrt(abar_t) - sqrt(1 / abar_t - 1) * eps, or for v,
  x0_hat = sqrt(abar_t) x_t - sqrt(1 - abar_t) v;
- sampling starts from z_T ~ N(0, I) drawn from each sample's own seed, so a restoration is
  reproducible whatever the batch it runs in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:  # diffusers is imported where a scheduler is built: it takes seconds to import
    from diffusers import DDPMScheduler

BetaSchedule = Literal["cosine", "linear"]
Prediction = Literal["epsilon", "v_prediction"]
Sampler = Literal["ddim", "dpmsolver++", "unipc"]
Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

_DIFFUSERS_BETAS = {"cosine": "squaredcos_cap_v2", "linear": "linear"}


class DiffusionConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    train_steps: int = Field(1000, ge=2)
    beta_schedule: BetaSchedule = "cosine"
    # What the network predicts. `epsilon` is the paper's. Near t = T, eq. 8 multiplies an eps
    # error by sqrt(1 / abar_t - 1) (2e4 at t = 999 on the cosine schedule), so an eps-predictor
    # must learn its noise to 1e-4 before its x0 estimate at high noise, where the condition
    # decides the sample, means anything. A v-predictor's x0 estimate has no such factor.
    prediction: Prediction = "epsilon"


def training_scheduler(config: DiffusionConfig) -> DDPMScheduler:
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=config.train_steps,
        beta_schedule=_DIFFUSERS_BETAS[config.beta_schedule],
        prediction_type=config.prediction,
        clip_sample=False,
    )


def sampling_scheduler(config: DiffusionConfig, sampler: Sampler = "ddim", clip_x0: float | None = None):
    """A deterministic sampler on the same noise schedule as training.

    Timesteps are spaced "trailing" so the first step starts at t = T - 1, i.e. from (almost)
    pure noise, whatever S is. DDIM can clip its x0 estimate to +-clip_x0: near t = T the
    cosine schedule has abar ~ 1e-8, so eq. 8 multiplies any error of a learned noise
    prediction by ~1e4, and one bad first step would throw the whole trajectory off the data.
    A clip is set from the training targets' own range (`TrainedRestorer.x0_range`): a
    smaller one would change features that are like the trained ones.
    """
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler

    base = training_scheduler(config).config
    if sampler == "ddim":
        clip = {"clip_sample": True, "clip_sample_range": clip_x0} if clip_x0 else {}
        return DDIMScheduler.from_config(base, timestep_spacing="trailing", set_alpha_to_one=True, **clip)
    if sampler == "dpmsolver++":
        return DPMSolverMultistepScheduler.from_config(
            base, algorithm_type="dpmsolver++", timestep_spacing="trailing", final_sigmas_type="zero"
        )
    return UniPCMultistepScheduler.from_config(base, timestep_spacing="trailing", final_sigmas_type="zero")


def to_diffusion_space(features: torch.Tensor) -> torch.Tensor:
    return features * math.sqrt(features.shape[-1])


def from_diffusion_space(x0: torch.Tensor) -> torch.Tensor:
    return x0 / math.sqrt(x0.shape[-1])


def add_noise(
    scheduler: DDPMScheduler, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps."""
    return scheduler.add_noise(x0, noise, t)


def alpha_bar(scheduler: DDPMScheduler, t: torch.Tensor) -> torch.Tensor:
    return scheduler.alphas_cumprod.to(t.device)[t].float()


def training_target(
    scheduler: DDPMScheduler, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """What the network learns to predict from x_t: the noise, or the velocity."""
    if scheduler.config.prediction_type == "v_prediction":
        return scheduler.get_velocity(x0, noise, t)
    return noise


def predict_x0(
    scheduler: DDPMScheduler, x_t: torch.Tensor, prediction: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """Paper eq. 8 with the cumulative abar_t (the paper's alpha_t means abar_t), from the
    network's prediction (eps, or v)."""
    abar = alpha_bar(scheduler, t)[:, None]
    if scheduler.config.prediction_type == "v_prediction":
        return abar.sqrt() * x_t - (1.0 - abar).sqrt() * prediction
    return x_t / abar.sqrt() - (1.0 / abar - 1.0).sqrt() * prediction


NoiseKey = int | Sequence[int]


def initial_noise(seeds: Sequence[NoiseKey], dim: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """z_T for each sample from its own seed: independent of batch composition and order.

    A seed is an int or a tuple of ints (e.g. (seed, row, draw)), all of it used: numpy's
    PCG64 takes the whole key as entropy, where torch's CPU generator keeps only 32 bits
    (keys that differ above bit 31 would draw the same noise).
    """
    rows = [np.random.default_rng(seed).standard_normal(dim, dtype=np.float32) for seed in seeds]
    return torch.from_numpy(np.stack(rows)).to(device)


@torch.no_grad()
def sample(
    denoiser: Denoiser,
    cond: torch.Tensor,
    seeds: Sequence[NoiseKey],
    config: DiffusionConfig,
    steps: int = 50,
    sampler: Sampler = "ddim",
    clip_x0: float | None = None,
    temperature: float = 1.0,
    feature_dim: int | None = None,
) -> torch.Tensor:
    """Deterministic reverse diffusion for one batch: returns x0 in diffusion space.

    `temperature` scales the starting noise z_T; 0 starts every sample from the noise's mean.
    `feature_dim` is x0's width where the condition is wider (retrieved partners follow it).
    """
    scheduler = sampling_scheduler(config, sampler, clip_x0)
    scheduler.set_timesteps(steps, device=cond.device)
    x = initial_noise(seeds, feature_dim or cond.shape[-1], cond.device) * (
        scheduler.init_noise_sigma * temperature
    )
    for t in scheduler.timesteps:
        t_batch = torch.full((x.shape[0],), int(t), device=x.device, dtype=torch.long)
        prediction = denoiser(x, t_batch, cond).float()
        x = scheduler.step(prediction, t, x).prev_sample
    return x
