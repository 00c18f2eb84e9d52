"""A job's blocklist: the hash `farm:job:<id>:blocked`. A worker that fails BLOCK_AFTER of one
job's buckets takes no more of that job's (it passes them on), and still renders every
other job's; the farm-wide bad flag (farm.protocol.registry) stays for workers that fail
everything. Fields: `count:<worker>` (its failures of the job) and `why:<worker>` (the
last failure's reason, once blocklisted). Cf. Deadline's and Flamenco's per-job blocklists."""

from __future__ import annotations

from farm import defaults
from farm.protocol.record import JobRecord

# KEYS[1] the hash; ARGV[1] the worker, ARGV[2] the reason, ARGV[3] BLOCK_AFTER, ARGV[4] the
# TTL. 1 where this failure blocklists the worker, else 0.
_FAILED = """
local count = redis.call('HINCRBY', KEYS[1], 'count:' .. ARGV[1], 1)
redis.call('EXPIRE', KEYS[1], ARGV[4])
if count >= tonumber(ARGV[3]) and redis.call('HSETNX', KEYS[1], 'why:' .. ARGV[1], ARGV[2]) == 1 then return 1 end
return 0
"""


class Blocklist:
    def __init__(self, redis, job_id: str):
        self.redis, self.key = redis, self.key_for(job_id)

    @staticmethod
    def key_for(job_id: str) -> str:
        return JobRecord.part_key(job_id, "blocked")

    def failed(self, worker: str, reason: str) -> bool:
        """Count a failure of `worker` on the job; True where it is blocklisted by it."""
        return bool(self.redis.eval(_FAILED, 1, self.key, worker, reason[:500], defaults.BLOCK_AFTER,
                                    defaults.JOB_TTL))

    def blocks(self, worker: str) -> bool:
        return bool(self.redis.hexists(self.key, f"why:{worker}"))

    def blocked(self) -> dict[str, str]:
        """Every worker blocklisted for the job, with why."""
        return {name.decode(errors="replace")[4:]: why.decode(errors="replace")
                for name, why in self.redis.hgetall(self.key).items() if name.startswith(b"why:")}
