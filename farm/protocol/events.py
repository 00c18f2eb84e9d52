"""Events: what a worker tells the client through the job's `events` list, which the
client blocks on."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum


class EventKind(StrEnum):
    TILE = "tile"  # a tile was stored
    ERROR = "error"  # a delivery failed; the bucket was sent again
    FATAL = "fatal"  # the job failed
    LOST = "lost"  # a delivery's render process died; the bucket renders again
    BAD_WORKER = "bad-worker"  # a worker stopped taking buckets


@dataclass(frozen=True)
class TileEvent:
    """What a worker tells the client through the job's event list."""

    bucket: int  # bucket index in the job's row-major tiling
    worker: str  # Celery hostname of the worker, e.g. local1@host
    kind: str = EventKind.TILE  # one of EventKind (a string on the wire)
    error: str | None = None  # what went wrong, for every kind but tile

    def to_json(self) -> str:
        return json.dumps(vars(self), separators=(",", ":"))  # its fields: flat, no deep copy

    @classmethod
    def from_json(cls, text: bytes | str) -> TileEvent:
        return cls(**json.loads(text))
