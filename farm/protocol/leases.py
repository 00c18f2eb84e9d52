"""Leases: one per delivery of a bucket being rendered, in the job's `leases` hash, kept
alive by the worker's heartbeats. A lease past its time without a renewal is a lost
delivery (a dead worker or render process), and its bucket is sent again."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass


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
        return json.dumps(vars(self), separators=(",", ":"))  # its fields: flat, no deep copy


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


def process_gone(lease: Lease) -> bool | None:
    """Whether the lease's render process has ended: True or False when it ran on this
    machine, None when it ran elsewhere (or cannot be told). A process that exited but is
    not yet reaped by its parent (a zombie) has ended: Celery sends its bucket again as
    soon as it sees the process go, which may be before it reaps it."""
    return process_ended(lease.pid) if lease.host == socket.gethostname() else None


def process_ended(pid: int) -> bool | None:
    """Whether process `pid` of this machine has ended (a zombie counts); None where that
    cannot be told: another user's process, or no /proc."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process: alive, but not ours to look at
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):  # no /proc (not Linux), or gone meanwhile
        return None
