"""The render worker: per-process state, and one bucket from message to stored tile.

A worker child (Celery forks the children; nothing here exists before the fork) opens
its device once, parses, packs and uploads a scene once and reuses it for every bucket
of every job that shares it. Each bucket (but a quick one, farm.worker.quick) is
rendered under a lease that a heartbeat thread renews, so the client can tell a slow
bucket from a dead worker; between passes the render stops early if the job was
cancelled, another copy of the bucket already finished, or the worker is shutting down.

The worker's main process (its registry entry, its start and stop) is farm.worker.lifecycle;
the thread that renews a bucket's lease is farm.worker.leases.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time

import numpy as np
from celery.exceptions import Ignore, Reject
from celery.signals import worker_process_init, worker_process_shutdown

from farm import defaults
from farm.exceptions import DeviceError, FarmError, JobDataError, JobVanished, MalformedJob
from farm.protocol import identity, registry, secret
from farm.protocol.broker import client
from farm.protocol.events import EventKind, TileEvent
from farm.protocol.jobs import BucketView, Job, JobState
from farm.protocol.leases import Lease, process_gone
from farm.protocol.plans import Plan
from farm.protocol.queue import BucketQueue
from farm.protocol.recovery import Action, Recovery, hand_back
from farm.protocol.tiles import TileHeader
from farm.worker import device as devices
from farm.worker import about, metrics, plugins
from farm.worker.busy import BusySign
from farm.worker.leases import LeaseKeeper
from farm.worker.quick import QuickDeliveries
from farm.worker.render import build_program
from farm.worker.scenes import Scenes
from farm.worker.speed import SpeedMeter

log = logging.getLogger(__name__)

# What the tools plug in where their setting asks (deliberate faults, the null renderer):
# a real worker loads none of them.
hooks = plugins.load()


class WorkerState:
    """Per-process resources of a render worker."""

    def __init__(self, redis_url: str):
        self.pid = os.getpid()
        self.host = socket.gethostname()
        self.redis = client(redis_url)
        self.device = hooks.device() or devices.current()
        # which kernel it runs (farm.protocol.identity): jobs render only on their own kernel
        self.kernel = "" if hooks.device() is not None else about.identity(self.device)
        self.key = secret.key()  # the farm's secret, which tags every tile
        self.scenes = Scenes(self.redis, self.device, hooks)  # uploaded once per process, with their plans
        self.stopping = False  # set by SIGTERM: stop the current bucket at its next pass
        self.rendering = False
        # Here, not at worker_process_init: billiard installs its own SIGTERM handler after it.
        signal.signal(signal.SIGTERM, _stop_child)
        self.failed_in_a_row = 0
        self.bad = False  # failed BAD_WORKER_FAILURES buckets in a row: takes no more
        self.lease_keeper = LeaseKeeper()
        self.busy = BusySign(self.redis, os.getppid())  # tells the registry whether it renders
        self.speed = SpeedMeter()  # its samples/s, said to the farm as it changes
        self.quick = QuickDeliveries()  # buckets rendered before they are taken
        self._recovery: Recovery | None = None

    def _start(self, task, job: Job, seen: BucketView, draft: Lease, hostname: str, beat) -> Lease | None:
        """The long way into a bucket, from what Job.look read: skip what needs no render,
        reap dead deliveries, ask the retry policy, then take the lease; None when there is
        nothing to render. Hands the bucket back (recovery.hand_back) while stopping or bad."""
        job_id, index = job.job_id, draft.bucket
        if job.state:
            log.info("job %s bucket %d: job %s, skipped", job_id[:8], index, job.state)
            return None
        if not 0 <= index < job.unit_count:  # not sent by the job's client: never let it touch the job
            log.warning("job %s: stray message for bucket %d (the job has %d) dropped", job_id[:8], index,
                        job.unit_count)
            job.stats.count("stray")
            return None
        if seen.stored:
            log.info("job %s bucket %d: already rendered, skipped", job_id[:8], index)
            return None
        if self.stopping or self.bad:  # a bad worker hands back what it took before it stopped
            hand_back("worker shutting down" if self.stopping else "worker is bad")
        why = "on the job's blocklist" if job.blocklist.blocks(hostname) else self._not_mine(job)
        if why:  # its buckets failed here, or another kernel or device kind renders it: another worker takes it
            log.info("job %s bucket %d: not for this worker (%s), passed on", job_id[:8], index, why)
            self.recovery(task.app).not_here(job, index, hostname, why)
            return None
        seen = self._reap_lost(job, index, seen)
        decision = self.recovery(task.app).before_render(job, index, seen, hostname,
                                                         others_idle=lambda: self._others_idle(hostname))
        if decision.action is Action.GIVE_UP:
            log.error("job %s failed: %s", job_id[:8], job.error)
            return None
        if decision.action is Action.PASS_ON:
            log.info("job %s bucket %d: failed here before, passed on to an idle worker", job_id[:8], index)
            return None
        return job.deliveries.begin(draft, also=beat)

    def _not_mine(self, job: Job) -> str:
        """Why this worker may not render `job` (farm.protocol.identity), or ""; a job not yet
        pinned is pinned to this worker's kernel."""
        if not self.kernel:
            return ""
        pin = job.pin
        if not pin and not job.mixed and not identity.excluded(job.kernel, "", True, self.kernel):
            pin = job.record.pin(self.kernel)
        return identity.excluded(job.kernel, pin, job.mixed, self.kernel)

    def recovery(self, app) -> Recovery:
        """What carries out the retry policy's decisions; built with the first bucket that needs it."""
        if self._recovery is None:
            self._recovery = Recovery(BucketQueue(self.redis, app))
        return self._recovery

    def render_bucket(self, task, job_id: str, index: int, hostname: str, copy: bool = False) -> bool:
        """Render one bucket and store its tile; False if there was nothing (more) to do. Round
        trips to Redis besides its passes: a quick bucket one (farm.worker.quick), a fresh one
        two (Job.take, under a lease, then the store); any other (a job that ended, a tile or
        a lease already there, a crash or failure before) takes the long way."""
        quick = self.quick.choose(self, task, job_id, index, copy)
        if quick is not None:
            return self.quick.render(self, task, quick, index, hostname)
        # Rendering from before the lease exists: a SIGTERM that comes once the lease is seen
        # must stop the bucket at its next pass, not kill the process (a crash, counted).
        draft = Lease(index, 0, hostname, self.host, self.pid, self.device.name, 0.0, 0.0, copy)
        self.rendering = True
        lease = None
        try:
            try:  # what the job's record says; a malformed one fails the job, a vanished one is skipped
                # a negative index takes the long way, where _start drops it as stray (Job.take checks only the top)
                fresh = index >= 0 and not (self.stopping or self.bad)
                taken = Job.take(self.redis, job_id, draft, also=self.busy.starting(hostname),
                                 kernel=self.kernel) if fresh else None
                if taken is None:
                    job, seen = Job.look(self.redis, job_id, index)
            except MalformedJob as exc:
                log.error("job %s failed: %s", job_id[:8], exc)
                self.recovery(task.app).malformed(self.redis, job_id, index, hostname, exc)
                return False
            except FarmError as exc:
                log.warning("bucket %d skipped: %s", index, exc)
                return False
            if taken is not None:
                job, lease = taken
                self.quick.known(job)
            else:
                lease = self._start(task, job, seen, draft, hostname, self.busy.starting(hostname))
        finally:
            self.rendering = lease is not None
        if lease is None:
            self.busy.ended(hostname)
            return False
        self.lease_keeper.keep(job, lease)
        released = False
        try:
            tile, seconds, speed = self.render_tile(job, index)
            if tile is None:
                return self.stopped(task, job, index)
            header = TileHeader(job_id, index, tile.shape[1], tile.shape[0], hostname, self.device.name,
                                seconds, lease.attempt, self.pid)
            self.lease_keeper.drop()

            said = None if speed is None else lambda pipe: registry.note_speed(pipe, hostname, speed)
            first = job.tiles.store(header, tile, self.key, lease=lease.name, also=said)  # ends the lease too
            released = True
        except (Reject, Ignore):  # handed back, or stopped by a cancel: neither is a failure
            raise
        except JobVanished as exc:  # nobody's fault here; a client that still holds the job sends it again
            log.warning("job %s bucket %d: %s", job_id[:8], index, exc)
            return False
        except Exception as exc:  # counted, sent again or failing the job; Flower shows it failed
            self.failed(task, job, index, hostname, exc)
            raise
        finally:
            self.rendering = False
            self.lease_keeper.drop()
            if not released:
                job.deliveries.drop(lease)
            self.busy.ended(hostname)
        self.failed_in_a_row = 0
        log.info(
            "job %s bucket %d: %.3fs on %s%s", job_id[:8], index, seconds, self.device.name,
            "" if first else " (duplicate, discarded)")
        return first

    def render_tile(self, job: Job, index: int) -> tuple[np.ndarray | None, float, registry.Speed | None]:
        """The bucket's tile (None if stopped early), the seconds it took, and this process's
        speed where it is to be said (SpeedMeter)."""
        hooks.before_bucket(index, job.meta)
        renderer = self.scenes.renderer_for(job)
        bucket = job.bucket(index)
        part = job.part(index)
        if part is not None:  # a part of a split bucket: the sums of its samples
            plan = Plan.uniform(job.meta.width, job.meta.height, *part[1])
        else:
            plan = self.scenes.plan(job) if job.meta.sums else None
        last_pass = started = time.perf_counter()

        def should_stop() -> bool:
            nonlocal last_pass
            hooks.after_pass(index, time.perf_counter() - last_pass)
            last_pass = time.perf_counter()
            return self.stopping or job.stopped(index)

        tile = renderer.render(bucket.x, bucket.y, bucket.width, bucket.height, should_stop=should_stop, plan=plan)
        hooks.after_pass(index, time.perf_counter() - last_pass)
        if tile is not None and tile.dtype.kind == "f":
            bad = int(np.count_nonzero(~np.isfinite(tile)))
            if bad:
                raise FarmError(f"the kernel produced {bad} non-finite values")
        seconds = time.perf_counter() - started
        speed = None
        if tile is not None:
            taken = plan.samples(bucket) if plan is not None else bucket.width * bucket.height * job.meta.spp
            metrics.bucket_rendered(self.device.name, seconds, taken)
            if job.meta.null is None:  # the null renderer's speed says nothing of a device
                speed = self.speed.add(job.meta.digest, taken, seconds)
        return tile, seconds, speed

    def stopped(self, task, job: Job, index: int) -> bool:
        """The render stopped between passes: say why; a shutdown hands the bucket back, a
        cancel marks the task revoked (Flower shows it so, not as a success)."""
        if self.stopping:
            log.warning("job %s bucket %d: worker shutting down, bucket handed back", job.job_id[:8], index)
            hand_back("worker shutting down")
        why = f"job {job.state}" if job.state else "another worker finished it first"
        log.info("job %s bucket %d: stopped, %s", job.job_id[:8], index, why)
        if job.state == JobState.CANCELLED:
            with contextlib.suppress(Exception):  # an event for Flower is worth no failure
                task.send_event("task-revoked", terminated=False, expired=False, signum=None)
            raise Ignore()  # acknowledged, and no task-succeeded event after the revoked one
        return False

    def _reap_lost(self, job: Job, index: int, seen: BucketView) -> BucketView:
        """Remove the bucket's leases whose delivery died (counting each crash once, whoever
        finds it first), tell the client, and return the record as it now stands."""
        lost = 0
        for lease in seen.leases:
            if lease.bucket != index:
                continue
            if self._died_here(lease):
                what = f"render process {lease.pid} of worker {lease.worker} died"
            elif lease.until < seen.now and not seen.stalled:  # its worker stopped renewing: a whole worker (or host) is gone
                what = f"worker {lease.worker} lost (no heartbeat for {defaults.LEASE_TIMEOUT:.0f}s)"
            else:
                continue
            if job.deliveries.remove_lost(lease):
                lost += 1
                job.events.push(TileEvent(index, lease.worker, EventKind.LOST, f"{what}: bucket {index} rendering again"))
        return job.deliveries.view(index) if lost else seen

    def _died_here(self, lease: Lease) -> bool:
        """Whether a lease belongs to a render process on this machine that has ended."""
        return lease.pid != self.pid and process_gone(lease) is True

    def _others_idle(self, hostname: str) -> bool:
        """Whether another healthy worker waits for a bucket now."""
        return any(w.hostname != hostname and not w.bad and not w.busy for w in registry.workers(self.redis).values())

    def failed(self, task, job: Job, index: int, hostname: str, exc: Exception) -> None:
        """Count the failure and carry out the policy's decision: send the bucket again, or
        fail the job; call this worker bad after too many failures in a row."""
        reason = str(exc) if isinstance(exc, FarmError) else f"{type(exc).__name__}: {exc}"
        log.error("job %s bucket %d failed: %s", job.job_id[:8], index, reason)
        metrics.bucket_failed(self.device.name)
        try:
            recovery = self.recovery(task.app)
            decision = recovery.failed(job, index, hostname, reason, exc)
            if decision.action is Action.GIVE_UP:
                log.error("job %s failed: %s", job.job_id[:8], job.error)
            if isinstance(exc, JobDataError):  # the job's fault, not this worker's
                return
            self.failed_in_a_row += 1
            if recovery.policy.worker_is_bad(self.failed_in_a_row):
                self._go_bad(task, job, index, hostname, reason)
        except Exception:  # the broker is gone too: the client's reconciliation takes over
            log.exception("job %s bucket %d: could not record the failure", job.job_id[:8], index)

    def _go_bad(self, task, job: Job, index: int, hostname: str, reason: str) -> None:
        self.bad = True
        why = f"{self.failed_in_a_row} buckets in a row failed, last: {reason}"
        log.error("worker %s is bad (%s); it stops taking buckets", hostname, why)
        registry.mark_bad(self.redis, hostname, why)
        job.events.push(TileEvent(index, hostname, EventKind.BAD_WORKER, why))
        about.stop_consuming(task.app, hostname)


