"""Progress off a terminal: whole lines, not a silent run and not carriage-return redraws."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
import tqdm.std
from tqdm import TMonitor

from pipeline.models.dit import DiTConfig
from pipeline.progress import _LogBar, progress_bar
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


class _Clock:
    """Simulated time for a bar and its monitor thread: a minute's run takes a fraction of a second."""

    def __init__(self) -> None:
        # Starting from now: a monitor left by an earlier bar reads the real clock, and must not take
        # this bar's last line for one long ago. Whole seconds keep the 30-s gaps exact in floats.
        self.start = float(int(time.time()))
        self.tenths = 0

    def __call__(self) -> float:
        return self.start + self.tenths / 10


def test_off_a_terminal_the_monitor_thread_adds_no_line_between_the_intervals(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """65 s at 10 steps a second: before, tqdm's monitor (its default `maxinterval`, 10 s) forced a
    line 10 or 20 s after the one at 30 s."""
    clock = _Clock()
    monkeypatch.setattr(tqdm.std, "time", clock)  # the bar's clock
    monkeypatch.setitem(TMonitor._test, "time", clock)  # its monitor's
    monkeypatch.setattr(_LogBar, "monitor", None)  # so the bar starts a monitor with this clock
    monkeypatch.setattr(_LogBar, "monitor_interval", 0.002)  # real seconds between the monitor's checks
    bar = progress_bar(total=650, desc="train restorer", unit="step")
    monitor = _LogBar.monitor
    try:
        with bar:
            for _ in range(65):
                with bar.get_lock():  # the monitor checks between simulated seconds, as it would at 10 s
                    for _ in range(10):
                        clock.tenths += 1
                        bar.update(1)
                deadline = time.monotonic() + 10
                while monitor.woken < clock():  # `woken` is set after a check: wait for this second's
                    assert time.monotonic() < deadline, "the monitor thread did not check the bar"
                    time.sleep(0.001)
    finally:
        monitor.exit()
    lines = capsys.readouterr().err.splitlines()
    elapsed = [match[1] for line in lines if (match := re.search(r"\[(\d\d:\d\d)<", line))]
    assert elapsed == ["00:00", "00:30", "01:00", "01:05"], lines


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
