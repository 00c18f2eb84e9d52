"""A job's deliveries: each bucket's leases (running deliveries, kept alive by their
worker), attempts (deliveries started), crashes (deliveries whose render process died),
failures (deliveries that raised) and last error. Every key of them, and every operation
on them, is here; what to do about a delivery gone wrong is farm.protocol.recovery's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from farm import defaults
from farm.protocol import registry
from farm.protocol.broker import server_time
from farm.protocol.leases import Lease, parse_leases
from farm.protocol.record import JobRecord
from farm.protocol.scripts import Script, in_one_trip
from farm.protocol.stats import bump

# Both scripts below take KEYS: the job, and its tiles, leases, crashes, failures and
# attempts; ARGV: the bucket, JOB_TTL, LEASE_TIMEOUT, and the lease's draft JSON (a Lease
# without its attempt and times). This part counts a delivery of the bucket and writes its
# lease at Redis's clock, lasting LEASE_TIMEOUT (_WRITE_LEASE: the lease itself, as _TAKE
# writes it too).
_WRITE_LEASE = """
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
local lease = cjson.decode(ARGV[4])
lease['attempt'] = attempt
lease['started'] = now
lease['until'] = now + tonumber(ARGV[3])
redis.call('HSET', KEYS[3], ARGV[1] .. '.' .. attempt, cjson.encode(lease))
"""
_START_DELIVERY = """
local attempt = redis.call('HINCRBY', KEYS[6], ARGV[1], 1)
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then ttl = tonumber(ARGV[2]) end
redis.call('EXPIRE', KEYS[6], ttl)
""" + _WRITE_LEASE + """
redis.call('EXPIRE', KEYS[3], ARGV[2])
"""

# Whether a worker may render a job, for the scripts that start a delivery (_TAKE here, and
# tilestore._STORE_QUICK, which takes and stores a quick one): on the job's blocklist
# (KEYS[7]) where the job's `blocks` says it has one; and its kernel identity `mine`
# (farm.protocol.identity; "": any) against the job's kernel digest, `mixed` and `pin`:
# 0 no, 1 yes, 2 yes and the job is pinned to it (the first worker to start one does).
WORKER_RULES = """
local function blocked(blocks, worker)
  return (blocks or '') ~= '' and redis.call('HEXISTS', KEYS[7], 'why:' .. worker) == 1
end
local function may_render(kernel, mixed, pin, mine)
  if mine == '' then return 1 end
  if (kernel or '') ~= '' and kernel ~= string.match(mine, '^[^.]*') then return 0 end
  if (mixed or '') ~= '' then return 1 end
  if (pin or '') == '' then return 2 end
  if pin == mine then return 1 end
  return 0
end
"""

# Start a delivery, what a worker does once recovery says render (Deliveries.begin).
# Returns the attempt and Redis's TIME.
_BEGIN = Script(_START_DELIVERY + "return {attempt, time[1], time[2]}")

# A worker's first look at a bucket, and its start when the bucket is plainly fresh: the
# job exists and runs, the index is one of its buckets (for a spare part, its whole bucket
# has no tile), the worker is not on the job's blocklist and may render it (kernel, pin),
# and this is the bucket's first delivery. A first delivery needs no further look: a
# bucket gets a lease, a crash, a failure or a tile only from a delivery, each counted in
# `attempts` first. Then it writes the lease and returns {1, the job's hash, attempt,
# TIME}; else it changes nothing (a count it made is taken back) and returns {0}, and the
# worker looks again the long way (Deliveries.look, recovery, Deliveries.begin).
# The lean path of issue 31: 5 Redis calls (the EVAL, HGETALL, HINCRBY, TIME, HSET) where
# it was 13: the job's `leases` and `attempts` hashes keep their own expiry (created with
# it, never emptied: PLACEHOLDER), and `blocks` in the job's hash says whether a blocklist
# is worth reading.
_TAKE = Script(WORKER_RULES + """
local job = redis.call('HGETALL', KEYS[1])
local fields = {}
for i = 1, #job, 2 do fields[job[i]] = job[i + 1] end
if not fields['job_id'] or (fields['state'] or '') ~= '' then return {0} end
local size = tonumber(fields['bucket_size']) or 0
local bucket = tonumber(ARGV[1])
local count = size >= 1 and math.ceil((tonumber(fields['width']) or 0) / size)
                          * math.ceil((tonumber(fields['height']) or 0) / size) or 0
local base = count + (tonumber(fields['tail']) or 0) * (tonumber(fields['split']) or 0)  -- Units.spare_base
local spares = tonumber(fields['spares']) or 0
if size < 1 or bucket >= base + count * spares then return {0} end
if spares > 0 and bucket >= base
   and redis.call('HEXISTS', KEYS[2], tostring(math.floor((bucket - base) / spares))) == 1 then return {0} end
