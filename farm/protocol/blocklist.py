"""A job's blocklist: the hash `farm:job:<id>:blocked`. A worker that fails BLOCK_AFTER of one
job's buckets takes no more of that job's (it passes them on), and still renders every
other job's; the farm-wide bad flag (farm.protocol.registry) stays for workers that fail
everything. Fields: `count:<worker>` (its failures of the job) and `why:<worker>` (the
last failure's reason, once blocklisted). Cf. Deadline's and Flamenco's per-job blocklists."""

from __future__ import annotations

from farm import defaults
from farm.protocol.record import JobRecord

# KEYS[1] the hash; ARGV[1] the worker, ARGV[2] the TTL. Its failures of the job so far.
_COUNT = """
local count = redis.call('HINCRBY', KEYS[1], 'count:' .. ARGV[1], 1)
redis.call('EXPIRE', KEYS[1], ARGV[2])
return count
"""

# KEYS[1] the hash, KEYS[2] the job's record; ARGV[1] `why:<worker>`, ARGV[2] the reason.
# Blocklists the worker unless it is already (1, else 0), and marks the job's record
# (`blocks`): a worker's first look at a bucket (deliveries._TAKE) reads the blocklist
# only of a job that has one.
_BLOCK = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('HSET', KEYS[2], 'blocks', '1') end
return 1
"""


class Blocklist:
    def __init__(self, redis, job_id: str):
        self.redis, self.key, self.job_key = redis, self.key_for(job_id), JobRecord.key_for(job_id)

    @staticmethod
    def key_for(job_id: str) -> str:
        return JobRecord.part_key(job_id, "blocked")

    def failed(self, worker: str, reason: str, spare=lambda: True) -> bool:
        """Count a failure of `worker` on the job; True where it is blocklisted by it: its
        BLOCK_AFTER-th, where `spare()` says another worker may still render the job."""
        count = self.redis.eval(_COUNT, 1, self.key, worker, defaults.JOB_TTL)
        if count < defaults.BLOCK_AFTER or self.blocks(worker) or not spare():
            return False
        return bool(self.redis.eval(_BLOCK, 2, self.key, self.job_key, f"why:{worker}", reason[:500]))

    def blocks(self, worker: str) -> bool:
        return bool(self.redis.hexists(self.key, f"why:{worker}"))

    def blocked(self) -> dict[str, str]:
        """Every worker blocklisted for the job, with why."""
        return {name.decode(errors="replace")[4:]: why.decode(errors="replace")
                for name, why in self.redis.hgetall(self.key).items() if name.startswith(b"why:")}
