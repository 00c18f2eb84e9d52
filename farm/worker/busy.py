"""Whether a worker renders, as its render process tells the registry: only when it
changes. A bucket's start says busy unless busy was said in the last SAY_AGAIN seconds
(the main process's heartbeat, every 2 s, may have said idle between two buckets); its
end says idle only IDLE_AFTER (farm.defaults) later, if no other bucket started
meanwhile. A worker taking bucket after bucket writes about once a second, not twice a
bucket (issue 31's lean path: those were a sixth of a bucket's Redis commands), and an
idle one still shows within IDLE_AFTER, for the client's splits and straggler copies
(farm.client.spares) to count on it."""

from __future__ import annotations

import logging
import threading
import time

from farm import defaults
from farm.protocol import registry

log = logging.getLogger(__name__)

SAY_AGAIN = 1.0  # seconds


class BusySign:
    def __init__(self, redis, pid: int):
        self.redis, self.pid = redis, pid  # pid: the worker's main process
        self._lock = threading.Lock()
        self._said: bool | None = None  # what the registry was last told by this process
        self._said_at = 0.0  # when (time.monotonic())
        self._started = 0  # buckets started: an idle timer that sees a later one says nothing

    def starting(self, hostname: str):
        """A bucket starts: the command saying so, to add to that round trip (`also(pipe)`),
        or None where the registry says busy already."""
        with self._lock:
            self._started += 1
            now = time.monotonic()
            if self._said is True and now - self._said_at < SAY_AGAIN:
                return None
            self._said, self._said_at = True, now
        return lambda pipe: registry.beat(pipe, hostname, busy=True, pid=self.pid)

    def ended(self, hostname: str) -> None:
        """A bucket ended: say idle in IDLE_AFTER unless another starts first."""
        with self._lock:
            started = self._started
        timer = threading.Timer(defaults.IDLE_AFTER, self._idle, args=(hostname, started))
        timer.daemon = True
        timer.start()

    def _idle(self, hostname: str, started: int) -> None:
        with self._lock:
            if self._started != started or self._said is False:
                return
            self._said, self._said_at = False, time.monotonic()
        try:
            registry.beat(self.redis, hostname, busy=False, pid=self.pid)
        except Exception as exc:  # the broker is away: the main process's heartbeat tells it later
            with self._lock:
                self._said = None
            log.debug("worker registry not updated: %s", exc)
