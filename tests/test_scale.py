"""Several jobs on one farm, and the farm's own overhead: workers running the null
renderer (farm/tools/null.py), real `celery worker` processes on a real Redis, so what
is tested is the client, Redis and Celery alone."""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest

from farm.exceptions import JobError
from farm.scene import parse_scene
from farm.tools import null
from tests import commands
from tests.farms import PrivateFarm


@pytest.fixture(scope="module")
def null_farm(tmp_path_factory):
    farm = PrivateFarm(tmp_path_factory.mktemp("null"), worker_envs=({},) * 4, env={"FARM_NULL_RENDER": "1"},
                       name="null")
    yield farm
    farm.discard()


def _start(farm, document, bucket_size: int, null_seconds: float | None):
    from farm.client.start import start_job

    return start_job(farm.redis, farm.app, parse_scene(document), document, bucket_size, "spiral", null=null_seconds)


def test_a_small_job_behind_a_huge_one_goes_first_and_each_image_is_its_own(null_farm, make_document):
    """Item 5 of issue 14: a job of 64 buckets submitted while one of 512 has hundreds
    queued is rendered next (its batch goes out at a higher priority), not after the
    huge job; every tile lands in its own job's image, in its own place."""
    huge = _start(null_farm, make_document(256, 128, spp=1), 8, null_seconds=0.01)
    failures = []

    def collect_huge():
        try:
            huge.collect(stall_timeout=60)
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    collecting = threading.Thread(target=collect_huge)
    collecting.start()
    try:
        null_farm.wait_for(lambda: len(huge.records) >= 32, 60, "the huge job's first tiles")
        done_before = len(huge.records)
        queued_ahead = huge.total - len(huge.unsent) - done_before
        small = _start(null_farm, make_document(64, 64, spp=2), 8, null_seconds=0.01)
        small.collect(stall_timeout=60)
        huge_done = len(huge.records)
    finally:
        collecting.join(120)
    assert not failures, failures
    assert queued_ahead >= 200, f"the huge job had only {queued_ahead} buckets out: nothing for the small one to pass"
    # Behind the huge job's queue the small one would end after at least `queued_ahead` of
    # its buckets; going first, it ends while the huge job has done little more than before.
    assert huge_done - done_before < queued_ahead // 2, (done_before, huge_done, queued_ahead)
    assert np.array_equal(small.film.pixels, null.frame(64, 64, 2))
    assert np.array_equal(huge.film.pixels, null.frame(256, 128, 1))


def test_a_real_job_on_null_workers_fails_with_the_reason(null_farm, make_document):
    run = _start(null_farm, make_document(16, 16, spp=1), 8, null_seconds=None)
    with pytest.raises(JobError, match="renders no real job"):
        run.collect(stall_timeout=60)


def test_a_null_job_on_real_workers_fails_once_and_blames_no_worker(farm, make_document):
    from farm.protocol import registry

    run = _start(farm, make_document(16, 16, spp=1), 8, null_seconds=0.0)
    with pytest.raises(JobError, match="only workers started with FARM_NULL_RENDER"):
        run.collect(stall_timeout=60)
    assert not [w for w in registry.workers(farm.redis).values() if w.bad]


def test_bench_overhead_prints_the_farm_s_own_figures():
    # 1,024 buckets: a process's CPU is read in clock ticks of 10 ms, and the lean path
    # (issue 31) costs the client about 0.13 ms a bucket: 64 buckets could read 0 ticks
    result = commands.run("bench", "--overhead", "--workers", 2, "--width", 256, "--repeat", 1, timeout=300)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"overhead: 2 workers, null renderer .* = 1024 buckets", out), out
    assert re.search(r"wall: [\d.]+s per frame, \d+ tiles/s collected", out), out
    assert re.search(r"send: \d+ buckets/s inside BucketQueue.send", out), out
    assert re.search(r"latency from send to tile in the film: p50 \d+ ms, p99 \d+ ms", out), out
    parts = re.search(r"CPU per bucket: client ([\d.]+) ms, redis ([\d.]+) ms, workers ([\d.]+) ms; total ([\d.]+) ms",
                      out)
    assert parts, out
    client, redis, workers, total = map(float, parts.groups())
    assert client > 0 and redis > 0 and workers > 0  # measured, each process did work
    assert total == pytest.approx(client + redis + workers, abs=0.02)
    per_bucket = re.search(r"Redis commands per bucket: ([\d.]+) \(INFO commandstats, every client's\): (.*)$", out, re.M)
    assert per_bucket, out
    named = dict((name, float(count)) for name, count in re.findall(r"(\S+) ([\d.]+)(?:, |$)", per_bucket[2]))
    # each bucket is a task message pushed and popped, at least, and the parts add up
    assert named.get("lpush", 0) + named.get("rpush", 0) >= 1 and float(per_bucket[1]) >= 2
    assert float(per_bucket[1]) == pytest.approx(sum(named.values()), abs=0.05 * len(named) + 0.01)


