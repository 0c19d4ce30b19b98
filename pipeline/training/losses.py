"""The two training objectives of the restorer (paper eqs. 7, 9 and 10).

Direction names: `i2t` restores text features conditioned on image features, `t2i` the reverse.
All features here are in diffusion space (x0 = sqrt(D) * z).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.diffusion.core import add_noise, predict_x0, training_target

if TYPE_CHECKING:  # annotations only: diffusers takes seconds to import
    from diffusers import DDPMScheduler


def base_loss(
    model: nn.Module, scheduler: DDPMScheduler, target: torch.Tensor, cond: torch.Tensor, t: torch.Tensor,
    noise: torch.Tensor,
) -> torch.Tensor:  # fmt: skip
    """L_base = ||eps - eps_theta(x_t, c, t)||^2 (eq. 7), mean over batch and dims; with a
    v-predictor, the same with v in place of eps."""
    noisy = add_noise(scheduler, target, noise, t)
    return F.mse_loss(model(noisy, t, cond), training_target(scheduler, target, noise, t))


def mutual_terms(
    i2t: nn.Module,
    t2i: nn.Module,
    scheduler: DDPMScheduler,
    image: torch.Tensor,
    text: torch.Tensor,
    t: torch.Tensor,
    noise_image: torch.Tensor,
    noise_text: torch.Tensor,
    tau: int,
    partners_i2t: torch.Tensor | None = None,
    partners_t2i: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The I2T and T2I terms of L_mutual (eq. 9) over the samples with t < tau (zeros if none).

    x0_hat_img is T2I's own eq. 8 estimate of the clean image feature; I2T must still predict
    the text noise (or velocity) when conditioned on it (and symmetrically). Gradients flow
    through x0_hat, so each direction is trained to restore features that condition the other
    one well. A retrieval-augmented DiT's condition also holds retrieved partner features
    (`partners_*`, flattened, one row per sample): those of the true available feature, which
    x0_hat estimates closely at t < tau.
    """
    keep = t < tau
    if not keep.any():
        return image.new_zeros(()), image.new_zeros(())
    image, text, t = image[keep], text[keep], t[keep]
    noise_image, noise_text = noise_image[keep], noise_text[keep]
    i2t_extra = image[:, :0] if partners_i2t is None else partners_i2t[keep]
    t2i_extra = text[:, :0] if partners_t2i is None else partners_t2i[keep]

    def i2t_of(x_t: torch.Tensor, image_cond: torch.Tensor) -> torch.Tensor:
        return i2t(x_t, t, torch.cat([image_cond, i2t_extra], dim=1))

    def t2i_of(x_t: torch.Tensor, text_cond: torch.Tensor) -> torch.Tensor:
        return t2i(x_t, t, torch.cat([text_cond, t2i_extra], dim=1))

    noisy_image = add_noise(scheduler, image, noise_image, t)
    noisy_text = add_noise(scheduler, text, noise_text, t)
    x0_hat_image = predict_x0(scheduler, noisy_image, t2i_of(noisy_image, text), t)
    x0_hat_text = predict_x0(scheduler, noisy_text, i2t_of(noisy_text, image), t)
    i2t_term = F.mse_loss(i2t_of(noisy_text, x0_hat_image), training_target(scheduler, text, noise_text, t))
    t2i_term = F.mse_loss(t2i_of(noisy_image, x0_hat_text), training_target(scheduler, image, noise_image, t))
    return i2t_term, t2i_term
