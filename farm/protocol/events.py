"""Events: what a worker tells the client through the job's `events` list, which the
client blocks on."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from enum import StrEnum

from farm import defaults
from farm.protocol.record import JobPart

log = logging.getLogger(__name__)


class EventKind(StrEnum):
    TILE = "tile"  # a tile was stored
    ERROR = "error"  # a delivery failed; the bucket was sent again
    FATAL = "fatal"  # the job failed
    LOST = "lost"  # a delivery's render process died; the bucket renders again
    BAD_WORKER = "bad-worker"  # a worker stopped taking buckets
    BLOCKED = "blocked"  # a worker takes no more of this job's buckets (the job's blocklist)


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


class EventLog(JobPart):
    """The job's list `farm:job:<id>:events`: workers push, the job's client pops."""

    PART = "events"
    READ_BATCH = 512  # events popped in one round trip

    def push(self, event: TileEvent) -> None:
        with self.redis.pipeline() as pipe:
            pipe.rpush(self.key, event.to_json())
            pipe.expire(self.key, defaults.JOB_TTL)
            pipe.execute()

    def waiting(self, pipe) -> None:
        """Queue on `pipe` how many events wait."""
        pipe.llen(self.key)

    def next(self, timeout: float, limit: int = READ_BATCH) -> list[TileEvent]:
        """The events waiting, up to `limit`, in one round trip; if there are none, block up
        to `timeout` seconds for the next one."""
        raw = self.redis.lpop(self.key, limit) or []
        if not raw:
            item = self.redis.blpop([self.key], timeout=max(timeout, 0.01))
            raw = [item[1]] if item else []
        return self.parse(raw)

    def parse(self, raw: list[bytes]) -> list[TileEvent]:
        events = []
        for text in raw:
            try:
                events.append(TileEvent.from_json(text))
            except (TypeError, ValueError) as exc:  # not something a farm worker wrote
                log.warning("job %s: malformed event ignored: %s", self.job_id, exc)
        return events