def test_past_its_budget_of_task_events_a_client_shows_flower_a_sample_of_whole_tasks(null_farm, make_document,
                                                                                     monkeypatch):
    """Issue 31, item 3: with a budget of 40 task events a second (10 tasks), a job of 512
    quick buckets shows Flower about 10 tasks a second, each with all four of its events
    (sent, received, started, succeeded), and nothing of the others (quiet, their task id
    says so); the image is whole."""
    import base64
    import json

    from farm.protocol import flower

    monkeypatch.setattr(flower, "_budget", flower.Budget(events_per_second=40))
    pubsub = null_farm.redis.pubsub()
    pubsub.psubscribe("*celeryev/task.*")
    pubsub.get_message(timeout=5)
    seen: dict[str, list[str]] = {}
    stop = threading.Event()

    def listen():
        while not stop.is_set():
            message = pubsub.get_message(timeout=0.1)
            if message and message["type"] == "pmessage":
                body = json.loads(base64.b64decode(json.loads(message["data"])["body"]))
                for event in body if isinstance(body, list) else [body]:
                    seen.setdefault(event["uuid"], []).append(event["type"])

    listening = threading.Thread(target=listen)
    listening.start()
    try:
        run = _start(null_farm, make_document(256, 128, spp=1), 8, null_seconds=0.0)
        run.collect(stall_timeout=60)
        # Only this job's tasks: the events of an earlier test's failed job (a task-failed, its
        # other buckets dropped unrun) may still be on their way when this one starts.
        commands.wait_for(lambda: all("task-succeeded" in kinds for task, kinds in list(seen.items())
                                      if task.startswith(run.job.job_id)), 10, "the shown tasks' last events")
    finally:
        stop.set()
        listening.join(10)
    assert np.array_equal(run.film.pixels, null.frame(256, 128, 1))
    ours = {task: kinds for task, kinds in seen.items() if task.startswith(run.job.job_id)}
    assert ours and not [task for task in ours if flower.quiet(task)], "a quiet task made an event"
    for task, kinds in ours.items():
        assert sorted(kinds) == ["task-received", "task-sent", "task-started", "task-succeeded"], (task, kinds)
    seconds = run.wall_seconds
    assert 10 <= len(ours) <= 10 + 10 * seconds + 2, (len(ours), seconds)


def test_a_budget_of_task_events_refills_at_its_rate_and_holds_a_second_of_them():
    from farm.protocol import flower

    now = [100.0]
    budget = flower.Budget(events_per_second=400, clock=lambda: now[0])  # 100 tasks a second
    assert sum(budget.take() for _ in range(500)) == 100
    now[0] += 0.25
    assert sum(budget.take() for _ in range(500)) == 25
    now[0] += 60
    assert sum(budget.take() for _ in range(500)) == 100
    assert not any(flower.Budget(events_per_second=0).take() for _ in range(10))
    assert flower.quiet("a" * 32 + ".7.q1b2c3d4") and not flower.quiet("a" * 32 + ".7.01b2c3d4")
    assert flower.shown({"type": "task-failed", "uuid": "j.7.q1b2c3d4"})
    assert not flower.shown({"type": "task-started", "uuid": "j.7.q1b2c3d4"})
