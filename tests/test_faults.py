"""Faults against real parts: a redis-server with an append-only file, `celery worker`
subprocesses, the `submit` / `farm` commands as subprocesses, and real signals.

Each test renders a small frame whose buckets take about a second (FARM_FAULTS=slow
sleeps between passes, so two workers fit on a 2-core machine), injects one fault, and
checks that every bucket is in the image exactly once and that the image equals a
one-process render bit for bit (or, where the job must fail or be cancelled, that it
ends clearly and keeps what was rendered). Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from farm.client.film import read_exr
from farm.protocol.jobs import Job
from farm.protocol.queue import priority_for, queue_lists
from farm.protocol.record import JobRecord
from tests import frames
from tests.commands import finish, run
from tests.farms import PrivateFarm

LEASE_TIMEOUT = 4.0  # the least farm allows
BUCKETS = 9  # a 48x48 frame in 16px buckets
# Workers: short leases, short passes (so a stop takes effect fast), every bucket slowed
# (15x: about a second a bucket with the kernel of late 2026 on a 2-core CPU; a kill must
# land mid-bucket).
WORKER_ENV = {"FARM_LEASE_TIMEOUT": str(LEASE_TIMEOUT), "FARM_PASS_SECONDS": "0.05", "FARM_FAULTS": "slow=15"}
CLIENT_ENV = {"FARM_LEASE_TIMEOUT": str(LEASE_TIMEOUT), "FARM_BROKER_RETRY": "60"}

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def frame(cornell_document, tmp_path_factory, device):
    """The scene file and its one-process render: the image every faulty run must equal."""
    document = dict(cornell_document, film={"width": 48, "height": 48, "spp": 256})
    path = tmp_path_factory.mktemp("scene") / "scene.json"
    path.write_text(json.dumps(document))
    return path, frames.reference(device, document)


@pytest.fixture
def fault_farm(make_farm):
    """`fault_farm(*worker_envs)`: a private farm with an append-only Redis, short leases and
    slowed workers, each worker with its own faults (two workers without any by default)."""

    def make(*worker_envs: dict) -> PrivateFarm:
        return make_farm(list(worker_envs) or [{}, {}], env=WORKER_ENV, appendonly=True, client_env=CLIENT_ENV)

    return make


def submit(farm: PrivateFarm, scene: Path, output: Path, env: dict | None = None) -> subprocess.Popen:
    """`submit` of `scene` to `farm` in 16 px buckets, its report beside `output`."""
    return farm.farm("submit", scene, "-o", output, "--bucket-size", 16, "-q", "--report", output.with_suffix(".json"),
                     env=env)


def assert_exact_frame(output: Path, reference: np.ndarray, returncode: int, stderr: str) -> dict:
    """The frame is complete, every bucket once, and equal to the one-process render."""
    assert returncode == 0, stderr
    report = json.loads(output.with_suffix(".json").read_text())
    assert [b["index"] for b in report["buckets"]] == list(range(BUCKETS)), "every bucket exactly once"
    assert np.array_equal(read_exr(output), reference)
    return report


def test_render_process_killed_mid_bucket(fault_farm, frame, tmp_path):
    scene, reference = frame
    farm = fault_farm({}, {})
    client = submit(farm, scene, tmp_path / "out.exr")
    job = farm.job()
    lease = farm.lease(job)
    os.kill(lease.pid, signal.SIGKILL)
    returncode, _, stderr = finish(client)
    report = assert_exact_frame(tmp_path / "out.exr", reference, returncode, stderr)
    assert job.deliveries.attempts()[lease.bucket] >= 2, "the bucket was rendered again"
    assert f"render process {lease.pid} of worker {lease.worker} died: bucket {lease.bucket}" in stderr
    assert report["lost_deliveries"] >= 1
    # Celery's pool logs it when it reaps the child, which may be after the frame is done
    farm.wait_for(lambda: "WorkerLostError" in farm.log(int(lease.worker[1]) - 1), 15, "Celery to see its child die")
    assert_report_page(tmp_path, report, lost_bucket=lease.bucket)


def assert_report_page(tmp_path: Path, report: dict, lost_bucket: int) -> None:
    """`farm report` draws the run: a rectangle per bucket on the map in its worker's colour,
    a bar per bucket in its worker's lane, the lost delivery outlined and marked in time."""
    import xml.etree.ElementTree as ElementTree

    result = run("report", tmp_path / "out.json", "-o", tmp_path / "out.html")
    assert result.returncode == 0 and "out.html: the bucket map" in result.stdout, result.stderr
    page = (tmp_path / "out.html").read_text()
    svgs = re.findall(r"<svg.*?</svg>", page, re.S)
    assert len(svgs) == 2
    bucket_map, timeline = (ElementTree.fromstring(svg) for svg in svgs)
    ns = "{http://www.w3.org/2000/svg}"
    buckets = [rect for rect in bucket_map.iter(f"{ns}rect") if rect.get("class") == "bucket"]
    assert len(buckets) == BUCKETS and {rect.get("data-worker") for rect in buckets} == {
        bucket["worker"] for bucket in report["buckets"]}
    colour = {rect.get("data-worker"): rect.get("fill") for rect in buckets}
    assert len(set(colour.values())) == len(colour), "one colour per worker"
    lost = next(rect for rect in buckets if rect.find(f"{ns}title").text.startswith(f"bucket {lost_bucket}:"))
    assert lost.get("stroke") == "#d00"
    spans = [rect for rect in timeline.iter(f"{ns}rect") if rect.get("class") == "span"]
    assert len(spans) == BUCKETS and sum(rect.get("stroke") == "#d00" for rect in spans) >= 1
    notices = [line for line in timeline.iter(f"{ns}line") if line.get("class") == "notice"]
    assert any(f"bucket {lost_bucket}" in line.find(f"{ns}title").text for line in notices)


