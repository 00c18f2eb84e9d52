"""A job's record in Redis, as either side sees it: its description, state, counters,
tiles and leases, and the scene it renders.

Everything a job owns lives under `farm:job:<id>` (the scene under `farm:scene:<digest>`,
shared by jobs of the same scene). Workers write tiles into the job's hash, first write
wins, and push an event the client blocks on; nothing travels through a result backend.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import cached_property

import numpy as np

from farm import defaults
from farm.buckets import Bucket, bucket_at, count, order, split
from farm.exceptions import FarmError, InvalidTile, JobDataError, JobError, JobVanished, SceneError
from farm.protocol.assets import RedisAssets, size_text
from farm.protocol.description import JobMeta
from farm.protocol.broker import server_time
from farm.protocol.events import EventKind, TileEvent
from farm.protocol.leases import Lease, parse_leases
from farm.protocol.queue import BucketQueue
from farm.protocol import registry, secret
from farm.protocol.plans import Plan
from farm.protocol.tiles import TileHeader, decode_tile, encode_tile
from farm.scene import Scene

log = logging.getLogger(__name__)

# Store a tile only if none is stored yet (first write wins), then announce it; a later
# copy is only counted. Refuses (-1) once the job's keys are gone (expired or deleted).
_STORE_TILE = """
local ttl = redis.call('TTL', KEYS[4])
if ttl < 0 then return -1 end
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('RPUSH', KEYS[2], ARGV[3])
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
  return 1
end
redis.call('HINCRBY', KEYS[3], 'duplicates', 1)
redis.call('EXPIRE', KEYS[3], ttl)
return 0
"""

# Add to a counter in one of the job's hashes, which then expires with the job's own key
# (or after JOB_TTL if that is gone): no counter outlives its job.
_BUMP = """
local value = redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
local ttl = redis.call('TTL', KEYS[2])
if ttl < 0 then ttl = tonumber(ARGV[3]) end
redis.call('EXPIRE', KEYS[1], ttl)
return value
"""

# Both scripts below take KEYS: the job, and its tiles, leases, crashes, failures and
# attempts; ARGV: the bucket, JOB_TTL, LEASE_TIMEOUT, and the lease's draft JSON (a Lease
# without its attempt and times). This part counts a delivery of the bucket and writes its
# lease at Redis's clock, lasting LEASE_TIMEOUT.
_START_DELIVERY = """
local attempt = redis.call('HINCRBY', KEYS[6], ARGV[1], 1)
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then ttl = tonumber(ARGV[2]) end
redis.call('EXPIRE', KEYS[6], ttl)
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
local lease = cjson.decode(ARGV[4])
lease['attempt'] = attempt
lease['started'] = now
lease['until'] = now + tonumber(ARGV[3])
redis.call('HSET', KEYS[3], ARGV[1] .. '.' .. attempt, cjson.encode(lease))
redis.call('EXPIRE', KEYS[3], ARGV[2])
"""

# Start a delivery, what a worker does once the retry policy says render (Job.begin).
# Returns the attempt and Redis's TIME.
_BEGIN = _START_DELIVERY + "return {attempt, time[1], time[2]}"

# A worker's first look at a bucket, and its start when the bucket is plainly fresh: the
# job exists and runs, the index is one of its buckets, no tile, no lease, no crash and
# no failure of it. Then it starts the delivery and returns {1, the job's hash, attempt,
# TIME}; else it changes nothing and returns {0}, and the worker looks again the long way
# (Job.look, the retry policy, Job.begin).
_TAKE = """
local job = redis.call('HGETALL', KEYS[1])
local fields = {}
for i = 1, #job, 2 do fields[job[i]] = job[i + 1] end
if not fields['job_id'] or (fields['state'] or '') ~= '' then return {0} end
local size = tonumber(fields['bucket_size']) or 0
local bucket = tonumber(ARGV[1])
if size < 1 or bucket >= math.ceil((tonumber(fields['width']) or 0) / size)
                             * math.ceil((tonumber(fields['height']) or 0) / size)
                           + (tonumber(fields['tail']) or 0) * (tonumber(fields['split']) or 0) then return {0} end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return {0} end
