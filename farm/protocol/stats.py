"""A job's counters, `farm:job:<id>:stats`: duplicates, invalid tiles, buckets sent again,
copies, files fetched, stray messages. Counters in other hashes of the job (crashes,
failures) use the same script: none outlives its job."""

from __future__ import annotations

from farm import defaults
from farm.protocol.record import JobPart, JobRecord

# Add to a counter in one of the job's hashes, which then expires with the job's own key
# (or after JOB_TTL if that is gone): no counter outlives its job.
_BUMP = """
local value = redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
local ttl = redis.call('TTL', KEYS[2])
if ttl < 0 then ttl = tonumber(ARGV[3]) end
redis.call('EXPIRE', KEYS[1], ttl)
return value
"""


def bump(client, job_id: str, key: str, field: int | str, amount: int = 1):
    """Add `amount` to `field` of the job's hash `key` on `client` (a Redis client, or a
    pipeline to queue it on); the new value."""
    return client.eval(_BUMP, 2, key, JobRecord.key_for(job_id), str(field), amount, defaults.JOB_TTL)


class JobStats(JobPart):
    """The hash `farm:job:<id>:stats`."""

    PART = "stats"

    def count(self, stat: str, amount: int = 1) -> int:
        """Add to one statistic; its new value."""
        return int(bump(self.redis, self.job_id, self.key, stat, amount))

    def read(self) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in self.redis.hgetall(self.key).items()}
