"""A job's tiles, `farm:job:<id>:tiles` (bucket -> encoded tile, farm.protocol.tiles):
workers store them, first write wins, and announce each in the job's events; the client
reads them, and deletes one it finds invalid so its bucket can be rendered again."""

from __future__ import annotations

from typing import Callable

import numpy as np

from farm import defaults
from farm.exceptions import InvalidTile, JobVanished
from farm.protocol.deliveries import PLACEHOLDER, WORKER_RULES
from farm.protocol.events import EventLog, TileEvent
from farm.protocol.record import JobPart, JobRecord
from farm.protocol.scripts import Script, in_one_trip
from farm.protocol.stats import JobStats
from farm.protocol.tiles import TileHeader, encode_tile

# Tiles of at most this many bytes travel in their event too (the client reads them from
# there, not from the hash): a bucket of 32x32 pixels without AOVs, about 12 KiB; larger
# tiles are few per second, and read from the hash.
INLINE = 16 * 1024
BACKLOG = 256  # events waiting past which a tile no longer comes in its event (4 MiB of them)

# Store a tile only if none is stored yet (first write wins), then announce it; a later
# copy is only counted. Ends the delivery's lease (ARGV[4], "" for none) in the same step.
# Refuses (-1) once the job's keys are gone (expired, deleted, a round forgotten): a lease
# still there says they are not (one is written, and put back, only while the job's record
# exists: Deliveries.renew), so only a delivery without one asks the record. The event is
# ARGV[3] (JSON), or the tile itself where ARGV[7] says so (INLINE: the client needs no
# second read), but past BACKLOG events waiting (nobody reads them) the JSON again, so an
# uncollected job holds its tiles twice only so far. Expiry: the tiles hash has the job's
# from its start (PLACEHOLDER; a job of an older client, ARGV[6]: with each tile), the
# event list gets it whenever a push starts it anew (the client empties it as it reads).
_STORE = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  local event = ARGV[3]
  if ARGV[7] ~= '' then event = ARGV[2] end
  local waiting = redis.call('RPUSH', KEYS[2], event)
  if waiting == 1 or ARGV[6] ~= '' then
    local ttl = redis.call('TTL', KEYS[4])
    if ttl > 0 then
      redis.call('EXPIRE', KEYS[2], ttl)
      if ARGV[6] ~= '' then redis.call('EXPIRE', KEYS[1], ttl) end
    end
  end
  if ARGV[7] ~= '' and waiting > tonumber(ARGV[5]) then redis.call('LSET', KEYS[2], -1, ARGV[3]) end
  return 1
end
local ttl = redis.call('TTL', KEYS[4])
if ttl > 0 then
  redis.call('HINCRBY', KEYS[3], 'duplicates', 1)
  redis.call('EXPIRE', KEYS[3], ttl)
