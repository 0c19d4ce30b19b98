"""Task runners: threads by default, a Dask cluster when its scheduler address is given."""

from __future__ import annotations

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from pipeline.errors import ConfigError


def task_runner(workers: int = 1, dask_address: str | None = None) -> TaskRunner:
    if dask_address is None:
        return ThreadPoolTaskRunner(max_workers=workers)
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError:
        raise ConfigError("--dask-address needs prefect-dask: pip install 'mmr-pipeline[dask]'") from None
    return DaskTaskRunner(address=dask_address)
