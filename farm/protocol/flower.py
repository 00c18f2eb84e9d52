"""What Flower is shown: every bucket's task events while the farm is slow enough for
Flower to follow, a sample of whole tasks when it is not (issue 31).

Flower reads every task event and saturates one core at 3-4k events a second
(mher/flower#759); a bucket makes four (sent by the client; received, started, succeeded
by its worker), so a farm past about 800 buckets a second would leave Flower behind, and
ever further. Each process that sends buckets (a `submit`, a manager) shows at most
TASK_EVENTS events a second's worth of tasks (a token bucket, a second's worth at once);
the others go out quiet: their task id says so (its serial starts with QUIET), the client
sends no task-sent event for them, and their worker none of received, started or
succeeded (farm/worker/consumer.py). A quiet task that fails still says so. Flower then
shows a sample of whole tasks, each with all its events (none stays "received" for ever),
and farm's own metrics (farm/worker/metrics.py, `farm status`) count every bucket.
"""

from __future__ import annotations

import threading
import time

from farm import defaults

QUIET = "q"  # the first letter of a quiet task's serial (a serial is otherwise hex)
EVENTS_PER_TASK = 4  # task-sent, -received, -started, -succeeded
ROUTINE = frozenset({"task-sent", "task-received", "task-started", "task-succeeded"})  # what a quiet task does not send


def quiet(task_id: str) -> bool:
    """Whether the farm task `task_id` sends no routine event (see `ROUTINE`)."""
    return task_id.rsplit(".", 1)[-1][:1] == QUIET


def shown(event: dict) -> bool:
    """Whether a worker publishes task event `event` (Celery's, as buffered)."""
    return event.get("type") not in ROUTINE or not quiet(str(event.get("uuid", "")))


class Budget:
    """Tasks that may be shown: TASK_EVENTS / EVENTS_PER_TASK a second, a second's worth at once."""

    def __init__(self, events_per_second: float | None = None, clock=time.monotonic):
        events = defaults.TASK_EVENTS if events_per_second is None else events_per_second
        self.rate = max(0.0, events / EVENTS_PER_TASK)  # tasks a second
        self.clock = clock
        self._tokens, self._at = self.rate, clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Whether the next task is shown (one token)."""
        with self._lock:
            now = self.clock()
            self._tokens = min(self.rate, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False


_budget: Budget | None = None


def budget() -> Budget:
    """This process's budget, shared by every job it sends."""
    global _budget
    if _budget is None:
        _budget = Budget()
    return _budget
