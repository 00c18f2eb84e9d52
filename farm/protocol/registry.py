"""Which workers are alive, whether they are busy or bad, and how fast they render.

A worker's main process writes `farm:worker:<hostname>` on every Celery heartbeat (each
two seconds) with a lifetime of three, so a dead host's key is gone by the time its
buckets' leases lapse (LEASE_TIMEOUT, at least four seconds). A worker that keeps failing
buckets sets `farm:worker:<hostname>:bad` with its reason; a restart clears it. Its render
process keeps `farm:worker:<hostname>:speed`, its samples/s on the scene it renders
(farm.worker.speed), by which clients size a frame's buckets (farm.client.sizing).
"""

from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import asdict, dataclass

from farm import defaults

# Seconds a worker's key outlives its last heartbeat: one and a half of Celery's 2 s beats.
TTL = 3

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerRecord:
    """One worker as its last heartbeat described it."""

    hostname: str  # Celery node name, e.g. gpu0@render3
    host: str  # the machine's name
    pid: int  # the worker's main process
    busy: bool  # rendering a bucket now
    bad: str = ""  # why it stopped taking buckets; empty while it is healthy


# The farm's clock check, run by everything that touches Redis regularly (worker
# heartbeats, the client's reconciliation, a worker taking a bucket): note Redis's time,
# and if the previous note is older than ARGV[1] seconds, nobody could reach Redis for that
# long (it was stopped, swapping, or stalled on a slow disk), so the leases that lapsed
# meanwhile say nothing about their workers: mark a stall for ARGV[2] seconds. Returns 1
# while a stall is marked. (A lease renewed every quarter of LEASE_TIMEOUT lapses only
# after a gap of three quarters of it, hence the threshold callers pass.)
_CLOCK = """
local now = tonumber(redis.call('TIME')[1])
local last = tonumber(redis.call('GET', KEYS[1]))
redis.call('SET', KEYS[1], now)
if last and now - last > tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], now - last, 'EX', ARGV[2])
end
return redis.call('EXISTS', KEYS[2])
"""


def check_clock(redis) -> object:
    """Run the clock check on `redis` (a client, or a pipeline to queue it on); 1 while
    lapsed leases are not to be taken as lost."""
    keys = (f"{defaults.KEY_PREFIX}:clock", f"{defaults.KEY_PREFIX}:stalled")
    return redis.eval(_CLOCK, 2, *keys, 0.75 * defaults.LEASE_TIMEOUT, int(defaults.LEASE_TIMEOUT + 1))


def key_for(hostname: str, part: str = "") -> str:
    base = f"{defaults.KEY_PREFIX}:worker:{hostname}"
    return f"{base}:{part}" if part else base


def beat(redis, hostname: str, busy: bool, pid: int | None = None) -> None:
    """Say this worker is alive, and whether it is rendering: from its main process on each
    heartbeat, and from its render process (`pid` = the main process) as a bucket starts
    and ends, so an idle worker shows at once."""
    record = WorkerRecord(hostname, socket.gethostname(), pid or os.getpid(), busy)
    redis.set(key_for(hostname), json.dumps(vars(record)), ex=TTL)


def forget(redis, hostname: str) -> None:
    redis.delete(key_for(hostname))


def clear_bad(redis, hostname: str) -> None:
    redis.delete(key_for(hostname, "bad"))


def mark_bad(redis, hostname: str, reason: str) -> None:
    redis.set(key_for(hostname, "bad"), reason, ex=defaults.JOB_TTL)


def describe(redis, hostname: str, about: dict) -> None:
    """What a worker renders with (its device, its kernel's identity), for the manager's UI."""
    redis.set(key_for(hostname, "about"), json.dumps(about), ex=defaults.JOB_TTL)


def about(redis, hostnames: list[str]) -> dict[str, dict]:
    """What each of `hostnames` said it renders with (`describe`), where it said."""
    found = {}
    for name, raw in zip(hostnames, redis.mget([key_for(name, "about") for name in hostnames]) if hostnames else []):
        try:
            value = json.loads(raw) if raw else None
        except ValueError:
            continue
        if isinstance(value, dict):
            found[name] = {key: str(value.get(key, "")) for key in ("device", "kernel", "farm", "driver", "tags")}
    return found


# A worker's speed is written when it changes by more than this share, or on a new scene:
# a few writes a scene, not one a bucket (a bucket's own speed varies with what it sees).
SPEED_CHANGE = 0.2
# ... and again after this many seconds, so its key (kept JOB_TTL) outlives a steady worker
# and a note lost with a failed store is made again.
SPEED_REFRESH = 60.0
# Samples/s a worker may claim: a slow CPU on a huge scene to a thousand GPUs' worth.
SPEEDS = (1.0, 1e13)


@dataclass(frozen=True)
class Speed:
    """A worker's samples per second over the buckets it rendered of one scene."""

    scene: str  # the scene's digest (JobMeta.digest)
    samples_per_second: float


def note_speed(redis, hostname: str, speed: Speed) -> None:
    """Say how fast this worker renders (from its render process; `redis` may be a pipeline):
    what sizes a frame's buckets (farm.client.sizing). Kept JOB_TTL, past a restart."""
    redis.set(key_for(hostname, "speed"), json.dumps(vars(speed)), ex=defaults.JOB_TTL)


def speeds(redis, hostnames: list[str]) -> dict[str, Speed]:
    """The last speed each of `hostnames` noted (`note_speed`), where it noted a plausible one
    (anyone with broker access can write the key: a number out of SPEEDS is left out)."""
    found = {}
    for name, raw in zip(hostnames, redis.mget([key_for(name, "speed") for name in hostnames]) if hostnames else []):
        try:
            speed = Speed(**json.loads(raw)) if raw else None
            rate = speed.samples_per_second if speed is not None else None
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not isinstance(speed.scene, str):
                continue
            rate = float(rate)
        except (TypeError, ValueError, OverflowError):
            continue
        if SPEEDS[0] <= rate <= SPEEDS[1]:
            found[name] = Speed(speed.scene, rate)
    return found


def workers(redis) -> dict[str, WorkerRecord]:
    """Every live worker by hostname, with its bad reason where it has one."""
    keys = [k for k in redis.scan_iter(match=key_for("*"), count=500)
            if not k.endswith((b":bad", b":about", b":speed"))]
    if not keys:
        return {}
    found = {}
    for raw in redis.mget(keys):
        if raw is None:  # expired between scan and read
            continue
        try:
            record = WorkerRecord(**json.loads(raw))
        except (TypeError, ValueError):
            continue
        found[record.hostname] = record
    if found:
        reasons = redis.mget([key_for(name, "bad") for name in found])
        for name, reason in zip(list(found), reasons):
            if reason:
                found[name] = WorkerRecord(**{**asdict(found[name]), "bad": reason.decode(errors="replace")})
    return found


def healthy(redis) -> int:
    """How many live workers are not bad: those a job's buckets can go to now."""
    return sum(not record.bad for record in workers(redis).values())
