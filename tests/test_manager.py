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


def test_three_jobs_and_a_manager_killed_mid_render_and_started_again(make_farm, make_document, write_scene,
                                                                      tmp_path, device):
    """Three detached jobs on 2 workers: the manager SIGKILLed mid-render and started again
    finishes them all, several at once; every image bit-identical to an embedded render."""
    farm = make_farm([{"FARM_FAULTS": "stall=1@0"}, {"FARM_FAULTS": "stall=1@0"}], name="managed")
    out = tmp_path / "out"
    out.mkdir()
    shot = animated(make_document(width=32, height=32, spp=4))
    still = make_document(width=40, height=24, spp=8)
    other = make_document(width=24, height=24, spp=4)
    shot_id = detach(write_scene(shot), "shot.exr", farm.url, "--frames", "0-3", "--fps", "1", "--bucket-size", "16")
    still_id = detach(write_scene(still, "still.json"), "still.exr", farm.url, "--bucket-size", "8", "--priority", "70")
    other_id = detach(write_scene(other, "other.json"), "other.exr", farm.url, "--bucket-size", "8")
    lease = {"FARM_MANAGER_LEASE": "5"}  # the next manager leads once the killed one's lapses
    manager = commands.start("manager", "--output-dir", out, "--broker", farm.url, "--address", "127.0.0.1:0",
                             env=lease)
    commands.wait_for(lambda: (out / still_id / "still.exr").exists(), 120, "the first job's image")
    manager.kill()
    commands.finish(manager, timeout=30)
    assert not (out / shot_id / "shot.0003.exr").exists(), "the kill came too late to test anything"
    manager = commands.start("manager", "--output-dir", out, "--broker", farm.url, "--address", "127.0.0.1:0",
                             env=lease)
    try:
        for job in (shot_id, still_id, other_id):
            result = commands.run("wait", job, "--broker", farm.url, timeout=300)
            assert result.returncode == 0, result.stderr
    finally:
        manager.send_signal(signal.SIGTERM)
        _, _, stderr = commands.finish(manager, timeout=30)
    assert "adopted where it stood" in stderr, stderr
    for number in range(4):
        image = read_exr(out / shot_id / f"shot.{number:04d}.exr")
        assert np.array_equal(image, frames.reference(device, copy.deepcopy(shot), time=float(number))), number
    assert np.array_equal(read_exr(out / still_id / "still.exr"), frames.reference(device, still))
    assert np.array_equal(read_exr(out / other_id / "other.exr"), frames.reference(device, other))
    listed = commands.run("jobs", "--broker", farm.url).stdout
    assert listed.count(" done ") == 3 and " 70 " in listed, listed


