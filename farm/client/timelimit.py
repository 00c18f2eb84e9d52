"""`submit --time-limit`: rounds that end when the time is spent.

Before each round after the first, the client asks the clock whether the round fits in the
time left at the rate the rounds so far rendered at; one that does not is cut, every cell
to the same share of its samples (a cut round's sums are still exact: the same bits as one
render of its samples), or dropped. A round still rendering at the deadline is cancelled
(TimeUp, raised from the client's liveness check) and the output keeps the round before.
"""

from __future__ import annotations

import time

import numpy as np

from farm.buckets import Bucket
from farm.protocol.plans import Plan


class TimeUp(Exception):
    """--time-limit passed while a round rendered: it is cancelled, the output keeps the round before."""


class RoundClock:
    """--time-limit's clock: the rate the rounds so far rendered at (pixel samples a
    second, their start-up in), and which part of the next round fits in the time left."""

    MARGIN = 0.9  # of the time left, for a round cut to fit: rates wander

    def __init__(self, seconds: float, width: int, height: int):
        self.width, self.height = width, height
        self.started = time.perf_counter()
        self.deadline = self.started + seconds
        self.samples, self.seconds = 0, 0.0

    def left(self) -> float:
        return max(self.deadline - time.perf_counter(), 0.0)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def done(self, plan: Plan, seconds: float) -> None:
        self.samples += self.samples_of(plan)
        self.seconds += seconds

    def fit(self, plan: Plan, left: float | None = None) -> Plan | None:
        """`plan` if it fits in the time left at the rate so far; else the plan whose every
        cell takes the same share of its samples, what fits (rounded down); None where no
        pixel would get a sample."""
        left = self.left() if left is None else left
        rate = self.samples / self.seconds if self.seconds > 0 else 0.0
        samples = self.samples_of(plan)
        if samples <= left * rate:
            return plan
        first, end = plan.ranges[..., 0], plan.ranges[..., 1]
        cut = first + np.floor((end - first) * (left * self.MARGIN * rate / samples)).astype(np.int32)
        if not (cut > first).any():
            return None
        return Plan(plan.cell, np.stack([first, cut], axis=-1).astype(np.int32))

    def samples_of(self, plan: Plan) -> int:
        """The pixel samples a round of `plan` renders."""
        return plan.samples(Bucket(0, 0, 0, self.width, self.height))
