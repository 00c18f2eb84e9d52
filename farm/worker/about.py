"""What a render worker says of itself: its kernel identity (farm.protocol.identity), its
device, driver, farm version and tags, for `farm check`, the manager's workers page and the
clients' checks; and how it stops emptying its queues (every one of its pools')."""

from __future__ import annotations

import logging
import os

from farm.protocol import registry
from farm.protocol.broker import client

log = logging.getLogger(__name__)


def identity(opened) -> str:
    """The kernel identity of this worker on the device `opened`."""
    from farm.worker.render import kernel_identity

    return kernel_identity(opened)


def describe(hostname: str, opened) -> None:
    """What the worker renders with (its device, kernel identity, driver, farm's version and
    its tags), for `farm check`, the manager's workers page and the clients' checks."""
    from farm.app import app

    try:
        registry.describe(client(app.conf.broker_url, patient=False), hostname,
                          {"device": str(opened), "kernel": identity(opened), "farm": version(),
                           "driver": str(getattr(opened.device, "driver_version", "")),
                           "tags": os.environ.get("FARM_WORKER_TAGS", "")})
    except Exception as error:
        log.warning("worker registry not updated: %s", error)


def join_kind_pools(app, hostname: str, opened) -> None:
    """The device's kind (`cpu`, `gpu`) is a tag by itself: the worker, whose main process
    knew only FARM_TAGS (it opens no OpenCL before it forks), empties the queues of the
    sets of tags with it too, from now on."""
    from farm.protocol.pools import MAX_TAGS, worker_queues

    before = tuple(filter(None, os.environ.get("FARM_WORKER_TAGS", "").split(",")))
    kind = opened.kind.lower()
    if kind not in ("cpu", "gpu") or kind in before or len(before) >= MAX_TAGS:
        return
    tags = tuple(sorted({*before, kind}))
    os.environ["FARM_WORKER_TAGS"] = ",".join(tags)
    try:
        for name in sorted(set(worker_queues(tags)) - set(worker_queues(before))):
            app.control.add_consumer(name, destination=[hostname])
    except Exception as error:  # the broker away: the worker renders the pools of its FARM_TAGS only
        log.warning("worker %s: cannot join the pools of tag %s: %s", hostname, kind, error)


def stop_consuming(app, hostname: str) -> None:
    """The worker takes no more buckets: it stops emptying each of its queues."""
    from farm.protocol.pools import worker_queues

    tags = tuple(filter(None, os.environ.get("FARM_WORKER_TAGS", "").split(",")))
    for name in worker_queues(tags):
        app.control.cancel_consumer(name, destination=[hostname])


def version() -> str:
    """farm's version, as its package metadata says."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("farm")
    except PackageNotFoundError:
        return "(not installed)"