if redis.call('HEXISTS', KEYS[4], ARGV[1]) == 1 or redis.call('HEXISTS', KEYS[5], ARGV[1]) == 1 then return {0} end
local prefix = ARGV[1] .. '.'
for _, name in ipairs(redis.call('HKEYS', KEYS[3])) do
  if string.sub(name, 1, #prefix) == prefix then return {0} end
end
""" + _START_DELIVERY + "return {1, job, attempt, time[1], time[2]}"

# Delete a tile only if it is still the one that was judged invalid.
_DISCARD_TILE = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
"""


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


class JobState(StrEnum):
    """A job's `state` field. A worker takes any value but RUNNING as the job's end."""

    RUNNING = ""
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


@dataclass(frozen=True)
class BucketView:
    """What a job's record says of one bucket at one moment (see `Job.look`)."""

    stored: bool  # a tile of it is stored
    leases: tuple[Lease, ...]  # running deliveries of any bucket of the job
    crashes: int  # deliveries of it whose render process died
    failures: int  # deliveries of it that raised
    last_error: str
    now: float  # Redis clock
    stalled: bool = False  # Redis just came back from a stall: lapsed leases say nothing (registry.check_clock)

    @classmethod
    def from_replies(cls, stored, leases, crashes, failures, last_error, time_, stalled) -> BucketView:
        return cls(bool(stored), tuple(parse_leases(leases)), int(crashes or 0), int(failures or 0),
                   (last_error or b"").decode(), time_[0] + time_[1] / 1e6, bool(stalled))


def _read_bucket(pipe, job_id: str, index: int) -> None:
    """Queue the reads of a BucketView on `pipe`, in `BucketView.from_replies` order."""
    key = Job.key_for
    pipe.hexists(key(job_id, "tiles"), str(index))
    pipe.hvals(key(job_id, "leases"))
    pipe.hget(key(job_id, "crashes"), str(index))
    pipe.hget(key(job_id, "failures"), str(index))
    pipe.hget(key(job_id, "errors"), str(index))
    pipe.time()
    registry.check_clock(pipe)


class Job:
    """A job's data in Redis, as seen from either side (client or worker).

    Keys, each `farm:job:<id>:<part>`: tiles (bucket -> tile), events (list the client
    blocks on), stats (duplicates, invalid tiles, buckets sent again), attempts (bucket ->
    deliveries started), leases (running deliveries), crashes and failures (bucket -> how
    many deliveries died / raised), errors (bucket -> the last error).
    """

    PARTS = ("tiles", "events", "stats", "attempts", "leases", "crashes", "failures", "errors", "plan")
    READ_BATCH = 512  # events popped, or tiles read, in one round trip

    def __init__(self, redis, meta: JobMeta, state: str = "", error: str = ""):
        self.redis = redis
        self.meta = meta
        self.state = state  # as last read: one of JobState (RUNNING is "")
        self.error = error  # why the job failed

    @cached_property
    def buckets(self) -> list[Bucket]:
        """Every bucket of the frame: the client's view. A worker needs only `bucket(index)`."""
        return split(self.meta.width, self.meta.height, self.meta.bucket_size)

    @property
    def bucket_count(self) -> int:
        return count(self.meta.width, self.meta.height, self.meta.bucket_size)

    @property
    def unit_count(self) -> int:
        """Tasks the job can have: its buckets, then the parts of its split tail buckets."""
        return self.bucket_count + self.meta.tail * self.meta.split

    @cached_property
    def _tail(self) -> list[Bucket]:
        """The buckets sent as parts (JobMeta.tail): the last of the job's order."""
        return order(self.buckets, self.meta.order)[-self.meta.tail:] if self.meta.tail else []

    def bucket(self, index: int) -> Bucket:
        """Bucket `index`; for a part of a split bucket (index from bucket_count on), its
        bucket's rectangle under the part's own index."""
        if index < self.bucket_count:
            return bucket_at(self.meta.width, self.meta.height, self.meta.bucket_size, index)
        whole = self._tail[(index - self.bucket_count) // self.meta.split]
        return Bucket(index, whole.x, whole.y, whole.width, whole.height)

    def part(self, index: int) -> tuple[int, tuple[int, int]] | None:
        """For a part of a split bucket: the index of its bucket and its samples [first, end);
        None for a whole bucket."""
        if index < self.bucket_count:
            return None
        number, part = divmod(index - self.bucket_count, self.meta.split)
        spp, parts = self.meta.spp, self.meta.split
        return self._tail[number].index, (spp * part // parts, spp * (part + 1) // parts)

    def units(self) -> list[int]:
        """Every task of the job in the order they are sent: its buckets in its order, those
        of the tail as their parts."""
        ordered = [bucket.index for bucket in order(self.buckets, self.meta.order)]
        if not self.meta.tail:
            return ordered
        return ordered[: -self.meta.tail] + list(range(self.bucket_count, self.unit_count))

    @property
    def job_id(self) -> str:
        return self.meta.job_id

    @staticmethod
    def key_for(job_id: str, part: str = "") -> str:
        base = f"{defaults.KEY_PREFIX}:job:{job_id}"
        return f"{base}:{part}" if part else base

    @classmethod
    def ids(cls, redis):
        """The id of every job whose record is in Redis (its parts' keys are not jobs)."""
        for key in redis.scan_iter(match=cls.key_for("*"), count=500):
            job_id = key.decode().rsplit(":", 1)[-1]
            if key.decode() == cls.key_for(job_id):
                yield job_id

    def keys(self) -> list[str]:
        return [self.key_for(self.job_id)] + [self.key_for(self.job_id, part) for part in self.PARTS]

    @staticmethod
    def scene_key(digest: str) -> str:
        return f"{defaults.KEY_PREFIX}:scene:{digest}"

    @staticmethod
    def describe(scene: Scene, bucket_size: int, bucket_order: str, null: float | None = None,
                 aovs: tuple[str, ...] = (), plan: Plan | None = None, split: tuple[int, int] = (0, 0)) -> JobMeta:
        """A new job's description, checked against the farm's limits; `null` only for the
        null renderer's jobs (farm/tools/null.py); `aovs`: layers to render beside the beauty;
        `plan`: the samples of one round of a progressive or noise-target render, whose
        tiles are then sums (JobMeta.sums); `split`: (tail buckets, parts) (JobMeta.tail)."""
        first, end = plan.bounds if plan is not None else (0, 0)
        meta = JobMeta(
            job_id=uuid.uuid4().hex,
            digest=scene.digest,
            width=scene.film.width,
            height=scene.film.height,
            spp=scene.film.spp,
            bucket_size=bucket_size,
            order=bucket_order,
            created=time.time(),
            assets=tuple(sorted(set(scene.assets.values()))),
            null=null,
            aovs=tuple(aovs),
            sums=plan is not None,
            first=first,
            end=end,
            cell=0 if plan is None or plan.uniform_range else plan.cell,
            tail=split[0],
            split=split[1],
        )
        meta.check()
        return meta

    @classmethod
    def create(cls, redis, meta: JobMeta, document: dict, plan: Plan | None = None) -> Job:
        """Store the scene (once per digest), the job's sample plan where it has one
        (JobMeta.cell), and its description; enqueue nothing yet."""
        ttl = defaults.JOB_TTL
        text = json.dumps(document, separators=(",", ":"))
        if len(text) > defaults.MAX_SCENE_BYTES:
            raise SceneError(f"the scene document is {size_text(len(text))}, over the limit of "
                             f"{size_text(defaults.MAX_SCENE_BYTES)} (FARM_MAX_SCENE_BYTES); put meshes in files")
        with redis.pipeline() as pipe:
            pipe.set(cls.scene_key(meta.digest), text, nx=True, ex=ttl)
            pipe.expire(cls.scene_key(meta.digest), ttl)  # a reused scene lives as long as its newest job
            if meta.cell:
                pipe.set(cls.key_for(meta.job_id, "plan"), plan.to_bytes(), ex=ttl)
            pipe.hset(cls.key_for(meta.job_id), mapping=meta.to_redis())
            pipe.expire(cls.key_for(meta.job_id), ttl)
            pipe.execute()
        return cls(redis, meta)

    @classmethod
    def load(cls, redis, job_id: str) -> Job:
        return cls._from_hash(redis, job_id, redis.hgetall(cls.key_for(job_id)))

    @classmethod
    def _from_hash(cls, redis, job_id: str, raw: dict[bytes, bytes]) -> Job:
        """The job whose hash `farm:job:<id>` reads `raw`; JobError if there is none."""
        if not raw or b"job_id" not in raw:
            raise JobVanished(f"job {job_id} does not exist (finished and expired, deleted, or lost with a "
                              f"Redis restart)")
        job = cls(redis, JobMeta.from_redis(raw))
        job._set_state(raw.get(b"state"), raw.get(b"error"))
        return job

    def _set_state(self, state: bytes | None, error: bytes | None) -> None:
        self.state, self.error = (state or b"").decode(), (error or b"").decode()

    def refresh(self) -> str:
        """Read the job's state again (it may have been cancelled or failed elsewhere);
        JobVanished if its record is gone."""
        job_id, state, error = self.redis.hmget(self.key_for(self.job_id), "job_id", "state", "error")
        if job_id is None:
            raise JobVanished(f"job {self.job_id} vanished from Redis (expired, deleted, or lost with a restart)")
        self._set_state(state, error)
        return self.state

    def record_sent(self, count: int) -> None:
        """How many buckets, in the job's order, its client has sent so far."""
        self.redis.eval(_SET_IF_EXISTS, 1, self.key_for(self.job_id), "sent", count)

    def sent(self) -> int:
        """How many buckets, in the job's order, have been sent (all, for a job that does
        not say: its client sent everything at once)."""
        value = self.redis.hget(self.key_for(self.job_id), "sent")
        try:
            return max(0, min(int(value), self.unit_count)) if value is not None else self.unit_count
        except ValueError:
            return self.unit_count

    def scene_document(self) -> dict:
        """The job's scene document, read only if it is within MAX_SCENE_BYTES."""
        key, digest = self.scene_key(self.meta.digest), self.meta.digest[:12]
        size = self.redis.strlen(key)
        if size > defaults.MAX_SCENE_BYTES:
            raise JobDataError(f"scene {digest} in Redis is {size_text(size)}, over the limit of "
                               f"{size_text(defaults.MAX_SCENE_BYTES)} (FARM_MAX_SCENE_BYTES)")
        text = self.redis.get(key)
        if text is None:
            raise JobDataError(f"scene {digest} is missing from Redis")
        try:
            return json.loads(text)
        except ValueError as exc:
            raise JobDataError(f"scene {digest} in Redis is not JSON: {exc}") from None

    def finish(self, state: str, error: str = "") -> None:
        """Record how the job ended; its keys then live FINISHED_TTL more seconds."""
        assert state in set(JobState) - {JobState.RUNNING}
        with self.redis.pipeline() as pipe:
            pipe.hset(self.key_for(self.job_id), mapping={"state": state, "error": error, "finished": time.time()})
            self._expire(pipe, defaults.FINISHED_TTL)
            pipe.execute()
        self.state, self.error = state, error

    def _expire(self, pipe, ttl: int) -> None:
        """Queue on `pipe` the expiry of every key of the job in `ttl` seconds."""
        for key in self.keys():
            pipe.expire(key, ttl)

    def cancel(self, queue: BucketQueue) -> int:
        """Mark the job cancelled (running buckets stop at their next pass) and remove its
        queued buckets; returns how many were removed."""
        self.finish(JobState.CANCELLED)
        return queue.purge(self.job_id)

    def plan(self) -> Plan:
        """The samples a round's job gives each pixel: its stored plan (JobMeta.cell),
        checked, JobDataError if it is missing or malformed (every worker would find the
        same); without one, its samples [first, end) for every pixel."""
        if not self.meta.cell:
            return Plan.uniform(self.meta.width, self.meta.height, *self.meta.samples)
        data = self.redis.get(self.key_for(self.job_id, "plan"))
        if data is None:
            raise JobDataError(f"job {self.job_id[:12]} has no sample plan in Redis")
        try:
            return Plan.from_bytes(data, self.meta.width, self.meta.height)
        except JobError as exc:
            raise JobDataError(str(exc)) from None

    def keep_alive(self) -> None:
        """Push the running job's expiry JOB_TTL ahead (its scene's and files' too)."""
        assets = [RedisAssets.key_for(digest) for digest in self.meta.assets]
        with self.redis.pipeline() as pipe:
            for key in self.keys() + [self.scene_key(self.meta.digest)] + assets:
                pipe.expire(key, defaults.JOB_TTL)
            pipe.execute()

    def forget(self) -> None:
        """Delete the job's keys: a round of a progressive or noise-target render, once its
        client has added its tiles to the frame's sums."""
        self.redis.delete(*self.keys())

    # -- worker side -------------------------------------------------------------------

    @classmethod
    def look(cls, redis, job_id: str, index: int) -> tuple[Job, BucketView]:
        """The job and what its record says of bucket `index`, in one round trip: what a
        worker reads before it takes a bucket."""
        with redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(cls.key_for(job_id))
            _read_bucket(pipe, job_id, index)
            raw, *bucket = pipe.execute()
        return cls._from_hash(redis, job_id, raw), BucketView.from_replies(*bucket)

    @classmethod
    def _delivery_keys(cls, job_id: str) -> list[str]:
        """The KEYS of _BEGIN and _TAKE."""
        return [cls.key_for(job_id)] + [cls.key_for(job_id, part) for part in
                                        ("tiles", "leases", "crashes", "failures", "attempts")]

    @classmethod
    def take(cls, redis, job_id: str, draft: Lease, also=None) -> tuple[Job, Lease] | None:
        """Look at bucket `draft.bucket` and, if it is plainly fresh (see _TAKE), start it
        under a lease made from `draft`, in one round trip; None when it needs the long
        way. `also(pipe)` adds commands to the round trip."""
        keys = cls._delivery_keys(job_id)
        with redis.pipeline(transaction=False) as pipe:
            pipe.eval(_TAKE, len(keys), *keys, str(draft.bucket), defaults.JOB_TTL, defaults.LEASE_TIMEOUT,
                      draft.to_json())
            if also is not None:
                also(pipe)
            reply = pipe.execute()[0]
        if reply[0] != 1:
            return None
        _, flat, attempt, seconds, microseconds = reply
        try:
            job = cls._from_hash(redis, job_id, dict(zip(flat[::2], flat[1::2])))
        except FarmError:  # a description over the limits: this delivery never started
            redis.hdel(cls.key_for(job_id, "leases"), f"{draft.bucket}.{int(attempt)}")
            raise
        now = int(seconds) + int(microseconds) / 1e6
        return job, replace(draft, attempt=int(attempt), started=now, until=now + defaults.LEASE_TIMEOUT)

    def view(self, index: int) -> BucketView:
        """What the job's record says of bucket `index` now, in one round trip."""
        with self.redis.pipeline(transaction=False) as pipe:
            _read_bucket(pipe, self.job_id, index)
            return BucketView.from_replies(*pipe.execute())

    def begin(self, draft: Lease, also=None) -> Lease:
        """Count a delivery of bucket `draft.bucket` and take a lease made from `draft` on it
        at Redis's clock, in one round trip (the _BEGIN script); `also(pipe)` adds commands
        to it."""
        keys = self._delivery_keys(self.job_id)
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.eval(_BEGIN, len(keys), *keys, str(draft.bucket), defaults.JOB_TTL, defaults.LEASE_TIMEOUT,
                      draft.to_json())
            if also is not None:
                also(pipe)
            attempt, seconds, microseconds = pipe.execute()[0]
        now = int(seconds) + int(microseconds) / 1e6
        return replace(draft, attempt=int(attempt), started=now, until=now + defaults.LEASE_TIMEOUT)

    def renew(self, lease: Lease) -> Lease:
        """Extend a lease. One that was removed as lost meanwhile (its heartbeat came late)
        is put back and its crash uncounted: the delivery is alive after all."""
        lease = replace(lease, until=server_time(self.redis) + defaults.LEASE_TIMEOUT)
        if self._put_lease(lease):
            self.bump("crashes", lease.bucket, -1)
        return lease

    def _put_lease(self, lease: Lease, also=None) -> bool:
        """Write the lease; True if it was not there."""
        key = self.key_for(self.job_id, "leases")
        with self.redis.pipeline(transaction=False) as pipe:  # one round trip; nothing here needs MULTI
            pipe.hset(key, lease.name, lease.to_json())
            pipe.expire(key, defaults.JOB_TTL)
            if also is not None:
                also(pipe)
            added = pipe.execute()[0]
        return bool(added)

    def release(self, lease: Lease, also=None) -> None:
        """Drop the lease of a delivery that ended; `also(pipe)` adds commands to the round trip."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hdel(self.key_for(self.job_id, "leases"), lease.name)
            if also is not None:
                also(pipe)
            pipe.execute()

    def leases(self) -> list[Lease]:
        return parse_leases(self.redis.hvals(self.key_for(self.job_id, "leases")))

    def remove_lost(self, lease: Lease) -> bool:
        """Remove a lease whose delivery died and count the crash; False if another did it first."""
        if not self.redis.hdel(self.key_for(self.job_id, "leases"), lease.name):
            return False
        self.bump("crashes", lease.bucket)
        return True

    def crashes(self, index: int) -> int:
        return int(self.redis.hget(self.key_for(self.job_id, "crashes"), str(index)) or 0)

    def record_failure(self, index: int, worker: str, error: str) -> int:
        """Count a failed delivery of bucket `index`; returns the bucket's failures so far."""
        key = self.key_for(self.job_id, "errors")
        with self.redis.pipeline() as pipe:
            pipe.hset(key, str(index), f"{error} (on {worker})")
            pipe.expire(key, defaults.JOB_TTL)
            pipe.execute()
        return self.bump("failures", index)

    def fail(self, index: int, worker: str, reason: str) -> None:
        """Fail the whole job because of bucket `index`, and tell the client; a job that
        already ended keeps its state and first reason (two workers may find one fault)."""
        message = f"bucket {index} failed: {reason}"
        failed = self.redis.eval(_FAIL, 1, self.key_for(self.job_id), JobState.FAILED, message, time.time())
        if failed != 1:
            if failed == 0:
                self.refresh()
            return
        with self.redis.pipeline() as pipe:
            self._expire(pipe, defaults.FINISHED_TTL)
            pipe.execute()
        self.state, self.error = JobState.FAILED, message
        self.push(TileEvent(index, worker, EventKind.FATAL, message))

    def has_tile(self, index: int) -> bool:
        return bool(self.redis.hexists(self.key_for(self.job_id, "tiles"), str(index)))

    def stopped(self, index: int) -> bool:
        """Whether a delivery of bucket `index` should stop: the job ended (cancelled or
        failed), or a tile of the bucket is stored already. One round trip."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(self.key_for(self.job_id), "state", "error")
            pipe.hexists(self.key_for(self.job_id, "tiles"), str(index))
            (state, error), stored = pipe.execute()
        self._set_state(state, error)
        return self.state != "" or bool(stored)

    def store_tile(self, header: TileHeader, tile: np.ndarray, key: bytes, release: Lease | None = None,
                   also=None) -> bool:
        """Store the tile, tagged with the farm's secret `key`, unless one is already stored;
        True if this one was first. With `release`, drop that lease in the same round trip,
        and run `also(pipe)` there too."""
        keys = [self.key_for(self.job_id, p) for p in ("tiles", "events", "stats")] + [self.key_for(self.job_id)]
        event = TileEvent(header.bucket, header.worker)
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.eval(_STORE_TILE, len(keys), *keys, str(header.bucket), encode_tile(header, tile, key), event.to_json())
            if release is not None:
                pipe.hdel(self.key_for(self.job_id, "leases"), release.name)
            if also is not None:
                also(pipe)
            stored = pipe.execute()[0]
        if stored == -1:
            raise JobVanished(f"job {self.job_id} no longer exists; tile of bucket {header.bucket} dropped")
        return stored == 1

    def push(self, event: TileEvent) -> None:
        key = self.key_for(self.job_id, "events")
        with self.redis.pipeline() as pipe:
            pipe.rpush(key, event.to_json())
            pipe.expire(key, defaults.JOB_TTL)
            pipe.execute()

    # -- client side -------------------------------------------------------------------

    def next_events(self, timeout: float, limit: int = READ_BATCH) -> list[TileEvent]:
        """The worker events waiting, up to `limit`, in one round trip; if there are none,
        block up to `timeout` seconds for the next one."""
        key = self.key_for(self.job_id, "events")
        raw = self.redis.lpop(key, limit) or []
        if not raw:
            item = self.redis.blpop([key], timeout=max(timeout, 0.01))
            raw = [item[1]] if item else []
        events = []
        for text in raw:
            try:
                events.append(TileEvent.from_json(text))
            except (TypeError, ValueError) as exc:  # not something a farm worker wrote
                log.warning("job %s: malformed event ignored: %s", self.job_id, exc)
        return events

    def stored_and_announced(self) -> tuple[int, int]:
        """How many tiles are stored, and how many events wait for the client: two counts
        in one round trip."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hlen(self.key_for(self.job_id, "tiles"))
            pipe.llen(self.key_for(self.job_id, "events"))
            stored, announced = pipe.execute()
        return stored, announced

    def stored_buckets(self) -> set[int]:
        """Indexes of the buckets that have a tile in Redis."""
        return {int(k) for k in self.redis.hkeys(self.key_for(self.job_id, "tiles")) if k.isdigit()}

    def tile(self, index: int) -> tuple[TileHeader, np.ndarray] | None:
        """The stored tile of bucket `index` (None if there is none); InvalidTile if it is wrong,
        in which case it is deleted, so the bucket can be rendered again."""
        found = self.tiles([index])[index]
        if isinstance(found, InvalidTile):
            raise found
        return found

    def tiles(self, indexes: list[int]) -> dict[int, tuple[TileHeader, np.ndarray] | InvalidTile | None]:
        """The stored tiles of `indexes`, read in one round trip: each a (header, pixels),
        None where there is none, or the InvalidTile saying what is wrong with it (that tile
        is deleted, so its bucket can be rendered again)."""
        key, found = self.key_for(self.job_id, "tiles"), {}
        for index, payload in zip(indexes, self.redis.hmget(key, [str(i) for i in indexes]) if indexes else []):
            if payload is None:
                found[index] = None
                continue
            try:
                found[index] = decode_tile(payload, self.job_id, self.bucket(index), secret.key(), self.meta.channels,
                                           self.meta.sums or index >= self.bucket_count)
            except InvalidTile as exc:
                self.redis.eval(_DISCARD_TILE, 1, key, str(index), payload)
                self.count("invalid")
                found[index] = exc
        return found

    def bump(self, part: str, field: int | str, amount: int = 1) -> int:
        """Add `amount` to `field` of the job's hash `part`; returns the new value."""
        return int(self._bump(self.redis, part, field, amount))

    def _bump(self, client, part: str, field: int | str, amount: int = 1):
        """The _BUMP script on `client` (a Redis client, or a pipeline to queue it on)."""
        keys = (self.key_for(self.job_id, part), self.key_for(self.job_id))
        return client.eval(_BUMP, 2, *keys, str(field), amount, defaults.JOB_TTL)

    def count(self, stat: str, amount: int = 1) -> int:
        """Add to one of the job's statistics (duplicates, invalid, resent, copies, ...)."""
        return self.bump("stats", stat, amount)

    def stats(self) -> dict[str, int]:
        raw = self.redis.hgetall(self.key_for(self.job_id, "stats"))
        return {k.decode(): int(v) for k, v in raw.items()}

    def attempts(self) -> dict[int, int]:
        raw = self.redis.hgetall(self.key_for(self.job_id, "attempts"))
        return {int(k): int(v) for k, v in raw.items()}

    def duplicates(self) -> int:
        return self.stats().get("duplicates", 0)
