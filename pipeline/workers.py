"""Worker processes (loader workers, decoder trainers): started from the fork server, and ended
when the process that made them is gone."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time

# The pipeline works inside Prefect's task threads, beside torch's thread pools and the log
# handlers; a fork taken while another thread holds a lock can leave the child waiting forever
# (the likely cause of one CI hang in about twenty runs). Workers start from a fork server.
FORK_SERVER = multiprocessing.get_context("forkserver")


def exit_when_gone(owner: int) -> None:
    """Worker init: end this worker once process `owner` is gone.

    A fork-server worker's parent is the fork server, so a check of the parent (torch's
    loaders have one) never fires, and a worker keeps the fork server alive in turn. Without
    this watch, a killed run would leave both running for good.
    """

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(owner, 0)
            except ProcessLookupError:
                os._exit(0)

    threading.Thread(target=watch, name="watch-owner", daemon=True).start()
