"""The embedded farm's parts: a private redis-server, refusals that need no worker, and
what a signal to an embedded `submit` leaves behind. These start Redis and workers
through farm.client.local, or `submit --workers`, themselves: that is what they test
(every other test's farm is tests/farms.py's PrivateFarm)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import pytest
import redis as redis_py

from farm.client.local import LocalFarm, RedisServer, WorkerProcess, sweep_stale_folders
from farm.exceptions import FarmSetupError
from farm.protocol.leases import process_ended
from farm.protocol.tilestore import TileStore
from tests import commands


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


def _start_embedded_submit(tmp_path: Path, cornell_document) -> tuple[subprocess.Popen, Path, redis_py.Redis]:
    """An embedded `submit` of a slowed 9-bucket frame, its farm's folder, and a client of
    its Redis, once a tile is stored."""
    scene = tmp_path / "scene.json"
    scene.write_text(json.dumps(dict(cornell_document, film={"width": 48, "height": 48, "spp": 64})))
    (tmp_path / "tmp").mkdir()
    env = {"TMPDIR": str(tmp_path / "tmp"), "FARM_FAULTS": "slow=15", "FARM_PASS_SECONDS": "0.05"}
    client = commands.start("submit", scene, "-o", tmp_path / "out.exr", "-q", "--workers", 1, "--bucket-size", 16,
                            env=env)
    folder = commands.wait_for(lambda: next((tmp_path / "tmp").glob("farm-*/redis-*.log"), None), 60,
                               "the embedded farm").parent
    port = int(next(folder.glob("redis-*.log")).stem.split("-")[1])
    redis = redis_py.Redis(port=port)
    # a job's tiles hash is made with it, holding a placeholder (farm.protocol.deliveries.PLACEHOLDER)
    commands.wait_for(lambda: any(redis.hlen(k) > 1 for k in redis.scan_iter(match=TileStore.key_for("*"))), 90,
                      "a tile")
    return client, folder, redis


def _processes_in(folder: Path) -> list[int]:
    """The processes working in `folder` (the embedded workers), and its redis-server."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if os.readlink(proc / "cwd") == str(folder) or str(folder).encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
    return found


def _gone(pids: list[int]) -> bool:
    return all(process_ended(pid) is not False for pid in pids)


def test_sigterm_of_an_embedded_submit_keeps_what_was_rendered_and_leaves_nothing(tmp_path, cornell_document):
    """Before, SIGTERM ended `submit` at once: no partial image, no word, the folder left."""
    client, folder, _ = _start_embedded_submit(tmp_path, cornell_document)
    processes = _processes_in(folder)
    assert len(processes) >= 3, "Redis, a worker and its render process"
    client.send_signal(signal.SIGTERM)
    returncode, _, stderr = commands.finish(client, timeout=30)
    assert returncode == 143, stderr
    assert stderr.strip().splitlines()[-1] == "submit: terminated (SIGTERM)"
    assert re.search(r"saved \d/9 finished buckets to .*out.partial.exr", stderr)
    assert (tmp_path / "out.partial.exr").exists() and not folder.exists()
    commands.wait_for(lambda: _gone(processes), 10, "the embedded farm's processes to end")


def test_sigkill_of_an_embedded_submit_takes_its_farm_along(tmp_path, cornell_document):
    """Before, the workers lingered about 120 s retrying the dead Redis, and the folder
    stayed for ever; now they end at once, and the next embedded farm removes the folder."""
    client, folder, _ = _start_embedded_submit(tmp_path, cornell_document)
    processes = _processes_in(folder)
    client.kill()
    client.wait()
    commands.wait_for(lambda: _gone(processes), 10, "the embedded farm's processes to end")
    assert sweep_stale_folders(tmp_path / "tmp") == [folder] and not folder.exists()