def test_whole_worker_killed_its_bucket_comes_back_in_time(fault_farm, frame, tmp_path):
    scene, reference = frame
    farm = fault_farm({}, {})
    client = submit(farm, scene, tmp_path / "out.exr")
    job = farm.job()
    lease = farm.lease(job, "w1")
    farm.workers[0].kill(signal.SIGKILL)  # the process group: main process and render process
    killed = time.monotonic()
    farm.wait_for(lambda: job.tiles.has(lease.bucket), 60, f"bucket {lease.bucket} to be rendered elsewhere")
    recovered = time.monotonic() - killed
    returncode, _, stderr = finish(client)
    assert_exact_frame(tmp_path / "out.exr", reference, returncode, stderr)
    # Two valid recoveries, each with its notice: the client finds the lapsed lease first (and
    # reassigns the bucket, or finds Celery did), or the other worker takes the bucket again
    # and finds the dead render process (same host) or the lapsed lease itself.
    worker, bucket = re.escape(lease.worker), lease.bucket
    assert re.search(rf"worker {worker} lost \(no heartbeat for 4s\): bucket {bucket} "
                     r"(reassigned|already back in the queue|rendering again)", stderr) or re.search(
        rf"render process {lease.pid} of worker {worker} died: bucket {bucket} rendering again", stderr), stderr
    # lease timeout + one reconcile + one bucket (w2 may be mid-bucket: two) + slack for a busy machine
    assert recovered < LEASE_TIMEOUT + 1 + 2 * 3 + 5, f"took {recovered:.1f}s"


def test_sigterm_mid_bucket_hands_the_bucket_back(fault_farm, frame, tmp_path):
    scene, reference = frame
    farm = fault_farm({}, {})
    client = submit(farm, scene, tmp_path / "out.exr")
    job = farm.job()
    lease = farm.lease(job, "w1")
    farm.workers[0].kill(signal.SIGTERM)  # as `kill -TERM -pgid`, or a container stopping
    farm.wait_for(lambda: not farm.workers[0].alive(), 30, "worker 1 to stop")
    returncode, _, stderr = finish(client)
    assert_exact_frame(tmp_path / "out.exr", reference, returncode, stderr)
    assert f"bucket {lease.bucket}: worker shutting down, bucket handed back" in farm.log(0)
    assert "WorkerLostError" not in farm.log(0)
    assert job.deliveries.crashes(lease.bucket) == 0, "a bucket handed back is not a crash"


