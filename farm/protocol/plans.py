"""Sample plans: which samples each region of the frame gets in one job.

The frame is cut into square cells of `cell` pixels on a fixed grid (not the buckets: a
plan means the same pixels whatever the bucket size); each cell gets the samples
[first, end) of its pixels. A uniform job (all samples, or one progressive round) is one
cell covering the frame. A job under a noise target stores its plan beside its record
(`farm:job:<id>:plan`); workers read it and render each pixel's samples; the tiles hold
the fixed-point sums of those samples, which the client adds to the frame's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from farm.buckets import Bucket
from farm.exceptions import JobError
from farm.protocol.tiles import MAX_SAMPLES

_HEADER = np.dtype("<i4")


@dataclass(frozen=True, eq=False)
class Plan:
    """Samples [ranges[cy, cx, 0], ranges[cy, cx, 1]) for every pixel of cell (cx, cy)."""

    cell: int
    ranges: np.ndarray  # (cells_y, cells_x, 2) int32

    @classmethod
    def uniform(cls, width: int, height: int, first: int, end: int) -> Plan:
        """Samples [first, end) for every pixel: one cell as large as the frame."""
        return cls(max(width, height), np.array([[[first, end]]], np.int32))

    @classmethod
    def for_frame(cls, width: int, height: int, cell: int, first: np.ndarray, end: np.ndarray) -> Plan:
        """A plan of `cell`-pixel cells from per-cell arrays (cells_y, cells_x) of first and end."""
        shape = (-(-height // cell), -(-width // cell))
        if first.shape != shape or end.shape != shape:
            raise ValueError(f"a {width}x{height} frame has {shape[1]}x{shape[0]} cells of {cell}px, not {first.shape}")
        return cls(cell, np.stack([first, end], axis=-1).astype(np.int32))

    @property
    def uniform_range(self) -> bool:
        """Whether every pixel takes the same samples (one cell: nothing to store)."""
        return self.ranges.shape[:2] == (1, 1)

    @property
    def bounds(self) -> tuple[int, int]:
        """The lowest first and highest end sample of any cell with samples to take."""
        busy = self.ranges[..., 1] > self.ranges[..., 0]
        if not busy.any():
            return 0, 0
        return int(self.ranges[..., 0][busy].min()), int(self.ranges[..., 1][busy].max())

    def pixel_ranges(self, bucket: Bucket) -> np.ndarray:
        """(height, width, 2): the samples [first, end) of each pixel of `bucket`."""
        rows = np.arange(bucket.y, bucket.y + bucket.height) // self.cell
        columns = np.arange(bucket.x, bucket.x + bucket.width) // self.cell
        return self.ranges[rows[:, None], columns[None, :]]

    def samples(self, bucket: Bucket) -> int:
        """The pixel samples the plan gives `bucket` (pixels times their samples)."""
        ranges = self.pixel_ranges(bucket)
        return int((ranges[..., 1] - ranges[..., 0]).sum())

    def has_work(self, bucket: Bucket) -> bool:
        ranges = self.pixel_ranges(bucket)
        return bool((ranges[..., 1] > ranges[..., 0]).any())

    def to_bytes(self) -> bytes:
        cells_y, cells_x = self.ranges.shape[:2]
        return np.array([self.cell, cells_x, cells_y], _HEADER).tobytes() + self.ranges.astype("<i4").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, width: int, height: int) -> Plan:
        """The plan of a width x height frame as stored in Redis, checked: anyone with broker
        access can write there, so a malformed plan is a JobError, not a kernel read out of
        bounds."""
        if len(data) < 3 * _HEADER.itemsize:
            raise JobError("the job's sample plan is malformed (too short)")
        cell, cells_x, cells_y = (int(v) for v in np.frombuffer(data[:12], _HEADER))
        if not 1 <= cell or cells_x != -(-width // cell) or cells_y != -(-height // cell):
            raise JobError(f"the job's sample plan does not fit its {width}x{height} frame")
        body = data[12:]
        if len(body) != cells_x * cells_y * 2 * 4:
            raise JobError("the job's sample plan is malformed (wrong size)")
        ranges = np.frombuffer(body, "<i4").reshape(cells_y, cells_x, 2).astype(np.int32)
        if (ranges < 0).any() or (ranges[..., 0] > ranges[..., 1]).any() or (ranges > MAX_SAMPLES).any():
            raise JobError(f"the job's sample plan has ranges outside [0, {MAX_SAMPLES}]")
        return cls(cell, ranges)
