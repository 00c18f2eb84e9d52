"""Reconciliation, the client's half of "nothing is lost": every bucket without a tile is
being rendered or has a message queued, whatever happens to messages, workers or the
broker. A mixin of JobRun (farm.client.run), run every RECONCILE_INTERVAL; what to send
again, and whether to give up, it leaves to farm.protocol.recovery."""

from __future__ import annotations

import logging
import statistics
import time

from farm import defaults
from farm.exceptions import JobCancelled, JobError, JobVanished
from farm.protocol import registry
from farm.protocol.broker import server_time
from farm.protocol.leases import Lease, process_gone
from farm.protocol.record import JobState
from farm.protocol.recovery import Action, Cause

log = logging.getLogger(__name__)


class Reconciliation:
    """JobRun's reconciliation (its fields are JobRun's)."""

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
        self.follow_priority()
        if time.monotonic() - self._last_keep_alive > 30:
            self.job.keep_alive()
            self._last_keep_alive = time.monotonic()
        self._take_unannounced()
        if len(self.records) == self.total:
            return
        workers = registry.workers(self.job.redis)
        self._workers_seen = len(workers)
        excluded = self.job.excluded(workers)  # who may not render it: bad, blocklisted, another kernel, tags
        self._check_healthy(workers, excluded)
        now = server_time(self.job.redis)
        stalled = registry.check_clock(self.job.redis)  # Redis itself stopped: lapsed leases prove nothing
        live: dict[int, list[Lease]] = {}
        lost: list[Lease] = []
        for lease in self.job.deliveries.leases():
            if lease.until >= now or (stalled and process_gone(lease) is not True):
                live.setdefault(lease.bucket, []).append(lease)
            elif self.job.deliveries.remove_lost(lease) and lease.bucket not in self.records \
                    and not self.job.spare(lease.bucket):  # a lost spare part: its split is sent again
                lost.append(lease)
        waiting = [i for i in self._pending() if i not in live]
        lost_buckets = {lease.bucket for lease in lost}
        clock = time.monotonic()
        suspects = []  # without a lease for LEASE_TIMEOUT: queued still, or its message is gone
        in_doubt = set(waiting)
        missing = self._missing_since = {i: t for i, t in self._missing_since.items() if i in in_doubt}
        for index in waiting:
            since = self._waiting_since.setdefault(index, clock)
            if stalled and index not in lost_buckets:  # nothing could move in the stall: time again from now
                self._waiting_since[index] = clock
                missing.pop(index, None)
            elif index in lost_buckets or clock - since >= self.lease_timeout or index in missing:
                suspects.append(index)
        for index in live:
            self._waiting_since.pop(index, None)
        # The queue is read only when a bucket has waited that long, so its cost follows the
        # buckets in doubt, not the queue's length every second.
        queued = self.queue.scan(self.job.job_id, self.job.pool).queued if set(suspects) - lost_buckets else set()
        resend = []
        for index in suspects:
            if index in lost_buckets:
                resend.append(index)
            elif index in queued:
                missing.pop(index, None)
            elif clock - missing.setdefault(index, clock) >= defaults.QUICK_CONFIRM:
                # Neither queued nor leased at two looks QUICK_CONFIRM apart: not a quick
                # delivery rendering (farm.worker.quick) nor one between its message and its
                # lease, but a message gone.
                del missing[index]
                resend.append(index)
            else:
                continue  # looked at again next time
            self._waiting_since[index] = clock
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
        elif not waiting and not self.unsent and not self.paused and \
                (self.max_workers is None or len(live) < self.max_workers):  # nothing queued: every bucket left runs
            if not self._split_running(live, now, workers, excluded):  # the tail splits itself (farm.client.spares)
                self._copy_stragglers(live, now, workers)

    def _take_unannounced(self) -> None:
        """Take stored tiles whose events never came (a resumed job, events lost with a
        Redis restart): only when Redis holds more tiles than this client has taken and
        has events waiting for, so the check costs two counts, not a list of every tile."""
        stored, announced = self.job.stored_and_announced()
        taken = len(self.records) + sum(len(split.arrived) for split in self.splits.values())
        if stored - taken > announced:
            self.take_stored()

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
            and (index not in self.splits or self.splits[index].overdue())
        ]
        if not slow:
            return
        # Workers not rendering this job's buckets; one busy with another job only queues the
        # copy behind its work, where it is skipped if the original finishes first.
        healthy = [w for w in workers.values() if not w.bad]
        idle = len(healthy) - len({lease.worker for leases in live.values() for lease in leases})
        if self.max_workers is not None:  # --max-workers counts copies too
            idle = min(idle, self.max_workers - sum(len(leases) for leases in live.values()))
        for elapsed, index in sorted(slow, reverse=True)[:idle]:
            self.copies.add(index)
            self._resend([index], Cause.STRAGGLER)
            log.info("job %s: bucket %d running %.1fs (median %.1fs): copy sent", self.job.job_id[:8], index,
                     elapsed, typical)

    def _check_healthy(self, workers: dict, why: dict[str, str]) -> None:
        """Fail the job once every live worker has been bad (taking no buckets) or on the
        job's blocklist for NO_HEALTHY_WORKER_TIMEOUT: nothing can render it, and the
        reasons say why."""
        if not workers or len(why) < len(workers):
            self._none_healthy_since = None
            return
        clock = time.monotonic()
        if self._none_healthy_since is None:
            self._none_healthy_since = clock
        elif clock - self._none_healthy_since > defaults.NO_HEALTHY_WORKER_TIMEOUT:
            reasons = "; ".join(f"{name}: {why[name]}" for name in sorted(why))
            raise JobError(f"no worker can render this job: every worker stopped taking buckets ({reasons})")

    def _recreate(self, vanished: JobVanished) -> None:
        """The job's record is gone from Redis: upload it again and send every bucket this
        client has no tile of, or fail if this client cannot."""
        if self.recreate is None:
            raise JobVanished(f"{vanished}; {len(self.records)} of {self.total} buckets had arrived") from None
        self.recreate()
        pending = self._pending()
        self._waiting_since.clear()
        self._missing_since.clear()
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
