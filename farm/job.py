"""One render job: its Redis keys, and the client side of a render (upload, enqueue, collect).

Everything a job owns lives under `farm:job:<id>` (the scene under `farm:scene:<digest>`,
shared by jobs of the same scene). Workers write tiles into the job's hash, first write
wins, and push an event the client blocks on; nothing travels through a result backend.
"""

from __future__ import annotations

import json
import logging
import statistics
import struct
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Callable

import numpy as np

from farm import defaults, registry
from farm.assets import RedisAssets, Transfer
from farm.broker import server_time
from farm.buckets import Bucket, bucket_at, count, order, split
from farm.exceptions import FarmError, JobError
from farm.film import Film
from farm.queue import BucketQueue
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

# Delete a tile only if it is still the one that was judged invalid.
_DISCARD_TILE = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
"""

# A tile in Redis: magic, header length, a JSON header saying whose tile it is and where
# it came from, then height x width x 3 little-endian float32.
TILE_MAGIC = b"FARMTIL1"
_TILE_PREFIX = struct.Struct("<8sI")

STATES = ("", "done", "cancelled", "failed")  # "" while the job runs


class InvalidTile(FarmError):
    """A stored tile that is not a tile of this job's bucket, or holds non-finite values."""


@dataclass(frozen=True)
class TileEvent:
    """What a worker tells the client through the job's event list."""

    bucket: int  # bucket index in the job's row-major tiling
    worker: str  # Celery hostname of the worker, e.g. local1@host
    kind: str = "tile"  # tile: stored; error: failed, sent again; fatal: the job failed;
    # lost: a delivery's render process died; bad-worker: a worker stopped taking buckets
    error: str | None = None  # what went wrong, for every kind but tile

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: bytes | str) -> TileEvent:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class TileHeader:
    """Whose tile it is (checked by the client) and where it was made (for the report)."""

    job_id: str
    bucket: int
    width: int
    height: int
    worker: str = ""  # Celery hostname
    device: str = ""  # OpenCL device name
    seconds: float = 0.0  # kernel time of the bucket
    attempt: int = 1  # which delivery of the bucket made it
    pid: int = 0  # the render process


def encode_tile(header: TileHeader, tile: np.ndarray) -> bytes:
    head = json.dumps(asdict(header), separators=(",", ":")).encode()
    return _TILE_PREFIX.pack(TILE_MAGIC, len(head)) + head + np.ascontiguousarray(tile, "<f4").tobytes()


def decode_tile(payload: bytes, job_id: str, bucket: Bucket) -> tuple[TileHeader, np.ndarray]:
    """The header and pixels of a stored tile, or InvalidTile saying what is wrong with it."""
    if len(payload) < _TILE_PREFIX.size:
        raise InvalidTile(f"{len(payload)} bytes is too short for a tile")
    magic, head_size = _TILE_PREFIX.unpack_from(payload)
    if magic != TILE_MAGIC or _TILE_PREFIX.size + head_size > len(payload):
        raise InvalidTile("not a farm tile")
    try:
        header = TileHeader(**json.loads(payload[_TILE_PREFIX.size : _TILE_PREFIX.size + head_size]))
    except (TypeError, ValueError) as exc:
        raise InvalidTile(f"unreadable tile header: {exc}") from None
    if header.job_id != job_id:
        raise InvalidTile(f"tile of job {header.job_id[:12]}, not of this job")
    if header.bucket != bucket.index:
        raise InvalidTile(f"tile of bucket {header.bucket} stored as bucket {bucket.index}")
    if (header.width, header.height) != (bucket.width, bucket.height):
        raise InvalidTile(f"tile is {header.width}x{header.height}, the bucket {bucket.width}x{bucket.height}")
    data = payload[_TILE_PREFIX.size + head_size :]
    if len(data) != bucket.width * bucket.height * 12:
        raise InvalidTile(f"tile has {len(data)} bytes of pixels, expected {bucket.width * bucket.height * 12}")
    pixels = np.frombuffer(data, "<f4").reshape(bucket.height, bucket.width, 3)
    bad = int(np.count_nonzero(~np.isfinite(pixels)))
    if bad:
        raise InvalidTile(f"tile has {bad} non-finite values")
    return header, pixels


