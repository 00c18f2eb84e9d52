"""The jobs handed to the manager, as Redis keeps them: what `submit --detach`, `farm jobs`,
`farm wait`, `farm pause/resume/priority/retry/cancel` and the web UI read and write, and
the manager (farm.manager.service) renders.

A job is a shot already on the farm (its ShotRecord, farm.protocol.shots: a still is a shot
of one frame) plus the hash `farm:manager:job:<id>`, one JSON value per field: who and what
(name, owner, output, priority, submitted) and how it goes (state, paused, frames done,
progress, ETA, notices, error). The sorted set `farm:manager:jobs` lists them by submission;
the list `farm:manager:inbox` wakes the manager. A client changes only what is the user's to
change (paused, priority, a retry); state and progress are the leading manager's, written
under its lease's fencing token (farm.manager.lease): a manager that lost the lead writes
nothing. Cf. Deadline's job repository, Flamenco's job status.
"""

from __future__ import annotations

import getpass
import json
import time
from pathlib import Path

from farm import defaults
from farm.exceptions import FarmError

PREFIX = f"{defaults.KEY_PREFIX}:manager"
JOBS = f"{PREFIX}:jobs"
INBOX = f"{PREFIX}:inbox"
STATES = ("queued", "running", "done", "failed", "cancelled")
ENDED = ("done", "failed", "cancelled")
MAX_NAME = 200  # characters of a job's name
PRIORITIES = (0, 100)  # the least and the most: higher first; new jobs get DEFAULT_PRIORITY
DEFAULT_PRIORITY = 50
MAX_NOTICES = 50  # notices a job keeps, the newest
HISTORY = 7 * 24 * 3600  # seconds an ended job stays listed


def key_for(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}"


def hand_over(redis, shot_id: str, output: str, name: str | None = None, priority: int | None = None,
              frames: int = 1) -> dict:
    """Give a shot already on the farm (its record written) to the manager."""
    name = (name or output.split(".")[0])[:MAX_NAME]
    priority = DEFAULT_PRIORITY if priority is None else priority
    entry = {"output": output, "name": name, "owner": owner(), "state": "queued", "paused": False,
             "priority": check_priority(priority), "submitted": time.time(), "frames_total": frames,
             "frames_done": [], "progress": 0.0, "eta": None, "error": "", "notices": []}
    with redis.pipeline() as pipe:
        pipe.hset(key_for(shot_id), mapping={field: json.dumps(value) for field, value in entry.items()})
        pipe.zadd(JOBS, {shot_id: entry["submitted"]})
        pipe.rpush(INBOX, shot_id)
        pipe.execute()
    return entry


URL = f"{PREFIX}:url"  # the leading manager's web UI, as clients reach it
TOKEN = f"{PREFIX}:token"  # its token where FARM_MANAGER_TOKEN is not set


def manager_url(redis) -> str:
    """The leading manager's web UI, or "" (none leads, or it serves none)."""
    raw = redis.get(URL)
    return raw.decode(errors="replace") if raw else ""


def token(redis) -> str:
    """The token the managers' UI and API ask for: FARM_MANAGER_TOKEN, else one made by the
    first manager and kept in Redis (anyone who can reach the broker can run the farm anyway)."""
    if defaults.MANAGER_TOKEN:
        return defaults.MANAGER_TOKEN
    import secrets

    redis.set(TOKEN, secrets.token_urlsafe(24), nx=True)
    return redis.get(TOKEN).decode()


def eta(entry: dict) -> str:
    """A running job's ETA as `farm jobs` and the UI show it; "-" where there is none."""
    seconds = entry.get("eta")
    if entry["state"] != "running" or not isinstance(seconds, (int, float)):
        return "-"
    return time.strftime("%H:%M:%S", time.gmtime(seconds)) if seconds < 86400 else f"{seconds / 86400:.1f} days"


def owner() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def check_priority(value) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise FarmError(f"priority {value!r} is not a whole number from {PRIORITIES[0]} to {PRIORITIES[1]}") from None
    if not PRIORITIES[0] <= number <= PRIORITIES[1]:
        raise FarmError(f"priority {number} is not from {PRIORITIES[0]} to {PRIORITIES[1]}")
    return number


def entry(redis, job_id: str) -> dict | None:
    """One job's entry, checked (Redis is input from outside: a malformed one is None)."""
    return _checked(job_id, redis.hgetall(key_for(job_id)))


def entries(redis) -> dict[str, dict]:
    """Every job handed to a manager, by id, oldest first; those whose entry expired or is
    malformed left out (an expired one leaves the list)."""
    ids = [raw.decode() for raw in redis.zrange(JOBS, 0, -1)]
    with redis.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hgetall(key_for(job_id))
        raws = pipe.execute()
    found, gone = {}, []
    for job_id, raw in zip(ids, raws):
        if not raw:
            gone.append(job_id)
        elif (checked := _checked(job_id, raw)) is not None:
            found[job_id] = checked
    if gone:
        redis.zrem(JOBS, *gone)
    return found


