"""Restorers: reproducible DiT restorations, and what each baseline returns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.diffusion.core import DiffusionConfig
from pipeline.errors import ConfigError
from pipeline.models.dit import ConditionalDiT, DiTConfig
from pipeline.restoration import (
    RestoreSettings,
    build_restorer,
    recentring_shift,
    restored_by,
    restorer_key,
    train_means,
)
from pipeline.restorers import (
    DiffusionRestorer,
    KnnRestorer,
    MeanRestorer,
    OracleRestorer,
    RecentredRestorer,
    RegressionRestorer,
    SwapRestorer,
    ZeroRestorer,
    mean_cosine,
    missing_and_available,
)
from stores.restoration_store import all_rows_key

CONFIG = DiTConfig(feature_dim=16, n_tokens=4, width=16, depth=2, heads=2)


def _restorer(
    batch_size: int, seed: int = 0, n_samples: int = 1, steps: int = 10, temperature: float = 1.0
) -> DiffusionRestorer:
    torch.manual_seed(0)
    models = {"i2t": ConditionalDiT(CONFIG), "t2i": ConditionalDiT(CONFIG)}
    for model in models.values():
        torch.nn.init.normal_(model.final.weight, std=0.05)
        model.eval()
    return DiffusionRestorer(
        models, DiffusionConfig(prediction="v_prediction"), steps=steps, batch_size=batch_size, seed=seed,
        n_samples=n_samples, temperature=temperature,
    )  # fmt: skip


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


def test_temperature_zero_restores_the_x0_estimate_from_the_noises_mean_whatever_the_seed() -> None:
    """At S = 1 and temperature 0 a v-predictor restores sqrt(abar_T) 0 - sqrt(1 - abar_T) v(0, T, c):
    one deterministic pass, the same for every seed; at temperature 1 the seed moves it."""
    available, rows = _features(12), np.arange(12)
    mean_estimate = _restorer(12, seed=0, steps=1, temperature=0.0).restore(available, "i2t", rows)
    np.testing.assert_array_equal(
        mean_estimate, _restorer(12, seed=5, steps=1, temperature=0.0).restore(available, "i2t", rows)
    )
    model = _restorer(12).models["i2t"]
    t = torch.full((12,), 999)
    cond = torch.from_numpy(available) * 4.0  # diffusion space: sqrt(D) z, D = 16
    with torch.no_grad():
        v = model(torch.zeros(12, 16), t, cond)
    # abar_999 = 2.4e-9: the x0 estimate is -sqrt(1 - abar) v to float precision.
    np.testing.assert_allclose(mean_estimate, (-v / 4.0).numpy(), rtol=1e-4, atol=1e-6)
    drawn = _restorer(12, seed=0, steps=1).restore(available, "i2t", rows)
    assert np.abs(drawn - _restorer(12, seed=5, steps=1).restore(available, "i2t", rows)).max() > 1e-3


def test_temperature_zero_with_several_draws_is_refused() -> None:
    with pytest.raises(ValueError, match="set samples to 1"):
        RestoreSettings(temperature=0.0, samples=4)


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


def _downstream(n: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    image, text = _features(n), _features(n + 1)[1:]
    features = {"image_emb": image, "text_emb": text + 0.5,  # a downstream text mean of its own
                "image_present": np.ones(n, bool), "text_present": np.ones(n, bool)}  # fmt: skip
    return features, np.array(["train", "test"] * (n // 2))


def test_statistics_come_only_from_train_features_the_protocol_leaves() -> None:
    features, splits = _downstream(40)
    features["text_present"][:10] = False  # masked away on these train and test rows
    kept = (splits == "train") & features["text_present"]
    means = train_means(features, splits)
    np.testing.assert_allclose(means["text"], features["text_emb"][kept].mean(axis=0), rtol=1e-6)
    restored = build_restorer("mean", RestoreSettings(), features, splits, None, None).restore(
        features["image_emb"][:3], "i2t", [0, 1, 2]
    )
    np.testing.assert_allclose(restored[0], means["text"], rtol=1e-6)


def test_recentring_moves_a_restorers_mean_output_on_the_train_rows_to_the_train_mean() -> None:
    features, splits = _downstream(40)
    features["image_present"][[0, 2]] = False  # train rows the mask left without an image
    features["text_present"][[4, 6, 8]] = False  # and without a text
    corpus = (_features(60), _features(61)[1:])
    rows = np.arange(40)
    raw = build_restorer("knn", RestoreSettings(knn_k=3), features, splits, corpus, None)
    recentred = build_restorer("knn", RestoreSettings(knn_k=3, recentre=True), features, splits, corpus, None)
    sources = np.flatnonzero((splits == "train") & features["image_present"])
    restored_train = raw.restore(features["image_emb"][sources], "i2t", sources)
    shift = train_means(features, splits)["text"] - restored_train.mean(axis=0)
    out_raw = raw.restore(features["image_emb"], "i2t", rows)
    out_recentred = recentred.restore(features["image_emb"], "i2t", rows)
    np.testing.assert_allclose(out_recentred - out_raw, np.broadcast_to(shift, out_raw.shape), atol=1e-5)
    # On the rows it was fitted on, the recentred output has the train mean.
    np.testing.assert_allclose(out_recentred[sources].mean(axis=0), train_means(features, splits)["text"],
                               atol=1e-5)  # fmt: skip
    assert (
        restorer_key("knn", RestoreSettings(recentre=True), None, "corpus.0a1b2c3d")
        == "knn-k10-corpus.0a1b2c3d-rc"
    )
    # Restorers fitted on the downstream data already sit at its mean: recentring leaves them be.
    mean_rc = build_restorer("mean", RestoreSettings(recentre=True), features, splits, corpus, None)
    assert restorer_key("mean", RestoreSettings(recentre=True), None) == "mean"
    np.testing.assert_allclose(mean_rc.restore(features["image_emb"][:1], "i2t", [0])[0],
                               train_means(features, splits)["text"], rtol=1e-6)  # fmt: skip


def test_swap_recentred_is_swap_gap() -> None:
    """Recentring is swap_gap's correction: the available feature as it is, recentred, is swap_gap."""
    features, splits = _downstream(40)
    features["image_present"][[0, 2]] = False
    features["text_present"][[4, 6]] = False
    swap = SwapRestorer()
    shifts = {
        missing_and_available(direction)[0]: recentring_shift(
            features, splits, direction, restored_by(swap, features, direction)
        )
        for direction in ("i2t", "t2i")
    }
    recentred = RecentredRestorer(swap, shifts["image"], shifts["text"])
    swap_gap = build_restorer("swap_gap", RestoreSettings(), features, splits, None, None)
    rows = np.arange(40)
    for direction in ("i2t", "t2i"):
        available = features[f"{missing_and_available(direction)[1]}_emb"]
        np.testing.assert_allclose(recentred.restore(available, direction, rows),
                                   swap_gap.restore(available, direction, rows), atol=1e-5)  # fmt: skip


