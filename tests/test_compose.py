"""docker-compose.yml, Dockerfile and .env.example keep the properties docs/scaling.md relies on.

There is no Docker engine in the test environment, so the compose file is parsed (yaml.safe_load)
and interpolated here with the values of .env.example, the way Compose would; the Prefect CLI
commands, Prefect settings and fsspec variable it uses are checked against the installed packages.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import fsspec.config
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"

EXPECTED_SERVICES = {
    "postgres",
    "object-store",
    "create-bucket",
    "prefect-server",
    "prefect-services",
    "cpu-worker",
    "gpu-worker",
}
WORKER_POOLS = {"cpu-worker": "mmr-cpu", "gpu-worker": "mmr-gpu"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|KEY|AUTH|TOKEN")
# `$$` is an escaped dollar; `${VAR...}` and `$VAR` are interpolated by Compose.
_DOLLAR = re.compile(r"\$\$|\$\{(?P<braced>[^}]*)\}|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)")
_BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?", re.S)


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _services() -> dict[str, dict[str, Any]]:
    return _compose()["services"]


def _env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.fullmatch(r"\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)", line)
        if match:
            values[match[1]] = match[2].strip()
    return values


def _strings(node: Any) -> list[str]:
    """Every string value (not key) in a parsed YAML tree."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [text for value in node.values() for text in _strings(value)]
    if isinstance(node, list):
        return [text for value in node for text in _strings(value)]
    return []


def _references(text: str) -> list[str]:
    names = []
    for match in _DOLLAR.finditer(text):
        if match["bare"]:
            names.append(match["bare"])
        elif match["braced"] is not None:
            names.append(_BRACED.fullmatch(match["braced"])["name"])
    return names


