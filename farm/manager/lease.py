"""Which manager leads: a lease in Redis with a fencing token, so that two managers may run
and only one acts, and one that lost the lead (paused past its lease: a stopped process, a
long GC, a frozen VM) acts no more once it runs again.

The key `farm:manager:leader` holds "<token> <who>" and expires after FARM_MANAGER_LEASE
seconds unless its holder renews it (every third of that). Taking it when it is free
increments `farm:manager:epoch`: the token, larger than any before. Every write the manager
makes to the jobs' entries is a script that first checks the key still holds its token
(`fenced`); the rest it does (collecting tiles, writing a frame) it does only after `check`,
which says no once the lease may have lapsed by the manager's own monotonic clock: the end
it counts from is the moment it sent the renewal, before Redis set the new expiry, so its
own view of the lease ends first. A stopped process's clock runs on (CLOCK_MONOTONIC), so
one continued after its lease finds it gone before its next step (CLOCK_BOOTTIME also runs
through a suspended machine or a paused VM).
Cf. Kleppmann, "How to do distributed locking" (fencing tokens), and Kubernetes' leader
election (leases renewed at a fraction of their duration).
"""

from __future__ import annotations

import os
import socket
import threading
import time

from farm import defaults
from farm.exceptions import FarmError
from farm.manager.jobs import PREFIX

LEADER = f"{PREFIX}:leader"
EPOCH = f"{PREFIX}:epoch"


class LeaseLost(FarmError):
    """This manager no longer leads: it must not write anything more."""


# KEYS[1] the leader key, KEYS[2] the epoch; ARGV[1] who, ARGV[2] the lease in ms.
# The new token, or nil where another holds the lease.
_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return nil end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token .. ' ' .. ARGV[1], 'PX', ARGV[2])
return token
"""

# KEYS[1] the leader key; ARGV[1] the token, ARGV[2] the lease in ms. 1 renewed, 0 lost.
_RENEW = """
local held = redis.call('GET', KEYS[1])
if not held or string.match(held, '^%d+') ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# A fenced HSET: KEYS[1] the leader key, KEYS[2] the hash; ARGV[1] the token, then field,
# value pairs. 1 written, 0 the lease is not the token's (nothing written).
_FENCED_HSET = """
local held = redis.call('GET', KEYS[1])
if not held or string.match(held, '^%d+') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], unpack(ARGV, 2))
return 1
"""


def _clock() -> float:
    """Seconds that run on while the machine is suspended or its VM paused (CLOCK_BOOTTIME),
    where the system has such a clock; else the monotonic clock."""
    return time.clock_gettime(time.CLOCK_BOOTTIME) if hasattr(time, "CLOCK_BOOTTIME") else time.monotonic()


def who() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def leader(redis) -> tuple[int, str] | None:
    """(token, who) of the manager leading now, or None."""
    raw = redis.get(LEADER)
    if raw is None:
        return None
    token, _, holder = raw.decode(errors="replace").partition(" ")
    return (int(token), holder) if token.isdigit() else None


class Lease:
    def __init__(self, redis, seconds: float | None = None, name: str | None = None):
        self.redis = redis
        self.seconds = float(seconds or defaults.MANAGER_LEASE)
        self.name = name or who()
        self.token: int | None = None
        self._valid_until = 0.0  # monotonic: the end of the lease as this process counts it
        self._lost = threading.Event()
        self._stop = threading.Event()

    def acquire(self, stop: threading.Event, poll: float = 1.0) -> int:
        """Wait until this manager leads (or `stop` is set: LeaseLost); its token. Then
        renews the lease on a thread of its own until `release`."""
        while not stop.is_set():
            sent = _clock()
            token = self.redis.eval(_ACQUIRE, 2, LEADER, EPOCH, self.name, int(self.seconds * 1000))
            if token is not None:
                self.token, self._valid_until = int(token), sent + self.seconds
                threading.Thread(target=self._renew, name="farm-manager-lease", daemon=True).start()
                return self.token
            stop.wait(poll)
        raise LeaseLost("stopped before leading")

    def _renew(self) -> None:
        while not self._stop.wait(self.seconds / 3) and not self._lost.is_set():  # lost by its own count: let go
            sent = _clock()
            try:
                held = self.redis.eval(_RENEW, 1, LEADER, self.token, int(self.seconds * 1000))
            except Exception:  # the broker away a moment: the lease runs out on its own if it stays away
                continue
            if not held:
                self._lost.set()
                return
            self._valid_until = sent + self.seconds

    def check(self) -> None:
        """Raise LeaseLost unless this manager surely still leads (see the module's note)."""
        if self.token is None or self._lost.is_set() or _clock() >= self._valid_until:
            self._lost.set()
            raise LeaseLost(f"manager {self.name} lost the lead (token {self.token}): it writes nothing more")

    def fenced_hset(self, key: str, mapping: dict[str, str]) -> None:
        """HSET under the lease: nothing is written unless the leader key holds this token."""
        self.check()
        args = [item for pair in mapping.items() for item in pair]
        if not self.redis.eval(_FENCED_HSET, 2, LEADER, key, self.token, *args):
            self._lost.set()
            raise LeaseLost(f"manager {self.name} lost the lead (token {self.token}): it writes nothing more")

    def release(self) -> None:
        """Give the lead up (a manager stopping): the other takes over at once."""
        self._stop.set()
        if self.token is not None and not self._lost.is_set():
            self._lost.set()  # given up: this manager acts no more
            try:
                self.redis.eval("if string.match(redis.call('GET', KEYS[1]) or '', '^%d+') == ARGV[1] then "
                                "return redis.call('DEL', KEYS[1]) end return 0", 1, LEADER, self.token)
            except Exception:  # the broker away: the lease runs out on its own
                pass
