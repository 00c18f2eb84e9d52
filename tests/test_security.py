"""A broker no stranger can use, with real processes: workers, Flower and every command as
the README's least-privilege ACL user (made by the README's own line), one clear line for
a refused login, permission or certificate, and TLS with a verified CA."""

from __future__ import annotations

import base64
import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis
from PIL import Image

from farm.client.local import RedisServer, redis_server_binary
from farm.protocol import registry
from farm.protocol.queue import queue_lists
from tests import commands
from tests.files import CORNELL, ROOT
from tests.ports import free_port

FARM_PASSWORD = secrets.token_hex(16)
ADMIN_PASSWORD = secrets.token_hex(16)
FLOWER_PASSWORD = secrets.token_hex(16)
PASSWORDS = (FARM_PASSWORD, ADMIN_PASSWORD, FLOWER_PASSWORD)
TINY = ("--resolution", "32x32", "--spp", "1", "--bucket-size", "16")  # four buckets


def readme_acl(password: str, change: tuple[str, str] | None = None) -> list[str]:
    """docs/deploy.md's `ACL SETUSER farm ...` line as words, with `password` (and one rule
    replaced by another, or dropped for ""): the doc and the test cannot drift apart."""
    lines = [line.strip() for line in (ROOT / "docs" / "deploy.md").read_text().splitlines()
             if line.strip().startswith("ACL SETUSER farm ")]
    assert len(lines) == 1, lines
    words = [f">{password}" if word == ">FARM_PASSWORD" else word for word in lines[0].split()]
    if change:
        old, new = change
        assert old in words, change
        words = [word for word in (new if word == old else word for word in words) if word]
    return words


@contextlib.contextmanager
def running(command: list[str], log_path: Path, env: dict):
    """A process group started from `command` (output to `log_path`), stopped at the end."""
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env={**os.environ, **env}, cwd=log_path.parent, start_new_session=True)
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(15)
        with contextlib.suppress(ProcessLookupError, PermissionError):  # pool children outliving their parent
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def worker(name: str, url: str, folder: Path):
    """A render worker started as the README starts one (gossip and mingle on), not as a
    PrivateFarm's (without them): the README's ACL must allow what this one does."""
    return running([sys.executable, "-m", "celery", "-A", "farm", "worker", "--loglevel", "INFO",
                    "--hostname", f"{name}@{socket.gethostname()}"], folder / f"{name}.log", {"FARM_BROKER_URL": url})


@pytest.fixture
def broker(tmp_path):
    """A real redis-server whose `default` user has a password of its own: its port and
    an admin client. No PrivateFarm: the README's rules go in before any worker starts."""
    server = RedisServer(tmp_path).start()
    try:
        redis.Redis(port=server.port).execute_command("ACL", "SETUSER", "default", "resetpass", f">{ADMIN_PASSWORD}")
        yield SimpleNamespace(port=server.port,
                              admin=redis.Redis(port=server.port, username="default", password=ADMIN_PASSWORD))
    finally:
        server.stop()


def farm_url(broker, password: str = FARM_PASSWORD) -> str:
    return f"redis://farm:{password}@127.0.0.1:{broker.port}/0"


def started_and_detached(broker, output: Path) -> str:
    """`submit` with no worker yet, interrupted once it waits for tiles (a connection of
    its own blocks in BLMPOP): it detaches; the job id it names."""
    earlier = {client["id"] for client in broker.admin.client_list()}
    process = commands.start("submit", CORNELL, "-o", output, *TINY, "--on-interrupt", "detach",
                             env={"FARM_BROKER_URL": farm_url(broker)})
    try:
        commands.wait_for(lambda: process.poll() is None and any(
            client["id"] not in earlier and client["cmd"] == "blmpop" for client in broker.admin.client_list()),
            60, "submit to wait for tiles")
    finally:
        process.send_signal(signal.SIGINT)
        returncode, _, stderr = commands.finish(process, timeout=60)
    assert returncode == 130 and "keeps rendering" in stderr, stderr
    return re.search(r"farm collect (\w+)", stderr).group(1)


def assert_ran(result, output: Path | None = None):
    assert result.returncode == 0, result.stdout + result.stderr
    if output is not None:
        assert Image.open(output).size == (32, 32)


def assert_no_password(*texts: str):
    for text in texts:
        for password in PASSWORDS:
            assert password not in text


