"""Split a frame into buckets, size them, and order them. Pure functions, no I/O."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

ORDERS = ("spiral", "top-down")


@dataclass(frozen=True)
class Bucket:
    """One rectangle of the frame; `index` is its position in row-major tiling order."""

    index: int
    x: int
    y: int
    width: int
    height: int


def count(width: int, height: int, size: int) -> int:
    """How many buckets `split` makes of a width x height frame."""
    return -(-width // size) * -(-height // size)


def sized(width: int, height: int, spp: int, rates: list[float], seconds: float, least: int, most: int,
          cell: int = 8, max_buckets: int | None = None, workers: int | None = None) -> int:
    """The side of a bucket of a width x height frame that renders in about `seconds` on the
    median of workers that take `rates` samples/s each: a multiple of `cell` (the noise
    target's cells) within [least, most], no larger than the frame needs, no smaller than
    keeps it within `max_buckets`, and, given `workers` (a frame whose tail is not split),
    no larger than gives each of them two buckets. Few workers or fast ones give large
    buckets, so the farm's own cost per bucket (its sending, Redis, the tile) stays small
    beside the render; the frame's tail is the split tail's (`tail_split`)."""
    def up(side: float) -> int:
        return -(-math.ceil(side) // cell) * cell

    side = math.sqrt(seconds * statistics.median(rates) / max(spp, 1))
    if workers:
        side = min(side, math.sqrt(width * height / (2 * workers)))
    side = min(max(cell, round(side / cell) * cell), up(max(width, height)))
    if max_buckets:
        side = max(side, up(math.sqrt(width * height / max_buckets)))
    return int(min(most, max(least, cell, side)))


# Seconds of the client's and Redis's time one more task of a frame costs (its send, publish,
# fetch, tile): 0.63 ms on AMD EPYC (Zen 5), 1.1 ms on Zen 4, by `farm bench --simulate`.
PART_COST = 0.001


def tail_split(workers: int, buckets: int, spp: int, most: int, bucket_seconds: float | None = None,
               part_cost: float = PART_COST) -> tuple[int, int]:
    """How `--split-tail` (and a self-sized frame) cuts a frame's tail: (buckets, parts), as
    many of each as `workers`, within the frame's `buckets`, its `spp` and `most` parts;
    (0, 0) where fewer than two workers would share a part. Where a bucket's render time is
    known (`bucket_seconds`), no finer than pays, down to 2: the extra parts, `part_cost` each
    one after another at the client and Redis, cost at most half a bucket's time (a frame on
    a thousand workers is not cut into sixteen thousand parts; the scale model measured it)."""
    tail, parts = min(workers, buckets), min(workers, most, spp)
    if bucket_seconds is not None and tail > 0 and math.isfinite(bucket_seconds):
        parts = min(parts, max(2, 1 + int(bucket_seconds / 2 / (tail * part_cost))))
    return (tail, parts) if parts >= 2 else (0, 0)


def bucket_at(width: int, height: int, size: int, index: int) -> Bucket:
    """Bucket `index` of `split(width, height, size)`, without building the others."""
    if width <= 0 or height <= 0 or size <= 0:
        raise ValueError(f"cannot split a {width}x{height} frame into {size}px buckets")
    if not 0 <= index < count(width, height, size):
        raise IndexError(f"no bucket {index} in a {width}x{height} frame of {size}px buckets")
    columns = -(-width // size)
    x, y = (index % columns) * size, (index // columns) * size
    return Bucket(index, x, y, min(size, width - x), min(size, height - y))


def split(width: int, height: int, size: int) -> list[Bucket]:
    """Tile a width x height frame with size x size buckets, row-major; edges are cut short."""
    if width <= 0 or height <= 0 or size <= 0:
        raise ValueError(f"cannot split a {width}x{height} frame into {size}px buckets")
    return [bucket_at(width, height, size, i) for i in range(count(width, height, size))]


def order(buckets: list[Bucket], how: str) -> list[Bucket]:
    """Return the buckets in render order: `top-down` (row-major) or `spiral` (centre first)."""
    if how == "top-down":
        return sorted(buckets, key=lambda b: b.index)
    if how == "spiral":
        return _spiral(buckets)
    raise ValueError(f"unknown bucket order {how!r} (choose from {', '.join(ORDERS)})")


def _spiral(buckets: list[Bucket]) -> list[Bucket]:
    """Square rings around the centre bucket, each ring walked clockwise from the top left."""
    if not buckets:
        return []
    columns = len({b.x for b in buckets})
    rows = len(buckets) // columns
    cx, cy = (columns - 1) / 2, (rows - 1) / 2

    def key(b: Bucket):
        col, row = b.index % columns, b.index // columns
        dx, dy = col - cx, row - cy
        ring = max(abs(dx), abs(dy))
        # position along the ring, clockwise starting at its top-left corner
        if dy == -ring:
            along = dx + ring
        elif dx == ring:
            along = 2 * ring + (dy + ring)
        elif dy == ring:
            along = 4 * ring + (ring - dx)
        else:
            along = 6 * ring + (ring - dy)
        return (ring, along, b.index)

    return sorted(buckets, key=key)
