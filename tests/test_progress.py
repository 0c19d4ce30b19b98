"""Progress off a terminal: whole lines, not a silent run and not carriage-return redraws."""

from __future__ import annotations

import pytest

from pipeline.progress import progress_bar


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


def test_a_bar_that_is_off_writes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with progress_bar(False, total=3, desc="quiet") as bar:
        bar.update(3)
    assert capsys.readouterr().err == ""
