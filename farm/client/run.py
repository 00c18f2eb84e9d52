"""The client side of one job: its send window, the tiles collected into the film, the
faults told, and (farm.client.reconcile) the reconciliation that makes sure every bucket
gets rendered. Started by farm.client.start, turned by farm.client.loop."""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Callable

from farm import defaults
from farm.client.film import Film
from farm.client.reconcile import Reconciliation
from farm.client.spares import Split, TailSplit
from farm.exceptions import InvalidTile, JobError
from farm.protocol.assets import Transfer
from farm.protocol.events import EventKind, TileEvent
from farm.protocol.jobs import Job, JobState
from farm.protocol.tiles import mean_of
from farm.protocol.queue import BucketQueue, band, priority_for
from farm.protocol.recovery import Action, Cause, Recovery
from farm.protocol.tilestore import TileStore

log = logging.getLogger(__name__)


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
    sent: float = 0.0  # seconds from the start of the run to the bucket's last send...
    arrived: float = 0.0  # ...and to its tile in the film


@dataclass
class JobRun(Reconciliation, TailSplit):
    """The client's view of one job: the film filling up, who rendered what, and the
    reconciliation that makes sure every bucket gets rendered whatever happens to messages,
    workers or the broker."""

    job: Job
    film: Film
    queue: BucketQueue | None  # None: a run that only watches (farm watch) and sends nothing
    records: dict[int, BucketRecord] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None
    notices: list[str] = field(default_factory=list)  # what the user was told about faults
    resent: Counter = field(default_factory=Counter)  # bucket -> times the client sent it again (not copies)
    copies: set[int] = field(default_factory=set)  # buckets given a copy as stragglers
    splits: dict[int, Split] = field(default_factory=dict)  # buckets split for idle workers (farm.client.spares)
    lost_deliveries: int = 0  # deliveries whose worker or render process died
    invalid_tiles: int = 0
    uploaded: Transfer = field(default_factory=Transfer)  # the scene's files this client sent to Redis
    # Seconds a bucket may have neither a message nor a lease before it is sent again, and the figure
    # a lost-worker notice names (FARM_LEASE_TIMEOUT; when a lease lapses the workers write).
    lease_timeout: float = field(default_factory=lambda: defaults.LEASE_TIMEOUT)
    # Copy a bucket running this many times the median bucket; 0: never (FARM_SPECULATE).
    speculate: float = field(default_factory=lambda: defaults.SPECULATE)
    # Uploads the scene and its files again and recreates the job's record, for a job gone from Redis
    # (a restart without persistence); None where it cannot (`farm collect`): the job then fails.
    recreate: Callable[[], None] | None = None
    # Buckets not sent yet, in the order they go out: SEND_WINDOW of the job's buckets are kept sent and
    # unfinished, so collection starts with the first batch and a huge job does not flood the queue.
    unsent: list[int] = field(default_factory=list)
    wanted: list[int] | None = None  # the buckets this run renders: all, or those a round's plan gives samples
    paused: bool = False  # by its manager (farm.manager): sends nothing, copies nothing (see `hold`)
    # `submit --max-workers N`: at most N of the job's buckets queued or rendering at once (each
    # worker holds one), so at most N workers render it; copies of stragglers aside
    max_workers: int | None = None
    _sent_priority: int | None = None  # the job's priority its queued buckets were sent at
    _notice_times: list[float] = field(default_factory=list)  # seconds into the run of each notice
    _parts: dict[int, tuple] = field(default_factory=dict)  # split bucket -> (sums so far, parts arrived)
    _sent_at: dict[int, float] = field(default_factory=dict)  # bucket -> when it was last sent (perf_counter)
    _waiting_since: dict[int, float] = field(default_factory=dict)
    _missing_since: dict[int, float] = field(default_factory=dict)  # neither queued nor leased at a look
    _taken_back: set[int] = field(default_factory=set)  # sent before, withdrawn: sent again marked (RESENT)
    _workers_seen: int = 0  # live workers at the last look
    _none_healthy_since: float | None = None  # when every live worker was last seen bad
    _arrivals: deque = field(default_factory=deque)  # (monotonic time, tiles taken) of recent sends
    _last_progress: float = field(default_factory=time.monotonic)
    _last_keep_alive: float = 0.0
    _on_bucket: Callable | None = None
    _on_notice: Callable | None = None
    _check_alive: Callable | None = None
    _stall_timeout: float = defaults.STALL_TIMEOUT
    _next_check: float = 0.0

    def __post_init__(self):
        # carries out every resend and every decision about a bucket gone wrong
        self.recovery = Recovery(self.queue) if self.queue is not None else None

    @property
    def total(self) -> int:
        return self.job.bucket_count if self.wanted is None else len(self.wanted)

    @cached_property
    def _wanted(self) -> set[int] | range:
        return range(self.job.bucket_count) if self.wanted is None else set(self.wanted)

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
        """Block until every bucket's tile is in the film, then mark the job done: this run
        alone in a JobLoop (see `watch` for the arguments).

        Raises JobError when the job fails (a bucket failed MAX_FAILURES times), JobCancelled
        when it is cancelled elsewhere, and FarmError from `check_alive`.
        """
        from farm.client.loop import JobLoop

        self.watch(on_bucket, on_notice, check_alive, stall_timeout)
        loop = JobLoop(self.job.redis)
        loop.add(self)
        error = loop.run()[self.job.job_id]
        if error is not None:
            raise error
        return self.film

    def watch(
        self,
        on_bucket: Callable[[BucketRecord], None] | None = None,
        on_notice: Callable[[str], None] | None = None,
        check_alive: Callable[[], None] | None = None,
        stall_timeout: float = defaults.STALL_TIMEOUT,
    ) -> None:
        """What the run tells and asks while it is collected: `on_bucket` each bucket in the
        film, `on_notice` each fault the user should hear of; `check_alive` is called every
        second and raises if the farm cannot make progress (say every local worker died).
        After `stall_timeout` seconds without progress and without a live worker, the run
        gives up."""
        self._on_bucket, self._on_notice, self._check_alive = on_bucket, on_notice, check_alive
        self._stall_timeout = stall_timeout
        self._last_progress = time.monotonic()
        self._next_check = 0.0

    @property
    def complete(self) -> bool:
        return len(self.records) >= self.total

    def tick(self) -> float:
        """The run's work between events: the next batch of its send window, and every
        RECONCILE_INTERVAL its checks. Returns how long it may wait for its next event."""
        sending = self.send_more() > 0  # one batch at a time, between events
        if time.monotonic() >= self._next_check:
            if self._check_alive is not None:
                self._check_alive()
            self.reconcile()
            self._check_stall(self._stall_timeout)
            self._next_check = time.monotonic() + defaults.RECONCILE_INTERVAL
            return 0.0
        return 0.0 if sending else self._next_check - time.monotonic()

    def take_events(self, events: list[TileEvent]) -> None:
        """Events the job's workers pushed: tiles into the film, faults told."""
        tiles = [e for e in events if e.kind == EventKind.TILE and (e.bucket in self._wanted or self.job.spare(e.bucket))]
        carried = [e for e in tiles if e.tile is not None]
        self._take([e.bucket for e in tiles], {e.bucket: e.tile for e in carried}, {e.bucket: e.head for e in carried})
        for event in events:
            self._handle(event)
        if any(e.kind == EventKind.TILE for e in events) and self.total - len(self.records) <= self._workers_seen:
            # the frame's tail: a worker just became free for a straggler or a split, which it
            # tells the registry IDLE_AFTER after its tile (farm/worker/busy.py)
            self._next_check = min(self._next_check, time.monotonic() + 2 * defaults.IDLE_AFTER)

    def finish(self) -> None:
        """Every bucket is in the film: mark the job done."""
        self.finished = time.perf_counter()
        self.job.finish(JobState.DONE)
        attempts = self.job.deliveries.attempts()
        for index, record in self.records.items():
            record.attempts = max(record.attempts, attempts.get(index, record.attempts))

    def hold(self, paused: bool = True) -> None:
        """Pause (or go on with) the run: paused, it sends no more buckets, and those still
        queued are taken back, to be sent first when it goes on; the buckets rendering finish."""
        if paused == self.paused:
            return
        self.paused = paused
        if paused and self.queue is not None:
            self._take_back()

    def follow_priority(self) -> None:
        """The job's priority changed (`farm priority`, read by `reconcile`): its buckets
        still queued are taken back and sent again at the new one, first."""
        if self._sent_priority is None or self.queue is None or band(self.job.priority) == band(self._sent_priority):
            return  # within a band the lists are the same: sending again would only move them back
        self._take_back()
        self._sent_priority = self.job.priority

    def _take_back(self) -> None:
        """The run's buckets still queued (not yet taken by a worker) back to the front of
        its unsent ones."""
        taken = set(self.queue.withdraw(self.job.job_id, self.job.pool)) - set(self.records)
        taken = [index for index in taken if index in self._wanted and index not in self.unsent]
        if taken:
            self.unsent[:0] = sorted(taken, key=lambda index: self._sent_at.get(index, 0.0))
            for index in taken:
                self._sent_at.pop(index, None)
                self._waiting_since.pop(index, None)
            self._taken_back.update(taken)  # a withdrawn message loses its marks (farm.worker.quick)
            # the job's record still counts them sent: a client that resumes it finds them without
            # a message and sends them again after LEASE_TIMEOUT (farm.client.reconcile)

    def send_more(self) -> int:
        """Send the next batch of buckets if fewer than SEND_WINDOW are sent and unfinished,
        and record in the job how many have gone out (a resumed client sends the rest);
        returns how many were sent."""
        if not self.unsent or self.paused:
            return 0
        batch = self.queue.batch
        window = self._window(batch)
        room = window - (self.total - len(self.unsent) - len(self.records))
        if room < min(max(1, window // 4), len(self.unsent)):  # a quarter of the window at least: few round trips
            return 0
        chunk = self.unsent[: min(room, batch)]
        priority = priority_for(self.total - len(self.records), self.job.priority)
        for again in (True, False):  # what was sent before goes marked (farm.protocol.queue.RESENT)
            if part := [index for index in chunk if (index in self._taken_back) == again]:
                self.queue.send(self.job.job_id, part, priority=priority, pool=self.job.pool, resent=again)
        self._taken_back.difference_update(chunk)
        self._sent_priority = self.job.priority
        self._sent_at.update(dict.fromkeys(chunk, time.perf_counter()))
        del self.unsent[: len(chunk)]
        self.job.record.record_sent(self.total - len(self.unsent))
        return len(chunk)

    def _window(self, batch: int) -> int:
        """Buckets to keep sent and unfinished: what the farm renders in SEND_AHEAD seconds
        at the rate tiles arrived over the last few seconds, at least a batch and four per
        worker, at most SEND_WINDOW. A queued bucket then waits about SEND_AHEAD seconds,
        well under LEASE_TIMEOUT, so reconciliation rarely has to read the queue."""
        clock = time.monotonic()
        self._arrivals.append((clock, len(self.records)))
        while len(self._arrivals) > 2 and clock - self._arrivals[0][0] > 5.0:
            self._arrivals.popleft()
        first_time, first_count = self._arrivals[0]
        rate = (len(self.records) - first_count) / (clock - first_time) if clock > first_time else 0.0
        floor = max(batch, 4 * self._workers_seen)
        window = min(defaults.SEND_WINDOW, max(floor, int(rate * defaults.SEND_AHEAD)))
        return window if self.max_workers is None else min(window, self.max_workers)

    def _notice(self, message: str) -> None:
        self.notices.append(message)
        self._notice_times.append(time.perf_counter() - self.started)
        log.info("job %s: %s", self.job.job_id[:8], message)
        if self._on_notice is not None:
            self._on_notice(message)

    def _handle(self, event: TileEvent) -> None:
        if event.bucket not in self._wanted and not self.job.spare(event.bucket):
            log.warning("job %s: ignored event for bucket %d from %s", self.job.job_id, event.bucket, event.worker)
            return
        if event.kind == EventKind.TILE:  # taken, with the others of its round trip, before
            return
        if event.kind == EventKind.FATAL:  # believed only if the job's record says so too
            if self.job.refresh() == JobState.FAILED:
                raise JobError(self.job.error or event.error or f"bucket {event.bucket} failed")
        elif event.kind == EventKind.ERROR:
            self._notice(f"bucket {event.bucket} failed on {event.worker}: {event.error}")
        elif event.kind == EventKind.LOST:  # a worker found the dead delivery before this client did
            self.lost_deliveries += 1
            self._notice(event.error or f"bucket {event.bucket} lost on {event.worker}")
        elif event.kind == EventKind.BAD_WORKER:
            self._notice(f"worker {event.worker} stopped taking buckets: {event.error}")
        elif event.kind == EventKind.BLOCKED:
            self._notice(f"worker {event.worker} takes no more of this job's buckets (blocklisted): {event.error}")

    def _take(self, indexes: list[int], carried: dict[int, bytes] | None = None, heads: dict | None = None) -> None:
        """Put the stored tiles of `indexes` into the film (read in one round trip, but for
        those `carried` in their events, with their `heads` read), those that are there and valid; an invalid one is
        rejected and its bucket rendered again (by a run that sends: one that only watches,
        `farm watch`, leaves that to the job's client)."""
        wanted = [index for index in dict.fromkeys(indexes) if index not in self.records]
        for index, found in self.job.read_tiles(wanted, carried, heads).items():
            if isinstance(found, InvalidTile):
                if self.queue is not None:
                    self._reject(index, found)
            elif found is not None:  # None: announced, but gone (Redis lost it); reconcile sends it again
                self._put(index, *found)

    def _reject(self, index: int, exc: InvalidTile) -> None:
        """Counted like a failed delivery: a farm that only makes bad tiles ends."""
        self.invalid_tiles += 1
        decision = self.recovery.rejected(self.job, index, f"tile rejected: {exc}", exc)
        if decision.action is Action.GIVE_UP:
            raise JobError(self.job.error) from None
        self._notice(f"bucket {index}: tile rejected ({exc}); rendering it again")
        self._sent_again([index])

    def _put(self, index: int, header, pixels) -> None:
        if self.job.spare(index):  # the tail split itself (farm.client.spares)
            return self._spare_arrived(index, header, pixels)
        bucket = self.job.bucket(index)
        part = self.job.part(index)
        if part is None:
            self.film.put(bucket, pixels)
        else:  # a part of a split bucket: added up (exactly) until all its parts are in
            whole, _ = part
            total, arrived = self._parts.get(whole, (0, 0))
            total, arrived = pixels + total, arrived + 1
            self._parts[whole] = (total, arrived)
            if arrived == self.job.meta.split:
                self.film.put(self.job.bucket(whole), mean_of(total, self.job.meta.spp))
        self._record(index, header)

    def _record(self, index: int, header) -> None:
        """Bucket `index` is in the film, made as `header` says."""
        bucket = self.job.bucket(index)
        record = BucketRecord(
            index, bucket.x, bucket.y, bucket.width, bucket.height,
            header.worker, header.device, header.attempt, header.seconds,
            self._sent_at.pop(index, self.started) - self.started, time.perf_counter() - self.started,
        )
        self.records[index] = record
        self._waiting_since.pop(index, None)
        self._last_progress = time.monotonic()
        if self._on_bucket is not None:
            self._on_bucket(record)

    def take_stored(self) -> None:
        """Take every valid tile in Redis the film lacks (after a resume, a lost event, or
        before saving a partial image: nothing rendered is left behind)."""
        missing = sorted(self.job.tiles.stored() - set(self.records))
        for start in range(0, len(missing), TileStore.READ_BATCH):
            self._take(missing[start : start + TileStore.READ_BATCH])

    def _resend(self, indexes: list[int], cause: Cause) -> None:
        """Have recovery send `indexes` again for `cause`, and note it in the run; a paused
        run keeps them, first of its unsent buckets, for when it goes on."""
        if self.paused and cause is not Cause.STRAGGLER:
            kept = [index for index in indexes if index not in self.unsent]
            self.unsent[:0] = kept
            for index in kept:
                self._waiting_since.pop(index, None)
            return
        self.recovery.resend(self.job, indexes, cause)
        if cause is not Cause.STRAGGLER:  # copies are counted in self.copies, and leave the bucket's send time as it was
            self._sent_again(indexes)

    def _sent_again(self, indexes: list[int]) -> None:
        self._sent_at.update(dict.fromkeys(indexes, time.perf_counter()))
        self.resent.update(indexes)
    def cancel(self) -> int:
        """Cancel the job: queued buckets are removed, running ones stop at their next pass."""
        self.unsent.clear()
        return self.job.cancel(self.queue)

    def report(self) -> dict:
        """The JSON report of the job: what was rendered, where, and how long it took."""
        meta = self.job.meta
        stats = self.job.stats.read()
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
            "events": [{"at": round(at, 6), "message": message} for at, message in zip(self._notice_times, self.notices)],
            "copied": sorted(self.copies),
            "buckets": [asdict(self.records[i]) for i in sorted(self.records)],
        }