def _two_tiles_in(fault_farm, frame, tmp_path: Path, env: dict | None = None):
    """A farm of two workers, a `submit` of the frame to it, and its job, once two tiles
    are stored."""
    farm = fault_farm({}, {})
    client = submit(farm, frame[0], tmp_path / "out.exr", env=env)
    job = farm.job()
    farm.wait_for(lambda: len(job.tiles.stored()) >= 2, 60, "two tiles")
    return farm, client, job


def test_redis_killed_and_restarted_mid_frame(fault_farm, frame, tmp_path):
    reference = frame[1]
    farm, client, _ = _two_tiles_in(fault_farm, frame, tmp_path)
    farm.redis_server.kill()
    time.sleep(2.0)  # not a wait: an outage of two seconds, for the clients to find Redis gone
    farm.redis_server.start()  # same port, same append-only file
    returncode, _, stderr = finish(client)
    assert_exact_frame(tmp_path / "out.exr", reference, returncode, stderr)
    for worker in farm.workers:
        assert worker.alive(), "workers ride out the outage"


def test_redis_restarted_without_its_data_mid_frame(fault_farm, frame, tmp_path):
    """The job's record is lost with the restart: the client uploads the scene again and
    sends every bucket it has no tile of; before, it resent into the void for ever."""
    reference = frame[1]
    farm, client, job = _two_tiles_in(fault_farm, frame, tmp_path)
    farm.redis_server.kill()
    for aof in tmp_path.glob("appendonly*"):  # Redis 7+ and Valkey keep it as a folder, appendonlydir
        shutil.rmtree(aof) if aof.is_dir() else aof.unlink()
    farm.redis_server.start()
    returncode, _, stderr = finish(client)
    assert_exact_frame(tmp_path / "out.exr", reference, returncode, stderr)
    assert f"job {job.job_id[:8]} vanished from Redis (restarted without persistence?): scene uploaded again" in stderr


def test_a_worker_without_its_device_takes_no_buckets_and_the_job_ends(make_farm, frame, tmp_path):
    """Before, it said "ready", showed as idle, and every bucket raised in it for ever while
    the client resent them."""
    from farm.protocol import registry

    scene, _ = frame
    farm = make_farm([{"FARM_DEVICE": "no-such-device"}], client_env={"FARM_NO_HEALTHY_WORKER_TIMEOUT": "3"})
    farm.wait_for(lambda: any(w.bad for w in registry.workers(farm.redis).values()), 60, "the worker to say so")
    _, out, _ = finish(farm.farm("status"))
    assert "bad: no usable OpenCL device: FARM_DEVICE='no-such-device' matches no OpenCL device" in out
    started = time.monotonic()
    returncode, _, stderr = finish(farm.farm("submit", scene, "-o", tmp_path / "out.exr", "-q"), timeout=60)
    assert returncode == 2, stderr
    assert re.match(r"submit: error: no worker can render this job: every worker stopped taking buckets "
                    r"\(w1@\S+: no usable OpenCL device: FARM_DEVICE='no-such-device' matches", stderr.splitlines()[-1])
    assert "no bucket had finished: no partial image written" in stderr
    assert time.monotonic() - started < 15
    # Celery logs the hand-back of a bucket that came before its consumer was cancelled
    assert farm.log(0).count("Traceback") <= 2


def test_a_stopped_render_process_is_not_called_dead(fault_farm, frame, tmp_path):
    """SIGSTOP: its lease lapses and the bucket is rendered elsewhere, and the notice says
    what happened (before: "render process N died"); once it runs again it is harmless.
    No copies of stragglers: a copy that finishes the stopped bucket before its lease
    lapses leaves nothing to notice (this test failed so once, on a loaded machine)."""
    scene, reference = frame
    farm = fault_farm({}, {})
    client = submit(farm, scene, tmp_path / "out.exr", env={"FARM_SPECULATE": "0"})
    job = farm.job()
    lease = farm.lease(job, "w1")
    os.kill(lease.pid, signal.SIGSTOP)
    try:
        farm.wait_for(lambda: job.tiles.has(lease.bucket), 60, f"bucket {lease.bucket} to be rendered elsewhere")
    finally:
        os.kill(lease.pid, signal.SIGCONT)
    returncode, _, stderr = finish(client)
    assert_exact_frame(tmp_path / "out.exr", reference, returncode, stderr)
    assert f"render process {lease.pid} of worker {lease.worker} stopped renewing its lease but still runs" in stderr
    assert "died" not in stderr


