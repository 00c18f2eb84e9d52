"""Quick deliveries: a short bucket rendered before it is taken, then taken and stored in
one round trip (issue 31: the central cost per bucket of a farm of small buckets).

A bucket normally costs its worker two round trips besides its render: the take
(Deliveries.take: the job's checks, the attempt, a lease) and the store. For a bucket
its process expects to render within QUICK_SECONDS (farm.defaults), the lease guards
little: it would be gone before a client's next look. So such a bucket, where its
message is a first one and its process took a bucket of the job before (it holds the
record), renders at once, and one script takes and stores it (TileStore.store_quick):
the checks that can change while a job runs (it exists and runs, this worker is not on
its blocklist, its kernel may render it), the attempt counted, the tile stored
first-wins and announced. A job that ended meanwhile costs one bucket's render; a
bucket this worker may no longer render is passed on. Only a job whose client marks
what it sends again (its record's `quick`) has quick deliveries.

Without a lease, a quick bucket is one its client sees as queued until its tile comes; a
worker that dies in one loses its message, which the client finds as vanished
(farm.client.reconcile, confirmed by a second look QUICK_CONFIRM later, so that a bucket
rendering quickly is not sent again) and sends again, marked
(farm.protocol.queue.RESENT): that delivery takes the long way, so a bucket that kills
whole workers is counted too. A render process that dies in one has its message put back
by Celery, marked redelivered by BucketRequest: that delivery takes the long way, under
a lease, where a crash is counted.
"""

from __future__ import annotations

import logging

from celery.exceptions import Ignore, Reject
from celery.worker.request import Request

from farm import defaults
from farm.exceptions import JobVanished
from farm.protocol import registry
from farm.protocol.jobs import Job
from farm.protocol.queue import is_resent
from farm.protocol.tiles import TileHeader
from farm.protocol.tilestore import QUICK_BLOCKED, QUICK_ENDED

log = logging.getLogger(__name__)

# Jobs whose records a render process keeps for quick deliveries.
KNOWN_JOBS = 8


class QuickDeliveries:
    """A render process's quick deliveries, and the jobs it may render them of."""

    def __init__(self):
        self.jobs: dict[str, Job] = {}  # the jobs it took a bucket of, newest last

    def known(self, job: Job) -> None:
        """Keep the record of a job this process took a bucket of."""
        self.jobs.pop(job.job_id, None)
        self.jobs[job.job_id] = job
        while len(self.jobs) > KNOWN_JOBS:
            del self.jobs[next(iter(self.jobs))]

    def choose(self, worker, task, job_id: str, index: int, copy: bool) -> Job | None:
        """The job, where bucket `index` is to be a quick delivery: a first message (not a
        copy, not one sent again, not one Celery delivers again), of a running job this
        process holds, a whole bucket, expected to take at most QUICK_SECONDS here; else None."""
        job = self.jobs.get(job_id)
        if job is None or copy or worker.stopping or worker.bad or job.state or not job.quick \
                or not job.tiles.lasting or not 0 <= index < job.bucket_count or defaults.QUICK_SECONDS <= 0:
            return None
        again = "sent again" if is_resent(task.request.id or "") else (
            "delivered again by Celery" if redelivered(task) else "")
        if again:
            log.info("job %s bucket %d: %s, taken first", job_id[:8], index, again)
            return None
        if job.meta.null is not None:  # the null renderer's buckets take what they say
            expected = job.meta.null
        else:
            bucket = job.bucket(index)
            first, end = job.meta.samples
            expected = worker.speed.expected(job.meta.digest, bucket.width * bucket.height * (end - first))
        return job if expected is not None and expected <= defaults.QUICK_SECONDS else None

    def render(self, worker, task, job: Job, index: int, hostname: str) -> bool:
        """Render the bucket, then take and store it in one round trip; False if there was
        nothing (more) to do (see WorkerState.render_bucket)."""
        job_id = job.job_id
        beat = worker.busy.starting(hostname)  # said with the tile: a quick bucket is short
        worker.rendering = True  # a SIGTERM stops it at its next pass (worker._stop_child)
        try:
            tile, seconds, speed = worker.render_tile(job, index)
            if tile is None:
                self.jobs.pop(job_id, None)
                return worker.stopped(task, job, index)
            header = TileHeader(job_id, index, tile.shape[1], tile.shape[0], hostname, worker.device.name,
                                seconds, 1, worker.pid)

            def also(pipe) -> None:
                if beat is not None:
                    beat(pipe)
                if speed is not None:
                    registry.note_speed(pipe, hostname, speed)

            stored = job.tiles.store_quick(header, tile, worker.key, worker.kernel, also=also)
        except (Reject, Ignore):  # handed back, or stopped by a cancel
            raise
        except JobVanished as exc:
            self.jobs.pop(job_id, None)
            log.warning("job %s bucket %d: %s", job_id[:8], index, exc)
            return False
        except Exception as exc:  # counted as the long way counts it, the delivery too
            self.jobs.pop(job_id, None)
            try:
                job.refresh()
            except JobVanished:  # a duplicate message of a job gone (a round forgotten): nothing to count
                return False
            job.deliveries.count_attempt(index)
            worker.failed(task, job, index, hostname, exc)
            raise
        finally:
            worker.rendering = False
            worker.busy.ended(hostname)
        if stored < 0:
            self.jobs.pop(job_id, None)
            if stored == QUICK_ENDED:
                log.info("job %s bucket %d: the job ended as it rendered; tile dropped", job_id[:8], index)
            else:  # its blocklist took this worker in, or another kernel took the job first: another worker renders it
                why = "on the job's blocklist" if stored == QUICK_BLOCKED else "another kernel renders the job"
                log.info("job %s bucket %d: not for this worker (%s), tile dropped and passed on", job_id[:8], index,
                         why)
                worker.recovery(task.app).not_here(job, index, hostname, why)
            return False
        first = stored == 1
        worker.failed_in_a_row = 0
        log.info("job %s bucket %d: %.3fs on %s, quick%s", job_id[:8], index, seconds, worker.device.name,
                 "" if first else " (duplicate, discarded)")
        return first


REDELIVERED = "redelivered"  # the header BucketRequest marks a message put back with


class BucketRequest(Request):
    """A bucket's task message in the worker's main process (farm.tasks). A message that
    failed there (its render process died: Celery puts it back, task_reject_on_worker_lost)
    is marked redelivered in its headers first, which the message put back keeps: kombu's
    Redis transport marks it only with acknowledgement emulation, which farm turns off
    (farm/celeryconfig.py). Its next delivery then takes the long way, and counts the crash."""

    def on_failure(self, exc_info, send_failed_event=True, return_ok=False):
        self._message.headers[REDELIVERED] = True
        return super().on_failure(exc_info, send_failed_event, return_ok)


def redelivered(task) -> bool:
    """Whether this message was put back after a delivery that failed (BucketRequest; a
    message header is an attribute of the task's request)."""
    return bool(getattr(task.request, REDELIVERED, False))
