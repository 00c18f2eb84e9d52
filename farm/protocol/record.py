"""A job's record: the hash `farm:job:<id>`, holding its description (JobMeta), its state
and how many of its buckets the client has sent. Its name is the prefix of every other
key of the job; the classes that own those keys build their names from `key_for`."""

from __future__ import annotations

import time
from enum import StrEnum

from farm import defaults
from farm.exceptions import JobVanished
from farm.protocol.description import JobMeta

# Fail a running job, unless it has already ended (the first reason stands) or is gone.
_FAIL = """
if redis.call('HEXISTS', KEYS[1], 'job_id') == 0 then return -1 end
local state = redis.call('HGET', KEYS[1], 'state')
if state and state ~= '' then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'error', ARGV[2], 'finished', ARGV[3])
return 1
"""

# Set a field of a job's hash only while the job exists (never create a partial record).
_SET_IF_EXISTS = """
if redis.call('HEXISTS', KEYS[1], 'job_id') == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


def priority_of(raw) -> int:
    """A job's priority as its record gives it (bytes, or None for a job of before
    priorities): 0-100, the default where it is missing or not a number."""
    try:
        return min(100, max(0, int(raw)))
    except (TypeError, ValueError):
        return defaults.DEFAULT_PRIORITY


def ids_of(redis, key_for):
    """The ids whose record `key_for(id)` is in Redis: the keys beside a record (its
    parts, `<record>:<part>`) are not records."""
    for key in redis.scan_iter(match=key_for("*"), count=500):
        name = key.decode().rsplit(":", 1)[-1]
        if key.decode() == key_for(name):
            yield name


class JobState(StrEnum):
    """A job's `state` field. A worker takes any value but RUNNING as the job's end."""

    RUNNING = ""
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


class JobRecord:
    """The hash `farm:job:<id>` and every operation on it."""

    def __init__(self, redis, job_id: str):
        self.redis = redis
        self.job_id = job_id
        self.key = self.key_for(job_id)

    @staticmethod
    def key_for(job_id: str) -> str:
        return f"{defaults.KEY_PREFIX}:job:{job_id}"

    @staticmethod
    def part_key(job_id: str, part: str) -> str:
        """The name of another key of the job (`farm:job:<id>:<part>`); only its owner asks."""
        return f"{JobRecord.key_for(job_id)}:{part}"

    @classmethod
    def ids(cls, redis):
        """The id of every job whose record is in Redis (its parts' keys are not jobs)."""
        return ids_of(redis, cls.key_for)

    @staticmethod
    def parse(job_id: str, raw: dict[bytes, bytes]) -> tuple[JobMeta, str, str]:
        """(description, state, error) of the record that reads `raw`; JobVanished if there is none."""
        if not raw or b"job_id" not in raw:
            raise JobVanished(f"job {job_id} does not exist (finished and expired, deleted, or lost with a "
                              f"Redis restart)")
        return JobMeta.from_redis(raw), _text(raw.get(b"state")), _text(raw.get(b"error"))

    def write(self, pipe, meta: JobMeta, priority: int = defaults.DEFAULT_PRIORITY, kernel: str = "",
              mixed: bool = False, require: tuple[str, ...] = ()) -> None:
        """Queue on `pipe` the new record of `meta` at `priority`, for workers whose kernel
        sources have the digest `kernel` (farm.protocol.identity; "": any), of one kernel
        identity unless `mixed`, on workers holding the tags `require`, living JOB_TTL.
        `parts`: its deliveries' hashes exist from its start and keep their expiry
        (Deliveries.create), so a worker's script need not renew it. `quick`: its client marks
        what it sends again (farm.protocol.queue.RESENT), so its short buckets may be quick
        deliveries (farm.worker.quick)."""
        pipe.hset(self.key, mapping={**meta.to_redis(), "priority": str(int(priority)), "kernel": kernel,
                                     "mixed": "1" if mixed else "", "require": ",".join(require),
                                     "parts": "1", "quick": "1"})
        pipe.expire(self.key, defaults.JOB_TTL)

    def state(self) -> tuple[str, str, int, str]:
        """The job's (state, error, priority, pin) now; JobVanished if its record is gone."""
        job_id, state, error, priority, pin = self.redis.hmget(self.key, "job_id", "state", "error", "priority", "pin")
        if job_id is None:
            raise JobVanished(f"job {self.job_id} vanished from Redis (expired, deleted, or lost with a restart)")
        return _text(state), _text(error), priority_of(priority), _text(pin)

    def pin(self, kernel: str) -> str:
        """Pin the job to kernel identity `kernel` unless it is pinned already; the pin."""
        self.redis.hsetnx(self.key, "pin", kernel)
        return _text(self.redis.hget(self.key, "pin"))

    def set_priority(self, priority: int) -> bool:
        """`farm priority JOB N`: the job's client sends its waiting buckets again at it;
        False where there is no such job."""
        return bool(self.redis.eval(_SET_IF_EXISTS, 1, self.key, "priority", int(priority)))

    def read_state(self, pipe) -> None:
        """Queue on `pipe` the read of (state, error) as raw bytes; `decode_state` reads the reply."""
        pipe.hmget(self.key, "state", "error")

    @staticmethod
    def decode_state(reply) -> tuple[str, str]:
        state, error = reply
        return _text(state), _text(error)

    def finish(self, pipe, state: str, error: str = "") -> None:
        """Queue on `pipe` the record of how the job ended."""
        assert state in set(JobState) - {JobState.RUNNING}
        pipe.hset(self.key, mapping={"state": state, "error": error, "finished": time.time()})

    def fail(self, reason: str) -> int:
        """Fail the running job: 1; 0 if it had already ended (the first reason stands); -1 if gone."""
        return self.redis.eval(_FAIL, 1, self.key, JobState.FAILED, reason, time.time())

    def reopen(self) -> None:
        """A done job runs again, for a client that collects it anew."""
        self.redis.hset(self.key, "state", JobState.RUNNING)

    def record_sent(self, count: int) -> None:
        """How many tasks, in the job's order, its client has sent so far."""
        self.redis.eval(_SET_IF_EXISTS, 1, self.key, "sent", count)

    def sent(self, unit_count: int) -> int:
        """How many tasks, in the job's order, have been sent (all, for a job that does not
        say: its client sent everything at once)."""
        value = self.redis.hget(self.key, "sent")
        try:
            return max(0, min(int(value), unit_count)) if value is not None else unit_count
        except ValueError:
            return unit_count

    def running_and_sent(self) -> tuple[bool, int | None]:
        """Whether the job runs, and the tasks its client has sent (None: it does not say)."""
        state, sent = self.redis.hmget(self.key, "state", "sent")
        return not state, int(sent) if sent is not None else None

    def unattended(self) -> int:
        """Seconds since the job's expiry was last pushed ahead (its client does that each 30 s)."""
        return defaults.JOB_TTL - self.redis.ttl(self.key)


def _text(value: bytes | None) -> str:
    return (value or b"").decode()


class JobPart:
    """A key of a job beside its record, `farm:job:<id>:<PART>`, owned by the subclass
    that names PART and holds every operation on it."""

    PART = ""

    def __init__(self, redis, job_id: str):
        self.redis = redis
        self.job_id = job_id
        self.key = self.key_for(job_id)

    @classmethod
    def key_for(cls, job_id: str) -> str:
        return JobRecord.part_key(job_id, cls.PART)