def test_a_stalled_redis_loses_no_worker(fault_farm, frame, tmp_path):
    """Redis stopped for longer than the lease timeout: every lease lapses meanwhile, but
    nobody could renew it; no worker is called lost or dead, nothing is rendered twice.
    The render processes come back two seconds after Redis, as when their connections
    broke in the stall and reconnect with backoff; the client looks in between."""
    scene, reference = frame
    farm = fault_farm({}, {})
    client = submit(farm, scene, tmp_path / "out.exr")
    job = farm.job()
    farm.wait_for(lambda: len(job.tiles.stored()) >= 2 and job.deliveries.leases(), 60, "two tiles and a running bucket")
    renderers = {lease.pid for lease in job.deliveries.leases()}
    farm.redis_server.process.send_signal(signal.SIGSTOP)
    for pid in renderers:
        os.kill(pid, signal.SIGSTOP)
    time.sleep(LEASE_TIMEOUT + 2)  # not a wait: the stall itself, every lease let lapse
    farm.redis_server.process.send_signal(signal.SIGCONT)
    time.sleep(2)  # not a wait: the render processes stay stopped two seconds after Redis
    for pid in renderers:
        os.kill(pid, signal.SIGCONT)
    returncode, _, stderr = finish(client)
    report = assert_exact_frame(tmp_path / "out.exr", reference, returncode, stderr)
    assert report["lost_deliveries"] == 0 and not report["notices"], stderr


def test_queued_message_deleted_by_hand(fault_farm, frame, tmp_path):
    scene, reference = frame
    farm = fault_farm({}, {})
    # no straggler copies: on a loaded machine the resent bucket, the frame's last, got one
    # (a second delivery) while it rendered
    client = submit(farm, scene, tmp_path / "out.exr", env={"FARM_SPECULATE": "0"})
    job = farm.job()
    waiting = queue_lists()[priority_for(1)]  # the list of a job of the default priority with few buckets
    farm.wait_for(lambda: farm.redis.llen(waiting) >= 3, 30, "queued buckets")
    newest = farm.redis.lindex(waiting, 0)  # the last one workers will take
    bucket = int(json.loads(newest)["headers"]["id"].split(".")[1])
    assert farm.redis.lrem(waiting, 1, newest) == 1
    returncode, _, stderr = finish(client)
    report = assert_exact_frame(tmp_path / "out.exr", reference, returncode, stderr)
    assert f"bucket {bucket} had no message and no worker for 4s: sent again" in stderr
    assert report["resent"] >= 1 and job.deliveries.attempts()[bucket] == 1


def test_a_slow_bucket_is_rendered_once_while_its_lease_lives(fault_farm, frame, tmp_path):
    """A bucket held 6 s (past the lease timeout of 4, several renewals) is neither taken for
    lost nor delivered again: its lease, renewed by its render process, is all that says it
    runs (no acknowledgement emulation with its own timeout: farm.celeryconfig)."""
    scene, reference = frame
    slow = {"FARM_FAULTS": "stall=6@4"}
    farm = fault_farm(slow, slow)
    client = submit(farm, scene, tmp_path / "out.exr", env={"FARM_SPECULATE": "0"})
    returncode, _, stderr = finish(client)
    assert_exact_frame(tmp_path / "out.exr", reference, returncode, stderr)
    assert "sent again" not in stderr and "lost" not in stderr, stderr
    assert farm.job().deliveries.attempts()[4] == 1, "the slow bucket was delivered once"


