"""The one place that decides what happens to a bucket whose delivery went wrong: render
it, pass it on to another worker, send it again, or give up and fail the job; and when a
worker is bad. The worker asks before it takes a bucket and after one fails; the
client's reconciliation asks when it finds a lost delivery. The policy only decides;
the caller gathers the facts and carries the decision out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Callable

from farm import defaults
from farm.exceptions import JobDataError
from farm.protocol.jobs import BucketView


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
