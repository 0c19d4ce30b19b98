"""End to end through a real Prefect server: deploy from prefect.yaml, run with a process worker.

Starts `prefect server start` on 127.0.0.1, creates the process work pool, deploys every
deployment in prefect.yaml, starts a worker, runs `restore/demo` and then `evaluate/demo`
(demo-small settings, a store under tmp), and checks the artefacts and the results rows. Every
process it starts is stopped by its process group, also when an assertion fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from stores.results_store import query

REPO = Path(__file__).resolve().parent.parent
PREFECT = str(Path(sys.executable).with_name("prefect"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture()
def prefect_server(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A real Prefect server on a free local port; yields the environment that points at it."""
    port = _free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "INFO",
    }
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 (closed below)
    server = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"prefect server did not start: {(tmp_path / 'server.log').read_text()[-2000:]}")
            time.sleep(1)
        yield env
    finally:
        _stop(server)
        log.close()


def _prefect(env: dict[str, str], *args: str, timeout: int = 300) -> str:
    done = subprocess.run(
        [PREFECT, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, (
        f"prefect {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done.stdout


@pytest.mark.slow
def test_deployments_run_on_a_real_server_and_worker(
    prefect_server: dict[str, str], warm_store: Path, tmp_path: Path
) -> None:
    env = prefect_server
    store = tmp_path / "store"
    shutil.copytree(warm_store / "encoders", store / "encoders")  # skip the encoder warm-up
    for pool in ("mmr-gpu", "mmr-cpu"):
        _prefect(env, "work-pool", "create", pool, "--type", "process")
    deployed = _prefect(env, "--no-prompt", "deploy", "--all")
    for name in ("restore/demo", "restore/mmimdb", "evaluate/demo", "extract/food101", "benchmark/nightly",
                 "report/paper"):  # fmt: skip
        assert name in deployed, f"{name} was not deployed:\n{deployed[-2000:]}"
    # Prefect's default task runner has no bound: each flow run's tasks share 2 threads instead.
    restore_demo = json.loads(_prefect(env, "deployment", "inspect", "restore/demo", "--output", "json"))
    assert restore_demo["job_variables"]["env"] == {"PREFECT_TASK_RUNNER_THREAD_POOL_MAX_WORKERS": "2"}
    schedules = json.loads(_prefect(env, "deployment", "inspect", "benchmark/nightly", "--output", "json"))
    per_schedule = {s["schedule"]["cron"]: s["parameters"] for s in schedules["schedules"]}
    assert sorted(per_schedule) == ["0 2 * * *", "0 4 * * 0"]
    assert per_schedule["0 4 * * 0"]["missing_rates"] == [0.1, 0.3, 0.5, 0.7, 0.9]

    worker_log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 (closed below)
    worker = subprocess.Popen([PREFECT, "worker", "start", "--pool", "mmr-gpu", "--type", "process"],
                              env={**env, "MMR_STORE": str(store)}, cwd=REPO, stdout=worker_log,
                              stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        small = ["-p", "config=demo-small", "-p", "device=cpu"]
        out = _prefect(env, "deployment", "run", "restore/demo", *small, "--watch", "--watch-timeout", "600",
                       timeout=700)  # fmt: skip
        assert "Completed" in out, out[-2000:]
        manifests = list(store.glob("restorations/demo-*/*/dit-*/*/manifest.json"))
        assert sorted({path.parts[-5] for path in manifests}) == ["demo-cls", "demo-tags"]
        for path in manifests:
            manifest = json.loads(path.read_text())
            assert manifest["missing_type"] == "both" and manifest["n_image_restored"] > 0

        out = _prefect(env, "deployment", "run", "evaluate/demo", *small, "--watch", "--watch-timeout", "600",
                       timeout=700)  # fmt: skip
        assert "Completed" in out, out[-2000:]
        _, rows = query(str(store), "SELECT dataset, restorer, count(*) FROM metrics WHERE split = 'test' "
                                    "GROUP BY 1, 2 ORDER BY 1, 2")  # fmt: skip
        assert [(dataset, restorer) for dataset, restorer, _ in rows] == [
            (dataset, restorer)
            for dataset in ("demo-cls", "demo-tags")
            for restorer in ("dit", "oracle", "zero")
        ]
    finally:
        _stop(worker)
        worker_log.close()
        print((tmp_path / "worker.log").read_text()[-3000:])
