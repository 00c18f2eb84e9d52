"""Leases: one per delivery of a bucket being rendered, in the job's `leases` hash, kept
alive by the worker's heartbeats. A lease past its time without a renewal is a lost
delivery (a dead worker or render process), and its bucket is sent again."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Lease:
    """One delivery of a bucket being rendered, kept alive by its worker's heartbeats."""

    bucket: int
    attempt: int  # which delivery of the bucket this is (1 = first)
    worker: str  # Celery hostname
    host: str  # machine name
    pid: int  # render process
    device: str
    started: float  # Redis clock
    until: float  # Redis clock; past it without a renewal, the delivery is lost
    copy: bool = False  # a deliberate copy of a slow bucket

    @property
    def name(self) -> str:
        return f"{self.bucket}.{self.attempt}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


def parse_leases(raw_values) -> list[Lease]:
    """The leases among raw hash values; one that is not a lease (not written by a farm
    worker) is skipped."""
    found = []
    for raw in raw_values:
        try:
            found.append(Lease(**json.loads(raw)))
        except (TypeError, ValueError):
            continue
    return found
