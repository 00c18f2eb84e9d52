"""Split a frame into buckets, size them, and order them. Pure functions, no I/O."""

from __future__ import annotations

import heapq
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
          cell: int = 8, max_buckets: int | None = None, workers: int | None = None,
          split_parts: int | None = None) -> int:
    """The side of a bucket of a width x height frame that renders in about `seconds` on the
    median of workers that take `rates` samples/s each: a multiple of `cell` (the noise
    target's cells) within [least, most], no larger than the frame needs, no smaller than
    keeps it within `max_buckets`, and, given `workers` (a frame whose tail is not split),
    no larger than gives each of them two buckets. Few workers or fast ones give large
    buckets, so the farm's own cost per bucket (its sending, Redis, the tile) stays small
    beside the render; the frame's tail is the split tail's (`tail_split`).

    Given `split_parts` (a still whose tail is split, in at most that many parts), of the
    sides whose buckets take within twice or half `seconds`, the one the frame ends soonest
    in (frame_seconds), the nearest to the side for `seconds` of those within 1% of it: a
    farm's buckets come in waves, one a worker, and a last wave that fills few of them
    leaves the rest idle (at 1,024 workers, 1,620 buckets of 1 s are 1.6 waves; the
    scale model read 77% against 92% for 2,040 buckets of 0.8 s)."""
    def up(side: float) -> int:
        return -(-math.ceil(side) // cell) * cell

    def bounded(side: float) -> int:
        side = min(max(cell, round(side / cell) * cell), up(max(width, height)))
        if max_buckets:
            side = max(side, up(math.sqrt(width * height / max_buckets)))
        return int(min(most, max(least, cell, side)))

    target = math.sqrt(seconds * statistics.median(rates) / max(spp, 1))
    if workers:
        target = min(target, math.sqrt(width * height / (2 * workers)))
    side = bounded(target)
    if not split_parts or len(rates) < 2:
        return side
    largest = min(int(target * math.sqrt(2)), up(max(width, height)), most)  # beyond: the same side, bounded
    sides = sorted({bounded(s) for s in range(up(target / math.sqrt(2)), largest + 1, cell)} | {side})
    ends = {s: frame_seconds(width, height, spp, s, rates, split_parts) for s in sides}
    soonest = min(ends.values())
    return min((s for s in sides if ends[s] <= soonest * 1.01), key=lambda s: (abs(math.log(s / side)), s))


# Seconds of the client's and Redis's time one more task of a frame costs (its send, publish,
# fetch, tile), by `farm bench --simulate`: 0.205 ms on AMD EPYC (Zen 4) since the lean broker
# path (send 0.026, collect 0.062, Redis 0.117 ms); 0.63 ms (Zen 5) and 1.1 ms (Zen 4) before.
PART_COST = 0.0002


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


def frame_seconds(width: int, height: int, spp: int, side: int, rates: list[float], split_parts: int,
                  part_cost: float = PART_COST) -> float:
    """About how long a width x height frame at `spp` takes in side x side buckets on
    workers of `rates` samples/s each, sent as a still is: its tail cut in parts
    (tail_split, at most `split_parts`), each task (a bucket or a part) in order to the
    worker that is free first, once the client and Redis have passed it: they pass the
    tasks one after another, `part_cost` each (PART_COST)."""
    tail = tail_split(len(rates), count(width, height, side), spp, split_parts,
                      side * side * spp / statistics.median(rates), part_cost)
    work = task_samples(areas(width, height, side), spp, tail)
    free = [(0.0, worker) for worker in range(len(rates))]
    end = 0.0
    for task, samples in enumerate(work):
        ready, worker = heapq.heappop(free)
        done = max(ready, (task + 1) * part_cost) + samples / rates[worker]
        end = max(end, done)
        heapq.heappush(free, (done, worker))
    return end


def areas(width: int, height: int, size: int) -> list[int]:
    """The pixels of each bucket of `split(width, height, size)`, in its order."""
    columns, rows = -(-width // size), -(-height // size)
    return [min(size, width - x * size) * min(size, height - y * size) for y in range(rows) for x in range(columns)]


def task_samples(pixels: list[int], spp: int, tail: tuple[int, int]) -> list[int]:
    """The samples of each task of a frame whose buckets have `pixels`: the buckets before
    its tail whole, then each of its last tail[0] buckets as tail[1] parts of whole samples
    per pixel, part j the samples [spp*j/parts, spp*(j+1)/parts) (`--split-tail`'s cut)."""
    buckets, parts = tail
    whole = len(pixels) - buckets
    return [count * spp for count in pixels[:whole]] + [count * (spp * (j + 1) // parts - spp * j // parts)
                                                        for count in pixels[whole:] for j in range(parts)]


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
