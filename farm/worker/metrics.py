"""Prometheus metrics of a render worker, on FARM_METRICS_PORT (off by default).

The render process (Celery's pool child) counts what it does; the worker's main process
serves what its children counted, through prometheus_client's multiprocess mode (each
process writes its values to files in a folder of its own, the main process sums them on
each scrape), so a child that dies and is replaced loses nothing it counted. The main
process also reports the queue: the buckets sent and not yet rendered of each running job,
and the messages waiting in each of the farm's queue lists.

Metric names follow Prometheus's conventions: `farm_` prefix, base units, `_total` for
counters. docker/grafana-dashboard.json draws them.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile

from farm import defaults

log = logging.getLogger(__name__)

_metrics = None  # the render process's metrics, once opened


def serve(hostname: str, redis_factory) -> None:
    """In the worker's main process, before its pool forks: make the multiprocess folder
    and serve the metrics on FARM_METRICS_PORT (0: not at all). `redis_factory()` gives a
    Redis client for the queue figures."""
    if not defaults.METRICS_PORT:
        return
    folder = tempfile.mkdtemp(prefix="farm-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    from prometheus_client import CollectorRegistry, start_http_server, values
    from prometheus_client.multiprocess import MultiProcessCollector

    # prometheus_client picks its value store once, at import, from this variable; Celery's
    # command line has imported it already (it loads Flower's command, which does), so the
    # choice is made again here, before the render processes fork and make any metric.
    values.ValueClass = values.get_value_class()

    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    registry.register(QueueCollector(redis_factory))
    start_http_server(defaults.METRICS_PORT, addr=defaults.METRICS_ADDRESS, registry=registry)
    log.info("worker %s: metrics on http://%s:%d/metrics", hostname, defaults.METRICS_ADDRESS, defaults.METRICS_PORT)
    import atexit

    atexit.register(shutil.rmtree, folder, ignore_errors=True)


def _open():
    """The render process's metrics (None when the worker serves none)."""
    global _metrics
    if _metrics is None and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import Counter, Histogram

        _metrics = {
            "samples": Counter("farm_samples", "samples rendered (pixels times samples)", ["device"]),
            "buckets": Histogram("farm_bucket_seconds", "seconds a bucket took to render", ["device"],
                                 buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)),
            "failures": Counter("farm_bucket_failures", "buckets whose render failed", ["device"]),
            "fetched": Counter("farm_asset_bytes_fetched", "bytes of scene files fetched from Redis"),
            "hits": Counter("farm_asset_cache_hits", "scene files found in the worker's cache"),
        }
    return _metrics


def bucket_rendered(device: str, seconds: float, samples: int) -> None:
    metrics = _open()
    if metrics:
        metrics["samples"].labels(device).inc(samples)
        metrics["buckets"].labels(device).observe(seconds)


def bucket_failed(device: str) -> None:
    metrics = _open()
    if metrics:
        metrics["failures"].labels(device).inc()


def assets_fetched(fetched_bytes: int, cache_hits: int) -> None:
    metrics = _open()
    if metrics:
        metrics["fetched"].inc(fetched_bytes)
        metrics["hits"].inc(cache_hits)


class QueueCollector:
    """On each scrape: the buckets each running job has sent and not yet got back (queued or
    rendering), and the length of each of the farm's queue lists."""

    def __init__(self, redis_factory):
        self._redis_factory = redis_factory
        self._redis = None

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        from farm.protocol.pools import pool_queue
        from farm.protocol.queue import queue_lists
        from farm.protocol.record import JobRecord
        from farm.protocol.tilestore import TileStore

        if self._redis is None:
            self._redis = self._redis_factory()
        redis = self._redis
        jobs = GaugeMetricFamily("farm_job_buckets_waiting", "buckets a running job has sent and not yet got back",
                                 labels=["job"])
        lists = GaugeMetricFamily("farm_queue_messages", "messages waiting in a queue list", labels=["queue"])
        try:
            for job_id in JobRecord.ids(redis):
                running, sent = JobRecord(redis, job_id).running_and_sent()
                if not running or sent is None:
                    continue
                jobs.add_metric([job_id], max(0, sent - TileStore(redis, job_id, None).count_now()))
            # `farm`'s lists, and those of the one-tag pools of this worker's tags and of both device kinds
            # (farm.protocol.pools; FARM_WORKER_TAGS, set by farm.worker.lifecycle)
            tags = {"cpu", "gpu", *filter(None, os.environ.get("FARM_WORKER_TAGS", "").split(","))}
            names = queue_lists() + [name for tag in sorted(tags) for name in queue_lists(pool_queue((tag,)))]
            with redis.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.llen(name)
                for name, length in zip(names, pipe.execute()):
                    lists.add_metric([name], length)
        except Exception as exc:  # a scrape during a broker outage: say so, serve the rest
            log.warning("queue metrics not read: %s", exc)
        yield jobs
        yield lists
