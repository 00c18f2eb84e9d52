"""The client side of one render: upload the scene, enqueue its buckets, collect the
tiles into the film, and reconcile: every bucket without a tile is being rendered or has
a message queued, whatever happens to messages, workers or the broker."""

from __future__ import annotations

import contextlib
import logging
import statistics
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Callable

from farm import defaults
from farm.buckets import Bucket
from farm.client.film import Film
from farm.exceptions import InvalidTile, JobCancelled, JobError, JobVanished
from farm.protocol import registry
from farm.protocol.assets import RedisAssets, Transfer
from farm.protocol.broker import server_time
from farm.protocol.events import EventKind, TileEvent
from farm.protocol.jobs import Job, JobState
from farm.protocol.leases import Lease, process_gone
from farm.protocol.plans import Plan
from farm.protocol.tiles import mean_of
from farm.protocol.queue import BucketQueue, priority_for
from farm.protocol.recovery import Action, Cause, Recovery
from farm.protocol.tilestore import TileStore
from farm.scene import Scene

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
class JobRun:
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
    lost_deliveries: int = 0  # deliveries whose worker or render process died
    invalid_tiles: int = 0
    uploaded: Transfer = field(default_factory=Transfer)  # the scene's files this client sent to Redis
    # Seconds a bucket may have neither a message nor a lease before it is sent again, and
    # the figure a lost-worker notice names (FARM_LEASE_TIMEOUT). When a lease lapses is the
    # workers' own setting: they write its end time.
    lease_timeout: float = field(default_factory=lambda: defaults.LEASE_TIMEOUT)
    # Copy a bucket running this many times the median bucket; 0: never (FARM_SPECULATE).
    speculate: float = field(default_factory=lambda: defaults.SPECULATE)
    # Uploads the scene and its files again and recreates the job's record, for a job that
    # vanished from Redis (a restart without persistence); None where this client cannot
    # (`farm collect` holds no scene), and then a vanished job fails.
    recreate: Callable[[], None] | None = None
    # Buckets not sent yet, in the order they go out: the client keeps SEND_WINDOW of the
    # job's buckets sent and unfinished, and sends more as tiles arrive, so collection
    # starts with the first batch and a huge job does not flood the queue ahead of others.
    unsent: list[int] = field(default_factory=list)
    # The buckets this run renders: all of the job's, or those a round's plan gives samples.
    wanted: list[int] | None = None
    _notice_times: list[float] = field(default_factory=list)  # seconds into the run of each notice
    _parts: dict[int, tuple] = field(default_factory=dict)  # split bucket -> (sums so far, parts arrived)
    _sent_at: dict[int, float] = field(default_factory=dict)  # bucket -> when it was last sent (perf_counter)
    _waiting_since: dict[int, float] = field(default_factory=dict)
    _workers_seen: int = 0  # live workers at the last look
    _none_healthy_since: float | None = None  # when every live worker was last seen bad
    _arrivals: deque = field(default_factory=deque)  # (monotonic time, tiles taken) of recent sends
    _last_progress: float = field(default_factory=time.monotonic)
    _last_keep_alive: float = 0.0

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
            sending = self.send_more() > 0  # one batch at a time, between events
            if time.monotonic() >= next_check:
                if check_alive is not None:
                    check_alive()
                self.reconcile()
                self._check_stall(stall_timeout)
                next_check = time.monotonic() + defaults.RECONCILE_INTERVAL
                continue
            events = self.job.events.next(timeout=0 if sending else next_check - time.monotonic())
            self._take([e.bucket for e in events if e.kind == EventKind.TILE and e.bucket in self._wanted])
            for event in events:
                self._handle(event)
            if any(e.kind == EventKind.TILE for e in events) and self.total - len(self.records) <= self._workers_seen:
                next_check = 0.0  # the frame's tail: a worker just became free for a straggler
        self.finished = time.perf_counter()
        self.job.finish(JobState.DONE)
        attempts = self.job.deliveries.attempts()
        for index, record in self.records.items():
            record.attempts = max(record.attempts, attempts.get(index, record.attempts))
        return self.film

    def send_more(self) -> int:
        """Send the next batch of buckets if fewer than SEND_WINDOW are sent and unfinished,
        and record in the job how many have gone out (a resumed client sends the rest);
        returns how many were sent."""
        if not self.unsent:
            return 0
        batch = self.queue.batch
        window = self._window(batch)
        room = window - (self.total - len(self.unsent) - len(self.records))
        if room < min(max(1, window // 4), len(self.unsent)):  # a quarter of the window at least: few round trips
            return 0
        chunk = self.unsent[: min(room, batch)]
        self.queue.send(self.job.job_id, chunk, priority=priority_for(self.total - len(self.records)))
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
        return min(defaults.SEND_WINDOW, max(floor, int(rate * defaults.SEND_AHEAD)))

    def _notice(self, message: str) -> None:
        self.notices.append(message)
        self._notice_times.append(time.perf_counter() - self.started)
        log.info("job %s: %s", self.job.job_id[:8], message)
        if self._on_notice is not None:
            self._on_notice(message)

    def _handle(self, event: TileEvent) -> None:
        if event.bucket not in self._wanted:
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

    def _take(self, indexes: list[int]) -> None:
        """Put the stored tiles of `indexes` into the film (read in one round trip), those
        that are there and valid; an invalid one is rejected and its bucket rendered again
        (by a run that sends: one that only watches, `farm watch`, leaves that to the job's
        client)."""
        wanted = [index for index in dict.fromkeys(indexes) if index not in self.records]
        for index, found in self.job.read_tiles(wanted).items():
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

    def _take_unannounced(self) -> None:
        """Take stored tiles whose events never came (a resumed job, events lost with a
        Redis restart): only when Redis holds more tiles than this client has taken and
        has events waiting for, so the check costs two counts, not a list of every tile."""
        stored, announced = self.job.stored_and_announced()
        if stored - len(self.records) > announced:
            self.take_stored()

    def take_stored(self) -> None:
        """Take every valid tile in Redis the film lacks (after a resume, a lost event, or
        before saving a partial image: nothing rendered is left behind)."""
        missing = sorted(self.job.tiles.stored() - set(self.records))
        for start in range(0, len(missing), TileStore.READ_BATCH):
            self._take(missing[start : start + TileStore.READ_BATCH])

    def _resend(self, indexes: list[int], cause: Cause) -> None:
        """Have recovery send `indexes` again for `cause`, and note it in the run."""
        self.recovery.resend(self.job, indexes, cause)
        if cause is not Cause.STRAGGLER:  # copies are counted in self.copies, and leave the bucket's send time as it was
            self._sent_again(indexes)

    def _sent_again(self, indexes: list[int]) -> None:
        self._sent_at.update(dict.fromkeys(indexes, time.perf_counter()))
        self.resent.update(indexes)

    def reconcile(self) -> None:
        """Make sure every bucket without a tile is being rendered or has a message queued.

        Takes tiles that arrived without an event (a resumed job, an event lost with a
        Redis restart); finds deliveries whose heartbeat stopped (a dead worker or render
        process) and sends their buckets again; sends again buckets whose message vanished
        (deleted, lost by a restarted Redis, dropped in a fetch window) once they have had
        neither a message nor a lease for LEASE_TIMEOUT; and copies stragglers.
        """
        try:
            state = self.job.refresh()
        except JobVanished as exc:
            self._recreate(exc)
            return
        if state == JobState.CANCELLED:
            raise JobCancelled(f"job {self.job.job_id} was cancelled")
        if state == JobState.FAILED:
            raise JobError(self.job.error or f"job {self.job.job_id} failed")
        if time.monotonic() - self._last_keep_alive > 30:
            self.job.keep_alive()
            self._last_keep_alive = time.monotonic()
        self._take_unannounced()
        if len(self.records) == self.total:
            return
        workers = registry.workers(self.job.redis)
        self._workers_seen = len(workers)
        self._check_healthy(workers)
        now = server_time(self.job.redis)
        stalled = registry.check_clock(self.job.redis)  # Redis itself stopped: lapsed leases prove nothing
        live: dict[int, list[Lease]] = {}
        lost: list[Lease] = []
        for lease in self.job.deliveries.leases():
            if lease.until >= now or (stalled and process_gone(lease) is not True):
                live.setdefault(lease.bucket, []).append(lease)
            elif self.job.deliveries.remove_lost(lease) and lease.bucket not in self.records:
                lost.append(lease)
        waiting = [i for i in self._pending() if i not in live]
        lost_buckets = {lease.bucket for lease in lost}
        clock = time.monotonic()
        suspects = []  # without a lease for LEASE_TIMEOUT: queued still, or its message is gone
        for index in waiting:
            since = self._waiting_since.setdefault(index, clock)
            if stalled and index not in lost_buckets:  # nothing could move in the stall: time again from now
                self._waiting_since[index] = clock
            elif index in lost_buckets or clock - since >= self.lease_timeout:
                suspects.append(index)
        for index in live:
            self._waiting_since.pop(index, None)
        # The queue is read only when a bucket has waited that long, so its cost follows the
        # buckets in doubt, not the queue's length every second.
        queued = self.queue.scan(self.job.job_id).queued if set(suspects) - lost_buckets else set()
        resend = []
        for index in suspects:
            self._waiting_since[index] = clock
            if index in lost_buckets or index not in queued:
                resend.append(index)
        if lost:
            self._report_lost(lost, resend, workers)
            if self.recovery.lost(self.job, lost).action is Action.GIVE_UP:
                raise JobError(self.job.error)
        vanished = sorted(set(resend) - lost_buckets)
        if vanished:
            self._notice(
                f"bucket{'s' if len(vanished) > 1 else ''} {_list(vanished)} had no message and no worker "
                f"for {self.lease_timeout:.0f}s: sent again"
            )
        if resend:
            for cause, indexes in ((Cause.LOST_LEASE, [i for i in resend if i in lost_buckets]),
                                   (Cause.VANISHED, vanished)):
                if indexes:
                    self._resend(indexes, cause)
        elif not waiting and not self.unsent:  # nothing of the job queued: every bucket left is running
            self._copy_stragglers(live, now, workers)

    def _report_lost(self, lost: list[Lease], resend: list[int], alive: dict) -> None:
        self.lost_deliveries += len(lost)
        by_worker: dict[str, list[Lease]] = {}
        for lease in lost:
            by_worker.setdefault(lease.worker, []).append(lease)
        for worker, leases in sorted(by_worker.items()):
            buckets = sorted({lease.bucket for lease in leases})
            moved = [i for i in buckets if i in resend]
            what = _what_was_lost(worker, leases, worker in alive, self.lease_timeout)
            where = f"bucket{'s' if len(buckets) > 1 else ''} {_list(buckets)}"
            if moved:
                self._notice(f"{what}: {where} reassigned")
            else:
                self._notice(f"{what}: {where} already back in the queue")

    def _copy_stragglers(self, live: dict[int, list[Lease]], now: float, workers: dict) -> None:
        """Nothing is queued: give the slowest running buckets a copy on an idle worker."""
        if self.speculate <= 0 or len(self.records) < 3:
            return
        typical = statistics.median(record.seconds for record in self.records.values())
        running = {index: now - min(l.started for l in leases) for index, leases in live.items()}
        slow = [
            (elapsed, index) for index, elapsed in running.items()
            if index not in self.copies and elapsed > self.speculate * typical
        ]
        if not slow:
            return
        # Workers not rendering this job's buckets; one busy with another job only queues the
        # copy behind its work, where it is skipped if the original finishes first.
        healthy = [w for w in workers.values() if not w.bad]
        idle = len(healthy) - len({lease.worker for leases in live.values() for lease in leases})
        for elapsed, index in sorted(slow, reverse=True)[:idle]:
            self.copies.add(index)
            self._resend([index], Cause.STRAGGLER)
            log.info("job %s: bucket %d running %.1fs (median %.1fs): copy sent", self.job.job_id[:8], index,
                     elapsed, typical)

    def _check_healthy(self, workers: dict) -> None:
        """Fail the job once every live worker has been bad (taking no buckets) for
        NO_HEALTHY_WORKER_TIMEOUT: nothing can render it, and the reasons say why."""
        if not workers or any(not w.bad for w in workers.values()):
            self._none_healthy_since = None
            return
        clock = time.monotonic()
        if self._none_healthy_since is None:
            self._none_healthy_since = clock
        elif clock - self._none_healthy_since > defaults.NO_HEALTHY_WORKER_TIMEOUT:
            reasons = "; ".join(f"{w.hostname}: {w.bad}" for w in sorted(workers.values(), key=lambda w: w.hostname))
            raise JobError(f"no worker can render this job: every worker stopped taking buckets ({reasons})")

    def _recreate(self, vanished: JobVanished) -> None:
        """The job's record is gone from Redis: upload it again and send every bucket this
        client has no tile of, or fail if this client cannot."""
        if self.recreate is None:
            raise JobVanished(f"{vanished}; {len(self.records)} of {self.total} buckets had arrived") from None
        self.recreate()
        pending = self._pending()
        self._waiting_since.clear()
        self._resend(pending, Cause.LOST_JOB)
        self._notice(f"job {self.job.job_id[:8]} vanished from Redis (restarted without persistence?): scene "
                     f"uploaded again, {len(pending)} buckets sent again, {len(self.records)} kept")

    def _pending(self) -> list[int]:
        """Buckets sent and without a tile here."""
        unsent = set(self.unsent)
        every = range(self.job.bucket_count) if self.wanted is None else self.wanted
        return [i for i in every if i not in self.records and i not in unsent]

    def _check_stall(self, stall_timeout: float) -> None:
        if time.monotonic() - self._last_progress <= stall_timeout:
            return
        if not self._workers_seen and not _ping_workers():
            raise JobError(f"no worker answered for {stall_timeout:.0f}s; start one with `celery -A farm worker`")
        self._last_progress = time.monotonic()

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


def _what_was_lost(worker: str, leases: list[Lease], alive: bool, lease_timeout: float) -> str:
    """What a notice can truthfully say of deliveries whose leases lapsed: a render process
    on this machine is looked at; of one elsewhere only its worker's heartbeat is known."""
    if not alive:
        return f"worker {worker} lost (no heartbeat for {lease_timeout:.0f}s)"
    pids = ", ".join(str(lease.pid) for lease in leases)
    gone = {process_gone(lease) for lease in leases}
    if gone == {True}:
        return f"render process {pids} of worker {worker} died"
    if gone == {False}:
        return f"render process {pids} of worker {worker} stopped renewing its lease but still runs (stopped or hung)"
    return f"render process {pids} of worker {worker} stopped renewing its lease (died or hung)"


def _list(indexes) -> str:
    return ", ".join(str(i) for i in indexes)


def _ping_workers() -> list:
    from farm.app import app

    return app.control.ping(timeout=1.0) or []


def resume(redis, app, job_id: str) -> JobRun:
    """The run of a job that already exists in Redis (its client died, or detached)."""
    job = Job.load(redis, job_id)
    if job.state == JobState.CANCELLED:
        raise JobCancelled(f"job {job_id} was cancelled")
    if job.state == JobState.FAILED:
        raise JobError(job.error or f"job {job_id} failed")
    if job.state == JobState.DONE:  # collect it again: every tile is still there
        job.state = JobState.RUNNING
        job.record.reopen()
    film, wanted = film_of(job)
    sent = job.sent()  # its client may have died before sending every bucket
    return JobRun(job, film, BucketQueue(redis, app), unsent=wanted[sent:], wanted=wanted)


def film_of(job: Job) -> tuple[Film, list[int]]:
    """The film a client other than the job's own fills from the job's tiles, and the units
    it waits for (`farm collect`, `farm watch`): for one round of several, the image of
    that round's own samples, and only the buckets its plan gives samples."""
    meta = job.meta
    film = Film(meta.width, meta.height, meta.aovs, meta.spp)
    wanted = job.units.in_order()
    if meta.sums:
        plan = job.plan()
        ranges = plan.pixel_ranges(Bucket(0, 0, 0, meta.width, meta.height))
        film.start_round(plan, counts=ranges[..., 1] - ranges[..., 0])
        wanted = [index for index in wanted if plan.has_work(job.bucket(index))]
    return film, wanted


def start_job(
    redis, app, scene: Scene, document: dict, bucket_size: int, bucket_order: str, assets=None,
    null: float | None = None, aovs: tuple[str, ...] = (), plan: Plan | None = None, film: Film | None = None,
    split: tuple[int, int] = (0, 0),
) -> JobRun:
    """Upload the scene and the files it names (read from `assets`, a FolderAssets), enqueue
    every bucket, and return the run to collect. `null` (seconds per bucket) makes a job of
    the null renderer, for `farm bench --overhead` and the tests only; `aovs` (AOVS) are
    rendered beside the beauty pass; `plan`: one round of a progressive or noise-target
    render, whose tiles are sums added to `film`'s (the rounds' film), and only the buckets
    the plan gives samples are sent; `split`: (tail, parts), the frame's last `tail` buckets
    sent as `parts` parts each (JobMeta.tail)."""
    meta = Job.describe(scene, bucket_size, bucket_order, null, aovs, plan, split)
    uploaded = Transfer()
    if scene.assets:
        if assets is None:
            raise JobError("the scene names files but no folder to read them from was given")
        uploaded = RedisAssets.upload(redis, scene.assets, assets, defaults.JOB_TTL)
        log.info("assets: %d files (%d bytes) uploaded, %d already in Redis", uploaded.files, uploaded.bytes,
                 uploaded.reused)
    job = Job.create(redis, meta, document, plan)

    def recreate() -> None:
        if scene.assets:
            RedisAssets.upload(redis, scene.assets, assets, defaults.JOB_TTL)
        Job.create(redis, meta, document, plan)

    if film is None:
        film = Film(scene.film.width, scene.film.height, meta.aovs, meta.spp)
    if plan is not None:
        film.start_round(plan)
    wanted = [index for index in job.units.in_order() if plan is None or plan.has_work(job.bucket(index))]
    run = JobRun(job, film, BucketQueue(redis, app), uploaded=uploaded, recreate=recreate,
                 unsent=list(wanted), wanted=wanted)
    try:
        sent = run.send_more()  # the first window; collect() sends the rest as tiles come in
    except BaseException as exc:  # no client will look after this job: say so in `farm status`
        with contextlib.suppress(Exception):
            job.finish(JobState.FAILED, f"its client failed while sending the buckets: {exc!r}")
        raise
    log.info("job %s: %d of %d buckets of %dpx sent", job.job_id, sent, run.total, bucket_size)
    return run
