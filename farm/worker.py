"""The state of one worker child process: its Redis client, its device, its loaded scenes.

Created lazily in the child (Celery forks the children; nothing here exists before the
fork). A scene is parsed, packed and uploaded once per process and reused for every
bucket of every job that shares it.
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict

from celery.signals import worker_process_init

from farm import device as devices
from farm.assets import RedisAssets
from farm.exceptions import FarmError
from farm.job import Job, TileEvent
from farm.render import Renderer, build_program
from farm.scene import parse_scene
from farm.scene.pack import pack

log = logging.getLogger(__name__)

# Scenes kept uploaded per process: the current job's, and the previous one's for overlap.
SCENES_KEPT = 2


class WorkerState:
    """Per-process resources of a render worker."""

    def __init__(self, redis_url: str):
        import redis

        self.pid = os.getpid()
        self.redis = redis.Redis.from_url(redis_url, health_check_interval=30)
        self.device = devices.current()
        self.renderers: OrderedDict[str, Renderer] = OrderedDict()

    def renderer_for(self, job: Job) -> Renderer:
        """The renderer of the job's scene, uploading it on first use in this process."""
        digest = job.meta.digest
        if digest in self.renderers:
            self.renderers.move_to_end(digest)
            return self.renderers[digest]
        started = time.perf_counter()
        scene = parse_scene(job.scene_document(), source=f"scene {digest[:12]}")
        if scene.digest != digest:
            raise FarmError(f"scene {digest[:12]} in Redis does not match its digest")
        renderer = Renderer(self.device, pack(scene, RedisAssets(self.redis, scene.assets)))
        self.renderers[digest] = renderer
        while len(self.renderers) > SCENES_KEPT:
            self.renderers.popitem(last=False)
        log.info("scene %s uploaded to %s in %.3fs", digest[:12], self.device.name, time.perf_counter() - started)
        return renderer

    def render_bucket(self, job_id: str, index: int, hostname: str) -> bool:
        """Render one bucket and store its tile; False if there was nothing to do."""
        try:
            job = Job.load(self.redis, job_id)
        except FarmError as exc:
            log.warning("bucket %d skipped: %s", index, exc)
            return False
        if job.cancelled:
            log.info("job %s bucket %d: job cancelled, skipped", job_id[:8], index)
            return False
        if not 0 <= index < job.bucket_count:
            job.report_failure(TileEvent(index, hostname, error=f"no bucket {index} in this job"))
            return False
        if job.has_tile(index):
            log.info("job %s bucket %d: already rendered, skipped", job_id[:8], index)
            return False
        attempt = job.begin_attempt(index)
        try:
            renderer = self.renderer_for(job)
            bucket = job.bucket(index)
            started = time.perf_counter()
            tile = renderer.render(bucket.x, bucket.y, bucket.width, bucket.height)
            seconds = time.perf_counter() - started
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}" if not isinstance(exc, FarmError) else str(exc)
            job.report_failure(TileEvent(index, hostname, self.device.name, 0.0, attempt, self.pid, reason))
            raise
        first = job.store_tile(index, tile, TileEvent(index, hostname, self.device.name, seconds, attempt, self.pid))
        log.info(
            "job %s bucket %d: %.3fs on %s%s", job_id[:8], index, seconds, self.device.name,
            "" if first else " (duplicate, discarded)",
        )
        return first


_state: WorkerState | None = None


def state(redis_url: str) -> WorkerState:
    """This process's WorkerState, created on first use (and again after a fork)."""
    global _state
    if _state is None or _state.pid != os.getpid():
        _state = WorkerState(redis_url)
    return _state


@worker_process_init.connect
def _open_device_in_child(**_):
    """Open the device and build the program as the child starts, so the log shows the
    device at once and the first bucket does not pay for the build."""
    try:
        opened = devices.current()
        build_program(opened)
        log.info("render worker child %d ready on OpenCL device %s", os.getpid(), opened)
    except FarmError as exc:
        log.error("render worker child %d has no usable device: %s", os.getpid(), exc)