@dataclass(frozen=True)
class Lease:
    """One delivery of a bucket being rendered, kept alive by its worker's heartbeats."""

    bucket: int
    attempt: int  # which delivery of the bucket this is (1 = first)
    worker: str  # Celery hostname
    host: str  # machine name
    pid: int  # render process
    device: str
    started: float  # Redis clock
    until: float  # Redis clock; past it without a renewal, the delivery is lost
    copy: bool = False  # a deliberate copy of a slow bucket

    @property
    def name(self) -> str:
        return f"{self.bucket}.{self.attempt}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


@dataclass(frozen=True)
class BucketView:
    """What a job's record says of one bucket at one moment (see `Job.look`)."""

    stored: bool  # a tile of it is stored
    leases: tuple[Lease, ...]  # running deliveries of any bucket of the job
    crashes: int  # deliveries of it whose render process died
    failures: int  # deliveries of it that raised
    last_error: str
    now: float  # Redis clock

    @classmethod
    def from_replies(cls, stored, leases, crashes, failures, last_error, time_) -> BucketView:
        return cls(bool(stored), tuple(_leases(leases)), int(crashes or 0), int(failures or 0),
                   (last_error or b"").decode(), time_[0] + time_[1] / 1e6)


def _read_bucket(pipe, job_id: str, index: int) -> None:
    """Queue the reads of a BucketView on `pipe`, in `BucketView.from_replies` order."""
    key = Job.key_for
    pipe.hexists(key(job_id, "tiles"), str(index))
    pipe.hvals(key(job_id, "leases"))
    pipe.hget(key(job_id, "crashes"), str(index))
    pipe.hget(key(job_id, "failures"), str(index))
    pipe.hget(key(job_id, "errors"), str(index))
    pipe.time()


def _leases(raw_values) -> list[Lease]:
    """The leases among raw hash values; one that is not a lease (not written by a farm
    worker) is skipped."""
    found = []
    for raw in raw_values:
        try:
            found.append(Lease(**json.loads(raw)))
        except (TypeError, ValueError):
            continue
    return found


@dataclass(frozen=True)
class JobMeta:
    """The job's fixed description, stored as the hash `farm:job:<id>`."""

    job_id: str
    digest: str  # scene digest: key of the scene document
    width: int
    height: int
    spp: int
    bucket_size: int
    order: str
    created: float
    assets: tuple[str, ...] = ()  # digests of the scene's files, kept alive with the job

    def to_redis(self) -> dict[str, str]:
        values = {k: str(v) for k, v in asdict(self).items()}
        values["assets"] = ",".join(self.assets)
        return values

    @classmethod
    def from_redis(cls, raw: dict[bytes, bytes]) -> JobMeta:
        """The description as a worker reads it: Redis is input from outside, so every
        number is checked against the limits the client was held to."""
        values = {k.decode(): v.decode() for k, v in raw.items()}
        try:
            meta = cls(
                job_id=values["job_id"],
                digest=values["digest"],
                width=int(values["width"]),
                height=int(values["height"]),
                spp=int(values["spp"]),
                bucket_size=int(values["bucket_size"]),
                order=values["order"],
                created=float(values["created"]),
                assets=tuple(d for d in values.get("assets", "").split(",") if d),
            )
        except (KeyError, ValueError) as exc:
            raise JobError(f"job {values.get('job_id', '?')}: malformed description in Redis ({exc})") from None
        meta.check()
        return meta

    def check(self) -> None:
        """Refuse a frame over the limits of resolution, samples and bucket count."""
        if not (1 <= self.width <= defaults.MAX_RESOLUTION and 1 <= self.height <= defaults.MAX_RESOLUTION):
            raise JobError(f"{self.width}x{self.height} is over the limit of "
                           f"{defaults.MAX_RESOLUTION} pixels a side (FARM_MAX_RESOLUTION)")
        if not 1 <= self.spp <= defaults.MAX_SPP:
            raise JobError(f"{self.spp} samples per pixel is over the limit of {defaults.MAX_SPP} (FARM_MAX_SPP)")
        if not defaults.MIN_BUCKET_SIZE <= self.bucket_size <= defaults.MAX_BUCKET_SIZE:
            raise JobError(f"bucket size {self.bucket_size} is outside "
                           f"[{defaults.MIN_BUCKET_SIZE}, {defaults.MAX_BUCKET_SIZE}]")
        buckets = count(self.width, self.height, self.bucket_size)
        if buckets > defaults.MAX_BUCKETS:
            raise JobError(f"{self.width}x{self.height} in {self.bucket_size} px buckets is {buckets} buckets, over "
                           f"the limit of {defaults.MAX_BUCKETS} (FARM_MAX_BUCKETS): use larger buckets")


