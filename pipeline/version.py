"""The code version that enters every content id.

It is the installed distribution's version: bump it in `pyproject.toml` whenever a change
alters what a step writes (features, checkpoints, restorations, metrics), so cached artefacts
made by older code are not reused. Comment and refactoring changes keep the caches valid.
"""

from importlib.metadata import PackageNotFoundError, version


def code_version() -> str:
    try:
        return version("mmr-pipeline")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"