def forget(redis, job_id: str) -> None:
    """An ended job leaves the list (the manager forgets those ended HISTORY ago)."""
    with redis.pipeline() as pipe:
        pipe.delete(key_for(job_id), f"{key_for(job_id)}:thumbnail")
        pipe.zrem(JOBS, job_id)
        pipe.execute()


def _checked(job_id: str, raw: dict) -> dict | None:
    try:
        fields = {key.decode(): json.loads(value) for key, value in raw.items()}
    except (ValueError, UnicodeDecodeError):
        return None
    output = fields.get("output")
    if fields.get("state") not in STATES or not isinstance(output, str) or Path(output).name != output \
            or output in ("", ".", ".."):
        return None  # an output name with a folder in it would let a Redis writer aim the manager's files anywhere
    fields["id"] = job_id
    for name, kind, default in (("name", str, ""), ("owner", str, ""), ("error", str, ""), ("paused", bool, False),
                                ("priority", int, DEFAULT_PRIORITY), ("frames_total", int, 1),
                                ("submitted", (int, float), 0.0), ("progress", (int, float), 0.0)):
        if not isinstance(fields.get(name), kind) or (kind is int and isinstance(fields.get(name), bool)):
            fields[name] = default
    if not (isinstance(fields.get("eta"), (int, float)) and 0 <= fields["eta"] < 1e9):
        fields["eta"] = None
    for name in ("frames_done", "notices", "files"):  # lists (an empty one may come back as {} from Lua)
        if not isinstance(fields.get(name), list):
            fields[name] = []
    return fields


# A client's change of what is the user's to change, where the job exists: KEYS[1] its
# hash; ARGV field, JSON value pairs. 0 where there is no such job.
_SET_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""

# A retry: a failed or cancelled job is queued again. KEYS[1] its hash. The state before,
# or nil where there is no such job.
_RETRY = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return nil end
if state == '"failed"' or state == '"cancelled"' then
  redis.call('HSET', KEYS[1], 'state', '"queued"', 'error', '""', 'ended', 'null')
end
return state
"""


def _must(redis, job_id: str, changes: dict) -> None:
    args = [item for field, value in changes.items() for item in (field, json.dumps(value))]
    if not redis.eval(_SET_IF_EXISTS, 1, key_for(job_id), *args):
        raise FarmError(f"no job {job_id} was handed to a manager (see farm jobs)")
    redis.rpush(INBOX, job_id)  # the manager looks at once


def pause(redis, job_id: str, paused: bool = True) -> None:
    """Pause a job (no frame or bucket of it starts; those rendering finish), or go on with it."""
    _must(redis, job_id, {"paused": paused})


def set_priority(redis, job_id: str, priority) -> None:
    """Higher first, for a job handed to the manager, a shot or one frame's job: the
    workers take the buckets of the highest band first (its clients send the buckets
    still queued again at the new priority within a second), and the manager starts the
    frames of the highest first."""
    from farm.protocol.record import JobRecord
    from farm.protocol.shots import ShotRecord

    priority = check_priority(priority)
    managed = bool(redis.exists(key_for(job_id)))
    if managed:
        _must(redis, job_id, {"priority": priority})
    shot = ShotRecord(redis, job_id)
    if shot.exists():
        shot.set_priority(priority)
    elif not JobRecord(redis, job_id).set_priority(priority) and not managed:
        raise FarmError(f"no job or shot {job_id} on the farm (see farm status, farm jobs)")


def retry(redis, job_id: str) -> None:
    """Queue a failed or cancelled job again: its frames written stay, the others render."""
    from farm.protocol.shots import ShotRecord

    state = redis.eval(_RETRY, 1, key_for(job_id))
    if state is None:
        raise FarmError(f"no job {job_id} was handed to a manager (see farm jobs)")
    state = json.loads(state)
    if state not in ("failed", "cancelled"):
        raise FarmError(f"job {job_id} is {state}: only a failed or cancelled job is retried")
    ShotRecord(redis, job_id).uncancel()
    redis.rpush(INBOX, job_id)


def cancel(redis, app, job_id: str) -> tuple[int, int]:
    """No frame of the job starts any more, the frames rendering stop (their queued buckets
    dropped, the running ones within PASS_SECONDS): (frames stopped, buckets dropped)."""
    from farm.protocol.jobs import Job
    from farm.protocol.queue import BucketQueue
    from farm.protocol.shots import ShotRecord

    shot = ShotRecord(redis, job_id)
    if not shot.exists():
        raise FarmError(f"job {job_id} is not on the farm")
    shot.cancel()
    stopped = []
    for frame_job in shot.jobs().values():
        try:
            job = Job.load(redis, frame_job)
        except FarmError:
            continue
        if not job.state:
            stopped.append(job)
    removed = sum(job.cancel(BucketQueue(redis, app)) for job in stopped)
    redis.rpush(INBOX, job_id)
    return len(stopped), removed