-- the lease's JSON decoded for its worker only where the job has a blocklist
if (fields['blocks'] or '') ~= '' and blocked(fields['blocks'], cjson.decode(ARGV[4])['worker']) then return {0} end
local mine = ARGV[5] or ''
local may = may_render(fields['kernel'], fields['mixed'], fields['pin'], mine)
if may == 0 then return {0} end
local attempt = redis.call('HINCRBY', KEYS[6], ARGV[1], 1)
if attempt ~= 1 then
  redis.call('HINCRBY', KEYS[6], ARGV[1], -1)
  return {0}
end
local lasting = (fields['parts'] or '') ~= ''  -- its parts keep their expiry (a job of an older client: not)
""" + _WRITE_LEASE + """
if not lasting then
  redis.call('EXPIRE', KEYS[3], ARGV[2])
  redis.call('EXPIRE', KEYS[6], ARGV[2])
end
if may == 2 then redis.call('HSET', KEYS[1], 'pin', mine) end
return {1, job, attempt, time[1], time[2]}""")

# The field a job's `leases` and `attempts` hashes are created with (Deliveries.create),
# so that they exist from the job's start with its expiry and never empty (an emptied
# hash is deleted, and a new one would have none): no lease and no attempt count.
PLACEHOLDER = "-"

# Renew a lease (KEYS[1] the leases, KEYS[2] the job's record; ARGV the lease's name and
# JSON) while the job's record exists, at its expiry; 1 where the lease was put back, -1
# where the job is gone.
_RENEW = Script("""
local ttl = redis.call('TTL', KEYS[2])
if ttl < 0 then return -1 end
local added = redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ttl)
return added
""")

PARTS = ("leases", "attempts", "crashes", "failures", "errors")


@dataclass(frozen=True)
class BucketView:
    """What a job's record says of one bucket at one moment (see `Deliveries.look`)."""

    stored: bool  # a tile of it is stored
    leases: tuple[Lease, ...]  # running deliveries of any bucket of the job
    crashes: int  # deliveries of it whose render process died
    failures: int  # deliveries of it that raised
    last_error: str
    now: float  # Redis clock
    stalled: bool = False  # Redis just came back from a stall: lapsed leases say nothing (registry.check_clock)

    @classmethod
    def from_replies(cls, stored, leases, crashes, failures, last_error, time_, stalled) -> BucketView:
        return cls(bool(stored), tuple(parse_leases(leases)), int(crashes or 0), int(failures or 0),
                   (last_error or b"").decode(), time_[0] + time_[1] / 1e6, bool(stalled))


