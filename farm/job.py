"""One render job: its Redis keys, and the client side of a render (upload, enqueue, collect).

Everything a job owns lives under `farm:job:<id>` (the scene under `farm:scene:<digest>`,
shared by jobs of the same scene). Workers write tiles into the job's hash, first write
wins, and push an event the client blocks on; nothing travels through a result backend.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Callable

import numpy as np

from farm import defaults
from farm.assets import RedisAssets
from farm.buckets import Bucket, bucket_at, count, order, split
from farm.exceptions import JobError
from farm.film import Film
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


@dataclass(frozen=True)
class TileEvent:
    """What a worker tells the client about one bucket: done, or failed with `error`."""

    bucket: int  # bucket index in the job's row-major tiling
    worker: str  # Celery hostname of the worker, e.g. local1@host
    device: str = ""  # OpenCL device name the bucket ran on
    seconds: float = 0.0  # kernel time of this bucket, upload excluded
    attempt: int = 1  # 1 for the first delivery, more after a redelivery
    pid: int = 0  # worker child process id
    error: str | None = None  # why the bucket failed; None when it succeeded

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: bytes | str) -> TileEvent:
        return cls(**json.loads(text))


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

    def to_redis(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items()}

    @classmethod
    def from_redis(cls, raw: dict[bytes, bytes]) -> JobMeta:
        values = {k.decode(): v.decode() for k, v in raw.items()}
        return cls(
            job_id=values["job_id"],
            digest=values["digest"],
            width=int(values["width"]),
            height=int(values["height"]),
            spp=int(values["spp"]),
            bucket_size=int(values["bucket_size"]),
            order=values["order"],
            created=float(values["created"]),
        )


class Job:
    """A job's data in Redis, as seen from either side (client or worker)."""

    def __init__(self, redis, meta: JobMeta, state: str = ""):
        self.redis = redis
        self.meta = meta
        self.state = state  # "" while running, "cancelled" once cancelled, as last read

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

    @staticmethod
    def scene_key(digest: str) -> str:
        return f"{defaults.KEY_PREFIX}:scene:{digest}"

    @classmethod
    def create(cls, redis, scene: Scene, document: dict, bucket_size: int, bucket_order: str) -> Job:
        """Store the scene (once per digest) and the job's description; enqueue nothing yet."""
        meta = JobMeta(
            job_id=uuid.uuid4().hex,
            digest=scene.digest,
            width=scene.film.width,
            height=scene.film.height,
            spp=scene.film.spp,
            bucket_size=bucket_size,
            order=bucket_order,
            created=time.time(),
        )
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
        if not raw:
            raise JobError(f"job {job_id} does not exist (finished and expired, or never created)")
        return cls(redis, JobMeta.from_redis(raw), raw.get(b"state", b"").decode())

    @property
    def cancelled(self) -> bool:
        """Whether the job was cancelled when it was loaded (or cancelled through this object)."""
        return self.state == "cancelled"

    def cancel(self) -> None:
        """Mark the job cancelled: workers skip its buckets that have not started."""
        self.redis.hset(self.key_for(self.job_id), "state", "cancelled")
        self.state = "cancelled"

    def scene_document(self) -> dict:
        text = self.redis.get(self.scene_key(self.meta.digest))
        if text is None:
            raise JobError(f"job {self.job_id}: scene {self.meta.digest[:12]} is missing from Redis")
        return json.loads(text)

    # -- worker side -------------------------------------------------------------------

    def begin_attempt(self, index: int) -> int:
        """Count a delivery of bucket `index`; returns which attempt this is (1 = first)."""
        key = self.key_for(self.job_id, "attempts")
        with self.redis.pipeline() as pipe:
            pipe.hincrby(key, str(index), 1)
            pipe.expire(key, defaults.JOB_TTL)
            attempt, _ = pipe.execute()
        return int(attempt)

    def has_tile(self, index: int) -> bool:
        return bool(self.redis.hexists(self.key_for(self.job_id, "tiles"), str(index)))

    def store_tile(self, index: int, tile: np.ndarray, event: TileEvent) -> bool:
        """Store the tile unless one is already stored; True if this one was first."""
        keys = [self.key_for(self.job_id, p) for p in ("tiles", "events", "stats")] + [self.key_for(self.job_id)]
        payload = np.ascontiguousarray(tile, dtype="<f4").tobytes()
        stored = self.redis.eval(_STORE_TILE, len(keys), *keys, str(index), payload, event.to_json())
        if stored == -1:
            raise JobError(f"job {self.job_id} no longer exists; tile of bucket {index} dropped")
        return stored == 1

    def report_failure(self, event: TileEvent) -> None:
        key = self.key_for(self.job_id, "events")
        with self.redis.pipeline() as pipe:
            pipe.rpush(key, event.to_json())
            pipe.expire(key, defaults.JOB_TTL)
            pipe.execute()

    # -- client side -------------------------------------------------------------------

    def enqueue(self, task, bucket_order: str | None = None) -> None:
        """Send one task per bucket, in render order, over one broker connection."""
        app = task.app
        with app.producer_or_acquire() as producer:
            for bucket in order(self.buckets, bucket_order or self.meta.order):
                task.apply_async((self.job_id, bucket.index), producer=producer)

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

    def tile(self, index: int) -> np.ndarray:
        """The stored tile of bucket `index`, checked against the bucket's size."""
        bucket = self.bucket(index)
        payload = self.redis.hget(self.key_for(self.job_id, "tiles"), str(index))
        if payload is None:
            raise JobError(f"job {self.job_id}: tile of bucket {index} announced but not stored")
        expected = bucket.width * bucket.height * 3 * 4
        if len(payload) != expected:
            raise JobError(f"job {self.job_id}: tile of bucket {index} has {len(payload)} bytes, expected {expected}")
        return np.frombuffer(payload, dtype="<f4").reshape(bucket.height, bucket.width, 3)

    def attempts(self) -> dict[int, int]:
        raw = self.redis.hgetall(self.key_for(self.job_id, "attempts"))
        return {int(k): int(v) for k, v in raw.items()}

    def duplicates(self) -> int:
        return int(self.redis.hget(self.key_for(self.job_id, "stats"), "duplicates") or 0)


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


