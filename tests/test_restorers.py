"""Restorers: reproducible DiT restorations, and what each baseline returns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.diffusion.core import DiffusionConfig
from pipeline.models.dit import ConditionalDiT, DiTConfig
from pipeline.restorers import (
    DiffusionRestorer,
    KnnRestorer,
    MeanRestorer,
    OracleRestorer,
    SwapRestorer,
    ZeroRestorer,
    mean_cosine,
)

CONFIG = DiTConfig(feature_dim=16, n_tokens=4, width=16, depth=2, heads=2)


def _restorer(batch_size: int, seed: int = 0, n_samples: int = 1) -> DiffusionRestorer:
    torch.manual_seed(0)
    models = {"i2t": ConditionalDiT(CONFIG), "t2i": ConditionalDiT(CONFIG)}
    for model in models.values():
        torch.nn.init.normal_(model.final.weight, std=0.05)
        model.eval()
    return DiffusionRestorer(
        models, DiffusionConfig(), steps=10, batch_size=batch_size, seed=seed, n_samples=n_samples
    )


def _features(n: int) -> np.ndarray:
    raw = np.random.default_rng(0).normal(size=(n, 16)).astype(np.float32)
    return raw / np.linalg.norm(raw, axis=1, keepdims=True)


def test_same_seed_same_restoration_on_repeat_and_across_batch_sizes() -> None:
    available, rows = _features(37), np.arange(100, 137)
    first = _restorer(batch_size=37).restore(available, "i2t", rows)
    np.testing.assert_array_equal(first, _restorer(batch_size=37).restore(available, "i2t", rows))
    # Float sums may round differently with the batch shape; the result must not otherwise change.
    for batch_size in (1, 5, 16):
        np.testing.assert_allclose(
            _restorer(batch_size).restore(available, "i2t", rows), first, rtol=1e-4, atol=1e-4
        )
    # A sample's restoration depends on its own row, not on which other samples share its batch.
    np.testing.assert_allclose(_restorer(8).restore(available[3:4], "i2t", rows[3:4]), first[3:4], rtol=1e-4)
    other_seed = _restorer(batch_size=37, seed=1).restore(available, "i2t", rows)
    assert np.abs(other_seed - first).max() > 1e-3


def test_averaged_draws_are_independent_draws() -> None:
    """K draws use K different noises: their average is not the first draw, and it is the
    mean of the single draws that the same (seed, row, draw) keys give."""
    available, rows = _features(20), np.arange(20)
    one = _restorer(batch_size=20).restore(available, "i2t", rows)
    four = _restorer(batch_size=20, n_samples=4).restore(available, "i2t", rows)
    assert np.abs(four - one).max() > 1e-3
    # Averaging pulls the draws towards each other: the average has a smaller norm than a draw.
    assert np.linalg.norm(four, axis=1).mean() < np.linalg.norm(one, axis=1).mean()


class StandardNormalDenoiser(torch.nn.Module):
    """The optimal eps-predictor when x0 ~ N(0, I): eps_hat = sqrt(1 - abar_t) x_t."""

    def __init__(self) -> None:
        super().__init__()
        from pipeline.diffusion.core import training_scheduler

        self.alphas_cumprod = training_scheduler(DiffusionConfig()).alphas_cumprod

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return (1 - self.alphas_cumprod[t].float())[:, None].sqrt() * x_t


def test_restored_features_come_back_in_clip_scale() -> None:
    """Diffusion space has unit variance per dimension (norm ~ sqrt(D)); CLIP features norm ~ 1."""
    restorer = DiffusionRestorer(
        {"t2i": StandardNormalDenoiser()}, DiffusionConfig(), steps=50, batch_size=256
    )
    out = restorer.restore(_features(2000), "t2i", np.arange(2000))
    assert out.shape == (2000, 16)
    assert np.linalg.norm(out, axis=1).mean() == pytest.approx(1.0, abs=0.05)


def test_baselines() -> None:
    image, text = _features(50), _features(51)[1:]
    rows = np.arange(10)
    np.testing.assert_array_equal(ZeroRestorer().restore(image[:10], "i2t", rows), 0)
    mean = MeanRestorer(image.mean(0), text.mean(0)).restore(image[:10], "i2t", rows)
    np.testing.assert_allclose(mean, np.broadcast_to(text.mean(0), (10, 16)))
    np.testing.assert_array_equal(SwapRestorer().restore(image[:10], "i2t", rows), image[:10])
    gap = SwapRestorer(image.mean(0), text.mean(0)).restore(image[:10], "i2t", rows)
    np.testing.assert_allclose(gap, image[:10] + text.mean(0) - image.mean(0), rtol=1e-6)
    np.testing.assert_array_equal(
        OracleRestorer(image, text).restore(image[:10], "t2i", rows + 5), image[5:15]
    )
    # k = 1 retrieval returns the partner of the nearest corpus neighbour: itself, here.
    np.testing.assert_allclose(KnnRestorer(image, text, k=1).restore(image[:10], "i2t", rows), text[:10])
    assert mean_cosine(text[:10], text[:10]) == pytest.approx(1.0)
    assert mean_cosine(text[:10], -text[:10]) == pytest.approx(-1.0)