end
return 0
"""
_STORE_TILE = Script("""
local alive = ARGV[4] ~= '' and redis.call('HDEL', KEYS[5], ARGV[4]) == 1
if not alive and redis.call('EXISTS', KEYS[4]) == 0 then return -1 end
""" + _STORE)

# A quick delivery's tile (farm.worker.quick: a bucket rendered before it was taken, in
# the one round trip that takes and stores it), stored as _STORE_TILE stores, after the
# checks Deliveries.take makes first, on what can change while a job runs: the job exists
# (else -1) and runs (else -2); this worker (ARGV[8]) is not on its blocklist (KEYS[7]; else
# -3); its kernel identity (ARGV[9]) may render the job, which the first pins to it (else
# -4). Nothing is written where one fails. The delivery is counted in its attempts (KEYS[6]).
_STORE_QUICK = Script(WORKER_RULES + """
local job = redis.call('HMGET', KEYS[4], 'job_id', 'state', 'blocks', 'kernel', 'mixed', 'pin')
if not job[1] then return -1 end
if (job[2] or '') ~= '' then return -2 end
if blocked(job[3], ARGV[8]) then return -3 end
local may = may_render(job[4], job[5], job[6], ARGV[9] or '')
if may == 0 then return -4 end
if may == 2 then redis.call('HSET', KEYS[4], 'pin', ARGV[9]) end
redis.call('HINCRBY', KEYS[6], ARGV[1], 1)
""" + _STORE)
QUICK_ENDED, QUICK_BLOCKED, QUICK_NOT_MINE = -2, -3, -4

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
        self.lasting = True  # the hash exists from the job's start with its expiry (`create`); False: a job of an older client

    def create(self, pipe) -> None:
        """Queue on `pipe` the job's tiles hash, holding only PLACEHOLDER (no bucket's
        index), living JOB_TTL: never emptied, it keeps the job's expiry."""
        pipe.hset(self.key, PLACEHOLDER, "")
        pipe.expire(self.key, defaults.JOB_TTL)

    def store(self, header: TileHeader, tile: np.ndarray, key: bytes, lease: str = "", also=None) -> bool:
        """Store the tile, tagged with the farm's secret `key`, unless one is already stored,
        and end the delivery whose lease is named `lease`; True if this tile was first.
        `also(pipe)` adds commands to the round trip."""
        return self._store(_STORE_TILE, header, tile, key, lease, also) == 1

    def store_quick(self, header: TileHeader, tile: np.ndarray, key: bytes, kernel: str, also=None) -> int:
        """Store the tile of a quick delivery (see _STORE_QUICK) as `store` does, by a worker
        of kernel identity `kernel` (farm.protocol.identity): 1 if this tile was first, 0 if
        not, QUICK_ENDED, QUICK_BLOCKED or QUICK_NOT_MINE where nothing was stored."""
        return self._store(_STORE_QUICK, header, tile, key, "", also, header.worker, kernel)

    def _store(self, script: Script, header: TileHeader, tile: np.ndarray, key: bytes, lease: str, also,
               *extra: str) -> int:
        keys = [self.key, EventLog.key_for(self.job_id), self.stats.key, JobRecord.key_for(self.job_id),
                *(JobRecord.part_key(self.job_id, part) for part in ("leases", "attempts", "blocked"))]
        payload = encode_tile(header, tile, key)
        inline = self.lasting and len(payload) <= INLINE  # a job of an older client: its client reads JSON events only
        event = TileEvent(header.bucket, header.worker).to_json()

        def build(pipe) -> None:
            script.queue(pipe, keys, str(header.bucket), payload, event, lease, BACKLOG,
                         "" if self.lasting else "1", "1" if inline else "", *extra)
            if also is not None:
                also(pipe)

        stored = in_one_trip(self.redis, [script], build)[0]
        if stored == -1:
            raise JobVanished(f"job {self.job_id} no longer exists; tile of bucket {header.bucket} dropped")
        return stored

    def has(self, index: int) -> bool:
        return bool(self.redis.hexists(self.key, str(index)))

    def read_has(self, pipe, index: int) -> None:
        """Queue on `pipe` whether bucket `index` has a tile."""
        pipe.hexists(self.key, str(index))

    def count(self, pipe) -> None:
        """Queue on `pipe` how many entries the hash has: `stored_count` of it is how many tiles."""
        pipe.hlen(self.key)

    def stored_count(self, entries: int) -> int:
        """How many tiles a hash of `entries` entries holds."""
        return max(0, entries - 1) if self.lasting else entries

    def count_now(self) -> int:
        return self.stored_count(self.redis.hlen(self.key))

    def stored(self) -> set[int]:
        """Indexes of the buckets that have a tile in Redis."""
        return {int(k) for k in self.redis.hkeys(self.key) if k.isdigit()}

    def read(self, indexes: list[int], decode: Decoder, carried: dict[int, bytes] | None = None
             ) -> dict[int, tuple[TileHeader, np.ndarray] | InvalidTile | None]:
        """The stored tiles of `indexes`, read in one round trip (but for those `carried`
        in their events: the stored tile itself, as _STORE_TILE pushed it) and decoded: each
        a (header, pixels), None where there is none, or the InvalidTile saying what is
        wrong with it (that tile is deleted, so its bucket can be rendered again)."""
        carried = carried or {}
        read = [index for index in indexes if index not in carried]
        payloads = dict(zip(read, self.redis.hmget(self.key, [str(i) for i in read]) if read else []))
        found = {}
        for index in indexes:
            payload = carried.get(index, payloads.get(index))
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
