"""Restorer training: the mutual-learning loss, and a killed run that resumes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.diffusion.core import DiffusionConfig, training_scheduler
from pipeline.models.dit import ConditionalDiT, DiTConfig
from pipeline.training.losses import mutual_terms
from stores.restorer_store import RestorerStore

SMALL = DiTConfig(feature_dim=16, n_tokens=4, width=16, depth=2, heads=2)


def _models() -> tuple[ConditionalDiT, ConditionalDiT]:
    torch.manual_seed(0)
    models = ConditionalDiT(SMALL), ConditionalDiT(SMALL)
    for model in models:  # a trained-like output layer, so gradients reach every part
        torch.nn.init.normal_(model.final.weight, std=0.1)
    return models


def _inputs(t: torch.Tensor) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(1)
    return tuple(torch.randn(len(t), 16, generator=generator) for _ in range(4))


def _mutual_loss(*args: object, **kwargs: object) -> torch.Tensor:
    """L_mutual as training uses it: the sum of both consistency terms."""
    return sum(mutual_terms(*args, **kwargs))


def _grad_norm(model: torch.nn.Module) -> float:
    return sum(float(p.grad.abs().sum()) for p in model.parameters() if p.grad is not None)


def test_mutual_loss_is_zero_and_gradient_free_when_no_t_is_below_tau() -> None:
    i2t, t2i = _models()
    scheduler = training_scheduler(DiffusionConfig())
    t = torch.tensor([50, 60, 999, 400])
    loss = _mutual_loss(i2t, t2i, scheduler, *_inputs(t)[:2], t, *_inputs(t)[2:], tau=50)
    assert loss.item() == 0.0 and not loss.requires_grad


def test_mutual_loss_uses_only_samples_below_tau() -> None:
    i2t, t2i = _models()
    scheduler = training_scheduler(DiffusionConfig())
    image, text, noise_image, noise_text = _inputs(torch.zeros(4))
    mixed = _mutual_loss(i2t, t2i, scheduler, image, text, torch.tensor([3, 900, 10, 700]), noise_image,
                        noise_text, tau=50)  # fmt: skip
    keep = torch.tensor([0, 2])
    only_low = _mutual_loss(i2t, t2i, scheduler, image[keep], text[keep], torch.tensor([3, 10]), noise_image[keep],
                           noise_text[keep], tau=50)  # fmt: skip
    torch.testing.assert_close(mixed, only_low)


def test_each_mutual_term_trains_the_other_direction_through_x0_hat() -> None:
    """The I2T term conditions on T2I's x0_hat: its gradient must reach T2I (and vice versa)."""
    scheduler = training_scheduler(DiffusionConfig())
    t = torch.tensor([1, 5, 20, 49])
    for which in (0, 1):
        i2t, t2i = _models()
        terms = mutual_terms(i2t, t2i, scheduler, *_inputs(t)[:2], t, *_inputs(t)[2:], tau=50)
        terms[which].backward()
        assert _grad_norm(i2t) > 0 and _grad_norm(t2i) > 0


