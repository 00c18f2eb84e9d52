"""Recovery: the one place that decides what happens to a bucket whose delivery went
wrong, and that sends every task but the first of each bucket.

A bucket a worker gives back without rendering it (it is stopping, bad, or has no
device) is no resend: `hand_back` has Celery requeue its own message, first in line.

The worker and the client only report what they saw (a delivery that raised, a lease
that lapsed, a tile that does not decode, a message that is nowhere, a bucket running
far longer than the others, a job whose record vanished); `Recovery` asks the retry
policy, then carries the decision out: the bucket is sent again with its cause's
back-off (at its job's priority), or the job fails with the reason. `RESENDS` is the whole table.

Cf. dramatiq's middleware/retries.py: one place decides retry, back-off and giving up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Callable, NoReturn

from celery.exceptions import Reject

from farm import defaults
from farm.exceptions import JobDataError
from farm.protocol.deliveries import BucketView
from farm.protocol.events import EventKind, TileEvent
from farm.protocol.jobs import Job
from farm.protocol.queue import resend_step


class Cause(StrEnum):
    """Why a bucket is sent again."""

    FAILED = "failed"  # its delivery raised (a worker saw it)
    PASSED_ON = "passed on"  # a worker it failed on before hands it to an idle one
    LOST_LEASE = "lost lease"  # its worker or render process died: the lease lapsed (the client saw it)
    REJECTED_TILE = "rejected tile"  # its tile did not decode or was not signed (the client saw it)
    VANISHED = "vanished message"  # neither a message nor a lease for LEASE_TIMEOUT (deleted, lost with Redis)
    STRAGGLER = "straggler copy"  # running far longer than the median bucket: a copy, first tile wins
    SPLIT = "split"  # its spare parts, for workers idle beside it at the frame's end (farm.client.spares)
    LOST_JOB = "lost job"  # the job's record vanished and its client created it again
    BLOCKED = "blocked"  # a worker that may not render it got it (the job's blocklist, another kernel): another takes it


# Times a bucket may be passed on by workers that may not render it (a blocklist, another
# kernel: Cause.BLOCKED), a second apart, before its job fails: ten minutes without a worker
# that may take it, where no client failed the job sooner.
MAX_PASSES = 600


@dataclass(frozen=True)
class Resend:
    """How a cause's buckets are sent again."""

    backoff: bool  # delayed FAILURE_BACKOFF, doubling with the bucket's failures
    stat: str | None  # the job's statistic it counts (JobStats), for the report; None: counted elsewhere
    copy: bool = False  # a second delivery of a bucket still rendering
    delay: float = 0.0  # seconds before a worker may start it (besides a back-off)


RESENDS = {
    Cause.FAILED: Resend(backoff=True, stat=None),  # counted in the failures hash
    Cause.PASSED_ON: Resend(backoff=False, stat=None),  # counted as passed:<bucket>
    Cause.LOST_LEASE: Resend(backoff=False, stat="resent"),  # and in the crashes hash
    Cause.REJECTED_TILE: Resend(backoff=False, stat="resent"),  # another worker makes it
    Cause.VANISHED: Resend(backoff=False, stat="resent"),
    Cause.STRAGGLER: Resend(backoff=False, stat="copies", copy=True),
    Cause.SPLIT: Resend(backoff=False, stat="splits"),
    Cause.LOST_JOB: Resend(backoff=False, stat="resent"),
    # a pause, so that a blocklisted worker that is the only one idle does not take it back at once
    Cause.BLOCKED: Resend(backoff=False, stat=None, delay=1.0),
}


class Action(StrEnum):
    RENDER = "render"  # take the bucket
    PASS_ON = "pass on"  # this worker failed it before and another is idle: queue it for that one
    SEND_AGAIN = "send again"  # the delivery failed or was lost: queue the bucket again
    GIVE_UP = "give up"  # fail the job: the bucket went wrong too often, or no worker could do better


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str = ""  # why the job fails, for GIVE_UP


