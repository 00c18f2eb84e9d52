"""How a client gets a job's run: a new job (upload the scene and its files, create the
record, send the first window), or one already on the farm (`farm collect`, `farm watch`)."""

from __future__ import annotations

import contextlib
import logging

from farm import defaults
from farm.buckets import Bucket
from farm.client.film import Film
from farm.client.run import JobRun
from farm.exceptions import JobCancelled, JobError
from farm.protocol.assets import RedisAssets, Transfer
from farm.protocol.jobs import Job, JobState
from farm.protocol.plans import Plan
from farm.protocol.queue import BucketQueue
from farm.scene import Scene

log = logging.getLogger(__name__)


def resume(redis, app, job_id: str, film: Film | None = None) -> JobRun:
    """The run of a job that already exists in Redis (its client died, or detached); with
    `film`, a round's tiles go into it (the film of the rounds before, picked up)."""
    job = Job.load(redis, job_id)
    if job.state == JobState.CANCELLED:
        raise JobCancelled(f"job {job_id} was cancelled")
    if job.state == JobState.FAILED:
        raise JobError(job.error or f"job {job_id} failed")
    if job.state == JobState.DONE:  # collect it again: every tile is still there
        job.state = JobState.RUNNING
        job.record.reopen()
    film, wanted = film_of(job, film)
    sent = job.sent()  # its client may have died before sending every bucket
    return JobRun(job, film, BucketQueue(redis, app), unsent=wanted[sent:], wanted=wanted, _sent_priority=job.priority)


def film_of(job: Job, film: Film | None = None) -> tuple[Film, list[int]]:
    """The film a client other than the job's own fills from the job's tiles, and the units
    it waits for (`farm collect`, `farm watch`): for one round of several, the image of
    that round's own samples, and only the buckets its plan gives samples."""
    meta = job.meta
    given = film is not None
    film = film if given else Film(meta.width, meta.height, meta.aovs, meta.spp)
    wanted = job.units.in_order()
    if meta.sums:
        plan = job.plan()
        ranges = plan.pixel_ranges(Bucket(0, 0, 0, meta.width, meta.height))
        film.start_round(plan, counts=None if given else ranges[..., 1] - ranges[..., 0])
        wanted = [index for index in wanted if plan.has_work(job.bucket(index))]
    return film, wanted


def start_job(
    redis, app, scene: Scene, document: dict, bucket_size: int, bucket_order: str, assets=None,
    null: float | None = None, aovs: tuple[str, ...] = (), plan: Plan | None = None, film: Film | None = None,
    split: tuple[int, ...] = (0, 0), priority: int = defaults.DEFAULT_PRIORITY, max_workers: int | None = None,
    mixed: bool = False, require: tuple[str, ...] = (),
) -> JobRun:
    """Upload the scene and the files it names (read from `assets`, a FolderAssets), enqueue
    every bucket, and return the run to collect. `null` (seconds per bucket) makes a job of
    the null renderer, for `farm bench --overhead` and the tests only; `aovs` (AOVS) are
    rendered beside the beauty pass; `plan`: one round of a progressive or noise-target
    render, whose tiles are sums added to `film`'s (the rounds' film), and only the buckets
    the plan gives samples are sent; `split`: (tail, parts[, spares]), the frame's last `tail`
    buckets sent as `parts` parts each (JobMeta.tail), and the parts a running bucket may be
    split into when workers go idle (JobMeta.spares); `priority`: 0-100, higher first; `max_workers`:
    at most that many of its buckets queued or rendering at once; `mixed`: workers of any kernel
    identity of this install's sources may render it (farm.protocol.identity); `require`: the
    tags of the workers that may (farm.protocol.pools)."""
    meta = Job.describe(scene, bucket_size, bucket_order, null, aovs, plan, tuple(split[:2]), (*split, 0)[2])
    uploaded = Transfer()
    if scene.assets:
        if assets is None:
            raise JobError("the scene names files but no folder to read them from was given")
        uploaded = RedisAssets.upload(redis, scene.assets, assets, defaults.JOB_TTL)
        log.info("assets: %d files (%d bytes) uploaded, %d already in Redis", uploaded.files, uploaded.bytes,
                 uploaded.reused)
    from farm.protocol.identity import sources_digest

    job = Job.create(redis, meta, document, plan, priority, sources_digest(), mixed, require)

    def recreate() -> None:
        if scene.assets:
            RedisAssets.upload(redis, scene.assets, assets, defaults.JOB_TTL)
        Job.create(redis, meta, document, plan, job.priority, job.kernel, mixed, require)

    if film is None:
        film = Film(scene.film.width, scene.film.height, meta.aovs, meta.spp)
    if plan is not None:
        film.start_round(plan)
    wanted = [index for index in job.units.in_order() if plan is None or plan.has_work(job.bucket(index))]
    run = JobRun(job, film, BucketQueue(redis, app), uploaded=uploaded, recreate=recreate,
                 unsent=list(wanted), wanted=wanted, max_workers=max_workers)
    try:
        sent = run.send_more()  # the first window; collect() sends the rest as tiles come in
    except BaseException as exc:  # no client will look after this job: say so in `farm status`
        with contextlib.suppress(Exception):
            job.finish(JobState.FAILED, f"its client failed while sending the buckets: {exc!r}")
        raise
    log.info("job %s: %d of %d buckets of %dpx sent", job.job_id, sent, run.total, bucket_size)
    return run
