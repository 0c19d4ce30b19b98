"""Progress off a terminal: whole lines, not a silent run and not carriage-return redraws."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.models.dit import DiTConfig
from pipeline.progress import progress_bar
from pipeline.training.restorer import TrainConfig, train_restorer
from stores.restorer_store import RestorerStore


def test_off_a_terminal_a_bar_writes_whole_lines_at_its_start_and_end(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with progress_bar(total=3, desc="train restorer", unit="step") as bar:
        for _ in range(3):
            bar.update(1)  # within the log interval: no line of their own
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("train restorer:   0%") and "0/3" in lines[0]
    assert lines[1].startswith("train restorer: 100%") and "3/3" in lines[1]


def test_off_a_terminal_a_new_postfix_waits_for_the_next_line(capsys: pytest.CaptureFixture[str]) -> None:
    with progress_bar(total=5, desc="warm-up", unit="step") as bar:
        for step in range(5):
            bar.update(1)
            bar.set_postfix(loss=f"{1 / (step + 1):.3f}")  # as the training loops do, every step
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2, lines
    assert "5/5" in lines[1] and "loss=0.200" in lines[1]  # the last postfix is on the closing line


def test_training_logs_a_line_per_interval_not_a_line_per_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    images, texts = rng.normal(size=(2, 64, 8)).astype(np.float32)
    config = TrainConfig(
        dit=DiTConfig(feature_dim=8, n_tokens=2, width=16, depth=1, heads=2),
        stage1_epochs=3, stage2_epochs=0, batch_size=16, warmup_steps=1, checkpoint_every=100,
    )  # fmt: skip
    train_restorer(config, images, texts, RestorerStore(str(tmp_path), "dit-gating-s2-0123456789ab"))
    bar_lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("train restorer")]
    assert len(bar_lines) == 2, bar_lines  # 12 steps: the start and the end, not one per step


def test_a_bar_that_is_off_writes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with progress_bar(False, total=3, desc="quiet") as bar:
        bar.update(3)
    assert capsys.readouterr().err == ""