@dataclass
class JobRun:
    """The client's view of one running job: the film filling up and who rendered what."""

    job: Job
    film: Film
    records: dict[int, BucketRecord] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None

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
        check_alive: Callable[[], None] | None = None,
        stall_timeout: float = defaults.STALL_TIMEOUT,
    ) -> Film:
        """Block until every bucket's tile is in the film; raises JobError on a failed bucket.

        `check_alive` is called about once a second while nothing arrives and raises if the
        farm cannot make progress (say, every local worker died); after `stall_timeout`
        seconds of silence the workers are pinged, and none answering is an error.
        """
        last_progress = time.monotonic()
        while len(self.records) < self.total:
            event = self.job.next_event(timeout=1.0)
            if event is None:
                if check_alive is not None:
                    check_alive()
                if time.monotonic() - last_progress > stall_timeout:
                    if not _ping_workers():
                        raise JobError(
                            f"no worker answered for {stall_timeout:.0f}s; start one with `celery -A farm worker`"
                        )
                    last_progress = time.monotonic()
                continue
            if event.error is not None:
                raise JobError(f"bucket {event.bucket} failed on {event.worker}: {event.error}")
            if not 0 <= event.bucket < self.total or event.bucket in self.records:
                log.warning("job %s: ignored event for bucket %d from %s", self.job.job_id, event.bucket, event.worker)
                continue
            bucket = self.job.bucket(event.bucket)
            self.film.put(bucket, self.job.tile(event.bucket))
            record = BucketRecord(
                bucket.index, bucket.x, bucket.y, bucket.width, bucket.height,
                event.worker, event.device, event.attempt, event.seconds,
            )
            self.records[bucket.index] = record
            last_progress = time.monotonic()
            if on_bucket is not None:
                on_bucket(record)
        self.finished = time.perf_counter()
        attempts = self.job.attempts()
        for index, record in self.records.items():
            record.attempts = max(record.attempts, attempts.get(index, record.attempts))
        return self.film

    def report(self) -> dict:
        """The JSON report of the job: what was rendered, where, and how long it took."""
        meta = self.job.meta
        return {
            "job_id": meta.job_id,
            "scene_digest": meta.digest,
            "width": meta.width,
            "height": meta.height,
            "spp": meta.spp,
            "bucket_size": meta.bucket_size,
            "wall_seconds": round(self.wall_seconds, 6),
            "duplicates": self.job.duplicates(),
            "buckets": [asdict(self.records[i]) for i in sorted(self.records)],
        }


def _ping_workers() -> list:
    from farm.app import app

    return app.control.ping(timeout=1.0) or []


def start_job(
    redis, task, scene: Scene, document: dict, bucket_size: int, bucket_order: str, assets=None
) -> JobRun:
    """Upload the scene and the files it names (read from `assets`, a FolderAssets), enqueue
    every bucket, and return the run to collect."""
    if scene.assets:
        if assets is None:
            raise JobError("the scene names files but no folder to read them from was given")
        RedisAssets.upload(redis, scene.assets, assets, defaults.JOB_TTL)
    job = Job.create(redis, scene, document, bucket_size, bucket_order)
    run = JobRun(job, Film(scene.film.width, scene.film.height))
    job.enqueue(task)
    log.info("job %s: %d buckets of %dpx enqueued", job.job_id, run.total, bucket_size)
    return run
