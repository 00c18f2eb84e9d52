"""A render process's speed: its samples per second over the buckets of the scene it
renders, said to the farm (farm.protocol.registry.note_speed) when it changes, for the
clients that size a frame's buckets by it (farm.client.sizing)."""

from __future__ import annotations

import time

from farm.protocol.registry import SPEED_CHANGE, SPEED_REFRESH, Speed


class SpeedMeter:
    def __init__(self):
        self.scene = ""  # the digest of the scene measured
        self.samples = 0
        self.seconds = 0.0
        self.noted: float | None = None  # the samples/s last said
        self.noted_at = 0.0  # when (time.monotonic)

    def add(self, scene: str, samples: int, seconds: float) -> Speed | None:
        """Count a bucket of `scene`: `samples` taken in `seconds` of rendering. Returns the
        speed to say now (the first of a scene, one SPEED_CHANGE off the last said, or the
        same again SPEED_REFRESH after it was said), else None.

        A scene's first bucket in a process is said alone and then left out: its launches
        compile the kernel's work-group functions (PoCL does at a kernel's first launch),
        which the buckets after it do not pay (measured: a worker's first frame of the
        Cornell box read 1.09 M samples/s, its buckets after 1.87)."""
        first = scene != self.scene
        if first:
            self.scene, self.samples, self.seconds, self.noted = scene, 0, 0.0, None
        self.samples += samples
        self.seconds += seconds
        if self.seconds <= 0 or self.samples <= 0:
            return None
        rate = self.samples / self.seconds
        if first:
            self.samples, self.seconds = 0, 0.0
        elif self.noted is not None and abs(rate / self.noted - 1) <= SPEED_CHANGE \
                and time.monotonic() - self.noted_at < SPEED_REFRESH:
            return None
        self.noted, self.noted_at = rate, time.monotonic()
        return Speed(scene, rate)

    def expected(self, scene: str, samples: int) -> float | None:
        """Seconds `samples` of `scene` should take at the rate measured on its buckets so
        far (not its first); None before there is one."""
        if scene != self.scene or self.samples <= 0 or self.seconds <= 0:
            return None
        return samples * self.seconds / self.samples
