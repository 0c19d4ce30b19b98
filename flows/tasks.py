"""Prefect tasks: one thin call into `pipeline.steps` each, passing ids and paths.

Caching is by content. A task's cache key hashes its name, its inputs (the run spec, the
upstream artefact ids, the parameters), the settings the run spec's config resolves to, and the
code version; the cache records live under the store (`{store}/.prefect/results`) next to the
artefacts they stand for, so a hit holds across processes, machines and a restarted server, and
wiping the store forgets both together. A record of a restoration or an evaluation answers only
while its artefact is in the store: deleting one part of a store recomputes that part.
Every step is also idempotent on its own (it finds its committed artefact in the store), so a
remote store, whose tasks keep no cache records at all (NO_CACHE), recomputes nothing either.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE, CachePolicy
from prefect.context import TaskRunContext
from prefect.filesystems import LocalFileSystem

from pipeline import steps
from pipeline.hashing import content_id
from pipeline.steps import RunSpec
from pipeline.version import code_version
from stores.fs import is_local


@dataclass
class StoreContentKey(CachePolicy):
    """Key = hash(task name, inputs, the run spec's resolved settings, code version): the
    content id of the task's artefact.

    A record answers only while `artefact_stored(inputs)` says the artefact is in the store: an
    artefact deleted from the store (results cleared to benchmark again, say) is computed again
    instead of being answered from a record that outlived it. That record (a file under
    `records`) is dropped, so the task records what it makes now. Do not compose this policy
    with others: a compound policy would still find the record under the other parts' keys.
    """

    artefact_stored: Callable[[dict[str, Any]], bool] | None = None
    records: str | None = None  # the folder of the result storage, where a record is a file

    def compute_key(
        self,
        task_ctx: TaskRunContext,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        # A config file's path says nothing of its content: the settings it resolves to enter the
        # key, so an edited file is not answered from the records of its earlier content.
        settings = [
            value.settings().model_dump(mode="json")
            for value in inputs.values()
            if isinstance(value, RunSpec)
        ]
        key = f"{task_ctx.task.name}-{content_id(inputs, settings, code_version(), length=24)}"
        if self.artefact_stored is not None and not self.artefact_stored(inputs):
            if self.records is None:
                return None  # no record to drop: run without the cache
            (Path(self.records) / key).unlink(missing_ok=True)  # the task runs and records anew
        return key


@functools.cache
def _results_block(store: str) -> LocalFileSystem:
    """A saved LocalFileSystem block at `{store}/.prefect/results` (Prefect wants storage saved)."""
    results = (Path(store.removeprefix("file://")) / ".prefect" / "results").resolve()
    block = LocalFileSystem(basepath=str(results))
    block.save(f"mmr-results-{content_id(str(results), length=12)}", overwrite=True)
    return block


def cached(
    task_function: Any, spec: RunSpec, artefact_stored: Callable[[dict[str, Any]], bool] | None = None
) -> Any:
    """The task with its cache records under a local store (no caching beside a remote one);
    `artefact_stored(inputs)`: whether its artefact is still in the store."""
    if not is_local(spec.store):
        return task_function.with_options(cache_policy=NO_CACHE)
    storage = _results_block(spec.store)
    return task_function.with_options(
        cache_policy=StoreContentKey(artefact_stored=artefact_stored, records=storage.basepath),
        persist_result=True,
        result_storage=storage,
    )


def restoration_stored(inputs: dict[str, Any]) -> bool:
    """The `restore` task's artefact check, from its inputs."""
    return steps.restoration_stored(
        inputs["spec"], inputs["dataset"], inputs["encoder_id"], inputs["restorer"], inputs["eta"],
        inputs["missing_type"], inputs["seed"], inputs["corpus"],
    )  # fmt: skip


def evaluation_stored(inputs: dict[str, Any]) -> bool:
    """The `evaluate` task's artefact check, from its inputs."""
    return steps.evaluation_stored(inputs["spec"], inputs["restoration"])


# Not cached: the encoder's id is its weights' digest, read from the store in a fraction of a
# second; the warm-up checkpoint is the cache. A record would outlive an encoder deleted or
# replaced (a warm-up again, an overwritten checkpoint file) and answer its old id, and every
# later task, which loads the encoder itself, would then fail with "encoder changed".
@task(name="prepare-encoder", cache_policy=NO_CACHE)
def prepare_encoder(spec: RunSpec) -> str:
    return steps.prepare_encoder(spec)


@task(name="plan-extraction", cache_policy=NO_CACHE)  # reads the store's shard markers: always fresh
def plan_extraction(spec: RunSpec, dataset: str, root: str | None, encoder_id: str) -> dict[str, Any]:
    plan = steps.plan_extraction(spec, dataset, root)
    if plan["encoder_id"] != encoder_id:
        raise RuntimeError(f"encoder changed during the run: {encoder_id} -> {plan['encoder_id']}")
    return plan


# Not cached: the plan submits only uncommitted shards, and the store's commit markers are the
# record of what is encoded. A cache record would outlive a store deleted and planned again, and
# answer its shards as encoded.
@task(name="extract-shards", task_run_name="extract-{dataset}-from-shard-{shards[0]}", retries=1,
      cache_policy=NO_CACHE)  # fmt: skip
def extract_shards(spec: RunSpec, dataset: str, encoder_id: str, shards: list[int]) -> int:
    return steps.extract_shards(spec, dataset, shards)


@task(name="train-restorer", task_run_name="train-{restorer}-on-{corpus}")
def train_restorer(spec: RunSpec, corpus: str, encoder_id: str, restorer: str) -> dict[str, Any]:
    return steps.train_restorer(spec, corpus, encoder_id, restorer)


@task(name="restore", task_run_name="restore-{dataset}-{restorer}-{missing_type}-seed{seed}")
def restore(spec: RunSpec, dataset: str, encoder_id: str, restorer: str, eta: float, missing_type: str,
            seed: int, corpus: str, restorer_id: str | None) -> dict[str, Any]:  # fmt: skip
    # restorer_id is an input only so that a retrained DiT gives a new cache key.
    return steps.restore(spec, dataset, encoder_id, restorer, eta, missing_type, seed, corpus)  # type: ignore[arg-type]


@task(name="evaluate", task_run_name="evaluate-{restoration[dataset]}-{restoration[restorer]}")
def evaluate(spec: RunSpec, restoration: dict[str, Any]) -> dict[str, Any]:
    return {**steps.evaluate(spec, restoration), "restoration": _summary(restoration)}


def _summary(restoration: dict[str, Any]) -> dict[str, Any]:
    keys = ("dataset", "restorer", "restorer_key", "eta", "missing_type", "mask_seed")
    return {key: restoration[key] for key in keys}