@dataclass(frozen=True)
class RetryPolicy:
    """The decisions alone, from facts gathered by the caller (pure: testable as it is)."""

    # Deliveries of one bucket that may raise or die before the job fails (FARM_MAX_FAILURES).
    max_failures: int = field(default_factory=lambda: defaults.MAX_FAILURES)
    # Failures in a row after which a worker stops taking buckets (FARM_BAD_WORKER_FAILURES).
    bad_worker_failures: int = field(default_factory=lambda: defaults.BAD_WORKER_FAILURES)
    # Times one bucket may be passed on; after that a worker renders it whatever it did before.
    pass_on_limit: int = 10

    def on_delivery(self, seen: BucketView, worker: str, others_idle: Callable[[], bool],
                    passes: Callable[[], int]) -> Decision:
        """A worker is about to render a bucket. `others_idle()` says whether another healthy
        worker waits for work now (Redis hands a queued message to the client that has
        waited longest, so that worker gets a bucket passed on, not this one); `passes()`
        counts one more pass of this bucket and returns the count."""
        verdict = self.verdict(seen)
        if verdict:
            return Decision(Action.GIVE_UP, verdict)
        if worker in seen.last_error and others_idle() and passes() <= self.pass_on_limit:
            return Decision(Action.PASS_ON)
        return Decision(Action.RENDER)

    def on_failure(self, seen: BucketView, error: Exception) -> Decision:
        """A delivery raised `error`; `seen` already counts it."""
        if isinstance(error, JobDataError):  # the job's scene or files are bad: no worker could do better
            return Decision(Action.GIVE_UP, str(error))
        return self._again_unless_too_often(seen)

    def on_lost(self, seen: BucketView) -> Decision:
        """A delivery's worker or render process died; `seen` already counts the crash."""
        return self._again_unless_too_often(seen)

    def _again_unless_too_often(self, seen: BucketView) -> Decision:
        verdict = self.verdict(seen)
        return Decision(Action.GIVE_UP, verdict) if verdict else Decision(Action.SEND_AGAIN)

    def worker_is_bad(self, failed_in_a_row: int) -> bool:
        return failed_in_a_row >= self.bad_worker_failures

    def verdict(self, seen: BucketView) -> str:
        """Why the bucket has gone wrong too often, or "" while it may be tried again."""
        crashes, failures = seen.crashes, seen.failures
        if crashes + failures < self.max_failures:
            return ""
        parts = []
        if failures:
            parts.append(f"raised {failures} time{'s' if failures > 1 else ''}, last: {seen.last_error}")
        if crashes:
            parts.append(f"killed its render process {crashes} time{'s' if crashes > 1 else ''}")
        return f"{crashes + failures} attempts went wrong ({'; '.join(parts)})"

    def backoff(self, failures: int) -> float:
        """Seconds before a bucket that failed `failures` times is sent again (FAILURE_BACKOFF)."""
        if failures < 1 or defaults.FAILURE_BACKOFF <= 0:
            return 0.0
        return min(defaults.FAILURE_BACKOFF * 2 ** (failures - 1), defaults.LEASE_TIMEOUT / 4)


