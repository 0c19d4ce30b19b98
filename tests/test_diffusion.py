"""The diffusion core against closed-form answers."""

from __future__ import annotations

import pytest
import torch

from pipeline.diffusion.core import (
    DiffusionConfig,
    add_noise,
    alpha_bar,
    from_diffusion_space,
    initial_noise,
    predict_x0,
    sample,
    to_diffusion_space,
    training_scheduler,
    training_target,
)

MU, SIGMA = 1.5, 0.3


def _optimal_denoiser(config: DiffusionConfig):
    """For x0 ~ N(mu, sigma^2 I): E[eps | x_t] = sqrt(1-ab) (x_t - sqrt(ab) mu) / (ab sigma^2 + 1 - ab)
    and E[x0 | x_t] = mu + sqrt(ab) sigma^2 (x_t - sqrt(ab) mu) / (ab sigma^2 + 1 - ab), so
    E[v | x_t] = sqrt(ab) E[eps | x_t] - sqrt(1-ab) E[x0 | x_t]."""
    scheduler = training_scheduler(config)

    def denoiser(x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        ab = alpha_bar(scheduler, t)[:, None]
        innovation = (x_t - ab.sqrt() * MU) / (ab * SIGMA**2 + 1 - ab)
        eps = (1 - ab).sqrt() * innovation
        if config.prediction == "epsilon":
            return eps
        return ab.sqrt() * eps - (1 - ab).sqrt() * (MU + ab.sqrt() * SIGMA**2 * innovation)

    return denoiser


# DDIM's discretisation error at S = 50 is larger on the linear schedule (its steps near t = 0
# are coarse); at S = 1000 both are exact to sampling noise plus the tiny abar_T > 0 bias.
@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
@pytest.mark.parametrize(("schedule", "steps", "tolerance"), [
    ("cosine", 50, 0.06), ("cosine", 1000, 0.01), ("linear", 50, 0.12), ("linear", 1000, 0.02),
])  # fmt: skip
def test_ddim_with_the_optimal_denoiser_maps_noise_to_the_data_distribution(
    schedule: str, steps: int, tolerance: float, prediction: str
) -> None:
    config = DiffusionConfig(beta_schedule=schedule, prediction=prediction)
    x0 = sample(_optimal_denoiser(config), torch.zeros(4000, 8), range(4000), config, steps=steps)
    assert x0.mean().item() == pytest.approx(MU, abs=0.01)
    assert x0.std().item() == pytest.approx(SIGMA, rel=tolerance)


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("sampler", ["dpmsolver++", "unipc"])
def test_faster_solvers_are_a_switch_and_also_reach_the_distribution(sampler: str, prediction: str) -> None:
    config = DiffusionConfig(prediction=prediction)
    x0 = sample(
        _optimal_denoiser(config), torch.zeros(4000, 8), range(4000), config, steps=20, sampler=sampler
    )
    assert x0.mean().item() == pytest.approx(MU, abs=0.01)
    assert x0.std().item() == pytest.approx(SIGMA, rel=0.05)


def test_x0_estimate_inverts_the_forward_process_with_the_cumulative_alpha() -> None:
    scheduler = training_scheduler(DiffusionConfig())
    x0, eps = torch.randn(64, 16), torch.randn(64, 16)
    t = torch.randint(0, 1000, (64,))
    x_t = add_noise(scheduler, x0, eps, t)
    ab = scheduler.alphas_cumprod[t][:, None]
    torch.testing.assert_close(x_t, ab.sqrt() * x0 + (1 - ab).sqrt() * eps)
    torch.testing.assert_close(training_target(scheduler, x0, eps, t), eps)
    torch.testing.assert_close(predict_x0(scheduler, x_t, eps, t), x0, atol=2e-3, rtol=1e-3)


def test_a_v_predictor_learns_the_velocity_and_its_x0_estimate_needs_no_division_by_abar() -> None:
    scheduler = training_scheduler(DiffusionConfig(prediction="v_prediction"))
    x0, eps = torch.randn(64, 16), torch.randn(64, 16)
    t = torch.cat([torch.randint(0, 1000, (62,)), torch.tensor([998, 999])])
    x_t = add_noise(scheduler, x0, eps, t)
    ab = scheduler.alphas_cumprod[t][:, None]
    v = training_target(scheduler, x0, eps, t)
    torch.testing.assert_close(v, ab.sqrt() * eps - (1 - ab).sqrt() * x0)
    # Exact even at t = 999 (abar = 2e-9), where eq. 8 from eps would divide by sqrt(abar).
    torch.testing.assert_close(predict_x0(scheduler, x_t, v, t), x0, atol=1e-5, rtol=1e-5)
    # A v error of 0.1 stays an x0 error of at most 0.1; from eps it would grow by 1 / sqrt(abar).
    off = predict_x0(scheduler, x_t, v + 0.1, t) - x0
    assert off.abs().max() <= 0.1 + 1e-5


def test_feature_scaling_gives_unit_per_dimension_variance() -> None:
    z = torch.nn.functional.normalize(torch.randn(10_000, 512), dim=-1)
    x0 = to_diffusion_space(z)
    assert x0.pow(2).mean().item() == pytest.approx(1.0, rel=1e-3)
    torch.testing.assert_close(from_diffusion_space(x0), z)


def test_initial_noise_depends_only_on_each_samples_seed() -> None:
    together = initial_noise([3, 7, 11], 32)
    alone = initial_noise([7], 32)
    torch.testing.assert_close(together[1], alone[0], rtol=0, atol=0)
    assert not torch.equal(together[0], together[1])
    # Keys that differ only above 32 bits, or only in a tuple's last entry, draw other noise.
    wide = initial_noise([7, 7 + (1 << 40), (0, 7, 0), (0, 7, 1)], 32)
    assert len({tuple(row.tolist()) for row in wide}) == 4


def test_a_clip_at_the_training_range_never_alters_a_feature_within_it() -> None:
    """Restored by an exact denoiser of a known feature whose coordinates reach +-9 (beyond the
    old fixed clip of 5), with the clip at that range: the feature comes back unchanged."""
    config = DiffusionConfig(beta_schedule="linear")
    scheduler = training_scheduler(config)
    target = torch.linspace(-9.0, 9.0, 8).repeat(4, 1)  # diffusion space; the range is 9

    def exact(x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        abar = scheduler.alphas_cumprod[t].float()[:, None]
        return (x_t - abar.sqrt() * target) / (1 - abar).sqrt()  # the noise that makes x_t from target

    clip = float(target.abs().max())
    restored = sample(exact, torch.zeros(4, 8), range(4), config, steps=50, clip_x0=clip)
    torch.testing.assert_close(restored, target, atol=1e-3, rtol=0)
    narrower = sample(exact, torch.zeros(4, 8), range(4), config, steps=50, clip_x0=5.0)
    assert narrower.abs().max() <= 5.0  # a clip below the range changes the true feature


def test_clipping_x0_keeps_a_slightly_wrong_denoiser_from_exploding() -> None:
    """Near t = T, abar ~ 1e-8: eq. 8 multiplies a 0.05 noise error by ~1e4 without the clip,
    and the first step throws the whole trajectory off the data."""
    config = DiffusionConfig()
    exact = _optimal_denoiser(config)

    def slightly_wrong(x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return exact(x_t, t, cond) + 0.05

    unclipped = sample(slightly_wrong, torch.zeros(500, 8), range(500), config, steps=50)
    clipped = sample(slightly_wrong, torch.zeros(500, 8), range(500), config, steps=50, clip_x0=5.0)
    assert abs(unclipped.mean().item() - MU) > 3
    assert clipped.abs().max() <= 5.0
    assert clipped.mean().item() == pytest.approx(MU, abs=0.3)
