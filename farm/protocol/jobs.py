"""A job in Redis, as either side sees it: its record, and the parts of it each owned by
one class, which alone names its key and works on it:

| key (`farm:job:<id>...`)                    | owner                       |
| ------------------------------------------- | --------------------------- |
| the hash itself: description, state, sent   | record.JobRecord            |
| `:leases :attempts :crashes :failures :errors` | deliveries.Deliveries    |
| `:tiles`                                    | tilestore.TileStore         |
| `:events`                                   | events.EventLog             |
| `:stats`                                    | stats.JobStats              |
| `:plan`, and `farm:scene:<digest>`          | scenes.PlanStore, SceneStore |

Workers write tiles into the job's hash, first write wins, and push an event the client
blocks on; nothing travels through a result backend. What to do about a delivery gone
wrong is farm.protocol.recovery's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import uuid

import numpy as np

from farm import defaults
from farm.buckets import Bucket
from farm.exceptions import FarmError, InvalidTile, JobVanished
from farm.protocol import secret
from farm.protocol.assets import RedisAssets
from farm.protocol.deliveries import BucketView, Deliveries
from farm.protocol.description import JobMeta
from farm.protocol.events import EventKind, EventLog, TileEvent
from farm.protocol.leases import Lease
from farm.protocol.plans import Plan
from farm.protocol.queue import BucketQueue
from farm.protocol.blocklist import Blocklist
from farm.protocol.record import JobRecord, JobState, priority_of
from farm.protocol.scenes import PlanStore, SceneStore
from farm.protocol.stats import JobStats
from farm.protocol.tiles import TileHeader, decode_tile
from farm.protocol.tilestore import TileStore
from farm.protocol.units import Units
from farm.scene import Scene

__all__ = ["BucketView", "Job", "JobState"]


class Job:
    """A job's data in Redis, as seen from either side (client or worker)."""

    def __init__(self, redis, meta: JobMeta, state: str = "", error: str = "", priority: int = defaults.DEFAULT_PRIORITY):
        self.redis = redis
        self.meta = meta
        self.state = state  # as last read: one of JobState (RUNNING is "")
        self.error = error  # why the job failed
        self.priority = priority  # as last read: 0-100, higher first (farm.protocol.queue.band)
        self.kernel = ""  # the digest of the kernel sources it was submitted for (farm.protocol.identity)
        self.pin = ""  # the kernel identity of the first worker that took one of its buckets
        self.mixed = False  # any kernel identity of its sources may render it (--allow-mixed-devices)
        self.require: tuple[str, ...] = ()  # the tags a worker needs to render it (farm.protocol.pools)
        self.quick = False  # its short buckets may be quick deliveries (JobRecord.write)
        job_id = meta.job_id
        self.record = JobRecord(redis, job_id)
        self.stats = JobStats(redis, job_id)
        self.tiles = TileStore(redis, job_id, self.stats)
        self.deliveries = Deliveries(redis, job_id, self.tiles.key)
        self.events = EventLog(redis, job_id)
        self.plans = PlanStore(redis, job_id)
        self.units = Units(meta)
        self.blocklist = Blocklist(redis, job_id)

    @property
    def job_id(self) -> str:
        return self.meta.job_id

    def excluded(self, workers: dict) -> dict[str, str]:
        """Why each of the live `workers` (registry.workers) may not render this job (bad, on
        its blocklist, lacking its tags, of another kernel); those that may are left out."""
        from farm.protocol import identity, pools, registry

        blocked = self.blocklist.blocked() if workers else {}
        about = registry.about(self.redis, list(workers)) if workers else {}
        why = {name: record.bad or (f"blocklisted for this job: {blocked[name]}" if name in blocked else "")
               or pools.lacks(self.require, about.get(name))
               or identity.excluded(self.kernel, self.pin, self.mixed, about.get(name, {}).get("kernel", ""))
               for name, record in workers.items()}
        return {name: reason for name, reason in why.items() if reason}

    @property
    def pool(self) -> str:
        """The queue its buckets travel on (farm.protocol.pools)."""
        from farm.protocol.pools import pool_queue

        return pool_queue(self.require)

    # -- its tasks (farm.protocol.units) ----------------------------------------------

    @property
    def buckets(self) -> list[Bucket]:
        return self.units.buckets

    @property
    def bucket_count(self) -> int:
        return self.units.bucket_count

    @property
    def unit_count(self) -> int:
        return self.units.unit_count

    def bucket(self, index: int) -> Bucket:
        return self.units.bucket(index)

    def part(self, index: int) -> tuple[int, tuple[int, int]] | None:
        return self.units.part(index)

    def spare(self, index: int) -> bool:
        return self.units.spare(index)

    # -- its life ---------------------------------------------------------------------

    @staticmethod
    def describe(scene: Scene, bucket_size: int, bucket_order: str, null: float | None = None,
                 aovs: tuple[str, ...] = (), plan: Plan | None = None, split: tuple[int, int] = (0, 0),
                 spares: int = 0) -> JobMeta:
        """A new job's description, checked against the farm's limits; `null` only for the
        null renderer's jobs (the null renderer plugin of `farm bench --overhead`); `aovs`:
        layers to render beside the beauty; `plan`: the samples of one round of a progressive
        or noise-target render, whose tiles are then sums (JobMeta.sums); `split`: (tail
        buckets, parts) (JobMeta.tail); `spares`: parts a running bucket may be split into
        (JobMeta.spares)."""
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
            spares=spares,
            time=scene.time,
            shutter_open=scene.shutter[0],
            shutter_close=scene.shutter[1],
        )
        meta.check()
        return meta

    @classmethod
    def create(cls, redis, meta: JobMeta, document: dict, plan: Plan | None = None,
               priority: int = defaults.DEFAULT_PRIORITY, kernel: str = "", mixed: bool = False,
               require: tuple[str, ...] = ()) -> Job:
        """Store the scene (once per digest), the job's sample plan where it has one
        (JobMeta.cell), and its description; enqueue nothing yet (`kernel`, `mixed`: see
        JobRecord.write)."""
        text = SceneStore.encode(document)
        job = cls(redis, meta, priority=priority)
        job.kernel, job.mixed, job.require = kernel, mixed, tuple(require)
        with redis.pipeline() as pipe:
            SceneStore(redis).put(pipe, meta.digest, text)
            if meta.cell:
                job.plans.put(pipe, plan)
            job.record.write(pipe, meta, priority, kernel, mixed, require)
            job.deliveries.create(pipe)
            job.tiles.create(pipe)
            pipe.execute()
        return job

    @classmethod
    def load(cls, redis, job_id: str) -> Job:
        return cls._from_record(redis, job_id, redis.hgetall(JobRecord.key_for(job_id)))

    @classmethod
    def _from_record(cls, redis, job_id: str, raw: dict[bytes, bytes]) -> Job:
        """The job whose record reads `raw`; JobVanished if there is none."""
        meta, state, error = JobRecord.parse(job_id, raw)
        job = cls(redis, meta, state, error, priority_of(raw.get(b"priority")))
        job.kernel, job.pin = (raw.get(b"kernel") or b"").decode(errors="replace"), \
            (raw.get(b"pin") or b"").decode(errors="replace")
        job.mixed = bool(raw.get(b"mixed"))
        job.tiles.lasting = bool(raw.get(b"parts"))  # else a job of an older client: its parts' expiry is renewed
        job.quick = bool(raw.get(b"quick"))  # else its client's resends are not marked: no quick deliveries
        job.require = tuple(filter(None, (raw.get(b"require") or b"").decode(errors="replace").split(",")))
        return job

    def keys(self) -> list[str]:
        """Every key of the job (not its scene's, which jobs share)."""
        return self.keys_of(self.job_id)

    @staticmethod
    def keys_of(job_id: str) -> list[str]:
        return [JobRecord.key_for(job_id), TileStore.key_for(job_id), EventLog.key_for(job_id),
                JobStats.key_for(job_id), *Deliveries.keys_for(job_id), PlanStore.key_for(job_id),
                Blocklist.key_for(job_id)]

    def refresh(self) -> str:
        """Read the job's state again (it may have been cancelled or failed elsewhere);
        JobVanished if its record is gone."""
        self.state, self.error, self.priority, self.pin = self.record.state()
        return self.state

    def finish(self, state: str, error: str = "") -> None:
        """Record how the job ended; its keys then live FINISHED_TTL more seconds."""
        with self.redis.pipeline() as pipe:
            self.record.finish(pipe, state, error)
            self._expire(pipe, defaults.FINISHED_TTL)
            pipe.execute()
        self.state, self.error = state, error

    def fail(self, index: int, worker: str, reason: str) -> None:
        """Fail the whole job because of bucket `index`, and tell the client; a job that
        already ended keeps its state and first reason (two workers may find one fault)."""
        message = f"bucket {index} failed: {reason}"
        if self.fail_record(self.redis, self.job_id, index, worker, message):
            self.state, self.error = JobState.FAILED, message
        else:
            with contextlib.suppress(JobVanished):
                self.refresh()

    @classmethod
    def fail_record(cls, redis, job_id: str, index: int, worker: str, message: str) -> bool:
        """Fail the job `job_id` with `message` as its error, its keys then living
        FINISHED_TTL, and tell its client; even a record whose description does not parse
        (MalformedJob) fails so. False where it had ended already, or is gone."""
        if JobRecord(redis, job_id).fail(message) != 1:
            return False
        with redis.pipeline() as pipe:
            for key in cls.keys_of(job_id):
                pipe.expire(key, defaults.FINISHED_TTL)
            pipe.execute()
        EventLog(redis, job_id).push(TileEvent(index, worker, EventKind.FATAL, message))
        return True

    def _expire(self, pipe, ttl: int) -> None:
        """Queue on `pipe` the expiry of every key of the job in `ttl` seconds."""
        for key in self.keys():
            pipe.expire(key, ttl)

    def cancel(self, queue: BucketQueue) -> int:
        """Mark the job cancelled (running buckets stop at their next pass) and remove its
        queued buckets; returns how many were removed."""
        self.finish(JobState.CANCELLED)
        return queue.purge(self.job_id, self.pool)

    def keep_alive(self) -> None:
        """Push the running job's expiry JOB_TTL ahead (its scene's and files' too)."""
        assets = [RedisAssets.key_for(digest) for digest in self.meta.assets]
        with self.redis.pipeline() as pipe:
            for key in self.keys() + [SceneStore.key_for(self.meta.digest)] + assets:
                pipe.expire(key, defaults.JOB_TTL)
            pipe.execute()

    def forget(self) -> None:
        """Delete the job's keys: a round of a progressive or noise-target render, once its
        client has added its tiles to the frame's sums."""
        self.redis.delete(*self.keys())

    def sent(self) -> int:
        """How many tasks, in the job's order, have been sent (JobRecord.sent)."""
        return self.record.sent(self.unit_count)

    # -- what it renders ----------------------------------------------------------------

    def scene_document(self) -> dict:
        return SceneStore(self.redis).get(self.meta.digest)

    def plan(self) -> Plan:
        """The samples a round's job gives each pixel: its stored plan (JobMeta.cell),
        checked, JobDataError if it is missing or malformed; without one, its samples
        [first, end) for every pixel."""
        if not self.meta.cell:
            return Plan.uniform(self.meta.width, self.meta.height, *self.meta.samples)
        return self.plans.get(self.meta.width, self.meta.height)

    # -- worker side -------------------------------------------------------------------

    @classmethod
    def look(cls, redis, job_id: str, index: int) -> tuple[Job, BucketView]:
        """The job and what its record says of bucket `index`, in one round trip: what a
        worker reads before it takes a bucket the long way."""
        deliveries = Deliveries(redis, job_id, TileStore.key_for(job_id))
        with redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(JobRecord.key_for(job_id))
            deliveries.read_bucket(pipe, index)
            raw, *bucket = pipe.execute()
        job, view = cls._from_record(redis, job_id, raw), BucketView.from_replies(*bucket)
        if job.spare(index) and not view.stored and job.tiles.has(job.part(index)[0]):
            view = dataclasses.replace(view, stored=True)  # a spare part of a bucket done: nothing to render
        return job, view

    @classmethod
    def take(cls, redis, job_id: str, draft: Lease, also=None, kernel: str = "") -> tuple[Job, Lease] | None:
        """Look at bucket `draft.bucket` and, if it is plainly fresh, start it under a lease
        made from `draft`, in one round trip (Deliveries.take); None when it needs the long way."""
        deliveries = Deliveries(redis, job_id, TileStore.key_for(job_id))
        taken = deliveries.take(draft, also, kernel)
        if taken is None:
            return None
        raw, lease = taken
        try:
            return cls._from_record(redis, job_id, raw), lease
        except FarmError:  # a description over the limits: this delivery never started
            deliveries.drop(lease)
            raise

    def stopped(self, index: int) -> bool:
        """Whether a delivery of bucket `index` should stop: the job ended (cancelled or
        failed), or a tile of the bucket is stored already (for a spare part, also of its
        whole bucket). One round trip."""
        with self.redis.pipeline(transaction=False) as pipe:
            self.record.read_state(pipe)
            self.tiles.read_has(pipe, index)
            if self.spare(index):
                self.tiles.read_has(pipe, self.part(index)[0])
            state, *stored = pipe.execute()
        self.state, self.error = JobRecord.decode_state(state)
        return self.state != "" or any(stored)

    # -- client side -------------------------------------------------------------------

    def stored_and_announced(self) -> tuple[int, int]:
        """How many tiles are stored, and how many events wait for the client: two counts
        in one round trip."""
        with self.redis.pipeline(transaction=False) as pipe:
            self.tiles.count(pipe)
            self.events.waiting(pipe)
            entries, announced = pipe.execute()
        return self.tiles.stored_count(entries), announced

    def read_tiles(self, indexes: list[int], carried: dict[int, bytes] | None = None, heads: dict | None = None
                   ) -> dict[int, tuple[TileHeader, np.ndarray] | InvalidTile | None]:
        """The stored tiles of `indexes`, checked, in one round trip (TileStore.read; those
        `carried` by their events as they are, with their `heads` read already): an invalid
        one is deleted, so its bucket can be rendered again."""
        key, channels = secret.key(), self.meta.channels
        carried, heads = carried or {}, heads or {}

        def decode(index: int, payload: bytes):
            head = heads.get(index) if payload is carried.get(index) else None
            return decode_tile(payload, self.job_id, self.bucket(index), key, channels,
                               self.meta.sums or index >= self.bucket_count, head)

        return self.tiles.read(indexes, decode, carried)

    def tile(self, index: int) -> tuple[TileHeader, np.ndarray] | None:
        """The stored tile of bucket `index` (None if there is none); InvalidTile if it is wrong."""
        found = self.read_tiles([index])[index]
        if isinstance(found, InvalidTile):
            raise found
        return found
