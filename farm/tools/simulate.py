"""A discrete-event model of one frame on a farm, for `farm bench --simulate`.

What it models, per bucket, in the farm's own order (farm/client/start.py, the worker's
task): the client sends it (its CPU), Redis publishes it; a free worker fetches it (Redis),
renders it (its pixels times the samples per pixel over the worker's samples/s, plus the
worker's own overhead per bucket), stores the tile (Redis); the client takes the tile into
the film (its CPU). The client and Redis are each one FIFO server, so they queue when a
farm's buckets come faster than they serve them; a worker takes its next bucket once it
has stored the last (Celery's prefetch of one with late acks). The frame ends when the
client has its last tile. Costs are seconds per bucket, measured by the caller
(farm/tools/bench_simulate.py measures them on this machine).

Self-sized buckets: the farm's own side (farm.buckets.sized): about `bucket_seconds` on the
median worker, the one near it whose waves of buckets fill the workers best. A split tail:
whenever a worker finds no bucket queued and none left to send (from the start, where the
frame has fewer buckets than the farm workers), it takes part of the samples of the bucket
in flight that would end last (exact, by whole samples per pixel, at most FARM_MAX_SPLIT
parts a bucket, as `--split-tail` cuts), sized so that both parts end together, where that
ends the bucket sooner by more than the part costs the client and Redis (its send, publish
and tile); the new part waits for their queues too.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass

from farm import defaults
from farm.buckets import areas, sized, task_samples


@dataclass(frozen=True)
class Costs:
    """Seconds per bucket (or per part of a split bucket) of each process's own work."""

    send: float  # the client's CPU to send it
    collect: float  # the client's CPU to take its tile into the film
    redis: float  # Redis's CPU for all its commands, a third each at publish, fetch and store
    worker: float  # a worker's own time per bucket besides rendering (Celery, the task, the tile)


@dataclass(frozen=True)
class Outcome:
    seconds: float  # the frame's wall time, from the first send to the last tile in the film
    efficiency: float  # the workers' ideal time (all samples over their summed rates) over `seconds`
    side: int  # bucket side in pixels
    buckets: int
    parts: int  # tasks beyond one a bucket: the parts a split tail made


def self_sized(width: int, height: int, spp: int, rates: list[float], bucket_seconds: float) -> int:
    """The side the farm gives buckets of a still on workers of `rates` (farm.client.sizing)."""
    return sized(width, height, spp, rates, bucket_seconds, defaults.MIN_BUCKET_SIZE, defaults.MAX_BUCKET_SIZE,
                 defaults.NOISE_CELL, defaults.MAX_BUCKETS, split_parts=defaults.MAX_SPLIT)


