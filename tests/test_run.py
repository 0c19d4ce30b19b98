"""`mmr-pipeline run`: the whole benchmark as a Prefect flow in ephemeral mode, cached by content.

Runs the real CLI in a subprocess (its own Prefect home under the store), on demo-small settings.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stores.checkpoints import load_checkpoint, save_checkpoint
from stores.feature_store import FeatureStore
from stores.results_store import query

RUN = [sys.executable, "-m", "flows.cli", "run", "--config", "demo-small", "--seeds", "0"]


def _run(store: Path, *extra: str, timeout: int = 600) -> str:
    done = subprocess.run(
        [*RUN, "--store", str(store), *extra], capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_run_prints_the_table_and_a_rerun_recomputes_nothing(warm_store: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(warm_store / "encoders", store / "encoders")
    options = ["--restorers", "zero,mean,dit,oracle", "--missing-types", "image,both"]
    first = _run(store, *options)
    assert "16 evaluations, 16 computed now" in first
    for restorer in ("zero", "mean", "dit", "oracle"):
        assert re.search(rf"^\| {restorer} \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \|$", first, re.M), first
    assert (
        store / "reports" / "demo-small" / "benchmark-eta0.70.md"
    ).exists()  # --config demo-small's folder
    assert f"report in {store / 'reports' / 'demo-small'}" in first
    assert (store / ".prefect").is_dir()  # Prefect's ephemeral state lives under the store
    _, rows = query(str(store), "SELECT count(DISTINCT run_id) FROM metrics")
    assert rows == [(16,)]

    second = _run(store, *options)
    assert "16 evaluations, 0 computed now" in second and "already trained" in second
    assert query(str(store), "SELECT count(DISTINCT run_id) FROM metrics")[1] == [(16,)]  # nothing appended
    table = lambda out: out[out.index("## Missing rate") :].split("\n\n## Gap")[0]  # noqa: E731
    assert table(second) == table(first)

    # A feature store deleted (as a refusal tells the user to) is encoded again, not answered
    # from the cache records of its shards.
    features = next((store / "features" / "demo-cls").iterdir())
    shutil.rmtree(features)
    third = _run(store, *options)
    assert FeatureStore(str(store), "demo-cls", features.name).is_complete()
    assert table(third) == table(first)

    # Restorations and results cleared to benchmark again are computed again, not answered
    # from the cache records that outlived them.
    shutil.rmtree(store / "restorations")
    shutil.rmtree(store / "results")
    fourth = _run(store, *options)
    assert "16 evaluations, 16 computed now" in fourth
    assert table(fourth) == table(first)

    # An encoder replaced in the store (warmed up again where torch is not bit-identical) is
    # the run's encoder from then on: its features are extracted, not refused as "changed".
    (encoder,) = (store / "encoders").iterdir()
    tensors, meta = load_checkpoint(str(encoder))
    name = next(iter(tensors))
    save_checkpoint(str(encoder), {**tensors, name: tensors[name] + 1e-3}, meta)
    _run(store, "--restorers", "zero,knn", "--missing-types", "image", "--no-recentre")
    encoders = {path.name for path in (store / "features" / "demo-cls").iterdir()}
    assert len(encoders) == 2 and features.name in encoders
    assert all(FeatureStore(str(store), "demo-cls", name).is_complete() for name in encoders)
    _, knn = query(str(store), "SELECT dataset, variant FROM metrics WHERE restorer = 'knn' GROUP BY ALL")
    assert {dataset for dataset, _ in knn} == {"demo-cls", "demo-tags"}
    assert not [variant for _, variant in knn if "-rc" in variant]  # demo-small's config recentres


@pytest.mark.slow
def test_a_run_killed_during_training_resumes_from_its_last_checkpoint(
    warm_store: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    shutil.copytree(warm_store / "encoders", store / "encoders")
    options = ["--restorers", "zero,dit", "--missing-types", "both"]
    process = subprocess.Popen([*RUN, "--store", str(store), *options], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    checkpoint_step = 0
    try:
        deadline = time.monotonic() + 400
        while checkpoint_step == 0 and time.monotonic() < deadline and process.poll() is None:
            for pointer in store.glob("restorers/*/latest.json"):
                state = json.loads(pointer.read_text())
                if not state["complete"] and state["step"] > 0:
                    checkpoint_step = state["step"]
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert checkpoint_step > 0, "training never wrote a checkpoint before it finished"

    out = _run(store, *options)
    resumed = re.search(r"trained steps (\d+) -> (\d+)", out)
    assert resumed, out
    assert int(resumed.group(1)) >= checkpoint_step > 0  # continued, not restarted from step 0
    assert "4 evaluations, 4 computed now" in out
