"""A killed extraction resumes: a real process is SIGKILLed mid-run, then the command reruns.

Its loader workers (and the fork server they start from) must not outlive it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from pipeline.config import PipelineConfig
from stores.feature_store import FeatureStore


def _extract_command(config: Path, store: Path) -> list[str]:
    return [sys.executable, "-m", "flows.cli", "extract", "--dataset", "demo-cls", "--config", str(config),
            "--store", str(store)]  # fmt: skip


def _live_processes_with(marker: str) -> list[int]:
    """Processes (zombies aside) whose environment holds `marker`: a run's whole process tree."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            mine = marker.encode() in (proc / "environ").read_bytes()
            if mine and "\nState:\tZ" not in (proc / "status").read_text():
                found.append(int(proc.name))
        except (OSError, ValueError):  # not a process, or gone meanwhile
            continue
    return found


def _the_store(root: Path) -> FeatureStore:
    (encoder_id,) = [p.name for p in (root / "features" / "demo-cls").iterdir()]
    return FeatureStore(str(root), "demo-cls", encoder_id)


def test_killed_extraction_resumes_without_recomputing_and_matches_an_uninterrupted_run(
    warm_store: Path, tmp_path: Path, small_config: PipelineConfig
) -> None:
    settings = small_config.model_dump()
    settings["demo"]["train_size"] = 3000
    settings["extraction"].update(chunk_rows=64, batch_size=32, workers=1)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(settings))
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    for root in (reference, resumed):
        shutil.copytree(warm_store / "encoders", root / "encoders")

    subprocess.run(_extract_command(config, reference), check=True, capture_output=True)

    marker = f"MMR_TEST_RUN={tmp_path.name}-{os.getpid()}"
    process = subprocess.Popen(
        _extract_command(config, resumed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "MMR_TEST_RUN": marker.partition("=")[2]},
    )  # fmt: skip
    markers = resumed / "features" / "demo-cls"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if len(list(markers.glob("*/_shards/*/*.json"))) >= 5:
            break
        time.sleep(0.02)
    assert len(_live_processes_with(marker)) >= 3, "the run, its fork server and a loader worker"
    process.send_signal(signal.SIGKILL)
    process.wait()
    store = _the_store(resumed)
    committed = len(store.committed_shards())
    assert 5 <= committed < store.n_shards(), "the kill must land mid-run"
    deadline = time.monotonic() + 30
    while _live_processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _live_processes_with(marker), "the killed run left processes behind"

    rerun = subprocess.run(_extract_command(config, resumed), check=True, capture_output=True, text=True)
    assert f"({committed} already committed, {store.n_shards() - committed} written)" in rerun.stdout
    assert store.is_complete()

    expected, actual = _the_store(reference).read_arrays(), store.read_arrays()
    for name in expected:
        np.testing.assert_array_equal(actual[name], expected[name])
    assert _the_store(reference).read_samples().equals(store.read_samples())
