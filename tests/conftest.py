"""Shared fixtures. Tests never touch the network or the user's home: caches and Prefect state
live under a per-session temporary folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pipeline.config import PipelineConfig, load_config
from pipeline.encoders.frozen import FrozenEncoder
from pipeline.encoders.warmup import load_demo_encoder

_SANDBOX = Path(os.environ.get("MMR_TEST_SANDBOX", "/tmp")) / f"mmr-tests-{os.getpid()}"
os.environ.update(
    {
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(_SANDBOX / "hf"),
        "PREFECT_HOME": str(_SANDBOX / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "MMR_STORE": str(_SANDBOX / "default-store"),
    }
)
(_SANDBOX / "prefect").mkdir(parents=True, exist_ok=True)  # Prefect makes only the last folder


@pytest.fixture(scope="session")
def small_config() -> PipelineConfig:
    return load_config("demo-small")


@pytest.fixture(scope="session")
def warm_store(tmp_path_factory: pytest.TempPathFactory, small_config: PipelineConfig) -> Path:
    """A store that holds the warmed-up demo-small encoder (trained once per test session)."""
    root = tmp_path_factory.mktemp("warm-store")
    load_demo_encoder(str(root), small_config.warmup, small_config.demo, progress=False)
    return root


@pytest.fixture(scope="session")
def demo_encoder(warm_store: Path, small_config: PipelineConfig) -> FrozenEncoder:
    return load_demo_encoder(str(warm_store), small_config.warmup, small_config.demo, progress=False)


@pytest.fixture()
def store_with_encoder(warm_store: Path, tmp_path: Path) -> Path:
    """A fresh store that already has the warmed-up encoder (so tests skip the warm-up)."""
    root = tmp_path / "store"
    shutil.copytree(warm_store / "encoders", root / "encoders")
    return root


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_SANDBOX, ignore_errors=True)
