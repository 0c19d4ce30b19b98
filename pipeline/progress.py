"""Progress bars that show on a terminal and stay out of log files."""

from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm


def progress_bar(enabled: bool = True, **options: Any) -> tqdm:
    """A tqdm bar; off when not `enabled`, and off when stderr is not a terminal (tqdm's None)."""
    return tqdm(disable=None if enabled else True, **options)