def flower_get(port: int, path: str, auth: str | None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""


def test_workers_flower_and_every_command_run_as_the_readme_acl_user(broker, tmp_path):
    """Cancel and detach before any worker is up (nothing races them); then the workers,
    Flower, collect, submit and status. Redis's ACL log must stay empty."""
    broker.admin.execute_command(*readme_acl(FARM_PASSWORD))
    url, env = farm_url(broker), {"FARM_BROKER_URL": farm_url(broker)}
    outputs = []

    cancelled = started_and_detached(broker, tmp_path / "cancelled.png")
    result = commands.run("cancel", cancelled, env=env, timeout=60)
    outputs.append(result.stdout + result.stderr)
    assert_ran(result)
    assert "4 queued bucket(s) dropped" in result.stdout
    detached = started_and_detached(broker, tmp_path / "detached.png")
    assert sum(broker.admin.llen(name) for name in queue_lists()) == 4

    flower_port, flower_auth = free_port(), f"admin:{FLOWER_PASSWORD}"
    flower = [sys.executable, "-m", "celery", "-A", "farm", "flower", "--address=127.0.0.1", f"--port={flower_port}"]
    with worker("secure1", url, tmp_path), worker("secure2", url, tmp_path), \
            running(flower, tmp_path / "flower.log", {**env, "FLOWER_BASIC_AUTH": flower_auth}):
        names = {f"secure{i}@{socket.gethostname()}" for i in (1, 2)}
        commands.wait_for(lambda: names <= set(registry.workers(broker.admin)), 120, "the workers to start")

        result = commands.run("collect", detached, "-o", tmp_path / "detached.png", env=env, timeout=120)
        outputs.append(result.stdout + result.stderr)
        assert_ran(result, tmp_path / "detached.png")
        result = commands.run("submit", CORNELL, "-o", tmp_path / "submitted.png", *TINY, env=env, timeout=120)
        outputs.append(result.stdout + result.stderr)
        assert_ran(result, tmp_path / "submitted.png")
        result = commands.run("status", env=env, timeout=60)
        outputs.append(result.stdout + result.stderr)
        assert_ran(result)
        assert re.search(rf"{cancelled}\s+cancelled", result.stdout) and re.search(rf"{detached}\s+done", result.stdout)
        assert "2 worker(s)" in result.stdout

        # the manager and its clients: hand over, lead, render, wait, fetch, pause
        (tmp_path / "managed").mkdir()
        manager = commands.start("manager", "--output-dir", tmp_path / "managed", "--address", "127.0.0.1:0", env=env)
        try:
            result = commands.run("submit", CORNELL, "-o", "managed.png", *TINY, "--detach", env=env, timeout=60)
            outputs.append(result.stdout + result.stderr)
            assert_ran(result)
            managed = result.stdout.split(":")[0]
            for command in (("wait", managed), ("fetch", managed, "-o", tmp_path / "fetched"), ("jobs",),
                            ("priority", managed, "60")):
                result = commands.run(*command, env=env, timeout=120)
                outputs.append(result.stdout + result.stderr)
                assert_ran(result)
            assert Image.open(tmp_path / "fetched" / "managed.png").size == (32, 32)
        finally:
            manager.send_signal(signal.SIGTERM)
            _, out, err = commands.finish(manager, timeout=30)
            outputs.append(out + err)

        commands.wait_for(lambda: all(name in flower_get(flower_port, "/api/workers?refresh=1", flower_auth)[1]
                                      for name in names), 60, "Flower to see both workers")
        assert flower_get(flower_port, "/api/queues/length", flower_auth)[0] == 200
        assert flower_get(flower_port, "/api/workers", None)[0] == 401

    denied = [entry for entry in broker.admin.acl_log(count=100)
              if not str(entry.get("object", "")).startswith("client")]  # redis-py's optional CLIENT SETINFO
    assert denied == [], denied
    assert_no_password(*outputs, *(path.read_text(errors="replace") for path in tmp_path.glob("*.log")))


REFUSALS = [
    ("queue key", ("~farm*", "~farm"), "submit", "permission denied by the broker's ACL"),
    ("scan", ("+scan", ""), "status", "permission denied by the broker's ACL"),
    ("ping", ("+ping", ""), "status", "permission denied by the broker's ACL"),
    ("wrong password", None, "submit", "refused the login"),
]


@pytest.mark.parametrize("name,change,command,message", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_a_refused_login_or_permission_is_one_clear_line(broker, tmp_path, name, change, command, message):
    """Not 'cannot reach' nor 'lost the connection': the broker answered, and said no."""
    broker.admin.execute_command(*readme_acl(FARM_PASSWORD, change))
    url = farm_url(broker, "wrong" if change is None else FARM_PASSWORD)
    args = ("submit", CORNELL, "-o", tmp_path / "out.png", *TINY) if command == "submit" else ("status",)
    result = commands.run(*args, env={"FARM_BROKER_URL": url}, timeout=60)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    program = "submit" if command == "submit" else "farm status"
    assert lines[0].startswith(f"{program}: error: ") and message in lines[0], lines[0]
    assert ("NOPERM" in lines[0]) == (change is not None)
    assert "cannot reach" not in lines[0] and "lost the connection" not in lines[0]
    assert result.seconds < 20, f"took {result.seconds:.1f}s"
    assert_no_password(result.stdout, result.stderr)


def make_certificates(folder: Path) -> None:
    """ca.crt, and redis.crt/redis.key signed by it for 127.0.0.1; other-ca.crt, unrelated."""
    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=30)

    key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", *key, "-keyout", f"{ca}.key", "-out", f"{ca}.crt", "-days", "2", "-subj", f"/CN=farm {ca}")
    openssl("req", *key, "-keyout", "redis.key", "-out", "redis.csr", "-subj", "/CN=localhost")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "redis.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "redis.crt", "-days", "2", "-extfile", "san.ext")


def test_tls_with_a_verified_ca_renders_and_a_wrong_ca_is_one_clear_line(tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("no openssl command to make the test's certificates")
    binary = os.environ.get("FARM_TEST_REDIS_SERVER") or redis_server_binary()
    make_certificates(tmp_path)
    port = free_port()  # a redis-server of the test's own: TLS, which a PrivateFarm's has not
    command = [binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--tls-cert-file", "redis.crt",
               "--tls-key-file", "redis.key", "--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "no",
               "--dir", str(tmp_path), "--save", "", "--appendonly", "no", "--requirepass", ADMIN_PASSWORD]
    with running(command, tmp_path / "redis.log", {}) as server:
        query = f"ssl_cert_reqs=required&ssl_ca_certs={tmp_path / 'ca.crt'}"
        admin = redis.Redis.from_url(f"rediss://default:{ADMIN_PASSWORD}@127.0.0.1:{port}/0?{query}",
                                     socket_connect_timeout=1)

        def up():  # skip and fail are not Exceptions: wait_for lets them through
            if server.poll() is not None:
                log = (tmp_path / "redis.log").read_text(errors="replace")
                if "tls" in log.lower():
                    pytest.skip(f"{binary} is built without TLS ({log.strip().splitlines()[-1]}); install one "
                                "with TLS (e.g. Debian's redis-server) and name it in FARM_TEST_REDIS_SERVER")
                pytest.fail(f"redis-server exited: {log}")
            return admin.ping()
        commands.wait_for(up, 20, "the TLS redis-server to answer")
        admin.execute_command(*readme_acl(FARM_PASSWORD))
        url = f"rediss://farm:{FARM_PASSWORD}@127.0.0.1:{port}/0?{query}"

        with worker("tls1", url, tmp_path):
            result = commands.run("submit", CORNELL, "-o", tmp_path / "tls.png", *TINY,
                                  env={"FARM_BROKER_URL": url}, timeout=180)
            assert_ran(result, tmp_path / "tls.png")
        wrong = url.replace("ca.crt", "other-ca.crt")
        refused = commands.run("submit", CORNELL, "-o", tmp_path / "wrong.png", *TINY,
                               env={"FARM_BROKER_URL": wrong}, timeout=60)
        lines = refused.stderr.strip().splitlines()
        assert refused.returncode == 2 and len(lines) == 1, refused.stderr
        assert lines[0].startswith("submit: error: the broker at rediss://farm:***@") and \
            "has a certificate that failed verification" in lines[0], lines[0]
        assert_no_password(result.stdout, result.stderr, refused.stdout, refused.stderr,
                           (tmp_path / "tls1.log").read_text(errors="replace"))

