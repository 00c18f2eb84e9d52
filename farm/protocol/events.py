"""Events: what a worker tells the client through the job's `events` list, which the
client blocks on."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from enum import StrEnum

from redis.exceptions import NoPermissionError, ResponseError

from farm import defaults
from farm.protocol.record import JobPart
from farm.protocol.tiles import TILE_MAGIC, tile_origin

log = logging.getLogger(__name__)

_blmpop = True  # the server lets farm BLMPOP (Redis 7): else LPOP, and BLPOP when there was none
_NO_BLMPOP = object()


def pop(redis, keys: list[str], wait: float, limit: int) -> list[tuple[str, list[bytes]]]:
    """The events waiting in each of the lists `keys`, up to `limit` of each; where none
    waits and `wait` > 0, those of the first list to get one within `wait` seconds, up to
    `limit`. One command per call where one list is read (BLMPOP, which returns at once
    with what waits, and blocks only when nothing does), else one round trip, and one more
    to wait. Returns (key, raw events) of the lists that had some."""
    if wait > 0 and len(keys) == 1:
        found = _block(redis, keys, wait, limit)
        if found is not _NO_BLMPOP:
            return found
    with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.lpop(key, limit)
        popped = pipe.execute()
    found = [(key, raw) for key, raw in zip(keys, popped) if raw]
    if found or wait <= 0:
        return found
    found = _block(redis, keys, wait, limit)
    if found is not _NO_BLMPOP:
        return found
    item = redis.blpop(keys, timeout=max(wait, 0.01))
    return [(_text(item[0]), [item[1]])] if item else []


def _block(redis, keys: list[str], wait: float, limit: int):
    """BLMPOP's (key, events) of the first of `keys` to have some within `wait` seconds,
    or _NO_BLMPOP where the server does not let farm run it (a Redis before 7, or an ACL
    written for farm before it used BLMPOP: docs/deploy.md), from then on."""
    global _blmpop
    if not _blmpop:
        return _NO_BLMPOP
    try:
        got = redis.blmpop(max(wait, 0.01), len(keys), *keys, direction="LEFT", count=limit)
    except NoPermissionError:
        log.warning("this Redis user may not run BLMPOP (an ACL from before farm used it: docs/deploy.md "
                    "lists the rules); reading events with LPOP and BLPOP")
    except ResponseError as exc:
        if "unknown command" not in str(exc).lower():
            raise
    else:
        return [(_text(got[0]), got[1])] if got else []
    _blmpop = False
    return _NO_BLMPOP


def _text(key) -> str:
    return key.decode() if isinstance(key, bytes) else key


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
    tile: bytes | None = None  # the stored tile itself, where it came with its event (tilestore.INLINE)
    head: dict | None = None  # that tile's header fields, as read once (tiles.tile_origin); never sent

    def to_json(self) -> str:
        fields = {"bucket": self.bucket, "worker": self.worker, "kind": self.kind, "error": self.error}
        return json.dumps(fields, separators=(",", ":"))

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
        """The events waiting, up to `limit`; if there are none, the first to come within
        `timeout` seconds, and those with it (`pop`)."""
        return self.parse([raw for _, found in pop(self.redis, [self.key], timeout, limit) for raw in found])

    def parse(self, raw: list[bytes]) -> list[TileEvent]:
        """The events of `raw` (JSON, or a tile: a tile event carrying its tile); what is
        neither is logged and left out."""
        events = []
        for text in raw:
            if text[:len(TILE_MAGIC)] == TILE_MAGIC:
                origin = tile_origin(text)
                if origin is not None:
                    bucket, worker, head = origin
                    events.append(TileEvent(bucket, worker, tile=text, head=head))
                    continue
            try:
                events.append(TileEvent.from_json(text))
            except (TypeError, ValueError) as exc:  # not something a farm worker wrote
                log.warning("job %s: malformed event ignored: %s", self.job_id, exc)
        return events