class Deliveries:
    """The hashes `farm:job:<id>:{leases,attempts,crashes,failures,errors}`."""

    def __init__(self, redis, job_id: str, tiles_key: str):
        self.redis = redis
        self.job_id = job_id
        self.tiles_key = tiles_key  # read, never written, to tell a stored bucket (TileStore's)
        self.leases_key, self.attempts_key, self.crashes_key, self.failures_key, self.errors_key = \
            self.keys_for(job_id)

    @staticmethod
    def keys_for(job_id: str) -> list[str]:
        return [JobRecord.part_key(job_id, part) for part in PARTS]

    def create(self, pipe) -> None:
        """Queue on `pipe` the job's `leases` and `attempts` hashes, each holding only
        PLACEHOLDER, living JOB_TTL (the job's expiry, which its client keeps pushing ahead)."""
        for key in (self.leases_key, self.attempts_key):
            pipe.hset(key, PLACEHOLDER, "")
            pipe.expire(key, defaults.JOB_TTL)

    def _script_keys(self) -> list[str]:
        """The KEYS of _BEGIN and _TAKE."""
        return [JobRecord.key_for(self.job_id), self.tiles_key, self.leases_key, self.crashes_key,
                self.failures_key, self.attempts_key, JobRecord.part_key(self.job_id, "blocked")]

    def read_bucket(self, pipe, index: int) -> None:
        """Queue the reads of a BucketView on `pipe`, in `BucketView.from_replies` order."""
        pipe.hexists(self.tiles_key, str(index))
        pipe.hvals(self.leases_key)
        pipe.hget(self.crashes_key, str(index))
        pipe.hget(self.failures_key, str(index))
        pipe.hget(self.errors_key, str(index))
        pipe.time()
        registry.check_clock(pipe)

    def view(self, index: int) -> BucketView:
        """What the job's record says of bucket `index` now, in one round trip."""
        with self.redis.pipeline(transaction=False) as pipe:
            self.read_bucket(pipe, index)
            return BucketView.from_replies(*pipe.execute())

    def take(self, draft: Lease, also=None, kernel: str = "") -> tuple[dict, Lease] | None:
        """Look at bucket `draft.bucket` and, if it is plainly fresh (see _TAKE) and this
        worker's kernel identity `kernel` may render the job (farm.protocol.identity; the
        first pins the job to it), start it under a lease made from `draft`, in one round
        trip: the job's raw record and the lease; None when it needs the long way.
        `also(pipe)` adds commands to the round trip."""
        reply = self._run(_TAKE, draft, also, kernel)
        if reply[0] != 1:
            return None
        _, flat, *started = reply
        return dict(zip(flat[::2], flat[1::2])), _leased(draft, *started)

    def begin(self, draft: Lease, also=None) -> Lease:
        """Count a delivery of bucket `draft.bucket` and take a lease made from `draft` on it
        at Redis's clock, in one round trip (the _BEGIN script); `also(pipe)` adds commands
        to it."""
        return _leased(draft, *self._run(_BEGIN, draft, also))

    def _run(self, script: Script, draft: Lease, also, kernel: str = "") -> list:
        """One of the delivery scripts on `draft`'s bucket, with `also(pipe)`'s commands after
        it, in one round trip (`also`'s run twice where Redis lacked the script)."""
        keys = self._script_keys()

        def build(pipe) -> None:
            script.queue(pipe, keys, str(draft.bucket), defaults.JOB_TTL, defaults.LEASE_TIMEOUT, draft.to_json(),
                         kernel)
            if also is not None:
                also(pipe)

        return in_one_trip(self.redis, [script], build)[0]

    def renew(self, lease: Lease) -> Lease:
        """Extend a lease. One that was removed as lost meanwhile (its heartbeat came late)
        is put back and its crash uncounted: the delivery is alive after all. A job whose
        record is gone (finished and expired, or a round forgotten) gets no lease back: a
        lease is then only ever there while its job is (tilestore._STORE_TILE counts on it)."""
        lease = replace(lease, until=server_time(self.redis) + defaults.LEASE_TIMEOUT)
        added = _RENEW.run(self.redis, [self.leases_key, JobRecord.key_for(self.job_id)], lease.name, lease.to_json())
        if added == 1:
            self.count_crash(lease.bucket, -1)
        return lease

    def release(self, pipe, lease: Lease) -> None:
        """Queue on `pipe` the end of a delivery: its lease dropped."""
        pipe.hdel(self.leases_key, lease.name)

    def drop(self, lease: Lease, also=None) -> None:
        """Drop the lease of a delivery that ended; `also(pipe)` adds commands to the round trip."""
        with self.redis.pipeline(transaction=False) as pipe:
            self.release(pipe, lease)
            if also is not None:
                also(pipe)
            pipe.execute()

    def leases(self) -> list[Lease]:
        return parse_leases(self.redis.hvals(self.leases_key))

    def remove_lost(self, lease: Lease) -> bool:
        """Remove a lease whose delivery died and count the crash; False if another did it first."""
        if not self.redis.hdel(self.leases_key, lease.name):
            return False
        self.count_crash(lease.bucket)
        return True

    def count_crash(self, index: int, amount: int = 1) -> int:
        return int(bump(self.redis, self.job_id, self.crashes_key, index, amount))

    def crashes(self, index: int) -> int:
        return int(self.redis.hget(self.crashes_key, str(index)) or 0)

    def record_failure(self, index: int, worker: str, error: str) -> int:
        """Count a failed delivery of bucket `index`; returns the bucket's failures so far."""
        with self.redis.pipeline() as pipe:
            pipe.hset(self.errors_key, str(index), f"{error} (on {worker})")
            pipe.expire(self.errors_key, defaults.JOB_TTL)
            pipe.execute()
        return int(bump(self.redis, self.job_id, self.failures_key, index))

    def count_attempt(self, index: int) -> None:
        """Count a delivery of bucket `index` that started without a take (farm.worker.quick)."""
        self.redis.hincrby(self.attempts_key, str(index), 1)

    def attempts(self) -> dict[int, int]:
        return {int(k): int(v) for k, v in self.redis.hgetall(self.attempts_key).items() if k.isdigit()}

    def troubles(self) -> dict[str, dict[bytes, bytes]]:
        """Every bucket's crash count and last error, raw (what `farm watch` tells)."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.crashes_key)
            pipe.hgetall(self.errors_key)
            crashes, errors = pipe.execute()
        return {"crashes": crashes, "errors": errors}


def _leased(draft: Lease, attempt, seconds, microseconds) -> Lease:
    """The lease a delivery script wrote: `draft` with its attempt, at Redis's TIME."""
    now = int(seconds) + int(microseconds) / 1e6
    return replace(draft, attempt=int(attempt), started=now, until=now + defaults.LEASE_TIMEOUT)