def test_recentring_without_train_rows_of_the_missing_modality_says_so() -> None:
    features, splits = _downstream(20)
    features["text_present"][splits == "train"] = False
    corpus = (_features(60), _features(61)[1:])
    with pytest.raises(
        ConfigError, match=r"recentring i2t needs train rows .*--no-recentre on restore and evaluate"
    ):
        build_restorer("knn", RestoreSettings(knn_k=3, recentre=True), features, splits, corpus, None)


def test_the_restorer_key_names_the_sampling(tmp_path) -> None:
    from stores.restorer_store import RestorerStore

    trained = RestorerStore(str(tmp_path), "dit-gating-s2-0123456789ab")
    mean_start = restorer_key("dit", RestoreSettings(steps=1, temperature=0.0, clip_x0=True), trained)
    assert mean_start == "dit-gating-s2-0123456789ab-S1-ddim-cliprange-T0-seed0"
    paper = restorer_key("dit-paper", RestoreSettings(), trained)
    assert paper == "dit-gating-s2-0123456789ab-S50-ddim-seed0"


def test_the_regression_fit_ignores_what_other_threads_do_to_torchs_global_rng(monkeypatch) -> None:
    # Restore tasks run side by side in threads, and a DiT restore reseeds the global RNG when it
    # builds its models; here every loss computation reseeds it, mid-fit, as such a thread could.
    rng = np.random.default_rng(0)
    image, text = rng.normal(size=(300, 8)).astype(np.float32), rng.normal(size=(300, 8)).astype(np.float32)
    undisturbed = RegressionRestorer.fit(image, text, epochs=1, hidden=16, seed=1)
    mse_loss = torch.nn.functional.mse_loss

    def reseeding_mse_loss(*args, **kwargs):
        torch.manual_seed(999)
        return mse_loss(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "mse_loss", reseeding_mse_loss)
    disturbed = RegressionRestorer.fit(image, text, epochs=1, hidden=16, seed=1)
    for direction in ("i2t", "t2i"):
        for name, value in undisturbed.models[direction].state_dict().items():
            assert torch.equal(disturbed.models[direction].state_dict()[name], value), (direction, name)


def test_knn_and_regression_restorations_are_named_by_the_corpus_they_learn_from() -> None:
    """Before, both were `knn-k10` whatever the corpus: `--corpus B` found corpus A's restoration."""
    settings = RestoreSettings(recentre=True)
    on_a = restorer_key("knn", settings, None, "corpus-a.0a1b2c3d")
    assert restorer_key("knn", settings, None, "corpus-b.0a1b2c3d") != on_a
    assert restorer_key("knn", settings, None, "corpus-a.99999999") != on_a  # the same name, other data
    assert all_rows_key(on_a) == "knn-k10-corpus-a.0a1b2c3d"  # masks share the unshifted rows
    with pytest.raises(ConfigError, match="pass --corpus"):
        restorer_key("regression", settings, None)