class Job:
    """A job's data in Redis, as seen from either side (client or worker).

    Keys, each `farm:job:<id>:<part>`: tiles (bucket -> tile), events (list the client
    blocks on), stats (duplicates, invalid tiles, buckets sent again), attempts (bucket ->
    deliveries started), leases (running deliveries), crashes and failures (bucket -> how
    many deliveries died / raised), errors (bucket -> the last error).
    """

    PARTS = ("tiles", "events", "stats", "attempts", "leases", "crashes", "failures", "errors")

    def __init__(self, redis, meta: JobMeta, state: str = "", error: str = ""):
        self.redis = redis
        self.meta = meta
        self.state = state  # as last read: "" while running, else one of STATES
        self.error = error  # why the job failed

    @cached_property
    def buckets(self) -> list[Bucket]:
        """Every bucket of the frame: the client's view. A worker needs only `bucket(index)`."""
        return split(self.meta.width, self.meta.height, self.meta.bucket_size)

    @property
    def bucket_count(self) -> int:
        return count(self.meta.width, self.meta.height, self.meta.bucket_size)

    def bucket(self, index: int) -> Bucket:
        return bucket_at(self.meta.width, self.meta.height, self.meta.bucket_size, index)

    @property
    def job_id(self) -> str:
        return self.meta.job_id

    @staticmethod
    def key_for(job_id: str, part: str = "") -> str:
        base = f"{defaults.KEY_PREFIX}:job:{job_id}"
        return f"{base}:{part}" if part else base

    def keys(self) -> list[str]:
        return [self.key_for(self.job_id)] + [self.key_for(self.job_id, part) for part in self.PARTS]

    @staticmethod
    def scene_key(digest: str) -> str:
        return f"{defaults.KEY_PREFIX}:scene:{digest}"

    @staticmethod
    def describe(scene: Scene, bucket_size: int, bucket_order: str) -> JobMeta:
        """A new job's description, checked against the farm's limits."""
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
        )
        meta.check()
        return meta

    @classmethod
    def create(cls, redis, meta: JobMeta, document: dict) -> Job:
        """Store the scene (once per digest) and the job's description; enqueue nothing yet."""
        ttl = defaults.JOB_TTL
        with redis.pipeline() as pipe:
            pipe.set(cls.scene_key(meta.digest), json.dumps(document, separators=(",", ":")), nx=True, ex=ttl)
            pipe.expire(cls.scene_key(meta.digest), ttl)  # a reused scene lives as long as its newest job
            pipe.hset(cls.key_for(meta.job_id), mapping=meta.to_redis())
            pipe.expire(cls.key_for(meta.job_id), ttl)
            pipe.execute()
        return cls(redis, meta)

    @classmethod
    def load(cls, redis, job_id: str) -> Job:
        raw = redis.hgetall(cls.key_for(job_id))
        if not raw or b"job_id" not in raw:
            raise JobError(f"job {job_id} does not exist (finished and expired, or never created)")
        return cls(redis, JobMeta.from_redis(raw), raw.get(b"state", b"").decode(), raw.get(b"error", b"").decode())

    def refresh(self) -> str:
        """Read the job's state again (it may have been cancelled or failed elsewhere)."""
        state, error = self.redis.hmget(self.key_for(self.job_id), "state", "error")
        self.state, self.error = (state or b"").decode(), (error or b"").decode()
        return self.state

    def scene_document(self) -> dict:
        text = self.redis.get(self.scene_key(self.meta.digest))
        if text is None:
            raise JobError(f"job {self.job_id}: scene {self.meta.digest[:12]} is missing from Redis")
        return json.loads(text)

    def finish(self, state: str, error: str = "") -> None:
        """Record how the job ended; its keys then live FINISHED_TTL more seconds."""
        assert state in STATES and state
        with self.redis.pipeline() as pipe:
            pipe.hset(self.key_for(self.job_id), mapping={"state": state, "error": error, "finished": time.time()})
            for key in self.keys():
                pipe.expire(key, defaults.FINISHED_TTL)
            pipe.execute()
        self.state, self.error = state, error

    def cancel(self, queue: BucketQueue) -> int:
        """Mark the job cancelled (running buckets stop at their next pass) and remove its
        queued buckets; returns how many were removed."""
        self.finish("cancelled")
        return queue.purge(self.job_id)

    def keep_alive(self) -> None:
        """Push the running job's expiry JOB_TTL ahead (its scene's and files' too)."""
        assets = [RedisAssets.key_for(digest) for digest in self.meta.assets]
        with self.redis.pipeline() as pipe:
            for key in self.keys() + [self.scene_key(self.meta.digest)] + assets:
                pipe.expire(key, defaults.JOB_TTL)
            pipe.execute()

    # -- worker side -------------------------------------------------------------------

    @classmethod
    def look(cls, redis, job_id: str, index: int) -> tuple[Job, BucketView]:
        """The job and what its record says of bucket `index`, in one round trip: what a
        worker reads before it takes a bucket."""
        with redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(cls.key_for(job_id))
            _read_bucket(pipe, job_id, index)
            raw, *bucket = pipe.execute()
        if not raw or b"job_id" not in raw:
            raise JobError(f"job {job_id} does not exist (finished and expired, or never created)")
        job = cls(redis, JobMeta.from_redis(raw), raw.get(b"state", b"").decode(), raw.get(b"error", b"").decode())
        return job, BucketView.from_replies(*bucket)

    def view(self, index: int) -> BucketView:
        """What the job's record says of bucket `index` now, in one round trip."""
        with self.redis.pipeline(transaction=False) as pipe:
            _read_bucket(pipe, self.job_id, index)
            return BucketView.from_replies(*pipe.execute())

    def begin(self, index: int, worker: str, host: str, pid: int, device: str, copy: bool = False,
              also=None) -> Lease:
        """Count a delivery of bucket `index` and take a lease on it, in two round trips;
        `also(pipe)` adds commands to the second."""
        keys = (self.key_for(self.job_id, "attempts"), self.key_for(self.job_id))
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.eval(_BUMP, 2, *keys, str(index), 1, defaults.JOB_TTL)
            pipe.time()
            attempt, (seconds, microseconds) = pipe.execute()
        now = seconds + microseconds / 1e6
        lease = Lease(index, int(attempt), worker, host, pid, device, now, now + defaults.LEASE_TIMEOUT, copy)
        self._put_lease(lease, also)
        return lease

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
        with self.redis.pipeline() as pipe:
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
        return _leases(self.redis.hvals(self.key_for(self.job_id, "leases")))

    def remove_lost(self, lease: Lease) -> bool:
        """Remove a lease whose delivery died and count the crash; False if another did it first."""
        if not self.redis.hdel(self.key_for(self.job_id, "leases"), lease.name):
            return False
        self.bump("crashes", lease.bucket)
        return True

    def crashes(self, index: int) -> int:
        return int(self.redis.hget(self.key_for(self.job_id, "crashes"), str(index)) or 0)

    def failures(self, index: int) -> int:
        return int(self.redis.hget(self.key_for(self.job_id, "failures"), str(index)) or 0)

    def last_error(self, index: int) -> str:
        return (self.redis.hget(self.key_for(self.job_id, "errors"), str(index)) or b"").decode()

    def record_failure(self, index: int, worker: str, error: str) -> int:
        """Count a failed delivery of bucket `index`; returns the bucket's failures so far."""
        key = self.key_for(self.job_id, "errors")
        with self.redis.pipeline() as pipe:
            pipe.hset(key, str(index), f"{error} (on {worker})")
            pipe.expire(key, defaults.JOB_TTL)
            pipe.execute()
        return self.bump("failures", index)

    def fail(self, index: int, worker: str, reason: str) -> None:
        """Fail the whole job because of bucket `index`, and tell the client."""
        message = f"bucket {index} failed: {reason}"
        self.finish("failed", message)
        self.push(TileEvent(index, worker, "fatal", message))

    def has_tile(self, index: int) -> bool:
        return bool(self.redis.hexists(self.key_for(self.job_id, "tiles"), str(index)))

    def stopped(self, index: int) -> bool:
        """Whether a delivery of bucket `index` should stop: the job ended (cancelled or
        failed), or a tile of the bucket is stored already. One round trip."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(self.key_for(self.job_id), "state", "error")
            pipe.hexists(self.key_for(self.job_id, "tiles"), str(index))
            (state, error), stored = pipe.execute()
        self.state, self.error = (state or b"").decode(), (error or b"").decode()
        return self.state != "" or bool(stored)

    def store_tile(self, header: TileHeader, tile: np.ndarray, release: Lease | None = None, also=None) -> bool:
        """Store the tile unless one is already stored; True if this one was first. With
        `release`, drop that lease in the same round trip, and run `also(pipe)` there too."""
        keys = [self.key_for(self.job_id, p) for p in ("tiles", "events", "stats")] + [self.key_for(self.job_id)]
        event = TileEvent(header.bucket, header.worker)
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.eval(_STORE_TILE, len(keys), *keys, str(header.bucket), encode_tile(header, tile), event.to_json())
            if release is not None:
                pipe.hdel(self.key_for(self.job_id, "leases"), release.name)
            if also is not None:
                also(pipe)
            stored = pipe.execute()[0]
        if stored == -1:
            raise JobError(f"job {self.job_id} no longer exists; tile of bucket {header.bucket} dropped")
        return stored == 1

    def push(self, event: TileEvent) -> None:
        key = self.key_for(self.job_id, "events")
        with self.redis.pipeline() as pipe:
            pipe.rpush(key, event.to_json())
            pipe.expire(key, defaults.JOB_TTL)
            pipe.execute()

    # -- client side -------------------------------------------------------------------

    def next_event(self, timeout: float) -> TileEvent | None:
        """Block up to `timeout` seconds for the next worker event."""
        item = self.redis.blpop([self.key_for(self.job_id, "events")], timeout=max(timeout, 0.01))
        if not item:
            return None
        try:
            return TileEvent.from_json(item[1])
        except (TypeError, ValueError) as exc:  # not something a farm worker wrote
            log.warning("job %s: malformed event ignored: %s", self.job_id, exc)
            return None

    def stored_buckets(self) -> set[int]:
        """Indexes of the buckets that have a tile in Redis."""
        return {int(k) for k in self.redis.hkeys(self.key_for(self.job_id, "tiles")) if k.isdigit()}

    def tile(self, index: int) -> tuple[TileHeader, np.ndarray] | None:
        """The stored tile of bucket `index` (None if there is none); InvalidTile if it is wrong,
        in which case it is deleted, so the bucket can be rendered again."""
        payload = self.redis.hget(self.key_for(self.job_id, "tiles"), str(index))
        if payload is None:
            return None
        try:
            return decode_tile(payload, self.job_id, self.bucket(index))
        except InvalidTile:
            self.redis.eval(_DISCARD_TILE, 1, self.key_for(self.job_id, "tiles"), str(index), payload)
            self.count("invalid")
            raise

    def bump(self, part: str, field: int | str, amount: int = 1) -> int:
        """Add `amount` to `field` of the job's hash `part`; returns the new value."""
        keys = (self.key_for(self.job_id, part), self.key_for(self.job_id))
        return int(self.redis.eval(_BUMP, 2, *keys, str(field), amount, defaults.JOB_TTL))

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