def test_pause_resume_priority_and_retry_from_the_command_line(make_farm, make_document, write_scene, tmp_path,
                                                               device):
    """A paused job starts nothing more (its queued buckets taken back) while another job,
    given a higher priority, renders; resumed, it ends exact; what makes no sense is one line."""
    from farm.protocol.jobs import Job
    from farm.protocol.shots import ShotRecord

    farm = make_farm([{"FARM_FAULTS": "slow=4"}, {"FARM_FAULTS": "slow=4"}], name="paused")
    out = tmp_path / "out"
    out.mkdir()
    big = make_document(width=64, height=64, spp=1024)  # 64 buckets of about a fifth of a second
    small = make_document(width=32, height=16, spp=8)
    big_id = detach(write_scene(big, "big.json"), "big.exr", farm.url, "--bucket-size", "8")
    manager = commands.start("manager", "--output-dir", out, "--broker", farm.url, "--address", "127.0.0.1:0")
    try:
        frame_job = commands.wait_for(lambda: ShotRecord(farm.redis, big_id).jobs().get(0), 60, "the big job to run")
        job = Job.load(farm.redis, frame_job)
        commands.wait_for(lambda: job.tiles.stored(), 60, "a first tile")
        assert commands.run("pause", big_id, "--broker", farm.url).returncode == 0
        small_id = detach(write_scene(small, "small.json"), "small.exr", farm.url, "--bucket-size", "8")
        assert commands.run("priority", small_id, "90", "--broker", farm.url).returncode == 0
        result = commands.run("wait", small_id, "--broker", farm.url, timeout=120)
        assert result.returncode == 0, result.stderr
        time.sleep(1.0)  # the buckets rendering at the pause are in
        held = len(job.tiles.stored())
        time.sleep(2.0)
        assert len(job.tiles.stored()) == held, "a paused job's buckets went on starting"
        assert held < job.unit_count
        jobs_line = commands.run("jobs", "--broker", farm.url).stdout
        assert "running (paused)" in jobs_line and " 90 " in jobs_line, jobs_line
        assert commands.run("resume", big_id, "--broker", farm.url).returncode == 0
        result = commands.run("wait", big_id, "--broker", farm.url, timeout=300)
        assert result.returncode == 0, result.stderr
        assert np.array_equal(read_exr(out / big_id / "big.exr"), frames.reference(device, big))
        assert np.array_equal(read_exr(out / small_id / "small.exr"), frames.reference(device, small))
    finally:
        manager.send_signal(signal.SIGTERM)
        commands.finish(manager, timeout=30)
    result = commands.run("retry", big_id, "--broker", farm.url)
    assert result.returncode == 2 and "only a failed or cancelled job is retried" in result.stderr, result.stderr
    result = commands.run("priority", big_id, "101", "--broker", farm.url)
    assert result.returncode == 2 and "priority 101 is not from 0 to 100" in result.stderr, result.stderr


def test_a_managed_shot_cancelled_ends_its_wait_and_retried_renders(make_farm, make_document, write_scene,
                                                                    tmp_path, device):
    """farm cancel SHOT while the manager renders it, and another still queued behind it:
    farm wait says cancelled (exit 1) for both; farm retry queues the second again, and it
    renders exact."""
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
        assert commands.run("retry", queued, "--broker", farm.url).returncode == 0
        result = commands.run("wait", queued, "--broker", farm.url, timeout=120)
        assert result.returncode == 0, result.stderr
        for number in range(2):
            image = read_exr(out / queued / f"again.{number:04d}.exr")
            assert np.array_equal(image, frames.reference(device, copy.deepcopy(shot), time=float(number))), number
    finally:
        manager.send_signal(signal.SIGTERM)
        commands.finish(manager, timeout=30)
    assert not (out / running / "shot.0030.exr").exists()


def test_a_detached_submit_needs_a_broker_and_wait_a_job(write_scene, make_document, tmp_path, farm):
    result = commands.run("submit", write_scene(make_document()), "--detach", "-o", tmp_path / "x.exr")
    assert result.returncode == 2 and "--detach hands the job to a farm's manager" in result.stderr.strip().splitlines()[-1]
    result = commands.run("wait", "0" * 32, "--broker", farm.broker_url)
    assert result.returncode == 2 and "no job 000" in result.stderr.strip().splitlines()[-1], result.stderr


def test_a_detached_submit_of_a_256_bucket_frame_returns_at_once(write_scene, make_document, farm):
    """The upload is the scene (no files here): the whole command, Python's start included,
    returns in under 2 s, and hands over one frame of 256 buckets (nothing is queued yet:
    the manager sends the buckets)."""
    from farm.manager.jobs import entry

    result = commands.run("submit", write_scene(make_document(width=256, height=256, spp=4)), "--detach", "-o",
                          "big.exr", "--bucket-size", "16", "--broker", farm.broker_url, "--name", "<b>big</b>")
    assert result.returncode == 0, result.stderr
    assert result.seconds < 2.0, result.seconds
    job_id = result.stdout.split(":")[0]
    handed = entry(farm.redis, job_id)
    assert handed["state"] == "queued" and handed["name"] == "<b>big</b>" and handed["frames_total"] == 1
    farm.redis.delete(f"farm:manager:job:{job_id}")  # no manager runs here: leave the session's farm clean
