"""The manager's outputs in an object store (farm.manager.store): a real S3-compatible HTTP
server (moto's standalone server, a process of its own) behind s3fs; `farm fetch` downloads
what the manager wrote there through the manager's API, and every file equals the embedded
render."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from farm.client.film import read_exr
from tests import commands, frames
from tests.ports import free_port
from tests.test_manager import detach
from tests.test_shot import animated


@pytest.fixture
def s3(tmp_path):
    """moto's S3 server on a free port, with a bucket `renders`; its environment for s3fs."""
    pytest.importorskip("s3fs", reason="s3fs (farm[s3], a test extra) is not installed")
    pytest.importorskip("moto.server", reason="moto[server] (a test extra) is not installed")
    port = free_port()
    env = {"AWS_ACCESS_KEY_ID": "farm-test", "AWS_SECRET_ACCESS_KEY": "farm-test", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **env})
    try:
        import s3fs

        fs = s3fs.S3FileSystem(key="farm-test", secret="farm-test", endpoint_url=env["AWS_ENDPOINT_URL"])
        commands.wait_for(lambda: fs.mkdir("renders") is None or True, 30, "moto's S3 server")
        yield env, fs
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)


def test_outputs_in_an_s3_store_are_fetched_exact(farm, s3, make_document, write_scene, tmp_path, device):
    env, fs = s3
    still = make_document(width=32, height=24, spp=4)
    shot = animated(make_document(width=24, height=24, spp=4))
    manager = commands.start("manager", "--output-dir", "s3://renders/farm", "--broker", farm.broker_url,
                             "--address", "127.0.0.1:0", env=env)
    try:
        still_id = detach(write_scene(still, "still.json"), "still.exr", farm.broker_url)
        shot_id = detach(write_scene(shot, "shot.json"), "shot.exr", farm.broker_url, "--frames", "0-1", "--fps", "1")
        for job in (still_id, shot_id):
            result = commands.run("wait", job, "--broker", farm.broker_url, timeout=300)
            assert result.returncode == 0, result.stderr
        stored = {path.rsplit("/", 1)[1] for path in fs.ls(f"renders/farm/{shot_id}", refresh=True)}
        assert stored == {"shot.0000.exr", "shot.0001.exr", "report.json"}, stored
        fetched = tmp_path / "fetched"
        result = commands.run("fetch", still_id, "-o", fetched / "still", "--broker", farm.broker_url)
        assert result.returncode == 0, result.stderr
        assert np.array_equal(read_exr(fetched / "still" / "still.exr"), frames.reference(device, still))
        result = commands.run("fetch", shot_id, "-o", fetched / "shot", "--broker", farm.broker_url)
        assert result.returncode == 0, result.stderr
        for number in range(2):
            image = read_exr(fetched / "shot" / f"shot.{number:04d}.exr")
            assert np.array_equal(image, frames.reference(device, copy.deepcopy(shot), time=float(number))), number
        assert fs.cat(f"renders/farm/{shot_id}/report.json") == (fetched / "shot" / "report.json").read_bytes()
    finally:
        manager.send_signal(signal.SIGTERM)
        commands.finish(manager, timeout=30)
    for job in (still_id, shot_id):
        farm.redis.delete(f"farm:manager:job:{job}")  # the session's farm has no manager after this test


def test_an_s3_store_that_cannot_be_listed_is_one_line(farm, s3):
    env, _ = s3
    result = commands.run("manager", "--output-dir", "s3://no-such-bucket/x", "--broker", farm.broker_url,
                          "--address", "off", env=env, timeout=60)
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "output store s3://no-such-bucket/x: cannot list it" in line, result.stderr
