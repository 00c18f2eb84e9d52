"""A job's tiles, `farm:job:<id>:tiles` (bucket -> encoded tile, farm.protocol.tiles):
workers store them, first write wins, and announce each in the job's events; the client
reads them, and deletes one it finds invalid so its bucket can be rendered again."""

from __future__ import annotations

from typing import Callable

import numpy as np

from farm.exceptions import InvalidTile, JobVanished
from farm.protocol.events import EventLog, TileEvent
from farm.protocol.record import JobPart, JobRecord
from farm.protocol.stats import JobStats
from farm.protocol.tiles import TileHeader, encode_tile

# Store a tile only if none is stored yet (first write wins), then announce it; a later
# copy is only counted. Refuses (-1) once the job's keys are gone (expired or deleted).
_STORE_TILE = """
local ttl = redis.call('TTL', KEYS[4])
if ttl < 0 then return -1 end
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('RPUSH', KEYS[2], ARGV[3])
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
  return 1
end
redis.call('HINCRBY', KEYS[3], 'duplicates', 1)
redis.call('EXPIRE', KEYS[3], ttl)
return 0
"""

# Delete a tile only if it is still the one that was judged invalid.
_DISCARD_TILE = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
"""

# decode(index, payload) -> (header, pixels), or InvalidTile
Decoder = Callable[[int, bytes], tuple[TileHeader, np.ndarray]]


class TileStore(JobPart):
    """The hash `farm:job:<id>:tiles`."""

    PART = "tiles"
    READ_BATCH = 512  # tiles read in one round trip

    def __init__(self, redis, job_id: str, stats: JobStats | None):
        super().__init__(redis, job_id)
        self.stats = stats  # where duplicates and invalid tiles are counted (None: a reader that only counts)

    def store(self, header: TileHeader, tile: np.ndarray, key: bytes, also=None) -> bool:
        """Store the tile, tagged with the farm's secret `key`, unless one is already stored;
        True if this one was first. `also(pipe)` adds commands to the round trip."""
        keys = [self.key, EventLog.key_for(self.job_id), self.stats.key, JobRecord.key_for(self.job_id)]
        event = TileEvent(header.bucket, header.worker)
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.eval(_STORE_TILE, len(keys), *keys, str(header.bucket), encode_tile(header, tile, key), event.to_json())
            if also is not None:
                also(pipe)
            stored = pipe.execute()[0]
        if stored == -1:
            raise JobVanished(f"job {self.job_id} no longer exists; tile of bucket {header.bucket} dropped")
        return stored == 1

    def has(self, index: int) -> bool:
        return bool(self.redis.hexists(self.key, str(index)))

    def read_has(self, pipe, index: int) -> None:
        """Queue on `pipe` whether bucket `index` has a tile."""
        pipe.hexists(self.key, str(index))

    def count(self, pipe) -> None:
        """Queue on `pipe` how many tiles are stored."""
        pipe.hlen(self.key)

    def count_now(self) -> int:
        return self.redis.hlen(self.key)

    def stored(self) -> set[int]:
        """Indexes of the buckets that have a tile in Redis."""
        return {int(k) for k in self.redis.hkeys(self.key) if k.isdigit()}

    def read(self, indexes: list[int], decode: Decoder) -> dict[int, tuple[TileHeader, np.ndarray] | InvalidTile | None]:
        """The stored tiles of `indexes`, read in one round trip and decoded: each a (header,
        pixels), None where there is none, or the InvalidTile saying what is wrong with it
        (that tile is deleted, so its bucket can be rendered again)."""
        found = {}
        for index, payload in zip(indexes, self.redis.hmget(self.key, [str(i) for i in indexes]) if indexes else []):
            if payload is None:
                found[index] = None
                continue
            try:
                found[index] = decode(index, payload)
            except InvalidTile as exc:
                self.redis.eval(_DISCARD_TILE, 1, self.key, str(index), payload)
                self.stats.count("invalid")
                found[index] = exc
        return found
