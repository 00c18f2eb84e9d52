"""Quick deliveries (farm.worker.quick): short buckets rendered before they are taken, and
taken and stored in one round trip, without a lease. Real `celery worker` processes of
the null renderer (whose buckets take the seconds their job says, so each is quick
after its process's first of the job) on a real Redis; the faults are real kills."""

from __future__ import annotations

import re
import signal
import time

import numpy as np
import pytest

from farm.exceptions import JobError
from farm.scene import parse_scene
from farm.tools import null
from tests.farms import PrivateFarm

LEASE_TIMEOUT = 4


def _farm(tmp_path, worker_env: dict | None = None) -> PrivateFarm:
    env = {"FARM_NULL_RENDER": "1", "FARM_LEASE_TIMEOUT": str(LEASE_TIMEOUT), **(worker_env or {})}
    return PrivateFarm(tmp_path, worker_envs=({}, {}), env=env, name="quick")


def _start(farm, document, null_seconds: float, order: str = "spiral"):
    from farm.client.start import start_job

    run = start_job(farm.redis, farm.app, parse_scene(document), document, 8, order, null=null_seconds)
    run.lease_timeout = LEASE_TIMEOUT
    return run


def _calls(farm) -> dict[str, int]:
    return {name.removeprefix("cmdstat_"): stats["calls"] for name, stats in farm.redis.info("commandstats").items()}


def _quick_lines(farm) -> int:
    return sum(len(re.findall(r"bucket \d+: [\d.]+s on \S+, quick", farm.log(i))) for i in range(2))


def test_short_buckets_are_taken_and_stored_in_one_round_trip(tmp_path, make_document):
    farm = _farm(tmp_path)
    try:
        commands = _calls(farm)
        run = _start(farm, make_document(64, 64, spp=2), 0.0)
        run.collect(stall_timeout=60)
        after = _calls(farm)
        assert np.array_equal(run.film.pixels, null.frame(64, 64, 2))
        # Each render process takes its first bucket of the job under a lease (it learns the
        # job's record), and every one after that quickly.
        quick = _quick_lines(farm)
        assert quick >= run.total - 2, f"{quick} of {run.total} buckets quick"
        attempts = run.job.deliveries.attempts()
        assert all(attempts.get(i) == 1 for i in range(run.total)), attempts
        assert run.job.deliveries.leases() == []
        # No lease written for a quick one: the leases' HSETs are the slow buckets' alone
        # (the registry's and speed's HSETs aside, a handful a second)
        leases_written = after.get("hset", 0) - commands.get("hset", 0)
        assert leases_written < run.total // 2, (leases_written, run.total)
    finally:
        farm.discard()


def test_a_render_process_dying_in_a_quick_bucket_is_counted_when_celery_delivers_it_again(tmp_path, make_document):
    """A quick bucket has no lease to lapse: the crash is seen in Celery's second delivery,
    marked redelivered, which takes the long way and counts the crashes from then on. A
    poison bucket still fails its job, within a bounded time.

    Which worker gets the second delivery is Celery's choice. The crashed worker's new
    render process never held the job, so it has no quick path to refuse, and the header's
    check goes unexercised. Where that happens, the frame runs again on a fresh farm, at
    most three times."""
    poison = 40  # top-down: the 41st bucket, long after each process's first
    for attempt in range(3):
        folder = tmp_path / f"farm{attempt}"
        folder.mkdir()
        farm = _farm(folder, {"FARM_FAULTS": f"crash={poison}", "FARM_MAX_FAILURES": "2"})
        try:
            run = _start(farm, make_document(64, 64, spp=2), 0.0, order="top-down")
            started = time.monotonic()
            with pytest.raises(JobError, match=rf"bucket {poison} failed: [23] attempts went wrong \(killed its "
                                               rf"render process [23] times\)"):
                run.collect(stall_timeout=60)
            assert time.monotonic() - started < 60
            assert 2 <= run.job.deliveries.attempts()[poison] <= 3
            logs = farm.log(0) + farm.log(1)
            assert "quick" in logs
            # the process that knew the job took the bucket the long way when Celery delivered it again
            if f"bucket {poison}: delivered again by Celery, taken first" in logs:
                return
        finally:
            farm.discard()
    pytest.fail(f"in three farms, Celery never gave bucket {poison}'s second delivery to a process that held the job")


def test_a_worker_killed_amid_quick_buckets_loses_no_bucket(tmp_path, make_document):
    """Its bucket in flight (and the message it had fetched) had no lease: the client finds
    it neither queued nor leased at two looks QUICK_CONFIRM apart, and sends it again."""
    farm = _farm(tmp_path)
    try:
        run = _start(farm, make_document(128, 128, spp=1), 0.02)
        notices, killed = [], []

        def on_bucket(_record) -> None:
            if not killed and len(run.records) >= 40:
                farm.workers[0].kill(signal.SIGKILL)  # the process group: main process and render process
                killed.append(True)

        run.collect(on_bucket=on_bucket, on_notice=notices.append, stall_timeout=60)
        assert killed and len(run.records) == run.total
        assert np.array_equal(run.film.pixels, null.frame(128, 128, 1))
        sent_again = [int(m.group(1)) for n in notices
                      for m in [re.search(r"buckets? (\d+).* had no message and no worker for \d+s: sent again", n)] if m]
        assert sent_again, notices
        # the worker left, which knew the job, took the message sent again the long way
        assert f"bucket {sent_again[0]}: sent again, taken first" in farm.log(1)
    finally:
        farm.discard()