def test_poison_bucket_fails_the_job_instead_of_looping(fault_farm, frame, tmp_path):
    scene, reference = frame
    poison = {"FARM_FAULTS": "slow=15,crash=4", "FARM_MAX_FAILURES": "2"}
    farm = fault_farm(poison, poison)
    started = time.monotonic()
    returncode, _, stderr = finish(submit(farm, scene, tmp_path / "out.exr"))
    assert returncode == 2, stderr
    last = stderr.strip().splitlines()[-1]
    # two, or three when a resend raced Celery's own requeue; never more than that
    assert re.fullmatch(r"submit: error: bucket 4 failed: ([23]) attempts went wrong "
                        r"\(killed its render process \1 times\)", last), stderr
    assert time.monotonic() - started < 90
    job = farm.job()
    assert job.state == "failed" and 2 <= job.deliveries.attempts()[4] <= 3
    partial = read_exr(tmp_path / "out.partial.exr")
    stored = job.tiles.stored()
    assert stored and 4 not in stored
    regions = [np.s_[b.y : b.y + b.height, b.x : b.x + b.width] for b in map(job.bucket, sorted(stored))]
    kept = sum(np.array_equal(partial[region], reference[region]) for region in regions)
    assert kept >= len(stored) - 1, "what was rendered is kept (one may land after the client gave up)"
    assert all(np.array_equal(partial[r], reference[r]) or not partial[r].any() for r in regions)


def test_failing_bucket_fails_the_job_with_its_error(fault_farm, frame, tmp_path):
    scene, _ = frame
    failing = {"FARM_FAULTS": "fail=4", "FARM_MAX_FAILURES": "3"}
    farm = fault_farm(failing, failing)
    returncode, _, stderr = finish(submit(farm, scene, tmp_path / "out.exr"))
    assert returncode == 2, stderr
    assert stderr.strip().splitlines()[-1].startswith(
        "submit: error: bucket 4 failed: 3 attempts went wrong (raised 3 times, last: injected failure on bucket 4")
    assert "bucket 4 failed on w" in stderr  # the earlier failures were told as they happened


def test_bad_worker_is_reported_and_its_buckets_go_elsewhere(fault_farm, frame, tmp_path):
    scene, reference = frame
    farm = fault_farm({}, {"FARM_FAULTS": "fail=all", "FARM_BAD_WORKER_FAILURES": "2"})
    returncode, _, stderr = finish(submit(farm, scene, tmp_path / "out.exr"))
    report = assert_exact_frame(tmp_path / "out.exr", reference, returncode, stderr)
    assert {b["worker"].split("@")[0] for b in report["buckets"]} == {"w1"}
    assert "worker w2@" in stderr and "stopped taking buckets: 2 buckets in a row failed" in stderr
    status = farm.farm("status")
    _, out, _ = finish(status)
    assert "w2@" in out and "bad: 2 buckets in a row failed" in out


def test_stragglers_get_a_copy_and_the_first_tile_wins(fault_farm, frame, tmp_path):
    scene, reference = frame
    farm = fault_farm({}, {"FARM_FAULTS": "slow=200"})  # w2 is very slow: 13x w1
    returncode, _, stderr = finish(submit(farm, scene, tmp_path / "out.exr", env={"FARM_SPECULATE": "1.5"}))
    report = assert_exact_frame(tmp_path / "out.exr", reference, returncode, stderr)
    assert report["copies"] >= 1
    assert {b["worker"].split("@")[0] for b in report["buckets"]} == {"w1"}, "the copy won"
    farm.wait_for(lambda: re.search(r"bucket \d+: (stopped, (another worker finished it first|job done)|"
                                    r".*\(duplicate, discarded\))", farm.log(1)), 30, "the slow worker to give up")


