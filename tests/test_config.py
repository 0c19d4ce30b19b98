"""Configs: named presets and files lay their values over the demo's, at any depth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.config import PipelineConfig, load_config, preset_names
from pipeline.errors import ConfigError


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
