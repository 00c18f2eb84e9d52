"""Split a frame into buckets and order them. Pure functions, no I/O."""

from __future__ import annotations

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