def test_cancel_stops_the_job_and_frees_the_workers(fault_farm, tmp_path, cornell_document):
    scene = tmp_path / "scene.json"  # buckets of several seconds: the cancel lands in the middle of some
    scene.write_text(json.dumps(dict(cornell_document, film={"width": 48, "height": 48, "spp": 2048})))
    farm = fault_farm({}, {})
    client = submit(farm, scene, tmp_path / "out.exr")
    job = farm.job()
    farm.wait_for(lambda: job.tiles.stored() and job.deliveries.leases(), 60, "a tile and a running bucket")
    returncode, out, stderr = finish(farm.farm("cancel", job.job_id))
    assert returncode == 0 and f"job {job.job_id} cancelled" in out, stderr
    cancelled = time.monotonic()
    farm.wait_for(lambda: not job.deliveries.leases(), 5, "running buckets to stop")
    assert time.monotonic() - cancelled < 3, "workers free within a second or two"
    logs = "".join(path.read_text() for path in tmp_path.glob("worker-*.log"))
    assert "stopped, job cancelled" in logs
    # a bucket stopped by the cancel is no failure: not counted, not sent again, no worker blamed
    assert farm.redis.hgetall(job.deliveries.errors_key) == {} and "failed" not in logs
    returncode, _, stderr = finish(client)
    assert returncode == 2 and f"job {job.job_id} was cancelled" in stderr.strip().splitlines()[-1]
    assert "failed" not in stderr, stderr
    assert (tmp_path / "out.partial.exr").exists()
    assert not any(job.job_id.encode() in m for name in queue_lists() for m in farm.redis.lrange(name, 0, -1)), \
        "nothing left queued"
    # the next job runs at once, on free workers
    small = tmp_path / "small.json"
    small.write_text(json.dumps(dict(cornell_document, film={"width": 16, "height": 16, "spp": 4})))
    started = time.monotonic()
    returncode, _, stderr = finish(submit(farm, small, tmp_path / "small.exr"))
    assert returncode == 0, stderr
    assert time.monotonic() - started < 20


def test_client_killed_then_resumed(fault_farm, frame, tmp_path):
    """The client keeps a window of 3 buckets sent ahead, so it dies with buckets it never
    sent; `farm collect` sends those (the job records how many went out) and nothing is lost."""
    reference = frame[1]
    farm, client, job = _two_tiles_in(fault_farm, frame, tmp_path, env={"FARM_SEND_WINDOW": "3", "FARM_SEND_BATCH": "1"})
    client.kill()
    client.wait()
    assert job.sent() < BUCKETS, "it died before sending every bucket"
    _, out, _ = finish(farm.farm("status"))
    assert job.job_id in out and ("rendering" in out or "complete" in out)
    returncode, _, stderr = finish(farm.farm("collect", job.job_id, "-o", tmp_path / "out.exr",
                                             "--report", tmp_path / "out.json"))
    assert_exact_frame(tmp_path / "out.exr", reference, returncode, stderr)
    assert Job.load(farm.redis, job.job_id).state == "done"
    assert 0 < farm.redis.ttl(JobRecord.key_for(job.job_id)) <= 3600, "a finished job's keys expire"


def test_the_tail_splits_itself_across_the_idle_workers_and_the_frame_is_exact(make_farm, frame, tmp_path):
    """Bucket 4 (the spiral's first) renders a hundred times slower on whichever worker takes
    it: once the other buckets are done, the two idle workers render its samples in two parts,
    and their sums are the bucket's bits; the slow delivery stops."""
    scene, reference = frame
    env = {**WORKER_ENV, "FARM_FAULTS": "slow=100@4"}
    farm = make_farm([{}, {}, {}], env=env, appendonly=True, client_env=CLIENT_ENV)
    started = time.monotonic()
    returncode, _, stderr = finish(farm.farm("submit", scene, "-o", tmp_path / "out.exr", "--bucket-size", 16,
                                             "--split-tail", "--report", tmp_path / "out.json"))
    seconds = time.monotonic() - started
    report = json.loads((tmp_path / "out.json").read_text())
    assert returncode == 0, stderr
    assert np.array_equal(read_exr(tmp_path / "out.exr"), reference)
    assert re.search(r"bucket 4 split in 2 parts for the idle workers \([\d.]+s left on ", stderr), stderr
    (four,) = [b for b in report["buckets"] if b["index"] == 4]
    assert four["worker"].startswith("split: ")
    farm.wait_for(lambda: "bucket 4: stopped" in "".join(farm.log(i) for i in range(3)), 30, "the slow delivery to stop")
    assert seconds < 30, "far sooner than the slow delivery alone (about 100 x its bucket)"