_state: WorkerState | None = None


def state(redis_url: str) -> WorkerState:
    """This process's WorkerState, created on first use (and again after a fork)."""
    global _state
    if _state is None or _state.pid != os.getpid():
        _state = WorkerState(redis_url)
    return _state


def render(task, job_id: str, index: int, copy: bool) -> bool:
    """The task's body: this process's state, then the bucket. A process without a usable
    device hands the bucket back and makes its worker take no more (see `_cannot_work`)."""
    hostname = task.request.hostname
    try:
        worker = state(task.app.conf.broker_url)
    except FarmError as exc:  # no device, or the farm's secret cannot be read
        reason = _cannot_work(task.app.conf.broker_url, hostname, exc)
        about.stop_consuming(task.app, hostname)
    else:
        return worker.render_bucket(task, job_id, index, hostname, copy)
    hand_back(reason)


def _cannot_work(broker_url: str, hostname: str, exc: FarmError) -> str:
    """Mark the worker bad with the reason, so `farm status` shows it and clients stop
    counting on it; returns the reason."""
    reason = f"no usable OpenCL device: {exc}" if isinstance(exc, DeviceError) else str(exc)
    log.error("worker %s takes no buckets: %s", hostname, reason)
    try:
        registry.mark_bad(client(broker_url, patient=False), hostname, reason)
    except Exception as error:
        log.warning("worker registry not updated: %s", error)
    return reason