@dataclass
class BucketRecord:
    """One finished bucket, as the report lists it."""

    index: int
    x: int
    y: int
    width: int
    height: int
    worker: str
    device: str
    attempts: int
    seconds: float


class JobCancelled(JobError):
    """The job was cancelled (by `farm cancel`, or by another client)."""


@dataclass
class JobRun:
    """The client's view of one job: the film filling up, who rendered what, and the
    reconciliation that makes sure every bucket gets rendered whatever happens to messages,
    workers or the broker."""

    job: Job
    film: Film
    queue: BucketQueue
    records: dict[int, BucketRecord] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None
    notices: list[str] = field(default_factory=list)  # what the user was told about faults
    resent: Counter = field(default_factory=Counter)  # bucket -> times the client sent it again (not copies)
    copies: set[int] = field(default_factory=set)  # buckets given a copy as stragglers
    lost_deliveries: int = 0  # deliveries whose worker or render process died
    invalid_tiles: int = 0
    uploaded: Transfer = field(default_factory=Transfer)  # the scene's files this client sent to Redis
    _waiting_since: dict[int, float] = field(default_factory=dict)
    _workers_seen: int = 0  # live workers at the last look
    _last_progress: float = field(default_factory=time.monotonic)
    _last_keep_alive: float = 0.0

    @property
    def total(self) -> int:
        return self.job.bucket_count

    @property
    def wall_seconds(self) -> float:
        return (self.finished or time.perf_counter()) - self.started

    def workers(self) -> Counter:
        return Counter(record.worker for record in self.records.values())

    def collect(
        self,
        on_bucket: Callable[[BucketRecord], None] | None = None,
        on_notice: Callable[[str], None] | None = None,
        check_alive: Callable[[], None] | None = None,
        stall_timeout: float = defaults.STALL_TIMEOUT,
    ) -> Film:
        """Block until every bucket's tile is in the film, then mark the job done.

        Raises JobError when the job fails (a bucket failed MAX_FAILURES times), JobCancelled
        when it is cancelled elsewhere, and FarmError from `check_alive` (called every
        second; raises if the farm cannot make progress, say every local worker died). After
        `stall_timeout` seconds without progress and without a live worker, gives up.
        """
        self._on_bucket, self._on_notice = on_bucket, on_notice
        self._last_progress = time.monotonic()
        next_check = 0.0
        while len(self.records) < self.total:
            if time.monotonic() >= next_check:
                if check_alive is not None:
                    check_alive()
                self.reconcile()
                self._check_stall(stall_timeout)
                next_check = time.monotonic() + defaults.RECONCILE_INTERVAL
                continue
            event = self.job.next_event(timeout=next_check - time.monotonic())
            if event is not None:
                self._handle(event)
                if event.kind == "tile" and self.total - len(self.records) <= self._workers_seen:
                    next_check = 0.0  # the frame's tail: a worker just became free for a straggler
        self.finished = time.perf_counter()
        self.job.finish("done")
        attempts = self.job.attempts()
        for index, record in self.records.items():
            record.attempts = max(record.attempts, attempts.get(index, record.attempts))
        return self.film

    def _notice(self, message: str) -> None:
        self.notices.append(message)
        log.info("job %s: %s", self.job.job_id[:8], message)
        if self._on_notice is not None:
            self._on_notice(message)

    def _handle(self, event: TileEvent) -> None:
        if not 0 <= event.bucket < self.total:
            log.warning("job %s: ignored event for bucket %d from %s", self.job.job_id, event.bucket, event.worker)
            return
        if event.kind == "tile":
            self._take(event.bucket)
        elif event.kind == "fatal":
            self.job.refresh()
            raise JobError(event.error or f"bucket {event.bucket} failed")
        elif event.kind == "error":
            self._notice(f"bucket {event.bucket} failed on {event.worker}: {event.error}")
        elif event.kind == "lost":  # a worker found the dead delivery before this client did
            self.lost_deliveries += 1
            self._notice(event.error or f"bucket {event.bucket} lost on {event.worker}")
        elif event.kind == "bad-worker":
            self._notice(f"worker {event.worker} stopped taking buckets: {event.error}")

    def _take(self, index: int) -> None:
        """Put bucket `index`'s stored tile into the film, if it is there and valid."""
        if index in self.records:
            return
        try:
            found = self.job.tile(index)
        except InvalidTile as exc:
            self.invalid_tiles += 1
            self._notice(f"bucket {index}: tile rejected ({exc}); rendering it again")
            self._resend([index])
            return
        if found is None:  # announced, but gone (Redis lost it): reconcile will send it again
            return
        header, pixels = found
        bucket = self.job.bucket(index)
        self.film.put(bucket, pixels)
        record = BucketRecord(
            index, bucket.x, bucket.y, bucket.width, bucket.height,
            header.worker, header.device, header.attempt, header.seconds,
        )
        self.records[index] = record
        self._waiting_since.pop(index, None)
        self._last_progress = time.monotonic()
        if self._on_bucket is not None:
            self._on_bucket(record)

    def take_stored(self) -> None:
        """Take every valid tile in Redis the film lacks (after a resume, a lost event, or
        before saving a partial image: nothing rendered is left behind)."""
        for index in sorted(self.job.stored_buckets() - set(self.records)):
            self._take(index)

    def _resend(self, indexes: list[int], copy: bool = False) -> None:
        self.queue.send(self.job.job_id, indexes, copy=copy)
        if not copy:  # copies are counted in self.copies
            self.resent.update(indexes)
        self.job.count("copies" if copy else "resent", len(indexes))

    def reconcile(self) -> None:
        """Make sure every bucket without a tile is being rendered or has a message queued.

        Takes tiles that arrived without an event (a resumed job, an event lost with a
        Redis restart); finds deliveries whose heartbeat stopped (a dead worker or render
        process) and sends their buckets again; sends again buckets whose message vanished
        (deleted, lost by a restarted Redis, dropped in a fetch window) once they have had
        neither a message nor a lease for LEASE_TIMEOUT; and copies stragglers.
        """
        state = self.job.refresh()
        if state == "cancelled":
            raise JobCancelled(f"job {self.job.job_id} was cancelled")
        if state == "failed":
            raise JobError(self.job.error or f"job {self.job.job_id} failed")
        if time.monotonic() - self._last_keep_alive > 30:
            self.job.keep_alive()
            self._last_keep_alive = time.monotonic()
        self.take_stored()
        if len(self.records) == self.total:
            return
        workers = registry.workers(self.job.redis)
        self._workers_seen = len(workers)
        now = server_time(self.job.redis)
        live: dict[int, list[Lease]] = {}
        lost: list[Lease] = []
        for lease in self.job.leases():
            if lease.until >= now:
                live.setdefault(lease.bucket, []).append(lease)
            elif self.job.remove_lost(lease) and lease.bucket not in self.records:
                lost.append(lease)
        pending = [i for i in range(self.total) if i not in self.records]
        waiting = [i for i in pending if i not in live]
        scan = self.queue.scan(self.job.job_id)
        lost_buckets = {lease.bucket for lease in lost}
        resend = []
        clock = time.monotonic()
        for index in pending:
            if index in live or index in scan.queued:
                self._waiting_since.pop(index, None)
                continue
            since = self._waiting_since.setdefault(index, clock)
            if index in lost_buckets or clock - since >= defaults.LEASE_TIMEOUT:
                resend.append(index)
                self._waiting_since[index] = clock
        if lost:
            self._report_lost(lost, resend, workers)
        vanished = sorted(set(resend) - lost_buckets)
        if vanished:
            self._notice(
                f"bucket{'s' if len(vanished) > 1 else ''} {_list(vanished)} had no message and no worker "
                f"for {defaults.LEASE_TIMEOUT:.0f}s: sent again"
            )
        if resend:
            self._resend(resend)
        elif not waiting and not scan.queued:
            self._copy_stragglers(live, now, workers)

    def _report_lost(self, lost: list[Lease], resend: list[int], alive: dict) -> None:
        self.lost_deliveries += len(lost)
        by_worker: dict[str, list[Lease]] = {}
        for lease in lost:
            by_worker.setdefault(lease.worker, []).append(lease)
        for worker, leases in sorted(by_worker.items()):
            buckets = sorted({lease.bucket for lease in leases})
            moved = [i for i in buckets if i in resend]
            what = (
                f"render process {', '.join(str(l.pid) for l in leases)} of worker {worker} died"
                if worker in alive else f"worker {worker} lost (no heartbeat for {defaults.LEASE_TIMEOUT:.0f}s)"
            )
            where = f"bucket{'s' if len(buckets) > 1 else ''} {_list(buckets)}"
            if moved:
                self._notice(f"{what}: {where} reassigned")
            else:
                self._notice(f"{what}: {where} already back in the queue")

    def _copy_stragglers(self, live: dict[int, list[Lease]], now: float, workers: dict) -> None:
        """Nothing is queued: give the slowest running buckets a copy on an idle worker."""
        if defaults.SPECULATE <= 0 or len(self.records) < 3:
            return
        typical = statistics.median(record.seconds for record in self.records.values())
        running = {index: now - min(l.started for l in leases) for index, leases in live.items()}
        slow = [
            (elapsed, index) for index, elapsed in running.items()
            if index not in self.copies and elapsed > defaults.SPECULATE * typical
        ]
        if not slow:
            return
        # Workers not rendering this job's buckets; one busy with another job only queues the
        # copy behind its work, where it is skipped if the original finishes first.
        healthy = [w for w in workers.values() if not w.bad]
        idle = len(healthy) - len({lease.worker for leases in live.values() for lease in leases})
        for elapsed, index in sorted(slow, reverse=True)[:idle]:
            self.copies.add(index)
            self._resend([index], copy=True)
            log.info("job %s: bucket %d running %.1fs (median %.1fs): copy sent", self.job.job_id[:8], index,
                     elapsed, typical)

    def _check_stall(self, stall_timeout: float) -> None:
        if time.monotonic() - self._last_progress <= stall_timeout:
            return
        if not self._workers_seen and not _ping_workers():
            raise JobError(f"no worker answered for {stall_timeout:.0f}s; start one with `celery -A farm worker`")
        self._last_progress = time.monotonic()

    def cancel(self) -> int:
        """Cancel the job: queued buckets are removed, running ones stop at their next pass."""
        return self.job.cancel(self.queue)

    def report(self) -> dict:
        """The JSON report of the job: what was rendered, where, and how long it took."""
        meta = self.job.meta
        stats = self.job.stats()
        return {
            "job_id": meta.job_id,
            "scene_digest": meta.digest,
            "width": meta.width,
            "height": meta.height,
            "spp": meta.spp,
            "bucket_size": meta.bucket_size,
            "wall_seconds": round(self.wall_seconds, 6),
            "duplicates": stats.get("duplicates", 0),
            "resent": sum(self.resent.values()),
            "copies": len(self.copies),
            "lost_deliveries": self.lost_deliveries,
            "invalid_tiles": self.invalid_tiles,
            "assets": {  # the scene's files: sent by this client, fetched by workers, found in their caches
                "uploaded_files": self.uploaded.files,
                "uploaded_bytes": self.uploaded.bytes,
                "already_in_redis": self.uploaded.reused,
                "fetched_files": stats.get("assets_fetched", 0),
                "fetched_bytes": stats.get("asset_bytes_fetched", 0),
                "cache_hits": stats.get("asset_cache_hits", 0),
            },
            "notices": self.notices,
            "buckets": [asdict(self.records[i]) for i in sorted(self.records)],
        }


