"""`farm bench --overhead`: what the farm itself costs per bucket, with many workers.

The workers run the null renderer (farm/tools/null.py): a bucket's "render" is free, or
sleeps `--null-seconds`, so what is measured is the client, Redis and Celery alone. Every
figure comes from the run itself: the seconds the client spent inside BucketQueue.send,
the CPU time each process used (the client, redis-server, every worker and its pool
children, read from the kernel through psutil), and each bucket's time from its send to
its tile in the film (the client's clock, so nothing depends on clocks agreeing), and the
commands Redis ran meanwhile (INFO commandstats: every client's, the workers' heartbeats
and events included, less the bench's own INFO), and the task events a subscriber got (as
Flower would: a process of its own, subscribed as Flower is).
"""

from __future__ import annotations

import base64
import json
import multiprocessing
import statistics
import time
from dataclasses import dataclass

import psutil

from farm import defaults


@dataclass
class Round:
    """The figures of one frame through the farm."""

    buckets: int
    wall: float
    send_seconds: float
    sent: int
    cpu: dict[str, float]  # seconds of CPU: client, redis, workers
    latencies: list[float]  # seconds from send to tile in the film, one per bucket
    commands: dict[str, int]  # Redis commands run during the frame, by name
    events: int  # task events published during the frame (a subscriber's count)

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:  # ended since it was listed
            continue
        total += times.user + times.system
    return total


def _with_children(pids: list[int]) -> list[psutil.Process]:
    found = []
    for pid in pids:
        try:
            parent = psutil.Process(pid)
            found += [parent, *parent.children(recursive=True)]
        except psutil.Error:
            continue
    return found


def _subscriber(url: str, ready, stop, count) -> None:
    """In a process of its own: count the task events published on the broker at `url`
    (each message of task.multi holds several) until `stop` is set."""
    import redis

    pubsub = redis.Redis.from_url(url).pubsub()
    pubsub.psubscribe("*celeryev/task.*")
    pubsub.get_message(timeout=5)  # the subscription's confirmation
    ready.set()
    seen = 0
    while not stop.is_set():
        message = pubsub.get_message(timeout=0.1)
        if message and message["type"] == "pmessage":
            body = json.loads(base64.b64decode(json.loads(message["data"])["body"]))
            seen += len(body) if isinstance(body, list) else 1
    count.value = seen


class EventCounter:
    """Counts the task events published while it is open, from another process."""

    def __init__(self, url: str):
        context = multiprocessing.get_context("spawn")
        self.ready, self.stop, self.count = context.Event(), context.Event(), context.Value("q", 0)
        self.process = context.Process(target=_subscriber, args=(url, self.ready, self.stop, self.count), daemon=True)

    def __enter__(self) -> EventCounter:
        self.process.start()
        if not self.ready.wait(30):
            raise RuntimeError("the event subscriber did not start")
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(0.5)  # a worker's last events wait up to EVENT_FLUSH
        self.stop.set()
        self.process.join(10)

    @property
    def seen(self) -> int:
        return int(self.count.value)


def _calls(redis) -> dict[str, int]:
    """Redis's count of calls of each command since it started (INFO commandstats)."""
    return {name.removeprefix("cmdstat_"): int(stats["calls"]) for name, stats in redis.info("commandstats").items()}


def run(args, scene, document) -> int:
    workers = args.workers or 64
    bucket_size = args.bucket_size or 8
    rounds = measure(workers, scene, document, bucket_size, args.null_seconds, args.repeat)
    _print(args, workers, bucket_size, scene, rounds)
    return 0