@pytest.mark.parametrize("mutual_rows", [None, 5])
def test_stage_two_mutual_terms_see_the_first_mutual_rows_of_each_batch(
    mutual_rows: int | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stage 1 has no mutual terms; in stage 2 they see the batch's first `mutual_rows` rows
    (all of them when None), with their retrieved partners."""
    from pipeline.training import restorer

    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def recording(i2t, t2i, scheduler, image, text, t, *args: object) -> tuple[torch.Tensor, torch.Tensor]:
        seen.append((image, args[-2]))  # the image rows and I2T's retrieved partners
        return mutual_terms(i2t, t2i, scheduler, image, text, t, *args)

    monkeypatch.setattr(restorer, "mutual_terms", recording)
    images, texts = np.random.default_rng(0).normal(size=(2, 48, 16)).astype(np.float32)
    config = restorer.TrainConfig(
        dit=SMALL.model_copy(update={"retrieved": 2}), stage1_epochs=1, stage2_epochs=1, batch_size=16,
        warmup_steps=1, checkpoint_every=100, mutual_rows=mutual_rows,
    )  # fmt: skip
    restorer.train_restorer(config, images, texts, RestorerStore(str(tmp_path), "dit-gating-s2-0123456789ab"),
                            progress=False)  # fmt: skip
    assert len(seen) == 3  # three stage-2 steps of 48 / 16, none in stage 1
    diffusion_images = restorer.to_diffusion_space(torch.from_numpy(images))
    for step, (image, partners) in enumerate(seen, start=3):
        batch = restorer.batch_indices(48, 16, config.seed, step)[: mutual_rows or 16]
        torch.testing.assert_close(image, diffusion_images[batch])
        assert partners.shape == (len(batch), 2 * 16)


def test_under_the_papers_setting_the_mutual_terms_see_exactly_the_batchs_samples_below_tau(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eq. 9 as written: the stage-2 batch's own samples whose t < tau, at their own noise."""
    from pipeline.training import restorer

    seen: list[tuple[torch.Tensor, ...]] = []
    drawn: list[tuple[torch.Tensor, ...]] = []
    base_loss = restorer.base_loss

    def recording_base(model, scheduler, target, cond, t, noise):  # type: ignore[no-untyped-def]
        drawn.append((target, t, noise))
        return base_loss(model, scheduler, target, cond, t, noise)

    def recording(i2t, t2i, scheduler, image, text, t, noise_image, noise_text, *args: object):  # type: ignore[no-untyped-def]
        seen.append((image, text, t, noise_image, noise_text))
        return mutual_terms(i2t, t2i, scheduler, image, text, t, noise_image, noise_text, *args)

    monkeypatch.setattr(restorer, "base_loss", recording_base)
    monkeypatch.setattr(restorer, "mutual_terms", recording)
    images, texts = np.random.default_rng(0).normal(size=(2, 64, 16)).astype(np.float32)
    # tau = 400 of T = 1000: a 32-row batch has rows on both sides of it at every step.
    config = restorer.TrainConfig(dit=SMALL, stage1_epochs=1, stage2_epochs=1, batch_size=32, warmup_steps=1,
                                  checkpoint_every=100, tau=400)  # fmt: skip
    assert (config.mutual_timesteps, config.mutual_rows) == ("batch", None)  # the paper's, by default
    restorer.train_restorer(config, images, texts, RestorerStore(str(tmp_path), "dit-gating-s2-0123456789ab"),
                            progress=False)  # fmt: skip
    assert len(seen) == 2  # the two stage-2 steps
    for step, (image, text, t, noise_image, noise_text) in enumerate(seen, start=2):
        (text_target, t_batch, noise_t), (image_target, _, noise_i) = drawn[2 * step], drawn[2 * step + 1]
        below = t_batch < config.tau
        assert 0 < int(below.sum()) < len(t_batch)
        # mutual_terms gets the batch and keeps its rows with t < tau: exactly those, nothing redrawn.
        torch.testing.assert_close(t, t_batch)
        torch.testing.assert_close(image, image_target)
        torch.testing.assert_close(text, text_target)
        torch.testing.assert_close(noise_image, noise_i)
        torch.testing.assert_close(noise_text, noise_t)


def test_the_trained_restorer_records_the_range_of_its_training_targets(tmp_path: Path) -> None:
    from pipeline.training import restorer

    rng = np.random.default_rng(0)
    images, texts = rng.normal(size=(2, 32, 16)).astype(np.float32)
    texts[3, 5] = 4.0  # the largest text coordinate
    store = RestorerStore(str(tmp_path), "dit-gating-s2-0123456789ab")
    config = restorer.TrainConfig(dit=SMALL, stage1_epochs=1, stage2_epochs=0, batch_size=16, warmup_steps=1)
    restorer.train_restorer(config, images, texts, store, progress=False)
    x0_range = restorer.load_restorer_models(store).x0_range
    assert x0_range["i2t"] == pytest.approx(4.0 * 4)  # diffusion space: sqrt(D) = 4 times the feature
    assert x0_range["t2i"] == pytest.approx(float(np.abs(images).max()) * 4)


def _train_command(config: Path, store: Path) -> list[str]:
    return [sys.executable, "-m", "flows.cli", "train", "--corpus", "demo", "--config", str(config),
            "--store", str(store)]  # fmt: skip


@pytest.fixture()
def tiny_training_config(small_config, tmp_path: Path) -> Path:
    settings = small_config.model_dump(mode="json")
    settings["restorer"].update(stage1_epochs=6, stage2_epochs=2, checkpoint_every=15, batch_size=64)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(settings))
    return path


def _losses(store_root: Path) -> tuple[RestorerStore, dict[int, dict]]:
    (restorer_id,) = [p.name for p in (store_root / "restorers").iterdir()]
    store = RestorerStore(str(store_root), restorer_id)
    return store, {row["step"]: row for row in store.read_losses().to_pylist()}


def test_killed_training_resumes_from_its_checkpoint_and_continues_the_loss_curve(
    warm_store: Path, tmp_path: Path, tiny_training_config: Path
) -> None:
    import shutil

    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    for root in (reference, resumed):
        shutil.copytree(warm_store / "encoders", root / "encoders")
    subprocess.run(_train_command(tiny_training_config, reference), check=True, capture_output=True)
    expected_store, expected = _losses(reference)
    total = max(expected)
    assert expected_store.is_complete() and total > 45

    process = subprocess.Popen(_train_command(tiny_training_config, resumed), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 300
    pointer = resumed / "restorers"
    while time.monotonic() < deadline and process.poll() is None:
        found = list(pointer.glob("*/latest.json"))
        if found and json.loads(found[0].read_text())["step"] >= 30:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    store, _ = _losses(resumed)
    stopped_at = json.loads((Path(store.url) / "latest.json").read_text())["step"]
    assert 30 <= stopped_at < total, "the kill must land mid-training"

    rerun = subprocess.run(
        _train_command(tiny_training_config, resumed), check=True, capture_output=True, text=True
    )
    assert f"steps {stopped_at} -> {total}" in rerun.stdout
    _, actual = _losses(resumed)
    assert sorted(actual) == list(range(1, total + 1))  # every step logged once, none restarted
    for step in range(1, total + 1):  # the resumed curve is the uninterrupted one
        np.testing.assert_allclose(
            actual[step]["loss_total"], expected[step]["loss_total"], rtol=1e-4, atol=1e-6
        )
    assert any(row["stage"] == 2 and row["loss_mutual"] > 0 for row in actual.values())
