"""A worker's main process: its entry in the registry (started, ready, every Celery
heartbeat, leaving), its metrics server, and the hand-back of running buckets when it is
asked to stop. Connected to Celery's signals on import (farm/tasks.py imports it)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys

from celery.signals import celeryd_after_setup, heartbeat_sent, worker_init, worker_ready, worker_shutting_down

from farm import defaults, parts
from farm.exceptions import FarmError
from farm.protocol import registry, secret
from farm.protocol.broker import client
from farm.worker import metrics

log = logging.getLogger(__name__)

_registry_client = None


def _registry(sender) -> object | None:
    global _registry_client
    if _registry_client is None:
        _registry_client = client(sender.app.conf.broker_url, patient=False, socket_timeout=1.0)
    return _registry_client


@worker_init.connect
def _start(sender, **_):
    """A worker outlives a broker outage: it reconnects for as long as it takes. A
    (re)started worker is healthy until it proves otherwise; this runs before its render
    processes start, so one of them that finds no device marks it bad after this.
    A bad setting stops it here, a line for each."""
    try:
        parts.require_worker("a render worker")
        warnings = defaults.check()
        from farm.protocol.pools import parse_tags

        parse_tags(defaults.TAGS)  # a bad tag stops the worker here, in one line
        warnings.append(secret.guard(sender.app.conf.broker_url))
    except FarmError as exc:  # a bad setting (a line each), or no secret for a broker off the loopback
        for line in str(exc).splitlines():
            print(f"worker: error: {line}", file=sys.stderr)
        raise SystemExit(2) from None  # Celery's signal dispatch passes on only a BaseException
    for warning in filter(None, warnings):
        log.warning("worker %s: %s", sender.hostname, warning)
    sender.app.conf.broker_connection_max_retries = None
    try:
        registry.clear_bad(_registry(sender), sender.hostname)
    except Exception as exc:
        log.warning("worker registry not updated: %s", exc)
    try:
        metrics.serve(sender.hostname, lambda: client(sender.app.conf.broker_url, patient=False, socket_timeout=2.0))
    except OSError as exc:  # the port taken: the worker renders all the same
        log.error("worker %s: metrics not served on port %d: %s", sender.hostname, defaults.METRICS_PORT, exc)


@celeryd_after_setup.connect
def _join_pools(sender, instance, **_):
    """The worker empties the queue of each set of its FARM_TAGS besides `farm`
    (farm.protocol.pools); its render process adds its device kind's (farm.worker.about)."""
    from farm.protocol.pools import parse_tags, worker_queues

    tags = parse_tags(defaults.TAGS)
    os.environ["FARM_WORKER_TAGS"] = ",".join(tags)
    for name in worker_queues(tags)[1:]:
        instance.app.amqp.queues.select_add(name)


@worker_ready.connect
def _announce(sender, **_):
    try:
        registry.beat(_registry(sender), sender.hostname, busy=False)
    except Exception as exc:
        log.warning("worker registry not updated: %s", exc)


@heartbeat_sent.connect
def _beat(sender, **_):
    """Every Celery heartbeat (2 s): this worker is alive, busy or idle."""
    # internal module: the main process's own running requests; inspect().active() is a broadcast to itself
    from celery.worker.state import active_requests

    try:
        # the sender is the Heart: the signal sends no app or hostname, its (internal) eventer has both
        redis = _registry(sender.eventer)
        registry.beat(redis, sender.eventer.hostname, busy=bool(active_requests))
        redis.expire(registry.key_for(sender.eventer.hostname, "about"), defaults.JOB_TTL)  # what it said lives on
        registry.check_clock(redis)
    except Exception as exc:  # the broker is away; Celery reconnects, the next beat tells
        log.debug("worker registry not updated: %s", exc)


@worker_shutting_down.connect
def _leave(sender, **_):
    """A worker asked to stop tells its render processes to hand their buckets back at the
    next pass (rather than finish them, which could take minutes), and leaves the registry."""
    from celery.worker.state import active_requests  # internal, as in _beat

    for request in list(active_requests):
        # undocumented: revoke(terminate=True) would mark the task revoked, so the requeued bucket is dropped
        if request.worker_pid:
            with contextlib.suppress(OSError):
                os.kill(request.worker_pid, signal.SIGTERM)
    try:
        if _registry_client is not None:
            registry.forget(_registry_client, sender)
    except Exception:
        pass
