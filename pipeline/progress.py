"""Progress bars on a terminal; elsewhere (a pipe, a log file, a Prefect worker's log) one
plain line per bar every half minute, so a long run shows where it is instead of nothing."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from tqdm.auto import tqdm

LOG_INTERVAL_S = 30.0


class _Lines:
    """A file for tqdm off a terminal: each redraw becomes a whole line (no carriage returns)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        line = text.replace("\r", "").strip()
        if line:
            self.stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


class _LogBar(tqdm):
    """A bar off a terminal: a new postfix (the loss of each step) waits for the next line
    instead of writing one of its own, which would bypass the interval."""

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None:
        super().set_postfix(ordered_dict, refresh=False, **kwargs)


def progress_bar(enabled: bool = True, **options: Any) -> tqdm:
    """A tqdm bar; off when not `enabled`; lines every `LOG_INTERVAL_S` off a terminal."""
    if not enabled:
        return tqdm(disable=True, **options)
    stream = sys.stderr
    if stream.isatty():
        return tqdm(file=stream, **options)
    # tqdm's monitor thread forces a line whenever `maxinterval` (10 s by default) passes without
    # one, which put extra lines between the interval's; at the interval it only steps in when the
    # steps slow down and tqdm's step count between lines is not reached.
    return _LogBar(
        file=_Lines(stream), mininterval=LOG_INTERVAL_S, maxinterval=LOG_INTERVAL_S, ascii=True, **options
    )
