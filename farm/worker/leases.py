"""The thread of a render process that keeps the lease of its bucket alive while the
kernel renders it (a lease not renewed for LEASE_TIMEOUT is a lost delivery)."""

from __future__ import annotations

import logging
import threading
import time

from farm import defaults
from farm.protocol.jobs import Job
from farm.protocol.leases import Lease

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews the lease of the bucket being rendered every quarter of LEASE_TIMEOUT, from
    one thread per render process (started with the first bucket, not one per bucket)."""

    def __init__(self):
        self._lock = threading.Lock()  # held while a renewal runs: drop() waits for it
        self._held: tuple[Job, Lease] | None = None
        self._thread: threading.Thread | None = None

    def keep(self, job: Job, lease: Lease) -> None:
        with self._lock:
            self._held = (job, lease)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True, name="farm-leases")
            self._thread.start()

    def drop(self) -> None:
        """Stop renewing; once this returns, no renewal of the dropped lease is under way."""
        with self._lock:
            self._held = None

    def _run(self) -> None:
        while True:
            time.sleep(defaults.LEASE_TIMEOUT / 4)
            with self._lock:
                if self._held is None:
                    continue
                job, lease = self._held
                try:
                    self._held = (job, job.deliveries.renew(lease))
                except Exception as exc:  # the broker is away; the next beat tries again
                    log.warning("lease of bucket %d not renewed: %s", lease.bucket, exc)