def _interpolate(node: Any, env: dict[str, str]) -> Any:
    """Compose's interpolation of `node` with the variables in `env`."""
    if isinstance(node, dict):
        return {key: _interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [_interpolate(value, env) for value in node]
    if not isinstance(node, str):
        return node

    def substitute(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        if match["bare"]:
            name, op, arg = match["bare"], None, None
        else:
            parts = _BRACED.fullmatch(match["braced"])
            name, op, arg = parts["name"], parts["op"], parts["arg"]
        value = env.get(name)
        empty = value is None or (value == "" and op is not None and op.startswith(":"))
        if op in (":-", "-"):
            return arg if empty else value
        if op in (":+", "+"):
            return "" if empty else arg
        if empty:
            raise KeyError(f"{name} is not set ({arg or 'no default'})")
        return value

    return _DOLLAR.sub(substitute, node)


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def _resolved_environment(name: str, env: dict[str, str] | None = None) -> dict[str, str]:
    return _interpolate(_environment(_services()[name]), _env_example() if env is None else env)


def _env_without_optional() -> dict[str, str]:
    """.env.example less the variables the compose file gives a default: what an older .env has."""
    optional = set()
    for text in _strings(_compose()):
        for match in _DOLLAR.finditer(text):
            parts = _BRACED.fullmatch(match["braced"]) if match["braced"] else None
            if parts and parts["op"] in (":-", "-"):
                optional.add(parts["name"])
    return {key: value for key, value in _env_example().items() if key not in optional}


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return command.split() if isinstance(command, str) else [str(part) for part in command]


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        return dict.fromkeys(depends, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in depends.items()}


def _one_shot(services: dict[str, dict[str, Any]]) -> set[str]:
    return {
        name
        for service in services.values()
        for name, condition in _depends_on(service).items()
        if condition == "service_completed_successfully"
    }


def _published_ports(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(host ip, published port, container port) for each entry of `ports`."""
    published = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            published.append(
                (str(entry.get("host_ip", "")), str(entry.get("published", "")), str(entry["target"]))
            )
            continue
        spec = str(entry).split("/", 1)[0]
        parts = spec.rsplit(":", 2)
        if len(parts) == 3:
            published.append((parts[0].strip("[]"), parts[1], parts[2]))
        elif len(parts) == 2:
            published.append(("", parts[0], parts[1]))
        else:
            published.append(("", "", parts[0]))
    return published


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_the_stack_has_its_services() -> None:
    services = _services()
    assert set(services) >= EXPECTED_SERVICES, EXPECTED_SERVICES - set(services)
    assert services["postgres"]["image"].startswith("postgres:16")
    assert "minio/minio" in services["object-store"]["image"]
    assert _command(services["object-store"])[:2] == ["server", "/data"]
    assert "minio/mc" in services["create-bucket"]["image"]


def test_only_the_prefect_server_publishes_a_port_and_only_on_loopback() -> None:
    services = _services()
    publishing = {name for name, service in services.items() if service.get("ports")}
    assert publishing == {"prefect-server"}
    assert _published_ports(services["prefect-server"]) == [("127.0.0.1", "4200", "4200")]
    for name, service in services.items():
        assert service.get("network_mode") != "host", name


def test_every_long_running_service_has_a_healthcheck() -> None:
    services = _services()
    one_shot = _one_shot(services)
    assert one_shot == {"create-bucket"}
    assert services["create-bucket"].get("restart") == "no"
    for name, service in services.items():
        if name in one_shot:
            continue
        check = service.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        assert check["test"] not in (["NONE"], "NONE"), name
    server_check = " ".join(services["prefect-server"]["healthcheck"]["test"])
    assert "http://localhost:4200/api/health" in server_check
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])


def test_services_start_in_dependency_order() -> None:
    services = _services()
    expected = {
        "create-bucket": {"object-store": "service_healthy"},
        "prefect-server": {"postgres": "service_healthy"},
        "prefect-services": {"prefect-server": "service_healthy"},
        "cpu-worker": {
            "prefect-server": "service_healthy",
            "create-bucket": "service_completed_successfully",
        },
        "gpu-worker": {
            "prefect-server": "service_healthy",
            "create-bucket": "service_completed_successfully",
        },
    }
    for name, dependencies in expected.items():
        actual = _depends_on(services[name])
        for dependency, condition in dependencies.items():
            assert actual.get(dependency) == condition, (name, dependency, actual)
    for name, service in services.items():
        for dependency, condition in _depends_on(service).items():
            assert dependency in services, (name, dependency)
            if condition == "service_healthy":
                assert services[dependency].get("healthcheck"), (name, dependency)


def test_the_gpu_worker_reserves_an_nvidia_gpu_and_scales_from_the_environment() -> None:
    services = _services()
    deploy = services["gpu-worker"].get("deploy") or {}
    devices = deploy.get("resources", {}).get("reservations", {}).get("devices") or []
    gpus = [
        device
        for device in devices
        if device.get("driver") == "nvidia" and "gpu" in (device.get("capabilities") or [])
    ]
    assert gpus, devices
    assert all("count" in device or "device_ids" in device for device in gpus)
    assert re.fullmatch(r"\$\{GPU_WORKERS:-\d+\}", str(deploy.get("replicas"))), deploy.get("replicas")
    assert int(_interpolate(str(deploy["replicas"]), _env_example())) >= 1
    assert "devices" not in str(services["cpu-worker"].get("deploy") or {})
    for name in WORKER_POOLS:
        assert "container_name" not in services[name], f"{name} could not be scaled"


def test_no_credential_is_written_into_the_compose_file() -> None:
    services = _services()
    whole_reference = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?[-?][^}]*)?\}")
    for name, service in services.items():
        for key, value in _environment(service).items():
            if SECRET_NAME.search(key):
                assert whole_reference.fullmatch(value), f"{name}: {key} is not a ${{VAR}} reference"
        for env_file in [service["env_file"]] if isinstance(service.get("env_file"), str) else []:
            assert env_file == ".env", (name, env_file)
    for text in _strings(_compose()):
        for userinfo in re.findall(r"://([^/@\s]*)@", text):
            assert re.fullmatch(r"(\$\{[^}]*\}|:)*", userinfo), f"credentials in a URL: {text}"
    placeholders = {value for value in _env_example().values() if "change-me" in value}
    placeholders |= {value.split(":", 1)[1] for value in placeholders if ":" in value}
    leaked = {text for text in _strings(_compose()) for value in placeholders if value in text}
    assert not leaked, leaked


def test_env_example_defines_every_variable_the_compose_file_uses() -> None:
    example = _env_example()
    used = {name for text in _strings(_compose()) for name in _references(text)}
    assert used, "the compose file references no variable"
    assert used <= set(example), f"missing from .env.example: {sorted(used - set(example))}"
    assert set(example) <= used, f"unused in docker-compose.yml: {sorted(set(example) - used)}"
    for key, value in example.items():
        if SECRET_NAME.search(key) and key != "MMR_S3_ACCESS_KEY_ID":
            assert "change-me" in value, f"{key} in .env.example should be a change-me placeholder"
    _interpolate(_compose(), example)  # raises KeyError on a missing required variable


def test_the_real_env_file_is_neither_committed_nor_copied_into_the_image() -> None:
    gitignore = (ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in gitignore or "/.env" in gitignore
    dockerignore = (ROOT / ".dockerignore").read_text().splitlines()
    for entry in (".env", ".venv", "mmr-store", ".git", "/data"):
        assert entry in dockerignore, entry


def test_workers_poll_their_pools_and_reach_the_stack_by_service_name() -> None:
    services = _services()
    bucket = _env_example()["MMR_BUCKET"]
    creator = _environment(services["create-bucket"])
    for name, pool in WORKER_POOLS.items():
        command = _command(services[name])
        assert command[:3] == ["prefect", "worker", "start"], command
        assert command[command.index("--pool") + 1] == pool
        assert command[command.index("--type") + 1] == "process"
        assert "--with-healthcheck" in command
        for env in (_resolved_environment(name), _resolved_environment(name, _env_without_optional())):
            api = urlparse(env["PREFECT_API_URL"])
            assert (api.hostname, api.port, api.path) == ("prefect-server", 4200, "/api")
            endpoint = urlparse(env["FSSPEC_S3_ENDPOINT_URL"])
            assert endpoint.hostname == "object-store" and endpoint.hostname in services
            assert env["MMR_STORE"].startswith(f"s3://{bucket}/")
        raw = _environment(services[name])
        assert _references(raw["AWS_ACCESS_KEY_ID"]) == _references(creator["MMR_S3_ACCESS_KEY_ID"])
        assert _references(raw["AWS_SECRET_ACCESS_KEY"]) == _references(creator["MMR_S3_SECRET_ACCESS_KEY"])
        assert _references(raw["PREFECT_API_AUTH_STRING"]) == _references(
            _environment(services["prefect-server"])["PREFECT_SERVER_API_AUTH_STRING"]
        )


def test_the_prefect_server_and_its_services_run_split_on_one_database() -> None:
    services = _services()
    server, background = services["prefect-server"], services["prefect-services"]
    command = _command(server)
    assert command[:3] == ["prefect", "server", "start"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert "--no-services" in command
    assert _command(background) == ["prefect", "server", "services", "start"]
    for name in ("prefect-server", "prefect-services"):
        env = _resolved_environment(name)
        example = _env_example()
        url = urlparse(env["PREFECT_API_DATABASE_CONNECTION_URL"])
        assert url.scheme == "postgresql+asyncpg"
        assert (url.hostname, url.port, url.path) == ("postgres", 5432, f"/{example['POSTGRES_DB']}")
        assert (url.username, url.password) == (example["POSTGRES_USER"], example["POSTGRES_PASSWORD"])
        assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
        assert env["PREFECT_MESSAGING_BROKER"].startswith("prefect_redis")
    images = {services[name].get("image") for name in ("prefect-server", "prefect-services", *WORKER_POOLS)}
    assert len(images) == 1, images


@pytest.mark.parametrize(
    ("args", "needed"),
    [
        (["server", "start"], ["--host", "--no-services"]),
        (["server", "services", "start"], []),
        (["worker", "start"], ["--pool", "--type", "--with-healthcheck"]),
    ],
)
def test_the_installed_prefect_has_the_commands_the_stack_runs(args: list[str], needed: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "prefect", *args, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for flag in needed:
        assert flag in done.stdout, flag


# Where the installed Prefect's settings model puts each variable the stack sets.
_SETTINGS = {
    "PREFECT_API_DATABASE_CONNECTION_URL": "server.database.connection_url",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "server.analytics_enabled",
    "PREFECT_MESSAGING_BROKER": "server.events.messaging_broker",
    "PREFECT_MESSAGING_CACHE": "server.events.messaging_cache",
    "PREFECT_SERVER_EVENTS_CAUSAL_ORDERING": "server.events.causal_ordering",
    "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "server.concurrency.lease_storage",
    "PREFECT_SERVER_DOCKET_URL": "server.docket.url",
    "PREFECT_SERVER_API_AUTH_STRING": "server.api.auth_string",
    "PREFECT_UI_API_URL": "server.ui.api_url",
    "PREFECT_API_URL": "api.url",
    "PREFECT_API_AUTH_STRING": "api.auth_string",
    "PREFECT_WORKER_WEBSERVER_HOST": "worker.webserver.host",
    "PREFECT_WORKER_WEBSERVER_PORT": "worker.webserver.port",
}
# Read by prefect-redis (installed in the image through prefect[redis], not in the dev environment).
_PREFECT_REDIS = {f"PREFECT_REDIS_MESSAGING_{field}" for field in ("HOST", "PORT", "DB", "PASSWORD")}
# Runs in a fresh interpreter: importing Prefect builds its global settings from the environment.
_READ_SETTINGS = """
import json, os, sys
from functools import reduce
from prefect.settings import Settings
fields, envs = json.load(sys.stdin)
read = {}
for service, env in envs.items():
    os.environ.update(env)
    settings = Settings()
    for key in env:
        os.environ.pop(key)
    values = {}
    for key, path in fields.items():
        if key in env:
            value = reduce(getattr, path.split("."), settings)
            values[key] = str(getattr(value, "get_secret_value", lambda: value)())
    read[service] = values
print(json.dumps(read))
"""


def test_the_installed_prefect_reads_every_prefect_variable(tmp_path: Path) -> None:
    names = ["prefect-server", "prefect-services", "cpu-worker", "gpu-worker"]
    envs = {
        name: {key: value for key, value in _resolved_environment(name).items() if key.startswith("PREFECT_")}
        for name in names
    }
    for name, env in envs.items():
        unknown = set(env) - set(_SETTINGS) - _PREFECT_REDIS
        assert not unknown, f"{name}: no check for {sorted(unknown)}; add it to _SETTINGS"
    clean = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    done = subprocess.run(
        [sys.executable, "-c", _READ_SETTINGS],
        input=json.dumps([_SETTINGS, envs]),
        env={**clean, "PREFECT_HOME": str(tmp_path / "prefect")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    read = json.loads(done.stdout.strip().splitlines()[-1])
    for name, env in envs.items():
        for key, value in env.items():
            if key in _SETTINGS:
                assert read[name][key].lower() == value.lower(), (name, key, read[name][key])


def test_fsspec_reads_the_s3_endpoint_variable_the_workers_set() -> None:
    for name in WORKER_POOLS:
        env = _resolved_environment(name)
        fsspec_env = {key: value for key, value in env.items() if key.startswith("FSSPEC_")}
        assert fsspec_env == {"FSSPEC_S3_ENDPOINT_URL": "http://object-store:9000"}
        conf: dict[str, dict[str, Any]] = {}
        fsspec.config.set_conf_env(conf, fsspec_env)
        assert conf == {"s3": {"endpoint_url": "http://object-store:9000"}}


def test_the_dockerfile_installs_the_project_with_s3_and_does_not_run_as_root() -> None:
    assert DOCKERFILE.is_file()
    instructions = _dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.12-slim")
    runs = [rest for keyword, rest in instructions if keyword == "RUN"]
    assert any(re.search(r"pip install\b[^&;]*\s'?\.\[s3\]'?(\s|$)", run) for run in runs), runs
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    assert any(re.search(rf"useradd\b.*\b{re.escape(users[-1])}\b", run) for run in runs)
    cmd = [rest for keyword, rest in instructions if keyword == "CMD"]
    assert cmd and "prefect" in cmd[-1] and "worker" in cmd[-1] and "start" in cmd[-1]
    compose_build = _services()["cpu-worker"]["build"]
    assert compose_build.get("dockerfile", "Dockerfile") == "Dockerfile"
