"""Submit and walk away (farm.client.manager, issue 28's first slice): `submit --detach` hands
a shot to a real `farm manager` process, which renders it on real workers into its output
folder; `farm wait` returns when it ends; a manager SIGKILLed mid-shot and started again
finishes it; every image exact."""

from __future__ import annotations

import copy
import re
import signal
import time

import numpy as np

from farm.client.film import read_exr
from tests import commands, frames
from tests.test_shot import animated


def detach(scene_path, output: str, broker: str, *more) -> str:
    started = time.monotonic()
    result = commands.run("submit", scene_path, "--detach", "-o", output, "--broker", broker, *more)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 30
    return re.match(r"([0-9a-f]{32}): handed to the farm's manager", result.stdout).group(1)


def test_detached_jobs_are_rendered_by_the_manager(farm, make_document, write_scene, tmp_path, device):
    out = tmp_path / "out"
    out.mkdir()
    manager = commands.start("manager", "--output-dir", out, "--broker", farm.broker_url, "--address", "127.0.0.1:0")
    try:
        still = make_document(width=32, height=24, spp=4)
        shot = animated(make_document(width=32, height=24, spp=4))
        still_id = detach(write_scene(still, "still.json"), "still.exr", farm.broker_url, "--name", "hero still")
        shot_id = detach(write_scene(shot, "shot.json"), "shot.exr", farm.broker_url, "--frames", "0-2", "--fps", "1")
        for job in (still_id, shot_id):
            result = commands.run("wait", job, "--broker", farm.broker_url, timeout=300)
            assert result.returncode == 0, result.stderr
        assert np.array_equal(read_exr(out / still_id / "still.exr"), frames.reference(device, still))
        for number in range(3):
            image = read_exr(out / shot_id / f"shot.{number:04d}.exr")
            assert np.array_equal(image, frames.reference(device, shot, time=float(number))), number
        listed = commands.run("jobs", "--broker", farm.broker_url).stdout
        assert f"{still_id}  hero still" in listed and f"{shot_id}  shot" in listed and listed.count("done") == 2, listed
    finally:
        manager.send_signal(signal.SIGTERM)
        commands.finish(manager, timeout=30)


def test_a_manager_killed_mid_shot_and_started_again_finishes_it(make_farm, make_document, write_scene, tmp_path,
                                                                 device):
    farm = make_farm([{"FARM_FAULTS": "stall=1@0"}, {"FARM_FAULTS": "stall=1@0"}], name="managed")
    out = tmp_path / "out"
    out.mkdir()
    shot = animated(make_document(width=32, height=32, spp=4))
    shot_id = detach(write_scene(shot), "shot.exr", farm.url, "--frames", "0-3", "--fps", "1", "--bucket-size", "16")
    manager = commands.start("manager", "--output-dir", out, "--broker", farm.url, "--address", "127.0.0.1:0")
    commands.wait_for(lambda: (out / shot_id / "shot.0000.exr").exists(), 120, "the first frame")
    manager.kill()
    commands.finish(manager, timeout=30)
    assert not (out / shot_id / "shot.0003.exr").exists(), "the kill came too late to test anything"
    manager = commands.start("manager", "--output-dir", out, "--broker", farm.url, "--address", "127.0.0.1:0")
    try:
        result = commands.run("wait", shot_id, "--broker", farm.url, timeout=300)
        assert result.returncode == 0, result.stderr
    finally:
        manager.send_signal(signal.SIGTERM)
        commands.finish(manager, timeout=30)
    for number in range(4):
        image = read_exr(out / shot_id / f"shot.{number:04d}.exr")
        assert np.array_equal(image, frames.reference(device, copy.deepcopy(shot), time=float(number))), number


def test_a_managed_shot_cancelled_ends_its_wait(make_farm, make_document, write_scene, tmp_path):
    """farm cancel SHOT while the manager renders it, and another still queued behind it:
    farm wait says cancelled (exit 1) for both, and the manager goes on to nothing else."""
    farm = make_farm([{"FARM_FAULTS": "stall=2@0"}, {"FARM_FAULTS": "stall=2@0"}], name="cancelled")
    out = tmp_path / "out"
    out.mkdir()
    shot = animated(make_document(width=32, height=32, spp=4))
    running = detach(write_scene(shot), "shot.exr", farm.url, "--frames", "0-30", "--fps", "10")
    queued = detach(write_scene(shot, "again.json"), "again.exr", farm.url, "--frames", "0-1", "--fps", "1")
    manager = commands.start("manager", "--output-dir", out, "--broker", farm.url, "--address", "127.0.0.1:0")
    try:
        from farm.manager.jobs import entry

        commands.wait_for(lambda: entry(farm.redis, running)["state"] == "running", 60, "the first shot to run")
        for job in (running, queued):
            assert commands.run("cancel", job, "--broker", farm.url).returncode == 0
        for job in (running, queued):
            result = commands.run("wait", job, "--broker", farm.url, timeout=60)
            assert result.returncode == 1 and f"job {job} cancelled" in result.stderr, result.stderr
    finally:
        manager.send_signal(signal.SIGTERM)
        commands.finish(manager, timeout=30)
    assert not (out / running / "shot.0030.exr").exists()


def test_a_detached_submit_needs_a_broker_and_wait_a_job(write_scene, make_document, tmp_path, farm):
    result = commands.run("submit", write_scene(make_document()), "--detach", "-o", tmp_path / "x.exr")
    assert result.returncode == 2 and "--detach hands the job to a farm's manager" in result.stderr.strip().splitlines()[-1]
    result = commands.run("wait", "0" * 32, "--broker", farm.broker_url)
    assert result.returncode == 2 and "no job 000" in result.stderr.strip().splitlines()[-1], result.stderr