def _list(indexes) -> str:
    return ", ".join(str(i) for i in indexes)


def _ping_workers() -> list:
    from farm.app import app

    return app.control.ping(timeout=1.0) or []


def resume(redis, task, job_id: str) -> JobRun:
    """The run of a job that already exists in Redis (its client died, or detached)."""
    job = Job.load(redis, job_id)
    if job.state == "cancelled":
        raise JobCancelled(f"job {job_id} was cancelled")
    if job.state == "failed":
        raise JobError(job.error or f"job {job_id} failed")
    if job.state == "done":  # collect it again: every tile is still there
        job.state = ""
        redis.hset(Job.key_for(job_id), "state", "")
    return JobRun(job, Film(job.meta.width, job.meta.height), BucketQueue(redis, task))


def start_job(
    redis, task, scene: Scene, document: dict, bucket_size: int, bucket_order: str, assets=None
) -> JobRun:
    """Upload the scene and the files it names (read from `assets`, a FolderAssets), enqueue
    every bucket, and return the run to collect."""
    meta = Job.describe(scene, bucket_size, bucket_order)
    uploaded = Transfer()
    if scene.assets:
        if assets is None:
            raise JobError("the scene names files but no folder to read them from was given")
        uploaded = RedisAssets.upload(redis, scene.assets, assets, defaults.JOB_TTL)
        log.info("assets: %d files (%d bytes) uploaded, %d already in Redis", uploaded.files, uploaded.bytes,
                 uploaded.reused)
    job = Job.create(redis, meta, document)
    run = JobRun(job, Film(scene.film.width, scene.film.height), BucketQueue(redis, task), uploaded=uploaded)
    run.queue.send(job.job_id, [bucket.index for bucket in order(job.buckets, bucket_order)])
    log.info("job %s: %d buckets of %dpx enqueued", job.job_id, run.total, bucket_size)
    return run