def simulate(width: int, height: int, spp: int, side: int, rates: list[float], costs: Costs,
             split_tail: bool = False, tail: tuple[int, int] = (0, 0)) -> Outcome:
    """One frame of width x height at spp in side x side buckets on workers of `rates`
    samples/s each; `tail`: (buckets, parts), the frame's last buckets sent as parts of
    their samples from the start (`submit --split-tail`, JobMeta.tail). Every step is an
    event at the time it reaches its process, so each FIFO server serves in the order work
    reaches it."""
    pixels = areas(width, height, side)
    buckets = len(pixels)
    work = task_samples(pixels, spp, tail)  # of each task: a bucket, or a part of the static tail
    if tail[0]:
        whole = len(pixels) - tail[0]
        pixels = pixels[:whole] + [count for count in pixels[whole:] for _ in range(tail[1])]
    events: list[tuple[float, int, str, int, int]] = []  # (time, order, what, whom: a bucket, worker or part, version)
    order = 0

    def at(time: float, what: str, whom: int, version: int = 0) -> None:
        nonlocal order
        order += 1
        heapq.heappush(events, (time, order, what, whom, version))

    free = {"client": 0.0, "redis": 0.0}  # when each server is next free

    def serve(server: str, now: float, cost: float) -> float:
        free[server] = max(free[server], now) + cost
        return free[server]

    queue: deque[int] = deque()  # buckets published and not yet taken
    idle = deque(range(len(rates)))  # workers waiting on the queue
    flight: dict[int, list] = {}  # worker -> [bucket, rendering since, end]
    versions = [0] * len(rates)  # each worker's newest end: a split moves it, its old event is then stale
    tiles_left = [1] * len(pixels)  # tiles each bucket waits for
    parts_of = [1] * len(pixels)  # parts each bucket was cut into
    parts: list[tuple[int, int, float]] = []  # a split's new part: (worker, bucket, samples)
    sent, last = 0, 0.0

    def start(worker: int, bucket: int, now: float, samples: float) -> None:
        """`worker` takes `bucket` (`samples` of it) from Redis now."""
        begins = serve("redis", now, costs.redis / 3) + costs.worker
        versions[worker] += 1
        flight[worker] = [bucket, begins, begins + samples / rates[worker]]
        at(flight[worker][2], "done", worker, versions[worker])

    def split(worker: int, now: float) -> bool:
        """Idle `worker` takes part of the bucket in flight that ends last (whole samples per
        pixel, at most MAX_SPLIT parts a bucket, as --split-tail cuts), so that both parts end
        together, where that ends it sooner by more than the part costs the client and Redis."""
        if not split_tail or not flight:
            return False
        # the part ending last; of parts ending together (a split's), the slowest worker's
        other, (bucket, begun, end) = max(flight.items(), key=lambda item: (item[1][2], -rates[item[0]]))
        if parts_of[bucket] >= defaults.MAX_SPLIT:
            return False
        since = max(now, begun)  # `other` renders from then
        left = (end - since) * rates[other]  # samples it has still to render
        sent_at = max(free["client"], now) + costs.send  # the new part queues where the others do
        published = max(free["redis"], sent_at) + costs.redis / 3
        delay = max(free["redis"], published) + costs.redis / 3 + costs.worker - now  # until it renders
        # since + (left - mine) / r_other = now + delay + mine / r_worker
        mine = (since - now + left / rates[other] - delay) / (1 / rates[other] + 1 / rates[worker])
        mine = math.floor(min(mine, left - pixels[bucket]) / pixels[bucket]) * pixels[bucket]  # each keeps 1 spp
        if mine < pixels[bucket]:
            return False
        ends = max(since + (left - mine) / rates[other], now + delay + mine / rates[worker])
        if end - ends <= costs.send + costs.redis + costs.collect:
            return False
        versions[other] += 1
        flight[other][2] = since + (left - mine) / rates[other]
        at(flight[other][2], "done", other, versions[other])
        tiles_left[bucket] += 1
        parts_of[bucket] += 1
        parts.append((worker, bucket, mine))
        at(serve("client", now, costs.send), "publish part", len(parts) - 1)
        return True

    def take_parts(now: float) -> None:
        """Idle workers take parts, in turn, until one finds none worth taking."""
        while idle and split(idle[0], now):
            idle.popleft()

    at(0.0, "send", 0)
    while events:
        now, _, what, whom, version = heapq.heappop(events)
        if what == "send":  # the client sends bucket `whom`, then the next
            sent_at = serve("client", now, costs.send)
            at(sent_at, "publish", whom)
            if whom + 1 < len(pixels):
                at(sent_at, "send", whom + 1)
        elif what == "publish":
            at(serve("redis", now, costs.redis / 3), "queued", whom)
        elif what == "queued":
            sent += 1
            if idle:
                start(idle.popleft(), whom, now, work[whom])
            else:
                queue.append(whom)
            if sent == len(pixels):  # the last: workers idle now take parts of buckets in flight
                take_parts(now)
        elif what == "publish part":
            at(serve("redis", now, costs.redis / 3), "take part", whom)
        elif what == "take part":
            worker, bucket, samples = parts[whom]
            start(worker, bucket, now, samples)
        elif what == "done":
            if version != versions[whom]:
                continue  # a split moved this end
            bucket = flight.pop(whom)[0]
            stored = serve("redis", now, costs.redis / 3)
            at(stored, "collect", bucket)
            at(stored, "free", whom)
        elif what == "collect":
            at(serve("client", now, costs.collect), "tile", whom)
        elif what == "tile":
            tiles_left[whom] -= 1
            last = now
        elif what == "free":
            if queue:
                bucket = queue.popleft()
                start(whom, bucket, now, work[bucket])
                continue
            idle.append(whom)
            if sent == len(pixels):  # nothing more comes: the idle take parts of the last buckets
                take_parts(now)
    assert not any(tiles_left), "a bucket never ended"
    ideal = sum(work) / sum(rates)
    return Outcome(last, ideal / last, side, buckets, len(pixels) - buckets + len(parts))
