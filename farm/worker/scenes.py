"""The scenes a render process keeps uploaded to its device: the job's scene parsed,
packed (once per machine, farm.worker.cache) and uploaded once, reused by every bucket of
every job that shares it; and the sample plans of round jobs, read once per job."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict

from farm import defaults
from farm.exceptions import JobDataError, SceneError
from farm.protocol.assets import RedisAssets
from farm.protocol.jobs import Job
from farm.protocol.plans import Plan
from farm.scene.motion import frame_scenes
from farm.scene.library import Library
from farm.scene.pack import pack
from farm.worker import metrics
from farm.worker.cache import AssetCache, PackedCache
from farm.worker.heap import keep_freed_memory, small_pages_for_arrays
from farm.worker.render import Renderer

log = logging.getLogger(__name__)

# Scenes kept uploaded per process: the current job's, and the previous one's for overlap.
SCENES_KEPT = 2


class Scenes:
    """A render process's uploaded scenes, by (digest, moment, AOVs), and plans, by job."""

    def __init__(self, redis, device, hooks):
        self.redis, self.device, self.hooks = redis, device, hooks
        self.renderers: OrderedDict[tuple[str, bool], Renderer] = OrderedDict()
        self.plans: OrderedDict[str, Plan] = OrderedDict()
        # the machine's folders of fetched files and packed scenes, opened with the first scene
        self.cache: AssetCache | None = None
        self.packed: PackedCache | None = None
        self.library = Library(keep=SCENES_KEPT)  # bottom levels kept between the frames of a shot

    def renderer_for(self, job: Job) -> Renderer:
        """The renderer of the job's scene, uploading it on first use in this process."""
        plugged = self.hooks.renderer(job)
        if plugged is not None:
            return plugged
        if job.meta.null is not None:
            raise JobDataError("the job asks for the null renderer of `farm bench --overhead`, which only "
                               "workers started with FARM_NULL_RENDER have")
        digest, moment, shutter, aovs = job.meta.digest, job.meta.time, job.meta.shutter, bool(job.meta.aovs)
        key = (digest, moment, shutter, aovs)  # a frame of a shot is its scene at its moment, in its shutter
        if key in self.renderers:
            self.renderers.move_to_end(key)
            return self.renderers[key]
        started = time.perf_counter()
        try:  # what fails here fails on every worker: the job's fault (JobDataError), not this one's
            try:
                scene, ends = frame_scenes(job.scene_document(), moment, shutter, source=f"scene {digest[:12]}")
            except RecursionError:  # a document nested deeper than Python recurses: the job's, on every worker
                raise JobDataError(f"scene {digest[:12]} in Redis is nested too deeply to read") from None
            if scene.digest != digest:
                raise JobDataError(f"scene {digest[:12]} in Redis does not match its digest")
            if self.cache is None:  # the process's first scene
                self.cache, self.packed = AssetCache(), PackedCache()
                if defaults.KEEP_MEMORY:
                    keep_freed_memory()
                small_pages_for_arrays()
            assets = RedisAssets(self.redis, scene.assets, self.cache)
            if scene.animation is None:  # a still scene packs once a machine, whatever the frame
                packed = self.packed.get_or_pack(digest, lambda: pack(scene, assets))
            else:  # a frame of a shot: its bottom levels from the frames before, if they did not change
                packed = pack(scene, assets, self.library, ends)
        except SceneError as exc:
            raise JobDataError(str(exc)) from None
        renderer = Renderer(self.device, packed, aovs)
        fetched = assets.fetched
        for stat, amount in (("assets_fetched", fetched.files), ("asset_bytes_fetched", fetched.bytes),
                             ("asset_cache_hits", fetched.reused)):
            if amount:
                job.stats.count(stat, amount)
        metrics.assets_fetched(fetched.bytes, fetched.reused)
        self.renderers[key] = renderer
        while len(self.renderers) > SCENES_KEPT:
            self.renderers.popitem(last=False)
        log.info("scene %s uploaded to %s in %.3fs", digest[:12], self.device.name, time.perf_counter() - started)
        return renderer

    def plan(self, job: Job) -> Plan:
        """The samples the job gives each pixel (Job.plan), read once per process and job."""
        if job.job_id not in self.plans:
            self.plans[job.job_id] = job.plan()
            while len(self.plans) > SCENES_KEPT:
                self.plans.popitem(last=False)
        return self.plans[job.job_id]
