"""The null renderer: buckets with no kernel, to measure what the farm itself costs.

`farm bench --overhead` (and the tests) start their workers with FARM_NULL_RENDER=1 and
send jobs whose description asks for it (`null`: seconds of pretend work per bucket).
Both are needed, so a user's job is never rendered by it: a worker without the variable
fails a null job with one reason (the job's fault), and a worker with it fails the
buckets of a real job (its own fault: it goes bad after a few). The module is a worker
plugin (farm/worker/plugins.py, turned on by that variable), like the fault tool: a
worker loads it only then, and then never opens OpenCL, so a hundred fit on one machine.

A null tile holds each pixel's own coordinates and the job's spp (x, y, spp), so a test
can tell that every tile landed in its own job's image, in its own place.
"""

from __future__ import annotations

import time

import numpy as np

from farm import defaults
from farm.exceptions import FarmError
from farm.worker.device import Device

describe = "the null renderer of `farm bench`"


def device() -> Device:
    """The worker's stand-in for an OpenCL device: it opens none."""
    return Device(context=None, queue=None, device=None, name="null", kind="NULL", platform="farm bench")


def renderer(job) -> NullRenderer:
    """The null renderer of a null job; a real job fails here (this worker's fault)."""
    if job.meta.null is None:
        raise FarmError("this worker runs the null renderer of `farm bench` (FARM_NULL_RENDER is set) "
                        "and renders no real job")
    return NullRenderer(job.meta.null, job.meta.spp)


def pixels(x: int, y: int, width: int, height: int, spp: int) -> np.ndarray:
    """The null tile of [x, x+width) x [y, y+height): (height, width, 3) float32."""
    tile = np.empty((height, width, 3), np.float32)
    tile[..., 0] = np.arange(x, x + width, dtype=np.float32)[None, :]
    tile[..., 1] = np.arange(y, y + height, dtype=np.float32)[:, None]
    tile[..., 2] = spp
    return tile


def frame(width: int, height: int, spp: int) -> np.ndarray:
    """The image a null job of this size renders, whatever its buckets."""
    return pixels(0, 0, width, height, spp)


class NullRenderer:
    """Renderer's interface: sleeps `seconds` per bucket in passes, asking `should_stop`
    between them like the kernel does, then returns the null tile."""

    def __init__(self, seconds: float, spp: int):
        self.seconds = seconds
        self.spp = spp

    def render(self, x: int, y: int, width: int, height: int, should_stop=None, plan=None) -> np.ndarray | None:
        """As Renderer.render; a null job is never a round (its samples are all of them)."""
        deadline = time.perf_counter() + self.seconds
        while (left := deadline - time.perf_counter()) > 0:
            time.sleep(min(left, defaults.PASS_SECONDS))
            if should_stop is not None and should_stop():
                return None
        return pixels(x, y, width, height, self.spp)
