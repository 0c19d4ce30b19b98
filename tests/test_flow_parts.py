"""The parts of the flows that need no Prefect server: cache keys and task runners."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from prefect.task_runners import ThreadPoolTaskRunner

from flows import tasks
from flows.runners import task_runner
from flows.tasks import StoreContentKey
from pipeline.errors import ConfigError
from pipeline.steps import RunSpec, evaluation_id
from stores.results_store import metrics_url


def _key(name: str, **inputs: object) -> str | None:
    context = SimpleNamespace(task=SimpleNamespace(name=name))
    return StoreContentKey().compute_key(context, inputs, {})  # type: ignore[arg-type]


def test_cache_keys_follow_the_inputs_and_the_code_version(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = RunSpec(store="/s")
    key = _key("restore", spec=spec, dataset="demo-cls", restorer_id="dit-a")
    assert key == _key("restore", spec=RunSpec(store="/s"), dataset="demo-cls", restorer_id="dit-a")
    assert key != _key("restore", spec=spec, dataset="demo-cls", restorer_id="dit-b")  # retrained DiT
    assert key != _key("evaluate", spec=spec, dataset="demo-cls", restorer_id="dit-a")
    assert key != _key("restore", spec=RunSpec(store="/s", config="demo-small"), dataset="demo-cls",
                       restorer_id="dit-a")  # fmt: skip
    monkeypatch.setattr("flows.tasks.code_version", lambda: "9.9.9")
    assert key != _key("restore", spec=spec, dataset="demo-cls", restorer_id="dit-a")


def test_an_edited_config_file_changes_the_cache_keys(tmp_path) -> None:
    config = tmp_path / "mine.json"
    config.write_text('{"restore": {"knn_k": 10}}')
    spec = RunSpec(store="/s", config=str(config))
    key = _key("restore", spec=spec, dataset="demo-cls")
    assert key == _key("restore", spec=spec, dataset="demo-cls")
    config.write_text('{"restore": {"knn_k": 30}}')  # same path, other settings
    assert key != _key("restore", spec=spec, dataset="demo-cls")


def test_threads_by_default_and_a_clear_error_without_prefect_dask(monkeypatch: pytest.MonkeyPatch) -> None:
    runner = task_runner(workers=3)
    assert isinstance(runner, ThreadPoolTaskRunner) and runner._max_workers == 3
    monkeypatch.setitem(sys.modules, "prefect_dask", None)  # import fails as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'mmr-pipeline\[dask\]'"):
        task_runner(dask_address="tcp://scheduler:8786")


def test_an_evaluation_record_answers_only_while_its_results_are_in_the_store(tmp_path) -> None:
    """A record that outlived its results is dropped, so the task runs and records anew (a stale
    record would answer again once the results are back)."""
    spec = RunSpec(store=str(tmp_path))
    restoration = {"dataset": "demo-cls", "encoder_id": "e", "restorer_key": "zero", "eta": 0.7,
                   "missing_type": "both", "mask_seed": 0}  # fmt: skip
    records = tmp_path / "records"
    records.mkdir()
    policy = StoreContentKey(artefact_stored=tasks.evaluation_stored, records=str(records))
    context = SimpleNamespace(task=SimpleNamespace(name="evaluate"))
    inputs = {"spec": spec, "restoration": restoration}
    key = _key("evaluate", **inputs)
    assert key is not None
    results = Path(metrics_url(spec.store, evaluation_id(spec, restoration, 0)))
    results.parent.mkdir(parents=True)
    results.write_bytes(b"")
    (records / key).write_text("{}")
    assert policy.compute_key(context, inputs, {}) == key  # type: ignore[arg-type]
    assert (records / key).exists()  # results in the store: the record answers
    results.unlink()  # results cleared to benchmark again
    assert policy.compute_key(context, inputs, {}) == key  # type: ignore[arg-type]
    assert not (records / key).exists()
    unrecorded = StoreContentKey(artefact_stored=tasks.evaluation_stored)
    assert unrecorded.compute_key(context, inputs, {}) is None  # type: ignore[arg-type]