def measure(workers: int, scene, document, bucket_size: int, null_seconds: float, repeat: int) -> list[Round]:
    """`repeat` frames of `scene` through a local farm of `workers` null workers, after one
    that warms it up."""
    from farm.app import app
    from farm.client.local import LocalFarm
    from farm.client.start import start_job
    from farm.protocol.broker import connect

    started = time.perf_counter()
    with LocalFarm(workers, env={"FARM_NULL_RENDER": "1"}, name="null") as local:
        app.conf.broker_url = local.broker_url
        local.wait_ready(app, timeout=max(defaults.WORKER_START_TIMEOUT, 3.0 * workers))
        print(f"{workers} null workers ready in {time.perf_counter() - started:.1f}s", flush=True)
        redis_client = connect(local.broker_url)
        client = psutil.Process()
        redis_server = [psutil.Process(local.redis.process.pid)]
        worker_processes = _with_children([w.process.pid for w in local.workers])

        def frame() -> Round:
            with EventCounter(local.broker_url) as events:
                calls = _calls(redis_client)
                before = (_cpu_seconds([client]), _cpu_seconds(redis_server), _cpu_seconds(worker_processes))
                job = start_job(redis_client, app, scene, document, bucket_size, "spiral", null=null_seconds)
                job.collect(check_alive=local.check_alive)
                after = (_cpu_seconds([client]), _cpu_seconds(redis_server), _cpu_seconds(worker_processes))
            cpu = dict(zip(("client", "redis", "workers"), (b - a for a, b in zip(before, after))))
            latencies = [r.arrived - r.sent for r in job.records.values()]
            ran = {name: count - calls.get(name, 0) for name, count in _calls(redis_client).items()}
            ran["info"] -= 1  # the INFO that read the counts before
            return Round(job.total, job.wall_seconds, job.queue.seconds, job.queue.sent, cpu, latencies,
                         {name: count for name, count in ran.items() if count > 0}, events.seen)

        frame()  # warm: every worker has taken buckets, every connection is open
        return [frame() for _ in range(repeat)]


def _print(args, workers: int, bucket_size: int, scene, rounds: list[Round]) -> None:
    def median(figure) -> float:
        return statistics.median(figure(r) for r in rounds)

    buckets = rounds[0].buckets
    print(f"overhead: {workers} workers, null renderer ({args.null_seconds * 1e3:g} ms per bucket), "
          f"{scene.film.width}x{scene.film.height} in {bucket_size}px buckets = {buckets} buckets; "
          f"medians of {len(rounds)} frames")
    print(f"wall: {median(lambda r: r.wall):.2f}s per frame, {median(lambda r: r.buckets / r.wall):.0f} tiles/s "
          f"collected")
    print(f"send: {median(lambda r: r.sent / r.send_seconds):.0f} buckets/s inside BucketQueue.send "
          f"(each a Celery task message and its task-sent event)")
    print(f"latency from send to tile in the film: p50 {median(lambda r: r.percentile(0.5)) * 1e3:.0f} ms, "
          f"p99 {median(lambda r: r.percentile(0.99)) * 1e3:.0f} ms")
    parts = {name: median(lambda r, n=name: r.cpu[n] / r.buckets) for name in ("client", "redis", "workers")}
    shares = {name: median(lambda r, n=name: r.cpu[n] / r.wall) for name in parts}
    print("CPU per bucket: " + ", ".join(f"{name} {ms * 1e3:.3f} ms" for name, ms in parts.items())
          + f"; total {sum(parts.values()) * 1e3:.3f} ms (per-bucket overhead, summed over every process)")
    print("CPU in use: " + ", ".join(f"{name} {share * 100:.0f}% of a core" for name, share in shares.items()))
    names = sorted({name for r in rounds for name in r.commands})
    each = {name: median(lambda r, n=name: r.commands.get(n, 0) / r.buckets) for name in names}
    ordered = sorted(each.items(), key=lambda item: -item[1])
    print(f"Redis commands per bucket: {median(lambda r: sum(r.commands.values()) / r.buckets):.1f} (INFO "
          f"commandstats, every client's): " + ", ".join(f"{name} {count:.2f}" for name, count in ordered if count >= 0.01))
    print(f"task events for Flower: {median(lambda r: r.events / r.buckets):.2f} per bucket, "
          f"{median(lambda r: r.events / r.wall):.0f}/s (a subscriber's count; Flower falls behind past 3-4k/s; "
          f"FARM_TASK_EVENTS={defaults.TASK_EVENTS:g} a sending process)")
