"""The retry policy: what happens to a bucket whose delivery went wrong (pure decisions)."""

from __future__ import annotations

import pytest

from farm.exceptions import AssetError, FarmError
from farm.protocol.deliveries import BucketView
from farm.protocol.queue import resend_step
from farm.protocol.recovery import Action, RetryPolicy

POLICY = RetryPolicy(max_failures=3, bad_worker_failures=2, pass_on_limit=2)


def seen(crashes=0, failures=0, last_error=""):
    return BucketView(stored=False, leases=(), crashes=crashes, failures=failures, last_error=last_error, now=0.0)


def never():
    raise AssertionError("not asked")


def test_a_fresh_bucket_is_rendered_without_asking_who_is_idle():
    assert POLICY.on_delivery(seen(), "w1@h", others_idle=never, passes=never).action is Action.RENDER


def test_a_bucket_that_went_wrong_too_often_fails_the_job_naming_both_causes():
    decision = POLICY.on_delivery(seen(crashes=1, failures=2, last_error="boom (on w2@h)"), "w1@h", never, never)
    assert decision.action is Action.GIVE_UP
    assert decision.reason == "3 attempts went wrong (raised 2 times, last: boom (on w2@h); killed its render process 1 time)"
    assert POLICY.on_lost(seen(crashes=3)).reason == "3 attempts went wrong (killed its render process 3 times)"


def test_a_bucket_failed_here_before_goes_to_an_idle_worker_a_bounded_number_of_times():
    failed_here = seen(failures=1, last_error="boom (on w1@h)")
    passes = iter([1, 2, 3])
    assert POLICY.on_delivery(failed_here, "w1@h", lambda: True, lambda: next(passes)).action is Action.PASS_ON
    assert POLICY.on_delivery(failed_here, "w1@h", lambda: True, lambda: next(passes)).action is Action.PASS_ON
    assert POLICY.on_delivery(failed_here, "w1@h", lambda: True, lambda: next(passes)).action is Action.RENDER
    assert POLICY.on_delivery(failed_here, "w1@h", lambda: False, never).action is Action.RENDER, "no one idle"
    assert POLICY.on_delivery(failed_here, "w2@h", never, never).action is Action.RENDER, "failed elsewhere"


@pytest.mark.parametrize("failures, action", [(1, Action.SEND_AGAIN), (2, Action.SEND_AGAIN), (3, Action.GIVE_UP)])
def test_a_failure_sends_the_bucket_again_until_the_limit(failures, action):
    assert POLICY.on_failure(seen(failures=failures, last_error="x"), FarmError("x")).action is action


def test_a_missing_asset_gives_up_at_once_with_its_own_message():
    decision = POLICY.on_failure(seen(failures=1), AssetError("tiles.png: chunk 0 of 1 missing"))
    assert decision.action is Action.GIVE_UP and decision.reason == "tiles.png: chunk 0 of 1 missing"


def test_a_worker_is_bad_after_its_limit_of_failures_in_a_row():
    assert not POLICY.worker_is_bad(1) and POLICY.worker_is_bad(2)


# -- Recovery: the decisions carried out, on a real Redis, with no farm ------------------


class SentLog:
    """A BucketQueue's `send`, recorded instead of published."""

    def __init__(self):
        self.sent = []

    def send(self, job_id, indexes, copy=False, priority=0, countdown=0.0, pool=None, resent=False):
        assert resent, "what recovery sends is sent again, and marked so (farm.worker.quick)"
        self.sent.append((list(indexes), copy, priority, countdown))

    def purge(self, job_id, pool=None):
        self.purged = job_id
        return 0


@pytest.fixture
def job(redis_server, make_document):
    import redis

    from farm.protocol.jobs import Job
    from farm.scene import parse_scene

    document = make_document(width=32, height=32, spp=2)
    client = redis.Redis.from_url(redis_server.url)
    return Job.create(client, Job.describe(parse_scene(document), 16, "spiral"), document)


