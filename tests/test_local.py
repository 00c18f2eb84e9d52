"""The embedded farm's parts: a private redis-server, and refusals that need no worker."""

from __future__ import annotations

import socket

import pytest
import redis as redis_py

from farm.client.local import LocalFarm, RedisServer, WorkerProcess
from farm.exceptions import FarmSetupError


def test_a_private_redis_starts_answers_and_frees_its_port(tmp_path):
    server = RedisServer(tmp_path).start()
    try:
        assert redis_py.Redis.from_url(server.url).ping()
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
    finally:
        server.stop()
    with socket.socket() as probe:
        # Nothing listens there any more. SO_REUSEADDR lets the bind past the connections the
        # server closed (TIME_WAIT); Linux still refuses it while a socket listens on the port.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", server.port))


def test_a_killed_redis_with_an_append_only_file_comes_back_with_its_data(tmp_path):
    server = RedisServer(tmp_path, appendonly=True).start()
    try:
        redis_py.Redis.from_url(server.url).set("farm:test", "kept")
        server.kill()
        server.start()
        assert redis_py.Redis.from_url(server.url).get("farm:test") == b"kept"
    finally:
        server.stop()


def test_a_redis_that_cannot_start_says_why(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(FarmSetupError, match="redis-server"):
            RedisServer(tmp_path, port=taken.getsockname()[1]).start(timeout=5)


def test_no_workers_is_refused_before_anything_starts(tmp_path):
    with pytest.raises(FarmSetupError, match="--workers must be at least 1, got 0"):
        LocalFarm(0, folder=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_worker_is_named_and_not_alive_before_it_starts(tmp_path):
    worker = WorkerProcess("w9", "redis://127.0.0.1:1/0", tmp_path)
    assert worker.hostname == f"w9@{socket.gethostname()}" and not worker.alive()
    worker.stop()  # stopping what never started is harmless
