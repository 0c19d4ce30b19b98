"""Configs: named presets and files lay their values over the demo's, at any depth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.config import (
    DIT_SIZE,
    TRAINING_BUDGET,
    PipelineConfig,
    load_config,
    paper_method,
    preset_names,
    restorer_settings,
)
from pipeline.errors import ConfigError
from pipeline.restoration import RestoreSettings
from pipeline.training.restorer import TrainConfig


def test_a_file_changes_what_it_names_and_keeps_the_demos_other_settings(tmp_path: Path) -> None:
    path = tmp_path / "k30.json"
    path.write_text(json.dumps({"restore": {"knn_k": 30}, "restorer": {"dit": {"depth": 2}}}))
    config, demo = load_config(str(path)), PipelineConfig()
    assert config.restore == demo.restore.model_copy(update={"knn_k": 30})
    # The demo's sampling is not the class defaults' (S = 50 from N(0, I), not recentred).
    assert (config.restore.steps, config.restore.temperature, config.restore.recentre) == (1, 0.0, True)
    assert config.restorer.dit == demo.restorer.dit.model_copy(update={"depth": 2})
    assert config.restorer.diffusion.prediction == "v_prediction"
    assert config.decoder == demo.decoder


def test_the_presets_state_what_differs_from_the_demo() -> None:
    assert {"demo", "demo-small", "paper"} <= set(preset_names())
    assert load_config("demo") == PipelineConfig()
    paper = load_config("paper")
    # The paper's method: eps prediction, S = 50 from N(0, I), zero-shot, its decoder recipe.
    assert paper.restorer.diffusion.prediction == "epsilon"
    assert (paper.restore.steps, paper.restore.temperature, paper.restore.recentre) == (50, 1.0, False)
    assert (paper.decoder.lr, paper.decoder.decoder.width) == (5e-4, 256)


def _assert_the_papers_method(train: TrainConfig, restore: RestoreSettings) -> None:
    """Every value of the method as the paper writes it (sections 3 and 4.2, eqs. 1 and 7 to 10)."""
    assert train.diffusion.prediction == "epsilon"  # eq. 7: the noise
    assert train.diffusion.train_steps == 1000
    assert train.diffusion.beta_schedule == "linear"  # not stated; DiT's, which the paper builds on
    assert (train.dit.gating, train.dit.gate_bias_init, train.dit.retrieved) == ("gating", -5.0, 0)
    assert train.dit.feature_dim is None  # the encoder's, from the feature store
    assert (train.stages, train.tau) == (2, 50)
    assert train.mutual_timesteps == "batch"  # eq. 9 on the batch's own samples at t < tau
    assert train.mutual_rows is None  # the whole batch
    assert (restore.steps, restore.sampler, restore.temperature, restore.samples) == (50, "ddim", 1.0, 1)
    assert not restore.clip_x0 and not restore.recentre  # z_T ~ N(0, I), zero-shot, nothing clipped


def test_the_paper_preset_is_the_paper_and_only_the_paper() -> None:
    paper = load_config("paper")
    _assert_the_papers_method(paper.restorer, paper.restore)
    assert (paper.restorer.dit.depth, paper.restorer.dit.n_tokens) == (20, 16)
    assert (paper.restorer.stage1_epochs, paper.restorer.stage2_epochs) == (40, 20)
    assert (paper.restorer.lr, paper.restorer.batch_size) == (1e-4, 256)
    # Under `paper`, dit-paper is the preset's own DiT, and so is dit.
    assert paper_method(paper) == (paper.restorer, paper.restore)
    assert restorer_settings(paper, "dit") == restorer_settings(paper, "dit-paper")


@pytest.mark.parametrize("preset", ["demo", "demo-small"])
def test_dit_paper_is_the_papers_method_at_the_configs_size_and_budget(preset: str) -> None:
    config = load_config(preset)
    train, restore = paper_method(config)
    _assert_the_papers_method(train, restore)
    ours = config.restorer
    assert train.dit.model_dump(include=set(DIT_SIZE)) == ours.dit.model_dump(include=set(DIT_SIZE))
    assert train.model_dump(include=set(TRAINING_BUDGET)) == ours.model_dump(include=set(TRAINING_BUDGET))
    assert restore.batch_size == config.restore.batch_size
    # `--no-recentre` / `--recentre` are about `dit`; the paper's method is zero-shot either way.
    assert paper_method(load_config(preset, recentre=True)) == (train, restore)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ('{"restore": {"knn_k": 0}}', "knn_k"),
        ('{"restore": {"typo": 1}}', "typo"),
        ("[1, 2]", "JSON object"),
        ("{", "invalid"),
    ],
)
def test_a_bad_file_is_one_clear_error(tmp_path: Path, text: str, names: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=names) as error:
        load_config(str(path))
    assert str(path) in str(error.value) and "fix the file" in str(error.value)
    assert "\n" not in str(error.value)
