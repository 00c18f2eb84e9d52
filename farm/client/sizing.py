"""Buckets that size themselves: without --bucket-size (or FARM_BUCKET_SIZE), a frame's
buckets are made to render in about FARM_BUCKET_SECONDS on the median live worker, from
the speeds the workers measured on their own buckets (farm.worker.speed), each its last:
large on GPUs, where a small bucket is mostly the farm's own cost (sending it, Redis, its
tile), small on CPUs. A speed is a scene's: a farm that last rendered a heavier scene sizes
the next one's buckets smaller, and says so. The scale model (farm/tools/simulate.py) chose
this with the split tail beside it."""

from __future__ import annotations

import statistics

from farm import defaults
from farm.buckets import sized
from farm.protocol import registry


def self_sized(redis, digest: str, width: int, height: int, spp: int, covered: bool,
               seconds: float | None = None, split: bool = False) -> tuple[int, str] | None:
    """(side, what to tell the user) for a width x height frame of the scene `digest` at `spp`
    samples per pixel, by the workers' speeds (`speeds`). A frame whose end is not `covered`
    (by its tail split, or by a shot's next frames) keeps two buckets a worker: rounds, a
    shot of few frames. A `split` still's side is the one near `seconds` whose buckets fill
    the workers' waves best (farm.buckets.sized). None where no worker has measured its
    speed yet (a farm's first frame): the frame keeps BUCKET_SIZE."""
    seconds = defaults.BUCKET_SECONDS if seconds is None else seconds
    rates, here = speeds(redis, digest)
    if not rates:
        return None
    side = sized(width, height, spp, rates, seconds, defaults.MIN_BUCKET_SIZE, defaults.MAX_BUCKET_SIZE,
                 defaults.NOISE_CELL, defaults.MAX_BUCKETS, None if covered else len(rates),
                 defaults.MAX_SPLIT if split else None)
    scene = "this scene" if here == len(rates) else f"their last scenes, {here} of them this one"
    return side, (f"{side} px buckets: about {seconds:g}s each on the median of {len(rates)} worker(s) "
                  f"({statistics.median(rates) / 1e6:.3g} M samples/s on {scene}; --bucket-size sets one)")


def bucket_seconds(redis, digest: str, side: int, spp: int) -> float | None:
    """A side x side bucket's seconds on the median worker, where the workers' speeds say."""
    rates, _ = speeds(redis, digest)
    return side * side * spp / statistics.median(rates) if rates else None


def speeds(redis, digest: str) -> tuple[list[float], int]:
    """The samples/s each healthy live worker last measured (on the last scene it rendered),
    and how many of them measured the scene `digest`."""
    live = [name for name, record in registry.workers(redis).items() if not record.bad]
    found = registry.speeds(redis, live).values()
    return [speed.samples_per_second for speed in found], sum(speed.scene == digest for speed in found)