def test_a_failed_bucket_is_sent_again_after_a_growing_back_off_then_fails_the_job(job, monkeypatch):
    from farm import defaults
    from farm.protocol.events import EventKind
    from farm.protocol.recovery import Recovery

    monkeypatch.setattr(defaults, "FAILURE_BACKOFF", 0.5)
    from farm.protocol import registry

    registry.beat(job.redis, "w2@h", busy=False)  # another worker is alive: w1 may be blocklisted
    queue = SentLog()
    recovery = Recovery(queue, RetryPolicy(max_failures=3))
    for failures in (1, 2):
        assert recovery.failed(job, 1, "w1@h", "boom", FarmError("boom")).action is Action.SEND_AGAIN
        assert queue.sent[-1] == ([1], False, resend_step(job.priority), 0.5 * 2 ** (failures - 1))
    # its second failure on w1 puts w1 on the job's blocklist (FARM_BLOCK_AFTER, 2)
    assert [event.kind for event in job.events.next(0)] == [EventKind.ERROR, EventKind.BLOCKED, EventKind.ERROR]
    assert list(job.blocklist.blocked()) == ["w1@h"]
    decision = recovery.failed(job, 1, "w2@h", "boom", FarmError("boom"))
    assert decision.action is Action.GIVE_UP and len(queue.sent) == 2, "nothing sent once the job fails"
    assert queue.purged == job.job_id, "its queued messages go with it"
    assert job.refresh() == "failed" and job.error == f"bucket 1 failed: {decision.reason}"
    assert job.stats.read().get("resent", 0) == 0, "a failure is counted in the failures hash, not as resent"


def test_every_cause_sends_as_its_rule_says_and_counts_its_statistic(job):
    from farm.protocol.recovery import RESENDS, Cause, Recovery

    queue = SentLog()
    recovery = Recovery(queue)
    for cause in (Cause.LOST_LEASE, Cause.VANISHED, Cause.LOST_JOB, Cause.REJECTED_TILE):
        recovery.resend(job, [2, 3], cause)
    recovery.resend(job, [0], Cause.STRAGGLER)
    assert queue.sent[-1] == ([0], True, resend_step(job.priority), 0.0)
    assert all(copy is False and countdown == 0.0 for _, copy, _, countdown in queue.sent[:-1])
    assert job.stats.read() == {"resent": 8, "copies": 1}


def test_a_rejected_tile_counts_as_a_failure_and_a_lost_bucket_too_often_fails_the_job(job):
    from farm.protocol.leases import Lease
    from farm.protocol.recovery import Recovery

    queue = SentLog()
    recovery = Recovery(queue, RetryPolicy(max_failures=2))
    assert recovery.rejected(job, 3, "tile rejected: bad tag", FarmError("bad tag")).action is Action.SEND_AGAIN
    assert queue.sent == [([3], False, resend_step(job.priority), 0.0)] and job.stats.read() == {"resent": 1}
    lease = Lease(3, 2, "w1@h", "h", 1, "cpu", 0.0, 0.0)
    job.deliveries.count_crash(3)  # what remove_lost counted
    decision = recovery.lost(job, [lease])
    assert decision.action is Action.GIVE_UP and "killed its render process 1 time" in decision.reason
    assert job.refresh() == "failed" and len(queue.sent) == 1


def test_a_worker_passes_a_bucket_it_failed_to_an_idle_one(job):
    from farm.protocol.recovery import Recovery

    queue = SentLog()
    recovery = Recovery(queue)
    job.deliveries.record_failure(0, "w1@h", "boom")
    seen = job.deliveries.view(0)
    assert recovery.before_render(job, 0, seen, "w1@h", others_idle=lambda: True).action is Action.PASS_ON
    assert queue.sent == [([0], False, resend_step(job.priority), 0.0)] and job.stats.read() == {"passed:0": 1}
    assert recovery.before_render(job, 0, seen, "w2@h", others_idle=lambda: True).action is Action.RENDER