@worker_process_init.connect
def _open_device_in_child(sender=None, **_):
    """Open the device and build the program as the child starts, so the log shows the
    device at once, the first bucket does not pay for the build, and a worker without a
    device says so before any bucket comes (Celery sends the worker's hostname)."""
    try:
        secret.key()
        if hooks.device() is not None:
            log.info("render worker child %d ready with %s", os.getpid(), hooks.describe())
            return
        opened = devices.current()
        build_program(opened)
        if defaults.BVH_WARMUP:
            threading.Thread(target=_warm_up_bvh, name="bvh-warm-up", daemon=True).start()
        log.info("render worker child %d ready on OpenCL device %s", os.getpid(), opened)
        if isinstance(sender, str):
            from farm.app import app

            about.join_kind_pools(app, sender, opened)
            about.describe(sender, opened)
    except FarmError as exc:
        if isinstance(sender, str):
            from farm.app import app

            _cannot_work(app.conf.broker_url, sender, exc)
        else:
            log.error("render worker child %d cannot render: %s", os.getpid(), exc)


@worker_process_shutdown.connect
def _settle_cache(**_) -> None:
    """A render process ending finishes writing its packed scenes first (farm.worker.cache)."""
    if _state is not None and _state.pid == os.getpid() and _state.scenes.packed is not None:
        _state.scenes.packed.settle()


def _warm_up_bvh() -> None:
    """FARM_BVH_WARMUP: the compiled BVH builder and OBJ reader loaded before a big scene
    needs them."""
    from farm.scene import bvh, geometry, obj_reader

    started = time.perf_counter()
    try:
        bvh.warm_up()
        geometry.warm_up()
        obj_reader.warm_up()
    except Exception as exc:  # a big scene will say it again, as its own error
        log.warning("render worker child %d: the compiled BVH builder or OBJ reader did not load: %s", os.getpid(), exc)
        return
    log.info("render worker child %d: compiled BVH builder and OBJ reader ready in %.1fs", os.getpid(), time.perf_counter() - started)


def _stop_child(signum, frame) -> None:
    """SIGTERM in a render process (the worker stopping, or its whole process group told
    to): a bucket being rendered ends at its next pass and is handed back to the queue,
    rather than dying midway and counting as a crash; an idle process just ends."""
    if _state is not None and _state.pid == os.getpid() and _state.rendering:
        _state.stopping = True
        return
    _settle_cache()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