class Recovery:
    """Carries out the policy's decisions for one process (a worker's or a client's): the
    only sender of buckets besides a client's send window. `queue` is a BucketQueue (or
    anything with its `send`), the Job given to each call the job's record."""

    def __init__(self, queue, policy: RetryPolicy | None = None):
        self.queue = queue
        self.policy = policy or RetryPolicy()

    def resend(self, job, indexes: list[int], cause: Cause, failures: int = 0) -> None:
        """Send `indexes` again for `cause`, as RESENDS says (`failures`: of the bucket so
        far, for the back-off)."""
        rule = RESENDS[cause]
        delay = (self.policy.backoff(failures) if rule.backoff else 0.0) + rule.delay
        # at its job's priority, first in its band: every resend is late already
        self.queue.send(job.job_id, indexes, copy=rule.copy, priority=resend_step(job.priority), countdown=delay,
                        pool=job.pool, resent=True)
        if rule.stat:
            job.stats.count(rule.stat, len(indexes))

    def give_up(self, job, index: int, worker: str, reason: str) -> None:
        """Fail the job because of bucket `index`; its queued messages go with it, so no
        worker spends a turn on them (nor, for a fault every worker would meet, its health)."""
        job.fail(index, worker, reason)
        self.queue.purge(job.job_id, job.pool)

    def malformed(self, redis, job_id: str, index: int, worker: str, error: Exception) -> None:
        """A worker found the job's record malformed (MalformedJob: a field missing or not a
        number): the job's fault, the same on every worker, so the job fails once with the
        field named, and its queued messages go."""
        if Job.fail_record(redis, job_id, index, worker, f"bucket {index} failed: {error}"):
            self.queue.purge(job_id)

    # -- what a worker saw -------------------------------------------------------------

    def not_here(self, job, index: int, worker: str, why: str) -> bool:
        """A worker may not render bucket `index` (`why`: the job's blocklist, another kernel):
        it goes to another, after a pause. Passed on MAX_PASSES times (no worker that may
        render it took it, and no client failed the job meanwhile), the job fails with why;
        True then."""
        if job.stats.count(f"elsewhere:{index}") > MAX_PASSES:
            self.give_up(job, index, worker, f"no worker that may render bucket {index} took it in {MAX_PASSES} "
                                             f"passes (the last worker: {why})")
            return True
        self.resend(job, [index], Cause.BLOCKED)
        return False

    def before_render(self, job, index: int, seen: BucketView, worker: str,
                      others_idle: Callable[[], bool]) -> Decision:
        """A worker is about to render bucket `index` the long way (it went wrong before):
        the policy decides; a bucket gone wrong too often fails the job, one that failed on
        this worker before goes to an idle one. RENDER: the worker takes it."""
        decision = self.policy.on_delivery(seen, worker, others_idle=others_idle,
                                           passes=lambda: job.stats.count(f"passed:{index}"))
        if decision.action is Action.GIVE_UP:
            self.give_up(job, index, worker, decision.reason)
        elif decision.action is Action.PASS_ON:
            self.resend(job, [index], Cause.PASSED_ON)
        return decision

    def failed(self, job, index: int, worker: str, reason: str, error: Exception) -> Decision:
        """A delivery of bucket `index` raised `error` on `worker`: count it; send the bucket
        again (after its back-off) and tell the client, or fail the job."""
        failures = job.deliveries.record_failure(index, worker, reason)
        if not isinstance(error, JobDataError) and job.blocklist.failed(worker, reason, _spare(job, worker)):
            job.events.push(TileEvent(index, worker, EventKind.BLOCKED,
                                      f"{defaults.BLOCK_AFTER} of this job's buckets failed there, last: {reason}"))
        seen = job.deliveries.view(index)
        decision = self.policy.on_failure(seen, error)
        if decision.action is Action.GIVE_UP:
            self.give_up(job, index, worker, decision.reason)
        else:
            job.events.push(TileEvent(index, worker, EventKind.ERROR,
                                      f"{reason} (failure {seen.failures} of {self.policy.max_failures}); sent again"))
            self.resend(job, [index], Cause.FAILED, failures=failures)
        return decision

    # -- what a client saw -------------------------------------------------------------

    def rejected(self, job, index: int, reason: str, error: Exception) -> Decision:
        """The client found bucket `index`'s tile invalid (and deleted it): counted like a
        failed delivery, so a farm that only makes bad tiles ends."""
        job.deliveries.record_failure(index, "this client", reason)
        decision = self.policy.on_failure(job.deliveries.view(index), error)
        if decision.action is Action.GIVE_UP:
            self.give_up(job, index, "client", decision.reason)
        else:
            self.resend(job, [index], Cause.REJECTED_TILE)
        return decision

    def lost(self, job, leases) -> Decision:
        """Deliveries whose leases lapsed (removed, their crashes counted): a bucket that
        has gone wrong too often fails the job here, rather than on the next worker it
        would kill; else every bucket of them is sent again."""
        for lease in sorted(leases, key=lambda lease: lease.bucket):
            decision = self.policy.on_lost(job.deliveries.view(lease.bucket))
            if decision.action is Action.GIVE_UP:
                self.give_up(job, lease.bucket, lease.worker, decision.reason)
                return decision
        return Decision(Action.SEND_AGAIN)


def _spare(job, worker: str) -> Callable[[], bool]:
    """Whether another live, healthy worker may still render `job`: a worker is blocklisted
    only then (the last one left renders on, and the bucket's own failure limit decides)."""
    def spare() -> bool:
        from farm.protocol import registry

        workers = registry.workers(job.redis)
        return bool(set(workers) - {worker} - set(job.excluded(workers)))

    return spare


def hand_back(reason: str) -> NoReturn:
    """A worker gives its bucket back unrendered: Celery requeues the message (late acks),
    counted nowhere (not the bucket's fault), and this worker takes no more of it."""
    raise Reject(reason, requeue=True)
